package notify_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// connProxy forwards loopback TCP connections to a server, counts them,
// and can cut every open one (as a server does after its idle time).
type connProxy struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted int
	open     []net.Conn
}

func startProxy(t *testing.T, target string) *connProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.accepted++
			p.open = append(p.open, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *connProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *connProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
	}
	p.open = nil
}

func (p *connProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// TestSMTPSession sends several messages on one connection to mailpit;
// when the connection is cut between two messages, the next send fails
// with ErrSessionBroken before anything of it was sent, and a new session
// delivers it: every message arrives exactly once.
func TestSMTPSession(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t)
	px := startProxy(t, mp.SMTPAddr())
	cfg := mp.SMTPConfig(from)
	cfg.Port = px.port()
	s := newSMTP(t, cfg)
	ctx := ctxT(t, 30*time.Second)

	sess, err := s.OpenSession(ctx)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	var sent []string
	for i := range 3 {
		to := rcpt(t)
		if err := sess.SendEmail(ctx, notify.Email{To: to, Subject: "session " + strconv.Itoa(i), Text: "hello\n"}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		sent = append(sent, to)
	}
	if n := px.connections(); n != 1 {
		t.Fatalf("3 messages on a session used %d connections, want 1", n)
	}

	// the proxy closes its end: whenever the FIN reaches the client, the
	// session's connection check (a NOOP) reads EOF instead of a reply
	px.cut()
	to := rcpt(t)
	e := notify.Email{To: to, Subject: "after the cut", Text: "hello\n"}
	err = sess.SendEmail(ctx, e)
	if !errors.Is(err, notify.ErrSessionBroken) {
		t.Fatalf("send on a cut connection: %v, want ErrSessionBroken", err)
	}
	_ = sess.Close()
	sess, err = s.OpenSession(ctx)
	if err != nil {
		t.Fatalf("OpenSession again: %v", err)
	}
	if err := sess.SendEmail(ctx, e); err != nil {
		t.Fatalf("send on the new session: %v", err)
	}
	if err := sess.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	sent = append(sent, to)
	if n := px.connections(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	for _, to := range sent {
		if _, err := mp.WaitForMessage(ctx, to); err != nil {
			t.Fatalf("%s: %v", to, err)
		}
	}
	msgs, err := mp.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(sent) {
		t.Errorf("mailpit holds %d messages, want %d (each exactly once)", len(msgs), len(sent))
	}
}
