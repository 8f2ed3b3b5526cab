package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Group commit. A write transaction of the SQLite store (writeTx) that
// finds another one running is queued for the writer goroutine, which takes
// the oldest queued write and up to maxBatch-1 more that are queued by then
// (it never waits for more), and runs them in one BEGIN IMMEDIATE
// transaction, one after the other in queue order, each in its own
// savepoint, and commits once. A write that fails is rolled back to its
// savepoint and does not undo the others. A transaction then costs one
// BEGIN, one COMMIT and one write of each changed page to the WAL for the
// whole batch instead of for each write.
//
// Writes of a batch run serially, each seeing the effects of those before
// it, exactly as if each had its own transaction: counters stay exact and
// compare-and-swap updates conflict as before.
//
// A write that finds nothing running and nothing queued runs at once in
// its caller's goroutine, alone in its transaction, as before group
// commit: a first version that handed every write to the writer goroutine
// was 10-20 % slower than before with one writer on two cores
// (BenchmarkSQLiteWriteParallel, g=1). Writes that arrive meanwhile queue
// for the writer goroutine, which starts once that write is over.

// maxBatch bounds the writes run in one transaction, so that the first of
// them does not wait behind an unbounded number of others.
const maxBatch = 64

// connSlack is how much longer than the busy timeout a batch waits for the
// writer connection before it fails (BEGIN IMMEDIATE then waits for the
// database's write lock for up to the busy timeout).
const connSlack = 30 * time.Second

// errClosed answers writes made after Close.
var errClosed = errors.New("store: closed")

// errPanicked is the internal error of a write whose fn panicked; its
// caller panics again with the value.
var errPanicked = errors.New("store: write panicked")

// writeReq is one queued writeTx call.
type writeReq struct {
	ctx      context.Context
	fn       func(tx txn) error
	err      error
	panicked any           // what fn panicked with, if it did
	done     chan struct{} // closed once err is set (nil if run by its caller)
}

// writeQueue is the writer goroutine's queue.
type writeQueue struct {
	mu     sync.Mutex
	queue  []*writeReq
	busy   bool // a batch is running, in the writer goroutine or a caller's
	closed bool
	// wake has capacity 1: something was queued, busy was cleared with
	// writes queued, or Close was called.
	wake    chan struct{}
	stopped chan struct{} // closed when the writer goroutine has returned

	// connTimeout bounds the writer goroutine's wait for the writer
	// connection.
	connTimeout time.Duration
	// batchHook, if set (tests, under mu), is called with each batch's
	// size before the batch runs.
	batchHook func(n int)
}

// startWriter starts the writer goroutine; Close stops it.
func (s *SQLite) startWriter(busyTimeout time.Duration) {
	s.wq = &writeQueue{
		wake:        make(chan struct{}, 1),
		stopped:     make(chan struct{}),
		connTimeout: busyTimeout + connSlack,
	}
	go s.writer()
}

// stopWriter makes later writes fail and returns once every write queued
// before has been answered.
func (s *SQLite) stopWriter() {
	if s.wq == nil {
		return
	}
	s.wq.mu.Lock()
	s.wq.closed = true
	s.wq.mu.Unlock()
	s.wq.signal()
	<-s.wq.stopped
}

