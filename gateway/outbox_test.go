package gateway

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
