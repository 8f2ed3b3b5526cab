package flow

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
)

type flakyMailer struct {
	mu    sync.Mutex
	fails int // the first fails sends fail
	tries int
	sent  []string
	block chan struct{}
}

func (m *flakyMailer) SendEmail(ctx context.Context, e notify.Email) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tries++
	if m.tries <= m.fails {
		return errors.New("smtp down")
	}
	m.sent = append(m.sent, e.To)
	return nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestOutboxDrainsWaitingMessagesOnClose: messages still in their jitter
// time and messages waiting for a retry are sent before close returns.
func TestOutboxDrainsWaitingMessagesOnClose(t *testing.T) {
	m := &flakyMailer{fails: 2}
	o := newOutbox(m, nil, quietLog())
	o.retryDelays = []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}
	var failed []job
	o.failed = func(j job, err error) { failed = append(failed, j) }
	for i := 0; i < 20; i++ {
		o.enqueueAfter(job{email: &notify.Email{To: "a@example.org"}}, time.Now())
	}
	o.enqueue(job{email: &notify.Email{To: "b@example.org"}})
	o.close(30 * time.Second)
	if len(m.sent) != 21 || len(failed) != 0 {
		t.Fatalf("sent %d of 21 (tries %d), failed %d", len(m.sent), m.tries, len(failed))
	}
}

// TestOutboxGivesUpAndReports: a message that fails every try is reported
// once to the failed hook, with what the audit event needs.
func TestOutboxGivesUpAndReports(t *testing.T) {
	m := &flakyMailer{fails: 1 << 30}
	o := newOutbox(m, nil, quietLog())
	o.retryDelays = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	var mu sync.Mutex
	var failed []job
	o.failed = func(j job, err error) { mu.Lock(); failed = append(failed, j); mu.Unlock() }
	o.enqueue(job{email: &notify.Email{To: "a@example.org"}, account: "acct-1", purpose: "notice:password_reset"})
	o.close(30 * time.Second)
	if m.tries != 3 || len(failed) != 1 || failed[0].account != "acct-1" || failed[0].purpose != "notice:password_reset" {
		t.Fatalf("tries %d, failed %+v", m.tries, failed)
	}
}

// TestOutboxCloseIsBounded: a sender that hangs does not hold the
// shutdown past the bound.
func TestOutboxCloseIsBounded(t *testing.T) {
	m := &flakyMailer{block: make(chan struct{})}
	defer close(m.block)
	o := newOutbox(m, nil, quietLog())
	o.enqueue(job{email: &notify.Email{To: "a@example.org"}})
	done := make(chan struct{})
	go func() { o.close(100 * time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a bounded wait, not a timing assertion
		t.Fatal("close did not return while the sender hung")
	}
}

// sessionMailer is a SessionMailer that counts sessions and can break the
// open one (as a server's idle timeout does).
type sessionMailer struct {
	mu       sync.Mutex
	opened   int
	closed   int
	sent     []string
	broken   bool // the open session's next send finds it closed
	inPlain  int  // messages sent without a session
	sessions []*fakeSession
}

type fakeSession struct {
	m    *sessionMailer
	dead bool
}

func (m *sessionMailer) SendEmail(ctx context.Context, e notify.Email) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inPlain++
	m.sent = append(m.sent, e.To)
	return nil
}

func (m *sessionMailer) OpenSession(ctx context.Context) (notify.MailSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opened++
	s := &fakeSession{m: m}
	m.sessions = append(m.sessions, s)
	return s, nil
}

func (s *fakeSession) SendEmail(ctx context.Context, e notify.Email) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.dead || s.m.broken {
		s.dead, s.m.broken = true, false
		return notify.ErrSessionBroken
	}
	s.m.sent = append(s.m.sent, e.To)
	return nil
}

func (s *fakeSession) Close() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.closed++
	return nil
}

func (m *sessionMailer) counts() (opened, closed, sent, plain int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opened, m.closed, len(m.sent), m.inPlain
}

