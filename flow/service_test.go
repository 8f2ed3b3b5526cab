package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
)

// settle waits until the recorder has received nothing new for longer
// than the outbox holds a message, so later counts start from a quiet
// outbox.
func (tb *testbed) settle(t *testing.T) {
	t.Helper()
	total := func() int { return len(tb.rec.Emails()) + len(tb.rec.SMS()) }
	deadline := time.Now().Add(20 * time.Second)
	for last := -1; ; {
		n := total()
		if n == last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("messages kept coming for 20 s")
		}
		last = n
		time.Sleep(codeSendDelay)
	}
}

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
	if _, err := tb.svc.VerifyMethod(ctx, sess, mv.ID, tb.inbox.LastCode(t, addr), Meta{}); err != nil {
		t.Fatal(err)
	}
	// let the "method added" notice reach the directory mail, so later
	// counts of sent messages start from a quiet outbox
	tb.inbox.Wait(t, user+"@corp.example", 1)
	return sess, mv.ID
}

// addPhone registers and verifies a mobile number for the session's user.
func (tb *testbed) addPhone(t *testing.T, sess store.Session, number string) MethodView {
	t.Helper()
	ctx := context.Background()
	ph, err := tb.svc.AddMethod(ctx, sess, "sms", number, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	e164 := notifytest.E164(number)
	if _, err := tb.svc.VerifyMethod(ctx, sess, ph.ID, tb.inbox.LastCode(t, e164), Meta{}); err != nil {
		t.Fatal(err)
	}
	return ph
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil || asProblem(err).Code != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

func TestResetHappyPath(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	sess, mid := tb.enroll(t, "carol", "carol@home.example")
	f, err := tb.svc.StartFlow(ctx, "reset", " Carol ", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Required != 1 || len(f.Methods) != 1 || f.Methods[0].ID != mid || f.Methods[0].Hint == "carol@home.example" {
		t.Fatalf("flow %+v", f)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "New-Password-123", Meta{}), CodeNotVerified)
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
		t.Fatal(err)
	}
	v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "carol@home.example"), Meta{})
	if err != nil || v.Remaining != 0 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	// a proven method gives the flow a new id; the old one is dead
	if v.ID == f.ID || len(v.ID) < 32 {
		t.Fatalf("flow id not rotated: %q", v.ID)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "New-Password-123", Meta{}), CodeFlowExpired)
	f.ID = v.ID
	// local rules first
	err = tb.svc.CompleteFlow(ctx, "reset", f.ID, "carol-1234", Meta{})
	wantCode(t, err, CodePasswordRejected)
	if asProblem(err).Violations[0].Code != "contains_username" {
		t.Fatalf("violations %+v", asProblem(err).Violations)
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "New-Password-123", Meta{}); err != nil {
		t.Fatal(err)
	}
	if tb.dir.Password("carol") != "New-Password-123" {
		t.Fatal("password not written")
	}
	// every open flow of the account is gone, and so is every session
	_, err = tb.svc.Flow(ctx, "reset", f.ID)
	wantCode(t, err, CodeFlowExpired)
	_, err = tb.svc.Session(ctx, sess.ID)
	wantCode(t, err, CodeSessionExpired)
}

