package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdWriter starts a write that runs (in its caller's goroutine, as the
// writer is idle) until the returned function is called, so that the
// writes made meanwhile queue up and then run in the writer goroutine as
// one batch. The returned function waits for the held write.
func holdWriter(t *testing.T, s *SQLite) (release func()) {
	t.Helper()
	started, hold, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.writeTx(context.Background(), func(txn) error {
			close(started)
			<-hold
			return nil
		})
	}()
	<-started
	return func() {
		close(hold)
		if err := <-done; err != nil {
			t.Errorf("held write: %v", err)
		}
	}
}

func queued(s *SQLite) int {
	s.wq.mu.Lock()
	defer s.wq.mu.Unlock()
	return len(s.wq.queue)
}

// queueCall calls call in a new goroutine and returns once call's write is
// queued (the writer must be held), so that writes queued one after the
// other run in that order. The channel receives call's error.
func queueCall(t *testing.T, s *SQLite, call func() error) <-chan error {
	t.Helper()
	n := queued(s)
	res := make(chan error, 1)
	go func() { res <- call() }()
	for queued(s) <= n {
		time.Sleep(time.Millisecond)
	}
	return res
}

// queueWrite is queueCall of writeTx(ctx, fn).
func queueWrite(t *testing.T, s *SQLite, ctx context.Context, fn func(txn) error) <-chan error {
	t.Helper()
	return queueCall(t, s, func() error { return s.writeTx(ctx, fn) })
}

// recordBatches records the size of every batch from now on.
func recordBatches(s *SQLite) func() []int {
	var (
		mu    sync.Mutex
		sizes []int
	)
	s.wq.mu.Lock()
	s.wq.batchHook = func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}
	s.wq.mu.Unlock()
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sizes)
	}
}

func hitFn(s *SQLite, key string, now time.Time, n *int) func(txn) error {
	return func(tx txn) error {
		var err error
		*n, err = s.hitTx(context.Background(), tx, key, time.Hour, now)
		return err
	}
}

func auditFn(typ string) func(txn) error {
	return func(tx txn) error {
		return appendAuditTx(context.Background(), tx, AuditEvent{Time: time.Now(), Type: typ})
	}
}

