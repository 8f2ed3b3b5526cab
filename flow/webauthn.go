package flow

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"golang.org/x/text/unicode/norm"

	"github.com/latchkeyhq/latchkey/store"
)

// Passkeys (WebAuthn Level 3) as a recovery method.
//
// The relying party is the gateway's public URL: RP ID = its host name,
// origin = its scheme://host[:port]. A host that is an IP address cannot be
// an RP ID, so passkeys are unavailable there (config validation says so).
//
// Registration (signed in, password fresh): BeginPasskey makes the creation
// options and keeps the ceremony (challenge, user handle, parameters) in a
// register flow whose id is derived from the session and the new method's
// id: bound to that session and account, live for passkeyTimeout, and taken
// (removed with an optimistic-concurrency update) by the first attempt to
// finish, right or wrong, so a challenge is used at most once.
// FinishPasskey checks the attestation response ("none" conveyance: the
// gateway does not judge authenticator models) for the challenge, origin,
// RP ID hash and user presence, then stores the credential as a verified
// method whose Address (encrypted at rest) is the credential record as JSON.
//
// Reset and unlock: a passkey offered in a flow is asked for with
// SendFlowChallenge, which answers the assertion options
// (allowCredentials = that passkey's credential id) and keeps the ceremony
// in the flow's Data, again single use. VerifyFlowPasskey checks the
// assertion: credential among those allowed, challenge, origin, RP ID hash,
// user presence, signature, and the signature counter (a counter that does
// not grow when either side is non-zero is refused as a possible clone).
// The new counter is written with a compare-and-swap on the record read for
// the check (store.SwapMethodAddress), so of assertions checked against the
// same counter only one is accepted. Every try counts toward the account's
// budget of wrong codes.
//
// A credential id is unique across accounts: the record carries it as its
// "index" member, which the store's blind index covers alone, and a
// registration whose id another account has verified is refused.
//
// Fake flows (unknown or ineligible names) answer the same shape: a stable
// credential id per fake method derived from the decoy key, a fresh
// challenge, and a verification that always fails.
const (
	// MethodWebAuthn is the method type of a passkey.
	MethodWebAuthn = "webauthn"
	// passkeyHint is what reset and unlock flows show for every passkey:
	// neither the owner's label nor the date, which a name alone must not
	// reveal (and which fakes could not imitate).
	passkeyHint = "Passkey"
	// passkeyLabelMax bounds a user's label, in characters.
	passkeyLabelMax = 40
	// passkeyTimeout is the life of one ceremony (client and server side).
	passkeyTimeout = 3 * time.Minute
	// maxCredentialJSON bounds an attestation or assertion response.
	maxCredentialJSON = 16 << 10
)

// passkeyRecord is a passkey as kept in store.Method.Secret.
type passkeyRecord struct {
	// Index is the credential id, base64url: the store blind-indexes a
	// record by its "index" member alone (store.NormalizeAddress), so that
	// CountAccountsByAddress finds a credential id whatever the counter.
	Index      string              `json:"index"`
	Label      string              `json:"label,omitempty"`
	Credential webauthn.Credential `json:"credential"`
}

// credentialIndex is the index member of a passkey record.
func credentialIndex(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// parsePasskey reads a record; one written before records carried an
// index gets it, so that the next write (a new counter) indexes it.
func parsePasskey(addr string) (passkeyRecord, error) {
	var r passkeyRecord
	if err := json.Unmarshal([]byte(addr), &r); err != nil {
		return r, err
	}
	if len(r.Credential.ID) == 0 || len(r.Credential.PublicKey) == 0 {
		return r, errors.New("passkey record without credential")
	}
	r.Index = credentialIndex(r.Credential.ID)
	return r, nil
}

// credentialTaken reports how many accounts have a verified passkey with
// this credential id.
func (s *Service) credentialTaken(ctx context.Context, id []byte) (int, error) {
	return s.d.Store.CountAccountsByAddress(ctx, MethodWebAuthn, credentialIndex(id))
}

// passkeyOwnerHint is what the owner's own list shows: the label, else the
// day the passkey was added.
func passkeyOwnerHint(m store.Method) string {
	if r, err := parsePasskey(m.Secret); err == nil && r.Label != "" {
		return r.Label
	}
	return "Passkey (added " + m.CreatedAt.UTC().Format(time.DateOnly) + ")"
}

// cleanLabel normalises a user's label: NFC, trimmed, at most
// passkeyLabelMax characters, no control or formatting characters (bidi
// overrides included). "" is a valid label (none).
func cleanLabel(in string) (string, bool) {
	l := strings.TrimSpace(norm.NFC.String(in))
	if !utf8.ValidString(l) || utf8.RuneCountInString(l) > passkeyLabelMax {
		return "", false
	}
	for _, r := range l {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "", false
		}
	}
	return l, true
}

