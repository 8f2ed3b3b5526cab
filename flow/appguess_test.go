package flow

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
)

// noticesWith counts the mails to addr whose subject holds subject.
func (tb *testbed) noticesWith(addr, subject string) int {
	n := 0
	for _, e := range tb.rec.Emails() {
		if e.To == addr && strings.Contains(e.Subject, subject) {
			n++
		}
	}
	return n
}

// waitNotice waits until n mails to addr have subject in theirs.
// waitOutboxEmpty waits until no message is pending in tb's outbox.
func waitOutboxEmpty(t *testing.T, tb *testbed) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); pendingMessages(t, tb.st) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still pending after 10 s", pendingMessages(t, tb.st))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tb *testbed) waitNotice(t *testing.T, addr, subject string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); tb.noticesWith(addr, subject) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d %q notices to %s, want %d", tb.noticesWith(addr, subject), subject, addr, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := tb.noticesWith(addr, subject); got != n {
		t.Fatalf("%d %q notices to %s, want %d", got, subject, addr, n)
	}
}

func (tb *testbed) auditCount(t *testing.T, typ, outcome string) int {
	t.Helper()
	n := 0
	for _, o := range tb.auditOutcomes(t, typ) {
		if o == outcome {
			n++
		}
	}
	return n
}

const (
	guessingSubject  = "wrong authenticator app codes were entered"
	suspendedSubject = "your authenticator app was suspended"
)

// TestAppGuessingIsToldAndSuspended: wrong authenticator-app codes, ten
// an hour (the hourly budget of wrong codes), are told on every channel
// once limits.app_failures_notify of them are in, before any method is
// proven and once in the window, not for every code; at
// limits.app_failures the app is suspended for resets (the right code is
// refused as a wrong one, and the user is told) until the user signs in
// with the password. Each step is audited.
func TestAppGuessingIsToldAndSuspended(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		tb, clk, _ := totpBed(t, nil)
		ctx := context.Background()
		tb.enroll(t, "carol", "carol@home.example")
		_, en := tb.enrolApp(t, clk, "carol")
		if l := tb.svc.o.Limits; l.AppFailures != 30 || l.AppFailuresNotify != 5 || l.AppFailureWindow != 24*time.Hour {
			t.Fatalf("defaults: %+v", l)
		}
		addrs := []string{"carol@home.example", "carol@corp.example"}
		clk.Add(time.Hour) // the set-up's codes spent some of this hour's budget
		// the next three hours must fall in one window of the notice (a
		// day, from UTC midnight): within four hours of its end, go on to
		// an hour into the next one (same offset in the 30 s step). Run
		// after 21:00 UTC the test crossed midnight and saw a second
		// notice (CI run G-2).
		if end := clk.Now().Truncate(24 * time.Hour).Add(24 * time.Hour); end.Sub(clk.Now()) < 4*time.Hour {
			clk.Add(end.Sub(clk.Now()) + time.Hour + 10*time.Second)
		}

		guess := func(n int) {
			t.Helper()
			f, app := tb.appFlow(t, "carol")
			for range n {
				_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, app, flowtest.WrongTOTP(t, en.Secret, clk.Now()), Meta{})
				wantCode(t, err, CodeInvalidCode)
			}
		}
		guess(4)
		if n := tb.auditCount(t, "reset.app_failures", "notified"); n != 0 {
			t.Fatalf("told after 4 wrong codes: %d events", n)
		}
		guess(6) // the fifth tells, the next ones do not
		for _, a := range addrs {
			tb.waitNotice(t, a, guessingSubject, 1)
		}
		if n := tb.auditCount(t, "reset.app_failures", "notified"); n != 1 {
			t.Fatalf("%d notified events after 10 wrong codes, want 1", n)
		}
		// twenty more, ten an hour: the thirtieth suspends the app
		for range 2 {
			clk.Add(time.Hour)
			guess(10)
		}
		for _, a := range addrs {
			tb.waitNotice(t, a, suspendedSubject, 1)
			tb.waitNotice(t, a, guessingSubject, 1) // still once in the window
		}
		if n := tb.auditCount(t, "reset.app_failures", "app_blocked"); n != 1 {
			t.Fatalf("%d app_blocked events, want 1", n)
		}
		// an hour later, within the budget of wrong codes, the right code is
		// refused as a wrong one, and so is the next day's
		for range 2 {
			clk.Add(time.Hour)
			f, app := tb.appFlow(t, "carol")
			_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, app, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{})
			wantCode(t, err, CodeInvalidCode)
			clk.Add(24 * time.Hour)
		}
		if n := tb.auditCount(t, "blocked", "app_failures"); n != 2 {
			t.Fatalf("%d blocked/app_failures events, want 2", n)
		}
		// the user signs in with the password: the app works again
		if _, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{}); err != nil {
			t.Fatal(err)
		}
		if n := tb.auditCount(t, "registration.app_unblocked", "success"); n != 1 {
			t.Fatalf("%d app_unblocked events, want 1", n)
		}
		f, app := tb.appFlow(t, "carol")
		if _, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, app, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{}); err != nil {
			t.Fatalf("after signing in: %v", err)
		}
		// suspended or told, nothing in any message tells the code or the seed
		for _, e := range tb.rec.Emails() {
			if strings.Contains(e.Text, en.Secret) || strings.Contains(e.HTML, en.Secret) {
				t.Fatal("a notice holds the seed")
			}
		}
	})
}

