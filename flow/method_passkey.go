package flow

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkeyhq/latchkey/store"
)

// passkeyMethod is a passkey (webauthn.go): proven with an assertion for
// the options its Challenge answered. All of an account's passkeys count
// as one proof.
type passkeyMethod struct{}

func (passkeyMethod) Name() string              { return MethodWebAuthn }
func (passkeyMethod) Available(s *Service) bool { return s.passkeysPossible() }

// Hint: the address is the credential record; a flow shows every passkey
// alike (the owner's list shows the label: passkeyOwnerHint).
func (passkeyMethod) Hint(store.Method) string        { return passkeyHint }
func (passkeyMethod) ownerHint(m store.Method) string { return passkeyOwnerHint(m) }
func (passkeyMethod) Strong() bool                    { return true }
func (passkeyMethod) ProofShape() proofShape          { return proofCredential }
func (passkeyMethod) CountsOnce() bool                { return true }

// maxFlowChallenges is how many times one reset or unlock flow may ask for
// passkey assertion options (each ask is a store write): enough for a
// user who cancels and retries, few enough that a flow id cannot be used
// to write the store without bound.
const maxFlowChallenges = 10

// Challenge answers the assertion options of the passkey and keeps the
// ceremony in the flow, single use.
func (passkeyMethod) Challenge(ctx context.Context, c *challenge) (*PasskeyCeremony, error) {
	s, f, o, m := c.s, c.f, c.o, c.m
	if slices.Contains(f.Verified, o.ID) || s.passkeyProven(f) {
		// one passkey per flow counts: asking for another is a mistake
		return nil, problem(CodeInvalidRequest, errors.New("a passkey is already proven in this flow"))
	}
	if p := s.proofClosed(f); p != nil {
		return nil, p
	}
	rp, err := s.rp()
	if err != nil {
		return nil, problem(CodeInternal, err)
	}
	user := passkeyUser{id: s.passkeyUserID("decoy:" + o.ID), creds: []webauthn.Credential{s.decoyCredential(o.ID)}}
	if o.real && f.AccountID != "" {
		if meth, gerr := s.d.Store.GetMethod(ctx, f.AccountID, o.ID); gerr == nil && meth.Verified && meth.Type == MethodWebAuthn {
			if r, perr := parsePasskey(meth.Secret); perr == nil {
				user = passkeyUser{id: s.passkeyUserID(f.AccountID), creds: []webauthn.Credential{r.Credential}}
			}
		}
	}
	// transports are left out of allowCredentials: they would tell anyone
	// who types a name what kind of authenticator the account uses
	allow := []protocol.CredentialDescriptor{{Type: protocol.PublicKeyCredentialType, CredentialID: user.creds[0].ID}}
	assertion, sd, err := rp.BeginLogin(user, webauthn.WithAllowedCredentials(allow))
	if err != nil {
		return nil, problem(CodeInternal, err)
	}
	opts, err := json.Marshal(assertion.Response)
	if err != nil {
		return nil, problem(CodeInternal, err)
	}
	flowID := f.ID
	for attempt := 0; ; attempt++ {
		// each ask is a store write that needs no proof: a flow has a
		// budget of them, the same for real and fake passkeys
		if f.st.Challenges >= maxFlowChallenges {
			s.record(ctx, m, "blocked", f.AccountID, "challenge_budget", nil)
			return nil, problem(CodeTooMany, errors.New("passkey challenge budget of the flow spent"))
		}
		if f.st.Ceremonies == nil {
			f.st.Ceremonies = map[string]webauthn.SessionData{}
		}
		f.st.Ceremonies[o.ID] = *sd
		f.st.Challenges++
		err = s.updateFlow(ctx, f)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt > 3 {
			return nil, problem(CodeFlowExpired, err)
		}
		if f, err = s.loadFlow(ctx, c.kind, flowID); err != nil {
			return nil, err
		}
	}
	return &PasskeyCeremony{MethodID: o.ID, Options: opts}, nil
}

// passkeyProven: a passkey is among the flow's proven methods.
func (s *Service) passkeyProven(f liveFlow) bool {
	for _, o := range f.st.Offered {
		if o.Type == MethodWebAuthn && slices.Contains(f.Verified, o.ID) {
			return true
		}
	}
	return false
}

// Verify checks the assertion of a try against the ceremony the flow
// kept (taken, whatever the outcome) and the passkey's credential. A
// second passkey in a flow fails as a wrong one.
func (passkeyMethod) Verify(ctx context.Context, a *attempt) (verdict, error) {
	// a flow being completed takes no proof (a second passkey is refused
	// below, as one that fails)
	if p := a.open(); p != nil {
		return verdict{}, p
	}
	if p := a.spend(ctx, CodePasskeyFailed); p != nil {
		return verdict{}, p
	}
	s, f, o := a.s, a.f, a.o()
	var err error
	reason, cred, meth, rec := "no_ceremony", (*webauthn.Credential)(nil), store.Method{}, passkeyRecord{}
	if sd, ok := s.takeCeremony(ctx, f, o.ID); ok {
		reason = "malformed"
		body, ok := credentialJSON(a.p.Credential)
		var parsed *protocol.ParsedCredentialAssertionData
		if ok {
			parsed, err = protocol.ParseCredentialRequestResponseBytes(body)
		}
		rp, rerr := s.rp()
		if rerr != nil {
			return verdict{}, problem(CodeInternal, rerr)
		}
		if ok && err == nil {
			reason = "assertion"
			user := passkeyUser{id: s.passkeyUserID("decoy:" + o.ID), creds: []webauthn.Credential{s.decoyCredential(o.ID)}}
			real := false
			if o.real && f.AccountID != "" && !slices.Contains(f.Verified, o.ID) && !s.passkeyProven(*f) {
				if mt, gerr := s.d.Store.GetMethod(ctx, f.AccountID, o.ID); gerr == nil && mt.Verified && mt.Type == MethodWebAuthn {
					if r, perr := parsePasskey(mt.Secret); perr == nil {
						user, meth, rec, real = passkeyUser{id: s.passkeyUserID(f.AccountID), creds: []webauthn.Credential{r.Credential}}, mt, r, true
					}
				}
			}
			// a fake passkey has no key: the check fails like a wrong one
			c, verr := rp.ValidateLogin(user, sd, parsed)
			switch {
			case verr != nil || !real:
				err = verr
			case c.Authenticator.CloneWarning:
				reason = "sign_count"
			case !parsed.Response.AuthenticatorData.Flags.HasUserPresent():
				reason = "user_presence"
			default:
				// The counter check and the new counter are one
				// compare-and-swap on the record read above: of
				// assertions checked against the same counter (a clone,
				// or one answer raced into two flows) one is kept.
				switch err = s.storeSignCount(ctx, meth, rec, c.Authenticator.SignCount); {
				case err == nil:
					cred = c
				case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
					reason = "sign_count"
				default:
					return verdict{}, problem(CodeInternal, err)
				}
			}
		}
	}
	if cred == nil {
		v := wrong(CodePasskeyFailed, reason)
		if err != nil {
			v.after = func() { s.log.Debug("passkey assertion refused", "request_id", a.m.RequestID, "error", err.Error()) }
		}
		return v, nil
	}
	return verdict{proven: true}, nil
}