func TestDirectoryRefusalLetsTheUserRetry(t *testing.T) {
	tb := newTestbed(t, func(o *Options) { o.Password.MinLength = 8 })
	tb.dir.SetPolicy(dirtest.MemoryPolicy{MinLength: 14, HistoryLength: 3})
	ctx := context.Background()
	_, mid := tb.enroll(t, "carol", "c@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "c@home.example"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f.ID = v.ID
	err = tb.svc.CompleteFlow(ctx, "reset", f.ID, "Short-Pw-1", Meta{})
	wantCode(t, err, CodePasswordRejected)
	if v := asProblem(err).Violations; len(v) != 1 || v[0].Code != "directory_too_short" || v[0].Message == "" {
		t.Fatalf("violations %+v", v)
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "A-Much-Longer-Password-1", Meta{}); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownAndIneligibleUsersGetStableDecoysAndNothingIsSent(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	tb.enroll(t, "carol", "carol@home.example")
	before := len(tb.rec.Emails())
	var flows []FlowView
	for _, u := range []string{"nobody", "erin", "ivan", "alice", "nobody"} {
		f, err := tb.svc.StartFlow(ctx, "reset", u, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Methods) < f.Required || len(f.ID) < 40 {
			t.Fatalf("%s: %+v", u, f)
		}
		for _, m := range f.Methods {
			if len(m.ID) != 22 || m.real {
				t.Fatalf("%s: method %+v", u, m)
			}
			if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, m.ID, Meta{}); err != nil {
				t.Fatal(err)
			}
			_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, m.ID, "12345678", Meta{})
			wantCode(t, err, CodeInvalidCode)
		}
		wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Whatever-Pass-1", Meta{}), CodeNotVerified)
		flows = append(flows, f)
	}
	if flows[0].Methods[0] != flows[4].Methods[0] || flows[0].ID == flows[4].ID {
		t.Fatal("decoys are not stable per username, or flows are reused")
	}
	time.Sleep(codeSendDelay)
	if len(tb.rec.Emails()) != before || len(tb.rec.SMS()) != 0 {
		t.Fatalf("something was sent: %d emails", len(tb.rec.Emails())-before)
	}
}

func TestTwoMethodsMustBeDifferent(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	sess, mid := tb.enroll(t, "alice", "alice@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
	// the tier's stricter number shows only after a first proof: before,
	// it would tell anyone that the name is a real administrator's
	if f.Required != 1 || len(f.Methods) < 2 {
		t.Fatalf("flow %+v", f)
	}
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	code := tb.inbox.LastCode(t, "alice@home.example")
	v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, code, Meta{})
	if err != nil || v.Remaining != 1 || v.Required != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	f.ID = v.ID
	// the same method again: no new code is sent and it cannot count twice
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
		t.Fatal(err)
	}
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, code, Meta{})
	wantCode(t, err, CodeInvalidCode)
	if v, _ := tb.svc.Flow(ctx, "reset", f.ID); v.Remaining != 1 {
		t.Fatalf("remaining %d", v.Remaining)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Some-New-Password-9", Meta{}), CodeNotVerified)
	// a phone as the second method
	ph := tb.addPhone(t, sess, "+44 7700 900123")
	// the flow offers what was registered when it started; a new flow sees the phone
	g, _ := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
	for _, m := range []string{mid, ph.ID} {
		tb.svc.SendFlowCode(ctx, "reset", g.ID, m, Meta{})
		to := "alice@home.example"
		if m == ph.ID {
			to = "+447700900123"
		}
		v, err := tb.svc.VerifyFlowCode(ctx, "reset", g.ID, m, tb.inbox.LastCode(t, to), Meta{})
		if err != nil {
			t.Fatal(err)
		}
		g.ID = v.ID
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", g.ID, "Some-New-Password-9", Meta{}); err != nil {
		t.Fatal(err)
	}
}

