package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// Security questions against the built binary: registration over the API
// (trivial answers refused), a reset with email and questions, wrong
// answers until the account's budget is spent, a tier that requires an
// authenticator app refusing email and SMS, and the app with questions (not
// two methods there), and no answer in the logs, the audit or the
// database. The pages in Chromium: questions_browser_test.go.

func TestQuestionsOpenLDAP(t *testing.T) {
	parallel(t)
	runQuestionsSuite(t, dirtest.StartOpenLDAP(t))
}

func TestQuestionsActiveDirectory(t *testing.T) {
	parallel(t)
	runQuestionsSuite(t, dirtest.StartSamba(t))
}

var e2eQuestions = []string{
	"What was the name of your first pet?",
	"In what town or city was your first job?",
	"What was the name of the street you grew up on?",
	"What was the first concert you went to?",
}

// questionsParams: email, SMS, apps and questions; the sspr-admins tier
// requires an app (or a passkey); eight tries of codes per hour.
func questionsParams() params {
	list, _ := json.Marshal(e2eQuestions)
	return params{
		Methods: "email, sms, totp, questions",
		Extra:   "  questions:\n    list: " + string(list) + "\n    required: 3\n    ask: 2\n",
		Tier:    "      require_one_of: [totp, webauthn]\n",
		Limits:  "limits:\n  code_failures_per_account: 8\n",
	}
}

type question struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// answersSet are one user's answers by question text: as registered, and
// as typed at the reset (other case, spacing, full-width and decomposed
// characters: the same once normalised).
type answersSet struct{ registered, typed map[string]string }

func answersFor(prefix string) answersSet {
	return answersSet{
		registered: map[string]string{
			e2eQuestions[0]: "  Ｆｌｕｆｆｙ " + prefix + " ",
			e2eQuestions[1]: "Zürich " + prefix,
			e2eQuestions[2]: "Acacia Avenue " + prefix,
		},
		typed: map[string]string{
			e2eQuestions[0]: "FLUFFY   " + strings.ToUpper(prefix),
			e2eQuestions[1]: "zu\u0308rich " + prefix,
			e2eQuestions[2]: "acacia avenue " + prefix,
		},
	}
}

// addQuestions registers the first three listed questions for token.
func (e *env) addQuestions(token string, a answersSet) string {
	e.t.Helper()
	r := e.must(200, e.api("GET", "/api/v1/questions", token, nil), "list questions")
	var qs struct {
		Questions []question `json:"questions"`
		Required  int        `json:"required"`
		Ask       int        `json:"ask"`
	}
	if err := json.Unmarshal(r.Body, &qs); err != nil || len(qs.Questions) != 4 || qs.Required != 3 || qs.Ask != 2 {
		e.t.Fatalf("questions: %s", r.Body)
	}
	var answers []map[string]string
	for _, q := range qs.Questions[:3] {
		answers = append(answers, map[string]string{"question": q.ID, "answer": a.registered[q.Text]})
	}
	r = e.must(201, e.api("POST", "/api/v1/methods", token, map[string]any{"type": "questions", "answers": answers}), "add questions")
	return r.str("id")
}

