package notifytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/testport"
	"github.com/latchkeyhq/latchkey/notify"
)

// Mailpit is a running mailpit process owned by one test. Each instance is
// its own mailbox; still, prefer a unique recipient per test and search by it.
type Mailpit struct {
	// SMTPHost and SMTPPort are where mailpit accepts SMTP (loopback only).
	SMTPHost string
	SMTPPort int
	// APIURL is the base URL of the web UI and REST API, e.g.
	// "http://127.0.0.1:41234" (the API is under /api/v1).
	APIURL   string
	httpPort int
	// TLS is notify.TLSNone, notify.TLSStartTLS or notify.TLSImplicit.
	TLS string
	// Cert is the server certificate (nil without TLS); Cert.CertFile is the
	// CA file a client must trust. ServerName is the name it is valid for.
	Cert       *Cert
	ServerName string
	// Username and Password are set when SMTP AUTH is required.
	Username, Password string

	pid    int
	client *http.Client
}

type mailpitOptions struct {
	tls        string
	cert       *Cert
	user, pass string
	args       []string
}

// MailpitOption configures StartMailpit.
type MailpitOption func(*mailpitOptions)

// MailpitSTARTTLS makes mailpit offer STARTTLS with a generated certificate
// (or the one given with MailpitCert) and require it before MAIL FROM.
func MailpitSTARTTLS() MailpitOption {
	return func(o *mailpitOptions) { o.tls = notify.TLSStartTLS }
}

// MailpitImplicitTLS makes mailpit speak TLS from the first byte (SMTPS).
func MailpitImplicitTLS() MailpitOption {
	return func(o *mailpitOptions) { o.tls = notify.TLSImplicit }
}

// MailpitCert uses c as the server certificate instead of a generated one.
func MailpitCert(c *Cert) MailpitOption {
	return func(o *mailpitOptions) { o.cert = c }
}

// MailpitAuth requires SMTP AUTH with these credentials. mailpit then offers
// PLAIN and LOGIN only; without a TLS option it is started with
// --smtp-auth-allow-insecure so that it offers them on the plain connection
// too, which lets a test check that a client refuses to send a password in
// clear text. user and pass must not contain ':' or a newline.
func MailpitAuth(user, pass string) MailpitOption {
	return func(o *mailpitOptions) { o.user, o.pass = user, pass }
}

// MailpitArgs appends extra command-line flags, e.g. "--enable-chaos".
func MailpitArgs(args ...string) MailpitOption {
	return func(o *mailpitOptions) { o.args = append(o.args, args...) }
}

var (
	mailpitOnce sync.Once
	mailpitPath string
	mailpitErr  error
)

// MailpitPath returns the mailpit binary: $MAILPIT_BIN, then mailpit on
// PATH, then $GOBIN and $(go env GOPATH)/bin.
func MailpitPath() (string, error) {
	mailpitOnce.Do(func() { mailpitPath, mailpitErr = findMailpit() })
	return mailpitPath, mailpitErr
}

func findMailpit() (string, error) {
	if p := os.Getenv("MAILPIT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MAILPIT_BIN: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 && strings.TrimSpace(lines[0]) != "" {
			dirs = append(dirs, strings.TrimSpace(lines[0]))
		}
		for _, gp := range filepath.SplitList(strings.TrimSpace(lines[len(lines)-1])) {
			dirs = append(dirs, filepath.Join(gp, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "mailpit")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("mailpit not found on PATH, in $GOBIN or in $(go env GOPATH)/bin " +
		"(install: go install github.com/axllent/mailpit@v1.27.11)")
}

// InCI reports whether the CI environment variable asks for strict runs
// (set, and not "false" or "0"): missing test dependencies are then failures.
func InCI() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("CI")))
	return v != "" && v != "false" && v != "0"
}

// SkipOrFail skips the test, or fails it when InCI.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf(format+" (CI is set, so this is a failure)", args...)
	}
	t.Skipf(format, args...)
}

