package notifytest_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

func TestMailpitHelpers(t *testing.T) {
	var pid int
	t.Run("session", func(t *testing.T) {
		mp := notifytest.StartMailpit(t)
		pid = mp.PID()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := notify.NewSMTP(mp.SMTPConfig("Latchkey <no-reply@latchkey.test>"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []string{"alice@example.test", "xalice@example.test", "bob@example.test"} {
			if err := s.SendEmail(ctx, notify.Email{To: to, Subject: "hello " + to, Text: "text for " + to, HTML: "<p>html for " + to + "</p>"}); err != nil {
				t.Fatal(err)
			}
		}
		list, err := mp.Messages(ctx)
		if err != nil || len(list) != 3 {
			t.Fatalf("Messages = %d, %v", len(list), err)
		}
		// WaitForMessage matches the recipient exactly, not as a substring.
		msg, err := mp.WaitForMessage(ctx, "alice@example.test")
		if err != nil {
			t.Fatal(err)
		}
		if msg.Subject != "hello alice@example.test" || !strings.Contains(msg.Text, "text for alice@") || !strings.Contains(msg.HTML, "html for alice@") {
			t.Fatalf("got %+v", msg)
		}
		raw, err := mp.Raw(ctx, msg.ID)
		if err != nil || !strings.Contains(string(raw), "Subject: hello alice@example.test") {
			t.Fatalf("Raw: %v\n%s", err, raw)
		}
		found, err := mp.Search(ctx, "subject:bob")
		if err != nil || len(found) != 1 || !found[0].HasRecipient("BOB@example.test") {
			t.Fatalf("Search = %+v, %v", found, err)
		}

		// The deadline comes from the caller's context.
		short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancelShort()
		start := time.Now()
		_, err = mp.WaitForMessage(short, "nobody@example.test")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("WaitForMessage overran its deadline: %v", d)
		}

		if err := mp.DeleteAll(ctx); err != nil {
			t.Fatal(err)
		}
		if list, err := mp.Messages(ctx); err != nil || len(list) != 0 {
			t.Fatalf("after DeleteAll: %d, %v", len(list), err)
		}
	})
	if pid == 0 {
		return // skipped
	}
	// The process was stopped (and reaped) when the subtest ended.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("mailpit pid %d still exists after cleanup (kill -0: %v)", pid, err)
	}
}

func TestTwilioWaitFor(t *testing.T) {
	f := notifytest.StartTwilio(t)
	tw, err := notify.NewTwilio(f.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.WaitFor(ctx, "+447911123456")
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let WaitFor block first; correctness does not depend on it
	if err := tw.SendSMS(ctx, notify.SMS{To: "+447911123456", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	short, c2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer c2()
	if _, err := f.WaitFor(short, "+447911000000"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	f.Reset()
	if len(f.Messages()) != 0 {
		t.Fatal("Reset kept messages")
	}
}

func TestRecorder(t *testing.T) {
	var r notifytest.Recorder
	ctx := context.Background()
	_ = r.SendEmail(ctx, notify.Email{To: "a@example.test", Subject: "s", Text: "t"})
	_ = r.SendSMS(ctx, notify.SMS{To: "+447911123456", Body: "b"})
	if len(r.Emails()) != 1 || len(r.SMS()) != 1 {
		t.Fatal("not recorded")
	}
	r.Err = errors.New("down")
	if err := r.SendSMS(ctx, notify.SMS{}); err == nil || len(r.SMS()) != 1 {
		t.Fatal("Err ignored")
	}
}
