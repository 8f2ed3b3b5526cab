package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-ldap/ldap/v3"
)

// `latchkey demo` is the README's first command: the built binary, as an
// unprivileged user, with nothing on PATH (no slapd, no mailpit, no
// browser), driven through the whole journey by the API and by Chromium,
// with codes read off its outbox page.

// demoRun is one `latchkey demo` process.
type demoRun struct {
	t        *testing.T
	base     string
	ldapURL  string
	accounts map[string]string // username -> seeded password
	out      *lockedBuffer
	mu       sync.Mutex
	seen     int // the highest outbox message id already read
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startDemo(t *testing.T) *demoRun {
	t.Helper()
	// a home for the binary and the demo's temporary files that an
	// unprivileged user can use; PATH holds nothing
	root, err := os.MkdirTemp("", "latchkey-demo-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	for _, d := range []string{"bin", "tmp", "home", "empty"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(root, d), 0o777) // umask-proof
	}
	os.Chmod(root, 0o755)
	bin := filepath.Join(root, "bin", "latchkey")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "demo", "--listen", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + filepath.Join(root, "empty"), "HOME=" + filepath.Join(root, "home"), "TMPDIR=" + filepath.Join(root, "tmp")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		// the tests run as root; the demo must not need it
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &demoRun{t: t, accounts: map[string]string{}, out: &lockedBuffer{}}
	cmd.Stderr = d.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-exited:
			// Wait reports the cancelled context even for a clean exit: the exit code tells
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 0 {
				t.Errorf("latchkey demo did not stop cleanly on SIGINT: %v\n%s", err, tail(d.out.String(), 2000))
			}
			// every line it printed has been read (the reader sends on
			// exited after the last one)
			if !strings.Contains(d.out.String(), "Latchkey demo stopped: its directory, store and outbox are removed.") {
				t.Errorf("latchkey demo printed no closing line on SIGINT:\n%s", tail(d.out.String(), 500))
			}
		case <-time.After(15 * time.Second):
			t.Error("latchkey demo did not stop within 15 s of SIGINT")
		}
		// nothing is left behind in its temporary directory
		if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) != 0 {
			t.Errorf("the demo left %d files in TMPDIR", len(left))
		}
	})

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		openRE := regexp.MustCompile(`^\s+Open\s+(http://localhost:\d+)/\s*$`)
		dirRE := regexp.MustCompile(`^Accounts \(directory (ldaps://127\.0\.0\.1:\d+)\):`)
		acctRE := regexp.MustCompile(`^  (\S+)\s+(\S+)\s{2,}\S`)
		inAccounts, closed := false, false
		for sc.Scan() {
			line := sc.Text()
			d.out.Write([]byte(line + "\n"))
			if m := openRE.FindStringSubmatch(line); m != nil {
				d.base = m[1]
			}
			if m := dirRE.FindStringSubmatch(line); m != nil {
				d.ldapURL, inAccounts = m[1], true
				continue
			}
			if inAccounts {
				if m := acctRE.FindStringSubmatch(line); m != nil {
					d.accounts[m[1]] = m[2]
					continue
				}
				inAccounts = false
				if !closed {
					closed = true
					close(ready)
				}
			}
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("latchkey demo printed no URL and accounts within 60 s:\n%s", tail(d.out.String(), 3000))
	}
	if d.base == "" || d.ldapURL == "" || len(d.accounts) < 4 {
		t.Fatalf("latchkey demo's banner: base %q, directory %q, accounts %v\n%s", d.base, d.ldapURL, d.accounts, d.out)
	}
	if !strings.Contains(d.out.String(), "NOT FOR PRODUCTION") {
		t.Fatalf("no production warning:\n%s", d.out)
	}
	return d
}

// env is the API harness's view of the demo (no directory or mail server
// handles: everything is inside the demo process).
func (d *demoRun) env(t *testing.T) *env {
	return &env{t: t, base: d.base}
}

var (
	outboxItemRE = regexp.MustCompile(`(?s)<li>(.*?)</li>`)
	outboxToRE   = regexp.MustCompile(`to <strong>([^<]+)</strong>`)
	outboxCodeRE = regexp.MustCompile(`class="code">(\d{6,8})<`)
	outboxIDRE   = regexp.MustCompile(`Whole message (\d+)`)
)

