package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/store"
)

// The console's sign-in with a passkey: the password first
// (AdminPasskeyBegin), then an assertion of one of the account's passkeys
// (AdminPasskeyFinish). Between the two, the ceremony waits in the store
// as a flow of its own kind, single use and short-lived, bound to the
// account. Every failure of the first step (unknown name, wrong password,
// not an admin, no passkey) answers a ceremony all the same, for a
// passkey nobody has, held to the same time: the second step then fails
// as any wrong passkey does.

// flowAdminPasskey is the store kind of a console sign-in's ceremony.
const flowAdminPasskey = "admin_passkey"

// adminPasskeyTTL is how long a console sign-in's ceremony lives.
const adminPasskeyTTL = 5 * time.Minute

// AdminCeremony is the passkey ceremony of a console sign-in: the token
// that names it and the assertion options for navigator.credentials.get.
type AdminCeremony struct {
	Token   string
	Options []byte
}

// AdminPasskeyBegin checks the password and answers a ceremony for the
// account's passkeys (or, on any failure, for a passkey nobody has).
func (s *Service) AdminPasskeyBegin(ctx context.Context, username, password string, m Meta) (AdminCeremony, error) {
	name, err := s.adminName(username)
	if err != nil {
		return AdminCeremony{}, err
	}
	if !s.passkeysPossible() {
		return AdminCeremony{}, problem(CodeMethodType, errors.New("passkeys need a host name in the public URL"))
	}
	if err := s.spendSignIn(ctx, m); err != nil {
		return AdminCeremony{}, err
	}
	start := time.Now()
	u, creds, reason, err := s.adminPasskeyProof(ctx, name, password, m)
	switch {
	case err != nil && errors.Is(err, directory.ErrUnavailable):
		return AdminCeremony{}, s.dirProblem(err)
	case err != nil && errors.Is(err, errBindBudget):
		p := problem(CodeTooMany, err)
		s.padSignIn.wait(ctx, start, true)
		return AdminCeremony{}, p
	}
	account, userID := "", s.passkeyUserID("decoy:admin:"+name)
	if reason != "" || err != nil {
		if reason == "" {
			reason = reasonOf(err)
		}
		acct := ""
		if u != nil {
			acct = u.ID
		}
		s.record(ctx, m, "admin.sign_in", acct, "failed", map[string]string{"reason": reason, "method": MethodWebAuthn})
		creds = []webauthn.Credential{s.decoyCredential("admin:" + name)}
	} else {
		account, userID, name = u.ID, s.passkeyUserID(u.ID), u.Username
	}
	c, err := s.adminCeremony(ctx, passkeyUser{id: userID, creds: creds}, account, name)
	// the real ceremony and the fake one leave at the same time
	s.padSignIn.wait(ctx, start, true)
	return c, err
}

// adminPasskeyProof checks the password and the membership of
// admin.groups, and returns the account's verified passkeys; a reason for
// the audit when one of them fails.
func (s *Service) adminPasskeyProof(ctx context.Context, name, password string, m Meta) (*directory.User, []webauthn.Credential, string, error) {
	u, err := s.d.Directory.Lookup(ctx, name)
	if err != nil {
		if errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrAmbiguous) {
			s.decoyBind(ctx, name, password)
			return nil, nil, "", s.nameAttempt(ctx, name, password, err, m)
		}
		return nil, nil, "", err
	}
	if err := s.verifyPassword(ctx, u, name, password, m); err != nil {
		return u, nil, "", err
	}
	if admin, err := s.isAdmin(ctx, u); err != nil {
		return u, nil, "", err
	} else if !admin {
		return u, nil, "not_admin", nil
	}
	ms, err := s.d.Store.ListMethods(ctx, u.ID)
	if err != nil {
		return u, nil, "", err
	}
	var creds []webauthn.Credential
	for _, meth := range ms {
		if meth.Type == MethodWebAuthn && meth.Verified {
			if r, err := parsePasskey(meth.Secret); err == nil {
				creds = append(creds, r.Credential)
			}
		}
	}
	if len(creds) == 0 {
		return u, nil, "no_strong_method", nil
	}
	return u, creds, "", nil
}

// adminCeremony begins the assertion for user and keeps it in the store,
// bound to account ("" for a fake one) and the name.
func (s *Service) adminCeremony(ctx context.Context, user passkeyUser, account, name string) (AdminCeremony, error) {
	rp, err := s.rp()
	if err != nil {
		return AdminCeremony{}, problem(CodeInternal, err)
	}
	// transports are left out, as in a reset: they would tell what kind
	// of authenticator the account uses
	allow := make([]protocol.CredentialDescriptor, 0, len(user.creds))
	for _, c := range user.creds {
		allow = append(allow, protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: c.ID})
	}
	assertion, sd, err := rp.BeginLogin(user, webauthn.WithAllowedCredentials(allow))
	if err != nil {
		return AdminCeremony{}, problem(CodeInternal, err)
	}
	opts, err := json.Marshal(assertion.Response)
	if err != nil {
		return AdminCeremony{}, problem(CodeInternal, err)
	}
	ceremony, err := json.Marshal(sd)
	if err != nil {
		return AdminCeremony{}, problem(CodeInternal, err)
	}
	now := s.now()
	f := store.Flow{ID: newToken(), Kind: flowAdminPasskey, AccountID: account, Required: 1,
		Data: map[string]string{"username": name, "ceremony": string(ceremony)}, CreatedAt: now, ExpiresAt: now.Add(adminPasskeyTTL)}
	if err := s.d.Store.CreateFlow(ctx, f); err != nil {
		return AdminCeremony{}, storeProblem(err)
	}
	return AdminCeremony{Token: f.ID, Options: opts}, nil
}

