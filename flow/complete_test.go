package flow

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
)

// Completions whose outcome is unknown: a password write whose answer was
// lost, or an instance that stopped between the write and recording it.
// The next completion asks the directory when the password was last set,
// and never writes it a second time.

// verifiedReset enrols carol's email and returns a reset flow proven with it.
func (tb *testbed) verifiedReset(t *testing.T) (store.Session, FlowView) {
	t.Helper()
	ctx := context.Background()
	sess, mid := tb.enroll(t, "carol", "carol@home.example")
	f, err := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
		t.Fatal(err)
	}
	v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "carol@home.example"), Meta{})
	if err != nil || v.Remaining != 0 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	return sess, v
}

func (tb *testbed) writes() int { return tb.dir.Writes() }

func (tb *testbed) auditOutcomes(t *testing.T, typ string) []string {
	t.Helper()
	return flowtest.AuditOutcomes(t, tb.st, typ)
}

// loseAnswer completes flow id with pw while the directory applies the
// write and its answer is lost: 503, one write landed.
func (tb *testbed) loseAnswer(t *testing.T, id, pw string) {
	t.Helper()
	before := tb.writes()
	tb.dir.SetReplyLost(true)
	wantCode(t, tb.svc.CompleteFlow(context.Background(), "reset", id, pw, Meta{}), CodeUnavailable)
	tb.dir.SetReplyLost(false)
	if tb.writes() != before+1 || tb.dir.Password("carol") != pw {
		t.Fatalf("the write did not land: %d writes", tb.writes()-before)
	}
}

func TestLostWriteAnswerIsNotWrittenAgain(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	sess, f := tb.verifiedReset(t)
	sent := tb.inbox.Count("carol@home.example")

	tb.loseAnswer(t, f.ID, "Lost-Answer-42")

	// the user submits again: the directory says the password moved since
	// the first completion read it, so nothing is written twice
	err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Lost-Answer-42", Meta{})
	wantCode(t, err, CodeAlreadyCompleted)
	if asProblem(err).Status != 409 {
		t.Fatalf("status %d", asProblem(err).Status)
	}
	if tb.writes() != 1 {
		t.Fatalf("%d directory writes, want 1", tb.writes())
	}
	// the bookkeeping the first completion never did: flow and session
	// ended, the reset audited, the user told
	_, err = tb.svc.Flow(ctx, "reset", f.ID)
	wantCode(t, err, CodeFlowExpired)
	_, err = tb.svc.Session(ctx, sess.ID)
	wantCode(t, err, CodeSessionExpired)
	if got := tb.auditOutcomes(t, "reset.completed"); len(got) != 2 || !slices.Contains(got, "already_written") || !slices.Contains(got, "refused") {
		t.Fatalf("reset.completed outcomes %v, want one refused and one already_written", got)
	}
	tb.inbox.Wait(t, "carol@home.example", sent+1)
}

func TestUnsentWriteIsWrittenOnRetry(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, f := tb.verifiedReset(t)

	tb.dir.SetWriteDown(true)
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Never-Sent-42", Meta{}), CodeUnavailable)
	if tb.writes() != 0 {
		t.Fatalf("%d writes while the directory was down", tb.writes())
	}
	tb.dir.SetWriteDown(false)
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Never-Sent-42", Meta{}); err != nil {
		t.Fatal(err)
	}
	if tb.writes() != 1 || tb.dir.Password("carol") != "Never-Sent-42" {
		t.Fatalf("%d writes, password %q", tb.writes(), tb.dir.Password("carol"))
	}
}