// code waits for a message to `to` newer than any read before and returns
// its code, read off the outbox page like a visitor would.
func (d *demoRun) code(t *testing.T, to string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		res, err := httpClient.Get(d.base + "/demo/outbox")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("outbox: %d", res.StatusCode)
		}
		d.mu.Lock()
		for _, item := range outboxItemRE.FindAllStringSubmatch(string(b), -1) {
			m, id, c := outboxToRE.FindStringSubmatch(item[1]), outboxIDRE.FindStringSubmatch(item[1]), outboxCodeRE.FindStringSubmatch(item[1])
			if m == nil || id == nil || html.UnescapeString(m[1]) != to {
				continue
			}
			n, _ := strconv.Atoi(id[1])
			if n > d.seen && c != nil {
				d.seen = n
				d.mu.Unlock()
				return c[1]
			}
		}
		d.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no new code for %s in the outbox within 15 s", to)
	return ""
}

// bind proves a password against the demo's directory over LDAPS, without
// the gateway.
func (d *demoRun) bind(user, password string) error {
	c, err := ldap.DialURL(d.ldapURL, ldap.DialWithTLSConfig(&tls.Config{InsecureSkipVerify: true})) // #nosec G402 -- the demo's CA lives in its process; this only proves a password
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bind("uid="+user+",ou=people,dc=example,dc=org", password)
}