// AdminPasskeyFinish checks the assertion against the ceremony of token
// (taken, whatever the outcome) and opens an admin session. Every failure
// is sign_in_failed, held to the same time.
func (s *Service) AdminPasskeyFinish(ctx context.Context, token string, credential []byte, m Meta) (store.Session, error) {
	if !s.AdminEnabled() {
		return store.Session{}, problem(CodeNotFound, nil)
	}
	start := time.Now()
	u, reason, err := s.adminAssertion(ctx, token, credential)
	if err != nil && (errors.Is(err, directory.ErrUnavailable) || asProblem(err).Code == CodeUnavailable) {
		return store.Session{}, s.dirProblem(err)
	}
	if reason != "" || err != nil {
		if reason == "" {
			reason = "error"
			s.log.Debug("admin passkey sign-in refused", "request_id", m.RequestID, "error", err.Error())
		}
		acct := ""
		if u != nil {
			acct = u.ID
		}
		s.record(ctx, m, "admin.sign_in", acct, "failed", map[string]string{"reason": reason, "method": MethodWebAuthn})
		p := problem(CodeSignInFailed, errors.New(reason))
		s.padSignIn.wait(ctx, start, true)
		return store.Session{}, p
	}
	return s.openAdminSession(ctx, u, MethodWebAuthn, m)
}

// adminAssertion takes the ceremony and checks the assertion with the
// account's passkeys; it returns the account and why it failed.
func (s *Service) adminAssertion(ctx context.Context, token string, credential []byte) (*directory.User, string, error) {
	if len(token) < store.MinSecretIDLen {
		return nil, "no_ceremony", nil
	}
	f, err := s.d.Store.GetFlow(ctx, token, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "no_ceremony", nil
	case err != nil:
		return nil, "", storeProblem(err)
	case f.Kind != flowAdminPasskey || f.Data["taken"] != "":
		return nil, "no_ceremony", nil
	}
	// single use, whatever the outcome, of concurrent answers exactly one:
	// the ceremony is marked taken with the store's version check first
	f.Data["taken"] = "1"
	if err := s.d.Store.UpdateFlow(context.WithoutCancel(ctx), f); errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil, "no_ceremony", nil
	} else if err != nil {
		return nil, "", storeProblem(err)
	}
	s.forget(s.d.Store.DeleteFlow(context.WithoutCancel(ctx), token))
	var sd webauthn.SessionData
	if err := json.Unmarshal([]byte(f.Data["ceremony"]), &sd); err != nil {
		return nil, "no_ceremony", nil
	}
	body, ok := credentialJSON(credential)
	if !ok {
		return nil, "malformed", nil
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(bytes.Clone(body))
	if err != nil {
		return nil, "malformed", nil
	}
	rp, err := s.rp()
	if err != nil {
		return nil, "", err
	}
	if f.AccountID == "" {
		// a fake ceremony: the check fails as a wrong passkey's does
		user := passkeyUser{id: s.passkeyUserID("decoy:admin:" + f.Data["username"]), creds: []webauthn.Credential{s.decoyCredential("admin:" + f.Data["username"])}}
		_, _ = rp.ValidateLogin(user, sd, parsed)
		return nil, "assertion", nil
	}
	u, err := s.d.Directory.Lookup(ctx, f.Data["username"])
	if err != nil {
		return nil, "", err
	}
	if u.ID != f.AccountID {
		return u, "account_changed", nil
	}
	if admin, err := s.isAdmin(ctx, u); err != nil {
		return u, "", err
	} else if !admin {
		return u, "not_admin", nil
	}
	return s.adminPasskeyCheck(ctx, u, rp, sd, parsed)
}

// adminPasskeyCheck validates the assertion against u's passkeys, then
// keeps the new signature counter (a compare-and-swap: of two assertions
// checked against one counter, one is kept).
func (s *Service) adminPasskeyCheck(ctx context.Context, u *directory.User, rp *webauthn.WebAuthn, sd webauthn.SessionData,
	parsed *protocol.ParsedCredentialAssertionData) (*directory.User, string, error) {
	ms, err := s.d.Store.ListMethods(ctx, u.ID)
	if err != nil {
		return u, "", storeProblem(err)
	}
	var creds []webauthn.Credential
	var metas []store.Method
	var recs []passkeyRecord
	for _, meth := range ms {
		if meth.Type != MethodWebAuthn || !meth.Verified {
			continue
		}
		if r, err := parsePasskey(meth.Secret); err == nil {
			creds, metas, recs = append(creds, r.Credential), append(metas, meth), append(recs, r)
		}
	}
	c, err := rp.ValidateLogin(passkeyUser{id: s.passkeyUserID(u.ID), creds: creds}, sd, parsed)
	switch {
	case err != nil:
		return u, "assertion", nil
	case c.Authenticator.CloneWarning:
		return u, "sign_count", nil
	case !parsed.Response.AuthenticatorData.Flags.HasUserPresent():
		return u, "user_presence", nil
	}
	i := slices.IndexFunc(creds, func(x webauthn.Credential) bool { return bytes.Equal(x.ID, c.ID) })
	if i < 0 {
		return u, "assertion", nil
	}
	switch err := s.storeSignCount(ctx, metas[i], recs[i], c.Authenticator.SignCount); {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return u, "sign_count", nil
	case err != nil:
		return u, "", storeProblem(err)
	}
	return u, "", nil
}

// PasskeysPossible reports whether passkeys can work here (the public URL
// has a host name, their relying party id).
func (s *Service) PasskeysPossible() bool { return s.passkeysPossible() }
