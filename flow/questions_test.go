package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
)

// qBed is a testbed with security questions on (3 to register, 2 asked),
// authenticator apps too, a settable clock and every log line kept.
func qBed(t *testing.T, tweak func(*Options)) (*testbed, *flowtest.Clock, *flowtest.SyncBuffer) {
	t.Helper()
	return totpBed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "sms", "totp", "questions"}
		o.Questions = QuestionOptions{List: flowtest.Questions, Required: 3, Ask: 2}
		o.Limits.SendsPerDestination, o.Limits.SendsPerAccount, o.Limits.StartsPerAccount = 100, 100, 100
		if tweak != nil {
			tweak(o)
		}
	})
}

// answersOf answers the first three listed questions with the given texts.
func answersOf(tb *testbed, texts ...string) []Answer {
	qs := tb.svc.AdminQuestions()
	out := make([]Answer, len(texts))
	for i, a := range texts {
		out[i] = Answer{Question: qs[i].ID, Answer: a}
	}
	return out
}

func (tb *testbed) setGoodQuestions(t *testing.T, sess store.Session) MethodView {
	t.Helper()
	mv, err := tb.svc.SetQuestions(context.Background(), sess, answersOf(tb, flowtest.GoodAnswers[flowtest.Questions[0]], flowtest.GoodAnswers[flowtest.Questions[1]], flowtest.GoodAnswers[flowtest.Questions[2]]), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return mv
}

// reply answers the asked questions from by (question text -> answer).
func reply(qs []Question, by map[string]string) []Answer {
	out := make([]Answer, len(qs))
	for i, q := range qs {
		out[i] = Answer{Question: q.ID, Answer: by[q.Text]}
	}
	return out
}

// methodOf returns the id of the flow's method of type typ.
func methodOf(t *testing.T, f FlowView, typ string) string {
	t.Helper()
	for _, m := range f.Methods {
		if m.Type == typ {
			return m.ID
		}
	}
	t.Fatalf("no %s offered: %+v", typ, f.Methods)
	return ""
}

// proveEmail sends and verifies the flow's emailed code (a reset's, or
// the flow's own kind).
func (tb *testbed) proveEmail(t *testing.T, f FlowView, emailID, addr string) FlowView {
	t.Helper()
	ctx := context.Background()
	kind := f.Kind
	if kind == "" {
		kind = "reset"
	}
	if err := tb.svc.SendFlowCode(ctx, kind, f.ID, emailID, Meta{}); err != nil {
		t.Fatal(err)
	}
	nf, err := tb.svc.VerifyFlowCode(ctx, kind, f.ID, emailID, tb.inbox.LastCode(t, addr), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return nf
}

func TestAnswerNormalisation(t *testing.T) {
	for in, want := range map[string]string{
		"  Ｆｌｕｆｆｙ ":             "fluffy",
		"Fluffy\tBunny\n":       "fluffy bunny",
		"STRASSE":               "strasse",
		"Straße":                "strasse",
		"Ze\u0301bre":           "z\u00e9bre",
		"ZE\u0301BRE":           "z\u00e9bre",
		"\u00a0 non\u00a0break": "non break",
		"ﬁsh":                   "fish",
	} {
		if got := normalizeAnswer(in); got != want {
			t.Errorf("normalizeAnswer(%q) = %q, want %q", in, got, want)
		}
	}
	// and through a reset: the answers registered in full-width, accented
	// and spaced forms are accepted as typed in plain ones
	tb, _, _ := qBed(t, nil)
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "carol", "carol@home.example")
	qm := tb.setGoodQuestions(t, sess)
	f, err := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f = tb.proveEmail(t, f, emailID, "carol@home.example")
	qs, ok, err := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
	if err != nil || !ok || len(qs) != 2 {
		t.Fatalf("questions: %v %v %+v", err, ok, qs)
	}
	if f, err = tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, reply(qs, flowtest.TypedAnswers), Meta{}); err != nil {
		t.Fatalf("normalised answers refused: %v", err)
	}
	if !slices.Contains(f.Verified, qm.ID) || f.Remaining != 0 {
		t.Fatalf("after the answers: %+v", f)
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", Meta{}); err != nil {
		t.Fatal(err)
	}
}

