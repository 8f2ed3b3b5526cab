package notify_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

func newTwilio(t *testing.T, cfg notify.TwilioConfig) *notify.Twilio {
	t.Helper()
	tw, err := notify.NewTwilio(cfg)
	if err != nil {
		t.Fatalf("NewTwilio: %v", err)
	}
	return tw
}

func providerCode(t *testing.T, err error) *notify.ProviderError {
	t.Helper()
	var pe *notify.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *notify.ProviderError", err, err)
	}
	return pe
}

func TestTwilioSendSuccess(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	tw := newTwilio(t, fake.Config())
	ctx := ctxT(t, 10*time.Second)
	body := "Your Latchkey code is 493817. It expires in 10 minutes."
	sid, err := tw.Send(ctx, notify.SMS{To: "+447911123456", Body: body})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got, err := fake.WaitFor(ctx, "+447911123456")
	if err != nil {
		t.Fatal(err)
	}
	if got.SID != sid || !strings.HasPrefix(sid, "SM") {
		t.Errorf("sid = %q, fake recorded %q", sid, got.SID)
	}
	if got.Body != body || got.From != notifytest.TwilioTestFrom || got.NumSegments != 1 {
		t.Errorf("recorded %+v", got)
	}
	// The SMSSender interface works too, and unicode bodies pass.
	if err := tw.SendSMS(ctx, notify.SMS{To: "+4915112345678", Body: "Dein Code: 123456 — gültig 10 Minuten ✓"}); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.Messages()); n != 2 {
		t.Fatalf("%d messages recorded", n)
	}
}

func TestTwilioMessagingServiceAndAPIKey(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	cfg := fake.Config()
	cfg.From = ""
	cfg.MessagingServiceSID = fake.MessagingServiceSID
	cfg.APIKeySID, cfg.AuthToken = fake.APIKeySID, fake.APIKeySecret
	ctx := ctxT(t, 10*time.Second)
	if err := newTwilio(t, cfg).SendSMS(ctx, notify.SMS{To: "+33612345678", Body: "code 111222"}); err != nil {
		t.Fatal(err)
	}
	m, err := fake.WaitFor(ctx, "+33612345678")
	if err != nil {
		t.Fatal(err)
	}
	if m.MessagingServiceSID != fake.MessagingServiceSID || m.From != "" {
		t.Errorf("recorded %+v", m)
	}
}

func TestTwilioBadAuth(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	cfg := fake.Config()
	cfg.AuthToken = "0123456789abcdef-wrong-token"
	err := newTwilio(t, cfg).SendSMS(ctxT(t, 10*time.Second), notify.SMS{To: "+447911123456", Body: "x"})
	pe := providerCode(t, err)
	if pe.HTTPStatus != 401 || pe.Code != 20003 || pe.Retryable() {
		t.Fatalf("got %+v", pe)
	}
	if strings.Contains(err.Error(), cfg.AuthToken) || strings.Contains(err.Error(), fake.AuthToken) {
		t.Fatalf("error contains the token: %v", err)
	}
	if pe.MoreInfo != "https://www.twilio.com/docs/errors/20003" {
		t.Errorf("MoreInfo = %q", pe.MoreInfo)
	}

	// Right token, but someone else's account in the path.
	cfg = fake.Config()
	cfg.AccountSID = "AC" + strings.Repeat("0", 32)
	pe = providerCode(t, newTwilio(t, cfg).SendSMS(ctxT(t, 10*time.Second), notify.SMS{To: "+447911123456", Body: "x"}))
	if pe.Code != 20003 {
		t.Fatalf("got %+v", pe)
	}
	if n := len(fake.Messages()); n != 0 {
		t.Fatalf("%d messages accepted", n)
	}
}

