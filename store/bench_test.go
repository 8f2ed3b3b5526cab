package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// Benchmarks for the performance target "100,000 outstanding flows/codes in
// the store: p50 within 10 % of an empty store". Each benchmark runs on a
// file database (WAL, as in production) that holds either nothing but the
// benchmark's own rows ("outstanding=0") or, in addition, 100,000 live
// flows each with a live code ("outstanding=100000"). Besides ns/op each
// reports p50-ns and p99-ns of the measured call alone.
//
//	go test -run '^$' -bench . -benchtime 20000x -count 5 ./store/

var outstandingCases = []int{0, 100_000}

var (
	benchMu  sync.Mutex
	benchDir string
	benchDBs = map[int]string{}
)

// seededDB returns the path of a database holding n outstanding flows and
// codes, created once per test binary run (seeding 100,000 takes seconds).
func seededDB(b *testing.B, n int) string {
	benchMu.Lock()
	defer benchMu.Unlock()
	if p, ok := benchDBs[n]; ok {
		return p
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "latchkey-store-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
	}
	p := filepath.Join(benchDir, fmt.Sprintf("seed-%d.db", n))
	s, err := store.OpenSQLite(b.Context(), "file:"+p, testKey)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := store.SeedForBench(b.Context(), s, n, time.Now()); err != nil {
		b.Fatal(err)
	}
	if err := s.Checkpoint(b.Context()); err != nil {
		b.Fatal(err)
	}
	benchDBs[n] = p
	return p
}

func openBench(b *testing.B, n int) *store.SQLite {
	s, err := store.OpenSQLite(b.Context(), "file:"+seededDB(b, n), testKey)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkGetFlow reads live flows by ID, cycling over 256 flows created
// for the benchmark.
func BenchmarkGetFlow(b *testing.B) {
	for _, n := range outstandingCases {
		b.Run(fmt.Sprintf("outstanding=%d", n), func(b *testing.B) {
			s := openBench(b, n)
			ctx, now := b.Context(), time.Now()
			ids := make([]string, 256)
			for i := range ids {
				f := store.Flow{ID: fmt.Sprintf("bench-getflow-%d-%d-%d", n, i, now.UnixNano()), Kind: store.FlowReset,
					AccountID: "bench", Required: 2, Verified: []string{"m1"},
					Data:      map[string]string{"username": "bench", "step": "verify"},
					CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := s.CreateFlow(ctx, f); err != nil {
					b.Fatal(err)
				}
				ids[i] = f.ID
			}
			d := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if _, err := s.GetFlow(ctx, ids[i%len(ids)], now); err != nil {
					b.Fatal(err)
				}
				d = append(d, time.Since(t0))
			}
			b.StopTimer()
			reportPercentiles(b, d)
		})
	}
}

// BenchmarkRedeemCode issues a code and redeems it, per iteration; ns/op
// covers both calls, p50-ns/p99-ns only RedeemCode, issue-p50-ns IssueCode.
func BenchmarkRedeemCode(b *testing.B) {
	for _, n := range outstandingCases {
		b.Run(fmt.Sprintf("outstanding=%d", n), func(b *testing.B) {
			s := openBench(b, n)
			ctx, now := b.Context(), time.Now()
			f := store.Flow{ID: fmt.Sprintf("bench-redeem-%d-%d", n, now.UnixNano()), Kind: store.FlowReset,
				AccountID: "bench", Required: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := s.CreateFlow(ctx, f); err != nil {
				b.Fatal(err)
			}
			c := store.Code{FlowID: f.ID, Purpose: "reset", MethodID: "m1", AccountID: "bench",
				Hash: []byte("0123456789abcdef0123456789abcdef"), ExpiresAt: now.Add(10 * time.Minute)}
			d := make([]time.Duration, 0, b.N)
			di := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if err := s.IssueCode(ctx, c); err != nil {
					b.Fatal(err)
				}
				di = append(di, time.Since(t0))
				t0 = time.Now()
				if err := s.RedeemCode(ctx, f.ID, "reset", "m1", c.Hash, 5, now); err != nil {
					b.Fatal(err)
				}
				d = append(d, time.Since(t0))
			}
			b.StopTimer()
			reportPercentiles(b, d)
			slices.Sort(di)
			b.ReportMetric(float64(di[len(di)/2].Nanoseconds()), "issue-p50-ns")
		})
	}
}
