package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// WebhookSignatureHeader carries the HMAC signature of a webhook request:
//
//	Latchkey-Signature: t=1764010000,v1=<hex HMAC-SHA256(secret, "1764010000." + body)>
//
// t is the Unix time of sending. A receiver recomputes the HMAC over the
// decimal timestamp, a dot and the raw request body, compares in constant
// time, and rejects timestamps outside its tolerance (replay protection). A
// header may carry several v1 values (secret rotation); one match suffices.
// VerifyWebhookSignature does exactly this.
const WebhookSignatureHeader = "Latchkey-Signature"

// MinWebhookSecretLen is the shortest HMAC secret NewWebhook accepts.
const MinWebhookSecretLen = 32

// DefaultWebhookTolerance is the accepted clock difference when verifying.
const DefaultWebhookTolerance = 5 * time.Minute

// WebhookConfig configures the generic webhook SMS sender. The request is
//
//	POST {URL}
//	Content-Type: application/json
//	Authorization: Bearer {BearerToken}        (when set)
//	Latchkey-Signature: t=…,v1=…               (when Secret is set)
//
//	{"id":"<32 hex digits>","to":"+447911123456","body":"…"}
//
// and any 2xx answer means accepted. id is random per request (it is covered
// by the signature): a receiver can use it to drop duplicates and replays.
type WebhookConfig struct {
	// URL must be https, except http on loopback for test servers.
	URL string
	// BearerToken, when set, is sent as "Authorization: Bearer …".
	BearerToken string
	// Secret, when set, signs every request (see WebhookSignatureHeader). At
	// least MinWebhookSecretLen bytes. At least one of BearerToken and
	// Secret is required.
	Secret string
	// Timeout bounds one request; defaults to DefaultSMSTimeout.
	Timeout time.Duration
	// HTTPClient defaults to a client with Timeout that does not follow
	// redirects.
	HTTPClient *http.Client
	// Logger receives a debug line on success. Optional.
	Logger *slog.Logger
	// Now is the clock used for the signature timestamp; time.Now when nil.
	Now func() time.Time
}

// Webhook sends SMS by POSTing signed JSON to an HTTPS endpoint, for
// providers or in-house gateways other than Twilio.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
	logger *slog.Logger
}

var _ SMSSender = (*Webhook)(nil)

// WebhookPayload is the JSON body of a webhook request.
type WebhookPayload struct {
	ID   string `json:"id"`
	To   string `json:"to"`
	Body string `json:"body"`
}

// NewWebhook validates cfg and returns a sender. It makes no request.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	var errs []error
	if _, err := checkEndpoint("url", cfg.URL); err != nil {
		errs = append(errs, err)
	}
	if cfg.BearerToken == "" && cfg.Secret == "" {
		errs = append(errs, errors.New("one of bearer_token and secret is required"))
	}
	if cfg.Secret != "" && len(cfg.Secret) < MinWebhookSecretLen {
		errs = append(errs, fmt.Errorf("secret must be at least %d bytes", MinWebhookSecretLen))
	}
	if strings.ContainsAny(cfg.BearerToken, " \t\r\n") {
		errs = append(errs, errors.New("bearer_token must not contain white space"))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultSMSTimeout
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("notify: webhook config: %w", errors.Join(errs...))
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout, CheckRedirect: noRedirects}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Webhook{cfg: cfg, client: client, logger: logger}, nil
}

// SendSMS posts m. A non-2xx answer is a *ProviderError with Provider
// "webhook" and the HTTP status.
func (w *Webhook) SendSMS(ctx context.Context, m SMS) error {
	if err := m.validate(); err != nil {
		return err
	}
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+)
	body, err := json.Marshal(WebhookPayload{ID: hex.EncodeToString(id[:]), To: m.To, Body: m.Body})
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", scrubSecrets(redactURLError(err), w.cfg.BearerToken, w.cfg.Secret))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "latchkey-notify")
	if w.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.BearerToken)
	}
	if w.cfg.Secret != "" {
		req.Header.Set(WebhookSignatureHeader, SignWebhook(w.cfg.Secret, w.cfg.Now(), body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", scrubSecrets(redactURLError(err), w.cfg.BearerToken, w.cfg.Secret))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &ProviderError{Provider: "webhook", HTTPStatus: resp.StatusCode}
	}
	w.logger.DebugContext(ctx, "sms accepted", slog.String("provider", "webhook"),
		slog.Int("status", resp.StatusCode), slog.String("to", MaskPhone(m.To)))
	return nil
}

// SignWebhook returns the WebhookSignatureHeader value for body sent at ts.
func SignWebhook(secret string, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	return "t=" + t + ",v1=" + hex.EncodeToString(webhookMAC(secret, t, body))
}

func webhookMAC(secret, t string, body []byte) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// ErrBadSignature: a webhook request's signature is missing, malformed,
// wrong or outside the time tolerance.
var ErrBadSignature = errors.New("notify: bad webhook signature")

// VerifyWebhookSignature checks header (the WebhookSignatureHeader value)
// against the raw body, for receivers written in Go and for the test
// receiver. tolerance <= 0 means DefaultWebhookTolerance; timestamps further
// than tolerance from now, in either direction, are refused.
func VerifyWebhookSignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return fmt.Errorf("%w: no secret configured", ErrBadSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if len(header) > 1024 {
		return fmt.Errorf("%w: header too long", ErrBadSignature)
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed", ErrBadSignature)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: duplicate timestamp", ErrBadSignature)
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return fmt.Errorf("%w: malformed v1", ErrBadSignature)
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: missing t or v1", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(sec, 10) != ts {
		return fmt.Errorf("%w: malformed timestamp", ErrBadSignature)
	}
	skew := now.Sub(time.Unix(sec, 0))
	if skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: timestamp outside tolerance", ErrBadSignature)
	}
	want := webhookMAC(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching signature", ErrBadSignature)
}

// CheckReachable opens a TCP connection to the webhook's host and port and
// closes it: all that can be checked without sending a message (the
// receiver's answer to a real request is not known until one is sent).
func (w *Webhook) CheckReachable(ctx context.Context) error {
	u, err := url.Parse(w.cfg.URL)
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", err)
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	d := net.Dialer{Timeout: w.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return fmt.Errorf("notify: webhook: %w", err)
	}
	return conn.Close()
}