// passkeysPossible: the public URL's host can be an RP ID.
func (s *Service) passkeysPossible() bool {
	h := s.o.PublicURL.Hostname()
	return h != "" && net.ParseIP(h) == nil
}

// rp is the relying party of the public URL.
func (s *Service) rp() (*webauthn.WebAuthn, error) {
	if !s.passkeysPossible() {
		return nil, errors.New("passkeys need a public URL with a host name")
	}
	t := webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyTimeout, TimeoutUVD: passkeyTimeout}
	return webauthn.New(&webauthn.Config{
		RPID:                  s.o.PublicURL.Hostname(),
		RPDisplayName:         s.o.ProductName,
		RPOrigins:             []string{s.o.PublicURL.Scheme + "://" + s.o.PublicURL.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: t, Registration: t},
	})
}

// passkeyUser is an account as the WebAuthn library sees it.
type passkeyUser struct {
	id    []byte
	name  string
	creds []webauthn.Credential
}

func (u passkeyUser) WebAuthnID() []byte                         { return u.id }
func (u passkeyUser) WebAuthnName() string                       { return u.name }
func (u passkeyUser) WebAuthnDisplayName() string                { return u.name }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// passkeyUserID is the account's user handle: stable (an authenticator
// keeps one discoverable credential per RP and user handle), opaque, and
// no personal data (WebAuthn §14.6.1).
func (s *Service) passkeyUserID(accountID string) []byte {
	return mac(s.k.register, "webauthn-user", accountID)
}

// PasskeyCeremony is the start of a passkey registration or assertion.
type PasskeyCeremony struct {
	// MethodID is the id the new passkey will have (registration) or the
	// offered method (assertion).
	MethodID string
	// Options are PublicKeyCredentialCreationOptions or
	// PublicKeyCredentialRequestOptions in their JSON form (binary values
	// base64url), for navigator.credentials.create / get.
	Options json.RawMessage
}

// BeginPasskey starts registering a passkey for the signed-in user.
func (s *Service) BeginPasskey(ctx context.Context, sess store.Session, label string, m Meta) (PasskeyCeremony, error) {
	if p := s.needsReauth(sess); p != nil {
		return PasskeyCeremony{}, p
	}
	if !slices.Contains(s.AvailableMethodTypes(sess), MethodWebAuthn) {
		return PasskeyCeremony{}, problem(CodeMethodType, nil)
	}
	label, ok := cleanLabel(label)
	if !ok {
		return PasskeyCeremony{}, problem(CodeInvalidRequest, errors.New("passkey label refused"))
	}
	rp, err := s.rp()
	if err != nil {
		return PasskeyCeremony{}, problem(CodeInternal, err)
	}
	existing, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return PasskeyCeremony{}, problem(CodeInternal, err)
	}
	if len(existing) >= s.o.MaxMethods {
		return PasskeyCeremony{}, problem(CodeMethodLimit, nil)
	}
	if p := s.adminAppKept(ctx, sess, existing); p != nil {
		return PasskeyCeremony{}, p
	}
	user := s.passkeyOwner(sess, existing)
	var exclude []protocol.CredentialDescriptor
	for _, c := range user.creds {
		exclude = append(exclude, c.Descriptor())
	}
	creation, sd, err := rp.BeginRegistration(user, webauthn.WithExclusions(exclude),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err != nil {
		return PasskeyCeremony{}, problem(CodeInternal, err)
	}
	opts, err := json.Marshal(creation.Response)
	if err != nil {
		return PasskeyCeremony{}, problem(CodeInternal, err)
	}
	id, now := newID(), s.now()
	f, err := liveFlow{Flow: store.Flow{ID: s.regFlowID(sess.ID, id), Kind: store.FlowRegister, AccountID: sess.AccountID, Required: 1,
		CreatedAt: now, ExpiresAt: now.Add(passkeyTimeout)}, st: flowState{Method: id, Registration: sd, Label: label}}.row()
	if err != nil {
		return PasskeyCeremony{}, problem(CodeInternal, err)
	}
	if err := s.d.Store.CreateFlow(ctx, f); err != nil {
		return PasskeyCeremony{}, problem(CodeInternal, err)
	}
	s.record(ctx, m, "registration.method_added", sess.AccountID, "pending", map[string]string{"method": id, "type": MethodWebAuthn})
	return PasskeyCeremony{MethodID: id, Options: opts}, nil
}