func TestCodesAreBoundToTheirFlow(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, cm := tb.enroll(t, "carol", "carol@home.example")
	_, am := tb.enroll(t, "alice", "alice@home.example")
	fc, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	fa, _ := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", fc.ID, cm, Meta{})
	code := tb.inbox.LastCode(t, "carol@home.example")
	// carol's code in alice's flow, with either method id
	for _, m := range []string{am, cm} {
		if _, err := tb.svc.VerifyFlowCode(ctx, "reset", fa.ID, m, code, Meta{}); err == nil {
			t.Fatal("a code worked in another user's flow")
		}
	}
	// a reset code in an unlock flow of the same user
	fu, _ := tb.svc.StartFlow(ctx, "unlock", "carol", Meta{})
	if _, err := tb.svc.VerifyFlowCode(ctx, "unlock", fu.ID, cm, code, Meta{}); err == nil {
		t.Fatal("a reset code worked for unlock")
	}
	// a flow id of one kind is not a flow of another
	_, err := tb.svc.VerifyFlowCode(ctx, "unlock", fc.ID, cm, code, Meta{})
	wantCode(t, err, CodeFlowExpired)
	// still good where it belongs
	if _, err := tb.svc.VerifyFlowCode(ctx, "reset", fc.ID, cm, code, Meta{}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRedemptionsAndCompletions(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	code := tb.inbox.LastCode(t, "carol@home.example")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, next := 0, ""
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, code, Meta{}); err == nil {
				mu.Lock()
				ok++
				next = v.ID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d of 20 concurrent redemptions succeeded", ok)
	}
	ok, f.ID = 0, next
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Concurrent-Pass-99", Meta{}); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if ok != 1 || tb.dir.Writes() != 1 {
		t.Fatalf("%d completions succeeded, %d directory writes", ok, tb.dir.Writes())
	}
}

func TestWrongCodesKillTheCode(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	code := tb.inbox.LastCode(t, "carol@home.example")
	for i := 0; i < tb.svc.o.MaxTries; i++ {
		_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, "00000000", Meta{})
		wantCode(t, err, CodeInvalidCode)
	}
	_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, code, Meta{})
	wantCode(t, err, CodeInvalidCode)
}

func TestCoolingOff(t *testing.T) {
	tb := newTestbed(t, func(o *Options) { o.CoolingOff = time.Hour })
	ctx := context.Background()
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	// said at the proof (TestCoolingOffUpFront), and again at completion
	_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "carol@home.example"), Meta{})
	wantCode(t, err, CodeMethodTooNew)
	fl, err := tb.st.GetFlow(ctx, f.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fl.Verified = []string{mid} // a proof recorded before the rule existed
	if err := tb.st.UpdateFlow(ctx, fl); err != nil {
		t.Fatal(err)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "New-Password-123", Meta{}), CodeMethodTooNew)
	if tb.dir.Writes() != 0 {
		t.Fatal("written despite the cooling-off period")
	}
}

func TestRegistrationRules(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	tb := newTestbed(t, nil)
	tb.svc.d.Now = clock
	ctx := context.Background()
	_, err := tb.svc.SignIn(ctx, "erin", tb.dir.Password("erin"), Meta{})
	wantCode(t, err, CodeNotEligible)
	_, err = tb.svc.SignIn(ctx, "carol", "wrong", Meta{})
	wantCode(t, err, CodeSignInFailed)
	_, err = tb.svc.SignIn(ctx, "nobody", "wrong", Meta{})
	wantCode(t, err, CodeSignInFailed)
	// a disabled account does not bind, as on the real servers: the same
	// answer as a wrong password
	_, err = tb.svc.SignIn(ctx, "ivan", tb.dir.Password("ivan"), Meta{})
	wantCode(t, err, CodeSignInFailed)

	sess, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"not-an-email", "a@b", "Carol <c@x.example>", "c@x.example\r\nBcc: e@evil.example", "c@x.example,d@y.example"} {
		_, err := tb.svc.AddMethod(ctx, sess, "email", bad, Meta{})
		wantCode(t, err, CodeInvalidEmail)
	}
	for _, bad := range []string{"12345", "+1 202 555 0143", "+49 30 1234567"} { // GB only
		_, err := tb.svc.AddMethod(ctx, sess, "sms", bad, Meta{})
		wantCode(t, err, CodeInvalidPhone)
	}
	_, err = tb.svc.AddMethod(ctx, sess, "totp", "x", Meta{})
	wantCode(t, err, CodeMethodType)
	// an unverified method is not offered for reset
	mv, err := tb.svc.AddMethod(ctx, sess, "email", "carol@home.example", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	for _, m := range f.Methods {
		if m.ID == mv.ID {
			t.Fatal("unverified method offered")
		}
	}
	// a stale sign-in must re-enter the password before adding
	now = now.Add(tb.svc.o.ReauthWindow + time.Minute)
	sess, _ = tb.svc.d.Store.GetSession(ctx, sess.ID, now)
	_, err = tb.svc.AddMethod(ctx, sess, "email", "other@home.example", Meta{})
	wantCode(t, err, CodeReauthRequired)
	// idle sessions end
	now = now.Add(tb.svc.o.SessionIdle + time.Minute)
	_, err = tb.svc.Session(ctx, sess.ID)
	wantCode(t, err, CodeSessionExpired)
}

