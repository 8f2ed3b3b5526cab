package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

const maxField = 1024

// form wraps a POST handler for pages: parses the form strictly (no
// repeated fields, bounded values) and checks CSRF first.
func (s *Server) form(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("not a form"))
		}
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return flow.NewProblem(flow.CodeTooLarge, nil)
			}
			return flow.NewProblem(flow.CodeInvalidRequest, err)
		}
		if err := strictValues(r.PostForm); err != nil {
			return err
		}
		if len(r.URL.RawQuery) > 0 && r.URL.Query().Has("_csrf") {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("token in query"))
		}
		if err := s.checkCSRF(c); err != nil {
			return err
		}
		return h(c)
	}
}

func strictValues(v url.Values) error {
	for k, vs := range v {
		if len(vs) > 1 {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("repeated field "+k))
		}
		if len(vs[0]) > maxField {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("field too long "+k))
		}
	}
	return nil
}

func formValue(c echo.Context, key string) string {
	if v := c.Request().PostForm[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}

func (s *Server) redirect(c echo.Context, path string) error {
	return c.Redirect(http.StatusSeeOther, path)
}

// ---------------------------------------------------------------- home

func (s *Server) home(c echo.Context) error {
	return s.render(c, http.StatusOK, "home", s.o.ProductName+" self-service", nil, nil)
}

// ---------------------------------------------------------------- registration

func (s *Server) sessionFromCookie(c echo.Context) (store.Session, error) {
	ck, err := c.Cookie(s.cookieSession)
	if err != nil {
		return store.Session{}, flow.NewProblem(flow.CodeSessionExpired, nil)
	}
	return s.svc.Session(c.Request().Context(), ck.Value)
}

func (s *Server) signInPage(c echo.Context) error {
	if _, err := s.sessionFromCookie(c); err == nil {
		return s.redirect(c, "/register/methods")
	}
	return s.render(c, http.StatusOK, "signin", "Register recovery methods", struct{ Username string }{}, nil)
}

func (s *Server) signIn(c echo.Context) error {
	ctx := c.Request().Context()
	if old, err := c.Cookie(s.cookieSession); err == nil {
		_ = s.svc.SignOut(ctx, old.Value) // a new session id at every sign-in (the old one expires on its own if the store failed)
	}
	username := formValue(c, "username")
	sess, err := s.svc.SignIn(ctx, username, formValue(c, "password"), meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Code == flow.CodeNotEligible {
			return s.render(c, http.StatusForbidden, "not_eligible", "Not available for your account", nil, nil)
		}
		return s.render(c, p.Status, "signin", "Register recovery methods", struct{ Username string }{username}, p)
	}
	c.SetCookie(s.cookie(s.cookieSession, sess.ID, 0))
	return s.redirect(c, "/register/methods")
}

type methodsPage struct {
	Methods                                            []flow.MethodView
	HasVerified, CanEmail, CanSMS, CanTOTP, NeedReauth bool
	// CanPasskey: passkeys are on (the page that adds one needs JavaScript)
	CanPasskey bool
	// HasTOTP: an authenticator app is registered (adding one replaces it)
	HasTOTP bool
	// CanQuestions, HasQuestions: security questions are on / registered
	CanQuestions, HasQuestions bool
	// Required is how many different methods the account's tier needs,
	// Counted how many of its verified methods count, Missing the rest
	Required, Counted, Missing int
}

func (s *Server) methodsData(c echo.Context, sess store.Session) (methodsPage, error) {
	ms, err := s.svc.Methods(c.Request().Context(), sess)
	if err != nil {
		return methodsPage{}, err
	}
	d := methodsPage{Methods: ms}
	for _, m := range ms {
		d.HasVerified = d.HasVerified || m.Verified
		d.HasTOTP = d.HasTOTP || (m.Type == flow.MethodTOTP && m.Verified)
		d.HasQuestions = d.HasQuestions || m.Type == flow.MethodQuestions
	}
	for _, t := range s.svc.AvailableMethodTypes() {
		d.CanEmail = d.CanEmail || t == store.MethodEmail
		d.CanSMS = d.CanSMS || t == store.MethodSMS
		d.CanTOTP = d.CanTOTP || t == flow.MethodTOTP
		d.CanPasskey = d.CanPasskey || t == flow.MethodWebAuthn
		d.CanQuestions = d.CanQuestions || t == flow.MethodQuestions
	}
	d.NeedReauth = s.svc.NeedsReauth(sess)
	// the tier's number needs the directory; the page works without it
	// (the line is left out)
	if req, counted, err := s.svc.MethodsNeeded(c.Request().Context(), sess); err == nil {
		d.Required, d.Counted, d.Missing = req, counted, max(req-counted, 0)
	} else if p := flow.AsProblem(err); p.Code != flow.CodeUnavailable {
		return methodsPage{}, err
	}
	return d, nil
}

func (s *Server) methodsPage(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	d, err := s.methodsData(c, sess)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "methods", "Your recovery methods", d, nil)
}

