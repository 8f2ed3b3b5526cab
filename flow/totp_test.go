package flow

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
)

// totpBed is a testbed with authenticator apps enabled, a clock the test
// moves (10 s into a 30 s step) and every log and audit line kept.
func totpBed(t *testing.T, tweak func(*Options)) (*testbed, *flowtest.Clock, *flowtest.SyncBuffer) {
	t.Helper()
	tb := newTestbed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "sms", "totp"}
		if tweak != nil {
			tweak(o)
		}
	})
	clk := flowtest.StepClock()
	tb.svc.d.Now = clk.Now
	logs, l := flowtest.DebugLog()
	tb.svc.log, tb.svc.audit = l, l
	return tb, clk, logs
}

// enrolApp signs user in, sets up an authenticator app and verifies it
// with the code of the clock's current step.
func (tb *testbed) enrolApp(t *testing.T, clk *flowtest.Clock, user string) (store.Session, TOTPEnrolment) {
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
	if _, err := tb.svc.VerifyMethod(ctx, sess, en.Method.ID, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{}); err != nil {
		t.Fatal(err)
	}
	return sess, en
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

// TestTOTPCodeIsAcceptedOnce: a code works once; the same code again (the
// same step) is refused and audited as a replay, whether it was first used
// to verify the app or in a reset, and in another flow too.
func TestTOTPCodeIsAcceptedOnce(t *testing.T) {
	tb, clk, _ := totpBed(t, nil)
	ctx := context.Background()
	_, en := tb.enrolApp(t, clk, "carol")
	enrolCode := flowtest.CodeAt(t, en.Secret, clk.Now())

	// the code that verified the app cannot open a reset
	f, mid := tb.appFlow(t, "carol")
	_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, enrolCode, Meta{})
	wantCode(t, err, CodeInvalidCode)

	// a new step: its code works once
	clk.Add(30 * time.Second)
	code := flowtest.CodeAt(t, en.Secret, clk.Now())
	f, mid = tb.appFlow(t, "carol")
	nf, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, code, Meta{})
	if err != nil || nf.Remaining != 0 {
		t.Fatalf("a fresh code: %v %+v", err, nf)
	}
	f2, mid2 := tb.appFlow(t, "carol")
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f2.ID, mid2, code, Meta{})
	wantCode(t, err, CodeInvalidCode)
	// still refused in the next step, where it is within the skew
	clk.Add(30 * time.Second)
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f2.ID, mid2, code, Meta{})
	wantCode(t, err, CodeInvalidCode)
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.gate"})
	replays := 0
	for _, e := range evs {
		if e.Outcome == "failed" && e.Details["reason"] == "totp_replayed" {
			replays++
		}
	}
	if replays != 3 {
		t.Fatalf("%d replays audited, want 3: %+v", replays, evs)
	}
	// the first flow, proven, resets the password
	if err := tb.svc.CompleteFlow(ctx, "reset", nf.ID, "Brand-New-Pass-42", Meta{}); err != nil {
		t.Fatal(err)
	}
}