// TestTrivialAnswersRefused: answers anyone could guess are refused at
// registration, each with its reason, before anything is stored.
func TestTrivialAnswersRefused(t *testing.T) {
	tb, _, logs := qBed(t, nil)
	ctx := context.Background()
	sess, _ := tb.enroll(t, "carol", "carol@home.example")
	ok1, ok2 := "Copper kettle", "Marigold lane"
	for _, c := range []struct{ bad, want string }{
		{"carol", answerUsername},
		{" CAROL ", answerUsername},
		{"Carol Test", answerUsername}, // the display name
		{"what was the name of your first pet", answerQuestion},
		{"ab", answerTooShort},
		{"  a  ", answerTooShort},
		{"aaaaaa", answerRepeated},
		{"1111", answerRepeated},
		{"1234", answerCommon},
		{"password", answerCommon},
		{"None", answerCommon},
		{"N/A", answerCommon},
		{"unknown", answerCommon},
		{"test", answerCommon},
		{"abcdef", answerSequence},
		{"987654", answerSequence},
		{strings.Repeat("long ", 50), answerTooLong},
	} {
		_, err := tb.svc.SetQuestions(ctx, sess, answersOf(tb, c.bad, ok1, ok2), Meta{})
		wantCode(t, err, CodeWeakAnswers)
		if v := asProblem(err).Violations; len(v) != 1 || v[0].Code != c.want || !strings.HasPrefix(v[0].Message, "The answer to question 1 ") {
			t.Errorf("%q: violations %+v, want %s", c.bad, v, c.want)
		}
	}
	// the same answer twice (after normalisation)
	_, err := tb.svc.SetQuestions(ctx, sess, answersOf(tb, ok1, "COPPER  kettle", ok2), Meta{})
	wantCode(t, err, CodeWeakAnswers)
	if v := asProblem(err).Violations; len(v) != 1 || v[0].Code != answerDuplicate {
		t.Errorf("duplicate: %+v", v)
	}
	// the wrong number of answers, a question twice or an unlisted one
	_, err = tb.svc.SetQuestions(ctx, sess, answersOf(tb, ok1, ok2), Meta{})
	wantCode(t, err, CodeInvalidRequest)
	a := answersOf(tb, ok1, ok2, "Third answer")
	a[2].Question = a[0].Question
	_, err = tb.svc.SetQuestions(ctx, sess, a, Meta{})
	wantCode(t, err, CodeInvalidRequest)
	a[2].Question = "What is your favourite colour?" // custom questions are off
	_, err = tb.svc.SetQuestions(ctx, sess, a, Meta{})
	wantCode(t, err, CodeInvalidRequest)
	ms, _ := tb.st.ListMethods(ctx, "id-carol")
	if slices.ContainsFunc(ms, func(m store.Method) bool { return m.Type == MethodQuestions }) {
		t.Fatal("refused answers were stored")
	}
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "registration.method_added"})
	if !slices.ContainsFunc(evs, func(e store.AuditEvent) bool {
		return e.Outcome == "refused" && e.Details["type"] == MethodQuestions && e.Details["reason"] == answerUsername
	}) {
		t.Fatalf("refusals are not audited: %+v", evs)
	}
	if strings.Contains(logs.String(), "Copper") || strings.Contains(strings.ToLower(logs.String()), "copper kettle") {
		t.Fatal("an answer is in the logs")
	}
	// acceptable answers are stored, verified at once, hashed
	mv, err := tb.svc.SetQuestions(ctx, sess, answersOf(tb, ok1, ok2, "Third answer"), Meta{})
	if err != nil || !mv.Verified || mv.Hint != "Security questions" || mv.Type != "questions" {
		t.Fatalf("good answers: %v %+v", err, mv)
	}
	m, _ := tb.st.GetMethod(ctx, "id-carol", mv.ID)
	var set storedQuestions
	if err := json.Unmarshal([]byte(m.Secret), &set); err != nil || len(set.Items) != 3 || set.Time != argonTime || set.Memory != argonMemory {
		t.Fatalf("stored set: %v %+v", err, set)
	}
	if strings.Contains(strings.ToLower(m.Secret), "copper") || string(set.Items[0].Salt) == string(set.Items[1].Salt) || len(set.Items[0].Hash) != 32 {
		t.Fatalf("answers not hashed with a salt each: %s", m.Secret)
	}
	// custom questions, when allowed
	tb2, _, _ := qBed(t, func(o *Options) { o.Questions.AllowCustom = true })
	sess2, _ := tb2.enroll(t, "carol", "carol@home.example")
	a = answersOf(tb2, ok1, ok2, "Third answer")
	a[2].Question = "What is your favourite colour?"
	if _, err := tb2.svc.SetQuestions(ctx, sess2, a, Meta{}); err != nil {
		t.Fatalf("custom question: %v", err)
	}
	a[2].Answer = "what is your favourite colour"
	_, err = tb2.svc.SetQuestions(ctx, sess2, a, Meta{})
	wantCode(t, err, CodeWeakAnswers)
}