func (q *writeQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// writeTx runs fn in a BEGIN IMMEDIATE transaction on the writer
// connection, together with other writes queued at the same time (see
// above), and returns fn's error, or the error that kept the transaction
// from committing. When writeTx returns nil, fn's writes are committed;
// otherwise none of them are.
//
// If ctx is done before fn starts, fn is not run and ctx's error is
// returned. fn's statements run with ctx's values but without its
// cancellation: interrupting a statement could roll back the whole
// transaction and with it the other writes of the batch.
func (s *SQLite) writeTx(ctx context.Context, fn func(tx txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{ctx: ctx, fn: fn}
	q := s.wq
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errClosed
	}
	if !q.busy && len(q.queue) == 0 {
		q.busy = true
		q.mu.Unlock()
		s.runAlone(r)
	} else {
		r.done = make(chan struct{})
		q.queue = append(q.queue, r)
		q.mu.Unlock()
		q.signal()
		// Wait even if ctx ends meanwhile: once fn has started, only the
		// writer knows whether it will be committed.
		<-r.done
	}
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// runAlone runs r, which found the writer idle and nothing queued, in the
// caller's goroutine, then lets the writer goroutine run what was queued
// meanwhile.
func (s *SQLite) runAlone(r *writeReq) {
	q := s.wq
	defer func() {
		q.mu.Lock()
		q.busy = false
		wake := len(q.queue) > 0 || q.closed
		q.mu.Unlock()
		if wake {
			q.signal()
		}
	}()
	b := [1]*writeReq{r}
	// The caller's context bounds the wait for the connection, as it did
	// before group commit.
	s.runBatch(r.ctx, b[:])
}

// writer runs the queued writes until Close, then returns once the queue
// is empty and no write is running.
func (s *SQLite) writer() {
	q := s.wq
	defer close(q.stopped)
	var batch []*writeReq
	for {
		q.mu.Lock()
		if q.busy || len(q.queue) == 0 {
			stop := q.closed && !q.busy && len(q.queue) == 0
			q.mu.Unlock()
			if stop {
				return
			}
			<-q.wake
			continue
		}
		n := min(len(q.queue), maxBatch)
		batch = append(batch[:0], q.queue[:n]...)
		clear(q.queue[:n])
		q.queue = q.queue[n:]
		q.busy = true
		hook := q.batchHook
		q.mu.Unlock()

		if hook != nil {
			hook(len(batch))
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.connTimeout)
		rest := s.runBatch(ctx, batch)
		cancel()
		q.mu.Lock()
		if len(rest) > 0 {
			// Never started: they go first in the next batch.
			q.queue = append(append(make([]*writeReq, 0, len(rest)+len(q.queue)), rest...), q.queue...)
		}
		q.busy = false
		q.mu.Unlock()
		clear(batch)
	}
}

// runBatch runs batch in one transaction and answers its writes, except
// those it returns: writes it did not start because the transaction broke
// (see below), to be run again in another transaction. connCtx bounds the
// wait for the writer connection.
func (s *SQLite) runBatch(connCtx context.Context, batch []*writeReq) (rest []*writeReq) {
	var missed []string
	defer func() {
		// The connection is free again: prepare what the transaction ran
		// unprepared, for next time. A failure only means no caching.
		for _, q := range missed {
			_, _ = s.w.prepare(context.Background(), q)
		}
	}()

	conn, tx, err := s.beginBatch(connCtx)
	if err != nil {
		for _, r := range batch {
			r.err = fmt.Errorf("store: begin: %w", err)
			r.answer()
		}
		return nil
	}
	defer conn.Close() // before the missed statements are prepared
	n, broken := s.runWrites(tx, batch, &missed)
	return finishBatch(tx, batch, n, broken)
}

// beginBatch takes a connection and begins the batch's transaction.
// The transaction belongs to no caller: a context that ended during it
// would roll it back. BEGIN IMMEDIATE waits for the write lock for up to
// the busy timeout.
func (s *SQLite) beginBatch(connCtx context.Context) (*sql.Conn, *sql.Tx, error) {
	conn, err := s.w.Conn(connCtx)
	if err != nil {
		return nil, nil, err
	}
	tx, err := conn.BeginTx(context.Background(), nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, tx, nil
}

// runWrites runs the writes of batch in tx, each in a savepoint of its own
// when there are several. It returns how many ran (or were skipped) and,
// when the transaction can no longer commit, why (broken): the writes
// after batch[:n] did not run.
func (s *SQLite) runWrites(tx *sql.Tx, batch []*writeReq, missed *[]string) (n int, broken error) {
	bg := context.Background()
	// With savepoints, a failing write is undone alone. A write alone in
	// its batch needs none: the whole transaction is rolled back instead.
	savepoints := len(batch) > 1
	// for SAVEPOINT, ROLLBACK TO and RELEASE
	ctl := txn{tx: tx, p: s.w, missed: missed}
	for _, r := range batch {
		n++
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		if savepoints {
			if _, err := ctl.ExecContext(bg, `SAVEPOINT w`); err != nil {
				r.err = fmt.Errorf("store: savepoint: %w", err)
				return n, err
			}
		}
		ctx := r.ctx
		if ctx.Done() != nil {
			ctx = context.WithoutCancel(ctx)
		}
		r.call(txn{tx: tx, p: s.w, missed: missed, ctx: ctx})
		if !savepoints {
			return n, r.err
		}
		// If a statement's error rolled back the whole transaction (as
		// SQLite may do on an I/O error, a full disk or an interrupt),
		// the savepoint is gone with it and ROLLBACK TO or RELEASE fails.
		// Later writes must not run: outside a transaction each of their
		// statements would commit on its own.
		if r.err != nil {
			if _, err := ctl.ExecContext(bg, `ROLLBACK TO w`); err != nil {
				return n, err
			}
		}
		if _, err := ctl.ExecContext(bg, `RELEASE w`); err != nil {
			return n, err
		}
	}
	return n, nil
}

// finishBatch commits tx, or rolls it back when broken, and answers
// batch[:n]: each write that succeeded gets the transaction's error, if
// any. It returns the writes that did not run.
func finishBatch(tx *sql.Tx, batch []*writeReq, n int, broken error) (rest []*writeReq) {
	var failed error // the error of every write of batch[:n] that succeeded
	if broken != nil {
		_ = tx.Rollback()
		failed = fmt.Errorf("store: transaction rolled back: %w", broken)
		rest = batch[n:]
	} else if err := tx.Commit(); err != nil {
		failed = fmt.Errorf("store: commit: %w", err)
	}
	for _, r := range batch[:n] {
		if r.err == nil {
			r.err = failed
		}
		r.answer()
	}
	return rest
}

// answer wakes r's caller if it is waiting.
func (r *writeReq) answer() {
	if r.done != nil {
		close(r.done)
	}
}

// call calls r.fn, turning a panic into errPanicked and noting the
// panic's value in r.
func (r *writeReq) call(t txn) {
	defer func() {
		if v := recover(); v != nil {
			r.err, r.panicked = errPanicked, v
		}
	}()
	r.err = r.fn(t)
}