// TestTOTPReplayAcrossInstances: two gateways sharing one store refuse a
// code the other accepted (and concurrent redemptions let one through).
func TestTOTPReplayAcrossInstances(t *testing.T) {
	tb, clk, _ := totpBed(t, nil)
	ctx := context.Background()
	other, err := NewService(tb.svc.o, Deps{Directory: tb.dir, Store: tb.st, Mailer: tb.rec, SMS: tb.rec, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	_, en := tb.enrolApp(t, clk, "carol")
	clk.Add(30 * time.Second)
	code := flowtest.CodeAt(t, en.Secret, clk.Now())
	var flows []FlowView
	var mids []string
	for range 8 {
		f, mid := tb.appFlow(t, "carol")
		flows, mids = append(flows, f), append(mids, mid)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := tb.svc
			if i%2 == 1 {
				svc = other
			}
			if _, err := svc.VerifyFlowCode(ctx, "reset", flows[i].ID, mids[i], code, Meta{}); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("one code opened %d flows on two instances, want 1", ok)
	}
}

// TestTOTPClockSkew: codes one step either side of the server's clock are
// accepted, two steps are not.
func TestTOTPClockSkew(t *testing.T) {
	tb, clk, _ := totpBed(t, nil)
	ctx := context.Background()
	_, en := tb.enrolApp(t, clk, "carol")
	clk.Add(5 * time.Minute) // away from the step used to verify the app
	for _, c := range []struct {
		offset time.Duration
		ok     bool
	}{{-30 * time.Second, true}, {30 * time.Second, true}, {-60 * time.Second, false}, {60 * time.Second, false}, {90 * time.Second, false}} {
		f, mid := tb.appFlow(t, "carol")
		_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.CodeAt(t, en.Secret, clk.Now().Add(c.offset)), Meta{})
		if (err == nil) != c.ok {
			t.Errorf("a code %v from the server's clock: error %v, want accepted %v", c.offset, err, c.ok)
		}
	}
}

// TestTOTPWrongCodesSpendTheAccountBudget: wrong app codes, at enrolment
// and in a reset, count toward the one budget of wrong codes that emailed
// codes spend too; once it is spent, right codes of every kind are refused.
func TestTOTPWrongCodesSpendTheAccountBudget(t *testing.T) {
	tb, clk, _ := totpBed(t, func(o *Options) { o.Limits.CodeFailuresPerAccount = 4 })
	// the tries below must fall in one window of the budget (an hour): a
	// clock within minutes of the hour's end moves back before them
	if end := clk.Now().Truncate(time.Hour).Add(time.Hour); end.Sub(clk.Now()) < 5*time.Minute {
		clk.Add(-5 * time.Minute)
	}
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "carol", "carol@home.example") // right: not counted
	en, err := tb.svc.EnrolTOTP(ctx, sess, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tb.svc.VerifyMethod(ctx, sess, en.Method.ID, flowtest.WrongTOTP(t, en.Secret, clk.Now()), Meta{}) // 1
	wantCode(t, err, CodeInvalidCode)
	if _, err := tb.svc.VerifyMethod(ctx, sess, en.Method.ID, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{}); err != nil { // right: not counted
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	f, mid := tb.appFlow(t, "carol")
	for range 3 { // 2, 3, 4
		_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.WrongTOTP(t, en.Secret, clk.Now()), Meta{})
		wantCode(t, err, CodeInvalidCode)
	}
	// the budget is spent: the right app code and the right emailed code
	// are refused alike
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{})
	wantCode(t, err, CodeInvalidCode)
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, emailID, Meta{}); err != nil {
		t.Fatal(err)
	}
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, emailID, tb.inbox.LastCode(t, "carol@home.example"), Meta{})
	wantCode(t, err, CodeInvalidCode)
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "blocked"}); len(evs) < 2 || evs[0].Outcome != "code_budget" {
		t.Fatalf("the spent budget is not audited: %+v", evs)
	}
	// and once the window has passed the app works again
	clk.Add(time.Hour)
	f, mid = tb.appFlow(t, "carol")
	if _, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{}); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestTOTPReenrolmentRevokesTheOldSeed: a second set-up leaves the first
