package notify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

var rcptSeq atomic.Int64

// rcpt returns a recipient unique to this test run.
func rcpt(t *testing.T) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(t.Name()))
	return fmt.Sprintf("%s-%d@example.test", name, rcptSeq.Add(1))
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newSMTP(t *testing.T, cfg notify.SMTPConfig) *notify.SMTP {
	t.Helper()
	s, err := notify.NewSMTP(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sendAndFetch sends a text+HTML mail through s and reads it back from mp.
func sendAndFetch(t *testing.T, mp *notifytest.Mailpit, s *notify.SMTP) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	to := rcpt(t)
	e := notify.Email{
		To:      to,
		Subject: "Your Latchkey code — 123456",
		Text:    "Your code is 123456.\nIt expires in 10 minutes.\n",
		HTML:    "<p>Your code is <b>123456</b>.</p><p>It expires in 10 minutes.</p>",
	}
	if err := s.SendEmail(ctx, e); err != nil {
		t.Fatalf("SendEmail: %v", err)
	}
	msg, err := mp.WaitForMessage(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != e.Subject {
		t.Errorf("Subject = %q, want %q", msg.Subject, e.Subject)
	}
	// SMTP carries CRLF line endings; mailpit returns them as received.
	if got := strings.ReplaceAll(msg.Text, "\r\n", "\n"); strings.TrimSpace(got) != strings.TrimSpace(e.Text) {
		t.Errorf("Text = %q, want %q", msg.Text, e.Text)
	}
	if !strings.Contains(msg.HTML, "<b>123456</b>") {
		t.Errorf("HTML = %q, want the HTML part", msg.HTML)
	}
	if msg.From.Address != "no-reply@latchkey.test" || msg.From.Name != "Latchkey" {
		t.Errorf("From = %+v", msg.From)
	}
	if len(msg.To) != 1 || msg.To[0].Address != to {
		t.Errorf("To = %+v, want only %s", msg.To, to)
	}
	h, err := mp.Headers(ctx, msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := h["Auto-Submitted"]; len(got) != 1 || got[0] != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", got)
	}
	if ct := strings.Join(h["Content-Type"], ""); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
	if _, ok := h["User-Agent"]; ok {
		t.Errorf("User-Agent header present: %q", h["User-Agent"])
	}
}

const from = "Latchkey <no-reply@latchkey.test>"

func TestSMTPNoTLS(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t)
	s := newSMTP(t, mp.SMTPConfig(from))
	if err := s.Check(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	sendAndFetch(t, mp, s)
}

func TestSMTPStartTLS(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t, notifytest.MailpitSTARTTLS())

	t.Run("right CA", func(t *testing.T) {
		s := newSMTP(t, mp.SMTPConfig(from))
		if err := s.Check(ctxT(t, 10*time.Second)); err != nil {
			t.Fatalf("Check: %v", err)
		}
		sendAndFetch(t, mp, s)
	})
	t.Run("mandatory is a synonym", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.TLS = "mandatory"
		sendAndFetch(t, mp, newSMTP(t, cfg))
	})
	t.Run("wrong CA", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.CAFile = notifytest.NewSelfSignedCert(t).CertFile
		err := newSMTP(t, cfg).SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("err = %v, want unknown authority", err)
		}
		if err := newSMTP(t, cfg).Check(ctxT(t, 10*time.Second)); err == nil {
			t.Fatal("Check succeeded with the wrong CA")
		}
	})
	t.Run("system roots", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.CAFile = ""
		err := newSMTP(t, cfg).Check(ctxT(t, 10*time.Second))
		if err == nil || !strings.Contains(err.Error(), "unknown authority") {
			t.Fatalf("err = %v, want unknown authority", err)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.ServerName = "mail.example.test"
		err := newSMTP(t, cfg).Check(ctxT(t, 10*time.Second))
		if err == nil || !strings.Contains(err.Error(), "not mail.example.test") {
			t.Fatalf("err = %v, want a name mismatch", err)
		}
	})
	t.Run("plain client refused", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.TLS = notify.TLSNone
		err := newSMTP(t, cfg).SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Fatalf("err = %v, want the server to demand STARTTLS", err)
		}
	})
}