// passkeyOwner is the signed-in user with the credentials of the
// account's passkeys.
func (s *Service) passkeyOwner(sess store.Session, ms []store.Method) passkeyUser {
	u := passkeyUser{id: s.passkeyUserID(sess.AccountID), name: sess.Username}
	for _, e := range ms {
		if e.Type != MethodWebAuthn {
			continue
		}
		if r, err := parsePasskey(e.Secret); err == nil {
			u.creds = append(u.creds, r.Credential)
		}
	}
	return u
}

// takeCeremony removes a ceremony from the flow and returns it (in a
// registration flow its passkey's, else that of the passkey methodID):
// of concurrent takers exactly one gets it (the store's version check),
// and a taken ceremony is gone whatever the outcome.
func (s *Service) takeCeremony(ctx context.Context, f *liveFlow, methodID string) (webauthn.SessionData, bool) {
	var sd webauthn.SessionData
	if f.Kind == store.FlowRegister {
		if f.st.Registration == nil {
			return sd, false
		}
		sd, f.st.Registration = *f.st.Registration, nil
	} else {
		var ok bool
		if sd, ok = f.st.Ceremonies[methodID]; !ok {
			return sd, false
		}
		delete(f.st.Ceremonies, methodID)
	}
	if err := s.updateFlow(context.WithoutCancel(ctx), *f); err != nil {
		return webauthn.SessionData{}, false
	}
	f.Version++
	return sd, true
}

// credentialJSON checks that a client's response is one bounded JSON object.
func credentialJSON(raw []byte) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	return raw, len(raw) > 1 && len(raw) <= maxCredentialJSON && raw[0] == '{' && json.Valid(raw)
}

// FinishPasskey checks the authenticator's answer to BeginPasskey and
// stores the passkey as a verified method.
func (s *Service) FinishPasskey(ctx context.Context, sess store.Session, methodID string, credential []byte, m Meta) (MethodView, error) {
	fail := func(reason string, err error) (MethodView, error) {
		return s.passkeyFailed(ctx, sess, methodID, reason, err, m)
	}
	if len(methodID) == 0 || len(methodID) > 64 {
		return MethodView{}, problem(CodeMethodNotFound, nil)
	}
	now := s.now()
	flowID := s.regFlowID(sess.ID, methodID)
	row, err := s.d.Store.GetFlow(ctx, flowID, now)
	if err != nil || row.Kind != store.FlowRegister || row.AccountID != sess.AccountID {
		return fail("no_ceremony", err)
	}
	f, err := s.readFlow(row)
	if err != nil {
		return MethodView{}, err
	}
	if f.st.Method != methodID {
		return fail("no_ceremony", nil)
	}
	try, ok := s.countCodeTry(ctx, "acct:"+sess.AccountID)
	if !ok {
		s.record(ctx, m, "blocked", sess.AccountID, "code_budget", nil)
		return MethodView{}, problem(CodeTooMany, nil)
	}
	sd, ok := s.takeCeremony(ctx, &f, "")
	s.forget(s.d.Store.DeleteFlow(context.WithoutCancel(ctx), flowID))
	if !ok {
		return fail("no_ceremony", nil)
	}
	body, ok := credentialJSON(credential)
	if !ok {
		return fail("malformed", nil)
	}
	rp, err := s.rp()
	if err != nil {
		return MethodView{}, problem(CodeInternal, err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return fail("malformed", err)
	}
	existing, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return MethodView{}, problem(CodeInternal, err)
	}
	user := s.passkeyOwner(sess, existing)
	cred, err := rp.CreateCredential(user, sd, parsed)
	if err != nil {
		return fail("attestation", err)
	}
	if !cred.Flags.UserPresent {
		return fail("user_presence", nil)
	}
	s.rightCodeTry(ctx, try) // a passkey that checks out is not a wrong proof
	for _, c := range user.creds {
		if bytes.Equal(c.ID, cred.ID) {
			return MethodView{}, problem(CodeMethodExists, nil)
		}
	}
	if len(existing) >= s.o.MaxMethods {
		return MethodView{}, problem(CodeMethodLimit, nil)
	}
	return s.storePasskey(ctx, sess, methodID, f.st.Label, cred, now, m)
}

