package gateway

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// Pages and API calls of security questions (see questions.go).

func init() {
	notices["questions_ok"] = "Your security questions are saved. They are asked at a reset only after another method, never on their own."
}

// maxAnswersInRequest bounds the answers of one request before any work.
const maxAnswersInRequest = 10

// ---------------------------------------------------------------- API

// apiQuestions: GET /api/v1/questions, the questions to choose from.
func (s *Server) apiQuestions(c echo.Context) error {
	if _, err := s.svc.Session(c.Request().Context(), bearer(c)); err != nil {
		return err
	}
	qs, err := s.svc.QuestionSettings()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, qs)
}

// apiSetQuestions: POST /api/v1/methods {type: questions, answers}.
func (s *Server) apiSetQuestions(c echo.Context, sess store.Session, in addMethodIn) error {
	if in.Label != "" {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("only a passkey has a label"))
	}
	if in.Address != "" {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("answers go with type questions and no address"))
	}
	if len(in.Answers) > maxAnswersInRequest {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("too many answers"))
	}
	mv, err := s.svc.SetQuestions(c.Request().Context(), sess, in.Answers, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"id": mv.ID})
}

// apiFlowQuestions: POST /api/v1/reset/questions {flow, method}, the
// questions a flow asks (once another method is proven).
func (s *Server) apiFlowQuestions(c echo.Context) error {
	var in struct{ Flow, Method string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	qs, ok, err := s.svc.FlowQuestions(c.Request().Context(), apiKind(c), in.Flow, in.Method, meta(c))
	if err != nil {
		return err
	}
	if !ok {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("not a security questions method of the flow"))
	}
	return c.JSON(http.StatusOK, map[string]any{"questions": append([]flow.Question{}, qs...)})
}

// ---------------------------------------------------------------- registration pages

type questionRow struct {
	N        int
	Selected string
	Custom   string
}

type questionsPageData struct {
	Questions   []flow.Question
	Rows        []questionRow
	AllowCustom bool
	Ask         int
	Replace     bool
}

// questionsData builds the page; chosen are the questions picked before
// (never the answers: they are not shown back, not even after an error).
func (s *Server) questionsData(c echo.Context, sess store.Session, chosen []questionRow) (questionsPageData, error) {
	qs, err := s.svc.QuestionSettings()
	if err != nil {
		return questionsPageData{}, err
	}
	d := questionsPageData{Questions: qs.Questions, AllowCustom: qs.AllowCustom, Ask: qs.Ask}
	for i := range qs.Required {
		r := questionRow{N: i + 1}
		if i < len(chosen) {
			r.Selected, r.Custom = chosen[i].Selected, chosen[i].Custom
		} else if i < len(qs.Questions) {
			r.Selected = qs.Questions[i].ID
		}
		d.Rows = append(d.Rows, r)
	}
	if ms, err := s.svc.Methods(c.Request().Context(), sess); err == nil {
		d.Replace = slices.ContainsFunc(ms, func(m flow.MethodView) bool { return m.Type == flow.MethodQuestions })
	}
	return d, nil
}

func (s *Server) questionsPage(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	if s.svc.NeedsReauth(sess) {
		return s.redirect(c, "/register/methods") // the password again first
	}
	d, err := s.questionsData(c, sess, nil)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "questions", "Set up security questions", d, nil)
}

func (s *Server) setQuestions(c echo.Context) error {
	sess, err := s.sessionFromCookie(c)
	if err != nil {
		return s.redirect(c, "/register")
	}
	n := s.svc.QuestionOptions().Required
	answers := make([]flow.Answer, 0, n)
	rows := make([]questionRow, 0, n)
	for i := range n {
		q, custom := formValue(c, "question-"+strconv.Itoa(i)), strings.TrimSpace(formValue(c, "custom-"+strconv.Itoa(i)))
		rows = append(rows, questionRow{N: i + 1, Selected: q, Custom: custom})
		if custom != "" && s.svc.QuestionOptions().AllowCustom {
			q = custom
		}
		answers = append(answers, flow.Answer{Question: q, Answer: formValue(c, "answer-"+strconv.Itoa(i))})
	}
	if _, err := s.svc.SetQuestions(c.Request().Context(), sess, answers, meta(c)); err != nil {
		p := flow.AsProblem(err)
		if p.Code == flow.CodeReauthRequired {
			return s.redirect(c, "/register/methods")
		}
		if p.Status >= 500 {
			return p
		}
		d, derr := s.questionsData(c, sess, rows)
		if derr != nil {
			return derr
		}
		return s.render(c, p.Status, "questions", "Set up security questions", d, p)
	}
	return s.redirect(c, "/register/methods?notice=questions_ok")
}

// ---------------------------------------------------------------- reset pages

type flowQuestionsPage struct {
	Kind, ID  string
	Questions []flow.Question
	// NotYet: no other method is proven yet, so nothing is asked
	NotYet bool
}

func (s *Server) flowQuestionsPage(c echo.Context, kind string, f flow.FlowView, d flowCodePage, p *flow.Problem) error {
	qs, _, err := s.svc.FlowQuestions(c.Request().Context(), kind, f.ID, d.ID, meta(c))
	if err == nil && len(qs) == 0 {
		// already answered in this flow: nothing to ask (the methods page
		// leads on, to the password once nothing remains)
		return s.redirect(c, "/"+kind+"/methods")
	}
	page := flowQuestionsPage{Kind: kind, ID: d.ID, Questions: qs}
	status := http.StatusOK
	if err != nil {
		ep := flow.AsProblem(err)
		if ep.Code != flow.CodeNotVerified {
			return ep
		}
		page.NotYet = true
	}
	if p != nil {
		status = p.Status
	}
	return s.render(c, status, "flow_questions", stepTitle(kind, f), page, p)
}

// flowVerifyAnswers takes the form's answer-<question id> fields as the
// answers; the service refuses them unless they answer exactly the
// questions asked (asking the questions again here would audit them as
// asked once more).
func (s *Server) flowVerifyAnswers(c echo.Context, kind string, f flow.FlowView, d flowCodePage) error {
	var answers []flow.Answer
	for k := range c.Request().PostForm {
		if id, ok := strings.CutPrefix(k, "answer-"); ok {
			answers = append(answers, flow.Answer{Question: id, Answer: formValue(c, k)})
		}
	}
	if len(answers) > maxAnswersInRequest {
		return s.flowQuestionsPage(c, kind, f, d, flow.NewProblem(flow.CodeInvalidRequest, errors.New("too many answers")))
	}
	nf, err := s.svc.VerifyFlowAnswers(c.Request().Context(), kind, f.ID, d.ID, answers, meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Code == flow.CodeFlowExpired {
			return s.flowExpired(c, kind)
		}
		if p.Status >= 500 {
			return p
		}
		return s.flowQuestionsPage(c, kind, f, d, p)
	}
	c.SetCookie(s.cookie(s.cookieFlow, kind+"."+nf.ID, 0)) // a new id once a method is proven
	if nf.Remaining > 0 {
		return s.redirect(c, "/"+kind+"/methods?notice=method_ok")
	}
	return s.redirect(c, "/"+kind+"/"+finalStep(kind))
}
