package notify_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

func checkErr(t *testing.T, err error, stage string) *notify.CheckError {
	t.Helper()
	var ce *notify.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want *notify.CheckError", err, err)
	}
	if ce.Stage != stage {
		t.Fatalf("stage %q, want %q: %v", ce.Stage, stage, err)
	}
	return ce
}

// TestSMTPCheckStages: Check says which step failed, against a real mailpit.
func TestSMTPCheckStages(t *testing.T) {
	t.Parallel()
	const user, pass = "latchkey", "s3cret-Pa55word-9f2c"
	mp := notifytest.StartMailpit(t, notifytest.MailpitSTARTTLS(), notifytest.MailpitAuth(user, pass))

	t.Run("connect", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close() // nothing listens there any more
		cfg := mp.SMTPConfig(from)
		cfg.Port = port
		ce := checkErr(t, newSMTP(t, cfg).Check(ctxT(t, 10*time.Second)), notify.StageConnect)
		if !strings.Contains(ce.Detail, "connection refused") {
			t.Fatalf("detail %q", ce.Detail)
		}
	})
	t.Run("tls unknown authority", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.CAFile = notifytest.NewSelfSignedCert(t).CertFile
		ce := checkErr(t, newSMTP(t, cfg).Check(ctxT(t, 10*time.Second)), notify.StageTLS)
		if ce.TLSKind != "unknown_authority" || !strings.Contains(ce.Detail, "unknown authority") {
			t.Fatalf("got %q %q", ce.TLSKind, ce.Detail)
		}
	})
	t.Run("tls name mismatch", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.ServerName = "mail.example.test"
		ce := checkErr(t, newSMTP(t, cfg).Check(ctxT(t, 10*time.Second)), notify.StageTLS)
		// the names the certificate holds are listed
		if ce.TLSKind != "name_mismatch" || !strings.Contains(ce.Detail, "DNS:localhost") || !strings.Contains(ce.Detail, "not mail.example.test") {
			t.Fatalf("got %q %q", ce.TLSKind, ce.Detail)
		}
	})
	t.Run("auth", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.Password = "wrong-" + pass
		err := newSMTP(t, cfg).Check(ctxT(t, 10*time.Second))
		checkErr(t, err, notify.StageAuth)
		if strings.Contains(err.Error(), cfg.Password) {
			t.Fatalf("error holds the password: %v", err)
		}
	})
	t.Run("starttls not offered", func(t *testing.T) {
		plain := notifytest.StartMailpit(t)
		cfg := plain.SMTPConfig(from)
		cfg.TLS = notify.TLSStartTLS
		cfg.ServerName = "localhost"
		checkErr(t, newSMTP(t, cfg).Check(ctxT(t, 10*time.Second)), notify.StageTLS)
	})
	t.Run("ok", func(t *testing.T) {
		if err := newSMTP(t, mp.SMTPConfig(from)).Check(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTwilioCheckCredentials reads the account resource of the contract
// server: accepted credentials, refused ones, and never a message.
func TestTwilioCheckCredentials(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)

	acct, err := newTwilio(t, fake.Config()).CheckCredentials(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if acct.SID != fake.AccountSID || acct.Status != "active" || acct.Type != "Full" {
		t.Fatalf("got %+v", acct)
	}

	cfg := fake.Config()
	cfg.AuthToken = "0123456789abcdef-wrong-token"
	_, err = newTwilio(t, cfg).CheckCredentials(ctxT(t, 10*time.Second))
	if pe := providerCode(t, err); pe.HTTPStatus != 401 || pe.Code != 20003 {
		t.Fatalf("wrong token: %+v", pe)
	}
	if strings.Contains(err.Error(), cfg.AuthToken) || strings.Contains(err.Error(), fake.AuthToken) {
		t.Fatalf("error holds a token: %v", err)
	}

	// the right token for another account's SID
	cfg = fake.Config()
	cfg.AccountSID = "AC" + strings.Repeat("0", 32)
	_, err = newTwilio(t, cfg).CheckCredentials(ctxT(t, 10*time.Second))
	if pe := providerCode(t, err); pe.HTTPStatus != 401 {
		t.Fatalf("other account: %+v", pe)
	}

	fake.AccountType = "Trial"
	acct, err = newTwilio(t, fake.Config()).CheckCredentials(ctxT(t, 10*time.Second))
	if err != nil || acct.Type != "Trial" {
		t.Fatalf("trial: %+v %v", acct, err)
	}
	if n := len(fake.Messages()); n != 0 {
		t.Fatalf("%d messages sent by a credentials check", n)
	}
}

// TestFakeTwilioAccountResource: the account resource has the Messages
// endpoint's authentication rules.
func TestFakeTwilioAccountResource(t *testing.T) {
	t.Parallel()
	fake := notifytest.StartTwilio(t)
	u := fake.URL + "/2010-04-01/Accounts/" + fake.AccountSID + ".json"
	do := func(method, user, pass string) (int, string) {
		req, _ := http.NewRequest(method, u, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name, method, user, pass string
		status                   int
		want                     string
	}{
		{"no auth", "GET", "", "", 401, `"code":20003`},
		{"wrong token", "GET", fake.AccountSID, "nope", 401, `"code":20003`},
		{"api key", "GET", fake.APIKeySID, fake.APIKeySecret, 401, `"code":20003`},
		{"DELETE", "DELETE", fake.AccountSID, fake.AuthToken, 405, `"code":20004`},
		{"ok", "GET", fake.AccountSID, fake.AuthToken, 200, `"sid":"` + fake.AccountSID + `"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := do(c.method, c.user, c.pass)
			if status != c.status || !strings.Contains(body, c.want) {
				t.Fatalf("got %d %s, want %d with %s", status, body, c.status, c.want)
			}
		})
	}
}

// TestWebhookCheckReachable: a TCP connection only, no message.
func TestWebhookCheckReachable(t *testing.T) {
	t.Parallel()
	recv := notifytest.StartWebhook(t)
	wh, err := notify.NewWebhook(recv.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.CheckReachable(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(recv.Messages()); n != 0 {
		t.Fatalf("%d messages", n)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := recv.Config()
	cfg.URL = "http://" + l.Addr().String() + "/sms"
	l.Close()
	wh, err = notify.NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.CheckReachable(ctxT(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want connection refused", err)
	}
}