func countAudit(t *testing.T, s *SQLite, typ string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit WHERE type = ?`, typ).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Many goroutines hitting one counter get each count from 1 to N once.
func TestGroupCommitCounterExact(t *testing.T) {
	s, ctx, now := openInternal(t), t.Context(), time.Now()
	batches := recordBatches(s)
	const goroutines, hits = 48, 25
	counts := make(chan int, goroutines*hits)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range hits {
				n, err := s.Hit(ctx, "shared", time.Hour, now)
				if err != nil {
					t.Error(err)
					return
				}
				counts <- n
			}
		})
	}
	wg.Wait()
	close(counts)
	var got []int
	for n := range counts {
		got = append(got, n)
	}
	slices.Sort(got)
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("sorted counts[%d] = %d, want %d (a duplicate or a gap)", i, n, i+1)
		}
	}
	if len(got) != goroutines*hits {
		t.Fatalf("%d counts, want %d", len(got), goroutines*hits)
	}
	if c, err := s.Count(ctx, "shared", time.Hour, now); err != nil || c != goroutines*hits {
		t.Fatalf("Count = %d, %v; want %d", c, err, goroutines*hits)
	}
	sizes := batches()
	t.Logf("%d transactions for %d hits; largest batch %d", len(sizes), goroutines*hits, slices.Max(sizes))
}

// A write that fails inside a batch is undone alone: the writes before and
// after it in the same transaction commit, and see each other's effects.
func TestGroupCommitErrorIsolated(t *testing.T) {
	s, now := openInternal(t), time.Now()
	bg := context.Background()
	batches := recordBatches(s)
	release := holdWriter(t, s)

	var n1, n2, n3 int
	a := queueCall(t, s, func() (err error) { n1, err = s.Hit(bg, "k", time.Hour, now); return err })
	boom := errors.New("boom")
	b := queueWrite(t, s, bg, func(tx txn) error {
		if err := hitFn(s, "k", now, new(int))(tx); err != nil {
			return err
		}
		if err := auditFn("undone")(tx); err != nil {
			return err
		}
		return boom
	})
	c := queueCall(t, s, func() (err error) { n2, err = s.Hit(bg, "k", time.Hour, now); return err })
	d := queueCall(t, s, func() error {
		return s.IssueCode(bg, Code{FlowID: "no-such-flow-0123456789", Purpose: "p", MethodID: "m", AccountID: "a",
			Hash: []byte("h"), ExpiresAt: now.Add(time.Hour)})
	})
	e := queueCall(t, s, func() (err error) {
		counts, err := s.HitMany(bg, []CounterHit{{Key: "k", Window: time.Hour}, {Key: "other", Window: time.Hour}}, now)
		if err == nil {
			n3 = counts[0]
		}
		return err
	})
	release()

	for name, ch := range map[string]<-chan error{"a": a, "c": c, "e": e} {
		if err := <-ch; err != nil {
			t.Errorf("write %s: %v", name, err)
		}
	}
	if err := <-b; !errors.Is(err, boom) {
		t.Errorf("failing write: %v, want its own error", err)
	}
	if err := <-d; !errors.Is(err, ErrNotFound) {
		t.Errorf("IssueCode of a missing flow: %v, want ErrNotFound", err)
	}
	if n1 != 1 || n2 != 2 || n3 != 3 {
		t.Errorf("counts %d, %d, %d; want 1, 2, 3 (the failed writes' hits undone)", n1, n2, n3)
	}
	if c, err := s.Count(t.Context(), "k", time.Hour, now); err != nil || c != 3 {
		t.Errorf("Count = %d, %v; want 3", c, err)
	}
	if n := countAudit(t, s, "undone"); n != 0 {
		t.Errorf("%d audit events of the failed write", n)
	}
	if sizes := batches(); !slices.Contains(sizes, 5) {
		t.Errorf("batch sizes %v: the five queued writes did not run as one batch", sizes)
	}
}

// When COMMIT fails, every write of the batch gets an error and nothing of
// the batch is applied. A deferred foreign key violation makes COMMIT fail.
func TestGroupCommitCommitFails(t *testing.T) {
	s, now := openInternal(t), time.Now()
	bg := context.Background()
	release := holdWriter(t, s)
	var n int
	a := queueWrite(t, s, bg, hitFn(s, "k", now, &n))
	b := queueWrite(t, s, bg, func(tx txn) error {
		if _, err := tx.ExecContext(bg, `PRAGMA defer_foreign_keys = ON`); err != nil {
			return err
		}
		_, err := tx.ExecContext(bg, `INSERT INTO codes (flow_key, purpose, method_id, account_id, hash, expires_at, tries)
			VALUES (12345, 'p', 'm', 'a', x'00', 0, 0)`)
		return err
	})
	c := queueWrite(t, s, bg, auditFn("lost"))
	release()
	for name, ch := range map[string]<-chan error{"a": a, "b": b, "c": c} {
		if err := <-ch; err == nil || !strings.Contains(err.Error(), "commit") {
			t.Errorf("write %s: %v, want a commit error", name, err)
		}
	}
	if c, err := s.Count(t.Context(), "k", time.Hour, now); err != nil || c != 0 {
		t.Errorf("Count = %d, %v; want 0", c, err)
	}
	if n := countAudit(t, s, "lost"); n != 0 {
		t.Errorf("%d audit events of a failed commit", n)
	}
	// The writer goes on.
	if n, err := s.Hit(bg, "k", time.Hour, now); err != nil || n != 1 {
		t.Errorf("Hit after a failed commit = %d, %v; want 1", n, err)
	}
}

// If the whole transaction is rolled back under a batch (as SQLite does
// for some errors, or when an interrupted statement was a write), the
// writes that had run get an error, and those that had not run yet run in
// the next transaction.
func TestGroupCommitTransactionLost(t *testing.T) {
	s, now := openInternal(t), time.Now()
	bg := context.Background()
	batches := recordBatches(s)
	release := holdWriter(t, s)
	var n1, n2 int
	a := queueWrite(t, s, bg, hitFn(s, "k", now, &n1))
	b := queueWrite(t, s, bg, func(tx txn) error {
		if err := auditFn("lost")(tx); err != nil {
			return err
		}
		_, err := tx.tx.ExecContext(bg, `ROLLBACK`)
		return err
	})
	c := queueWrite(t, s, bg, hitFn(s, "k", now, &n2))
	release()
	if err := <-a; err == nil {
		t.Error("a write before the lost transaction succeeded")
	}
	if err := <-b; err == nil {
		t.Error("the write that lost the transaction succeeded")
	}
	if err := <-c; err != nil || n2 != 1 {
		t.Errorf("write after the lost transaction: %d, %v; want 1 (run again, alone)", n2, err)
	}
	if c, err := s.Count(t.Context(), "k", time.Hour, now); err != nil || c != 1 {
		t.Errorf("Count = %d, %v; want 1", c, err)
	}
	if n := countAudit(t, s, "lost"); n != 0 {
		t.Errorf("%d audit events of a lost transaction", n)
	}
	if sizes := batches(); !slices.Contains(sizes, 3) {
		t.Errorf("batch sizes %v: the three queued writes did not run as one batch", sizes)
	}
}

// A write statement interrupted by its context inside a transaction rolls
// back the whole transaction (the store's own statements ignore
// cancellation once a write has started; this one runs on the transaction
// itself): the write before it in the batch is reported failed, the one
// after it runs again in the next transaction, and a write is reported
// committed exactly when it is.
func TestGroupCommitInterrupt(t *testing.T) {
	s, now := openInternal(t), time.Now()
	bg := context.Background()
	release := holdWriter(t, s)
	var n1, n2 int
	a := queueWrite(t, s, bg, hitFn(s, "k", now, &n1))
	b := queueWrite(t, s, bg, func(tx txn) error {
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		time.AfterFunc(50*time.Millisecond, cancel)
		// runs until interrupted
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO audit (time, type, request_id, client_ip, account_id, outcome)
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 1000000000)
			SELECT i, 'interrupted', '', '', '', '' FROM n`)
		return err
	})
	c := queueWrite(t, s, bg, hitFn(s, "k", now, &n2))
	release()
	errA, errB, errC := <-a, <-b, <-c
	t.Logf("a: %v; b: %v; c: %v", errA, errB, errC)
	if errB == nil {
		t.Fatal("interrupted write succeeded")
	}
	if errA == nil {
		t.Error("the write before the interrupted one succeeded: SQLite kept the transaction")
	}
	if n := countAudit(t, s, "interrupted"); n != 0 {
		t.Errorf("%d rows of the interrupted statement", n)
	}
	want := 0
	for _, err := range []error{errA, errC} {
		if err == nil {
			want++
		}
	}
	if c, err := s.Count(bg, "k", time.Hour, now); err != nil || c != want {
		t.Errorf("Count = %d, %v; want %d (one per write reported committed)", c, err, want)
	}
	if errC != nil {
		t.Errorf("the write after the interrupted one failed: %v", errC)
	}
}

