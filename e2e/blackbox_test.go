package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/blackbox"
	"github.com/latchkeyhq/latchkey/policy"
)

// TestBlackBox attacks the real binary over HTTP with a real slapd and a
// real Samba AD DC behind it, for the items of the security checklist
// (docs/security-checklist.md) that the other suites do not cover.
func TestBlackBox(t *testing.T) {
	parallel(t)
	for _, d := range directories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			runBlackBox(t, d.start(t))
		})
	}
}

// raw sends one request as given and returns status, body and headers.
func (e *env) raw(method, path, contentType, body string, hdr map[string]string) (int, []byte, http.Header) {
	e.t.Helper()
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	for k, v := range hdr {
		h[k] = v
	}
	a, err := (&blackbox.Client{Bases: []string{e.base}, HTTP: ckClient}).Request(method, path, h, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Status, a.Body, a.Header
}

// auditEvents reads the audit log of the gateway (one JSON object a line).
func (e *env) auditEvents() []map[string]any {
	e.t.Helper()
	f, err := os.Open(e.audit)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			e.t.Fatalf("audit line is not JSON: %q", sc.Text())
		}
		out = append(out, ev)
	}
	return out
}

// nonces are the per-request values two answers may differ in.
var nonces = regexp.MustCompile(`"(flow|request_id|id)":"[^"]*"`)

