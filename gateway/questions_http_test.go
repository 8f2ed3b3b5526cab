package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// TestTierRequiringAStrongKind: a tier requiring an authenticator app (or a
// passkey) refuses email + SMS and accepts email + the app.
func TestTierRequiringAStrongKind(t *testing.T) {
	tb, clk, _ := qBed(t, func(o *flow.Options) {
		o.Eligibility.Tiers = []policy.Tier{{Groups: []string{"cn=admins"}, MethodsRequired: 2, RequireOneOf: []string{"totp", "webauthn"}}}
	})
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "alice", "alice@home.example")
	sms := tb.addPhone(t, sess, "+447700900123")
	qm := tb.setGoodQuestions(t, sess)
	f, err := tb.svc.StartFlow(ctx, "reset", "alice", flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Required != 1 || f.Needs != nil {
		t.Fatalf("the tier shows before a proof: %+v", f)
	}
	f = tb.proveEmail(t, f, emailID, "alice@home.example")
	if !slices.Equal(f.Needs, []string{"totp", "webauthn"}) {
		t.Fatalf("after the email, needs %v, want [totp webauthn]", f.Needs)
	}
	if got := kindsSentence(f.Needs); got != "an authenticator app or a passkey" {
		t.Fatalf("kinds named %q", got)
	}
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, sms.ID, flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	if f, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, sms.ID, tb.inbox.LastCode(t, "+447700900123"), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	if f.Remaining != 1 {
		t.Fatalf("email and SMS leave %d to verify, want 1 (an app)", f.Remaining)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", flow.Meta{}), flow.CodeMethodKindRequired)
	// questions do not stand in for the app
	qs, _, _ := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, flow.Meta{})
	if f, err = tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, reply(qs, flowtest.TypedAnswers), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	if f.Remaining != 1 {
		t.Fatalf("questions count for the tier: remaining %d", f.Remaining)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", flow.Meta{}), flow.CodeMethodKindRequired)
	if tb.dir.Writes() != 0 {
		t.Fatal("a password was written")
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.completed"}); evs[0].Outcome != flow.CodeMethodKindRequired {
		t.Fatalf("audit %+v", evs[0])
	}
	// email + app: accepted
	en, err := tb.svc.EnrolTOTP(ctx, sess, flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, en.Method.ID, flowtest.CodeAt(t, en.Secret, clk.Now()), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	f, _ = tb.svc.StartFlow(ctx, "reset", "alice", flow.Meta{})
	f = tb.proveEmail(t, f, emailID, "alice@home.example")
	if f.Remaining != 1 {
		t.Fatalf("after the email: %+v", f)
	}
	if f, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, en.Method.ID, flowtest.CodeAt(t, en.Secret, clk.Now()), flow.Meta{}); err != nil || f.Remaining != 0 || f.Needs != nil {
		t.Fatalf("after the app: %v %+v", err, f)
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	// carol, outside the tier, still resets with email alone
	_, carolEmail := tb.enroll(t, "carol", "carol@home.example")
	g, _ := tb.svc.StartFlow(ctx, "reset", "carol", flow.Meta{})
	g = tb.proveEmail(t, g, carolEmail, "carol@home.example")
	if err := tb.svc.CompleteFlow(ctx, "reset", g.ID, "Brand-New-Pass-43", flow.Meta{}); err != nil {
		t.Fatal(err)
	}
}

// TestQuestionsDoNotCountInStrongTier: in a two-method tier that requires
// an app or a passkey, an app and security questions are one method, not
// two: the API and the pages say one more is needed and name the kinds that
// would count (with no such method registered, the page says the user
// cannot finish here), the password rules and the completion are refused;
// an app and an email are enough.
func TestQuestionsDoNotCountInStrongTier(t *testing.T) {
	tb, clk, _ := qBed(t, func(o *flow.Options) {
		o.Eligibility.Tiers = []policy.Tier{{Groups: []string{"cn=admins"}, MethodsRequired: 2, RequireOneOf: []string{"totp", "webauthn"}}}
		o.Limits.CodeFailuresPerAccount = 50
	})
	ctx := context.Background()
	sess, en := tb.enrolApp(t, clk, "alice")
	qm := tb.setGoodQuestions(t, sess)
	clk.Add(30 * time.Second)

	// the API
	c := newClient(t, tb)
	w := c.api("POST", "/api/v1/reset", `{"username":"alice"}`, nil)
	var start struct {
		Flow     string
		Required int
		Methods  []flow.Offered
	}
	if json.Unmarshal(w.Body.Bytes(), &start) != nil || w.Code != 200 || start.Required != 1 || len(start.Methods) != 2 {
		t.Fatalf("start: %d %s", w.Code, w.Body)
	}
	type verified struct {
		Flow      string
		Remaining int
		Needs     []string
	}
	var v verified
	w = c.api("POST", "/api/v1/reset/verify", `{"flow":"`+start.Flow+`","method":"`+en.Method.ID+`","code":"`+flowtest.CodeAt(t, en.Secret, clk.Now())+`"}`, nil)
	if json.Unmarshal(w.Body.Bytes(), &v) != nil || w.Code != 200 || v.Remaining != 1 || !slices.Equal(v.Needs, []string{"email", "sms"}) {
		t.Fatalf("after the app: %d %s, want remaining 1 and needs [email sms]", w.Code, w.Body)
	}
	w = c.api("POST", "/api/v1/reset/questions", `{"flow":"`+v.Flow+`","method":"`+qm.ID+`"}`, nil)
	var asked struct{ Questions []flow.Question }
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &asked) != nil {
		t.Fatalf("questions: %d %s", w.Code, w.Body)
	}
	b, _ := json.Marshal(map[string]any{"flow": v.Flow, "method": qm.ID, "answers": reply(asked.Questions, flowtest.TypedAnswers)})
	w = c.api("POST", "/api/v1/reset/verify", string(b), nil)
	if json.Unmarshal(w.Body.Bytes(), &v) != nil || w.Code != 200 || v.Remaining != 1 || !slices.Equal(v.Needs, []string{"email", "sms"}) {
		t.Fatalf("after the app and the questions: %d %s, want remaining 1 and needs [email sms]", w.Code, w.Body)
	}
	if w = c.api("POST", "/api/v1/reset/policy", `{"flow":"`+v.Flow+`"}`, nil); w.Code != 409 || !strings.Contains(w.Body.String(), "not_verified") {
		t.Fatalf("password rules: %d %s", w.Code, w.Body)
	}
	if w = c.api("POST", "/api/v1/reset/complete", `{"flow":"`+v.Flow+`","password":"Brand-New-Pass-42"}`, nil); w.Code != 409 || !strings.Contains(w.Body.String(), "not_verified") {
		t.Fatalf("complete: %d %s", w.Code, w.Body)
	}
	if tb.dir.Writes() != 0 {
		t.Fatal("a password was written")
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.completed"}); len(evs) != 1 || evs[0].Outcome != "not_verified" {
		t.Fatalf("audit %+v", evs)
	}

	// the pages
	clk.Add(30 * time.Second)
	p := newClient(t, tb)
	p.post("/reset", "/reset", url.Values{"username": {"alice"}}, nil)
	w = p.post("/reset/methods", "/reset/send", url.Values{"method": {en.Method.ID}}, nil)
	if w = p.post(w.Header().Get("Location"), "/reset/verify", url.Values{"method": {en.Method.ID}, "code": {flowtest.CodeAt(t, en.Secret, clk.Now())}}, nil); w.Header().Get("Location") != "/reset/methods?notice=method_ok" {
		t.Fatalf("after the app: %d %v", w.Code, w.Header())
	}
	const needs = "Your account must also verify <strong>an email address or a mobile phone number</strong>"
	const cannot = "You have not registered an email address or a mobile phone number, so you cannot finish here."
	if mp := p.get("/reset/methods").Body.String(); !strings.Contains(mp, needs) || !strings.Contains(mp, cannot) {
		t.Fatalf("methods page after the app:\n%s", mp)
	}
	// the page offers nothing more (nothing it could offer would do):
	// the questions, posted anyway, do not count either
	if mp := p.get("/reset/methods").Body.String(); strings.Contains(mp, `value="`+qm.ID+`"`) {
		t.Fatalf("methods page offers the questions, which cannot finish:\n%s", mp)
	}
	w = p.post("/reset", "/reset/send", url.Values{"method": {qm.ID}}, nil)
	qpage := w.Header().Get("Location")
	form := url.Values{"method": {qm.ID}}
	for _, id := range regexp.MustCompile(`name="answer-([0-9a-z]+)"`).FindAllStringSubmatch(p.get(qpage).Body.String(), -1) {
		for _, q := range tb.svc.AdminQuestions() {
			if q.ID == id[1] {
				form.Set("answer-"+q.ID, flowtest.TypedAnswers[q.Text])
			}
		}
	}
	if w = p.post(qpage, "/reset/verify", form, nil); w.Header().Get("Location") != "/reset/methods?notice=method_ok" {
		t.Fatalf("after the questions: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if mp := p.get("/reset/methods").Body.String(); !strings.Contains(mp, needs) || !strings.Contains(mp, cannot) {
		t.Fatalf("methods page after the app and the questions:\n%s", mp)
	}
	if w = p.get("/reset/password"); w.Header().Get("Location") != "/reset/methods" {
		t.Fatalf("password page: %d %v", w.Code, w.Header())
	}

	// with an email: the app and the email are enough
	mv, err := tb.svc.AddMethod(ctx, sess, "email", "alice@home.example", flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, mv.ID, tb.inbox.LastCode(t, "alice@home.example"), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	f, err := tb.svc.StartFlow(ctx, "reset", "alice", flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if f, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, en.Method.ID, flowtest.CodeAt(t, en.Secret, clk.Now()), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	if f.Remaining != 1 || !slices.Equal(f.Needs, []string{"email", "sms"}) {
		t.Fatalf("after the app: %+v", f)
	}
	if mp := tb.srv.flowMethodsData("reset", f); !mp.NeedsOffered {
		t.Fatalf("the email is not offered as what is needed: %+v", mp)
	}
	f = tb.proveEmail(t, f, mv.ID, "alice@home.example")
	if f.Remaining != 0 || f.Needs != nil {
		t.Fatalf("after the app and the email: %+v", f)
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", flow.Meta{}); err != nil {
		t.Fatal(err)
	}
}

// TestAnswersNeverShown: over the API and the pages, answers never come
// back in a response, page, log line, audit event, message or the method
// list, and the stored address is never shown.
func TestAnswersNeverShown(t *testing.T) {
	tb, _, logs := qBed(t, nil)
	ctx := context.Background()
	_, emailID := tb.enroll(t, "carol", "carol@home.example")
	c := newClient(t, tb)
	w := c.api("POST", "/api/v1/session", `{"username":"carol","password":"Carol-Pass1!"}`, nil)
	var sess struct{ Token string }
	json.Unmarshal(w.Body.Bytes(), &sess)
	auth := map[string]string{"Authorization": "Bearer " + sess.Token}
	var bodies []string
	keep := func(s string) string { bodies = append(bodies, s); return s }

	w = c.api("GET", "/api/v1/questions", "", auth)
	var settings flow.QuestionSettings
	if json.Unmarshal(w.Body.Bytes(), &settings) != nil || w.Code != 200 || len(settings.Questions) != 4 || settings.Required != 3 || settings.Ask != 2 {
		t.Fatalf("questions: %d %s", w.Code, w.Body)
	}
	body := func(answers ...string) string {
		var items []string
		for i, a := range answers {
			items = append(items, fmt.Sprintf(`{"question":%q,"answer":%q}`, settings.Questions[i].ID, a))
		}
		return `{"type":"questions","answers":[` + strings.Join(items, ",") + `]}`
	}
	// strict bodies
	for _, bad := range []string{
		`{"type":"questions","address":"x","answers":[]}`,
		`{"type":"email","address":"a@b.example","answers":[]}`,
		`{"type":"questions","answers":[{"question":"q","answer":"a","hint":"x"}]}`,
		`{"type":"questions","answers":"x"}`,
	} {
		if w := c.api("POST", "/api/v1/methods", bad, auth); w.Code != 400 {
			t.Errorf("%s: %d %s", bad, w.Code, w.Body)
		}
	}
	w = c.api("POST", "/api/v1/methods", body("Saffron Teapot", "carol", "Velvet Otter"), auth)
	if w.Code != 422 || !strings.Contains(w.Body.String(), `"code":"weak_answers"`) || !strings.Contains(w.Body.String(), flow.AnswerUsername) {
		t.Fatalf("weak answers: %d %s", w.Code, w.Body)
	}
	keep(w.Body.String())
	w = c.api("POST", "/api/v1/methods", body("Saffron Teapot", "Quartz Meadow", "Velvet Otter"), auth)
	if w.Code != 201 {
		t.Fatalf("set questions: %d %s", w.Code, w.Body)
	}
	keep(w.Body.String())
	list := keep(c.api("GET", "/api/v1/methods", "", auth).Body.String())
	if !strings.Contains(list, `"type":"questions","hint":"Security questions","verified":true`) {
		t.Fatalf("list: %s", list)
	}
	qid := regexp.MustCompile(`"id":"([0-9a-f]+)","type":"questions"`).FindStringSubmatch(list)[1]

	// reset over the API: send answers 202 (nothing sent); the questions
	// are 409 before another proof, then listed; verify takes the answers
	w = c.api("POST", "/api/v1/reset", `{"username":"carol"}`, nil)
	var fl struct{ Flow string }
	json.Unmarshal(w.Body.Bytes(), &fl)
	if w = c.api("POST", "/api/v1/reset/send", `{"flow":"`+fl.Flow+`","method":"`+qid+`"}`, nil); w.Code != 202 || w.Body.Len() != 0 {
		t.Fatalf("send to questions: %d %s", w.Code, w.Body)
	}
	if w = c.api("POST", "/api/v1/reset/questions", `{"flow":"`+fl.Flow+`","method":"`+qid+`"}`, nil); w.Code != 409 || !strings.Contains(w.Body.String(), "not_verified") {
		t.Fatalf("questions before a proof: %d %s", w.Code, w.Body)
	}
	if w = c.api("POST", "/api/v1/reset/questions", `{"flow":"`+fl.Flow+`","method":"`+emailID+`"}`, nil); w.Code != 400 {
		t.Fatalf("questions of an email: %d %s", w.Code, w.Body)
	}
	c.api("POST", "/api/v1/reset/send", `{"flow":"`+fl.Flow+`","method":"`+emailID+`"}`, nil)
	w = c.api("POST", "/api/v1/reset/verify", `{"flow":"`+fl.Flow+`","method":"`+emailID+`","code":"`+tb.inbox.LastCode(t, "carol@home.example")+`"}`, nil)
	json.Unmarshal(w.Body.Bytes(), &fl)
	w = c.api("POST", "/api/v1/reset/questions", `{"flow":"`+fl.Flow+`","method":"`+qid+`"}`, nil)
	var asked struct{ Questions []flow.Question }
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &asked) != nil || len(asked.Questions) != 2 {
		t.Fatalf("send to questions: %d %s", w.Code, w.Body)
	}
	keep(w.Body.String())
	by := map[string]string{settings.Questions[0].Text: "saffron teapot", settings.Questions[1].Text: "QUARTZ MEADOW", settings.Questions[2].Text: "velvet otter"}
	verify := func(code string, answers []flow.Answer) *struct {
		status int
		body   string
	} {
		b, _ := json.Marshal(map[string]any{"flow": fl.Flow, "method": qid, "answers": answers})
		s := string(b)
		if code != "" {
			s = strings.Replace(s, `{"answers"`, `{"code":"`+code+`","answers"`, 1)
		}
		w := c.api("POST", "/api/v1/reset/verify", s, nil)
		keep(w.Body.String())
		return &struct {
			status int
			body   string
		}{w.Code, w.Body.String()}
	}
	wrong := reply(asked.Questions, by)
	wrong[0].Answer = "Cobalt Lantern"
	if r := verify("", wrong); r.status != 422 || !strings.Contains(r.body, "wrong_answers") {
		t.Fatalf("wrong answers: %d %s", r.status, r.body)
	}
	if r := verify("123456", reply(asked.Questions, by)); r.status != 400 {
		t.Fatalf("a code with answers: %d %s", r.status, r.body)
	}
	if r := verify("", reply(asked.Questions, by)[:1]); r.status != 400 {
		t.Fatalf("one answer of two: %d %s", r.status, r.body)
	}
	r := verify("", reply(asked.Questions, by))
	if r.status != 200 || !strings.Contains(r.body, `"remaining":0`) {
		t.Fatalf("right answers: %d %s", r.status, r.body)
	}

	// the registration page after a refusal does not show the answers
	p := newClient(t, tb)
	p.post("/register", "/register", url.Values{"username": {"carol"}, "password": {"Carol-Pass1!"}}, nil)
	page := p.get("/register/questions")
	if page.Code != 200 || !strings.Contains(page.Body.String(), flowtest.Questions[3]) {
		t.Fatalf("questions page: %d %s", page.Code, page.Body)
	}
	form := url.Values{}
	for i, a := range []string{"Juniper Anvil", "1234", "Mossy Harbour"} {
		form.Set(fmt.Sprintf("question-%d", i), settings.Questions[i].ID)
		form.Set(fmt.Sprintf("answer-%d", i), a)
	}
	w = p.post("/register/questions", "/register/questions", form, nil)
	keep(w.Body.String())
	if w.Code != 422 || !strings.Contains(w.Body.String(), "Some answers are too easy to guess") || strings.Contains(w.Body.String(), "Juniper") ||
		strings.Contains(w.Body.String(), "The new password was not accepted") {
		t.Fatalf("refused page: %d %s", w.Code, w.Body)
	}
	form.Set("answer-1", "Tangerine Quay")
	if w = p.post("/register/questions", "/register/questions", form, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/register/methods?notice=questions_ok" {
		t.Fatalf("saved: %d %v", w.Code, w.Header())
	}
	mp := keep(p.get("/register/methods?notice=questions_ok").Body.String())
	if !strings.Contains(mp, "Security questions") || !strings.Contains(mp, "Change security questions") {
		t.Fatalf("methods page:\n%s", mp)
	}
	// the old set is replaced
	if ms, _ := tb.st.ListMethods(ctx, "id-carol"); len(ms) != 2 {
		t.Fatalf("%d methods after replacing the questions", len(ms))
	}
	tb.svc.Close()
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{})
	audit, _ := json.Marshal(evs)
	msgs := fmt.Sprint(tb.rec.Emails(), tb.rec.SMS())
	for _, secret := range []string{"saffron", "quartz", "velvet", "cobalt", "juniper", "tangerine", "mossy"} {
		for what, text := range map[string]string{"the logs": logs.String(), "the audit": string(audit), "a message": msgs, "a response": strings.Join(bodies, "\n")} {
			if strings.Contains(strings.ToLower(text), secret) {
				t.Errorf("an answer (%s) is in %s", secret, what)
			}
		}
	}
	if !strings.Contains(string(audit), `"questions_asked"`) && !strings.Contains(string(audit), `reset.questions_asked`) {
		t.Errorf("asking the questions is not audited")
	}
}

// TestQuestionPagesReset: the reset pages ask the questions after the
// email and lead to the password page.
func TestQuestionPagesReset(t *testing.T) {
	tb, _, _ := qBed(t, nil)
	sess, emailID := tb.enroll(t, "carol", "carol@home.example")
	qm := tb.setGoodQuestions(t, sess)
	b := newClient(t, tb)
	b.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	if mp := b.get("/reset/methods").Body.String(); !strings.Contains(mp, "Answer security questions") {
		t.Fatalf("methods:\n%s", mp)
	}
	// before the email: the page explains, asks nothing
	w := b.post("/reset/methods", "/reset/send", url.Values{"method": {qm.ID}}, nil)
	qpage := w.Header().Get("Location")
	if p := b.get(qpage).Body.String(); !strings.Contains(p, "only after you have verified another method") || strings.Contains(p, flowtest.Questions[0]) {
		t.Fatalf("questions before a proof:\n%s", p)
	}
	w = b.post("/reset/methods", "/reset/send", url.Values{"method": {emailID}}, nil)
	code := tb.inbox.LastCode(t, "carol@home.example")
	b.post(w.Header().Get("Location"), "/reset/verify", url.Values{"method": {emailID}, "code": {code}}, nil)
	p := b.get(qpage).Body.String()
	ids := regexp.MustCompile(`name="answer-([0-9a-z]+)"`).FindAllStringSubmatch(p, -1)
	if len(ids) != 2 {
		t.Fatalf("questions page:\n%s", p)
	}
	form := url.Values{"method": {qm.ID}}
	for _, q := range tb.svc.AdminQuestions() {
		for _, id := range ids {
			if id[1] == q.ID {
				form.Set("answer-"+q.ID, flowtest.TypedAnswers[q.Text])
			}
		}
	}
	wrong := url.Values{"method": {qm.ID}}
	for k, v := range form {
		wrong[k] = v
	}
	wrong.Set("answer-"+ids[0][1], "Not It At All")
	// a post asks nothing: only a page that shows the questions is audited
	// as asking them (the page after a refusal shows them again)
	ctx := context.Background()
	asked := func() int {
		evs, err := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.questions_asked"})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	csrf := csrfRE.FindStringSubmatch(p)[1]
	post := func(form url.Values) *httptest.ResponseRecorder {
		form.Set("_csrf", csrf)
		return b.post("", "/reset/verify", form, nil)
	}
	n := asked()
	if w = post(wrong); w.Code != 422 || !strings.Contains(w.Body.String(), "The answers are not right") || strings.Contains(w.Body.String(), "Not It At All") {
		t.Fatalf("wrong answers: %d %s", w.Code, w.Body)
	}
	if asked() != n+1 {
		t.Fatalf("a wrong answer audits the questions as asked %d times, want 1", asked()-n)
	}
	// answers to other questions than those asked, or too few, are refused
	// before anything is spent
	for _, bad := range []url.Values{
		{"method": {qm.ID}, "answer-" + ids[0][1]: {form.Get("answer-" + ids[0][1])}},
		{"method": {qm.ID}, "answer-" + ids[0][1]: {form.Get("answer-" + ids[0][1])}, "answer-" + ids[1][1]: {form.Get("answer-" + ids[1][1])}, "answer-nope": {"Cobalt Lantern"}},
	} {
		if w = post(bad); w.Code != 400 || !strings.Contains(w.Body.String(), "The request was not valid") || !strings.Contains(w.Body.String(), `name="answer-`+ids[0][1]+`"`) {
			t.Fatalf("answers %v: %d %s", bad, w.Code, w.Body)
		}
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.gate"}); len(evs) != 2 {
		t.Fatalf("%d gate events, want the email's and one wrong answer", len(evs))
	}
	n = asked()
	if w = post(form); w.Header().Get("Location") != "/reset/password" {
		t.Fatalf("right answers: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if asked() != n {
		t.Fatalf("the right answers audit the questions as asked %d more times", asked()-n)
	}
	// the questions page of the method now answered asks nothing: it leads
	// to the methods page, which leads to the password
	if w = b.get(qpage); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/reset/methods" {
		t.Fatalf("the questions page once answered: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w = b.get("/reset/methods"); w.Header().Get("Location") != "/reset/password" {
		t.Fatalf("the methods page once answered: %d %v", w.Code, w.Header())
	}
	if asked() != n {
		t.Fatal("the questions page once answered audits the questions as asked")
	}
}
