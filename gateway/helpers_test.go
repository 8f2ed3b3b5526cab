package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkeyhq/latchkey/internal/webauthntest"
	"github.com/latchkeyhq/latchkey/store"
)

// Helpers of the flow tests, for the tests of the web face.

// enroll registers and verifies an email for user.
func (tb *testbed) enroll(t *testing.T, user, addr string) (store.Session, string) {
	t.Helper()
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, user, tb.dir.Password(user), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := tb.svc.AddMethod(ctx, sess, "email", addr, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, mv.ID, tb.lastCode(t, addr), Meta{}); err != nil {
		t.Fatal(err)
	}
	// let the "method added" notice reach the directory mail, so later
	// counts of sent messages start from a quiet outbox
	tb.waitMessages(t, user+"@corp.example", 1)
	return sess, mv.ID
}

// lastCode waits for the next code sent to `to` (email or SMS) that this
// test has not read yet.
func (tb *testbed) lastCode(t *testing.T, to string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var codes []string
		for _, e := range tb.rec.Emails() {
			if e.To == to && strings.Contains(e.Subject, "code") {
				codes = append(codes, digits.FindStringSubmatch(e.Text)[1])
			}
		}
		for _, m := range tb.rec.SMS() {
			if m.To == to && strings.Contains(m.Body, "is your") {
				codes = append(codes, digits.FindStringSubmatch(m.Body)[1])
			}
		}
		if len(codes) > tb.read[to] {
			tb.read[to] = len(codes)
			return codes[len(codes)-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no code sent to %s", to)
	return ""
}

func (tb *testbed) writes() int { return tb.dir.Writes() }

// totpBed is a testbed with authenticator apps enabled, a clock the test
// moves (10 s into a 30 s step) and every log and audit line kept.
func totpBed(t *testing.T, tweak func(*Options)) (*testbed, *testClock, *syncBuffer) {
	t.Helper()
	tb := newTestbed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "sms", "totp"}
		if tweak != nil {
			tweak(o)
		}
	})
	clk := &testClock{t: time.Now().UTC().Truncate(30 * time.Second).Add(10 * time.Second)}
	tb.clock = clk.now
	logs := &syncBuffer{}
	l := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tb.logs.set(l.Handler())
	tb.audits.set(l.Handler())
	return tb, clk, logs
}

// testClock is a settable clock for the service.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

// syncBuffer collects log lines written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil || asProblem(err).Code != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

func (tb *testbed) auditOutcomes(t *testing.T, typ string) []string {
	t.Helper()
	evs, err := tb.st.ListAudit(context.Background(), storeQuery(typ))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Outcome)
	}
	return out
}

func (c *testClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// addPhone registers and verifies a mobile number for the session's user.
func (tb *testbed) addPhone(t *testing.T, sess store.Session, number string) MethodView {
	t.Helper()
	ctx := context.Background()
	ph, err := tb.svc.AddMethod(ctx, sess, "sms", number, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	e164 := "+" + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, number)
	if _, err := tb.svc.VerifyMethod(ctx, sess, ph.ID, tb.lastCode(t, e164), Meta{}); err != nil {
		t.Fatal(err)
	}
	return ph
}

// passkeyBed is a testbed with passkeys enabled.
func passkeyBed(t *testing.T) *testbed {
	return newTestbed(t, func(o *Options) { o.Eligibility.Methods = []string{"email", "sms", "webauthn"} })
}

func newSoftKey(t *testing.T) *softKey {
	t.Helper()
	a, err := webauthntest.New("https://sspr.example.org")
	if err != nil {
		t.Fatal(err)
	}
	return &softKey{t: t, Authenticator: *a}
}

// qBed is a testbed with security questions on (3 to register, 2 asked),
// authenticator apps too, a settable clock and every log line kept.
func qBed(t *testing.T, tweak func(*Options)) (*testbed, *testClock, *syncBuffer) {
	t.Helper()
	return totpBed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "sms", "totp", "questions"}
		o.Questions = QuestionOptions{List: testQuestions, Required: 3, Ask: 2}
		o.Limits.SendsPerDestination, o.Limits.SendsPerAccount, o.Limits.StartsPerAccount = 100, 100, 100
		if tweak != nil {
			tweak(o)
		}
	})
}

