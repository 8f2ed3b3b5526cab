package flow

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitOutboxIdle waits until every message written so far by this
// instance is sent or given up on.
func (tb *testbed) waitOutboxIdle(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); tb.svc.out.pendingLocal() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still has %d messages not finished", tb.svc.out.pendingLocal())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// smsTo counts the text messages to number whose body contains part.
func (tb *testbed) smsTo(number, part string) int {
	n := 0
	for _, m := range tb.rec.SMS() {
		if m.To == number && strings.Contains(m.Body, part) {
			n++
		}
	}
	return n
}

// emailsTo counts the emails to addr whose subject contains part.
func (tb *testbed) emailsTo(addr, part string) int {
	n := 0
	for _, e := range tb.rec.Emails() {
		if e.To == addr && strings.Contains(e.Subject, part) {
			n++
		}
	}
	return n
}

const testPhone = "+447700900123"

// WB-4: a signed-in user who sets security questions over and over (or
// adds passkeys, or removes methods) made one notice per channel each
// time, past every send and SMS budget: 30 question changes sent 30 SMS
// with an hourly SMS budget of 5. Notices now spend the account's notice
// budget and the SMS budgets; what is held back is told once, later.
func TestNoticesObeyBudgets(t *testing.T) {
	tb, clk, _ := qBed(t, func(o *Options) {
		o.Limits.SMSPerHour, o.Limits.SMSPerPrefixPerHour = 5, 5
		o.Limits.NoticesPerAccount = 3
	})
	ctx := context.Background()
	sess, _ := tb.enroll(t, "carol", "carol@home.example")
	tb.addPhone(t, sess, "+44 7700 900123")
	tb.waitOutboxIdle(t)
	smsBefore := len(tb.rec.SMS())
	mailBefore := tb.emailsTo("carol@home.example", "")
	for range 30 {
		tb.setGoodQuestions(t, sess)
	}
	tb.waitOutboxIdle(t)
	if n := len(tb.rec.SMS()); n > 5 {
		t.Fatalf("%d SMS sent in the hour, the hourly SMS budget is 5", n)
	}
	if n := tb.emailsTo("carol@home.example", "") - mailBefore; n > 3 {
		t.Fatalf("%d notices mailed for 30 changes, the account's notice budget is 3", n)
	}
	if n := len(tb.rec.SMS()) - smsBefore; n == 0 {
		t.Fatal("no notice at all by SMS: the budget should let the first ones through")
	}
	if held := tb.auditOutcomes(t, "notice.held"); len(held) == 0 {
		t.Fatal("notices held back without an audit event")
	}
	// nothing is due before the window ends
	if n, err := tb.svc.SendHeldNotices(ctx); err != nil || n != 0 {
		t.Fatalf("SendHeldNotices before the window ended: %d, %v", n, err)
	}
	// the window ends: one notice tells of the changes, on every channel
	clk.Add(time.Hour + time.Minute)
	if n, err := tb.svc.SendHeldNotices(ctx); err != nil || n != 1 {
		t.Fatalf("SendHeldNotices: %d, %v; want 1", n, err)
	}
	tb.waitOutboxIdle(t)
	for _, addr := range []string{"carol@home.example", "carol@corp.example"} {
		if n := tb.emailsTo(addr, "several changes"); n != 1 {
			t.Errorf("%d coalesced notices mailed to %s, want 1", n, addr)
		}
	}
	if n := tb.smsTo(testPhone, "several changes"); n != 1 {
		t.Errorf("%d coalesced notices by SMS, want 1", n)
	}
	for _, e := range tb.rec.Emails() {
		if strings.Contains(e.Subject, "several changes") && !strings.Contains(e.Text, "A recovery method was added") {
			t.Errorf("the coalesced notice does not say what changed:\n%s", e.Text)
		}
	}
	if got := tb.auditOutcomes(t, "notice.coalesced"); len(got) != 1 || got[0] != "sent" {
		t.Errorf("notice.coalesced events %v, want one sent", got)
	}
	// told once
	if n, err := tb.svc.SendHeldNotices(ctx); err != nil || n != 0 {
		t.Fatalf("SendHeldNotices again: %d, %v", n, err)
	}
}

// WB-4: the reset notice is the security signal: it goes out at once on
// every channel even when the account's notice budget and the SMS budgets
// are spent (and it spends them).
func TestResetNoticeIgnoresSpentBudgets(t *testing.T) {
	tb, _, _ := qBed(t, func(o *Options) {
		o.Limits.SMSPerHour, o.Limits.SMSPerPrefixPerHour = 3, 3
		o.Limits.NoticesPerAccount = 2
	})
	ctx := context.Background()
	sess, mid := tb.enroll(t, "carol", "carol@home.example")
	tb.addPhone(t, sess, "+44 7700 900123")
	for range 5 {
		tb.setGoodQuestions(t, sess)
	}
	tb.waitOutboxIdle(t)
	f, err := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f = tb.proveEmail(t, f, mid, "carol@home.example")
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-42!", Meta{}); err != nil {
		t.Fatal(err)
	}
	tb.waitOutboxIdle(t)
	for _, addr := range []string{"carol@home.example", "carol@corp.example"} {
		if n := tb.emailsTo(addr, "your password was reset"); n != 1 {
			t.Errorf("%d reset notices to %s, want 1", n, addr)
		}
	}
	if n := tb.smsTo(testPhone, "your password was reset"); n != 1 {
		t.Errorf("%d reset notices by SMS, want 1", n)
	}
}

// WB-10: MaxMethods was checked by listing the methods and then adding
// one, with no lock: parallel additions went past it. The store now counts
// and adds in one atomic step (conformance Methods/AddWithin runs the same
// race on SQLite and PostgreSQL, across two instances).
func TestMaxMethodsUnderConcurrency(t *testing.T) {
	tb, _, _ := qBed(t, func(o *Options) { o.MaxMethods = 3 })
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			_, err := tb.svc.AddMethod(ctx, sess, "email", fmt.Sprintf("carol+%d@home%d.example", i, i), Meta{})
			errs <- err
		}()
	}
	close(start)
	added := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			added++
		case asProblem(err).Code != CodeMethodLimit:
			t.Fatalf("AddMethod: %v", err)
		}
	}
	ms, err := tb.st.ListMethods(ctx, "id-carol")
	if err != nil {
		t.Fatal(err)
	}
	if added != 3 || len(ms) != 3 {
		t.Fatalf("%d additions succeeded, %d methods stored; MaxMethods is 3", added, len(ms))
	}
}