// TestQuestionsNeverAlone: questions are shown and checked only once
// another method is proven; a flow whose only proof is the questions is
// refused with not_verified; an account with nothing but questions has no
// usable method; and questions never make a proof old enough for the
// cooling-off period.
func TestQuestionsNeverAlone(t *testing.T) {
	tb, clk, _ := qBed(t, nil)
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "carol", "carol@home.example")
	qm := tb.setGoodQuestions(t, sess)
	f, err := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if methodOf(t, f, MethodQuestions) != qm.ID {
		t.Fatalf("the questions are not offered: %+v", f.Methods)
	}
	// before another proof: nothing shown, nothing checked, nothing spent
	_, ok, err := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
	if !ok {
		t.Fatal("the questions method is not recognised")
	}
	wantCode(t, err, CodeNotVerified)
	_, err = tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, []Answer{{Question: "q", Answer: "x"}}, Meta{})
	wantCode(t, err, CodeNotVerified)
	if n, _ := tb.st.Count(ctx, "codefail:acct:id-carol", time.Hour, clk.Now()); n != 0 { // the email's right registration code is taken back
		t.Fatalf("a refused try spent the budget: %d", n)
	}
	// a code verify on a questions method is refused: answers go elsewhere
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, qm.ID, "123456", Meta{})
	wantCode(t, err, CodeInvalidRequest)

	// a flow with only the questions proven (planted: no call can do it)
	// is refused, though one method is required
	raw, err := tb.st.GetFlow(ctx, f.ID, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw.Verified = []string{qm.ID}
	if err := tb.st.UpdateFlow(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if v, _ := tb.svc.Flow(ctx, "reset", f.ID); v.Remaining != 1 {
		t.Fatalf("questions alone leave %d to verify, want 1", v.Remaining)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", Meta{}), CodeNotVerified)
	if tb.dir.Writes() != 0 {
		t.Fatal("a password was written")
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.completed"}); len(evs) == 0 || evs[0].Outcome != CodeNotVerified {
		t.Fatalf("not audited: %+v", evs)
	}

	// with the email proven first, the questions are a second factor
	f, _ = tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	f = tb.proveEmail(t, f, emailID, "carol@home.example")
	qs, _, err := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
	if err != nil || len(qs) != 2 {
		t.Fatalf("after the email: %v %+v", err, qs)
	}
	if _, err := tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, reply(qs, flowtest.TypedAnswers), Meta{}); err != nil {
		t.Fatal(err)
	}

	// an account left with only its questions has no usable method
	if err := tb.svc.RemoveMethod(ctx, sess, emailID, tb.dir.Password("carol"), Meta{}); err != nil {
		t.Fatal(err)
	}
	f, _ = tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	for _, m := range f.Methods {
		if m.real || m.ID == qm.ID {
			t.Fatalf("questions alone are offered: %+v", f.Methods)
		}
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.started"}); evs[0].Outcome != "no_methods" {
		t.Fatalf("outcome %q", evs[0].Outcome)
	}

	// cooling-off: old questions do not make a new email old enough
	tb2, clk2, _ := qBed(t, func(o *Options) { o.CoolingOff = 24 * time.Hour })
	sess2, err := tb2.svc.SignIn(ctx, "carol", tb2.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	qm2 := tb2.setGoodQuestions(t, sess2)
	clk2.Add(48 * time.Hour)
	_, emailID2 := tb2.enroll(t, "carol", "carol@home.example")
	f, _ = tb2.svc.StartFlow(ctx, "reset", "carol", Meta{})
	// said at the email's proof: the questions left to answer cannot make
	// it old enough (TestCoolingOffUpFront)
	if err := tb2.svc.SendFlowCode(ctx, "reset", f.ID, emailID2, Meta{}); err != nil {
		t.Fatal(err)
	}
	_, err = tb2.svc.VerifyFlowCode(ctx, "reset", f.ID, emailID2, tb2.inbox.LastCode(t, "carol@home.example"), Meta{})
	wantCode(t, err, CodeMethodTooNew)
	// nothing proven, so the questions are not even asked
	_, _, err = tb2.svc.FlowQuestions(ctx, "reset", f.ID, qm2.ID, Meta{})
	wantCode(t, err, CodeNotVerified)
}

// TestWrongAnswersSpendTheAccountBudget: each try at the answers spends
// the one budget of wrong codes; once it is spent, the right answers and
// the right emailed code are refused alike.
func TestWrongAnswersSpendTheAccountBudget(t *testing.T) {
	tb, clk, _ := qBed(t, func(o *Options) { o.Limits.CodeFailuresPerAccount = 3 })
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "carol", "carol@home.example") // right: not counted
	qm := tb.setGoodQuestions(t, sess)
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	f = tb.proveEmail(t, f, emailID, "carol@home.example") // right: not counted
	qs, _, err := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	wrong := reply(qs, flowtest.TypedAnswers)
	wrong[1].Answer = "not this one" // one right, one wrong: refused
	for range 3 {                    // 1, 2, 3
		_, err = tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, wrong, Meta{})
		wantCode(t, err, CodeWrongAnswers)
	}
	// the same questions are asked after wrong answers
	again, _, _ := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
	if !slices.Equal(again, qs) {
		t.Fatalf("the questions changed after wrong answers: %+v then %+v", qs, again)
	}
	_, err = tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, reply(qs, flowtest.TypedAnswers), Meta{})
	wantCode(t, err, CodeWrongAnswers)
	g, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err := tb.svc.SendFlowCode(ctx, "reset", g.ID, emailID, Meta{}); err != nil {
		t.Fatal(err)
	}
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", g.ID, emailID, tb.inbox.LastCode(t, "carol@home.example"), Meta{})
	wantCode(t, err, CodeInvalidCode)
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "blocked"})
	if len(evs) < 2 || evs[0].Outcome != "code_budget" {
		t.Fatalf("the spent budget is not audited: %+v", evs)
	}
	gates, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.gate"})
	failed := 0
	for _, e := range gates {
		if e.Outcome == "failed" && e.Details["type"] == MethodQuestions && e.Details["reason"] == "wrong_answers" {
			failed++
		}
	}
	if failed != 3 {
		t.Fatalf("%d wrong answers audited, want 3", failed)
	}
	// after the window, the right answers work
	clk.Add(time.Hour)
	f, _ = tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	f = tb.proveEmail(t, f, emailID, "carol@home.example")
	qs, _, _ = tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
	if _, err := tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, reply(qs, flowtest.TypedAnswers), Meta{}); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestQuestionsAskedStayTheSame: the questions asked are fixed when the
