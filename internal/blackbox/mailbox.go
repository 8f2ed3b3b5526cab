package blackbox

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// CodeRE finds a one-time code in a message.
var CodeRE = regexp.MustCompile(`\b(\d{6,8})\b`)

// CodeSubject is in the subject of every mail that carries a code.
const CodeSubject = "verification code"

// pollEvery is how often a wait asks mailpit again.
const pollEvery = 50 * time.Millisecond

// Mailbox reads what a mailpit received. Every wait asks mailpit until
// the condition holds or the context ends; it never sleeps a fixed time
// and then looks.
type Mailbox struct {
	Mail *notifytest.Mailpit
	// Seen, when not nil, makes Code return only codes of messages it
	// has not returned before (and nothing is deleted, so that notices
	// can still be counted); nil: Code returns the newest code.
	Seen map[string]bool
}

// List returns the messages to addr whose subject contains subject (any
// subject when ""), newest first.
func (b Mailbox) List(ctx context.Context, addr, subject string) ([]notifytest.MessageSummary, error) {
	q := `to:"` + addr + `"`
	if subject != "" {
		q += ` subject:"` + subject + `"`
	}
	l, err := b.Mail.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []notifytest.MessageSummary
	for _, m := range l {
		if m.HasRecipient(addr) && strings.Contains(m.Subject, subject) {
			out = append(out, m)
		}
	}
	return out, nil
}

// WaitList waits until at least n messages to addr about subject are
// there and returns them (List).
func (b Mailbox) WaitList(ctx context.Context, addr, subject string, n int) ([]notifytest.MessageSummary, error) {
	return poll(ctx, func() ([]notifytest.MessageSummary, bool, error) {
		l, err := b.List(ctx, addr, subject)
		return l, err == nil && len(l) >= n, nil
	}, func(l []notifytest.MessageSummary) error {
		return fmt.Errorf("%d message(s) to %s about %q, want %d", len(l), addr, subject, n)
	})
}

// Code waits for a verification code mailed to addr (see Seen) and
// returns it.
func (b Mailbox) Code(ctx context.Context, addr string) (string, error) {
	return poll(ctx, func() (string, bool, error) {
		l, err := b.List(ctx, addr, CodeSubject)
		if err != nil {
			return "", false, nil // mailpit busy: ask again
		}
		for _, s := range l {
			if b.Seen != nil && b.Seen[s.ID] {
				continue
			}
			if b.Seen != nil {
				for _, o := range l {
					b.Seen[o.ID] = true
				}
			}
			m, err := b.Mail.Message(ctx, s.ID)
			if err != nil {
				return "", false, err
			}
			c := CodeRE.FindStringSubmatch(m.Text)
			if c == nil {
				return "", false, fmt.Errorf("no code in the mail to %s", addr)
			}
			return c[1], true, nil
		}
		return "", false, nil
	}, func(string) error { return fmt.Errorf("no code mailed to %s", addr) })
}

// Count is how many messages mailpit holds.
func (b Mailbox) Count(ctx context.Context) (int, error) { return b.Mail.Count(ctx) }

// Clear deletes every message mailpit holds.
func (b Mailbox) Clear(ctx context.Context) error { return b.Mail.DeleteAll(ctx) }

// poll calls check until it reports done or an error, or ctx ends (then
// the error is timeout's, with ctx's).
func poll[T any](ctx context.Context, check func() (T, bool, error), timeout func(T) error) (T, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		v, done, err := check()
		if err != nil || done {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w: %w", timeout(v), ctx.Err())
		case <-tick.C:
		}
	}
}

// Collector reads a mailpit that receives thousands of messages: it asks
// for the newest 500 again and again, indexes the codes by recipient,
// counts every message by subject and deletes what it has read (so that
// the listing stays short). Close stops it.
type Collector struct {
	m      *notifytest.Mailpit
	mu     sync.Mutex
	arrive *sync.Cond // broadcast when a code arrives
	codes  map[string][]string
	seen   map[string]bool
	counts map[string]int // by subject
	total  int
	stop   chan struct{}
	done   chan struct{}
	err    error
}

// NewCollector starts reading m.
func NewCollector(m *notifytest.Mailpit) *Collector {
	c := &Collector{m: m, codes: map[string][]string{}, seen: map[string]bool{},
		counts: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	c.arrive = sync.NewCond(&c.mu)
	go c.run()
	return c
}

// Close stops reading.
func (c *Collector) Close() { close(c.stop); <-c.done }

func (c *Collector) run() {
	defer close(c.done)
	for {
		n, err := c.poll()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
		}
		wait := 20 * time.Millisecond
		if n > 0 {
			wait = 2 * time.Millisecond
		}
		select {
		case <-c.stop:
			return
		case <-time.After(wait):
		}
	}
}

func (c *Collector) poll() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.m.List(ctx, 500)
	if err != nil {
		return 0, err
	}
	var ids []string
	c.mu.Lock()
	for i := len(list) - 1; i >= 0; i-- { // oldest first
		s := list[i]
		ids = append(ids, s.ID)
		if c.seen[s.ID] {
			continue
		}
		c.seen[s.ID] = true
		c.total++
		c.counts[s.Subject]++
		if strings.Contains(s.Subject, CodeSubject) && len(s.To) > 0 {
			if m := CodeRE.FindStringSubmatch(s.Snippet); m != nil {
				to := strings.ToLower(s.To[0].Address)
				c.codes[to] = append(c.codes[to], m[1])
			}
		}
	}
	c.arrive.Broadcast()
	c.mu.Unlock()
	if len(ids) > 0 {
		_ = c.m.Delete(ctx, ids)
	}
	return len(ids), nil
}

// Take returns the newest code that arrived for addr since the last Take,
// if any.
func (c *Collector) Take(addr string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.take(strings.ToLower(addr))
}

func (c *Collector) take(addr string) (string, bool) {
	cs := c.codes[addr]
	if len(cs) == 0 {
		return "", false
	}
	delete(c.codes, addr)
	return cs[len(cs)-1], true
}

// Wait waits until a code for addr arrives (Take) or timeout passes.
func (c *Collector) Wait(addr string, timeout time.Duration) (string, error) {
	addr = strings.ToLower(addr)
	expired := false
	t := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		expired = true
		c.arrive.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if code, ok := c.take(addr); ok {
			return code, nil
		}
		if expired {
			return "", fmt.Errorf("no code mailed to %s within %s", addr, timeout)
		}
		c.arrive.Wait()
	}
}

// Snapshot is how many messages were read, in all and by subject.
func (c *Collector) Snapshot() (total int, bySubject map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return c.total, out
}
