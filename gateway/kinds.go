package gateway

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// webKind is what the web face does for one kind of recovery method. A
// hook left nil does what a destination does (an email address, a mobile
// number): added by its address, proven by a code sent to it (the
// defaults in webKindOf). A kind with pages of its own declares them in
// webKinds, and nowhere else.
type webKind struct {
	// name is the kind as a sentence names it ("an authenticator app").
	name string
	// addAPI answers POST /api/v1/methods; it checks the fields of in
	// that are not its own.
	addAPI func(s *Server, c echo.Context, sess store.Session, in addMethodIn) error
	// addPage answers the methods page's form post that adds one.
	addPage func(s *Server, c echo.Context, sess store.Session) error
	// choose answers a reset or unlock methods page's choice of one
	// (/send).
	choose func(s *Server, c echo.Context, kind string, f flow.FlowView, method string) error
	// provePage shows the page where one is proven (/code).
	provePage func(s *Server, c echo.Context, kind string, f flow.FlowView, d flowCodePage) error
	// prove answers that page's form post (/verify).
	prove func(s *Server, c echo.Context, kind string, f flow.FlowView, d flowCodePage) error
}

// webKinds are the kinds the web face knows, by method type.
var webKinds = map[string]webKind{
	store.MethodEmail: {name: "an email address"},
	store.MethodSMS:   {name: "a mobile phone number"},
	flow.MethodTOTP: {name: "an authenticator app",
		addAPI:  (*Server).apiEnrolTOTP,
		addPage: (*Server).enrolTOTP},
	flow.MethodWebAuthn: {name: "a passkey",
		addAPI:  (*Server).apiAddPasskey,
		addPage: (*Server).beginPasskeyPage,
		choose: func(s *Server, c echo.Context, kind string, f flow.FlowView, method string) error {
			return s.flowPasskeyPage(c, kind, f, method, nil)
		}},
	flow.MethodQuestions: {name: "security questions",
		addAPI: (*Server).apiSetQuestions,
		provePage: func(s *Server, c echo.Context, kind string, f flow.FlowView, d flowCodePage) error {
			return s.flowQuestionsPage(c, kind, f, d, nil)
		},
		prove: (*Server).flowVerifyAnswers},
}

// webKindOf is the kind of method type typ, its nil hooks set to what a
// destination does; an unknown type is handled as a destination (flow
// refuses it).
func webKindOf(typ string) webKind {
	k := webKinds[typ]
	if k.addAPI == nil {
		k.addAPI = (*Server).apiAddAddress
	}
	if k.addPage == nil {
		k.addPage = (*Server).addAddress
	}
	if k.choose == nil {
		k.choose = (*Server).flowSendCode
	}
	if k.provePage == nil {
		k.provePage = (*Server).flowCodeForm
	}
	if k.prove == nil {
		k.prove = (*Server).flowVerifyCode
	}
	return k
}

// addMethodIn is the body of POST /api/v1/methods.
type addMethodIn struct {
	Type, Address, Label string
	Answers              []flow.Answer
}

// noLabelNorAnswers refuses what only a passkey (a label) or security
// questions (answers) carry.
func (in addMethodIn) noLabelNorAnswers() error {
	if in.Label != "" {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("only a passkey has a label"))
	}
	if in.Answers != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("answers go with type questions and no address"))
	}
	return nil
}

// apiAddAddress adds a destination and sends a code to it.
func (s *Server) apiAddAddress(c echo.Context, sess store.Session, in addMethodIn) error {
	if err := in.noLabelNorAnswers(); err != nil {
		return err
	}
	mv, err := s.svc.AddMethod(c.Request().Context(), sess, in.Type, in.Address, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"id": mv.ID})
}
