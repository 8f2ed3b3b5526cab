package dirtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// The conformance suite (TestMemory in package directory) checks what
// Memory shares with the servers; these check what only it has.

func lookupMem(t *testing.T, m *dirtest.Memory, name string) *directory.User {
	t.Helper()
	u, err := m.Lookup(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func lockOut(m *dirtest.Memory, u *directory.User, n int) {
	for i := 0; i < n; i++ {
		m.VerifyPassword(context.Background(), u, "Wrong-Guess-1!")
	}
}

func TestMemoryResetUnlockByFlavor(t *testing.T) {
	ctx := context.Background()
	for _, f := range []directory.Flavor{directory.OpenLDAP, directory.ActiveDirectory} {
		m := dirtest.NewStaffMemory(dirtest.WithFlavor(f), dirtest.WithPolicy(dirtest.MemoryPolicy{MinLength: 8, HistoryLength: 3, LockoutThreshold: 3}))
		carol := lookupMem(t, m, "carol")
		lockOut(m, carol, 3)
		if !lookupMem(t, m, "carol").Status.Locked {
			t.Fatalf("%s: not locked after 3 wrong passwords", f)
		}
		if err := m.SetPassword(ctx, carol, "Carol-Reset-1!", directory.SetOptions{}); err != nil {
			t.Fatal(err)
		}
		if locked := lookupMem(t, m, "carol").Status.Locked; locked != (f == directory.ActiveDirectory) {
			t.Fatalf("%s: locked = %v after a reset without Unlock", f, locked)
		}
		if err := m.SetPassword(ctx, carol, "Carol-Reset-2!", directory.SetOptions{Unlock: true}); err != nil {
			t.Fatal(err)
		}
		if err := m.VerifyPassword(ctx, carol, "Carol-Reset-2!"); err != nil {
			t.Fatalf("%s: after a reset with Unlock: %v", f, err)
		}
		// a disabled account's right password
		ivan := lookupMem(t, m, "ivan")
		want := directory.ErrAccountLocked
		if f == directory.ActiveDirectory {
			want = directory.ErrAccountDisabled
		}
		if err := m.VerifyPassword(ctx, ivan, "Ivan-Pass1!"); !errors.Is(err, want) {
			t.Fatalf("%s: ivan's bind: %v, want %v", f, err, want)
		}
	}
}

func TestMemoryFailureWindow(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, window := range []time.Duration{0, time.Minute} {
		m := dirtest.NewStaffMemory(dirtest.WithClock(func() time.Time { return now }),
			dirtest.WithPolicy(dirtest.MemoryPolicy{MinLength: 8, LockoutThreshold: 3, FailureWindow: window}))
		carol := lookupMem(t, m, "carol")
		lockOut(m, carol, 2)
		now = now.Add(2 * time.Minute)
		lockOut(m, carol, 1)
		if locked := lookupMem(t, m, "carol").Status.Locked; locked != (window == 0) {
			t.Fatalf("window %s: locked = %v after 2 wrong, 2 minutes, 1 wrong", window, locked)
		}
		p, _ := m.EffectivePolicy(context.Background(), carol)
		if p.FailureWindow != window || p.FailuresNeverExpire != (window == 0) {
			t.Fatalf("window %s: policy %+v", window, p)
		}
	}
}

func TestMemoryCountsAndFaults(t *testing.T) {
	ctx := context.Background()
	m := dirtest.NewStaffMemory()
	carol := lookupMem(t, m, "carol")
	m.VerifyPassword(ctx, carol, "")
	m.UserBind("carol", "Carol-Pass1!")
	m.VerifyPassword(ctx, carol, "Carol-Pass1!")
	if m.Binds() != 1 {
		t.Fatalf("binds = %d, want 1 (empty passwords and UserBind do not count)", m.Binds())
	}
	m.SetWriteDown(true)
	if err := m.SetPassword(ctx, carol, "Carol-Down-1!", directory.SetOptions{}); !errors.Is(err, directory.ErrUnavailable) || m.Writes() != 0 || m.Password("carol") != "Carol-Pass1!" {
		t.Fatalf("write down: %v, %d writes, password changed: %v", err, m.Writes(), m.Password("carol") != "Carol-Pass1!")
	}
	m.SetWriteDown(false)
	m.SetReplyLost(true)
	if err := m.SetPassword(ctx, carol, "Carol-Lost-1!", directory.SetOptions{}); !errors.Is(err, directory.ErrUnavailable) || m.Writes() != 1 || m.Password("carol") != "Carol-Lost-1!" {
		t.Fatalf("reply lost: %v, %d writes", err, m.Writes())
	}
	m.SetReplyLost(false)
	during := 0
	m.SetDuringWrite(func() { during++ })
	m.SetPassword(ctx, carol, "Sh0rt", directory.SetOptions{})
	if err := m.ChangePassword(ctx, carol, "Carol-Lost-1!", "Carol-Changed-1!", nil); err != nil || during != 1 {
		t.Fatalf("change: %v, hook ran %d times (a refused write runs it never)", err, during)
	}
	if _, err := m.Unlock(ctx, lookupMem(t, m, "ivan")); !errors.Is(err, directory.ErrAccountDisabled) || m.Unlocks() != 1 {
		t.Fatalf("unlock ivan: %v, %d unlocks", err, m.Unlocks())
	}
	m.SetPingError(&directory.Error{Op: "ping", Kind: directory.ErrUnavailable})
	if err := m.Ping(ctx); !errors.Is(err, directory.ErrUnavailable) {
		t.Fatalf("ping: %v", err)
	}
}