// passkeyFailed records and answers a registration of a passkey that
// failed for reason.
func (s *Service) passkeyFailed(ctx context.Context, sess store.Session, methodID, reason string, err error, m Meta) (MethodView, error) {
	s.record(ctx, m, "registration.method_verified", sess.AccountID, "failed",
		map[string]string{"method": methodID, "type": MethodWebAuthn, "reason": reason})
	return MethodView{}, problem(CodePasskeyFailed, err)
}

// storePasskey stores the checked credential cred as the verified passkey
// methodID, unless another account has its id.
func (s *Service) storePasskey(ctx context.Context, sess store.Session, methodID, label string, cred *webauthn.Credential, now time.Time, m Meta) (MethodView, error) {
	fail := func(reason string, err error) (MethodView, error) {
		return s.passkeyFailed(ctx, sess, methodID, reason, err, m)
	}
	// A credential id is the authenticator's name for one key of one
	// user (WebAuthn §7.1 step 26: refuse one registered to another
	// user). An honest authenticator makes a fresh random id per
	// registration, so a taken id is a client that chose it; say no more
	// than that the passkey failed.
	if n, err := s.credentialTaken(ctx, cred.ID); err != nil {
		return MethodView{}, problem(CodeInternal, err)
	} else if n > 0 {
		return fail("credential_in_use", nil)
	}
	// only what checks later assertions is kept
	cred.Attestation = webauthn.CredentialAttestation{}
	rec, err := json.Marshal(passkeyRecord{Index: credentialIndex(cred.ID), Label: label, Credential: *cred})
	if err != nil {
		return MethodView{}, problem(CodeInternal, err)
	}
	meth := store.Method{ID: methodID, AccountID: sess.AccountID, Type: MethodWebAuthn, Secret: string(rec), CreatedAt: now}
	if err := s.addMethodWithin(ctx, meth, s.o.MaxMethods); err != nil {
		return MethodView{}, err
	}
	if err := s.d.Store.VerifyMethod(ctx, sess.AccountID, methodID, now); err != nil {
		return MethodView{}, problem(CodeInternal, err)
	}
	// Counted again now that this one counts: of two accounts registering
	// one id at once, neither keeps it (the store has no unique index on
	// it, and this fails closed).
	if n, err := s.credentialTaken(ctx, cred.ID); err != nil || n > 1 {
		s.forget(s.d.Store.DeleteMethod(context.WithoutCancel(ctx), sess.AccountID, methodID))
		if err != nil {
			return MethodView{}, problem(CodeInternal, err)
		}
		return fail("credential_in_use", nil)
	}
	meth.Verified, meth.VerifiedAt = true, now
	s.record(ctx, m, "registration.method_verified", sess.AccountID, "success", map[string]string{"method": methodID, "type": MethodWebAuthn})
	s.noticeAll(ctx, sess.AccountID, sess.Username, "method_added", methodID, m)
	return view(meth), nil
}

// ---------------------------------------------------------------- reset and unlock

// decoyCredential is the credential a fake passkey names: an id that looks
// random, the same for the same fake method (so for the same name) every
// time, of a length real authenticators use; no key (nothing can verify).
func (s *Service) decoyCredential(methodID string) webauthn.Credential {
	h := mac(s.k.decoy, "webauthn-cred", methodID)
	lengths := []int{16, 32, 32, 48, 64}
	n := lengths[int(h[0])%len(lengths)]
	id := make([]byte, 0, n)
	for i := 0; len(id) < n; i++ {
		id = append(id, mac(s.k.decoy, "webauthn-cred", methodID, string(rune('a'+i)))...)
	}
	return webauthn.Credential{ID: id[:n]}
}

// storeSignCount keeps the new signature counter of a passkey with a
// compare-and-swap from the record as it was read (meth.Secret):
// store.ErrConflict when the record changed since, that is when another
// assertion moved the counter first. A counter that stays zero (an
// authenticator without one) leaves the record as it is.
func (s *Service) storeSignCount(ctx context.Context, meth store.Method, rec passkeyRecord, count uint32) error {
	if count == 0 && rec.Credential.Authenticator.SignCount == 0 {
		return nil
	}
	rec.Credential.Authenticator.SignCount = count
	addr, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.d.Store.SwapMethodAddress(context.WithoutCancel(ctx), meth.AccountID, meth.ID, meth.Secret, string(addr))
}
