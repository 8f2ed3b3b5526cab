package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// cspPasskey is cspPages for the pages that run a passkey ceremony: they
// load the gateway's one script, /static/webauthn.js, which calls
// navigator.credentials and posts the answer in a form. 'self' only: no
// inline script, no eval, no other origin. Every other answer keeps
// cspPages (no script at all).
// #nosec G101 -- a Content-Security-Policy, not a credential
const cspPasskey = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// passkeyPage is what the two passkey pages show. Options go into a data
// attribute (escaped by html/template), never into an inline script.
type passkeyPage struct {
	// Mode is "create" (registration) or "get" (reset, unlock).
	Mode    string
	Action  string
	Kind    string
	ID      string
	Options string
	// Token names the ceremony of a console sign-in
	Token string
}

func (s *Server) renderPasskey(c echo.Context, status int, title string, d passkeyPage, p *flow.Problem) error {
	c.Response().Header().Set("Content-Security-Policy", cspPasskey)
	return s.render(c, status, "passkey", title, d, p)
}

// passkeyForm is form for the posts that carry a passkey's answer: the
// same checks, with room for the credential field (a JSON object larger
// than other fields).
func (s *Server) passkeyForm(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("not a form"))
		}
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return flow.NewProblem(flow.CodeTooLarge, nil)
			}
			return flow.NewProblem(flow.CodeInvalidRequest, err)
		}
		cred := r.PostForm["credential"]
		if len(cred) > 1 || (len(cred) == 1 && len(cred[0]) > flow.MaxCredentialJSON) {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("bad credential field"))
		}
		rest := url.Values{}
		for k, v := range r.PostForm {
			if k != "credential" {
				rest[k] = v
			}
		}
		if err := strictValues(rest); err != nil {
			return err
		}
		if r.URL.Query().Has("_csrf") {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("token in query"))
		}
		if err := s.checkCSRF(c); err != nil {
			return err
		}
		return h(c)
	}
}

// ---------------------------------------------------------------- registration pages

// beginPasskeyPage answers the "add a passkey" form post with the page
// that creates it (no redirect: the challenge is in this answer only).
func (s *Server) beginPasskeyPage(c echo.Context, sess store.Session) error {
	pc, err := s.svc.BeginPasskey(c.Request().Context(), sess, formValue(c, "label"), meta(c))
	if err != nil {
		return s.methodsError(c, sess, err)
	}
	return s.renderPasskey(c, http.StatusOK, "Add a passkey", passkeyPage{Mode: "create",
		Action: "/register/methods/" + url.PathEscape(pc.MethodID) + "/passkey", ID: pc.MethodID, Options: string(pc.Options)}, nil)
}

func (s *Server) finishPasskey(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	if _, err := s.svc.FinishPasskey(c.Request().Context(), sess, c.Param("id"), []byte(formValue(c, "credential")), meta(c)); err != nil {
		return s.methodsError(c, sess, err)
	}
	return s.redirect(c, "/register/methods?notice=passkey_added")
}

// ---------------------------------------------------------------- reset and unlock pages

// offeredType is the type of one method offered in a flow ("" if none).
func offeredType(f flow.FlowView, id string) string {
	for _, m := range f.Methods {
		if m.ID == id {
			return m.Type
		}
	}
	return ""
}

// flowPasskeyPage asks for new assertion options and shows the page that
// uses them.
func (s *Server) flowPasskeyPage(c echo.Context, kind string, f flow.FlowView, method string, p *flow.Problem) error {
	pc, err := s.svc.SendFlowChallenge(c.Request().Context(), kind, f.ID, method, meta(c))
	if err != nil {
		if flow.AsProblem(err).Code == flow.CodeFlowExpired {
			return s.flowExpired(c, kind)
		}
		return err
	}
	if pc == nil {
		return s.redirect(c, "/"+kind+"/methods")
	}
	status := http.StatusOK
	if p != nil {
		status = p.Status
	}
	return s.renderPasskey(c, status, stepTitle(kind, f), passkeyPage{Mode: "get", Action: "/" + kind + "/passkey", Kind: kind,
		ID: method, Options: string(pc.Options)}, p)
}

func (s *Server) flowPasskey(c echo.Context) error {
	kind := kindOf(c)
	f, err := s.flowFromCookie(c, kind)
	if err != nil {
		return s.flowExpired(c, kind)
	}
	method := formValue(c, "method")
	nf, err := s.svc.VerifyFlowPasskey(c.Request().Context(), kind, f.ID, method, []byte(formValue(c, "credential")), meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		switch {
		case p.Code == flow.CodeFlowExpired:
			return s.flowExpired(c, kind)
		case p.Status >= 500 || offeredType(f, method) != flow.MethodWebAuthn:
			return p
		}
		// the ceremony is used up: a new one, with the error
		return s.flowPasskeyPage(c, kind, f, method, p)
	}
	c.SetCookie(s.cookie(s.cookieFlow, kind+"."+nf.ID, 0)) // a new id once a method is proven
	if nf.Remaining > 0 {
		return s.redirect(c, "/"+kind+"/methods?notice=method_ok")
	}
	return s.redirect(c, "/"+kind+"/"+finalStep(kind))
}

// ---------------------------------------------------------------- API

// passkeyCredential reads the credential field of an API body: absent, or
// one JSON object.
func passkeyCredential(raw json.RawMessage) ([]byte, bool, error) {
	if len(raw) == 0 {
		return nil, false, nil
	}
	body, ok := flow.CredentialJSON(raw)
	if !ok {
		return nil, true, flow.NewProblem(flow.CodeInvalidRequest, errors.New("credential must be a JSON object"))
	}
	return body, true, nil
}

// apiAddPasskey: POST /api/v1/methods {type: webauthn, label}.
func (s *Server) apiAddPasskey(c echo.Context, sess store.Session, in addMethodIn) error {
	if in.Answers != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("a passkey has no answers"))
	}
	if in.Address != "" {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("a passkey has no address"))
	}
	if err := field(in.Label, 4*flow.PasskeyLabelMax); err != nil {
		return err
	}
	pc, err := s.svc.BeginPasskey(c.Request().Context(), sess, in.Label, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"id": pc.MethodID, "options": pc.Options})
}
