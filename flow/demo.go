package flow

import (
	"context"
	"errors"
	"net/netip"

	"github.com/pquerna/otp/totp"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

// Demo is what `latchkey demo` adds to the gateway: an outbox page showing
// every mail and SMS the gateway "sent" (nothing leaves the process), the
// demo accounts, and a control that locks a demo account so that unlock can
// be tried. It exists only in the demo: NewService refuses it unless the
// public URL is a loopback address, and its pages answer loopback clients
// only. `latchkey serve` never sets it.
type Demo interface {
	Messages() []notify.OutboxMessage
	Accounts() []DemoAccount
	// Lock locks the named demo account in the demo directory, as too
	// many wrong passwords would.
	Lock(ctx context.Context, username string) error
	// NotSent keeps a message the gateway chose not to send, or could
	// not: its kind ("email", "sms"), its address when known, what it was
	// for (a flow's kind, "register", a notice's name) and why (the limits
	// key of a spent budget, or expired_before_send, send_failed,
	// not_stored), so that the outbox page shows it and the demo never
	// looks broken. In `latchkey serve` the user sees the same answer
	// either way and only the audit says so.
	NotSent(kind, to, purpose, reason string)
}

// DemoAccount is one seeded demo person, shown on the outbox page.
type DemoAccount struct {
	Username, Password, Note string
	// AppSecret is the authenticator app's secret the demo set up for
	// the account (its admin), "" for the others.
	AppSecret string
}

// IsLoopbackHost reports whether host names this machine.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Demo is the demo's outbox and accounts, nil outside the demo.
func (s *Service) Demo() Demo { return s.d.Demo }

// demoNotSent tells the demo's outbox (only in the demo) about a message
// not sent.
func (s *Service) demoNotSent(kind, to, purpose, reason string) {
	if s.d.Demo != nil {
		s.d.Demo.NotSent(kind, to, purpose, reason)
	}
}

// NewAppSecret is a new authenticator app secret (base32, as apps take it).
func NewAppSecret() (string, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Latchkey", AccountName: "demo", SecretSize: totpSeedSize})
	if err != nil {
		return "", err
	}
	return key.Secret(), nil
}

// DemoSeedApp gives the demo account username a verified authenticator
// app with secret (the demo's admin: the console asks for one). Only in
// `latchkey demo`.
func (s *Service) DemoSeedApp(ctx context.Context, username, secret string) error {
	if s.d.Demo == nil {
		return errors.New("flow: DemoSeedApp outside the demo")
	}
	u, err := s.d.Directory.Lookup(ctx, username)
	if err != nil {
		return err
	}
	now := s.now()
	m := store.Method{ID: newID(), AccountID: u.ID, Type: MethodTOTP, Secret: secret, CreatedAt: now}
	if err := s.d.Store.AddMethod(ctx, m); err != nil {
		return err
	}
	return s.d.Store.VerifyMethod(ctx, u.ID, m.ID, now)
}

// DemoAppCode is the current code of the demo's authenticator app secret
// (shown on the demo's outbox page).
func (s *Service) DemoAppCode(secret string) string {
	if s.d.Demo == nil || secret == "" {
		return ""
	}
	code, err := totp.GenerateCodeCustom(secret, s.now(), totpOpts())
	if err != nil {
		return ""
	}
	return code
}