// TestOutboxReusesMailSessions: a burst of messages goes over at most one
// session per worker; a session found closed is replaced and the message
// sent once; close quits every session.
func TestOutboxReusesMailSessions(t *testing.T) {
	m := &sessionMailer{}
	o := newOutbox(m, nil, quietLog())
	for range 40 {
		o.enqueue(job{email: &notify.Email{To: "a@example.org"}})
	}
	waitFor(t, func() bool { _, _, sent, _ := m.counts(); return sent == 40 })
	opened, _, _, plain := m.counts()
	if opened < 1 || opened > outboxWorkers || plain != 0 {
		t.Fatalf("40 messages opened %d sessions (at most %d) and sent %d without one", opened, outboxWorkers, plain)
	}

	m.mu.Lock()
	m.broken = true
	m.mu.Unlock()
	o.enqueue(job{email: &notify.Email{To: "b@example.org"}})
	waitFor(t, func() bool { _, _, sent, _ := m.counts(); return sent == 41 })
	again, _, _, _ := m.counts()
	if again != opened+1 {
		t.Errorf("a broken session was replaced by %d new ones, want 1", again-opened)
	}
	o.close(10 * time.Second)
	opened, closed, sent, _ := m.counts()
	if closed != opened || sent != 41 {
		t.Errorf("after close: %d sessions opened, %d closed, %d messages sent (want 41, each once)", opened, closed, sent)
	}
}

// TestOutboxClosesIdleSessions: a session left without messages for
// outboxSessionIdle is closed.
func TestOutboxClosesIdleSessions(t *testing.T) {
	m := &sessionMailer{}
	o := newOutbox(m, nil, quietLog())
	defer o.close(10 * time.Second)
	o.enqueue(job{email: &notify.Email{To: "a@example.org"}})
	waitFor(t, func() bool { opened, closed, _, _ := m.counts(); return opened == 1 && closed == 1 })
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOutboxReportsWhatShutdownLeaves: messages still queued or being sent
// when the drain time runs out go to the failed hook (audited), each once.
func TestOutboxReportsWhatShutdownLeaves(t *testing.T) {
	m := &flakyMailer{block: make(chan struct{}), fails: 1 << 30}
	o := newOutbox(m, nil, quietLog())
	o.retryDelays = []time.Duration{time.Millisecond}
	var mu sync.Mutex
	failed := map[string]error{}
	calls := 0
	o.failed = func(j job, err error) { mu.Lock(); failed[j.account] = err; calls++; mu.Unlock() }
	for _, a := range []string{"acct-1", "acct-2", "acct-3"} {
		o.enqueue(job{email: &notify.Email{To: a + "@example.org"}, account: a, purpose: "code"})
	}
	o.enqueueAfter(job{email: &notify.Email{To: "w@example.org"}, account: "acct-waiting", purpose: "code"}, time.Now().Add(time.Hour))
	o.close(100 * time.Millisecond)
	// the hung sends now fail, are retried and given up on: reported
	// already, they are not reported again
	close(m.block)
	// every worker has returned once its hung send failed (and its retry,
	// when the worker saw it before the stop) and was given up on: any
	// second report has been made by then
	workersDone := make(chan struct{})
	go func() { o.wg.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-time.After(30 * time.Second): // bounded wait, not a time limit on the outbox
		t.Fatal("the outbox's workers did not return")
	}
	m.mu.Lock()
	if m.tries < 3 || m.tries > 6 { // the three hung sends, at most twice each
		t.Errorf("%d tries, want 3 to 6", m.tries)
	}
	m.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 4 || calls != 4 {
		t.Fatalf("failed hook called %d times with %v, want the four messages once each", calls, failed)
	}
	for a, err := range failed {
		if !errors.Is(err, errOutboxShutdown) {
			t.Fatalf("%s: %v", a, err)
		}
	}
}

// TestOutboxReportsAFullQueue: a message dropped because the queue is full
// goes to the failed hook at once.
func TestOutboxReportsAFullQueue(t *testing.T) {
	m := &flakyMailer{block: make(chan struct{})}
	o := newOutbox(m, nil, quietLog())
	var mu sync.Mutex
	var full int
	o.failed = func(j job, err error) {
		if errors.Is(err, errOutboxFull) {
			mu.Lock()
			full++
			mu.Unlock()
		}
	}
	// the workers each hold one (blocked), the queue holds outboxCapacity
	for i := 0; i < outboxWorkers+outboxCapacity+5; i++ {
		o.enqueue(job{email: &notify.Email{To: "a@example.org"}, purpose: "code"})
	}
	mu.Lock()
	got := full
	mu.Unlock()
	// a worker may not have taken its first message yet: 5 to 5+workers
	if got < 5 || got > 5+outboxWorkers {
		t.Fatalf("%d messages reported dropped, want 5 to %d", got, 5+outboxWorkers)
	}
	close(m.block)
	o.close(30 * time.Second)
}
