package flow

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
)

// A password written is always recorded, whatever happens to the flow
// while the directory write is under way: a passkey challenge asked for on
// the flow, a method proven again, the flow expiring. Each ends with one
// reset.completed event, the "password reset" notice on every channel, and
// the account's sessions and flows ended.

// resetNotices counts the "your password was reset" mails to addr.
func (tb *testbed) resetNotices(addr string) int {
	n := 0
	for _, e := range tb.rec.Emails() {
		if e.To == addr && strings.Contains(e.Subject, "your password was reset") {
			n++
		}
	}
	return n
}

// wantRecordedOnce checks what recording carol's reset does: one
// reset.completed event (success), the flow flowID and every session
// ended, and one notice to each of addrs (the registered channel and the
// directory mail).
func (tb *testbed) wantRecordedOnce(t *testing.T, flowID string, sessions []store.Session, addrs ...string) {
	t.Helper()
	ctx := context.Background()
	if got := tb.auditOutcomes(t, "reset.completed"); len(got) != 1 || got[0] != "success" {
		t.Fatalf("reset.completed outcomes %v, want one success", got)
	}
	for _, s := range sessions {
		_, err := tb.svc.Session(ctx, s.ID)
		wantCode(t, err, CodeSessionExpired)
	}
	if _, err := tb.svc.Flow(ctx, "reset", flowID); err == nil {
		t.Fatal("the completed flow is still there")
	}
	for _, addr := range addrs {
		for deadline := time.Now().Add(5 * time.Second); tb.resetNotices(addr) == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("no reset notice to %s", addr)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := tb.resetNotices(addr); n != 1 {
			t.Fatalf("%d reset notices to %s, want 1", n, addr)
		}
	}
}

// Passkey challenges asked for on a proven flow (by anyone holding its
// id, from several goroutines) while its completion writes the password:
// the write is recorded all the same.
func TestCompletionRacedByPasskeyChallengesIsRecorded(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		tb := passkeyBed(t)
		ctx := context.Background()
		s1, mid := tb.enroll(t, "carol", "carol@home.example")
		s2, _ := tb.addPasskey(t, "carol", flowtest.NewSoftKey(t))
		f, pk := tb.passkeyFlow(t, "carol")
		if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{}); err != nil {
			t.Fatal(err)
		}
		v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "carol@home.example"), Meta{})
		if err != nil || v.Remaining != 0 {
			t.Fatalf("verify: %+v %v", v, err)
		}

		var writing atomic.Bool
		var during atomic.Int32 // challenges asked for and answered during the write
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					began := writing.Load()
					_, _ = tb.svc.SendFlowChallenge(ctx, "reset", v.ID, pk, Meta{})
					if began {
						during.Add(1)
					}
				}
			}()
		}
		// the directory write lasts until challenges asked for after it began
		// have been answered
		tb.dir.SetDuringWrite(func() {
			writing.Store(true)
			for deadline := time.Now().Add(10 * time.Second); during.Load() < 4 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		})
		done := false
		for i := 0; i < 200 && !done; i++ {
			switch err := tb.svc.CompleteFlow(ctx, "reset", v.ID, "Raced-Pass-4242", Meta{}); {
			case err == nil:
				done = true
			case asProblem(err).Code == CodeFlowExpired && tb.writes() == 0:
				// the claim lost to a challenge before anything was written
			default:
				t.Fatalf("completion: %v", err)
			}
		}
		close(stop)
		wg.Wait()
		if !done || during.Load() < 4 {
			t.Fatalf("completed %v, %d challenges during the write", done, during.Load())
		}
		if tb.writes() != 1 || tb.dir.Password("carol") != "Raced-Pass-4242" {
			t.Fatalf("%d writes", tb.writes())
		}
		tb.wantRecordedOnce(t, v.ID, []store.Session{s1, s2}, "carol@home.example", "carol@corp.example")
	})
}

// The authenticator app proven a second time (with the next step's code)
// between the completion's claim and its record: refused, and the write
// is recorded.
func TestSecondAppProofDuringCompletionIsRecorded(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		tb, clk, _ := totpBed(t, nil)
		ctx := context.Background()
		s1, _ := tb.enroll(t, "carol", "carol@home.example")
		s2, en := tb.enrolApp(t, clk, "carol")
		clk.Add(30 * time.Second)
		f, app := tb.appFlow(t, "carol")
		v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, app, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{})
		if err != nil || v.Remaining != 0 {
			t.Fatalf("verify: %+v %v", v, err)
		}
		again := errors.New("not tried")
		tb.dir.SetDuringWrite(func() {
			clk.Add(30 * time.Second) // a step whose code was never used
			_, again = tb.svc.VerifyFlowCode(ctx, "reset", v.ID, app, flowtest.CodeAt(t, en.Secret, clk.Now()), Meta{})
		})
		if err := tb.svc.CompleteFlow(ctx, "reset", v.ID, "Second-Proof-4242", Meta{}); err != nil {
			t.Fatal(err)
		}
		if again == nil {
			t.Error("the app was proven a second time while the password was written")
		}
		tb.wantRecordedOnce(t, v.ID, []store.Session{s1, s2}, "carol@home.example", "carol@corp.example")
	})
}

