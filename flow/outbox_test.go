package flow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
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

func (m *flakyMailer) sentTo() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.sent...)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testOutbox is an outbox on a real store (SQLite, or PostgreSQL under
// flowtest.OnBothStores), with hooks that count what the service audits.
type testOutbox struct {
	*outbox
	mu        sync.Mutex
	failed    map[string]string // message id -> reason
	delivered map[string]int
	clock     atomic.Int64 // the service's clock: offset from now, ns
}

func newTestOutbox(t *testing.T, st store.Store, m notify.Mailer, opts OutboxOptions) *testOutbox {
	t.Helper()
	if opts.EmailConcurrency == 0 {
		opts.EmailConcurrency = 4
	}
	if opts.SMSConcurrency == 0 {
		opts.SMSConcurrency = 1
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = time.Minute
	}
	to := &testOutbox{failed: map[string]string{}, delivered: map[string]int{}}
	to.outbox = newOutbox(st, m, nil, quietLog(), opts, func() time.Time { return time.Now().Add(time.Duration(to.clock.Load())) })
	to.retryDelays = []time.Duration{20 * time.Millisecond}
	to.outbox.failed = func(m store.OutboxMessage, reason string) {
		to.mu.Lock()
		to.failed[m.ID] = reason
		to.mu.Unlock()
	}
	to.outbox.delivered = func(m store.OutboxMessage) []store.AuditEvent {
		to.mu.Lock()
		to.delivered[m.ID]++
		to.mu.Unlock()
		return nil
	}
	t.Cleanup(func() { to.close(time.Second) })
	return to
}

// put writes a message of kind to addr, due after delay, expiring in ttl.
func (to *testOutbox) put(t *testing.T, kind, addr string, delay, ttl time.Duration) store.OutboxMessage {
	t.Helper()
	j := job{email: &notify.Email{To: addr, Subject: "s", Text: "t"}, account: "acct-" + addr, purpose: "reset", requestID: "req-" + addr}
	if kind == store.OutboxNotice {
		j.purpose = "notice:password_reset"
	}
	m := to.row(j, kind, time.Now().Add(delay), to.svcNow().Add(ttl))
	if kind == store.OutboxDecoy {
		m = to.decoyRow(store.MethodEmail, Meta{RequestID: "req-decoy"}, "reset", time.Now().Add(delay), to.svcNow().Add(ttl))
	}
	if err := to.st.EnqueueMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	to.written(m)
	return m
}

func (to *testOutbox) reports() (failed map[string]string, delivered map[string]int) {
	to.mu.Lock()
	defer to.mu.Unlock()
	failed, delivered = map[string]string{}, map[string]int{}
	for k, v := range to.failed {
		failed[k] = v
	}
	for k, v := range to.delivered {
		delivered[k] = v
	}
	return failed, delivered
}

func pendingMessages(t *testing.T, st store.Store) int {
	t.Helper()
	s, err := st.OutboxStats(t.Context(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s.PendingCodes + s.PendingNotices
}

// TestOutboxSendsFromTheStore: messages written to the store leave once
// due, each once, after their time; each is audited delivered once the
// mailer accepted it; a decoy is never sent nor audited; nothing stays
// pending.
func TestOutboxSendsFromTheStore(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		m := &flakyMailer{}
		o := newTestOutbox(t, st, m, OutboxOptions{})
		o.start()
		start := time.Now()
		a := o.put(t, store.OutboxCode, "a@example.org", 300*time.Millisecond, time.Minute)
		b := o.put(t, store.OutboxNotice, "b@example.org", 0, time.Minute)
		o.put(t, store.OutboxDecoy, "", 0, time.Minute)
		waitFor(t, func() bool { return len(m.sentTo()) == 2 })
		if time.Since(start) < 300*time.Millisecond {
			t.Fatalf("the code left %s after it was written, before its time (300 ms)", time.Since(start))
		}
		waitFor(t, func() bool { _, d := o.reports(); return len(d) == 2 })
		o.close(10 * time.Second)
		failed, delivered := o.reports()
		if len(m.sentTo()) != 2 || delivered[a.ID] != 1 || delivered[b.ID] != 1 || len(failed) != 0 {
			t.Fatalf("sent %v, delivered %v, failed %v", m.sentTo(), delivered, failed)
		}
		if n := pendingMessages(t, st); n != 0 {
			t.Fatalf("%d messages still pending", n)
		}
	})
}

// TestOutboxStaleHintForgetsNothing: a wake whose hint names a message
// already claimed (its claim then finds nothing) must not make the
// dispatcher forget the next message it knew of until its next poll of the
// store (a second later): that message still leaves at its time.
//
// The lateness allowed (400 ms) is far above the dispatcher's own latency
// and well below the poll's second; a miss is measured once more with a
// fresh message, and the test fails only if both are late, so a scheduling
// stall of a loaded CI machine does not fail it by chance.
func TestOutboxStaleHintForgetsNothing(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		m := &flakyMailer{}
		o := newTestOutbox(t, st, m, OutboxOptions{})
		o.start()
		q := o.queues[0]
		if q.name != store.MethodEmail {
			t.Fatalf("first queue %q, want email", q.name)
		}
		late := func(round int) time.Duration {
			addr := fmt.Sprintf("next%d@example.org", round)
			c := o.put(t, store.OutboxCode, addr, 150*time.Millisecond, time.Minute)
			time.Sleep(20 * time.Millisecond) // the dispatcher took c's hint and waits for its time
			lowerHint(&q.hint, time.Now().Add(-time.Second).UnixMicro())
			signal(q.wake) // a stale hint: due, but nothing to claim
			waitFor(t, func() bool { return slices.Contains(m.sentTo(), addr) })
			return time.Since(c.NotBefore)
		}
		if d := late(1); d > 400*time.Millisecond {
			t.Logf("the next message left %s after its time: measuring once more", d)
			if d := late(2); d > 400*time.Millisecond {
				t.Fatalf("the next message left %s after its time, twice: the stale hint made the dispatcher forget it", d)
			}
		}
	})
}

