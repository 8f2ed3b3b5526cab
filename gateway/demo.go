package gateway

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/notify"
)

// outboxView is one message on the outbox page.
type outboxView struct {
	notify.OutboxMessage
	Code string
	Ago  string
}

var codeRE = regexp.MustCompile(`\b[0-9]{6,8}\b`)

// demoOnly answers 404 unless this is the demo and the peer (the socket,
// never a header) is on this machine.
func (s *Server) demoOnly(c echo.Context) error {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if s.svc.Demo() == nil || err != nil || !flow.IsLoopbackHost(host) {
		return flow.NewProblem(flow.CodeNotFound, errors.New("demo page outside the demo or from another host"))
	}
	return nil
}

func (s *Server) demoOutboxPage(c echo.Context) error {
	if err := s.demoOnly(c); err != nil {
		return err
	}
	now := s.svc.Now()
	var msgs []outboxView
	for _, m := range s.svc.Demo().Messages() {
		msgs = append(msgs, outboxView{OutboxMessage: m, Code: codeRE.FindString(m.Text),
			Ago: now.Sub(m.At).Truncate(time.Second).String()})
	}
	data := struct {
		Messages []outboxView
		Accounts []flow.DemoAccount
		Locked   string
	}{Messages: msgs, Accounts: s.svc.Demo().Accounts()}
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
	for _, a := range s.svc.Demo().Accounts() {
		known = known || a.Username == name
	}
	if !known {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("not a demo account"))
	}
	if err := s.svc.Demo().Lock(c.Request().Context(), name); err != nil {
		return flow.NewProblem(flow.CodeInternal, err)
	}
	s.svc.Log().Info("demo account locked", "request_id", meta(c).RequestID, "username", name)
	return s.redirect(c, "/demo/outbox?locked="+url.QueryEscape(name))
}