// StartMailpit starts mailpit on free loopback ports with
// --disable-version-check and --smtp-disable-rdns, waits until /readyz
// answers and the SMTP port accepts connections, and stops the process
// (by its PID) when the test ends. Without a mailpit binary it skips the
// test, or fails it when the CI variable is set.
func StartMailpit(t testing.TB, opts ...MailpitOption) *Mailpit {
	t.Helper()
	bin, err := MailpitPath()
	if err != nil {
		SkipOrFail(t, "notifytest: %v", err)
	}
	var o mailpitOptions
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	m := &Mailpit{SMTPHost: "127.0.0.1", TLS: notify.TLSNone, client: &http.Client{Timeout: 10 * time.Second}}
	var base []string
	if o.tls != "" {
		m.TLS = o.tls
		m.Cert = o.cert
		if m.Cert == nil {
			m.Cert = NewSelfSignedCert(t)
		}
		m.ServerName = "localhost"
		base = append(base, "--smtp-tls-cert", m.Cert.CertFile, "--smtp-tls-key", m.Cert.KeyFile)
		if o.tls == notify.TLSImplicit {
			base = append(base, "--smtp-require-tls")
		} else {
			base = append(base, "--smtp-require-starttls")
		}
	}
	if o.user != "" {
		if strings.ContainsAny(o.user+o.pass, ":\r\n") {
			t.Fatalf("notifytest: MailpitAuth credentials must not contain ':' or newlines")
		}
		m.Username, m.Password = o.user, o.pass
		authFile := filepath.Join(dir, "smtp-auth")
		if err := os.WriteFile(authFile, []byte(o.user+":"+o.pass+"\n"), 0o600); err != nil {
			t.Fatalf("notifytest: %v", err)
		}
		base = append(base, "--smtp-auth-file", authFile)
		if o.tls == "" {
			// mailpit refuses to start with AUTH on a plain listener otherwise.
			base = append(base, "--smtp-auth-allow-insecure")
		}
	}

	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		httpPort, smtpPort := pickPort(t), pickPort(t)
		args := append([]string{
			"--listen", "127.0.0.1:" + strconv.Itoa(httpPort),
			"--smtp", "127.0.0.1:" + strconv.Itoa(smtpPort),
			"--database", filepath.Join(dir, fmt.Sprintf("mailpit-%d.db", attempt)),
			"--disable-version-check", "--smtp-disable-rdns", "--quiet",
			// keep every message: by default mailpit deletes the oldest
			// past 500, and counts of what was sent would stop growing
			"--max", "0",
		}, base...)
		args = append(args, o.args...)
		m.SMTPPort, m.httpPort = smtpPort, httpPort
		m.APIURL = "http://127.0.0.1:" + strconv.Itoa(httpPort)
		if lastErr = m.start(t, bin, args); lastErr == nil {
			return m
		}
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break // not a port race: retrying will not help
		}
		t.Logf("notifytest: mailpit attempt %d: %v", attempt, lastErr)
	}
	t.Fatalf("notifytest: mailpit did not start: %v", lastErr)
	return nil
}

// lockedBuffer collects the process output for failure reports.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 64<<10 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (m *Mailpit) start(t testing.TB, bin string, args []string) error {
	out := &lockedBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "MP_DISABLE_VERSION_CHECK=true")
	if err := cmd.Start(); err != nil {
		return err
	}
	m.pid = cmd.Process.Pid
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		select {
		case <-done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.waitReady(ctx, done)
	if err != nil {
		stop()
		return fmt.Errorf("%w; output:\n%s", err, out.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			if s := out.String(); s != "" {
				t.Logf("notifytest: mailpit (pid %d) output:\n%s", m.pid, s)
			}
		}
	})
	return nil
}

func (m *Mailpit) waitReady(ctx context.Context, done <-chan struct{}) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	httpOK := false
	for {
		select {
		case <-done:
			return errors.New("mailpit exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("mailpit not ready: %w", ctx.Err())
		case <-tick.C:
		}
		if !httpOK {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.APIURL+"/readyz", nil)
			resp, err := m.client.Do(req)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				continue
			}
			httpOK = true
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", m.SMTPAddr())
		if err != nil {
			continue
		}
		c.Close()
		// Both answers may come from another test's server that took a
		// port freePort found free (tests run in parallel): a mailpit
		// that lost the race exits with "address already in use" while
		// the other server answers. Ready means this process listens on
		// both ports itself.
		own, err := listensOn(m.pid, m.httpPort, m.SMTPPort)
		if err != nil {
			return err
		}
		if own {
			return nil
		}
	}
}

