package gateway

import (
	"context"
	"testing"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
)

// Helpers of the flow tests, for the tests of the web face.

// enroll registers and verifies an email for user.
func (tb *testbed) enroll(t *testing.T, user, addr string) (store.Session, string) {
	t.Helper()
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, user, tb.dir.Password(user), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := tb.svc.AddMethod(ctx, sess, "email", addr, flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, mv.ID, tb.inbox.LastCode(t, addr), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	// let the "method added" notice reach the directory mail, so later
	// counts of sent messages start from a quiet outbox
	tb.inbox.Wait(t, user+"@corp.example", 1)
	return sess, mv.ID
}

func (tb *testbed) writes() int { return tb.dir.Writes() }

// totpBed is a testbed with authenticator apps enabled, a clock the test
// moves (10 s into a 30 s step) and every log and audit line kept.
func totpBed(t *testing.T, tweak func(*flow.Options)) (*testbed, *flowtest.Clock, *flowtest.SyncBuffer) {
	t.Helper()
	tb := newTestbed(t, func(o *flow.Options) {
		o.Eligibility.Methods = []string{"email", "sms", "totp"}
		if tweak != nil {
			tweak(o)
		}
	})
	clk := flowtest.StepClock()
	tb.clock = clk.Now
	logs, l := flowtest.DebugLog()
	tb.logs.set(l.Handler())
	tb.audits.set(l.Handler())
	return tb, clk, logs
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil || flow.AsProblem(err).Code != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

func (tb *testbed) auditOutcomes(t *testing.T, typ string) []string {
	t.Helper()
	return flowtest.AuditOutcomes(t, tb.st, typ)
}

// addPhone registers and verifies a mobile number for the session's user.
func (tb *testbed) addPhone(t *testing.T, sess store.Session, number string) flow.MethodView {
	t.Helper()
	ctx := context.Background()
	ph, err := tb.svc.AddMethod(ctx, sess, "sms", number, flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	e164 := notifytest.E164(number)
	if _, err := tb.svc.VerifyMethod(ctx, sess, ph.ID, tb.inbox.LastCode(t, e164), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	return ph
}

// passkeyBed is a testbed with passkeys enabled.
func passkeyBed(t *testing.T) *testbed {
	return newTestbed(t, func(o *flow.Options) { o.Eligibility.Methods = []string{"email", "sms", "webauthn"} })
}

// qBed is a testbed with security questions on (3 to register, 2 asked),
// authenticator apps too, a settable clock and every log line kept.
func qBed(t *testing.T, tweak func(*flow.Options)) (*testbed, *flowtest.Clock, *flowtest.SyncBuffer) {
	t.Helper()
	return totpBed(t, func(o *flow.Options) {
		o.Eligibility.Methods = []string{"email", "sms", "totp", "questions"}
		o.Questions = flow.QuestionOptions{List: flowtest.Questions, Required: 3, Ask: 2}
		o.Limits.SendsPerDestination, o.Limits.SendsPerAccount, o.Limits.StartsPerAccount = 100, 100, 100
		if tweak != nil {
			tweak(o)
		}
	})
}

// reply answers the asked questions from by (question text -> answer).
func reply(qs []flow.Question, by map[string]string) []flow.Answer {
	out := make([]flow.Answer, len(qs))
	for i, q := range qs {
		out[i] = flow.Answer{Question: q.ID, Answer: by[q.Text]}
	}
	return out
}

// appFlow starts a reset for user and returns it with the id of its
// authenticator app.
func (tb *testbed) appFlow(t *testing.T, user string) (flow.FlowView, string) {
	t.Helper()
	f, err := tb.svc.StartFlow(context.Background(), "reset", user, flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Methods {
		if m.Type == flow.MethodTOTP {
			return f, m.ID
		}
	}
	t.Fatalf("no authenticator app offered to %s: %+v", user, f.Methods)
	return f, ""
}

// passkeyFlow starts a reset for user and returns it with the first
// passkey offered.
func (tb *testbed) passkeyFlow(t *testing.T, user string) (flow.FlowView, string) {
	t.Helper()
	f, err := tb.svc.StartFlow(context.Background(), "reset", user, flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Methods {
		if m.Type == flow.MethodWebAuthn {
			return f, m.ID
		}
	}
	t.Fatalf("no passkey offered to %s: %+v", user, f.Methods)
	return f, ""
}

// proveEmail sends and verifies the flow's emailed code.
func (tb *testbed) proveEmail(t *testing.T, f flow.FlowView, emailID, addr string) flow.FlowView {
	t.Helper()
	ctx := context.Background()
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, emailID, flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	nf, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, emailID, tb.inbox.LastCode(t, addr), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return nf
}

// enrolApp signs user in, sets up an authenticator app and verifies it
// with the code of the clock's current step.
func (tb *testbed) enrolApp(t *testing.T, clk *flowtest.Clock, user string) (store.Session, flow.TOTPEnrolment) {
	t.Helper()
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, user, tb.dir.Password(user), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	en, err := tb.svc.EnrolTOTP(ctx, sess, flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, en.Method.ID, flowtest.CodeAt(t, en.Secret, clk.Now()), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	return sess, en
}

func (tb *testbed) setGoodQuestions(t *testing.T, sess store.Session) flow.MethodView {
	t.Helper()
	mv, err := tb.svc.SetQuestions(context.Background(), sess, answersOf(tb, flowtest.GoodAnswers[flowtest.Questions[0]], flowtest.GoodAnswers[flowtest.Questions[1]], flowtest.GoodAnswers[flowtest.Questions[2]]), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return mv
}

// addPasskey signs user in and registers key as a passkey.
func (tb *testbed) addPasskey(t *testing.T, user string, key *flowtest.SoftKey) (store.Session, flow.MethodView) {
	t.Helper()
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, user, tb.dir.Password(user), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tb.svc.BeginPasskey(ctx, sess, "", flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := tb.svc.FinishPasskey(ctx, sess, pc.MethodID, key.MustCreate(pc.Options), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return sess, mv
}

// answersOf answers the first three listed questions with the given texts.
func answersOf(tb *testbed, texts ...string) []flow.Answer {
	qs := tb.svc.AdminQuestions()
	out := make([]flow.Answer, len(texts))
	for i, a := range texts {
		out[i] = flow.Answer{Question: qs[i].ID, Answer: a}
	}
	return out
}
