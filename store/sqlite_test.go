package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
	"github.com/latchkeyhq/latchkey/store/storetest"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

// sqliteOpener returns a storetest.Opener over one database file per test:
// the first call for a t creates the file in t.TempDir(), later calls for
// the same t open the same file again.
func sqliteOpener() (storetest.Opener, func(t *testing.T) string) {
	var (
		mu    sync.Mutex
		paths = map[*testing.T]string{}
	)
	pathFor := func(t *testing.T) string {
		mu.Lock()
		defer mu.Unlock()
		p, ok := paths[t]
		if !ok {
			p = filepath.Join(t.TempDir(), "latchkey.db")
			paths[t] = p
		}
		return p
	}
	open := func(t *testing.T) store.Store {
		t.Helper()
		s, err := store.OpenSQLite(t.Context(), "file:"+pathFor(t), testKey)
		if err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open, pathFor
}

func TestSQLiteConformance(t *testing.T) {
	open, pathFor := sqliteOpener()
	storetest.RunConformance(t, open, storetest.WithRawBytes(func(t *testing.T, s store.Store) []byte {
		if err := s.(*store.SQLite).Checkpoint(t.Context()); err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			b, err := os.ReadFile(pathFor(t) + suffix)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	}))
}

func TestOpenSQLiteRejectsShortKey(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "x.db")
	_, err := store.OpenSQLite(t.Context(), dsn, make([]byte, 31))
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("OpenSQLite with a 31-byte key: %v, want ErrInvalid", err)
	}
}

func TestOpenSQLiteWrongKey(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "x.db")
	s, err := store.OpenSQLite(t.Context(), dsn, testKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	other := bytes.Repeat([]byte{0x43}, 32)
	if _, err := store.OpenSQLite(t.Context(), dsn, other); err == nil || !strings.Contains(err.Error(), "key does not match") {
		t.Fatalf("OpenSQLite with another key: %v, want a key mismatch error", err)
	}
	// A longer key is a different key too (no silent truncation).
	if _, err := store.OpenSQLite(t.Context(), dsn, append(bytes.Clone(testKey), 0)); err == nil {
		t.Fatal("OpenSQLite with a longer key succeeded")
	}
	s, err = store.OpenSQLite(t.Context(), dsn, testKey)
	if err != nil {
		t.Fatalf("reopen with the right key: %v", err)
	}
	s.Close()
}

func TestSQLiteFileMode(t *testing.T) {
	for _, form := range []string{"plain", "file:", "file://"} {
		t.Run(form, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "new.db")
			dsn := map[string]string{"plain": p, "file:": "file:" + p, "file://": "file://" + p}[form]
			s, err := store.OpenSQLite(t.Context(), dsn+"?_busy_timeout=2000", testKey)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.AppendAudit(t.Context(), store.AuditEvent{Time: time.Now(), Type: "t"}); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{p, p + "-wal"} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
				}
			}
		})
	}
}