// app working until the new one is verified; then the old seed's codes are
// refused, one app is listed, open flows end, and the other channels are
// told (never the seed).
func TestTOTPReenrolmentRevokesTheOldSeed(t *testing.T) {
	tb, clk, _ := totpBed(t, nil)
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "carol", "carol@home.example")
	old, err := tb.svc.EnrolTOTP(ctx, sess, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, old.Method.ID, flowtest.CodeAt(t, old.Secret, clk.Now()), Meta{}); err != nil {
		t.Fatal(err)
	}
	// a set-up that is never finished is replaced by the next one
	abandoned, err := tb.svc.EnrolTOTP(ctx, sess, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	next, err := tb.svc.EnrolTOTP(ctx, sess, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if next.Secret == old.Secret || next.Secret == abandoned.Secret {
		t.Fatal("a new set-up reused a seed")
	}
	if _, err := tb.st.GetMethod(ctx, "id-carol", abandoned.Method.ID); err == nil {
		t.Fatal("the abandoned set-up is still stored")
	}
	// until the new app is verified, the old one works
	clk.Add(30 * time.Second)
	f, mid := tb.appFlow(t, "carol")
	if mid != old.Method.ID {
		t.Fatalf("the flow offers %s, want the verified app %s", mid, old.Method.ID)
	}
	open, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.CodeAt(t, old.Secret, clk.Now()), Meta{})
	if err != nil {
		t.Fatalf("the old app before the new one is verified: %v", err)
	}
	clk.Add(30 * time.Second)
	if _, err := tb.svc.VerifyMethod(ctx, sess, next.Method.ID, flowtest.CodeAt(t, next.Secret, clk.Now()), Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.st.GetMethod(ctx, "id-carol", old.Method.ID); err == nil {
		t.Fatal("the old app is still stored")
	}
	ms, _ := tb.svc.Methods(ctx, sess)
	apps := 0
	for _, m := range ms {
		if m.Type == MethodTOTP {
			apps++
		}
	}
	if apps != 1 {
		t.Fatalf("%d apps listed, want 1: %+v", apps, ms)
	}
	// the flow proven with the old app is gone
	err = tb.svc.CompleteFlow(ctx, "reset", open.ID, "Brand-New-Pass-42", Meta{})
	wantCode(t, err, CodeFlowExpired)
	// the old seed's codes open nothing; the new one's do
	clk.Add(30 * time.Second)
	f, mid = tb.appFlow(t, "carol")
	if mid != next.Method.ID {
		t.Fatalf("the flow offers %s, want the new app", mid)
	}
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.CodeAt(t, old.Secret, clk.Now()), Meta{})
	wantCode(t, err, CodeInvalidCode)
	if _, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.CodeAt(t, next.Secret, clk.Now()), Meta{}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "registration.method_removed"}); len(evs) != 1 || evs[0].Outcome != "replaced" {
		t.Fatalf("the replaced app is not audited: %+v", evs)
	}
	// the email heard about each new app; nothing went to a seed
	tb.svc.Close()
	notices := 0
	for _, e := range tb.rec.Emails() {
		if e.To == "carol@home.example" && strings.Contains(e.Text, "added") {
			notices++
		}
		for _, sec := range []string{old.Secret, next.Secret, abandoned.Secret} {
			if strings.Contains(e.To, sec) || strings.Contains(e.Text, sec) {
				t.Fatalf("a message holds a seed: %+v", e)
			}
		}
	}
	if notices < 2 {
		t.Fatalf("%d method-added notices to the email, want 2", notices)
	}
	_ = emailID
}