// listensOn reports whether process pid has listening TCP sockets on
// 127.0.0.1 at every one of ports (from /proc/net/tcp and the socket
// inodes of /proc/PID/fd).
func listensOn(pid int, ports ...int) (bool, error) {
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false, nil // gone, or not yet: the caller polls
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	found := map[int]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !mine[f[9]] { // 0A: LISTEN
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if p, err := strconv.ParseUint(f[1][i+1:], 16, 32); err == nil {
			found[int(p)] = true
		}
	}
	for _, p := range ports {
		if !found[p] {
			return false, nil
		}
	}
	return true, nil
}

// pickPort is freePort; a test replaces it to hand out ports another
// server holds.
var pickPort = freePort

func freePort(t testing.TB) int {
	t.Helper()
	p, err := testport.Free()
	if err != nil {
		t.Fatalf("notifytest: free port: %v", err)
	}
	return p
}

// PID is the mailpit process ID.
func (m *Mailpit) PID() int { return m.pid }

// SMTPAddr is "127.0.0.1:port".
func (m *Mailpit) SMTPAddr() string {
	return net.JoinHostPort(m.SMTPHost, strconv.Itoa(m.SMTPPort))
}

// SMTPConfig returns a notify.SMTPConfig that reaches this mailpit with the
// right TLS mode, CA file, server name and credentials.
func (m *Mailpit) SMTPConfig(from string) notify.SMTPConfig {
	cfg := notify.SMTPConfig{
		Host:     m.SMTPHost,
		Port:     m.SMTPPort,
		TLS:      m.TLS,
		Username: m.Username,
		Password: m.Password,
		From:     from,
		Timeout:  10 * time.Second,
	}
	if m.Cert != nil {
		cfg.CAFile = m.Cert.CertFile
		cfg.ServerName = m.ServerName
	}
	return cfg
}

// Address is a mailbox in mailpit's JSON.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// MessageSummary is one entry of mailpit's message list.
type MessageSummary struct {
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"`
	From      Address   `json:"From"`
	To        []Address `json:"To"`
	Cc        []Address `json:"Cc"`
	Bcc       []Address `json:"Bcc"`
	Subject   string    `json:"Subject"`
	Snippet   string    `json:"Snippet"`
	Created   time.Time `json:"Created"`
	Size      int       `json:"Size"`
}

// Message is one message as mailpit parsed it.
type Message struct {
	ID        string    `json:"ID"`
	MessageID string    `json:"MessageID"`
	From      Address   `json:"From"`
	To        []Address `json:"To"`
	Cc        []Address `json:"Cc"`
	Bcc       []Address `json:"Bcc"`
	ReplyTo   []Address `json:"ReplyTo"`
	Subject   string    `json:"Subject"`
	Date      time.Time `json:"Date"`
	Text      string    `json:"Text"`
	HTML      string    `json:"HTML"`
	Size      int       `json:"Size"`
}

// HasRecipient reports whether to (compared case-insensitively) is among
// the message's To, Cc or Bcc addresses.
func (s MessageSummary) HasRecipient(to string) bool {
	for _, list := range [][]Address{s.To, s.Cc, s.Bcc} {
		for _, a := range list {
			if strings.EqualFold(a.Address, to) {
				return true
			}
		}
	}
	return false
}

func (m *Mailpit) do(ctx context.Context, method, path string, v any) error {
	return m.doBody(ctx, method, path, nil, v)
}

// doBody is do with a JSON request body (none when in is nil).
func (m *Mailpit) doBody(ctx context.Context, method, path string, in, v any) error {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.APIURL+path, rd)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("mailpit %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit %s %s: HTTP %d: %.200s", method, path, resp.StatusCode, body)
	}
	switch v := v.(type) {
	case nil:
		return nil
	case *[]byte:
		*v = body
		return nil
	default:
		if err := json.Unmarshal(body, v); err != nil {
			return fmt.Errorf("mailpit %s %s: decoding: %w", method, path, err)
		}
		return nil
	}
}