func TestSQLiteSchemaVersion(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v.db")
	s, err := store.OpenSQLite(t.Context(), p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Pretend a newer build migrated the database.
	raw, err := store.OpenRawForTest(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`, store.SchemaVersionForTest()+1); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = store.OpenSQLite(t.Context(), p, testKey)
	if err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("OpenSQLite on a newer schema: %v", err)
	}
}

func TestSQLiteInMemory(t *testing.T) {
	ctx := t.Context()
	for _, dsn := range []string{":memory:", "file::memory:", "file:mem1?mode=memory"} {
		s, err := store.OpenSQLite(ctx, dsn, testKey)
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		now := time.Now()
		f := store.Flow{ID: "0123456789abcdef0123", Kind: store.FlowReset, AccountID: "a", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
		if err := s.CreateFlow(ctx, f); err != nil {
			t.Fatalf("%s: CreateFlow: %v", dsn, err)
		}
		if err := s.IssueCode(ctx, store.Code{FlowID: f.ID, Purpose: "p", MethodID: "m", AccountID: "a", Hash: []byte("h"),
			ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatalf("%s: IssueCode: %v", dsn, err)
		}
		if err := s.RedeemCode(ctx, f.ID, "p", "m", []byte("h"), 5, now); err != nil {
			t.Fatalf("%s: RedeemCode: %v", dsn, err)
		}
		if _, err := s.GetFlow(ctx, f.ID, now); err != nil {
			t.Fatalf("%s: GetFlow: %v", dsn, err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("%s: Ping: %v", dsn, err)
		}
		s.Close()
	}
}

// ---- across processes ----

// The helper process (this test binary re-executed with helperEnv set)
// opens the database named in the environment and, for each round, waits
// until that round's start time and then runs the operation from several
// goroutines at once, printing one "result" line per call.
const helperEnv = "LATCHKEY_STORE_TEST_HELPER"

const (
	crossProcs    = 4
	crossPerProc  = 5
	crossRounds   = 5
	crossInterval = 500 * time.Millisecond
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	code := m.Run()
	pgtest.Stop() // the PostgreSQL server of postgres_test.go, if one was started
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func runHelper() int {
	var (
		op      = os.Getenv(helperEnv)
		dbPath  = os.Getenv("HELPER_DB")
		flowIDs = strings.Split(os.Getenv("HELPER_FLOWS"), ",")
		ctx     = context.Background()
	)
	startNS, err := strconv.ParseInt(os.Getenv("HELPER_START_AT"), 10, 64)
	if err != nil {
		fmt.Println("bad start time")
		return 1
	}
	nowNS, err := strconv.ParseInt(os.Getenv("HELPER_NOW"), 10, 64)
	if err != nil {
		fmt.Println("bad hit time")
		return 1
	}
	hitAt := time.Unix(0, nowNS)
	s, err := store.OpenSQLite(ctx, "file:"+dbPath, testKey)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer s.Close()
	// Warm the reader pool so that no caller pays for opening a connection.
	var wg sync.WaitGroup
	for range crossPerProc {
		wg.Add(1)
		go func() { defer wg.Done(); s.GetFlow(ctx, flowIDs[0], time.Now()) }()
	}
	wg.Wait()

	for round, flowID := range flowIDs {
		at := time.Unix(0, startNS).Add(time.Duration(round) * crossInterval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		} else {
			// Correctness is still checked, only with less overlap.
			fmt.Println("late", round, -d)
		}
		now := time.Now()
		results := make([]error, crossPerProc)
		for i := range crossPerProc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch op {
				case "redeem":
					results[i] = s.RedeemCode(ctx, flowID, "reset", "m1", []byte("right"), 5, now)
				case "update":
					f, err := s.GetFlow(ctx, flowID, now)
					if err != nil {
						results[i] = err
						return
					}
					f.Version = 0 // every caller updates the version the flow was created with
					f.Verified = []string{fmt.Sprintf("pid%d-%d", os.Getpid(), i)}
					results[i] = s.UpdateFlow(ctx, f)
				case "hit":
					_, results[i] = s.Hit(ctx, "shared-key-"+flowID, time.Hour, hitAt)
				}
			}()
		}
		wg.Wait()
		for _, err := range results {
			switch {
			case err == nil:
				fmt.Println("result", round, "ok")
			case errors.Is(err, store.ErrNotFound):
				fmt.Println("result", round, "notfound")
			case errors.Is(err, store.ErrConflict):
				fmt.Println("result", round, "conflict")
			default:
				fmt.Println("result", round, "error", err)
			}
		}
	}
	return 0
}

// TestSQLiteAcrossProcesses runs 4 processes x 5 goroutines (20 callers)
// against one database file, in 5 rounds started at the same instant in
// every process, and checks that exactly one caller redeems each code,
// exactly one updates each flow version, and that no counter hit is lost.
func TestSQLiteAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	ctx := t.Context()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "shared.db")
	s, err := store.OpenSQLite(ctx, "file:"+dbPath, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()

	for _, op := range []string{"redeem", "update", "hit"} {
		t.Run(op, func(t *testing.T) {
			var ids []string
			for round := range crossRounds {
				f := store.Flow{ID: fmt.Sprintf("flow-%s-%d-0123456789abcdef", op, round), Kind: store.FlowReset,
					AccountID: "a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := s.CreateFlow(ctx, f); err != nil {
					t.Fatal(err)
				}
				if err := s.IssueCode(ctx, store.Code{FlowID: f.ID, Purpose: "reset", MethodID: "m1", AccountID: "a",
					Hash: []byte("right"), ExpiresAt: now.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, f.ID)
			}
			startAt := time.Now().Add(2 * time.Second) // time for the helpers to start, even under -race
			var cmds []*exec.Cmd
			var outs []*bytes.Buffer
			for range crossProcs {
				cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), helperEnv+"="+op, "HELPER_DB="+dbPath,
					"HELPER_FLOWS="+strings.Join(ids, ","), "HELPER_START_AT="+strconv.FormatInt(startAt.UnixNano(), 10),
					// counters hit at the test's instant: the helpers' own clock may
					// cross a window boundary the test's Count does not
					"HELPER_NOW="+strconv.FormatInt(now.UnixNano(), 10))
				out := &bytes.Buffer{}
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds, outs = append(cmds, cmd), append(outs, out)
			}
			counts := make([]map[string]int, crossRounds)
			for i := range counts {
				counts[i] = map[string]int{}
			}
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
				}
				for _, line := range strings.Split(outs[i].String(), "\n") {
					if strings.HasPrefix(line, "late ") {
						t.Logf("helper %d: %s", i, line)
					}
					var round int
					var result string
					if _, err := fmt.Sscanf(line, "result %d %s", &round, &result); err == nil {
						counts[round][result]++
					}
				}
			}
			total := crossProcs * crossPerProc
			for round, c := range counts {
				switch op {
				case "redeem":
					if c["ok"] != 1 || c["notfound"] != total-1 {
						t.Errorf("round %d: redeem across processes: %v; want 1 ok, %d notfound", round, c, total-1)
					}
				case "update":
					if c["ok"] != 1 || c["conflict"] != total-1 {
						t.Errorf("round %d: update across processes: %v; want 1 ok, %d conflict", round, c, total-1)
					}
					got, err := s.GetFlow(ctx, ids[round], now)
					if err != nil || got.Version != 1 {
						t.Errorf("round %d: flow after updates: %+v, %v", round, got, err)
					}
				case "hit":
					if c["ok"] != total {
						t.Errorf("round %d: hit across processes: %v", round, c)
					}
					if n, err := s.Count(ctx, "shared-key-"+ids[round], time.Hour, now); err != nil || n != total {
						t.Errorf("round %d: Count after %d hits from %d processes = %d, %v", round, total, crossProcs, n, err)
					}
				}
			}
		})
	}
}
