package flow

import (
	"context"
	"net/netip"

	"github.com/latchkeyhq/latchkey/notify"
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