// flow starts, the same in a new flow, and change only after a correct
// answer; fake methods ask admin questions chosen by the name.
func TestQuestionsAskedStayTheSame(t *testing.T) {
	tb, _, _ := qBed(t, func(o *Options) { o.Limits.CodeFailuresPerAccount = 100 })
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "carol", "carol@home.example")
	qm := tb.setGoodQuestions(t, sess)
	asked := func() ([]Question, FlowView) {
		f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
		f = tb.proveEmail(t, f, emailID, "carol@home.example")
		qs, _, err := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		again, _, _ := tb.svc.FlowQuestions(ctx, "reset", f.ID, qm.ID, Meta{})
		if !slices.Equal(qs, again) {
			t.Fatalf("asking again re-rolled the questions: %+v then %+v", qs, again)
		}
		return qs, f
	}
	first, _ := asked()
	second, f := asked()
	if !slices.Equal(first, second) {
		t.Fatalf("a new flow asks other questions before a correct answer: %+v then %+v", first, second)
	}
	changed := false
	for range 6 {
		if _, err := tb.svc.VerifyFlowAnswers(ctx, "reset", f.ID, qm.ID, reply(second, flowtest.TypedAnswers), Meta{}); err != nil {
			t.Fatal(err)
		}
		var next []Question
		next, f = asked()
		changed = changed || !slices.Equal(next, second)
		second = next
	}
	if !changed {
		t.Fatal("the questions never changed after correct answers")
	}

	// fakes: questions from the admin list, stable per name
	a, b := tb.svc.pickDecoyQuestions("nobody-x"), tb.svc.pickDecoyQuestions("NOBODY-X")
	if len(a) != 2 || !slices.Equal(a, b) {
		t.Fatalf("decoy questions %+v %+v", a, b)
	}
	for _, q := range a {
		if !slices.Contains(flowtest.Questions, q.Text) {
			t.Fatalf("decoy question %q is not from the admin list", q.Text)
		}
	}
	found := false
	for i := 0; i < 60 && !found; i++ {
		name := fmt.Sprintf("nobody-%d", i)
		fv, _ := tb.svc.StartFlow(ctx, "reset", name, Meta{})
		for _, m := range fv.Methods {
			if m.Type != MethodQuestions {
				continue
			}
			found = true
			raw, _ := tb.st.GetFlow(ctx, fv.ID, tb.svc.now())
			var data map[string][]Question
			json.Unmarshal([]byte(raw.Data["questions"]), &data)
			if !slices.Equal(data[m.ID], tb.svc.pickDecoyQuestions(name)) {
				t.Fatalf("%s: fake questions %+v", name, data[m.ID])
			}
			// shown as for a real account: not before another proof
			_, _, err := tb.svc.FlowQuestions(ctx, "reset", fv.ID, m.ID, Meta{})
			wantCode(t, err, CodeNotVerified)
		}
	}
	if !found {
		t.Fatal("no fake set of 60 holds security questions")
	}
}