func (s *Server) methodsError(c echo.Context, sess store.Session, err error) error {
	p := flow.AsProblem(err)
	if p.Status >= 500 {
		return p
	}
	if p.Code == flow.CodeInvalidPhone {
		if names := countryNames(s.svc.AllowedCountries()); names != "" {
			q := *p
			q.Text = "Enter a mobile number in international format, for example +44 7700 900123, from one of these countries: " + names + "."
			p = &q
		}
	}
	d, derr := s.methodsData(c, sess)
	if derr != nil {
		return derr
	}
	return s.render(c, p.Status, "methods", "Your recovery methods", d, p)
}

func (s *Server) addMethod(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	return webKindOf(formValue(c, "type")).addPage(s, c, sess)
}

// addAddress adds a destination and leads to the page where its code is
// typed.
func (s *Server) addAddress(c echo.Context, sess store.Session) error {
	mv, err := s.svc.AddMethod(c.Request().Context(), sess, formValue(c, "type"), formValue(c, "address"), meta(c))
	if err != nil {
		return s.methodsError(c, sess, err)
	}
	return s.redirect(c, "/register/methods/"+url.PathEscape(mv.ID)+"/verify")
}

type totpEnrolPage struct {
	ID, Secret string
	// QR is the QR code as a data: URL (allowed by this answer's CSP only)
	QR template.URL
}

// enrolTOTP answers the form post itself (no redirect): the seed is in
// this one answer and in no URL or later page.
func (s *Server) enrolTOTP(c echo.Context, sess store.Session) error {
	en, err := s.svc.EnrolTOTP(c.Request().Context(), sess, meta(c))
	if err != nil {
		return s.methodsError(c, sess, err)
	}
	return s.renderTOTPEnrol(c, http.StatusOK, en, nil)
}

// appCodeRefused is what a refused code from an authenticator app says:
// nothing is sent to an app, so not "send a new code".
const appCodeRefused = "That code is not right. Enter the code your app shows now; if it is refused again, check that your phone sets its clock automatically."

// renderTOTPEnrol shows the set-up of an authenticator app: the seed as a
// QR code (a data: image, which only this answer's CSP allows) and as text.
func (s *Server) renderTOTPEnrol(c echo.Context, status int, en flow.TOTPEnrolment, p *flow.Problem) error {
	c.Response().Header().Set("Content-Security-Policy", cspTOTPEnrol)
	d := totpEnrolPage{ID: en.Method.ID, Secret: groupSecret(en.Secret),
		QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(en.QRPNG))} // #nosec G203 -- our own PNG, base64
	return s.render(c, status, "totp_enrol", "Set up your authenticator app", d, p)
}

