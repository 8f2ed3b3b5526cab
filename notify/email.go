package notify

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Email is one rendered e-mail message for one recipient.
type Email struct {
	// To is one bare address ("jo@example.org"). Display names, lists and
	// groups are refused: the gateway passes the address it stored.
	To string
	// Subject is a single line.
	Subject string
	// Text is the text/plain body. At least one of Text and HTML is required;
	// when both are set the message is multipart/alternative.
	Text string
	// HTML is the text/html body.
	HTML string
}

// Mailer sends e-mail.
type Mailer interface {
	SendEmail(ctx context.Context, e Email) error
}

// SessionMailer is a Mailer that can also keep one connection open for
// several messages (SMTP: one dial, greeting, EHLO, STARTTLS and AUTH for
// all of them instead of one each).
type SessionMailer interface {
	Mailer
	OpenSession(ctx context.Context) (MailSession, error)
}

// MailSession sends messages on one open connection, one at a time (not
// safe for concurrent use). After an error the session may be unusable:
// close it and open another.
type MailSession interface {
	SendEmail(ctx context.Context, e Email) error
	Close() error
}

// Limits on what SendEmail accepts. They are generous for the gateway's mails
// and protect against accidental multi-megabyte bodies.
const (
	maxSubjectLen = 998 // RFC 5322 line limit; go-mail folds and encodes it
	maxBodyLen    = 1 << 20
)

// Errors returned before anything is sent. Test with errors.Is.
var (
	// ErrInvalidAddress: the recipient or sender is not exactly one valid
	// e-mail address.
	ErrInvalidAddress = errors.New("notify: invalid e-mail address")
	// ErrHeaderInjection: a header value (To, From, Subject) contains CR, LF
	// or another control character.
	ErrHeaderInjection = errors.New("notify: control character in header value")
	// ErrInvalidMessage: the message is empty or too large.
	ErrInvalidMessage = errors.New("notify: invalid message")
)

// checkHeaderValue refuses CR, LF and every other C0 control character
// (and DEL) except horizontal tab, plus invalid UTF-8.
func checkHeaderValue(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrHeaderInjection, field)
	}
	for _, r := range v {
		if (r < 0x20 && r != '\t') || r == 0x7f || r == '\u2028' || r == '\u2029' || r == '\u0085' {
			return fmt.Errorf("%w: %s", ErrHeaderInjection, field)
		}
	}
	return nil
}

// parseOneAddress parses exactly one RFC 5322 address.
func parseOneAddress(field, v string) (*mail.Address, error) {
	if err := checkHeaderValue(field, v); err != nil {
		return nil, err
	}
	if strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("%w: %s is empty", ErrInvalidAddress, field)
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		// net/mail's message does not echo the address; keep it that way.
		return nil, fmt.Errorf("%w: %s", ErrInvalidAddress, field)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidAddress, field)
	}
	return a, nil
}

// validate checks e and returns the parsed recipient.
func (e Email) validate() (*mail.Address, error) {
	to, err := parseOneAddress("To", e.To)
	if err != nil {
		return nil, err
	}
	if to.Name != "" || to.Address != strings.TrimSpace(e.To) {
		return nil, fmt.Errorf("%w: To must be a bare address", ErrInvalidAddress)
	}
	if err := checkHeaderValue("Subject", e.Subject); err != nil {
		return nil, err
	}
	if strings.TrimSpace(e.Subject) == "" {
		return nil, fmt.Errorf("%w: empty subject", ErrInvalidMessage)
	}
	if len(e.Subject) > maxSubjectLen {
		return nil, fmt.Errorf("%w: subject longer than %d bytes", ErrInvalidMessage, maxSubjectLen)
	}
	if e.Text == "" && e.HTML == "" {
		return nil, fmt.Errorf("%w: no body", ErrInvalidMessage)
	}
	if len(e.Text) > maxBodyLen || len(e.HTML) > maxBodyLen {
		return nil, fmt.Errorf("%w: body larger than %d bytes", ErrInvalidMessage, maxBodyLen)
	}
	if !utf8.ValidString(e.Text) || !utf8.ValidString(e.HTML) {
		return nil, fmt.Errorf("%w: body is not valid UTF-8", ErrInvalidMessage)
	}
	return to, nil
}