// TestOutboxRetriesUntilSent: a message whose first tries fail is sent
// once the mailer accepts it, audited delivered once and never failed.
func TestOutboxRetriesUntilSent(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		m := &flakyMailer{fails: 3}
		o := newTestOutbox(t, st, m, OutboxOptions{EmailConcurrency: 1})
		o.start()
		a := o.put(t, store.OutboxCode, "a@example.org", 0, time.Minute)
		waitFor(t, func() bool { _, d := o.reports(); return d[a.ID] == 1 })
		o.close(10 * time.Second)
		failed, delivered := o.reports()
		if got := m.sentTo(); len(got) != 1 || m.tries != 4 || delivered[a.ID] != 1 || len(failed) != 0 {
			t.Fatalf("sent %v in %d tries, delivered %v, failed %v", got, m.tries, delivered, failed)
		}
	})
}

// TestOutboxExpiredBeforeSendIsNotSent: a code whose lifetime ended while
// the mail server refused it is not sent once it is back: it is audited
// expired_before_send, once; a live one waiting with it is sent.
func TestOutboxExpiredBeforeSendIsNotSent(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		m := &flakyMailer{fails: 1 << 30}
		o := newTestOutbox(t, st, m, OutboxOptions{})
		o.start()
		short := o.put(t, store.OutboxCode, "short@example.org", 0, 2*time.Minute)
		long := o.put(t, store.OutboxCode, "long@example.org", 0, 20*time.Minute)
		waitFor(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.tries >= 4 }) // both tried, twice
		o.clock.Store(int64(5 * time.Minute))                                             // the short one's lifetime ends
		m.mu.Lock()
		m.fails = 0 // the server is back
		m.mu.Unlock()
		waitFor(t, func() bool { f, d := o.reports(); return f[short.ID] != "" && d[long.ID] == 1 })
		o.close(10 * time.Second)
		failed, delivered := o.reports()
		if got := m.sentTo(); len(got) != 1 || got[0] != "long@example.org" || failed[short.ID] != "expired_before_send" ||
			len(failed) != 1 || delivered[short.ID] != 0 {
			t.Fatalf("sent %v, failed %v, delivered %v", got, failed, delivered)
		}
		if n := pendingMessages(t, st); n != 0 {
			t.Fatalf("%d messages still pending", n)
		}
	})
}