// A write whose context is done before it starts is not run; one whose
// context ends while it runs completes (its statements ignore the
// cancellation) and is reported as committed.
func TestGroupCommitContext(t *testing.T) {
	s, now := openInternal(t), time.Now()
	bg := context.Background()

	done, cancel := context.WithCancel(bg)
	cancel()
	ran := false
	if err := s.writeTx(done, func(txn) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("write with a done context: %v, ran %v", err, ran)
	}

	release := holdWriter(t, s)
	var n1, n2 int
	a := queueWrite(t, s, bg, hitFn(s, "k", now, &n1))
	ctx, cancel := context.WithCancel(bg)
	ranB := false
	b := queueWrite(t, s, ctx, func(tx txn) error { ranB = true; return hitFn(s, "k", now, new(int))(tx) })
	cancel() // while queued
	ctx2, cancel2 := context.WithCancel(bg)
	defer cancel2()
	c := queueWrite(t, s, ctx2, func(tx txn) error {
		cancel2()
		if _, err := s.hitTx(ctx2, tx, "k", time.Hour, now); err != nil {
			return err
		}
		return appendAuditTx(ctx2, tx, AuditEvent{Time: now, Type: "after-cancel"})
	})
	d := queueWrite(t, s, bg, hitFn(s, "k", now, &n2))
	release()
	if err := <-a; err != nil {
		t.Error(err)
	}
	if err := <-b; !errors.Is(err, context.Canceled) || ranB {
		t.Errorf("write cancelled while queued: %v, ran %v", err, ranB)
	}
	if err := <-c; err != nil {
		t.Errorf("write cancelled while running: %v", err)
	}
	if err := <-d; err != nil {
		t.Error(err)
	}
	if n1 != 1 || n2 != 3 {
		t.Errorf("counts %d, %d; want 1, 3", n1, n2)
	}
	if n := countAudit(t, s, "after-cancel"); n != 1 {
		t.Errorf("%d audit events of the write cancelled while running, want 1", n)
	}
}