// A user who completes in the last moments of the flow: the directory
// write outlasts the flow, and it is recorded all the same.
func TestWriteOutlastingTheFlowIsRecorded(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		tb := newTestbed(t, nil)
		ctx := context.Background()
		sess, v := tb.verifiedReset(t)
		// the flow has two seconds left
		f, err := tb.st.GetFlow(ctx, v.ID, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		f.ExpiresAt = time.Now().Add(2 * time.Second)
		if err := tb.st.UpdateFlow(ctx, f); err != nil {
			t.Fatal(err)
		}
		// a slow directory: the write ends after the flow did
		tb.dir.SetDuringWrite(func() {
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, err := tb.st.GetFlow(ctx, v.ID, time.Now()); errors.Is(err, store.ErrNotFound) {
					return
				}
				if time.Now().After(deadline) {
					t.Error("the flow did not expire")
					return
				}
			}
		})
		if err := tb.svc.CompleteFlow(ctx, "reset", v.ID, "Last-Second-4242", Meta{}); err != nil {
			t.Fatal(err)
		}
		tb.wantRecordedOnce(t, v.ID, []store.Session{sess}, "carol@home.example", "carol@corp.example")
	})
}

// recordFails is a store whose AfterPasswordWrite fails: after committing
// when committed (its answer lost), else before.
type recordFails struct {
	store.Store
	committed bool
}

func (r recordFails) AfterPasswordWrite(ctx context.Context, accountID string, resetKeys []string, sessions bool, e store.AuditEvent, msgs ...store.OutboxMessage) error {
	if r.committed {
		if err := r.Store.(store.PasswordWriteRecorder).AfterPasswordWrite(ctx, accountID, resetKeys, sessions, e, msgs...); err != nil {
			return err
		}
		return errors.New("the commit's answer was lost")
	}
	return errors.New("the store refused the transaction")
}

// TestFailedRecordTriesEachPartAlone: when the record of a reset fails as
// one transaction, each part is tried again on its own: the sessions and
// the flow end, the event is audited (twice when the lost answer hid a
// commit: better than none) and the reset notice is sent once (a notice
// the transaction did write is not written again).
func TestFailedRecordTriesEachPartAlone(t *testing.T) {
	for _, committed := range []bool{false, true} {
		t.Run(map[bool]string{false: "refused", true: "answer lost"}[committed], func(t *testing.T) {
			tb := newTestbed(t, nil)
			svc, err := NewService(tb.svc.o, Deps{Directory: tb.dir, Store: recordFails{tb.st, committed}, Mailer: tb.rec, SMS: tb.rec})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Close)
			failing := *tb
			failing.svc = svc
			sess, f := failing.verifiedReset(t)
			if err := svc.CompleteFlow(context.Background(), "reset", f.ID, "Recorded-Alone-42", Meta{}); err != nil {
				t.Fatal(err)
			}
			_, err = svc.Session(context.Background(), sess.ID)
			wantCode(t, err, CodeSessionExpired)
			if _, err := svc.Flow(context.Background(), "reset", f.ID); err == nil {
				t.Fatal("the completed flow is still there")
			}
			want := map[bool]int{false: 1, true: 2}[committed]
			if got := tb.auditOutcomes(t, "reset.completed"); len(got) != want {
				t.Fatalf("reset.completed outcomes %v, want %d", got, want)
			}
			for deadline := time.Now().Add(5 * time.Second); tb.resetNotices("carol@home.example") == 0; {
				if time.Now().After(deadline) {
					t.Fatal("no reset notice")
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(codeSendDelay) // a second copy would have left by now
			if n := tb.resetNotices("carol@home.example"); n != 1 {
				t.Fatalf("%d reset notices, want 1", n)
			}
			if n := tb.auditCount(t, "notice.failed", "failed"); n != 0 {
				t.Fatalf("%d notices audited failed (not stored)", n)
			}
		})
	}
}