// TestOutboxExpeditesRetriesWhenTheServerIsBack: a message waiting out a
// long back-off after a failed try is sent as soon as another message
// gets through (the server is back), not a minute later.
func TestOutboxExpeditesRetriesWhenTheServerIsBack(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		m := &flakyMailer{fails: 1}
		o := newTestOutbox(t, st, m, OutboxOptions{EmailConcurrency: 1})
		o.retryDelays = []time.Duration{time.Hour}
		o.start()
		a := o.put(t, store.OutboxCode, "a@example.org", 0, 2*time.Hour)
		waitFor(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.tries == 1 }) // failed, back-off an hour
		b := o.put(t, store.OutboxCode, "b@example.org", 0, 2*time.Hour)
		// bounded wait (10 s), an hour short of the back-off
		waitFor(t, func() bool { _, d := o.reports(); return d[a.ID] == 1 && d[b.ID] == 1 })
	})
}

// TestOutboxCodesBeforeNotices: with one sender and a backlog, the codes
// leave before the notices written before them.
func TestOutboxCodesBeforeNotices(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		m := &flakyMailer{}
		o := newTestOutbox(t, st, m, OutboxOptions{EmailConcurrency: 1})
		for _, a := range []string{"n1", "n2", "n3"} {
			o.put(t, store.OutboxNotice, a+"@example.org", -time.Second, time.Minute)
		}
		for _, a := range []string{"c1", "c2"} {
			o.put(t, store.OutboxCode, a+"@example.org", 0, time.Minute)
		}
		o.start() // the backlog is there before the first claim
		waitFor(t, func() bool { return len(m.sentTo()) == 5 })
		got := m.sentTo()
		if got[0][0] != 'c' || got[1][0] != 'c' {
			t.Fatalf("sent in the order %v: codes first", got)
		}
	})
}

// TestOutboxRestartSendsWhatWasLeft: what one outbox left in the store (a
// crash: its messages not yet due, and one claimed by a worker that hung,
// as a killed instance leaves it) is sent by the next one, each message
// once, after its time and after the lease ended.
func TestOutboxRestartSendsWhatWasLeft(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		hung := &flakyMailer{block: make(chan struct{})}
		defer close(hung.block)
		first := newTestOutbox(t, st, hung, OutboxOptions{EmailConcurrency: 1})
		first.lease = time.Second
		first.start()
		h := first.put(t, store.OutboxCode, "hung@example.org", 0, time.Minute)
		waitFor(t, func() bool { return first.queues[0].busy.Load() == 1 }) // claimed, hanging
		var left []store.OutboxMessage
		for _, a := range []string{"l1", "l2", "l3"} {
			left = append(left, first.put(t, store.OutboxCode, a+"@example.org", 200*time.Millisecond, time.Minute))
		}
		// the crash: the first outbox sends nothing more (its workers stop
		// claiming; the hung send never finishes)
		first.once.Do(func() { close(first.stop) })

		m := &flakyMailer{}
		second := newTestOutbox(t, st, m, OutboxOptions{})
		second.start()
		waitFor(t, func() bool { return len(m.sentTo()) == 4 })
		second.close(10 * time.Second)
		_, delivered := second.reports()
		for _, msg := range append(left, h) {
			if delivered[msg.ID] != 1 {
				t.Fatalf("message to %s delivered %d times after the restart (sent %v)", msg.AccountID, delivered[msg.ID], m.sentTo())
			}
		}
		if got := m.sentTo(); len(got) != 4 {
			t.Fatalf("sent %v, want each of the 4 once", got)
		}
	})
}