// lock presses the outbox page's "Lock this account" button over HTTP.
func (d *demoRun) lock(t *testing.T, user string) {
	t.Helper()
	client := &http.Client{Jar: newJar(), Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(d.base + "/demo/outbox")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no form token on the outbox page")
	}
	req, _ := http.NewRequest("POST", d.base+"/demo/lock", strings.NewReader(url.Values{"_csrf": {string(m[1])}, "username": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", d.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 303 {
		t.Fatalf("lock %s: %d", user, res.StatusCode)
	}
}

func TestDemo(t *testing.T) {
	parallel(t)
	d := startDemo(t)
	for _, who := range []string{"alice", "carol", "dave", "erin"} {
		if d.accounts[who] == "" {
			t.Fatalf("the demo does not print %s's password: %v", who, d.accounts)
		}
	}
	t.Run("api journey", func(t *testing.T) { demoAPIJourney(t, d) })
	t.Run("browser journey", func(t *testing.T) { demoBrowserJourney(t, d) })
}

func demoAPIJourney(t *testing.T, d *demoRun) {
	e := d.env(t)
	const user, addr = "carol", "carol.home@example.net"
	seeded := d.accounts[user]

	// register
	r := e.must(200, e.api("POST", "/api/v1/session", "", map[string]string{"username": user, "password": seeded}), "sign in")
	token := r.str("token")
	r = e.must(201, e.api("POST", "/api/v1/methods", token, map[string]string{"type": "email", "address": addr}), "add email")
	mid := r.str("id")
	e.must(200, e.api("POST", "/api/v1/methods/"+mid+"/verify", token, map[string]string{"code": d.code(t, addr)}), "verify email")
	r = e.must(201, e.api("POST", "/api/v1/methods", token, map[string]string{"type": "sms", "address": "+44 7700 900123"}), "add phone")
	e.must(200, e.api("POST", "/api/v1/methods/"+r.str("id")+"/verify", token, map[string]string{"code": d.code(t, "+447700900123")}), "verify phone")

	demoOffersEveryKind(t, d, e)

	// forget: reset with the email
	f, _ := e.startReset(user)
	if f.Required != 1 || len(f.Methods) != 2 {
		t.Fatalf("reset start: required %d, %d methods", f.Required, len(f.Methods))
	}
	e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": mid}), "send")
	e.must(200, e.verify(&f, mid, d.code(t, addr)), "verify")
	// the gateway's minimum is the demo directory's (10): a 9-character
	// password is refused by the one rule; the directory's own policy
	// still refuses the password in use (history)
	r = e.complete(f, "Tulip-42!")
	if r.Status != 422 || r.errCode() != "password_rejected" || !reflect.DeepEqual(violations(r), []string{"too_short"}) {
		t.Fatalf("a 9-character password: %d %s", r.Status, r.Body)
	}
	r = e.complete(f, seeded)
	if r.Status != 422 || r.errCode() != "password_rejected" || !reflect.DeepEqual(violations(r), []string{"directory_in_history"}) {
		t.Fatalf("the current password again (history): %d %s", r.Status, r.Body)
	}
	const reset = "Copper-Meadow-Violet-41"
	e.must(200, e.complete(f, reset), "complete")
	if err := d.bind(user, reset); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	if err := d.bind(user, seeded); err == nil {
		t.Fatal("the old password still binds")
	}
	e.must(200, e.api("POST", "/api/v1/session", "", map[string]string{"username": user, "password": reset}), "sign in with the new password")

	// unlock: the outbox page locks the account; the right password no longer binds
	d.lock(t, user)
	if err := d.bind(user, reset); err == nil {
		t.Fatal("a locked account still binds")
	}
	r = e.api("POST", "/api/v1/session", "", map[string]string{"username": user, "password": reset})
	if r.Status != 401 || r.errCode() != "sign_in_failed" {
		t.Fatalf("sign-in while locked: %d %s", r.Status, r.Body)
	}
	r = e.must(200, e.api("POST", "/api/v1/unlock", "", map[string]string{"username": user}), "unlock start")
	fid := r.str("flow")
	e.must(202, e.api("POST", "/api/v1/unlock/send", "", map[string]string{"flow": fid, "method": mid}), "unlock send")
	r = e.must(200, e.api("POST", "/api/v1/unlock/verify", "", map[string]string{"flow": fid, "method": mid, "code": d.code(t, addr)}), "unlock verify")
	e.must(200, e.api("POST", "/api/v1/unlock/complete", "", map[string]string{"flow": r.str("flow")}), "unlock")
	if err := d.bind(user, reset); err != nil {
		t.Fatalf("after unlock: %v", err)
	}

	// change, as the user: the directory's history applies, to the
	// password in use and to the one before it
	for _, again := range []string{reset, seeded} {
		r = e.api("POST", "/api/v1/change", "", map[string]string{"username": user, "old_password": reset, "new_password": again})
		if r.Status != 422 || r.errCode() != "password_rejected" || !reflect.DeepEqual(violations(r), []string{"directory_in_history"}) {
			t.Fatalf("a change to a password in history: %d %s", r.Status, r.Body)
		}
	}
	const changed = "Silver-Canyon-Maple-73"
	e.must(200, e.api("POST", "/api/v1/change", "", map[string]string{"username": user, "old_password": reset, "new_password": changed}), "change")
	if err := d.bind(user, changed); err != nil {
		t.Fatalf("after change: %v", err)
	}
	if err := d.bind(user, reset); err == nil {
		t.Fatal("the password before the change still binds")
	}

	// who may: erin is in no eligible group, root is excluded, dave needs two methods
	for _, who := range []string{"erin", "root"} {
		if pw := d.accounts[who]; pw != "" {
			r = e.api("POST", "/api/v1/session", "", map[string]string{"username": who, "password": pw})
			if r.Status != 403 || r.errCode() != "not_eligible" {
				t.Fatalf("%s signs in: %d %s", who, r.Status, r.Body)
			}
		}
	}
	r = e.must(200, e.api("POST", "/api/v1/session", "", map[string]string{"username": "dave", "password": d.accounts["dave"]}), "dave signs in")
	token = r.str("token")
	const daveAddr = "dave.home@example.net"
	r = e.must(201, e.api("POST", "/api/v1/methods", token, map[string]string{"type": "email", "address": daveAddr}), "dave adds an email")
	dmid := r.str("id")
	e.must(200, e.api("POST", "/api/v1/methods/"+dmid+"/verify", token, map[string]string{"code": d.code(t, daveAddr)}), "dave verifies")
	f, _ = e.startReset("dave")
	e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": dmid}), "dave send")
	r = e.must(200, e.verify(&f, dmid, d.code(t, daveAddr)), "dave verify")
	if rem, _ := r.JSON["remaining"].(float64); rem != 1 {
		t.Fatalf("dave's tier wants two methods: %s", r.Body)
	}
	if r = e.complete(f, "Amber-Forest-Quill-29"); r.Status != 409 || r.errCode() != "not_verified" {
		t.Fatalf("dave resets with one method of two: %d %s", r.Status, r.Body)
	}
}

// demoOffersEveryKind: the demo has all five kinds on (passkeys too: its
// public URL is http://localhost, a secure context for browsers): alice
// may start registering each, and then removes them.
func demoOffersEveryKind(t *testing.T, d *demoRun, e *env) {
	t.Helper()
	if !strings.HasPrefix(d.base, "http://localhost:") {
		t.Fatalf("the demo's URL %s: passkeys need a host name", d.base)
	}
	pw := d.accounts["alice"]
	tok := e.must(200, e.api("POST", "/api/v1/session", "", map[string]string{"username": "alice", "password": pw}), "alice signs in").str("token")
	var qs struct {
		Questions []struct{ ID string } `json:"questions"`
		Required  int                   `json:"required"`
	}
	if err := json.Unmarshal(e.must(200, e.api("GET", "/api/v1/questions", tok, nil), "the demo's questions").Body, &qs); err != nil || qs.Required < 1 || len(qs.Questions) < qs.Required {
		t.Fatalf("the demo's questions: %+v %v", qs, err)
	}
	answers := []map[string]string{}
	for i, q := range qs.Questions[:qs.Required] {
		answers = append(answers, map[string]string{"question": q.ID, "answer": fmt.Sprintf("a long answer number %d, as typed", i+1)})
	}
	var ids []string
	for _, body := range []any{
		map[string]string{"type": "totp"},
		map[string]string{"type": "webauthn"},
		map[string]any{"type": "questions", "answers": answers},
	} {
		r := e.must(201, e.api("POST", "/api/v1/methods", tok, body), fmt.Sprintf("alice adds %v", body))
		ids = append(ids, r.str("id"))
	}
	// she removes what she has (a passkey is stored only once its
	// credential is verified: its pending ceremony is not a method yet)
	var have []struct{ ID string }
	if err := json.Unmarshal(e.must(200, e.api("GET", "/api/v1/methods", tok, nil), "alice's methods").Body, &have); err != nil || len(have) == 0 {
		t.Fatalf("alice's methods after adding %v: %+v %v", ids, have, err)
	}
	for _, m := range have {
		e.must(204, e.api("DELETE", "/api/v1/methods/"+m.ID, tok, map[string]string{"password": pw}), "alice removes "+m.ID)
	}
	e.must(204, e.api("DELETE", "/api/v1/session", tok, nil), "alice signs out")
}

func demoBrowserJourney(t *testing.T, d *demoRun) {
	b := newBrowser(t, chromiumPath(t), d.base)
	const user, addr, newPass = "alice", "alice.home@example.net", "Harbor-Lantern-Ember-62"
	seeded := d.accounts[user]

	b.open("/", 200)
	b.mustSee("Forgot my password")
	if txt := b.text("body"); !strings.Contains(txt, "Demo, not for production") {
		t.Fatalf("no demo banner:\n%s", txt)
	}
	b.check("demo: home")
	b.open("/demo/outbox", 200)
	b.mustSee("Demo accounts", user, seeded)
	b.check("demo: outbox, empty")

	// register an email address, reading the code off the outbox
	b.open("/register", 200)
	b.typeInto("username", user)
	b.typeInto("password", seeded)
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.typeInto("email", addr)
	b.click(`form:has(input[name=type][value=email]) button[type=submit]`, 200, "")
	code := d.code(t, addr)
	b.typeInto("code", code)
	b.click(`form[action$="/verify"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("The method is verified.")
	b.open("/demo/outbox", 200)
	b.mustSee(code, addr)
	b.check("demo: outbox with a code")

	// forget, reset, and sign in with the new password
	b.open("/reset", 200)
	b.typeInto("username", user)
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.click(`ul.methods form button[type=submit]`, 200, "/reset/code")
	b.typeInto("code", d.code(t, addr))
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/password")
	b.typeInto("password", newPass)
	b.typeInto("confirm", newPass)
	b.click(`form[action="/reset/password"] button[type=submit]`, 200, "/reset/done")
	b.mustSee("Your password has been reset.")
	if err := d.bind(user, newPass); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	b.open("/register", 200)
	b.typeInto("username", user)
	b.typeInto("password", newPass)
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.click(`form[action="/register/signout"] button[type=submit]`, 200, "/")

	// lock on the outbox page, then unlock
	b.open("/demo/outbox", 200)
	if _, err := chromedp.Run(b.ctx, chromedp.SetValue(chromedp.ID("lock-username"), user)); err != nil {
		t.Fatal(err)
	}
	b.click(`form[action="/demo/lock"] button[type=submit]`, 200, "/demo/outbox")
	b.mustSee(user + " is locked now")
	b.check("demo: outbox, account locked")
	if err := d.bind(user, newPass); err == nil {
		t.Fatal("the locked account still binds")
	}
	b.open("/unlock", 200)
	b.typeInto("username", user)
	b.click(`form[action="/unlock"] button[type=submit]`, 200, "/unlock/methods")
	b.click(`ul.methods form button[type=submit]`, 200, "/unlock/code")
	b.typeInto("code", d.code(t, addr))
	b.click(`form[action="/unlock/verify"] button[type=submit]`, 200, "/unlock/complete")
	b.click(`form[action="/unlock/complete"] button[type=submit]`, 200, "/unlock/done")
	if err := d.bind(user, newPass); err != nil {
		t.Fatalf("after unlock: %v", err)
	}

	// change on /change: the directory refuses the seeded password (its
	// history), then takes a new one
	const changed = "Willow-Compass-Tide-58"
	b.open("/change", 200)
	b.check("demo: change")
	b.typeInto("username", user)
	b.typeInto("old", newPass)
	b.typeInto("new", seeded)
	b.typeInto("confirm", seeded)
	b.click(`form[action="/change"] button[type=submit]`, 422, "/change")
	b.mustError("You have used this password before.")
	b.check("demo: change refused by the directory")
	if err := d.bind(user, newPass); err != nil {
		t.Fatalf("a refused change changed the password: %v", err)
	}
	b.typeInto("old", newPass) // the username is kept, the passwords are not
	b.typeInto("new", changed)
	b.typeInto("confirm", changed)
	b.click(`form[action="/change"] button[type=submit]`, 200, "/change/done")
	b.mustSee("Your password has been changed.")
	b.check("demo: change done")
	if err := d.bind(user, changed); err != nil {
		t.Fatalf("the changed password does not bind: %v", err)
	}
	if err := d.bind(user, newPass); err == nil {
		t.Fatal("the password before the change still binds")
	}

	// unlocking an account that is not locked: after the proof the page
	// says so, offers no unlock, and points to a reset
	b.open("/unlock", 200)
	b.typeInto("username", user)
	b.click(`form[action="/unlock"] button[type=submit]`, 200, "/unlock/methods")
	b.click(`ul.methods form button[type=submit]`, 200, "/unlock/code")
	b.typeInto("code", d.code(t, addr))
	b.click(`form[action="/unlock/verify"] button[type=submit]`, 200, "/unlock/complete")
	b.mustSee("Your account is not locked, so there is nothing to unlock.", "reset your password")
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action="/unlock/complete"]').length`)); n != 0 {
		t.Fatal("an unlock is offered for an account that is not locked")
	}
	b.check("demo: unlock, not locked")

	// dave's tier needs two methods and he registered one email (the API
	// journey): b.tierJourney
	const daveAddr = "dave.home@example.net"
	e := d.env(t)
	tok := e.must(200, e.api("POST", "/api/v1/session", "", map[string]string{"username": "dave", "password": d.accounts["dave"]}), "dave signs in").str("token")
	var daves []map[string]any
	if err := json.Unmarshal(e.must(200, e.api("GET", "/api/v1/methods", tok, nil), "dave's methods").Body, &daves); err != nil || len(daves) != 1 {
		t.Fatalf("dave's methods: %v %v", daves, err)
	}
	b.tierJourney("dave", d.accounts["dave"], daves[0]["id"].(string), func() string { return d.code(t, daveAddr) }, "demo: dave's")
	t.Logf("demo in the browser: %d pages checked", b.pages)
}