// leaveClaim stores on flow id what a completion stores before its
// directory write (its claim and the password's last-set time), as an
// instance that then stops leaves it; it returns the user.
func (tb *testbed) leaveClaim(t *testing.T, clk *flowtest.Clock, id, user string) *directory.User {
	t.Helper()
	ctx := context.Background()
	f, err := tb.st.GetFlow(ctx, id, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := tb.dir.Lookup(ctx, user)
	f.Data["writing"] = clk.Now().Format(time.RFC3339Nano)
	f.Data["pw_set_before"] = formatPasswordSet(u.Status.PasswordChanged)
	if err := tb.st.UpdateFlow(ctx, f); err != nil {
		t.Fatal(err)
	}
	return u
}

// An instance that stopped after the write, before recording it, left its
// claim on the flow. The next completion, even while the claim holds,
// answers already_completed and records the write: flows and sessions
// end, the reset is audited once, the user is told.
func TestStoppedAfterWriteIsNotWrittenAgain(t *testing.T) {
	tb := newTestbed(t, nil)
	clk := flowtest.NewClock(time.Now().UTC())
	tb.svc.d.Now = clk.Now
	ctx := context.Background()
	sess, fv := tb.verifiedReset(t)

	// what a completion stores before its write, then the write itself;
	// then the instance is gone
	u := tb.leaveClaim(t, clk, fv.ID, "carol")
	if err := tb.dir.SetPassword(ctx, u, "Crashed-After-42", directory.SetOptions{}); err != nil {
		t.Fatal(err)
	}

	sent := tb.inbox.Count("carol@home.example")
	clk.Add(10 * time.Second)
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", fv.ID, "Crashed-After-42", Meta{}), CodeAlreadyCompleted)
	// recorded: the flow is finished
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", fv.ID, "Another-Pass-42", Meta{}), CodeFlowExpired)
	if tb.writes() != 1 || tb.dir.Password("carol") != "Crashed-After-42" {
		t.Fatalf("%d writes, password %q", tb.writes(), tb.dir.Password("carol"))
	}
	_, err := tb.svc.Flow(ctx, "reset", fv.ID)
	wantCode(t, err, CodeFlowExpired)
	_, err = tb.svc.Session(ctx, sess.ID)
	wantCode(t, err, CodeSessionExpired)
	if got := tb.auditOutcomes(t, "reset.completed"); len(got) != 1 || got[0] != "already_written" {
		t.Fatalf("reset.completed outcomes %v", got)
	}
	tb.inbox.Wait(t, "carol@home.example", sent+1)
}

// Retries sent at once after a lost answer (a double click): every one
// answers already_completed, and the write is recorded once: one audit
// event, one notice.
func TestConcurrentRetriesRecordOnce(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, f := tb.verifiedReset(t)
	tb.loseAnswer(t, f.ID, "Lost-Answer-42")
	sent := tb.inbox.Count("carol@home.example")

	var wg sync.WaitGroup
	codes := make([]string, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = asProblem(tb.svc.CompleteFlow(ctx, "reset", f.ID, "Lost-Answer-42", Meta{})).Code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		// the ones after the recording find the flow gone
		if c != CodeAlreadyCompleted && c != CodeFlowExpired {
			t.Fatalf("retry %d: %s", i, c)
		}
	}
	if !slices.Contains(codes, CodeAlreadyCompleted) {
		t.Fatalf("no retry answered already_completed: %v", codes)
	}
	if tb.writes() != 1 {
		t.Fatalf("%d writes", tb.writes())
	}
	if got := tb.auditOutcomes(t, "reset.completed"); len(got) != 2 || !slices.Contains(got, "already_written") || !slices.Contains(got, "refused") {
		t.Fatalf("reset.completed outcomes %v, want one refused and one already_written", got)
	}
	tb.inbox.Wait(t, "carol@home.example", sent+1)
	time.Sleep(codeSendDelay) // a second notice would have left by now
	if n := tb.inbox.Count("carol@home.example"); n != sent+1 {
		t.Fatalf("%d notices, want 1", n-sent)
	}
}

// A retry whose password breaks the gateway's own rules still learns that
// the earlier attempt set the password.
func TestAlreadyCompletedBeforePasswordRules(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := context.Background()
	_, f := tb.verifiedReset(t)
	tb.loseAnswer(t, f.ID, "Lost-Answer-42")
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "short", Meta{}), CodeAlreadyCompleted)
}

// A claim that lapsed after a write that never happened does not stop the
// flow: the password has not moved, so the next completion writes.
func TestStoppedBeforeWriteWritesOnRetry(t *testing.T) {
	tb := newTestbed(t, nil)
	clk := flowtest.NewClock(time.Now().UTC())
	tb.svc.d.Now = clk.Now
	ctx := context.Background()
	_, fv := tb.verifiedReset(t)
	tb.leaveClaim(t, clk, fv.ID, "carol")
	wantCode(t, tb.svc.CompleteFlow(ctx, "reset", fv.ID, "Retried-Pass-42", Meta{}), CodeFlowExpired)
	clk.Add(writeLease)
	if err := tb.svc.CompleteFlow(ctx, "reset", fv.ID, "Retried-Pass-42", Meta{}); err != nil {
		t.Fatal(err)
	}
	if tb.writes() != 1 || tb.dir.Password("carol") != "Retried-Pass-42" {
		t.Fatalf("%d writes, password %q", tb.writes(), tb.dir.Password("carol"))
	}
}