// Close answers the writes queued before it (they commit) and makes later
// writes fail at once.
func TestGroupCommitClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	key := []byte(strings.Repeat("k", 32))
	s, err := OpenSQLite(t.Context(), "file:"+path, key)
	if err != nil {
		t.Fatal(err)
	}
	now, bg := time.Now(), context.Background()
	release := holdWriter(t, s)
	const queuedWrites = 10
	var res []<-chan error
	for range queuedWrites {
		res = append(res, queueWrite(t, s, bg, hitFn(s, "k", now, new(int))))
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for {
		s.wq.mu.Lock()
		c := s.wq.closed
		s.wq.mu.Unlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Hit(bg, "k", time.Hour, now); !errors.Is(err, errClosed) {
		t.Errorf("Hit while closing: %v, want errClosed", err)
	}
	release()
	for i, ch := range res {
		if err := <-ch; err != nil {
			t.Errorf("write %d queued before Close: %v", i, err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hit(bg, "k", time.Hour, now); !errors.Is(err, errClosed) {
		t.Errorf("Hit after Close: %v, want errClosed", err)
	}

	s, err = OpenSQLite(t.Context(), "file:"+path, key)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.Count(bg, "k", time.Hour, now); err != nil || c != queuedWrites {
		t.Errorf("after reopening: Count = %d, %v; want %d", c, err, queuedWrites)
	}
}

// A write that panics panics in its caller's goroutine; the other writes
// of its batch are not affected.
func TestGroupCommitPanic(t *testing.T) {
	s, now := openInternal(t), time.Now()
	bg := context.Background()
	release := holdWriter(t, s)
	var n1, n2 int
	a := queueWrite(t, s, bg, hitFn(s, "k", now, &n1))
	b := make(chan any, 1)
	n := queued(s)
	go func() {
		defer func() { b <- recover() }()
		_ = s.writeTx(bg, func(tx txn) error {
			if _, err := s.hitTx(bg, tx, "k", time.Hour, now); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	for queued(s) <= n {
		time.Sleep(time.Millisecond)
	}
	c := queueWrite(t, s, bg, hitFn(s, "k", now, &n2))
	release()
	if v := <-b; v != "boom" {
		t.Errorf("panicking write: recovered %v", v)
	}
	if err := errors.Join(<-a, <-c); err != nil || n1 != 1 || n2 != 2 {
		t.Errorf("other writes: %d, %d, %v; want 1, 2", n1, n2, err)
	}
}

// Statements that a batch ran unprepared are prepared once it is over.
func TestGroupCommitPreparesMissed(t *testing.T) {
	s, now := openInternal(t), time.Now()
	bg := context.Background()
	release := holdWriter(t, s)
	a := queueWrite(t, s, bg, hitFn(s, "k", now, new(int)))
	b := queueWrite(t, s, bg, auditFn("x"))
	release()
	if err := errors.Join(<-a, <-b); err != nil {
		t.Fatal(err)
	}
	// The writer prepares after answering: wait for it by writing again.
	if _, err := s.Hit(bg, "k", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	var have []string
	for q := range s.w.stmts {
		have = append(have, strings.Join(strings.Fields(q), " "))
	}
	for _, want := range []string{"SAVEPOINT w", "RELEASE w", "INSERT INTO counters", "INSERT INTO audit"} {
		if !slices.ContainsFunc(have, func(q string) bool { return strings.HasPrefix(q, want) }) {
			t.Errorf("%q not prepared; prepared: %q", want, have)
		}
	}
}

// An in-memory database reads through the writer connection: reads and
// writes from many goroutines at once neither deadlock nor fail.
func TestGroupCommitInMemory(t *testing.T) {
	s, err := OpenSQLite(t.Context(), ":memory:", []byte(strings.Repeat("m", 32)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, now := t.Context(), time.Now()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 30 {
				if _, err := s.Hit(ctx, "k", time.Hour, now); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Count(ctx, "k", time.Hour, now); err != nil {
					t.Error(err)
					return
				}
				f := Flow{ID: fmt.Sprintf("mem-flow-%02d-%04d-0123", g, i), Kind: FlowReset, AccountID: "a",
					CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := s.CreateFlow(ctx, f); err != nil {
					t.Error(err)
					return
				}
				if err := s.UpdateFlow(ctx, f); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.GetFlow(ctx, f.ID, now); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if c, err := s.Count(ctx, "k", time.Hour, now); err != nil || c != 16*30 {
		t.Errorf("Count = %d, %v; want %d", c, err, 16*30)
	}
}
