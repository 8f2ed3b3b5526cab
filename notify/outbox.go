package notify

import (
	"context"
	"sync"
	"time"
)

// Outbox is the demo's mail and SMS "provider": it validates every message
// exactly as the real senders do and keeps the most recent ones in memory,
// for `latchkey demo` to show on its outbox page. Nothing leaves the
// process. It is never used by `latchkey serve`.
type Outbox struct {
	mu   sync.Mutex
	max  int
	seq  int
	msgs []OutboxMessage
	now  func() time.Time
}

// OutboxMessage is one delivered message, or one the gateway did not send
// (NotSent).
type OutboxMessage struct {
	// ID counts up from 1 in delivery order.
	ID int
	// Kind is "email" or "sms".
	Kind    string
	To      string // empty when a message not sent had no address at hand
	Subject string // empty for SMS
	Text    string // the text body, or the SMS body
	At      time.Time
	// NotSent is why the message was not sent ("" for a delivered one):
	// the limits key of a spent budget, or the outbox's reason
	// (expired_before_send, send_failed, not_stored); Purpose what it was
	// for (a flow's kind, "register", a notice).
	NotSent, Purpose string
}

var (
	_ Mailer    = (*Outbox)(nil)
	_ SMSSender = (*Outbox)(nil)
)

// NewOutbox keeps the last max messages (at least 1).
func NewOutbox(max int) *Outbox {
	if max < 1 {
		max = 1
	}
	return &Outbox{max: max, now: time.Now}
}

// SendEmail validates e like the SMTP sender and keeps it.
func (o *Outbox) SendEmail(ctx context.Context, e Email) error {
	if _, err := e.validate(); err != nil {
		return err
	}
	o.keep(OutboxMessage{Kind: "email", To: e.To, Subject: e.Subject, Text: e.Text})
	return nil
}

// SendSMS validates m like the SMS providers and keeps it.
func (o *Outbox) SendSMS(ctx context.Context, m SMS) error {
	if err := m.validate(); err != nil {
		return err
	}
	o.keep(OutboxMessage{Kind: "sms", To: m.To, Text: m.Body})
	return nil
}

// NotSent keeps a message the gateway did not send, with why (flow.Demo).
func (o *Outbox) NotSent(kind, to, purpose, reason string) {
	o.keep(OutboxMessage{Kind: kind, To: to, Purpose: purpose, NotSent: reason})
}

func (o *Outbox) keep(m OutboxMessage) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	m.ID, m.At = o.seq, o.now()
	o.msgs = append(o.msgs, m)
	if over := len(o.msgs) - o.max; over > 0 {
		o.msgs = append(o.msgs[:0:0], o.msgs[over:]...)
	}
}

// Messages returns the kept messages, newest first.
func (o *Outbox) Messages() []OutboxMessage {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]OutboxMessage, len(o.msgs))
	for i, m := range o.msgs {
		out[len(o.msgs)-1-i] = m
	}
	return out
}
