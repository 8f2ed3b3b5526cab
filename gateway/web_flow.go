package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// The reset and unlock pages: start, the methods offered, a code sent and
// verified, the new password (reset) or the unlock, and the last page.

func kindOf(c echo.Context) string {
	if strings.HasPrefix(c.Request().URL.Path, "/unlock") {
		return store.FlowUnlock
	}
	return store.FlowReset
}

func flowTitle(kind string) string {
	if kind == store.FlowUnlock {
		return "Unlock your account"
	}
	return "Reset your password"
}

// flowStep is the step a flow is at and how many there are: one per
// method to prove, then the new password (or the unlock). Before a first
// proof the number is the policy's base for every name (FlowView.Required):
// the true number shows from the first proof on.
func flowStep(f flow.FlowView) (step, steps int) {
	steps = f.Required + 1
	if f.Remaining == 0 {
		return steps, steps
	}
	return min(len(f.Verified)+1, steps-1), steps
}

// stepTitle is the title (and h1) of a flow's page, with its step.
func stepTitle(kind string, f flow.FlowView) string {
	step, steps := flowStep(f)
	return fmt.Sprintf("%s: step %d of %d", flowTitle(kind), step, steps)
}

func (s *Server) flowStartPage(c echo.Context) error {
	kind := kindOf(c)
	return s.render(c, http.StatusOK, "flow_start", flowTitle(kind), struct{ Kind string }{kind}, nil)
}

func (s *Server) flowStart(c echo.Context) error {
	kind := kindOf(c)
	f, err := s.svc.StartFlow(c.Request().Context(), kind, formValue(c, "username"), meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 {
			return p
		}
		return s.render(c, p.Status, "flow_start", flowTitle(kind), struct{ Kind string }{kind}, p)
	}
	c.SetCookie(s.cookie(s.cookieFlow, kind+"."+f.ID, 0))
	return s.redirect(c, "/"+kind+"/methods")
}

// flowFromCookie returns the flow of this browser for the page's kind.
func (s *Server) flowFromCookie(c echo.Context, kind string) (flow.FlowView, error) {
	ck, err := c.Cookie(s.cookieFlow)
	if err != nil {
		return flow.FlowView{}, flow.NewProblem(flow.CodeFlowExpired, nil)
	}
	k, id, ok := strings.Cut(ck.Value, ".")
	if !ok || k != kind {
		return flow.FlowView{}, flow.NewProblem(flow.CodeFlowExpired, nil)
	}
	return s.svc.Flow(c.Request().Context(), kind, id)
}

type offeredRow struct {
	ID, Type, Hint string
	Verified       bool
}

type flowMethodsPage struct {
	Kind string
	// Username is the name the flow was started for, shown back with a
	// way to start again (a typo must not lead to codes that never come)
	Username            string
	Required, Remaining int
	Methods             []offeredRow
	// Needs names the kinds of which one must still be proven ("an
	// authenticator app or a passkey"), after a first proof; NeedsOffered
	// says whether one of the methods offered is of such a kind.
	Needs        string
	NeedsOffered bool
	// CannotFinish: after a proof, the account has not registered what
	// its tier needs (flow.FlowView.CannotFinish); Registered is how many
	// methods it has here
	CannotFinish bool
	Registered   int
	// Proven is how many methods are proven (0: the page says nothing of
	// the account's tier)
	Proven int
}