func runBlackBox(t *testing.T, srv *dirtest.Server) {
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Limits: `limits:
  starts_per_account: 3
  bind_failures: 50
`})
	ctx := context.Background()
	mid, _ := e.register("carol", "carol.bb@example.net", "")
	settleMail(t, mail)
	mailsToCarol := func() int {
		list, err := mail.Messages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range list {
			for _, to := range m.To {
				if strings.EqualFold(to.Address, "carol.bb@example.net") {
					n++
				}
			}
		}
		return n
	}

	t.Run("ambiguous, oversized and malformed input is refused and changes nothing", func(t *testing.T) {
		e.t = t
		before := mailsToCarol()
		f, _ := e.startReset("carol")
		sendBody := func(extra string) string {
			return `{"flow":"` + f.ID + `","method":"` + mid + `"` + extra + `}`
		}
		for _, c := range []struct {
			name, path, ctype, body string
			status                  int
		}{
			{"repeated key", "/api/v1/reset", "application/json", `{"username":"nobody","username":"carol"}`, 400},
			{"key differing in case", "/api/v1/reset", "application/json", `{"username":"nobody","Username":"carol"}`, 400},
			{"array for a string", "/api/v1/reset", "application/json", `{"username":["carol"]}`, 400},
			{"unknown field", "/api/v1/reset", "application/json", `{"username":"carol","admin":true}`, 400},
			{"trailing data", "/api/v1/reset", "application/json", `{"username":"carol"}{"username":"bob"}`, 400},
			{"not JSON", "/api/v1/reset", "text/plain", `{"username":"carol"}`, 400},
			{"form to the API", "/api/v1/reset", "application/x-www-form-urlencoded", `username=carol`, 400},
			{"oversized body", "/api/v1/reset", "application/json", `{"username":"` + strings.Repeat("a", 70<<10) + `"}`, 413},
			{"repeated method on send", "/api/v1/reset/send", "application/json", sendBody(`,"method":"` + mid + `"`), 400},
			{"recipient smuggled into send", "/api/v1/reset/send", "application/json", sendBody(`,"address":"evil@example.net"`), 400},
			{"array of methods on send", "/api/v1/reset/send", "application/json", `{"flow":"` + f.ID + `","method":["` + mid + `"]}`, 400},
			{"repeated password on change", "/api/v1/change", "application/json", `{"username":"carol","old_password":"x","old_password":"` + srv.Password("carol") + `","new_password":"Some-Long-Passw0rd"}`, 400},
		} {
			st, body, _ := e.raw("POST", c.path, c.ctype, c.body, nil)
			if st != c.status {
				t.Fatalf("%s: %d %s, want %d", c.name, st, body, c.status)
			}
			if bytes.Contains(body, []byte("carol")) || bytes.Contains(body, []byte("evil@")) {
				t.Fatalf("%s: the answer echoes the input: %s", c.name, body)
			}
		}
		// control characters in a name name nobody: the answer of any
		// unknown name (fake methods), and nothing reaches a mail header
		_, unknown := e.startReset("no-such-user-ctl")
		for _, name := range []string{"carol\r\nBcc: evil@example.net", "carol\x00x", "carol\nx"} {
			f, r := e.startReset(name)
			if r.Status != 200 || len(f.Methods) == 0 || !bytes.Equal(nonces.ReplaceAll(r.Body, nil), nonces.ReplaceAll(unknown.Body, nil)) && len(f.Methods) == 0 {
				t.Fatalf("%q: %d %s", name, r.Status, r.Body)
			}
			for _, m := range f.Methods {
				if m["id"] == mid {
					t.Fatalf("%q found carol", name)
				}
				e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": m["id"].(string)}), "send")
			}
		}
		time.Sleep(noSendWait) // a code leaves up to flow.MaxSendDelay after the answer
		if n := mailsToCarol(); n != before {
			t.Fatalf("%d mails to carol after refused requests", n-before)
		}
		list, _ := mail.Messages(ctx)
		for _, m := range list {
			for _, to := range append(m.To, m.Bcc...) {
				if strings.Contains(to.Address, "evil@") {
					t.Fatal("a mail went to an injected recipient")
				}
			}
		}
		if err := srv.UserBind("carol", srv.Password("carol")); err != nil {
			t.Fatalf("carol's password changed or locked: %v", err)
		}
	})

	t.Run("safe and unknown methods change nothing", func(t *testing.T) {
		e.t = t
		before := mailsToCarol()
		f, _ := e.startReset("carol")
		for _, path := range []string{"/api/v1/reset", "/api/v1/reset/send", "/api/v1/reset/verify", "/api/v1/reset/complete",
			"/api/v1/session", "/api/v1/change", "/api/v1/unlock", "/reset", "/reset/send", "/reset/verify"} {
			for _, method := range []string{"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"} {
				if method == "GET" && path == "/reset" || method == "DELETE" && path == "/api/v1/session" {
					continue // the start page; signing out (without a session: nothing to end)
				}
				st, _, h := e.raw(method, path+"?flow="+f.ID+"&method="+mid+"&username=carol", "application/json", "", nil)
				if st != 405 && st != 404 && !(method == "GET" && st == 410) && !(method == "GET" && st < 400 && strings.HasPrefix(path, "/reset")) {
					t.Fatalf("%s %s: %d", method, path, st)
				}
				if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Server") != "" || h.Get("X-Powered-By") != "" {
					t.Fatalf("%s %s: headers %v", method, path, h)
				}
			}
		}
		time.Sleep(noSendWait)
		if n := mailsToCarol(); n != before {
			t.Fatalf("a safe or unknown method sent %d mails", n-before)
		}
		// the flow is still fresh: nothing was consumed
		if r := e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": mid}); r.Status != 202 {
			t.Fatalf("the flow did not survive: %d %s", r.Status, r.Body)
		}
		e.mailCode("carol.bb@example.net")
	})

	t.Run("throttled starts look like any other, for every spelling", func(t *testing.T) {
		e.t = t
		// starts_per_account is 3 in this gateway; carol has used one or
		// two above, so these spellings of one account run past it
		var first []byte
		for i, name := range []string{"carol", "CAROL", " carol ", "Carol", "carol"} {
			st, body, _ := e.raw("POST", "/api/v1/reset", "application/json", `{"username":"`+name+`"}`, nil)
			if st != 200 {
				t.Fatalf("%q: %d %s", name, st, body)
			}
			norm := nonces.ReplaceAll(body, nil)
			if i == 0 {
				first = norm
			} else if !bytes.Equal(norm, first) {
				t.Fatalf("%q answers differently once throttled:\n%s\n%s", name, first, norm)
			}
		}
		// and the budget was one, whatever the spelling: a send in the
		// last flow reaches nobody
		before := mailsToCarol()
		f, _ := e.startReset("carol")
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": f.Methods[0]["id"].(string)}), "send")
		time.Sleep(noSendWait) // codes leave up to flow.MaxSendDelay after the answer
		if n := mailsToCarol(); n != before {
			t.Fatal("a throttled flow sent a code")
		}
		var blocked int
		for _, ev := range e.auditEvents() {
			if ev["event"] == "blocked" && ev["outcome"] == "start_budget" {
				blocked++
			}
		}
		if blocked < 3 {
			t.Fatalf("%d blocked starts in the audit", blocked)
		}
	})

	t.Run("forged forwarding headers are not the client address", func(t *testing.T) {
		e.t = t
		for _, h := range []string{"X-Forwarded-For", "X-Real-IP", "Forwarded", "True-Client-IP", "CF-Connecting-IP"} {
			v := "203.0.113.77"
			if h == "Forwarded" {
				v = "for=203.0.113.77"
			}
			st, body, _ := e.raw("POST", "/api/v1/reset", "application/json", `{"username":"no-such-user-fwd"}`, map[string]string{h: v})
			if st != 200 {
				t.Fatalf("%s: %d %s", h, st, body)
			}
		}
		seen := 0
		for _, ev := range e.auditEvents() {
			if strings.Contains(toJSON(ev), "203.0.113.77") {
				t.Fatalf("a forged address reached the audit: %v", ev)
			}
			if ev["event"] == "reset.started" {
				seen++
				if ev["client_ip"] != "127.0.0.1" {
					t.Fatalf("client_ip %v", ev["client_ip"])
				}
			}
		}
		if seen == 0 {
			t.Fatal("no reset.started events")
		}
	})

	t.Run("wrong passwords never lock the directory account", func(t *testing.T) {
		e.t = t
		// bob: slapd locks after 3 failures (pwdMaxFailure), Samba after
		// its lockoutThreshold; the gateway must stop below that however
		// many wrong passwords arrive, on sign-in and on change alike
		for i := 0; i < 8; i++ {
			e.api("POST", "/api/v1/session", "", map[string]string{"username": "bob", "password": "Wrong-Guess-1!"})
			e.api("POST", "/api/v1/change", "", map[string]string{"username": "bob", "old_password": "Wrong-Guess-2!", "new_password": "Whatever-Long-Pass-9"})
		}
		if err := srv.UserBind("bob", srv.Password("bob")); err != nil {
			t.Fatalf("bob can no longer bind at the directory: %v", err)
		}
		// an empty password is never an (unauthenticated) success
		r := e.api("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": ""})
		if r.Status == 200 || r.str("token") != "" {
			t.Fatalf("empty password: %d %s", r.Status, r.Body)
		}
	})

	t.Run("starting resets changes nothing on the account", func(t *testing.T) {
		e.t = t
		for i := 0; i < 6; i++ {
			e.api("POST", "/api/v1/reset", "", map[string]string{"username": "grace"})
			e.api("POST", "/api/v1/unlock", "", map[string]string{"username": "grace"})
		}
		if err := srv.UserBind("grace", srv.Password("grace")); err != nil {
			t.Fatalf("grace cannot bind after reset starts: %v", err)
		}
	})

	t.Run("sign-in and change fail alike for unknown, wrong, disabled and locked accounts", func(t *testing.T) {
		e.t = t
		// twin2 locked at the directory (its lockout threshold of wrong
		// binds, sent straight to the directory, not through the gateway)
		for i := 0; i < 5; i++ {
			_ = srv.UserBind("twin2", "Wrong-Straight-1!")
		}
		if srv.UserBind("twin2", srv.Password("twin2")) == nil {
			t.Fatal("twin2 is not locked")
		}
		cases := map[string][2]string{
			"unknown":        {"no-such-user-a4", "Some-Password-1!"},
			"wrong password": {"frank", "Not-Franks-Password-1!"},
			"disabled":       {"ivan", srv.Password("ivan")},
			"locked":         {"twin2", srv.Password("twin2")},
		}
		for _, path := range []string{"/api/v1/session", "/api/v1/change"} {
			var first []byte
			for name, c := range cases {
				body := map[string]string{"username": c[0], "password": c[1]}
				if path == "/api/v1/change" {
					body = map[string]string{"username": c[0], "old_password": c[1], "new_password": "Another-Long-Passw0rd-7"}
				}
				r := e.api("POST", path, "", body)
				norm := nonces.ReplaceAll(r.Body, nil)
				if r.Status != 401 || r.errCode() != "sign_in_failed" {
					t.Fatalf("%s %s: %d %s", path, name, r.Status, r.Body)
				}
				if first == nil {
					first = norm
				} else if !bytes.Equal(first, norm) {
					t.Fatalf("%s %s answers differently:\n%s\n%s", path, name, first, norm)
				}
			}
		}
	})

	t.Run("the database holds no code, address, token or flow id in clear", func(t *testing.T) {
		e.t = t
		var db []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(filepath.Join(e.work, "latchkey.db"+suffix))
			if err != nil && suffix == "" {
				t.Fatal(err)
			}
			db = append(db, b...)
		}
		if len(db) < 4096 {
			t.Fatalf("database of %d bytes", len(db))
		}
		if !bytes.Contains(db, []byte("reset.started")) {
			t.Fatal("the database scan does not see the audit rows: it would see nothing else either")
		}
		for _, secret := range append([]string{"carol.bb@example.net", "example.net"}, e.secrets...) {
			if bytes.Contains(db, []byte(secret)) {
				t.Fatalf("the database holds %q in clear", secret)
			}
		}
	})

	t.Run("every audit line has time, request id, client address and outcome", func(t *testing.T) {
		e.t = t
		types := map[string]bool{}
		for _, ev := range e.auditEvents() {
			typ, _ := ev["event"].(string)
			types[typ] = true
			ts, _ := ev["time"].(string)
			tm, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || !strings.HasSuffix(ts, "Z") || time.Since(tm) > time.Hour {
				t.Fatalf("%s: time %q", typ, ts)
			}
			if typ != "configuration.loaded" {
				if rid, _ := ev["request_id"].(string); len(rid) < 8 {
					t.Fatalf("%s: request id %v", typ, ev["request_id"])
				}
				if ev["client_ip"] != "127.0.0.1" {
					t.Fatalf("%s: client_ip %v", typ, ev["client_ip"])
				}
			}
			if o, _ := ev["outcome"].(string); o == "" {
				t.Fatalf("%s: no outcome", typ)
			}
			if _, ok := ev["account_id"]; !ok && typ != "configuration.loaded" {
				t.Fatalf("%s: no account_id", typ)
			}
		}
		for _, want := range []string{"configuration.loaded", "sign_in", "registration.method_added", "registration.method_verified",
			"reset.started", "reset.code_sent", "change.completed", "blocked"} {
			if !types[want] {
				t.Fatalf("no %s event in %v", want, types)
			}
		}
	})

	t.Run("metrics and health answers hold no secrets", func(t *testing.T) {
		e.t = t
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			st, body, _ := e.raw("GET", path, "", "", nil)
			if st != 200 {
				t.Fatalf("%s: %d", path, st)
			}
			for _, secret := range append([]string{srv.ServicePassword, twilioToken, "carol.bb@example.net", srv.Password("carol")}, e.secrets...) {
				if bytes.Contains(body, []byte(secret)) {
					t.Fatalf("%s shows a secret", path)
				}
			}
		}
	})
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestRefusesToStartUnsafely runs latchkey serve with unsafe
// configurations: each must exit with status 2 naming the key, before
// listening, and without printing the secret it refused.
func TestRefusesToStartUnsafely(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := make([]byte, 48)
	rand.Read(key)
	good := write("good.key", base64.StdEncoding.EncodeToString(key))
	short := write("short.key", "too-short-secret")
	bindpw := write("bind.pw", "Bind-Secret-Value-1")
	// cfg is a sound configuration (that cannot reach its directory)
	// changed by edit
	cfg := func(edit func(c *config.Config)) string {
		c := config.Default()
		c.Server.PublicURL, c.Server.SecretKeyFile = "https://sspr.example.org", good
		c.Directory.BindDN, c.Directory.BindPasswordFile, c.Directory.BaseDN = "cn=sspr,dc=example,dc=org", bindpw, "dc=example,dc=org"
		c.Directory.URLs = []string{"ldaps://127.0.0.1:1"}
		c.Policy.Scope, c.Policy.Methods = policy.ScopeAll, []string{policy.MethodEmail}
		c.SMTP.Host, c.SMTP.Port, c.SMTP.From = "127.0.0.1", 1, "sspr@example.org"
		c.Store.DSN = "file:" + filepath.Join(dir, "x.db")
		if edit != nil {
			edit(c)
		}
		b, err := blackbox.MarshalConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sound := cfg(nil)
	run := func(name, cfg string) (int, string) {
		cmd := exec.Command(binary, "serve", "--config", write(name+".yaml", cfg))
		cmd.Env = append(os.Environ(), "LATCHKEY_SERVER_LISTEN=127.0.0.1:1")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	// the control: a sound configuration passes validation (and then fails
	// to reach the directory: exit 1)
	if code, out := run("sound", sound); code != 1 || strings.Contains(out, "configuration has problems") {
		t.Fatalf("the sound configuration: exit %d\n%s", code, out)
	}
	for _, c := range []struct{ name, cfg, key, secret string }{
		{"short secret key", cfg(func(c *config.Config) { c.Server.SecretKeyFile = short }), "server.secret_key", "too-short-secret"},
		{"no secret key", cfg(func(c *config.Config) { c.Server.SecretKeyFile = "" }), "server.secret_key", ""},
		{"no public url", cfg(func(c *config.Config) { c.Server.PublicURL = "" }), "server.public_url", ""},
		{"plain LDAP without allow_plaintext", cfg(func(c *config.Config) { c.Directory.URLs = []string{"ldap://127.0.0.1:1"} }), "directory.urls", ""},
		{"certificate checks off", cfg(func(c *config.Config) { c.Directory.InsecureSkipVerify = true }), "directory.insecure_skip_verify", ""},
		{"placeholder secret key", cfg(func(c *config.Config) {
			c.Server.SecretKeyFile = write("placeholder.key", strings.Repeat("change-me-", 5))
		}), "server.secret_key", "change-me-"},
		{"SMTP in clear to a remote host", cfg(func(c *config.Config) { c.SMTP.Host, c.SMTP.TLS = "mail.example.org", config.SMTPTLSNone }), "smtp.tls", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out := run(strings.ReplaceAll(c.name, " ", "-"), c.cfg)
			if code != 2 {
				t.Fatalf("exit %d, want 2:\n%s", code, out)
			}
			// the one problem is the one introduced, named by its key
			var problems []string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "  ") {
					problems = append(problems, strings.TrimSpace(l))
				}
			}
			if len(problems) != 1 || !strings.HasPrefix(problems[0], c.key) {
				t.Fatalf("problems %q, want one about %s", problems, c.key)
			}
			for _, s := range []string{c.secret, "Bind-Secret-Value-1"} {
				if s != "" && strings.Contains(out, s) {
					t.Fatalf("the refusal prints a secret:\n%s", out)
				}
			}
		})
	}
}

// TestSlowClientsAreCut: a client that never finishes its headers is
// disconnected by the server's header timeout instead of holding a
// connection for ever (security notes K1).
func TestSlowClientsAreCut(t *testing.T) {
	parallel(t)
	const headerTimeout = 2 * time.Second
	srv := dirtest.StartOpenLDAP(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Server: "  read_header_timeout: 2s\n"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("POST /api/v1/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	// bounded wait: a server that never cuts the request fails here
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(conn)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server held a half-sent request for %v", took)
	}
	t.Logf("cut after %v (server.read_header_timeout %v)", took.Round(time.Millisecond), headerTimeout)
	// the cut is the header timeout's, not anything earlier: a server that
	// drops connections at once for any reason must not pass
	if took < headerTimeout-100*time.Millisecond {
		t.Fatalf("cut after %v, before server.read_header_timeout (%v): not the timeout that cut it", took, headerTimeout)
	}
	// Go's server answers nothing to a request whose header never ended,
	// or a 408: never a handler's answer
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408")) {
		t.Fatalf("answer to a half-sent request: %q", got)
	}
	// and the server still serves the next client
	e.must(200, e.api("GET", "/healthz", "", nil), "healthz after the cut")
}
