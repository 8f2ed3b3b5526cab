//go:build unix

package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// BenchmarkSQLiteWriteParallel runs small write transactions on a file
// database (WAL, synchronous=NORMAL, as in production) from a fixed number
// of goroutines at once (g=1, 8, 32), as the gateway does under load: every
// write queues for the one writer connection. b.N calls are shared between
// the goroutines; ns/op is wall time per call and cpu-ns/op the process's
// CPU time (user and system, all goroutines) per call, which depends less
// on other load on the machine. The context cannot be
// cancelled, as in the gateway's counter writes (context.WithoutCancel):
// with a cancellable one, modernc.org/sqlite starts a goroutine per
// statement to interrupt it.
//
//	go test ./store -run '^$' -bench SQLiteWriteParallel -benchtime 2s -count 3
//
// Operations:
//   - hit-distinct: Hit on one of 1,024 keys per goroutine (rate-limit
//     counters of different clients).
//   - hit-shared: Hit on one key for every goroutine (one client's counter).
//   - hitmany: HitMany of three counters (a start's per-IP, per-user and
//     global limits).
//   - hitcreateflow: HitCreateFlow creating a new flow and one audit event.
//   - afterpasswordwrite: AfterPasswordWrite resetting two counters of one of
//     256 accounts, deleting its flows and sessions, and appending an event.
func BenchmarkSQLiteWriteParallel(b *testing.B) {
	type op func(s *store.SQLite, w, i int) error
	ctx, now := context.WithoutCancel(b.Context()), time.Now()
	ops := []struct {
		name string
		op   op
	}{
		{"hit-distinct", func(s *store.SQLite, w, i int) error {
			_, err := s.Hit(ctx, fmt.Sprintf("ip:%d:%d", w, i%1024), time.Hour, now)
			return err
		}},
		{"hit-shared", func(s *store.SQLite, w, i int) error {
			_, err := s.Hit(ctx, "global", time.Hour, now)
			return err
		}},
		{"hitmany", func(s *store.SQLite, w, i int) error {
			_, err := s.HitMany(ctx, []store.CounterHit{
				{Key: fmt.Sprintf("ip:%d:%d", w, i%1024), Window: time.Hour},
				{Key: fmt.Sprintf("user:%d", i%256), Window: time.Hour},
				{Key: "global", Window: time.Minute},
			}, now)
			return err
		}},
		{"hitcreateflow", func(s *store.SQLite, w, i int) error {
			acct := fmt.Sprintf("acct-%d", i%256)
			_, err := s.HitCreateFlow(ctx, store.CounterHit{Key: "start:" + acct, Window: time.Hour}, now,
				func(int) (store.Flow, []store.AuditEvent) {
					return store.Flow{ID: fmt.Sprintf("bench-flow-%d-%d-%d", now.UnixNano(), w, i), Kind: store.FlowReset,
							AccountID: acct, Required: 1, Data: map[string]string{"username": acct},
							CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
						[]store.AuditEvent{{Time: now, Type: "reset.started", RequestID: "req", ClientIP: "192.0.2.1",
							AccountID: acct, Outcome: "success"}}
				})
			return err
		}},
		{"afterpasswordwrite", func(s *store.SQLite, w, i int) error {
			acct := fmt.Sprintf("acct-%d", i%256)
			return s.AfterPasswordWrite(ctx, acct, []string{"start:" + acct, "verify:" + acct}, true,
				store.AuditEvent{Time: now, Type: "reset.completed", RequestID: "req", ClientIP: "192.0.2.1",
					AccountID: acct, Outcome: "success"})
		}},
	}
	for _, o := range ops {
		for _, g := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/g=%d", o.name, g), func(b *testing.B) {
				s, err := store.OpenSQLite(ctx, "file:"+filepath.Join(b.TempDir(), "w.db"), testKey)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var (
					next atomic.Int64
					wg   sync.WaitGroup
				)
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				b.ResetTimer()
				for w := range g {
					wg.Go(func() {
						for {
							i := int(next.Add(1) - 1)
							if i >= b.N {
								return
							}
							if err := o.op(s, w, i); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSQLiteOutstanding compares a reset start's write (HitCreateFlow
// with a random flow id, as the gateway makes them) and a flow read
// (GetFlow) on an empty store and on one holding 100,000 outstanding flows
// and codes (SeedOutstanding): latchkey-bench's scaling case, without the
// gateway and the directory around it.
//
//	go test ./store -run '^$' -bench SQLiteOutstanding -benchtime 2s -count 3
func BenchmarkSQLiteOutstanding(b *testing.B) {
	ctx, now := context.WithoutCancel(b.Context()), time.Now()
	for _, n := range []int{0, 100000} {
		s, err := store.OpenSQLite(ctx, "file:"+filepath.Join(b.TempDir(), "o.db"), testKey)
		if err != nil {
			b.Fatal(err)
		}
		if n > 0 {
			if err := store.SeedOutstanding(ctx, s, n, now); err != nil {
				b.Fatal(err)
			}
		}
		var ids []string
		b.Run(fmt.Sprintf("hitcreateflow/outstanding=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				var raw [32]byte
				_, _ = rand.Read(raw[:])
				id := hex.EncodeToString(raw[:])
				acct := fmt.Sprintf("acct-b-%d", i%256)
				_, err := s.HitCreateFlow(ctx, store.CounterHit{Key: "start:" + acct, Window: time.Hour}, now,
					func(int) (store.Flow, []store.AuditEvent) {
						return store.Flow{ID: id, Kind: store.FlowReset, AccountID: acct, Required: 1,
								Data: map[string]string{"username": acct}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
							[]store.AuditEvent{{Time: now, Type: "reset.started", RequestID: "req", ClientIP: "192.0.2.1",
								AccountID: acct, Outcome: "success"}}
					})
				if err != nil {
					b.Fatal(err)
				}
				if len(ids) < 4096 {
					ids = append(ids, id)
				}
			}
		})
		b.Run(fmt.Sprintf("getflow/outstanding=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := s.GetFlow(ctx, ids[i%len(ids)], now); err != nil {
					b.Fatal(err)
				}
			}
		})
		s.Close()
	}
}