// kindsSentence joins kinds as "a, b or c".
func kindsSentence(kinds []string) string {
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		if n := webKinds[k].name; n != "" {
			names = append(names, n)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func (s *Server) flowMethodsData(kind string, f flow.FlowView) flowMethodsPage {
	d := flowMethodsPage{Kind: kind, Username: f.Username, Required: f.Required, Remaining: f.Remaining, Needs: kindsSentence(f.Needs),
		CannotFinish: f.CannotFinish, Registered: len(f.Methods), Proven: len(f.Verified)}
	for _, m := range f.Methods {
		verified := slices.Contains(f.Verified, m.ID)
		d.Methods = append(d.Methods, offeredRow{ID: m.ID, Type: m.Type, Hint: m.Hint, Verified: verified})
		if !verified && slices.Contains(f.Needs, m.Type) {
			d.NeedsOffered = true
		}
	}
	return d
}

func (s *Server) flowExpired(c echo.Context, kind string) error {
	c.SetCookie(s.cookie(s.cookieFlow, "", -1))
	return s.render(c, http.StatusGone, "flow_start", flowTitle(kind), struct{ Kind string }{kind}, flow.NewProblem(flow.CodeFlowExpired, nil))
}

func (s *Server) flowMethodsPage(c echo.Context) error {
	kind := kindOf(c)
	f, err := s.flowFromCookie(c, kind)
	if err != nil {
		return s.flowExpired(c, kind)
	}
	if f.Remaining == 0 {
		return s.redirect(c, "/"+kind+"/"+finalStep(kind))
	}
	return s.render(c, http.StatusOK, "flow_methods", stepTitle(kind, f), s.flowMethodsData(kind, f), nil)
}

func finalStep(kind string) string {
	if kind == store.FlowUnlock {
		return "complete"
	}
	return "password"
}

func (s *Server) flowSend(c echo.Context) error {
	kind := kindOf(c)
	f, err := s.flowFromCookie(c, kind)
	if err != nil {
		return s.flowExpired(c, kind)
	}
	method := formValue(c, "method")
	return webKindOf(offeredType(f, method)).choose(s, c, kind, f, method)
}

// flowSendCode sends a code to the method chosen and leads to the page
// where it is typed.
func (s *Server) flowSendCode(c echo.Context, kind string, f flow.FlowView, method string) error {
	if err := s.svc.SendFlowCode(c.Request().Context(), kind, f.ID, method, meta(c)); err != nil {
		return err
	}
	return s.redirect(c, "/"+kind+"/code?method="+url.QueryEscape(method))
}

type flowCodePage struct {
	Kind, ID, Type, Hint string
	Minutes              int
}

func (s *Server) flowCodeData(kind string, f flow.FlowView, method string) (flowCodePage, bool) {
	for _, m := range f.Methods {
		if m.ID == method {
			return flowCodePage{Kind: kind, ID: m.ID, Type: m.Type, Hint: m.Hint, Minutes: int(s.o.CodeTTL.Minutes())}, true
		}
	}
	return flowCodePage{}, false
}

func (s *Server) flowCodePage(c echo.Context) error {
	kind := kindOf(c)
	f, err := s.flowFromCookie(c, kind)
	if err != nil {
		return s.flowExpired(c, kind)
	}
	d, ok := s.flowCodeData(kind, f, c.QueryParam("method"))
	if !ok {
		return s.redirect(c, "/"+kind+"/methods")
	}
	return webKindOf(d.Type).provePage(s, c, kind, f, d)
}

// flowCodeForm shows the page where a code sent is typed.
func (s *Server) flowCodeForm(c echo.Context, kind string, f flow.FlowView, d flowCodePage) error {
	return s.render(c, http.StatusOK, "flow_code", stepTitle(kind, f), d, nil)
}

func (s *Server) flowVerify(c echo.Context) error {
	kind := kindOf(c)
	f, err := s.flowFromCookie(c, kind)
	if err != nil {
		return s.flowExpired(c, kind)
	}
	method := formValue(c, "method")
	if d, ok := s.flowCodeData(kind, f, method); ok {
		return webKindOf(d.Type).prove(s, c, kind, f, d)
	}
	// not a method of the flow: flow says why
	return s.flowVerifyCode(c, kind, f, flowCodePage{ID: method})
}

// flowVerifyCode checks the code typed for method d.ID.
func (s *Server) flowVerifyCode(c echo.Context, kind string, f flow.FlowView, d flowCodePage) error {
	method := d.ID
	nf, err := s.svc.VerifyFlowCode(c.Request().Context(), kind, f.ID, method, formValue(c, "code"), meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Code == flow.CodeFlowExpired {
			return s.flowExpired(c, kind)
		}
		d, ok := s.flowCodeData(kind, f, method)
		if !ok || p.Status >= 500 {
			return p
		}
		if d.Type == flow.MethodTOTP && p.Code == flow.CodeInvalidCode {
			q := *p
			q.Text = appCodeRefused
			p = &q
		}
		return s.render(c, p.Status, "flow_code", stepTitle(kind, f), d, p)
	}
	c.SetCookie(s.cookie(s.cookieFlow, kind+"."+nf.ID, 0)) // a new id once a method is proven
	if nf.Remaining > 0 {
		return s.redirect(c, "/"+kind+"/methods?notice=method_ok")
	}
	return s.redirect(c, "/"+kind+"/"+finalStep(kind))
}

// passwordTitle is the title of the last step of a reset.
func passwordTitle(f flow.FlowView) string {
	_, steps := flowStep(f)
	return fmt.Sprintf("Choose a new password: step %d of %d", steps, steps)
}

type passwordPage struct {
	Rules flow.PasswordRules
}

func (s *Server) resetPasswordPage(c echo.Context) error {
	f, err := s.flowFromCookie(c, store.FlowReset)
	if err != nil {
		return s.flowExpired(c, store.FlowReset)
	}
	rules, err := s.svc.FlowPasswordRules(c.Request().Context(), f.ID)
	if err != nil {
		if flow.AsProblem(err).Code == flow.CodeNotVerified {
			return s.redirect(c, "/reset/methods")
		}
		return err
	}
	return s.render(c, http.StatusOK, "flow_password", passwordTitle(f), passwordPage{Rules: rules}, nil)
}

func (s *Server) resetPassword(c echo.Context) error {
	ctx := c.Request().Context()
	f, err := s.flowFromCookie(c, store.FlowReset)
	if err != nil {
		return s.flowExpired(c, store.FlowReset)
	}
	pw := formValue(c, "password")
	var perr error
	if pw != formValue(c, "confirm") {
		p := flow.NewProblem(flow.CodePasswordRejected, nil)
		p.Violations = []flow.Violation{{Code: "mismatch", Message: "The two passwords are not the same."}}
		perr = p
	} else {
		perr = s.svc.CompleteFlow(ctx, store.FlowReset, f.ID, pw, meta(c))
	}
	if perr != nil {
		p := flow.AsProblem(perr)
		switch {
		case p.Code == flow.CodeFlowExpired:
			return s.flowExpired(c, store.FlowReset)
		case p.Code == flow.CodeAlreadyCompleted:
			// an earlier submission, whose answer was lost, set the password
			c.SetCookie(s.cookie(s.cookieFlow, "", -1))
			return s.render(c, p.Status, "flow_start", flowTitle(store.FlowReset), struct{ Kind string }{store.FlowReset}, p)
		case p.Code == flow.CodeNotVerified, p.Code == flow.CodeMethodKindRequired:
			return s.redirect(c, "/reset/methods")
		case p.Status >= 500 && p.Code != flow.CodeUnavailable:
			return p
		}
		rules, _ := s.svc.FlowPasswordRules(ctx, f.ID)
		return s.render(c, p.Status, "flow_password", passwordTitle(f), passwordPage{Rules: rules}, p)
	}
	c.SetCookie(s.cookie(s.cookieFlow, "", -1))
	return s.redirect(c, "/reset/done")
}

func (s *Server) unlockCompletePage(c echo.Context) error {
	f, err := s.flowFromCookie(c, store.FlowUnlock)
	if err != nil {
		return s.flowExpired(c, store.FlowUnlock)
	}
	if f.Remaining > 0 {
		return s.redirect(c, "/unlock/methods")
	}
	locked, err := s.svc.FlowLocked(c.Request().Context(), f.ID)
	if err != nil {
		if flow.AsProblem(err).Code == flow.CodeNotVerified {
			return s.redirect(c, "/unlock/methods")
		}
		return err
	}
	return s.render(c, http.StatusOK, "flow_unlock", stepTitle(store.FlowUnlock, f), struct{ Locked bool }{locked}, nil)
}

func (s *Server) unlockComplete(c echo.Context) error {
	f, err := s.flowFromCookie(c, store.FlowUnlock)
	if err != nil {
		return s.flowExpired(c, store.FlowUnlock)
	}
	// whether the write ended a lock: the directory's answer at the write,
	// as the notice says
	unlocked, err := s.svc.CompleteUnlock(c.Request().Context(), f.ID, meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Code == flow.CodeNotVerified || p.Code == flow.CodeMethodKindRequired {
			return s.redirect(c, "/unlock/methods")
		}
		return p
	}
	c.SetCookie(s.cookie(s.cookieFlow, "", -1))
	if !unlocked {
		return s.redirect(c, "/unlock/done?was=not_locked")
	}
	return s.redirect(c, "/unlock/done")
}

type donePage struct {
	Message     string
	NewPassword bool
}

func (s *Server) resetDone(c echo.Context) error {
	return s.render(c, http.StatusOK, "done", "Password reset", donePage{"Your password has been reset. We have told you about it on every method you registered.", true}, nil)
}

func (s *Server) unlockDone(c echo.Context) error {
	if c.QueryParam("was") == "not_locked" {
		return s.render(c, http.StatusOK, "done", "Nothing to unlock", donePage{"Your account was not locked, so nothing changed. Your password has not changed either: if you cannot sign in with it, reset it.", false}, nil)
	}
	return s.render(c, http.StatusOK, "done", "Account unlocked", donePage{"Your account is unlocked. Your password has not changed.", false}, nil)
}
