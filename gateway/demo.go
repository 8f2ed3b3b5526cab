package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"

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
}

// DemoAccount is one seeded demo person, shown on the outbox page.
type DemoAccount struct {
	Username, Password, Note string
}

// outboxView is one message on the outbox page.
type outboxView struct {
	notify.OutboxMessage
	Code string
	Ago  string
}

var codeRE = regexp.MustCompile(`\b[0-9]{6,8}\b`)

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// demoOnly answers 404 unless this is the demo and the peer (the socket,
// never a header) is on this machine.
func (s *Server) demoOnly(c echo.Context) error {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if s.svc.d.Demo == nil || err != nil || !isLoopbackHost(host) {
		return problem(CodeNotFound, errors.New("demo page outside the demo or from another host"))
	}
	return nil
}

func (s *Server) demoOutboxPage(c echo.Context) error {
	if err := s.demoOnly(c); err != nil {
		return err
	}
	now := s.svc.d.Now()
	var msgs []outboxView
	for _, m := range s.svc.d.Demo.Messages() {
		msgs = append(msgs, outboxView{OutboxMessage: m, Code: codeRE.FindString(m.Text),
			Ago: now.Sub(m.At).Truncate(time.Second).String()})
	}
	data := struct {
		Messages []outboxView
		Accounts []DemoAccount
		Locked   string
	}{Messages: msgs, Accounts: s.svc.d.Demo.Accounts()}
	for _, a := range data.Accounts {
		if c.QueryParam("locked") == a.Username {
			data.Locked = a.Username
		}
	}
	return s.render(c, http.StatusOK, "demo_outbox", "Demo outbox", data, nil)
}

func (s *Server) demoLock(c echo.Context) error {
	if err := s.demoOnly(c); err != nil {
		return err
	}
	name := formValue(c, "username")
	known := false
	for _, a := range s.svc.d.Demo.Accounts() {
		known = known || a.Username == name
	}
	if !known {
		return problem(CodeInvalidRequest, errors.New("not a demo account"))
	}
	if err := s.svc.d.Demo.Lock(c.Request().Context(), name); err != nil {
		return problem(CodeInternal, err)
	}
	s.svc.log.Info("demo account locked", "request_id", meta(c).RequestID, "username", name)
	return s.redirect(c, "/demo/outbox?locked="+url.QueryEscape(name))
}