// TestQuestionDecoys: with questions on, fake sets hold them in the
// pattern's proportion, never alone and never twice; with questions off,
// never.
func TestQuestionDecoys(t *testing.T) {
	tb, _, _ := qBed(t, nil)
	const names = 300
	with := 0
	for i := range names {
		set := fakeSet(t, tb, fmt.Sprintf("nobody-%d", i))
		n := 0
		for _, m := range set {
			if m.Type == MethodQuestions {
				n++
				if m.Hint != "Security questions" {
					t.Fatalf("hint %q", m.Hint)
				}
			}
		}
		if n > 1 || (n == 1 && len(set) == 1) {
			t.Fatalf("fake set %+v", set)
		}
		if n == 1 {
			with++
		}
	}
	// pattern over {email, sms, totp, questions}: questions only in pairs,
	// 3 of 15 weight units -> 20 %
	if with < names/10 || with > names*3/10 {
		t.Fatalf("%d of %d fake sets hold questions", with, names)
	}
	off := newTestbed(t, func(o *Options) { o.Questions = QuestionOptions{List: flowtest.Questions} })
	for i := range 100 {
		for _, m := range fakeSet(t, off, fmt.Sprintf("nobody-%d", i)) {
			if m.Type == MethodQuestions {
				t.Fatal("questions in a fake set while they are off")
			}
		}
	}
}
