package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// SMS is one text message for one phone number.
type SMS struct {
	// To is an E.164 number: "+" then 7 to 15 digits, no spaces. Use
	// ParsePhone to get one from user input.
	To string
	// Body is the text. Providers split long bodies into segments; at most
	// MaxSMSBodyRunes characters are accepted.
	Body string
}

// SMSSender sends SMS through a provider.
type SMSSender interface {
	SendSMS(ctx context.Context, m SMS) error
}

// MaxSMSBodyRunes is Twilio's limit for one message body (it concatenates up
// to 10 segments); the webhook sender applies the same limit.
const MaxSMSBodyRunes = 1600

// ErrInvalidSMS: the SMS has an invalid number or an empty or oversized body.
// It is returned before any request is made.
var ErrInvalidSMS = errors.New("notify: invalid sms")

// IsE164 reports whether s is syntactically an E.164 number: "+", a first
// digit 1-9, then digits, 7 to 15 digits in all. It does not check that the
// country calling code exists; ParsePhone does.
func IsE164(s string) bool {
	if len(s) < 1+minE164Digits || len(s) > 1+maxE164Digits || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (m SMS) validate() error {
	if !IsE164(m.To) {
		return fmt.Errorf("%w: recipient is not an E.164 number", ErrInvalidSMS)
	}
	if strings.TrimSpace(m.Body) == "" {
		return fmt.Errorf("%w: empty body", ErrInvalidSMS)
	}
	if !utf8.ValidString(m.Body) {
		return fmt.Errorf("%w: body is not valid UTF-8", ErrInvalidSMS)
	}
	if n := utf8.RuneCountInString(m.Body); n > MaxSMSBodyRunes {
		return fmt.Errorf("%w: body has %d characters, more than %d", ErrInvalidSMS, n, MaxSMSBodyRunes)
	}
	return nil
}

// ProviderError is an SMS provider's refusal. Its text carries the provider,
// the HTTP status and the provider's error code; it deliberately leaves out
// the provider's message, which can echo the phone number, and never contains
// credentials.
type ProviderError struct {
	Provider   string // "twilio" or "webhook"
	HTTPStatus int
	// Code is the provider's numeric error code (Twilio: 21211 invalid To,
	// 20003 authentication, 21610 unsubscribed recipient, ...); 0 if none.
	Code int
	// MoreInfo is the provider's documentation link for Code, if it sent one.
	MoreInfo string
}

func (e *ProviderError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("notify: %s: HTTP %d, error %d", e.Provider, e.HTTPStatus, e.Code)
	}
	return fmt.Sprintf("notify: %s: HTTP %d", e.Provider, e.HTTPStatus)
}

// Retryable reports whether the same request may succeed later (rate limited
// or a server-side failure).
func (e *ProviderError) Retryable() bool {
	return e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus >= 500
}

// checkEndpoint requires https, except for http on a loopback address (test
// servers). It refuses user info in the URL, which would end up in errors.
func checkEndpoint(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%s must be an absolute http(s) URL", field)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s must not contain credentials", field)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("%s must use https (http is allowed only on loopback)", field)
		}
	default:
		return nil, fmt.Errorf("%s must be an absolute http(s) URL", field)
	}
	return u, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// redactURLError replaces the URL inside a *url.Error by scheme://host/path so
// that query strings (which may hold tokens) never reach an error message.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.User, u.RawQuery, u.Fragment = nil, "", ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
		return &url.Error{Op: ue.Op, URL: "[redacted]", Err: ue.Err}
	}
	return err
}

// noRedirects is the default CheckRedirect of the SMS clients: a provider API
// that redirects is misconfigured, and following would resend credentials.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
