package notify_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

const testSecret = "0123456789abcdef0123456789abcdef-webhook"

// The signature is computed independently here, so that a bug shared by
// SignWebhook and VerifyWebhookSignature cannot hide.
func TestSignWebhookVector(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"00","to":"+447911123456","body":"hi"}`)
	ts := time.Unix(1764010000, 0)
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write([]byte("1764010000." + string(body)))
	want := "t=1764010000,v1=" + hex.EncodeToString(mac.Sum(nil))
	if got := notify.SignWebhook(testSecret, ts, body); got != want {
		t.Fatalf("SignWebhook = %s, want %s", got, want)
	}
}

func TestVerifyWebhookSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"00","to":"+447911123456","body":"hi"}`)
	now := time.Unix(1764010000, 0)
	good := notify.SignWebhook(testSecret, now, body)
	other := notify.SignWebhook("another-secret-another-secret-xx", now, body)
	_, otherV1, _ := strings.Cut(other, ",")
	cases := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		ok     bool
	}{
		{"good", testSecret, good, body, now, true},
		{"good, 4 min later", testSecret, good, body, now.Add(4 * time.Minute), true},
		{"rotation: second v1 matches", testSecret, "t=1764010000," + otherV1 + "," + strings.Split(good, ",")[1], body, now, true},
		{"too old", testSecret, good, body, now.Add(6 * time.Minute), false},
		{"from the future", testSecret, good, body, now.Add(-6 * time.Minute), false},
		{"tampered body", testSecret, good, []byte(`{"id":"00","to":"+447911123457","body":"hi"}`), now, false},
		{"wrong secret", "wrong-secret-wrong-secret-wrong-s", good, body, now, false},
		{"tampered timestamp", testSecret, strings.Replace(good, "t=1764010000", "t=1764010001", 1), body, now, false},
		{"empty", testSecret, "", body, now, false},
		{"no v1", testSecret, "t=1764010000", body, now, false},
		{"no t", testSecret, strings.Split(good, ",")[1], body, now, false},
		{"two t", testSecret, "t=1764010000," + good, body, now, false},
		{"short v1", testSecret, "t=1764010000,v1=abcd", body, now, false},
		{"non-hex v1", testSecret, "t=1764010000,v1=" + strings.Repeat("z", 64), body, now, false},
		{"leading zero t", testSecret, strings.Replace(good, "t=", "t=0", 1), body, now, false},
		{"no secret", "", good, body, now, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := notify.VerifyWebhookSignature(c.secret, c.header, c.body, c.now, 0)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, notify.ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestWebhookSend(t *testing.T) {
	t.Parallel()
	recv := notifytest.StartWebhook(t)
	wh, err := notify.NewWebhook(recv.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	if err := wh.SendSMS(ctx, notify.SMS{To: "+4915112345678", Body: "Code 424242"}); err != nil {
		t.Fatalf("SendSMS: %v (receiver refused: %q)", err, recv.Rejections())
	}
	// Same body again: a fresh id, so it is not a replay.
	if err := wh.SendSMS(ctx, notify.SMS{To: "+4915112345678", Body: "Code 424242"}); err != nil {
		t.Fatalf("second SendSMS: %v (receiver refused: %q)", err, recv.Rejections())
	}
	m, err := recv.WaitFor(ctx, "+4915112345678")
	if err != nil {
		t.Fatal(err)
	}
	if m.Body != "Code 424242" || len(recv.Messages()) != 2 {
		t.Fatalf("received %+v", recv.Messages())
	}
}

func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	recv := notifytest.StartWebhook(t)
	ctx := ctxT(t, 10*time.Second)
	sms := notify.SMS{To: "+4915112345678", Body: "Code 424242"}

	t.Run("wrong secret", func(t *testing.T) {
		cfg := recv.Config()
		cfg.Secret = strings.Repeat("x", 40)
		wh, err := notify.NewWebhook(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = wh.SendSMS(ctx, sms)
		var pe *notify.ProviderError
		if !errors.As(err, &pe) || pe.HTTPStatus != 401 || pe.Provider != "webhook" {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), cfg.Secret) || strings.Contains(err.Error(), cfg.BearerToken) {
			t.Fatal("secret in error")
		}
	})
	t.Run("wrong bearer", func(t *testing.T) {
		cfg := recv.Config()
		cfg.BearerToken = "nope"
		wh, _ := notify.NewWebhook(cfg)
		if err := wh.SendSMS(ctx, sms); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("stale clock", func(t *testing.T) {
		cfg := recv.Config()
		cfg.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
		wh, _ := notify.NewWebhook(cfg)
		if err := wh.SendSMS(ctx, sms); err == nil {
			t.Fatal("accepted an old signature")
		}
	})
	t.Run("replay", func(t *testing.T) {
		// Capture one genuine request and send it twice.
		var captured *http.Request
		var capturedBody []byte
		capture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			captured = r.Clone(r.Context())
			capturedBody, _ = io.ReadAll(r.Body)
		}))
		defer capture.Close()
		cfg := recv.Config()
		cfg.URL = capture.URL + "/sms"
		wh, _ := notify.NewWebhook(cfg)
		if err := wh.SendSMS(ctx, sms); err != nil {
			t.Fatal(err)
		}
		var p notify.WebhookPayload
		if err := json.Unmarshal(capturedBody, &p); err != nil || len(p.ID) != 32 || p.To != sms.To || p.Body != sms.Body {
			t.Fatalf("payload %s (%v)", capturedBody, err)
		}
		if ct := captured.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		for i, want := range []int{202, 409} {
			req, _ := http.NewRequest("POST", recv.URL, bytes.NewReader(capturedBody))
			req.Header = captured.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("delivery %d: HTTP %d, want %d", i+1, resp.StatusCode, want)
			}
		}
	})
	t.Run("injected 503 is retryable", func(t *testing.T) {
		recv.FailNext(503)
		wh, _ := notify.NewWebhook(recv.Config())
		err := wh.SendSMS(ctx, sms)
		if !notify.IsTemporary(err) {
			t.Fatalf("err = %v, want temporary", err)
		}
	})
}

func TestWebhookURLSecretNotInErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL + "/hook?token=supersecretquerytoken"
	srv.Close() // connection refused from now on
	wh, err := notify.NewWebhook(notify.WebhookConfig{URL: url, BearerToken: "bearer-secret-value", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = wh.SendSMS(ctxT(t, 5*time.Second), notify.SMS{To: "+447911123456", Body: "x"})
	if err == nil {
		t.Fatal("sent to a closed server")
	}
	if strings.Contains(err.Error(), "supersecretquerytoken") || strings.Contains(err.Error(), "bearer-secret-value") {
		t.Fatalf("secret in error: %v", err)
	}
	t.Logf("error: %v", err)
}

func TestNewWebhookConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  notify.WebhookConfig
		want string
	}{
		{"no auth", notify.WebhookConfig{URL: "https://sms.example.test/send"}, "one of bearer_token and secret"},
		{"short secret", notify.WebhookConfig{URL: "https://sms.example.test/send", Secret: "short"}, "at least 32"},
		{"http remote", notify.WebhookConfig{URL: "http://sms.example.test/send", BearerToken: "t"}, "https"},
		{"relative", notify.WebhookConfig{URL: "/send", BearerToken: "t"}, "absolute"},
		{"ftp", notify.WebhookConfig{URL: "ftp://sms.example.test/send", BearerToken: "t"}, "absolute"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := notify.NewWebhook(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
