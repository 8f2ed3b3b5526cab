package gateway

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// The registration pages: sign-in, the methods page, adding, verifying and
// removing a method, re-authentication and sign-out.

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
	// AdminKept: an admin's app or passkey, which another admin removes
	// before a new one is set up
	AdminKept bool
	// Reconfirm: the user is asked to check the methods are still right
	// (policy.reconfirm_days), last confirmed at ConfirmedAt
	Reconfirm   bool
	ConfirmedAt string
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
	for _, t := range s.svc.AvailableMethodTypes(sess) {
		d.CanEmail = d.CanEmail || t == store.MethodEmail
		d.CanSMS = d.CanSMS || t == store.MethodSMS
		d.CanTOTP = d.CanTOTP || t == flow.MethodTOTP
		d.CanPasskey = d.CanPasskey || t == flow.MethodWebAuthn
		d.CanQuestions = d.CanQuestions || t == flow.MethodQuestions
	}
	if sess.Kind == flow.SessionAdminEnrol || sess.Kind == flow.SessionAdminUser {
		// an admin's verified app or passkey is not replaced here (the
		// console's second proof): say so instead of offering it
		for _, m := range ms {
			if m.Verified && (m.Type == flow.MethodTOTP || m.Type == flow.MethodWebAuthn) {
				d.AdminKept, d.CanTOTP, d.CanPasskey = true, false, false
			}
		}
	}
	d.NeedReauth = s.svc.NeedsReauth(sess)
	// the tier's number needs the directory; the page works without it
	// (the line is left out)
	if due, at, err := s.svc.ReconfirmDue(c.Request().Context(), sess); err != nil {
		return methodsPage{}, err
	} else if due {
		d.Reconfirm, d.ConfirmedAt = true, at.UTC().Format("2 January 2006")
	}
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

// reconfirm: POST /register/reconfirm, "my methods are still right".
func (s *Server) reconfirm(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	if err := s.svc.Reconfirm(c.Request().Context(), sess, meta(c)); err != nil {
		return s.methodsError(c, sess, err)
	}
	return s.redirect(c, "/register/methods?notice=reconfirmed")
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
