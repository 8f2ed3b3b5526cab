package blackbox

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

func TestClient(t *testing.T) {
	var hits [2]int
	serve := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i]++
			var in map[string]string
			_ = json.NewDecoder(r.Body).Decode(&in)
			if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" || in["a"] != "b" {
				w.WriteHeader(400)
				_, _ = w.Write([]byte(`{"error":{"code":"bad_request"}}`))
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "c", Value: "v"})
			_, _ = w.Write([]byte(`{"flow":"f1"}`))
		}))
	}
	s0, s1 := serve(0), serve(1)
	defer s0.Close()
	defer s1.Close()
	c := NewClient(s0.URL, s1.URL)
	for range 4 {
		a, err := c.Must(200, "POST", "/x", "tok", map[string]string{"a": "b"})
		if err != nil {
			t.Fatal(err)
		}
		if a.Str("flow") != "f1" || len(a.Cookies()) != 1 || a.Cookies()[0].Value != "v" {
			t.Fatalf("%v %v", a, a.Cookies())
		}
	}
	if hits != [2]int{2, 2} {
		t.Fatalf("requests per instance %v, want 2 each", hits)
	}
	a, err := c.Must(200, "POST", "/x", "", nil)
	if err == nil || a.Status != 400 || a.ErrCode() != "bad_request" {
		t.Fatalf("%v %v", a, err)
	}
}

func sendMail(t *testing.T, m *notifytest.Mailpit, to, subject, text string) {
	t.Helper()
	s, err := notify.NewSMTP(m.SMTPConfig("Latchkey <latchkey@example.org>"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendEmail(context.Background(), notify.Email{To: to, Subject: subject, Text: text}); err != nil {
		t.Fatal(err)
	}
}

func TestMailbox(t *testing.T) {
	m := notifytest.StartMailpit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	box := Mailbox{Mail: m}
	sendMail(t, m, "x.jo@example.org", "Your verification code", "Code: 11111111")
	sendMail(t, m, "jo@example.org", "Your verification code", "Code: 12345678")
	sendMail(t, m, "jo@example.org", "Your password was changed", "Hello")
	if c, err := box.Code(ctx, "jo@example.org"); err != nil || c != "12345678" {
		t.Fatalf("code %q, %v", c, err)
	}
	if l, err := box.WaitList(ctx, "jo@example.org", "", 2); err != nil || len(l) != 2 {
		t.Fatalf("%d messages, %v", len(l), err)
	}
	seen := Mailbox{Mail: m, Seen: map[string]bool{}}
	if c, err := seen.Code(ctx, "jo@example.org"); err != nil || c != "12345678" {
		t.Fatalf("code %q, %v", c, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if c, err := seen.Code(short, "jo@example.org"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a code read before came again: %q, %v", c, err)
	}
	sendMail(t, m, "jo@example.org", "Your verification code", "Code: 87654321")
	if c, err := seen.Code(ctx, "jo@example.org"); err != nil || c != "87654321" {
		t.Fatalf("code %q, %v", c, err)
	}
	if n, err := box.Count(ctx); err != nil || n != 4 {
		t.Fatalf("count %d, %v", n, err)
	}
	if err := box.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := box.Count(ctx); err != nil || n != 0 {
		t.Fatalf("count after Clear %d, %v", n, err)
	}
}

func TestCollector(t *testing.T) {
	m := notifytest.StartMailpit(t)
	c := NewCollector(m)
	defer c.Close()
	sendMail(t, m, "Jo@example.org", "Your verification code", "Code: 12345678")
	code, err := c.Wait("jo@example.org", 15*time.Second)
	if err != nil || code != "12345678" {
		t.Fatalf("code %q, %v", code, err)
	}
	if code, ok := c.Take("jo@example.org"); ok {
		t.Fatalf("the code came twice: %q", code)
	}
	if _, err := c.Wait("jo@example.org", 100*time.Millisecond); err == nil {
		t.Fatal("no error without a code")
	}
	total, by := c.Snapshot()
	if total != 1 || by["Your verification code"] != 1 {
		t.Fatalf("%d %v", total, by)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		n, err := m.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break // read and deleted
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d messages left", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestSMSCode(t *testing.T) {
	tw := StartTwilio(t)
	sender, err := notify.NewTwilio(tw.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	send := func(body string) {
		if err := sender.SendSMS(ctx, notify.SMS{To: "+447700900111", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	s := SMS{Twilio: tw, Seen: map[string]int{}}
	got := make(chan string, 1)
	go func() { c, _ := s.Code(ctx, "+447700900111"); got <- c }()
	send("Hello")
	send("12345678 is your Latchkey code")
	if c := <-got; c != "12345678" {
		t.Fatalf("code %q", c)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if c, err := s.Code(short, "+447700900111"); err == nil {
		t.Fatalf("a code read before came again: %q", c)
	}
	if l := s.To("+447700900111", ""); len(l) != 2 || !strings.Contains(l[1].Body, CodeSMS) {
		t.Fatalf("%+v", l)
	}
}