// TestOutboxTwoInstancesSendEachOnce: 500 messages written while no
// instance runs (as a crashed one leaves them) are sent by two instances
// sharing the store, each message exactly once between them.
func TestOutboxTwoInstancesSendEachOnce(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		crashed := newTestOutbox(t, st, &flakyMailer{}, OutboxOptions{}) // never started
		var ids []string
		for i := range 500 {
			kind := store.OutboxCode
			if i%5 == 0 {
				kind = store.OutboxNotice
			}
			ids = append(ids, crashed.put(t, kind, fmt.Sprintf("u%d@example.org", i), 0, time.Hour).ID)
		}
		ma, mb := &flakyMailer{}, &flakyMailer{}
		a := newTestOutbox(t, st, ma, OutboxOptions{EmailConcurrency: 4})
		b := newTestOutbox(t, st, mb, OutboxOptions{EmailConcurrency: 4})
		a.start()
		b.start()
		waitFor(t, func() bool { return len(ma.sentTo())+len(mb.sentTo()) >= 500 && pendingMessages(t, st) == 0 })
		a.close(10 * time.Second)
		b.close(10 * time.Second)
		seen := map[string]int{}
		for _, to := range append(ma.sentTo(), mb.sentTo()...) {
			seen[to]++
		}
		_, da := a.reports()
		_, db := b.reports()
		for i, id := range ids {
			if to := fmt.Sprintf("u%d@example.org", i); seen[to] != 1 || da[id]+db[id] != 1 {
				t.Fatalf("%s: sent %d times, audited delivered %d times", to, seen[to], da[id]+db[id])
			}
		}
		t.Logf("instance a sent %d, b %d", len(ma.sentTo()), len(mb.sentTo()))
	})
}

// TestOutboxCloseIsBounded: a sender that hangs does not hold the
// shutdown past the bound, and the message stays in the store.
func TestOutboxCloseIsBounded(t *testing.T) {
	st, _ := flowtest.OpenStore(t)
	m := &flakyMailer{block: make(chan struct{})}
	defer close(m.block)
	o := newTestOutbox(t, st, m, OutboxOptions{})
	o.start()
	o.put(t, store.OutboxCode, "a@example.org", 0, time.Minute)
	done := make(chan struct{})
	go func() { o.close(100 * time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a bounded wait, not a timing assertion
		t.Fatal("close did not return while the sender hung")
	}
	if n := pendingMessages(t, st); n != 1 {
		t.Fatalf("%d messages pending after the bounded close, want the hung one kept", n)
	}
}

// TestOutboxBusy: back-pressure is decided from the queue alone: pending
// codes over max_pending, or more than leave within max_wait at the
// measured rate (at least outboxMinRate), or an oldest code waiting
// longer than max_wait.
func TestOutboxBusy(t *testing.T) {
	opts := OutboxOptions{MaxWait: 10 * time.Second, MaxPending: 100}
	for _, c := range []struct {
		q    QueueState
		busy bool
	}{
		{QueueState{}, false},
		{QueueState{PendingCodes: 10}, false},
		{QueueState{PendingCodes: 11}, true},                // 11 s at the assumed 1/s
		{QueueState{PendingCodes: 50, SendRate: 10}, false}, // 5 s
		{QueueState{PendingCodes: 99, SendRate: 9}, true},   // 11 s
		{QueueState{PendingCodes: 100, SendRate: 1000}, true},
		{QueueState{PendingCodes: 1, OldestCode: 11 * time.Second}, true},
		{QueueState{PendingNotices: 5000}, false},
	} {
		if got := opts.busy(c.q); got != c.busy {
			t.Errorf("%+v: busy %v, want %v", c.q, got, c.busy)
		}
	}
}

// TestSendRateFromTheFirstSent: the rate is measured from the first
// message sent in the window, not over the whole window: 100 codes sent in
// the 5 s since a burst began are 20 a second (over the minute, 1.7 a
// second, would make 150 pending codes a 90 s wait: busy).
func TestSendRateFromTheFirstSent(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		st   store.OutboxStats
		want float64
	}{
		{store.OutboxStats{}, 0},
		{store.OutboxStats{Sent: 100, FirstSent: now.Add(-5 * time.Second)}, 20},
		{store.OutboxStats{Sent: 3, FirstSent: now.Add(-time.Second)}, 0.6}, // over 5 s at least
		{store.OutboxStats{Sent: 120, FirstSent: now.Add(-30 * time.Second)}, 4},
		{store.OutboxStats{Sent: 600, FirstSent: now.Add(-time.Minute)}, 10},
		{store.OutboxStats{Sent: 600, FirstSent: now.Add(-2 * time.Minute)}, 10}, // never over more than the window
	} {
		if got := sendRate(c.st, now); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%+v: rate %v, want %v", c.st, got, c.want)
		}
	}
	opts := OutboxOptions{MaxWait: time.Minute, MaxPending: 10000}
	q := QueueState{PendingCodes: 150, SendRate: sendRate(store.OutboxStats{Sent: 100, FirstSent: now.Add(-5 * time.Second)}, now)}
	if opts.busy(q) {
		t.Fatal("150 codes pending at 20 a second (7.5 s) are busy")
	}
}