func TestTwilioProviderErrors(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	cases := []struct {
		name   string
		mutate func(*notify.TwilioConfig)
		to     string
		body   string
		status int
		code   int
	}{
		{"invalid To (magic)", nil, notifytest.TwilioToInvalid, "x", 400, 21211},
		{"unroutable", nil, notifytest.TwilioToUnroutable, "x", 400, 21612},
		{"region not enabled", nil, notifytest.TwilioToNoInternational, "x", 400, 21408},
		{"unsubscribed", nil, notifytest.TwilioToBlocked, "x", 400, 21610},
		{"not mobile", nil, notifytest.TwilioToNotMobile, "x", 400, 21614},
		{"From not owned", func(c *notify.TwilioConfig) { c.From = "+447700900123" }, "+447911123456", "x", 400, 21606},
		{"From invalid (magic)", func(c *notify.TwilioConfig) { c.From = notifytest.TwilioFromInvalid }, "+447911123456", "x", 400, 21212},
		{"unknown messaging service", func(c *notify.TwilioConfig) {
			c.From, c.MessagingServiceSID = "", "MG"+strings.Repeat("a", 32)
		}, "+447911123456", "x", 400, 21701},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := fake.Config()
			if c.mutate != nil {
				c.mutate(&cfg)
			}
			err := newTwilio(t, cfg).SendSMS(ctxT(t, 10*time.Second), notify.SMS{To: c.to, Body: c.body})
			pe := providerCode(t, err)
			if pe.HTTPStatus != c.status || pe.Code != c.code {
				t.Fatalf("got HTTP %d code %d, want %d/%d", pe.HTTPStatus, pe.Code, c.status, c.code)
			}
			// Twilio's message echoes the number; the error must not.
			if strings.Contains(err.Error(), c.to) {
				t.Errorf("error echoes the number: %v", err)
			}
		})
	}
	if n := len(fake.Messages()); n != 0 {
		t.Fatalf("%d messages accepted", n)
	}
}

func TestTwilioValidatesBeforeSending(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	tw := newTwilio(t, fake.Config())
	for _, m := range []notify.SMS{
		{To: "07911123456", Body: "x"},
		{To: "+44 7911 123456", Body: "x"},
		{To: "+0447911123456", Body: "x"},
		{To: "+447911123456\n", Body: "x"},
		{To: "+4479111234567890", Body: "x"},
		{To: "+447911123456", Body: ""},
		{To: "+447911123456", Body: "  "},
		{To: "+447911123456", Body: strings.Repeat("a", 1601)},
		{To: "+447911123456", Body: "\xff"},
	} {
		err := tw.SendSMS(ctxT(t, 5*time.Second), m)
		if !errors.Is(err, notify.ErrInvalidSMS) {
			t.Errorf("SendSMS(%q, %d bytes) = %v, want ErrInvalidSMS", m.To, len(m.Body), err)
		}
	}
	if n := len(fake.Rejections()) + len(fake.Messages()); n != 0 {
		t.Fatalf("%d requests reached the fake", n)
	}
	// 1600 characters of multi-byte text is still fine.
	if err := tw.SendSMS(ctxT(t, 5*time.Second), notify.SMS{To: "+447911123456", Body: strings.Repeat("é", 1600)}); err != nil {
		t.Fatal(err)
	}
}