// asked lists the flow's questions (once another method is verified).
func (e *env) asked(f flow, method string) []question {
	e.t.Helper()
	r := e.must(200, e.api("POST", "/api/v1/reset/questions", "", map[string]string{"flow": f.ID, "method": method}), "questions asked")
	var out struct {
		Questions []question `json:"questions"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || len(out.Questions) != 2 {
		e.t.Fatalf("questions asked: %s", r.Body)
	}
	return out.Questions
}

// answer submits answers (by question text) for the flow's questions.
func (e *env) answer(f *flow, method string, qs []question, by map[string]string) resp {
	e.t.Helper()
	var answers []map[string]string
	for _, q := range qs {
		answers = append(answers, map[string]string{"question": q.ID, "answer": by[q.Text]})
	}
	r := e.api("POST", "/api/v1/reset/verify", "", map[string]any{"flow": f.ID, "method": method, "answers": answers})
	if r.Status == 200 {
		f.ID = r.str("flow")
		e.secrets = append(e.secrets, f.ID)
	}
	return r
}

func questionsOf(t testing.TB, f flow) string {
	t.Helper()
	for _, m := range f.Methods {
		if m["type"] == "questions" {
			if m["hint"] != "Security questions" {
				t.Fatalf("hint %v", m["hint"])
			}
			return m["id"].(string)
		}
	}
	t.Fatalf("no security questions offered: %v", f.Methods)
	return ""
}

func runQuestionsSuite(t *testing.T, srv *dirtest.Server) {
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, questionsParams())
	carol := answersFor("kestrel")
	var carolEmail string

	t.Run("register questions over the API, trivial answers refused", func(t *testing.T) {
		e.t = t
		carolEmail, _ = e.register("carol", "carol.home@example.net", "")
		token := e.signIn("carol")
		r := e.must(200, e.api("GET", "/api/v1/questions", token, nil), "list questions")
		var qs struct {
			Questions []question `json:"questions"`
		}
		json.Unmarshal(r.Body, &qs)
		trivial := []map[string]string{
			{"question": qs.Questions[0].ID, "answer": "Carol"},
			{"question": qs.Questions[1].ID, "answer": "n/a"},
			{"question": qs.Questions[2].ID, "answer": "Distinct Enough"},
		}
		r = e.api("POST", "/api/v1/methods", token, map[string]any{"type": "questions", "answers": trivial})
		if r.Status != 422 || r.errCode() != "weak_answers" {
			t.Fatalf("trivial answers: %d %s", r.Status, r.Body)
		}
		if v := violations(r); len(v) != 2 || v[0] != "answer_is_username" || v[1] != "answer_common" {
			t.Fatalf("violations %v", v)
		}
		// unknown fields and answers for another type are refused
		if r := e.api("POST", "/api/v1/methods", token, map[string]any{"type": "questions", "answers": []map[string]string{{"question": "x", "answer": "y", "hint": "z"}}}); r.Status != 400 {
			t.Fatalf("unknown field: %d %s", r.Status, r.Body)
		}
		if r := e.api("POST", "/api/v1/methods", token, map[string]any{"type": "email", "address": "x@example.net", "answers": []any{}}); r.Status != 400 {
			t.Fatalf("answers with an email: %d %s", r.Status, r.Body)
		}
		id := e.addQuestions(token, carol)
		r = e.must(200, e.api("GET", "/api/v1/methods", token, nil), "list")
		if !strings.Contains(string(r.Body), `"id":"`+id+`","type":"questions","hint":"Security questions","verified":true`) {
			t.Fatalf("methods: %s", r.Body)
		}
	})

	t.Run("reset with email and questions", func(t *testing.T) {
		e.t = t
		f, _ := e.startReset("carol")
		qid := questionsOf(t, f)
		// nothing to send; the questions only after another proof
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": qid}), "send to questions")
		if r := e.api("POST", "/api/v1/reset/questions", "", map[string]string{"flow": f.ID, "method": qid}); r.Status != 409 || r.errCode() != "not_verified" {
			t.Fatalf("questions before a proof: %d %s", r.Status, r.Body)
		}
		if r := e.answer(&f, qid, []question{{ID: "x"}}, nil); r.Status != 409 {
			t.Fatalf("answers before a proof: %d %s", r.Status, r.Body)
		}
		r := e.must(200, e.verifyByEmail(&f, carolEmail, "carol.home@example.net"), "verify email")
		if r.JSON["remaining"].(float64) != 0 {
			t.Fatalf("after the email: %s", r.Body)
		}
		qs := e.asked(f, qid)
		if again := e.asked(f, qid); again[0] != qs[0] || again[1] != qs[1] {
			t.Fatalf("the questions changed: %v then %v", qs, again)
		}
		r = e.must(200, e.answer(&f, qid, qs, carol.typed), "answers")
		if v, _ := r.JSON["verified"].([]any); len(v) != 2 {
			t.Fatalf("verified %s", r.Body)
		}
		e.must(200, e.complete(f, "Saffron-Harbour-Kite-58"), "complete")
		if err := srv.UserBind("carol", "Saffron-Harbour-Kite-58"); err != nil {
			t.Fatalf("the new password does not bind: %v", err)
		}
	})

	t.Run("wrong answers spend the budget, then right answers fail too", func(t *testing.T) {
		e.t = t
		bob := answersFor("heron")
		emailID, _ := e.register("bob", "bob.home@example.net", "") // right: not counted
		e.addQuestions(e.signIn("bob"), bob)
		f, _ := e.startReset("bob")
		qid := questionsOf(t, f)
		e.must(200, e.verifyByEmail(&f, emailID, "bob.home@example.net"), "verify email") // right: not counted
		qs := e.asked(f, qid)
		wrong := map[string]string{}
		for k, v := range bob.typed {
			wrong[k] = v
		}
		wrong[qs[1].Text] = "Not The Answer"
		for i := range 8 { // 1 to 8 of the budget of 8 wrong tries
			if r := e.answer(&f, qid, qs, wrong); r.Status != 422 || r.errCode() != "wrong_answers" {
				t.Fatalf("wrong answers %d: %d %s", i, r.Status, r.Body)
			}
		}
		if again := e.asked(f, qid); again[0] != qs[0] || again[1] != qs[1] {
			t.Fatalf("the questions changed after wrong answers")
		}
		if r := e.answer(&f, qid, qs, bob.typed); r.Status != 422 || r.errCode() != "wrong_answers" {
			t.Fatalf("right answers over the budget: %d %s", r.Status, r.Body)
		}
		blocked, failed := 0, 0
		for _, ev := range e.auditEvents() {
			if ev["event"] == "blocked" && ev["outcome"] == "code_budget" {
				blocked++
			}
			if ev["event"] == "reset.gate" && ev["outcome"] == "failed" && ev["type"] == "questions" {
				failed++
			}
		}
		if blocked < 1 || failed != 8 {
			t.Fatalf("audit: %d blocked, %d failed gates", blocked, failed)
		}
	})

	t.Run("a tier requiring an authenticator app refuses email and SMS, and the app with questions", func(t *testing.T) {
		e.t = t
		emailID, smsID := e.register("alice", "alice.home@example.net", "+44 7700 900001")
		f, _ := e.startReset("alice")
		if f.Required != 1 {
			t.Fatalf("the tier shows before a proof: %+v", f)
		}
		r := e.must(200, e.verifyByEmail(&f, emailID, "alice.home@example.net"), "verify email")
		if r.JSON["remaining"].(float64) != 1 {
			t.Fatalf("after the email: %s", r.Body)
		}
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": smsID}), "send sms")
		r = e.must(200, e.verify(&f, smsID, e.smsCode("+447700900001")), "verify sms")
		if r.JSON["remaining"].(float64) != 1 {
			t.Fatalf("email and SMS leave %s, want 1 (an app)", r.Body)
		}
		if r := e.complete(f, "Saffron-Harbour-Kite-60"); r.Status != 409 || r.errCode() != "method_kind_required" {
			t.Fatalf("email and SMS in a tier requiring an app: %d %s", r.Status, r.Body)
		}
		if err := srv.UserBind("alice", "Saffron-Harbour-Kite-60"); err == nil {
			t.Fatal("the password was changed")
		}
		// the app and security questions are one method in this tier, not
		// two; the app and the email are enough. alice's eight tries: two
		// registered codes, two above, the app's registration and these three
		token := e.signIn("alice")
		app := e.addApp(token)
		s := currentStep() // codes of s and s+1 only
		e.must(200, e.api("POST", "/api/v1/methods/"+app.ID+"/verify", token, map[string]string{"code": stepCode(t, app.Secret, s)}), "verify app")
		osprey := answersFor("osprey")
		qid := e.addQuestions(token, osprey)
		settleMail(t, mail)
		g, _ := e.startReset("alice")
		needs := func(r resp) string {
			n, _ := json.Marshal(r.JSON["needs"])
			return string(n)
		}
		r = e.must(200, e.verify(&g, appOf(t, g), stepCode(t, app.Secret, s+1)), "verify app")
		if r.JSON["remaining"].(float64) != 1 || needs(r) != `["email","sms"]` {
			t.Fatalf("after the app: %s, want remaining 1 and needs [email sms]", r.Body)
		}
		r = e.must(200, e.answer(&g, qid, e.asked(g, qid), osprey.typed), "answers")
		if r.JSON["remaining"].(float64) != 1 || needs(r) != `["email","sms"]` {
			t.Fatalf("the app and the questions: %s, want remaining 1 and needs [email sms]", r.Body)
		}
		if r := e.complete(g, "Saffron-Harbour-Kite-61"); r.Status != 409 || r.errCode() != "not_verified" {
			t.Fatalf("the app and the questions in a tier requiring an app: %d %s", r.Status, r.Body)
		}
		r = e.must(200, e.verifyByEmail(&g, emailID, "alice.home@example.net"), "verify email")
		if r.JSON["remaining"].(float64) != 0 || r.JSON["needs"] != nil {
			t.Fatalf("after the app, the questions and the email: %s", r.Body)
		}
		e.must(200, e.complete(g, "Saffron-Harbour-Kite-61"), "complete")
		if err := srv.UserBind("alice", "Saffron-Harbour-Kite-61"); err != nil {
			t.Fatalf("the new password does not bind: %v", err)
		}
	})

	t.Run("no answer in the logs, the audit or the database", func(t *testing.T) {
		e.t = t
		var db []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(filepath.Join(e.work, "latchkey.db"+suffix))
			if err != nil && suffix == "" {
				t.Fatal(err)
			}
			db = append(db, b...)
		}
		if !bytes.Contains(db, []byte("registration.method_verified")) {
			t.Fatal("the database scan does not see the audit rows")
		}
		logs, _ := readFile(e.log)
		audit, _ := readFile(e.audit)
		if !strings.Contains(audit, `"type":"questions"`) || !strings.Contains(audit, "reset.questions_asked") {
			t.Fatal("security questions are not in the audit log")
		}
		lower := map[string]string{"the log": strings.ToLower(logs), "the audit log": strings.ToLower(audit), "the database": strings.ToLower(string(db))}
		for _, secret := range []string{"kestrel", "heron", "osprey", "fluffy", "zürich", "zu\u0308rich", "acacia", "not the answer", "distinct enough"} {
			for what, text := range lower {
				if strings.Contains(text, secret) {
					t.Errorf("%s holds the answer %q", what, secret)
				}
			}
		}
		for _, secret := range e.secrets {
			for what, text := range map[string]string{"the log": logs, "the audit log": audit} {
				if strings.Contains(text, secret) {
					t.Errorf("%s holds %q", what, secret)
				}
			}
		}
	})
}
