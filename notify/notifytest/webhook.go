package notifytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/notify"
)

// WebhookMessage is a request the receiver accepted.
type WebhookMessage struct {
	ID, To, Body string
	Received     time.Time
}

// FakeWebhook receives notify's webhook SMS requests at URL and checks them
// the way a careful receiver would: POST only, application/json, the bearer
// token and the HMAC signature (notify.VerifyWebhookSignature, 5-minute
// tolerance) when configured, a body of at most 64 KiB that decodes strictly
// to exactly {id, to, body}, an E.164 `to`, a non-empty body of at most 1600
// characters, and no repeated id (replay). Refusals are 405, 415, 401, 400,
// 422 and 409 with a JSON {"error": "..."} body.
type FakeWebhook struct {
	// URL is the endpoint to put in notify.WebhookConfig.URL.
	URL string
	// BearerToken and Secret are what the receiver demands; either may be
	// empty, which disables that check.
	BearerToken, Secret string

	srv *httptest.Server

	mu         sync.Mutex
	msgs       []WebhookMessage
	seen       map[string]bool
	rejections []string
	failNext   []int
	changed    chan struct{}
}

// WebhookOption configures StartWebhook.
type WebhookOption func(*FakeWebhook)

// WebhookAuth sets the bearer token and HMAC secret the receiver demands
// (random by default); pass "" to not check one of them.
func WebhookAuth(bearerToken, secret string) WebhookOption {
	return func(f *FakeWebhook) { f.BearerToken, f.Secret = bearerToken, secret }
}

// StartWebhook starts the receiver; it is closed when the test ends.
func StartWebhook(t testing.TB, opts ...WebhookOption) *FakeWebhook {
	t.Helper()
	f := &FakeWebhook{
		BearerToken: randHex(16),
		Secret:      randHex(32),
		seen:        map[string]bool{},
		changed:     make(chan struct{}),
	}
	for _, o := range opts {
		o(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	f.URL = f.srv.URL + "/sms"
	t.Cleanup(f.srv.Close)
	return f
}

// Config returns a notify.WebhookConfig for this receiver.
func (f *FakeWebhook) Config() notify.WebhookConfig {
	return notify.WebhookConfig{URL: f.URL, BearerToken: f.BearerToken, Secret: f.Secret, Timeout: 5 * time.Second}
}

// Messages returns a copy of the accepted messages, oldest first.
func (f *FakeWebhook) Messages() []WebhookMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]WebhookMessage(nil), f.msgs...)
}

// Rejections returns why requests were refused, oldest first.
func (f *FakeWebhook) Rejections() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.rejections...)
}

// FailNext makes the next valid request fail with this HTTP status.
func (f *FakeWebhook) FailNext(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = append(f.failNext, status)
}

// WaitFor waits until a message to `to` has been accepted and returns the
// newest one. The caller's context sets the deadline.
func (f *FakeWebhook) WaitFor(ctx context.Context, to string) (WebhookMessage, error) {
	for {
		f.mu.Lock()
		for i := len(f.msgs) - 1; i >= 0; i-- {
			if f.msgs[i].To == to {
				m := f.msgs[i]
				f.mu.Unlock()
				return m, nil
			}
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return WebhookMessage{}, fmt.Errorf("no webhook SMS for %s: %w", to, ctx.Err())
		}
	}
}

func (f *FakeWebhook) refuse(w http.ResponseWriter, status int, why string) {
	f.mu.Lock()
	f.rejections = append(f.rejections, why)
	f.mu.Unlock()
	writeJSON(w, status, map[string]string{"error": why})
}

func (f *FakeWebhook) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/sms" {
		f.refuse(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		f.refuse(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		f.refuse(w, http.StatusUnsupportedMediaType, "content type must be application/json")
		return
	}
	if f.BearerToken != "" {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !ctEqual(tok, f.BearerToken) {
			f.refuse(w, http.StatusUnauthorized, "bad bearer token")
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		f.refuse(w, http.StatusBadRequest, "body too large or unreadable")
		return
	}
	if f.Secret != "" {
		sig := r.Header.Values(notify.WebhookSignatureHeader)
		if len(sig) != 1 {
			f.refuse(w, http.StatusUnauthorized, "missing or repeated signature header")
			return
		}
		if err := notify.VerifyWebhookSignature(f.Secret, sig[0], body, time.Now(), 0); err != nil {
			f.refuse(w, http.StatusUnauthorized, err.Error())
			return
		}
	}
	var p notify.WebhookPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || dec.More() {
		f.refuse(w, http.StatusBadRequest, "body must be one JSON object {id, to, body}")
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		f.refuse(w, http.StatusBadRequest, "trailing data after the JSON object")
		return
	}
	switch {
	case len(p.ID) != 32:
		f.refuse(w, http.StatusUnprocessableEntity, "id must be 32 hex digits")
		return
	case !notify.IsE164(p.To):
		f.refuse(w, http.StatusUnprocessableEntity, "to must be E.164")
		return
	case strings.TrimSpace(p.Body) == "" || utf8.RuneCountInString(p.Body) > notify.MaxSMSBodyRunes:
		f.refuse(w, http.StatusUnprocessableEntity, "body must have 1 to 1600 characters")
		return
	}
	f.mu.Lock()
	if f.seen[p.ID] {
		f.mu.Unlock()
		f.refuse(w, http.StatusConflict, "duplicate id")
		return
	}
	if len(f.failNext) > 0 {
		status := f.failNext[0]
		f.failNext = f.failNext[1:]
		f.mu.Unlock()
		f.refuse(w, status, "injected failure")
		return
	}
	f.seen[p.ID] = true
	f.msgs = append(f.msgs, WebhookMessage{ID: p.ID, To: p.To, Body: p.Body, Received: time.Now()})
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]string{"id": p.ID, "status": "accepted"})
}