var testQuestions = []string{
	"What was the name of your first pet?",
	"In what town was your first job?",
	"What was the name of the street you grew up on?",
	"What was the first concert you went to?",
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// reply answers the asked questions from by (question text -> answer).
func reply(qs []Question, by map[string]string) []Answer {
	out := make([]Answer, len(qs))
	for i, q := range qs {
		out[i] = Answer{Question: q.ID, Answer: by[q.Text]}
	}
	return out
}

// appFlow starts a reset for user and returns it with the id of its
// authenticator app.
func (tb *testbed) appFlow(t *testing.T, user string) (FlowView, string) {
	t.Helper()
	f, err := tb.svc.StartFlow(context.Background(), "reset", user, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Methods {
		if m.Type == MethodTOTP {
			return f, m.ID
		}
	}
	t.Fatalf("no authenticator app offered to %s: %+v", user, f.Methods)
	return f, ""
}

// noticesTo waits for n messages to addr (codes and notices alike).
func (tb *testbed) waitMessages(t *testing.T, addr string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); tb.messagesTo(addr) < n; { // bounded wait on a positive signal
		if time.Now().After(deadline) {
			t.Fatalf("%d messages to %s, want %d", tb.messagesTo(addr), addr, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// typedAnswers are the same answers as a user types them at reset.
var typedAnswers = map[string]string{
	testQuestions[0]: "fluffy bunny",
	testQuestions[1]: "ZU\u0308RICH", // decomposed Ü, upper case
	testQuestions[2]: "acacia   avenue",
}

var digits = regexp.MustCompile(`\b(\d{6,8})\b`)

// codeAt is the authenticator app's code for secret at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongTOTP is a 6-digit code that none of the accepted steps has.
func wrongTOTP(t *testing.T, secret string, now time.Time) string {
	t.Helper()
	near := map[string]bool{}
	for d := -2; d <= 2; d++ {
		near[codeAt(t, secret, now.Add(time.Duration(d)*30*time.Second))] = true
	}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", (123457+i*7919)%1000000)
		if !near[c] {
			return c
		}
	}
}

func (tb *testbed) messagesTo(to string) int {
	n := 0
	for _, e := range tb.rec.Emails() {
		if e.To == to {
			n++
		}
	}
	for _, s := range tb.rec.SMS() {
		if s.To == to {
			n++
		}
	}
	return n
}

// passkeyFlow starts a reset for user and returns it with the first
// passkey offered.
func (tb *testbed) passkeyFlow(t *testing.T, user string) (FlowView, string) {
	t.Helper()
	f, err := tb.svc.StartFlow(context.Background(), "reset", user, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Methods {
		if m.Type == MethodWebAuthn {
			return f, m.ID
		}
	}
	t.Fatalf("no passkey offered to %s: %+v", user, f.Methods)
	return f, ""
}

// proveEmail sends and verifies the flow's emailed code.
func (tb *testbed) proveEmail(t *testing.T, f FlowView, emailID, addr string) FlowView {
	t.Helper()
	ctx := context.Background()
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, emailID, Meta{}); err != nil {
		t.Fatal(err)
	}
	nf, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, emailID, tb.lastCode(t, addr), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return nf
}

// enrolApp signs user in, sets up an authenticator app and verifies it
// with the code of the clock's current step.
func (tb *testbed) enrolApp(t *testing.T, clk *testClock, user string) (store.Session, TOTPEnrolment) {
	t.Helper()
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, user, tb.dir.Password(user), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	en, err := tb.svc.EnrolTOTP(ctx, sess, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, en.Method.ID, codeAt(t, en.Secret, clk.now()), Meta{}); err != nil {
		t.Fatal(err)
	}
	return sess, en
}

// softKey is the shared software authenticator (internal/webauthntest)
// with test-fatal errors; copying a softKey by value shares its key.
type softKey struct {
	t *testing.T
	webauthntest.Authenticator
}

func (tb *testbed) setGoodQuestions(t *testing.T, sess store.Session) MethodView {
	t.Helper()
	mv, err := tb.svc.SetQuestions(context.Background(), sess, answersOf(tb, goodAnswers[testQuestions[0]], goodAnswers[testQuestions[1]], goodAnswers[testQuestions[2]]), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return mv
}

// addPasskey signs user in and registers key as a passkey.
func (tb *testbed) addPasskey(t *testing.T, user string, key *softKey) (store.Session, MethodView) {
	t.Helper()
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, user, tb.dir.Password(user), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tb.svc.BeginPasskey(ctx, sess, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := tb.svc.FinishPasskey(ctx, sess, pc.MethodID, key.create(pc.Options), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return sess, mv
}

// create answers creation options as navigator.credentials.create would.
func (k *softKey) create(options json.RawMessage) []byte {
	k.t.Helper()
	b, err := k.Create(options)
	if err != nil {
		k.t.Fatal(err)
	}
	return b
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

// get answers request options as navigator.credentials.get would.
func (k *softKey) get(options json.RawMessage) []byte {
	k.t.Helper()
	b, err := k.Get(options)
	if err != nil {
		k.t.Fatal(err)
	}
	return b
}

// goodAnswers are three acceptable answers, by question text.
var goodAnswers = map[string]string{
	testQuestions[0]: "  Ｆｌｕｆｆｙ   Ｂｕｎｎｙ ",
	testQuestions[1]: "Zürich",
	testQuestions[2]: "Acacia Avenue",
}