// TestTOTPInTwoMethodTier: a user in a two-method tier resets with an
// emailed code and the app; an app counts once, so two apps (which
// re-enrolment never leaves, planted here in the store) are not two
// methods.
func TestTOTPInTwoMethodTier(t *testing.T) {
	tb, clk, _ := totpBed(t, nil)
	ctx := context.Background()
	sess, emailID := tb.enroll(t, "alice", "alice@home.example")
	en, err := tb.svc.EnrolTOTP(ctx, sess, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, en.Method.ID, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	f, mid := tb.appFlow(t, "alice")
	if len(f.Methods) != 2 {
		t.Fatalf("alice's methods: %+v", f.Methods)
	}
	for _, m := range f.Methods {
		if m.Type == MethodTOTP && m.Hint != "Authenticator app" {
			t.Fatalf("app hint %q", m.Hint)
		}
	}
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
		t.Fatal(err)
	}
	f, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{})
	if err != nil || f.Remaining != 1 {
		t.Fatalf("after the app: %v %+v", err, f)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", Meta{}), CodeNotVerified)
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, emailID, Meta{}); err != nil {
		t.Fatal(err)
	}
	if f, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, emailID, tb.inbox.LastCode(t, "alice@home.example"), Meta{}); err != nil || f.Remaining != 0 {
		t.Fatalf("after the email: %v %+v", err, f)
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42", Meta{}); err != nil {
		t.Fatal(err)
	}

	// two apps proven are one method
	ctx2 := context.Background()
	second := store.Method{ID: "planted-app", AccountID: "id-alice", Type: MethodTOTP, Secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", CreatedAt: clk.Now().Add(-time.Hour)}
	if err := tb.st.AddMethod(ctx2, second); err != nil {
		t.Fatal(err)
	}
	if err := tb.st.VerifyMethod(ctx2, "id-alice", second.ID, clk.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	f, err = tb.svc.StartFlow(ctx2, "reset", "alice", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ id, secret string }{{en.Method.ID, en.Secret}, {second.ID, second.Secret}} {
		if f, err = tb.svc.VerifyFlowCode(ctx2, "reset", f.ID, m.id, flowtest.CodeAt(t, m.secret, clk.Now()), Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, tb.svc.CompleteFlow(ctx2, "reset", f.ID, "Other-New-Pass-43", Meta{}), CodeNotVerified)
}

// TestTOTPDecoys: with apps enabled, fake method sets of unknown names
// show apps about as often as the built-in pattern gives them, never two in
// one set; sending to a fake app answers like a real one and verifying
// fails.
func TestTOTPDecoys(t *testing.T) {
	tb, clk, _ := totpBed(t, nil)
	ctx := context.Background()
	withApp := 0
	const names = 300
	for i := range names {
		set := fakeSet(t, tb, fmt.Sprintf("nobody-%d", i))
		apps := 0
		for _, m := range set {
			if m.Type == MethodTOTP {
				apps++
				if m.Hint != "Authenticator app" {
					t.Fatalf("fake app hint %q", m.Hint)
				}
			}
		}
		if apps > 1 {
			t.Fatalf("two apps in one fake set: %+v", set)
		}
		if apps == 1 {
			withApp++
		}
	}
	// pattern weights over {email, sms, totp}: 5 of the 12 weight units
	// hold an app (2 alone, 3 in pairs) -> about 42 %
	if withApp < names/4 || withApp > names*6/10 {
		t.Fatalf("%d of %d fake sets hold an app", withApp, names)
	}
	// a fake app: the same 202, nothing sent, every code refused
	var f FlowView
	var mid string
	for i := 0; mid == ""; i++ {
		f, _ = tb.svc.StartFlow(ctx, "reset", fmt.Sprintf("nobody-%d", i), Meta{})
		for _, m := range f.Methods {
			if m.Type == MethodTOTP {
				mid = m.ID
			}
		}
	}
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
		t.Fatal(err)
	}
	_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, "123456", Meta{})
	wantCode(t, err, CodeInvalidCode)

	// a real user with only an app, in a two-method tier, gets fakes
	// without a second app
	_, _ = tb.enrolApp(t, clk, "alice")
	for range 5 {
		f, _ := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
		apps := 0
		for _, m := range f.Methods {
			if m.Type == MethodTOTP {
				apps++
			}
		}
		if apps != 1 || len(f.Methods) < 2 {
			t.Fatalf("alice's set: %+v", f.Methods)
		}
	}
}

// TestTOTPSeedShownAgainOnlyToTheEnrollingSession: after a wrong first
// code the set-up page shows the pending app's QR code again, to the
// session that set it up only (review of issue 22's change: any session of
// the account with a fresh password got the seed, so a second sign-in by
// someone who knows the password copied the user's new app without a
// "method added" notice).
func TestTOTPSeedShownAgainOnlyToTheEnrollingSession(t *testing.T) {
	tb, _, _ := totpBed(t, nil)
	ctx := context.Background()
	mine, _ := tb.enroll(t, "carol", "carol@home.example")
	other, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	en, err := tb.svc.EnrolTOTP(ctx, mine, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := tb.svc.TOTPEnrolmentAgain(ctx, mine, en.Method.ID)
	if err != nil || again.Secret != en.Secret {
		t.Fatalf("the enrolling session: %v (same seed %v)", err, again.Secret == en.Secret)
	}
	if got, err := tb.svc.TOTPEnrolmentAgain(ctx, other, en.Method.ID); err == nil || got.Secret != "" {
		t.Fatalf("another session of the account was shown the pending seed (err %v)", err)
	}
}
