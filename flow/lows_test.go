package flow

import (
	"context"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/store"
)

// WB-8: an attacker with a phished password registers their own email;
// the user changes the password in Windows (the gateway never sees it);
// after the cooling-off the attacker's method used to reset the password
// again. A method verified in the cooling-off before the password's last
// change no longer counts.
func TestMethodAddedBeforePasswordChangeDoesNotCount(t *testing.T) {
	tb, clk, _ := qBed(t, func(o *Options) { o.CoolingOff = 24 * time.Hour })
	ctx := context.Background()
	tb.enroll(t, "carol", "carol@home.example")
	clk.Add(48 * time.Hour)
	// the attacker, signed in with the phished password
	sess, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	evil, err := tb.svc.AddMethod(ctx, sess, "email", "mallory@evil.example", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess, evil.ID, tb.inbox.LastCode(t, "mallory@evil.example"), Meta{}); err != nil {
		t.Fatal(err)
	}
	// two hours later the user changes the password elsewhere
	clk.Add(2 * time.Hour)
	tb.dir.Edit("carol", func(u *directory.User, pw *string) {
		u.Status.PasswordChanged = clk.Now()
		*pw = "Carol-Taken-Back-9!"
	})
	// the attacker's method is past the cooling-off now
	clk.Add(48 * time.Hour)
	f, err := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	var evilID string
	for _, o := range f.Methods {
		if o.Hint == hint(store.Method{Type: "email", Address: "mallory@evil.example"}) {
			evilID = o.ID
		}
	}
	if evilID == "" {
		t.Fatalf("the attacker's method is not offered: %+v", f.Methods)
	}
	f = tb.proveEmail(t, f, evilID, "mallory@evil.example")
	err = tb.svc.CompleteFlow(ctx, "reset", f.ID, "Mallory-Owns-It-7!", Meta{})
	wantCode(t, err, CodeNotVerified)
	if tb.writes() != 0 {
		t.Fatal("the password was written")
	}
	// a method the user adds after the change counts as usual once old
	// enough: the rule is about methods from before the change only
	sess2, err := tb.svc.SignIn(ctx, "carol", "Carol-Taken-Back-9!", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := tb.svc.AddMethod(ctx, sess2, "email", "carol@new.example", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.VerifyMethod(ctx, sess2, mine.ID, tb.inbox.LastCode(t, "carol@new.example"), Meta{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(25 * time.Hour)
	f, err = tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f = tb.proveEmail(t, f, methodByHint(t, f, hint(store.Method{Type: "email", Address: "carol@new.example"})), "carol@new.example")
	if err := tb.svc.CompleteFlow(ctx, "reset", f.ID, "Fresh-Garden-Pass-5!", Meta{}); err != nil {
		t.Fatalf("a method added after the change: %v", err)
	}
}

func methodByHint(t *testing.T, f FlowView, h string) string {
	t.Helper()
	for _, o := range f.Methods {
		if o.Hint == h {
			return o.ID
		}
	}
	t.Fatalf("no method %s offered: %+v", h, f.Methods)
	return ""
}

// WB-9: two addresses of one mailbox (plus-addressing, case, dots at
// Gmail) counted as two methods toward methods_required.
func TestOneMailboxCountsOnce(t *testing.T) {
	for in, want := range map[string]string{
		"Alice+x@Home.example":       "alice@home.example",
		"alice@home.example":         "alice@home.example",
		"a.l.ice+tag@GoogleMail.com": "alice@gmail.com",
		"A.lice@gmail.com":           "alice@gmail.com",
		"a.lice@home.example":        "a.lice@home.example",
		"+x@home.example":            "+x@home.example",
	} {
		if got := mailboxKey(in); got != want {
			t.Errorf("mailboxKey(%q) = %q, want %q", in, got, want)
		}
	}
	for _, pair := range [][2]string{
		{"alice@home.example", "alice+second@home.example"},
		{"alice@home.example", "Alice+2@home.example"},
		{"alice@gmail.com", "a.lice@googlemail.com"},
	} {
		t.Run(pair[1], func(t *testing.T) {
			// alice's tier needs two methods
			tb := newTestbed(t, nil)
			ctx := context.Background()
			sess, first := tb.enroll(t, "alice", pair[0])
			second, err := tb.svc.AddMethod(ctx, sess, "email", pair[1], Meta{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tb.svc.VerifyMethod(ctx, sess, second.ID, tb.inbox.LastCode(t, pair[1]), Meta{}); err != nil {
				t.Fatal(err)
			}
			f, err := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
			if err != nil {
				t.Fatal(err)
			}
			f = tb.proveEmail(t, f, first, pair[0])
			f = tb.proveEmail(t, f, second.ID, pair[1])
			wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "Fresh-Garden-Pass-3!", Meta{}), CodeNotVerified)
			if tb.writes() != 0 {
				t.Fatal("one mailbox met a tier of two methods")
			}
		})
	}
}