func TestTwilioRetryableAndTimeout(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	tw := newTwilio(t, fake.Config())

	fake.FailNext(429, 20429)
	err := tw.SendSMS(ctxT(t, 5*time.Second), notify.SMS{To: "+447911123456", Body: "x"})
	if pe := providerCode(t, err); pe.Code != 20429 || !pe.Retryable() || !notify.IsTemporary(err) {
		t.Fatalf("got %+v, retryable %v", pe, pe.Retryable())
	}
	fake.FailNext(503, 20503)
	err = tw.SendSMS(ctxT(t, 5*time.Second), notify.SMS{To: "+447911123456", Body: "x"})
	if pe := providerCode(t, err); !pe.Retryable() {
		t.Fatalf("503 not retryable: %+v", pe)
	}

	fake.HangNext()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = tw.SendSMS(ctx, notify.SMS{To: "+447911123456", Body: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	if strings.Contains(err.Error(), fake.AuthToken) {
		t.Fatal("token in error")
	}
	// The fake works again afterwards.
	if err := tw.SendSMS(ctxT(t, 5*time.Second), notify.SMS{To: "+447911123456", Body: "x"}); err != nil {
		t.Fatal(err)
	}
}

// The fake enforces the contract on its own, not just for our client.
func TestFakeTwilioContract(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	endpoint := fake.URL + "/2010-04-01/Accounts/" + fake.AccountSID + "/Messages.json"
	post := func(method, path, ctype, body string, auth bool) (int, string) {
		req, err := http.NewRequest(method, path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if auth {
			req.SetBasicAuth(fake.AccountSID, fake.AuthToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := url.Values{"To": {"+447911123456"}, "From": {fake.From}, "Body": {"hi"}}.Encode()
	form := "application/x-www-form-urlencoded"
	cases := []struct {
		name, method, path, ctype, body string
		auth                            bool
		status                          int
		code                            string
	}{
		{"no auth", "POST", endpoint, form, good, false, 401, `"code":20003`},
		{"wrong path", "POST", fake.URL + "/2010-04-01/Accounts/" + fake.AccountSID + "/Message.json", form, good, true, 404, `"code":20404`},
		{"GET", "GET", endpoint, "", "", true, 405, `"code":20004`},
		{"JSON body", "POST", endpoint, "application/json", `{"To":"+447911123456","From":"+15005550006","Body":"hi"}`, true, 400, `"code":21604`},
		{"no From", "POST", endpoint, form, url.Values{"To": {"+447911123456"}, "Body": {"hi"}}.Encode(), true, 400, `"code":21603`},
		{"national To", "POST", endpoint, form, url.Values{"To": {"07911123456"}, "From": {fake.From}, "Body": {"hi"}}.Encode(), true, 400, `"code":21211`},
		{"no Body", "POST", endpoint, form, url.Values{"To": {"+447911123456"}, "From": {fake.From}}.Encode(), true, 400, `"code":21602`},
		{"long Body", "POST", endpoint, form, url.Values{"To": {"+447911123456"}, "From": {fake.From}, "Body": {strings.Repeat("x", 1601)}}.Encode(), true, 400, `"code":21617`},
		{"ok", "POST", endpoint, form + "; charset=utf-8", good, true, 201, `"status":"queued"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(c.method, c.path, c.ctype, c.body, c.auth)
			if status != c.status || !strings.Contains(body, c.code) {
				t.Fatalf("got %d %s, want %d with %s", status, body, c.status, c.code)
			}
		})
	}
}

func TestNewTwilioConfigErrors(t *testing.T) {
	t.Parallel()
	sid := "AC" + strings.Repeat("a", 32)
	cases := []struct {
		name string
		cfg  notify.TwilioConfig
		want string
	}{
		{"bad sid", notify.TwilioConfig{AccountSID: "AC123", AuthToken: "t", From: "+15005550006"}, "account_sid"},
		{"no token", notify.TwilioConfig{AccountSID: sid, From: "+15005550006"}, "auth_token"},
		{"no sender", notify.TwilioConfig{AccountSID: sid, AuthToken: "t"}, "one of from"},
		{"both senders", notify.TwilioConfig{AccountSID: sid, AuthToken: "t", From: "+15005550006", MessagingServiceSID: "MG" + strings.Repeat("a", 32)}, "not both"},
		{"bad from", notify.TwilioConfig{AccountSID: sid, AuthToken: "t", From: "ThisIsTooLongForAnID"}, "from must be"},
		{"numeric alpha id", notify.TwilioConfig{AccountSID: sid, AuthToken: "t", From: "12345"}, "from must be"},
		{"http base", notify.TwilioConfig{AccountSID: sid, AuthToken: "t", From: "+15005550006", BaseURL: "http://api.twilio.com"}, "https"},
		{"creds in base", notify.TwilioConfig{AccountSID: sid, AuthToken: "t", From: "+15005550006", BaseURL: "https://u:p@api.twilio.com"}, "credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := notify.NewTwilio(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if _, err := notify.NewTwilio(notify.TwilioConfig{AccountSID: sid, AuthToken: "t", From: "Latchkey"}); err != nil {
		t.Fatalf("alphanumeric sender refused: %v", err)
	}
}

func TestTwilioDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var hits int
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer target.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	tw := newTwilio(t, notify.TwilioConfig{AccountSID: "AC" + strings.Repeat("a", 32), AuthToken: "tok", From: "+15005550006", BaseURL: redir.URL})
	err := tw.SendSMS(ctxT(t, 5*time.Second), notify.SMS{To: "+447911123456", Body: "x"})
	if pe := providerCode(t, err); pe.HTTPStatus != http.StatusTemporaryRedirect {
		t.Fatalf("got %+v", pe)
	}
	if hits != 0 {
		t.Fatal("redirect followed")
	}
}