func TestSMTPStartTLSRequiredButNotOffered(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t) // plain server, no STARTTLS
	cfg := mp.SMTPConfig(from)
	cfg.TLS = notify.TLSStartTLS
	cfg.ServerName = "localhost"
	err := newSMTP(t, cfg).SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "does not support STARTTLS") {
		t.Fatalf("err = %v, want no downgrade to plain text", err)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t, notifytest.MailpitImplicitTLS())
	t.Run("right CA", func(t *testing.T) {
		s := newSMTP(t, mp.SMTPConfig(from))
		if err := s.Check(ctxT(t, 10*time.Second)); err != nil {
			t.Fatalf("Check: %v", err)
		}
		sendAndFetch(t, mp, s)
	})
	t.Run("wrong CA", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.CAFile = notifytest.NewSelfSignedCert(t).CertFile
		err := newSMTP(t, cfg).SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
		if err == nil || !strings.Contains(err.Error(), "unknown authority") {
			t.Fatalf("err = %v, want unknown authority", err)
		}
	})
	t.Run("starttls client against smtps", func(t *testing.T) {
		cfg := mp.SMTPConfig(from)
		cfg.TLS = notify.TLSStartTLS
		cfg.Timeout = 2 * time.Second
		if err := newSMTP(t, cfg).Check(ctxT(t, 10*time.Second)); err == nil {
			t.Fatal("a STARTTLS client reached an SMTPS server")
		}
	})
}

func TestSMTPAuth(t *testing.T) {
	t.Parallel()
	const user, pass = "latchkey", "s3cret-Pa55word-9f2c"

	t.Run("over STARTTLS", func(t *testing.T) {
		t.Parallel()
		mp := notifytest.StartMailpit(t, notifytest.MailpitSTARTTLS(), notifytest.MailpitAuth(user, pass))
		s := newSMTP(t, mp.SMTPConfig(from))
		if err := s.Check(ctxT(t, 10*time.Second)); err != nil {
			t.Fatalf("Check: %v", err)
		}
		sendAndFetch(t, mp, s)

		cfg := mp.SMTPConfig(from)
		cfg.Password = "wrong-" + pass
		err := newSMTP(t, cfg).SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
		if err == nil || !strings.Contains(err.Error(), "535") {
			t.Fatalf("err = %v, want 535", err)
		}
		if strings.Contains(err.Error(), cfg.Password) || strings.Contains(err.Error(), pass) {
			t.Fatalf("error contains the password: %v", err)
		}
		if notify.IsTemporary(err) {
			t.Errorf("IsTemporary(bad credentials) = true")
		}

		cfg = mp.SMTPConfig(from)
		cfg.Username, cfg.Password = "", ""
		err = newSMTP(t, cfg).SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
		if err == nil {
			t.Fatal("sent without AUTH to a server that requires it")
		}
	})

	t.Run("no plain auth without TLS", func(t *testing.T) {
		t.Parallel()
		// mailpit offers PLAIN and LOGIN on the unencrypted connection.
		mp := notifytest.StartMailpit(t, notifytest.MailpitAuth(user, pass))
		var logs bytes.Buffer
		s, err := notify.NewSMTP(mp.SMTPConfig(from), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		if err != nil {
			t.Fatal(err)
		}
		err = s.SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
		if err == nil {
			t.Fatal("authenticated with a plain-text mechanism over an unencrypted connection")
		}
		t.Logf("refused as expected: %v", err)
		if strings.Contains(err.Error(), pass) || strings.Contains(logs.String(), pass) {
			t.Fatal("password leaked")
		}
		list, err := mp.Messages(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 0 {
			t.Fatalf("%d messages arrived", len(list))
		}
	})
}

func TestSMTPRefusesHeaderInjectionBeforeDialing(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback: nothing listens, so any dial would fail with a
	// network error, not the validation error we expect.
	s := newSMTP(t, notify.SMTPConfig{Host: "127.0.0.1", Port: 1, TLS: notify.TLSNone, From: from})
	cases := []struct {
		name string
		e    notify.Email
		want error
	}{
		{"CRLF in To", notify.Email{To: "a@example.test\r\nBcc: victim@example.test", Subject: "x", Text: "x"}, notify.ErrHeaderInjection},
		{"LF in To", notify.Email{To: "a@example.test\nBcc: victim@example.test", Subject: "x", Text: "x"}, notify.ErrHeaderInjection},
		{"CR in Subject", notify.Email{To: "a@example.test", Subject: "hi\rBcc: victim@example.test", Text: "x"}, notify.ErrHeaderInjection},
		{"CRLF in Subject", notify.Email{To: "a@example.test", Subject: "hi\r\nBcc: victim@example.test", Text: "x"}, notify.ErrHeaderInjection},
		{"NUL in Subject", notify.Email{To: "a@example.test", Subject: "hi\x00", Text: "x"}, notify.ErrHeaderInjection},
		{"U+2028 in Subject", notify.Email{To: "a@example.test", Subject: "hi\u2028there", Text: "x"}, notify.ErrHeaderInjection},
		{"two recipients", notify.Email{To: "a@example.test, b@example.test", Subject: "x", Text: "x"}, notify.ErrInvalidAddress},
		{"group syntax", notify.Email{To: "undisclosed:a@example.test;", Subject: "x", Text: "x"}, notify.ErrInvalidAddress},
		{"display name", notify.Email{To: "Jo <a@example.test>", Subject: "x", Text: "x"}, notify.ErrInvalidAddress},
		{"no at", notify.Email{To: "example.test", Subject: "x", Text: "x"}, notify.ErrInvalidAddress},
		{"empty To", notify.Email{Subject: "x", Text: "x"}, notify.ErrInvalidAddress},
		{"no body", notify.Email{To: "a@example.test", Subject: "x"}, notify.ErrInvalidMessage},
		{"no subject", notify.Email{To: "a@example.test", Text: "x"}, notify.ErrInvalidMessage},
		{"huge body", notify.Email{To: "a@example.test", Subject: "x", Text: strings.Repeat("x", 2<<20)}, notify.ErrInvalidMessage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.SendEmail(context.Background(), c.e)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), "victim") {
				t.Errorf("error echoes the input: %v", err)
			}
		})
	}
}

func TestNewSMTPConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  notify.SMTPConfig
		want string
	}{
		{"no host", notify.SMTPConfig{From: from}, "host is required"},
		{"bad tls", notify.SMTPConfig{Host: "h", TLS: "opportunistic", From: from}, "tls must be"},
		{"CRLF in From", notify.SMTPConfig{Host: "h", From: "a@b.test\r\nBcc: c@d.test"}, "control character"},
		{"two From", notify.SMTPConfig{Host: "h", From: "a@b.test, c@d.test"}, "invalid e-mail address"},
		{"missing CA file", notify.SMTPConfig{Host: "h", From: from, CAFile: "/nonexistent/ca.pem"}, "ca_file"},
		{"password without user", notify.SMTPConfig{Host: "h", From: from, Password: "hunter2hunter2"}, "username is empty"},
		{"bad port", notify.SMTPConfig{Host: "h", From: from, Port: 70000}, "out of range"},
		{"bad helo", notify.SMTPConfig{Host: "h", From: from, HELO: "a b"}, "helo"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := notify.NewSMTP(c.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if c.cfg.Password != "" && strings.Contains(err.Error(), c.cfg.Password) {
				t.Fatalf("error contains the password")
			}
		})
	}
}

func TestSMTPContextDeadline(t *testing.T) {
	t.Parallel()
	s := newSMTP(t, notify.SMTPConfig{Host: "127.0.0.1", Port: 1, TLS: notify.TLSNone, From: from})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.SendEmail(ctx, notify.Email{To: "a@example.test", Subject: "x", Text: "x"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestSMTPChaosTemporaryError(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t, notifytest.MailpitArgs("--chaos-triggers", "Recipient:451:100"))
	err := newSMTP(t, mp.SMTPConfig(from)).SendEmail(ctxT(t, 10*time.Second), notify.Email{To: rcpt(t), Subject: "x", Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("err = %v, want 451", err)
	}
	if !notify.IsTemporary(err) {
		t.Errorf("IsTemporary(451) = false")
	}
}
