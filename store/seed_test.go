package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// TestSeedOutstanding: on both stores, the seeded flows read back as
// written, each with a live code (a wrong hash is a mismatch, not "no
// code").
func TestSeedOutstanding(t *testing.T) {
	opens := map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			s, err := store.OpenSQLite(t.Context(), "file:"+filepath.Join(t.TempDir(), "seed.db"), testKey)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(t *testing.T) store.Store {
			_, _, dsn := newPostgresDB(t)
			return openPostgres(t, dsn)
		},
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			s, ctx, now := open(t), t.Context(), time.Now()
			const n = 1203 // more than one PostgreSQL batch, not a multiple
			if err := store.SeedOutstanding(ctx, s, n, now); err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{0, 500, n - 1} {
				id := fmt.Sprintf("seed-flow-%012d-0123456789", i)
				f, err := s.GetFlow(ctx, id, now)
				if err != nil {
					t.Fatalf("flow %d: %v", i, err)
				}
				if f.AccountID != fmt.Sprintf("acct-%d", i) || f.Data["username"] != fmt.Sprintf("user%d", i) {
					t.Fatalf("flow %d: %+v", i, f)
				}
				if err := s.RedeemCode(ctx, id, "reset", "m2", []byte("wrong"), 5, now); !errors.Is(err, store.ErrCodeMismatch) {
					t.Fatalf("flow %d: redeem with a wrong hash: %v, want ErrCodeMismatch", i, err)
				}
			}
			if _, err := s.GetFlow(ctx, fmt.Sprintf("seed-flow-%012d-0123456789", n), now); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("flow %d: %v, want ErrNotFound", n, err)
			}
		})
	}
}