// TestOutboxBusyFromTheStore: the state read from the store turns busy
// once max_pending codes wait (a stalled sender), on every instance
// reading the store, and not before.
func TestOutboxBusyFromTheStore(t *testing.T) {
	flowtest.OnBothStores(t, func(t *testing.T) {
		st, _ := flowtest.OpenStore(t)
		m := &flakyMailer{block: make(chan struct{})}
		defer close(m.block)
		o := newTestOutbox(t, st, m, OutboxOptions{MaxPending: 3, EmailConcurrency: 1})
		other := newTestOutbox(t, st, m, OutboxOptions{MaxPending: 3, EmailConcurrency: 1}) // reads only
		for i := range 2 {
			o.put(t, store.OutboxCode, string(rune('a'+i))+"@example.org", time.Hour, time.Hour)
		}
		o.refresh(t.Context())
		if o.busy() {
			t.Fatalf("busy with 2 codes pending, max_pending 3: %+v", *o.state.Load())
		}
		o.put(t, store.OutboxCode, "c@example.org", time.Hour, time.Hour)
		o.put(t, store.OutboxNotice, "n@example.org", time.Hour, time.Hour)
		o.refresh(t.Context())
		other.refresh(t.Context())
		if !o.busy() || !other.busy() || o.state.Load().PendingCodes != 3 || o.state.Load().PendingNotices != 1 {
			t.Fatalf("not busy with 3 codes pending: %+v / %+v", *o.state.Load(), *other.state.Load())
		}
	})
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
	st, _ := flowtest.OpenStore(t)
	m := &sessionMailer{}
	o := newTestOutbox(t, st, m, OutboxOptions{EmailConcurrency: 4})
	o.start()
	for range 40 {
		o.put(t, store.OutboxNotice, "a@example.org", 0, time.Minute)
	}
	waitFor(t, func() bool { _, _, sent, _ := m.counts(); return sent == 40 })
	opened, _, _, plain := m.counts()
	if opened < 1 || opened > 4 || plain != 0 {
		t.Fatalf("40 messages opened %d sessions (at most 4) and sent %d without one", opened, plain)
	}

	m.mu.Lock()
	m.broken = true
	m.mu.Unlock()
	o.put(t, store.OutboxNotice, "b@example.org", 0, time.Minute)
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
	st, _ := flowtest.OpenStore(t)
	m := &sessionMailer{}
	o := newTestOutbox(t, st, m, OutboxOptions{})
	o.start()
	o.put(t, store.OutboxNotice, "a@example.org", 0, time.Minute)
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