func TestRemovingAMethodNeedsThePasswordAndTellsEveryChannel(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	sess, mid := tb.enroll(t, "carol", "carol@home.example")
	wantCode(t, tb.svc.RemoveMethod(ctx, sess, mid, "wrong", Meta{}), CodeSignInFailed)
	before := tb.inbox.Count("carol@home.example")
	if err := tb.svc.RemoveMethod(ctx, sess, mid, tb.dir.Password("carol"), Meta{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for tb.inbox.Count("carol@home.example") == before || tb.inbox.Count("carol@corp.example") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("removal not notified to the removed address and the directory mail")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ms, _ := tb.svc.Methods(ctx, sess)
	if len(ms) != 0 {
		t.Fatalf("methods %+v", ms)
	}
	if f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{}); len(f.Methods) == 0 || f.Methods[0].ID == mid {
		t.Fatalf("a removed method is still offered: %+v", f)
	}
	if len(ms) != 0 {
		t.Fatalf("methods %+v", ms)
	}
}

func TestChangeAndUnlock(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	wantCode(t, tb.svc.Change(ctx, "carol", "wrong", "Brand-New-Pass-1", Meta{}), CodeSignInFailed)
	wantCode(t, tb.svc.Change(ctx, "nobody", "wrong", "Brand-New-Pass-1", Meta{}), CodeSignInFailed)
	wantCode(t, tb.svc.Change(ctx, "carol", tb.dir.Password("carol"), "short", Meta{}), CodePasswordRejected)
	// a weak new password with a wrong old one says nothing about the name
	wantCode(t, tb.svc.Change(ctx, "carol", "wrong", "short", Meta{}), CodeSignInFailed)
	wantCode(t, tb.svc.Change(ctx, "nobody", "wrong", "short", Meta{}), CodeSignInFailed)
	if err := tb.svc.Change(ctx, "carol", "Carol-Pass1!", "Brand-New-Pass-1", Meta{}); err != nil {
		t.Fatal(err)
	}
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	f, _ := tb.svc.StartFlow(ctx, "unlock", "carol", Meta{})
	tb.svc.SendFlowCode(ctx, "unlock", f.ID, mid, Meta{})
	v, err := tb.svc.VerifyFlowCode(ctx, "unlock", f.ID, mid, tb.inbox.LastCode(t, "carol@home.example"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.svc.CompleteFlow(ctx, "unlock", v.ID, "", Meta{}); err != nil {
		t.Fatal(err)
	}
	if tb.dir.Unlocks() != 1 || tb.dir.Password("carol") != "Brand-New-Pass-1" {
		t.Fatal("unlock did not unlock only")
	}
}

func TestErrorsNeverCarrySecrets(t *testing.T) {
	p := problem(CodeInternal, errors.New("x"))
	if p.Message() != messages[CodeInternal] {
		t.Fatal(p.Message())
	}
	for code := range statuses {
		if _, ok := messages[code]; !ok {
			t.Errorf("no message for %s", code)
		}
	}
}

// TestFlowIDRotatesAndLiveCodesFollow: each proven method gives the flow a
// new id (the old one is dead for every step), and a code sent before the
// rotation still works under the new id.
func TestFlowIDRotatesAndLiveCodesFollow(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	sess, mid := tb.enroll(t, "alice", "alice@home.example")
	ph := tb.addPhone(t, sess, "+44 7700 900123")
	f, _ := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, ph.ID, Meta{})
	mailCode, smsCode := tb.inbox.LastCode(t, "alice@home.example"), tb.inbox.LastCode(t, "+447700900123")
	v1, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, mailCode, Meta{})
	if err != nil || v1.ID == f.ID || v1.Remaining != 1 {
		t.Fatalf("first proof: %+v %v", v1, err)
	}
	// the old id is gone for every step
	_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, ph.ID, smsCode, Meta{})
	wantCode(t, err, CodeFlowExpired)
	wantCode(t, tb.svc.SendFlowCode(ctx, "reset", f.ID, ph.ID, Meta{}), CodeFlowExpired)
	_, err = tb.svc.Flow(ctx, "reset", f.ID)
	wantCode(t, err, CodeFlowExpired)
	// the SMS code sent before the rotation works under the new id
	v2, err := tb.svc.VerifyFlowCode(ctx, "reset", v1.ID, ph.ID, smsCode, Meta{})
	if err != nil || v2.Remaining != 0 || v2.ID == v1.ID {
		t.Fatalf("second proof: %+v %v", v2, err)
	}
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", v1.ID, "Some-New-Password-9", Meta{}), CodeFlowExpired)
	if err := tb.svc.CompleteFlow(ctx, "reset", v2.ID, "Some-New-Password-9", Meta{}); err != nil {
		t.Fatal(err)
	}
}

