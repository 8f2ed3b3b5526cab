package gateway

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
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
	Why  string // why it was not sent, in words
}

// notSentWhy says why a message was not sent, by the reason flow gives
// (flow.Demo's NotSent).
var notSentWhy = map[string]string{
	"limits.sends_per_account":       "this account has had as many codes as it may for now (limits.sends_per_account).",
	"limits.sends_per_destination":   "this address has had as many codes as it may for now (limits.sends_per_destination).",
	"limits.sms_per_hour":            "the gateway has sent as many text messages as it may this hour (limits.sms_per_hour).",
	"limits.sms_per_prefix_per_hour": "numbers that start like this one have had as many text messages as they may this hour (limits.sms_per_prefix_per_hour).",
	"expired_before_send":            "its code or its flow expired before it could leave.",
	"send_failed":                    "the mail server or the SMS provider did not take it.",
	"not_stored":                     "the store could not keep it.",
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
		v := outboxView{OutboxMessage: m, Code: codeRE.FindString(m.Text), Ago: now.Sub(m.At).Truncate(time.Second).String()}
		if m.NotSent != "" {
			v.Why = notSentWhy[m.NotSent]
			if v.Why == "" {
				v.Why = m.NotSent
			}
			if strings.HasPrefix(m.NotSent, "limits.") && m.Purpose != "register" {
				// a registration's page says "too many"; a reset's or
				// unlock's says what it says to every name
				v.Why += " The page said a code is on its way all the same: it says so to everyone, so that it tells nobody whether an account exists."
			}
		}
		msgs = append(msgs, v)
	}
	type account struct {
		flow.DemoAccount
		// AppCode is the current code of the account's demo app
		AppCode string
	}
	data := struct {
		Messages []outboxView
		Accounts []account
		Locked   string
	}{Messages: msgs}
	for _, a := range s.svc.Demo().Accounts() {
		data.Accounts = append(data.Accounts, account{DemoAccount: a, AppCode: s.svc.DemoAppCode(a.AppSecret)})
	}
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