// countryNames names the countries of isos in English with their calling
// codes, "United Kingdom (+44), United States (+1)"; "" for none.
func countryNames(isos []string) string {
	names := make([]string, 0, len(isos))
	for _, iso := range isos {
		name := iso
		if r, err := language.ParseRegion(iso); err == nil {
			if n := display.English.Regions().Name(r); n != "" {
				name = n
			}
		}
		if code, ok := notify.CountryCallingCode(iso); ok {
			name += " (+" + code + ")"
		}
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

// groupSecret writes a base32 seed in groups of four, as apps show them.
func groupSecret(sec string) string {
	var b strings.Builder
	for i, r := range sec {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Server) reauth(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	next, err := s.svc.ReauthSession(c.Request().Context(), sess, formValue(c, "password"), meta(c))
	if err != nil {
		return s.methodsError(c, sess, err)
	}
	c.SetCookie(s.cookie(s.cookieSession, next.ID, 0))
	return s.redirect(c, "/register/methods?notice=reauth_ok")
}

func (s *Server) findMethod(c echo.Context, sess store.Session) (flow.MethodView, error) {
	ms, err := s.svc.Methods(c.Request().Context(), sess)
	if err != nil {
		return flow.MethodView{}, err
	}
	for _, m := range ms {
		if m.ID == c.Param("id") {
			return m, nil
		}
	}
	return flow.MethodView{}, flow.NewProblem(flow.CodeMethodNotFound, nil)
}

func (s *Server) verifyMethodPage(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	m, err := s.findMethod(c, sess)
	if err != nil {
		return err
	}
	if m.Verified {
		return s.redirect(c, "/register/methods?notice=method_ok")
	}
	return s.render(c, http.StatusOK, "verify_method", "Confirm your method", m, nil)
}

func (s *Server) verifyMethod(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	m, err := s.findMethod(c, sess)
	if err != nil {
		return err
	}
	if _, err := s.svc.VerifyMethod(c.Request().Context(), sess, m.ID, formValue(c, "code"), meta(c)); err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 {
			return p
		}
		if m.Type == flow.MethodTOTP && p.Code == flow.CodeInvalidCode {
			q := *p
			q.Text = appCodeRefused
			// the set-up again, QR code and key, in this answer to the
			// session's own post: one slip does not mean starting over
			if en, err := s.svc.TOTPEnrolmentAgain(c.Request().Context(), sess, m.ID); err == nil {
				return s.renderTOTPEnrol(c, q.Status, en, &q)
			}
			return s.render(c, q.Status, "verify_method", "Confirm your method", m, &q)
		}
		return s.render(c, p.Status, "verify_method", "Confirm your method", m, p)
	}
	if required, counted, err := s.svc.MethodsNeeded(c.Request().Context(), sess); err == nil && counted < required {
		return s.redirect(c, "/register/methods?notice=verified_more")
	}
	return s.redirect(c, "/register/methods?notice=verified")
}

func (s *Server) resendMethod(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	if err := s.svc.ResendMethodCode(c.Request().Context(), sess, c.Param("id"), meta(c)); err != nil {
		return err
	}
	return s.redirect(c, "/register/methods/"+url.PathEscape(c.Param("id"))+"/verify?notice=code_sent")
}

func (s *Server) removeMethod(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	if err := s.svc.RemoveMethod(c.Request().Context(), sess, c.Param("id"), formValue(c, "password"), meta(c)); err != nil {
		return s.methodsError(c, sess, err)
	}
	return s.redirect(c, "/register/methods?notice=removed")
}

func (s *Server) signOut(c echo.Context) error {
	var err error
	if ck, cerr := c.Cookie(s.cookieSession); cerr == nil {
		err = s.svc.SignOut(c.Request().Context(), ck.Value)
	}
	c.SetCookie(s.cookie(s.cookieSession, "", -1))
	if err != nil {
		return err // the store is down: say so rather than "signed out"
	}
	return s.redirect(c, "/")
}

// ---------------------------------------------------------------- reset and unlock pages

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
	// whether there was a lockout to clear, read before it is cleared
	// (only after the proofs: FlowLocked refuses before)
	locked, lerr := s.svc.FlowLocked(c.Request().Context(), f.ID)
	if err := s.svc.CompleteFlow(c.Request().Context(), store.FlowUnlock, f.ID, "", meta(c)); err != nil {
		p := flow.AsProblem(err)
		if p.Code == flow.CodeNotVerified || p.Code == flow.CodeMethodKindRequired {
			return s.redirect(c, "/unlock/methods")
		}
		return p
	}
	c.SetCookie(s.cookie(s.cookieFlow, "", -1))
	if lerr == nil && !locked {
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

// ---------------------------------------------------------------- change

type changePage struct {
	Username string
	Rules    flow.PasswordRules
}

func (s *Server) changePage(c echo.Context) error {
	return s.render(c, http.StatusOK, "change", "Change your password", changePage{Rules: s.svc.GeneralPasswordRules(c.Request().Context())}, nil)
}

func (s *Server) change(c echo.Context) error {
	username := formValue(c, "username")
	var err error
	if formValue(c, "new_password") != formValue(c, "confirm") {
		p := flow.NewProblem(flow.CodePasswordRejected, nil)
		p.Violations = []flow.Violation{{Code: "mismatch", Message: "The two new passwords are not the same."}}
		err = p
	} else {
		err = s.svc.Change(c.Request().Context(), username, formValue(c, "old_password"), formValue(c, "new_password"), meta(c))
	}
	if err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 && p.Code != flow.CodeUnavailable {
			return p
		}
		return s.render(c, p.Status, "change", "Change your password", changePage{Username: username, Rules: s.svc.GeneralPasswordRules(c.Request().Context())}, p)
	}
	return s.redirect(c, "/change/done") // a reload shows the result, it does not post again
}

func (s *Server) changeDone(c echo.Context) error {
	return s.render(c, http.StatusOK, "done", "Password changed", donePage{"Your password has been changed.", true}, nil)
}
