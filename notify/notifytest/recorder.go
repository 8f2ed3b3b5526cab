package notifytest

import (
	"context"
	"strings"
	"sync"

	"github.com/latchkeyhq/latchkey/notify"
)

// Recorder is an in-memory notify.Mailer and notify.SMSSender for fast unit
// tests: it records what would have been sent. Set Err to make every send
// fail. It does not validate; use the real senders against mailpit and the
// fakes for that.
type Recorder struct {
	mu     sync.Mutex
	emails []notify.Email
	sms    []notify.SMS
	// Err, when set, is returned by every send (and nothing is recorded).
	Err error
}

var (
	_ notify.Mailer    = (*Recorder)(nil)
	_ notify.SMSSender = (*Recorder)(nil)
)

// SendEmail records e.
func (r *Recorder) SendEmail(ctx context.Context, e notify.Email) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.emails = append(r.emails, e)
	return nil
}

// SendSMS records m.
func (r *Recorder) SendSMS(ctx context.Context, m notify.SMS) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.sms = append(r.sms, m)
	return nil
}

// Emails returns the recorded e-mails, oldest first.
func (r *Recorder) Emails() []notify.Email {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Email(nil), r.emails...)
}

// SMS returns the recorded text messages, oldest first.
func (r *Recorder) SMS() []notify.SMS {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.SMS(nil), r.sms...)
}

// E164 is a phone number as a user types it ("+44 7700 900111") in
// E.164, the form the SMS provider is sent ("+447700900111"): its digits.
func E164(phone string) string {
	return "+" + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, phone)
}