type messageList struct {
	Total    int              `json:"total"`
	Messages []MessageSummary `json:"messages"`
}

// Messages lists stored messages, newest first (mailpit's first page of 50).
func (m *Mailpit) Messages(ctx context.Context) ([]MessageSummary, error) {
	var l messageList
	if err := m.do(ctx, http.MethodGet, "/api/v1/messages", &l); err != nil {
		return nil, err
	}
	return l.Messages, nil
}

// List lists up to limit stored messages, newest first.
func (m *Mailpit) List(ctx context.Context, limit int) ([]MessageSummary, error) {
	var l messageList
	if err := m.do(ctx, http.MethodGet, "/api/v1/messages?limit="+strconv.Itoa(limit), &l); err != nil {
		return nil, err
	}
	return l.Messages, nil
}

// Delete deletes the messages with these ids.
func (m *Mailpit) Delete(ctx context.Context, ids []string) error {
	return m.doBody(ctx, http.MethodDelete, "/api/v1/messages", map[string][]string{"IDs": ids}, nil)
}

// Search runs a mailpit search query (e.g. `to:"a@b.test" subject:reset`),
// newest first, up to 1,000 messages (mailpit's own default is 50).
func (m *Mailpit) Search(ctx context.Context, query string) ([]MessageSummary, error) {
	var l messageList
	if err := m.do(ctx, http.MethodGet, "/api/v1/search?limit=1000&query="+url.QueryEscape(query), &l); err != nil {
		return nil, err
	}
	return l.Messages, nil
}

// Message fetches one message with its text and HTML bodies. mailpit marks
// it read.
func (m *Mailpit) Message(ctx context.Context, id string) (*Message, error) {
	var msg Message
	if err := m.do(ctx, http.MethodGet, "/api/v1/message/"+url.PathEscape(id), &msg); err != nil {
		return nil, err
	}
	return &msg, nil
}

// Headers fetches a message's headers (canonical names, all values).
func (m *Mailpit) Headers(ctx context.Context, id string) (map[string][]string, error) {
	var h map[string][]string
	if err := m.do(ctx, http.MethodGet, "/api/v1/message/"+url.PathEscape(id)+"/headers", &h); err != nil {
		return nil, err
	}
	return h, nil
}

// Raw fetches a message's source as received.
func (m *Mailpit) Raw(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	if err := m.do(ctx, http.MethodGet, "/api/v1/message/"+url.PathEscape(id)+"/raw", &b); err != nil {
		return nil, err
	}
	return b, nil
}

// DeleteAll deletes every stored message.
func (m *Mailpit) DeleteAll(ctx context.Context) error {
	return m.do(ctx, http.MethodDelete, "/api/v1/messages", nil)
}

// WaitForMessage polls until a message addressed to `to` has arrived and
// returns the newest such message. The caller's context sets the deadline;
// on expiry the error wraps ctx.Err().
func (m *Mailpit) WaitForMessage(ctx context.Context, to string) (*Message, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		list, err := m.Search(ctx, `to:"`+to+`"`)
		if err == nil {
			for _, s := range list {
				if s.HasRecipient(to) {
					return m.Message(ctx, s.ID)
				}
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("no message for %s: %w (last API error: %v)", to, ctx.Err(), lastErr)
			}
			return nil, fmt.Errorf("no message for %s: %w", to, ctx.Err())
		case <-tick.C:
		}
	}
}

// Count returns how many messages mailpit holds.
func (m *Mailpit) Count(ctx context.Context) (int, error) {
	var l messageList
	if err := m.do(ctx, http.MethodGet, "/api/v1/messages?limit=1", &l); err != nil {
		return 0, err
	}
	return l.Total, nil
}

// WaitCount polls until mailpit holds at least n messages and returns the
// count. The caller's context sets the deadline; on expiry the error wraps
// ctx.Err(). A wait on a positive signal: use it instead of a sleep before
// checking what was sent.
func (m *Mailpit) WaitCount(ctx context.Context, n int) (int, error) {
	var lastErr error
	for {
		c, err := m.Count(ctx)
		if err == nil && c >= n {
			return c, nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("mailpit holds %d messages, want %d: %w (last API error: %v)", c, n, ctx.Err(), lastErr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