// TestAppGuessingNoticeOncePerWindow: the notice comes again only in a
// later window, and only after wrong codes there.
func TestAppGuessingNoticeOncePerWindow(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		tb, clk, _ := totpBed(t, func(o *Options) {
			o.Limits.AppFailuresNotify, o.Limits.AppFailures, o.Limits.AppFailureWindow = 2, 1000, 3*time.Hour
		})
		ctx := context.Background()
		tb.enroll(t, "carol", "carol@home.example")
		_, en := tb.enrolApp(t, clk, "carol")
		wrong := func(n int) {
			t.Helper()
			f, app := tb.appFlow(t, "carol")
			for range n {
				_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, app, flowtest.WrongTOTP(t, en.Secret, clk.Now()), Meta{})
				wantCode(t, err, CodeInvalidCode)
			}
		}
		wrong(8)
		tb.waitNotice(t, "carol@home.example", guessingSubject, 1)
		// two windows on, the old wrong codes no longer count
		clk.Add(6 * time.Hour)
		wrong(1)
		if n := tb.auditCount(t, "reset.app_failures", "notified"); n != 1 {
			t.Fatalf("%d notified events, want 1", n)
		}
		wrong(1)
		tb.waitNotice(t, "carol@home.example", guessingSubject, 2)
	})
}

// TestAppGuessingLooksAlikeForUnknownNames: a name nobody has, whose fake
// set holds an app, and a real account get the same answer to every wrong
// code, past the notice threshold and the cap, and to the code after it;
// nothing is sent for the unknown name; its wrong codes are counted and
// audited as the real one's are.
func TestAppGuessingLooksAlikeForUnknownNames(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		tb, clk, _ := totpBed(t, func(o *Options) {
			o.Limits.AppFailuresNotify, o.Limits.AppFailures, o.Limits.CodeFailuresPerAccount = 2, 4, 100
		})
		ctx := context.Background()
		tb.enroll(t, "carol", "carol@home.example")
		_, en := tb.enrolApp(t, clk, "carol")
		clk.Add(30 * time.Second) // the enrolment's code is spent
		// a name nobody has whose fake set holds an app
		fake := ""
		for i := 0; fake == ""; i++ {
			if _, ok := tb.flowApp(t, fmt.Sprintf("nobody-%d", i)); ok {
				fake = fmt.Sprintf("nobody-%d", i)
			}
		}
		// the registration's and the enrolment's messages have left the
		// outbox before counting (CI run W-4 counted two of them late)
		waitOutboxEmpty(t, tb)
		sent := len(tb.rec.Emails()) + len(tb.rec.SMS())
		answers := func(name string) []string {
			f, ok := tb.flowApp(t, name)
			if !ok {
				t.Fatalf("no app offered to %s", name)
			}
			app := ""
			for _, m := range f.Methods {
				if m.Type == MethodTOTP {
					app = m.ID
				}
			}
			var out []string
			for i := range 6 {
				code := flowtest.WrongTOTP(t, en.Secret, clk.Now())
				if i == 5 && name == "carol" {
					code = flowtest.CodeAt(t, en.Secret, clk.Now()) // the right one, after the cap
				}
				_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, app, code, Meta{})
				if err == nil {
					out = append(out, "accepted")
					continue
				}
				p := asProblem(err)
				out = append(out, fmt.Sprintf("%s %d %s", p.Code, p.Status, p.Message()))
			}
			return out
		}
		real, unknown := answers("carol"), answers(fake)
		if strings.Join(real, "\n") != strings.Join(unknown, "\n") {
			t.Fatalf("answers differ:\nreal    %q\nunknown %q", real, unknown)
		}
		for _, a := range real {
			if !strings.HasPrefix(a, CodeInvalidCode+" ") {
				t.Fatalf("answer %q", a)
			}
		}
		tb.waitNotice(t, "carol@home.example", suspendedSubject, 1)
		waitOutboxEmpty(t, tb)
		// the real account's notices only: two to each of its two addresses
		if n := len(tb.rec.Emails()) + len(tb.rec.SMS()); n != sent+4 {
			t.Fatalf("%d messages sent, want 4 (carol's)", n-sent)
		}
		// counted and audited alike: one notified and one app_blocked each,
		// and the try after the cap refused as blocked
		evs, err := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.app_failures"})
		if err != nil {
			t.Fatal(err)
		}
		accounts := map[string][]string{}
		for _, e := range evs {
			accounts[e.AccountID] = append(accounts[e.AccountID], e.Outcome)
		}
		if len(accounts["id-carol"]) != 2 || len(accounts[""]) != 2 {
			t.Fatalf("app_failures events: %v", accounts)
		}
		if n := tb.auditCount(t, "blocked", "app_failures"); n != 4 {
			t.Fatalf("%d blocked/app_failures events, want 4 (two each)", n)
		}
	})
}

// flowApp starts a reset for name and reports whether it offers an app.
func (tb *testbed) flowApp(t *testing.T, name string) (FlowView, bool) {
	t.Helper()
	f, err := tb.svc.StartFlow(context.Background(), "reset", name, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Methods {
		if m.Type == MethodTOTP {
			return f, true
		}
	}
	return f, false
}