// TestSharedDestinationIsFlagged: an address verified on a second account
// leaves an audit event for the admins (security notes D5), and nothing
// for an address only one account has.
func TestSharedDestinationIsFlagged(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	tb.enroll(t, "carol", "shared@home.example")
	flagged := func() []store.AuditEvent {
		evs, err := tb.st.ListAudit(ctx, storeQuery("registration.shared_destination"))
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	if evs := flagged(); len(evs) != 0 {
		t.Fatalf("flagged with one account: %+v", evs)
	}
	sess, _ := tb.enroll(t, "alice", "alice@home.example")
	if evs := flagged(); len(evs) != 0 {
		t.Fatalf("flagged a distinct address: %+v", evs)
	}
	mv, err := tb.svc.AddMethod(ctx, sess, "email", " Shared@HOME.example ", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, mv.ID, tb.inbox.LastCode(t, "Shared@home.example"), Meta{}); err != nil {
		t.Fatal(err)
	}
	evs := flagged()
	if len(evs) != 1 || evs[0].AccountID != sess.AccountID || evs[0].Outcome != "flagged" || evs[0].Details["accounts"] != "2" {
		t.Fatalf("flags %+v", evs)
	}
	if strings.Contains(fmt.Sprint(evs[0].Details), "shared@") {
		t.Fatal("the address is in the audit event")
	}
}

// TestPartialSuccessIsNotified: after one of two methods is proven, three
// wrong codes for the second tell the user on every channel, once.
func TestPartialSuccessIsNotified(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	sess, mid := tb.enroll(t, "alice", "alice@home.example")
	ph := tb.addPhone(t, sess, "+44 7700 900123")
	tb.settle(t)
	before := tb.inbox.Count("alice@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "alice@home.example"), Meta{})
	if err != nil || v.Remaining != 1 {
		t.Fatalf("first proof: %+v %v", v, err)
	}
	tb.svc.SendFlowCode(ctx, "reset", v.ID, ph.ID, Meta{})
	for i := 0; i < 4; i++ {
		if _, err := tb.svc.VerifyFlowCode(ctx, "reset", v.ID, ph.ID, "00000000", Meta{}); err == nil {
			t.Fatal("a wrong code passed")
		}
		if i == 1 {
			time.Sleep(codeSendDelay)                                     // a notice would have left by now
			if n := tb.inbox.Count("alice@home.example"); n != before+1 { // the reset code only
				t.Fatalf("told after two wrong codes: %d messages", n-before)
			}
		}
	}
	// the code mail plus one notice (not two: the fourth try tells nobody)
	tb.inbox.Wait(t, "alice@home.example", before+2)
	time.Sleep(codeSendDelay) // a second notice would have left by now
	if n := tb.inbox.Count("alice@home.example"); n != before+2 {
		t.Fatalf("%d messages after four wrong codes, want the code and one notice", n-before)
	}
	told := map[string]bool{}
	for _, e := range tb.rec.Emails() {
		if strings.Contains(e.Text, "failed to prove a second one") {
			told[e.To] = true
		}
	}
	for _, m := range tb.rec.SMS() {
		if strings.Contains(m.Body, "not finished") {
			told[m.To] = true
		}
	}
	if !told["alice@home.example"] || !told["alice@corp.example"] || !told["+447700900123"] {
		t.Fatalf("told %v, want the registered email, the directory mail and the phone", told)
	}
	evs, _ := tb.st.ListAudit(ctx, storeQuery("reset.partial_failure"))
	if len(evs) != 1 || evs[0].AccountID != "id-alice" {
		t.Fatalf("audit %+v", evs)
	}
}

// TestDeliveryFailuresDoNotShow: when the mail server refuses everything,
// sending a code answers as for a fake method (security notes A5).
func TestDeliveryFailuresDoNotShow(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	tb.settle(t)
	before := len(tb.rec.Emails())
	tb.rec.Err = errors.New("550 mailbox unavailable")
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
		t.Fatalf("a refused delivery showed: %v", err)
	}
	g, _ := tb.svc.StartFlow(ctx, "reset", "no-such-user", Meta{})
	if err := tb.svc.SendFlowCode(ctx, "reset", g.ID, g.Methods[0].ID, Meta{}); err != nil {
		t.Fatalf("fake send: %v", err)
	}
	time.Sleep(codeSendDelay)
	if n := len(tb.rec.Emails()); n != before {
		t.Fatalf("%d emails recorded while the server refused all", n-before)
	}
}

// TestNoticesSayWhenAndFromWhere: a notice carries the time and the client
// address of the request (security notes H1), never a code or a password.
func TestNoticesSayWhenAndFromWhere(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	tb.enroll(t, "carol", "carol@home.example")
	if err := tb.svc.Change(ctx, "carol", tb.dir.Password("carol"), "Brand-New-Passw0rd-1", Meta{ClientIP: "198.51.100.23"}); err != nil {
		t.Fatal(err)
	}
	var notice []notify.Email
	waitFor(t, func() bool {
		notice = nil
		for _, e := range tb.rec.Emails() {
			if e.To == "carol@home.example" && strings.Contains(e.Subject, "changed") {
				notice = append(notice, e)
			}
		}
		return len(notice) > 0
	})
	for _, e := range notice {
		if !strings.Contains(e.Text, "from the address 198.51.100.23") || !strings.Contains(e.HTML, "198.51.100.23") || !strings.Contains(e.Text, "UTC") {
			t.Fatalf("notice without time or source:\n%s", e.Text)
		}
		if strings.Contains(e.Text, "Brand-New-Passw0rd-1") {
			t.Fatal("the notice holds the password")
		}
	}
}

// TestCodeSentIsAuditedWithChannelAndMaskedDestination (security notes H3):
// the audit says where a code went, masked, never the address itself.
func TestCodeSentIsAuditedWithChannelAndMaskedDestination(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
		t.Fatal(err)
	}
	evs, _ := tb.st.ListAudit(ctx, storeQuery("reset.code_sent"))
	if len(evs) != 1 || evs[0].Details["type"] != "email" || evs[0].Details["to"] != "c•••@h•••.example" || evs[0].Details["method"] != mid {
		t.Fatalf("code_sent %+v", evs)
	}
}
