package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/blackbox"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// TestChecklist* attack the built binary over HTTP, with a real slapd and
// a real Samba AD DC behind it, mailpit for mail and the Twilio contract
// server for SMS, for the items of the security checklist
// (docs/security-checklist.md, from shared/notes/security.md) that the
// other black-box suites do not reach. Each subtest is named after the
// items it proves. Each TestChecklist<Topic> (one file each) starts its
// own directory per kind, mailbox and gateway through ckSetup, so any one
// runs alone: go test -run 'TestChecklistCodes$' ./e2e/. Within one, the
// subtests share that state and run in the order written.

// ---------------------------------------------------------------- setup

// carol's registration, made by ckSetup for every checklist test.
const (
	carolMail  = "carol.ck@example.net"
	carolPhone = "+44 7700 900111"
	carolE164  = "+447700900111"
)

// ckRun is one directory kind's state for a checklist test: its own
// directory, mailbox and gateway (every budget out of the way), with
// frank, grace, heidi, twin1 and twin2 in staff and carol registered with
// an email address and a phone.
type ckRun struct {
	srv                  *dirtest.Server
	stopDirectory        func() error
	mail                 *notifytest.Mailpit
	sms                  *notifytest.FakeTwilio
	box                  *ckBox
	e                    *ckGW
	isAD                 bool
	dom                  string
	pw                   func(string) string
	carolEmail, carolSMS string // carol's method ids
}

func ckSetup(t *testing.T, d ckDirectory) *ckRun {
	t.Helper()
	srv, stop := d.start(t)
	mail, sms := startMail(t)
	box := &ckBox{mail: mail, sms: sms, seen: map[string]bool{}}
	box.box, box.phone = blackbox.Mailbox{Mail: mail, Seen: box.seen}, blackbox.SMS{Twilio: sms, Seen: map[string]int{}}
	for _, u := range []string{"frank", "grace", "heidi", "twin1", "twin2"} {
		addToGroup(t, srv, u, "staff")
	}
	r := &ckRun{srv: srv, stopDirectory: stop, mail: mail, sms: sms, box: box,
		e:    ckGateway(t, srv, box, params{Limits: ckLimits(nil)}, nil),
		isAD: srv.Flavor == directory.ActiveDirectory, dom: ckDomain(srv), pw: srv.Password}
	_, r.carolEmail, r.carolSMS = r.e.register("carol", r.pw("carol"), carolMail, carolPhone)
	return r
}

// userFilter is a user filter of the directory's kind matching any of
// the attributes.
func (r *ckRun) userFilter(attrs ...string) string {
	var alts []string
	for _, a := range attrs {
		alts = append(alts, "("+a+"={username})")
	}
	or := alts[0]
	if len(alts) > 1 {
		or = "(|" + strings.Join(alts, "") + ")"
	}
	if r.isAD {
		return "(&(objectCategory=person)(objectClass=user)" + or + ")"
	}
	return "(&(objectClass=inetOrgPerson)" + or + ")"
}

// ckH3H4 is the last subtest of every checklist test: it checks the run's
// audit and scans its logs and notices (r.auditAndSecrets).
const ckH3H4 = "H3 H4 the audit has every event with its fields; no secret in logs or notices"

// ckAudit is what a checklist test's run must have left: the event types
// (type or type/outcome) its steps audit, at least so many secrets
// collected (codes, tokens, flow ids) and so many notices mailed.
type ckAudit struct {
	events           []string
	secrets, notices int
}

// ckEveryEvent: the event types the checklist tests together must show
// with their fields (TestChecklistAuditEventsCovered).
var ckEveryEvent = []string{"configuration.loaded", "sign_in/success", "sign_in/failed", "sign_in/not_eligible", "reauth/failed",
	"registration.method_added", "registration.method_verified/success", "registration.method_verified/failed", "registration.method_removed",
	"reset.started", "reset.code_sent", "reset.gate/passed", "reset.gate/failed", "reset.completed/success", "reset.completed/refused",
	"reset.completed/not_eligible", "reset.completed/not_verified", "reset.partial_failure", "unlock.started", "unlock.code_sent",
	"unlock.gate/passed", "unlock.completed/success", "change.completed/success", "change.completed/failed", "blocked/csrf"}

// TestChecklistAuditEventsCovered: every event type of ckEveryEvent is
// one some checklist test's run must show (its H3 H4 subtest fails
// without it), so the split suites together still see every one.
func TestChecklistAuditEventsCovered(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range []ckAudit{ckEventsEnumeration, ckEventsBudgets, ckEventsCodes, ckEventsMethods, ckEventsWeb, ckEventsInput, ckEventsWrites, ckEventsOutages} {
		for _, ev := range c.events {
			seen[ev] = true
		}
		if c.secrets < 1 {
			t.Error("a checklist test's run checks no secret")
		}
	}
	for _, ev := range ckEveryEvent {
		if !seen[ev] {
			t.Errorf("no checklist test must show %s", ev)
		}
	}
}

// auditAndSecrets (H3, H4): every audit event of the run's gateway has
// its UTC time, request id, client address, account id and outcome, the
// run shows the event types c names, and no password, code, token or flow
// id is in the logs or notices.
func (r *ckRun) auditAndSecrets(t *testing.T, c ckAudit) {
	e, srv, box, mail, sms, pw := r.e, r.srv, r.box, r.mail, r.sms, r.pw
	e.t = t
	types := map[string]bool{}
	var nSecrets, nNotices int
	defer func() { t.Logf("events %v, secrets %d, notices %d", types, nSecrets, nNotices) }()
	for _, ev := range e.audit() {
		typ, _ := ev["event"].(string)
		types[typ+"/"+fmt.Sprint(ev["outcome"])] = true
		types[typ] = true
		ts, _ := ev["time"].(string)
		if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || time.Since(tm) > time.Hour || time.Since(tm) < 0 {
			t.Fatalf("%s: time %q", typ, ts)
		}
		if o, _ := ev["outcome"].(string); o == "" {
			t.Fatalf("%s: no outcome", typ)
		}
		if typ == "configuration.loaded" {
			continue
		}
		if rid, _ := ev["request_id"].(string); len(rid) < 8 || ev["client_ip"] != "127.0.0.1" {
			t.Fatalf("%s: request id %v, client ip %v", typ, ev["request_id"], ev["client_ip"])
		}
		if _, ok := ev["account_id"]; !ok {
			t.Fatalf("%s: no account_id", typ)
		}
		if (ev["outcome"] == "success" || ev["outcome"] == "passed") && ev["account_id"] == "" && typ != "reset.code_sent" && typ != "unlock.code_sent" {
			t.Fatalf("%s succeeded without an account: %v", typ, ev)
		}
	}
	for _, want := range c.events {
		if !types[want] {
			t.Errorf("no %s event", want)
		}
	}
	// no password, code, token or flow id in the logs
	passwords := []string{"Orchid-Lantern-River-63", "Harbor-Kite-Meadow-77", "Grüße aus Köln", "Short-Pass-1!", "Wrong-Guess-7!", "Not-Carols-Password-1",
		srv.ServicePassword, twilioToken}
	for _, u := range dirtest.People {
		passwords = append(passwords, pw(u))
	}
	secrets := append(slices.Clone(e.secrets), box.codes...)
	nSecrets = len(secrets)
	if len(secrets) < c.secrets {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
	for _, f := range []string{e.log, e.env.audit} {
		b, _ := os.ReadFile(f)
		for _, s := range append(passwords, append(secrets, carolMail, "7700900111", "heidi.ck@example.net")...) {
			if s != "" && bytes.Contains(b, []byte(s)) {
				t.Fatalf("%s holds %q", filepath.Base(f), s)
			}
		}
	}
	// notices carry neither codes nor passwords
	list, err := mail.Search(context.Background(), `subject:"was"`)
	if err != nil {
		t.Fatal(err)
	}
	nNotices = len(list)
	if len(list) < c.notices {
		t.Fatalf("only %d notices", len(list))
	}
	for _, s := range list {
		if strings.Contains(s.Subject, "verification code") {
			continue
		}
		m := box.message(t, s.ID)
		for _, sec := range append(passwords, secrets...) {
			if sec != "" && strings.Contains(m.Text+m.HTML, sec) {
				t.Fatalf("notice %q holds %q", m.Subject, sec)
			}
		}
	}
	for _, m := range sms.Messages() {
		if strings.Contains(m.Body, "is your") {
			continue
		}
		if blackbox.CodeRE.MatchString(m.Body) {
			t.Fatalf("an SMS notice holds digits: %q", m.Body)
		}
	}
	// password fields are password inputs the browser may fill and
	// paste into, and the pages never carry a value for them
	inputs := regexp.MustCompile(`<input[^>]*name="(old_password|new_password|password|confirm)"[^>]*>`)
	for _, p := range []string{"/change", "/register"} {
		a := e.do("GET", p, nil, "")
		found := inputs.FindAll(a.body, -1)
		if len(found) == 0 {
			t.Fatalf("%s: no password inputs", p)
		}
		for _, in := range found {
			if !bytes.Contains(in, []byte(`type="password"`)) || !regexp.MustCompile(`autocomplete="(current|new)-password"`).Match(in) ||
				bytes.Contains(in, []byte("value=")) || bytes.Contains(in, []byte("onpaste")) {
				t.Fatalf("%s: %s", p, in)
			}
		}
	}
}

// ---------------------------------------------------------------- harness

// ckDirectory is a real directory kind whose server a test can also stop.
type ckDirectory struct {
	name  string
	start func(t *testing.T) (srv *dirtest.Server, stop func() error)
}

func ckDirectories() []ckDirectory {
	return []ckDirectory{
		{"OpenLDAP", func(t *testing.T) (*dirtest.Server, func() error) {
			for _, p := range []string{"slapd", "slaptest", "ldapadd", "ldapmodify"} {
				if _, err := exec.LookPath(p); err != nil {
					notifytest.SkipOrFail(t, "dirtest: %s not found on PATH (apt-get install slapd ldap-utils)", p)
				}
			}
			srv, stop, err := dirtest.RunOpenLDAP(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			stopOnce := func() { once.Do(stop) }
			t.Cleanup(stopOnce)
			return srv, func() error { stopOnce(); return nil }
		}},
		{"ActiveDirectory", func(t *testing.T) (*dirtest.Server, func() error) {
			srv := dirtest.StartSamba(t)
			return srv, func() error {
				b, err := os.ReadFile(filepath.Join(srv.Dir, "run", "samba.pid"))
				if err != nil {
					return err
				}
				pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil || pid <= 1 {
					return fmt.Errorf("the Samba pid file holds %q", b)
				}
				syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(50 * time.Millisecond)
				}
				if syscall.Kill(pid, 0) == nil {
					return fmt.Errorf("samba (pid %d) did not stop", pid)
				}
				return nil
			}
		}},
	}
}

// ckBox reads what mailpit and the Twilio server received, remembering the
// codes already read (unlike env.mailCode, it deletes nothing, so notices
// can be counted across steps).
type ckBox struct {
	mail  *notifytest.Mailpit
	sms   *notifytest.FakeTwilio
	seen  map[string]bool // the code mails read (box.Seen)
	codes []string        // every code read, for the log scans
	box   blackbox.Mailbox
	phone blackbox.SMS
}

// ckGW is a running gateway with the mailbox of its directory's run.
type ckGW struct {
	*env
	box *ckBox
}

// ckGateway starts a gateway; environ is set for the gateway process only
// (LATCHKEY_* variables override the harness's configuration file).
func ckGateway(t *testing.T, srv *dirtest.Server, box *ckBox, p params, environ map[string]string) *ckGW {
	t.Helper()
	p.Environ = environ
	return &ckGW{env: startGateway(t, srv, box.mail, box.sms, p), box: box}
}

// ckLimits is a limits: section with every budget out of the way except
// the ones given.
func ckLimits(over map[string]int) string {
	l := map[string]int{"starts_per_account": 100000, "starts_per_ip": 100000, "starts_total": 10000000,
		"sign_ins_per_ip": 100000, "notices_per_account": 100000, "sends_per_account": 100000, "sends_per_destination": 100000,
		"code_failures_per_account": 100000}
	for k, v := range over {
		l[k] = v
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	sb.WriteString("limits:\n")
	for _, k := range keys {
		fmt.Fprintf(&sb, "  %s: %d\n", k, l[k])
	}
	return sb.String()
}

// ckAnswer is one HTTP answer, redirects not followed.
type ckAnswer struct {
	status int
	hdr    http.Header
	body   []byte
	obj    map[string]any
	cook   []*http.Cookie
}

func (a ckAnswer) str(k string) string { return blackbox.Answer{JSON: a.obj}.Str(k) }

func (a ckAnswer) errCode() string { return blackbox.Answer{JSON: a.obj}.ErrCode() }

// methodIDs are the ids of the methods a flow answer offers.
func (a ckAnswer) methodIDs() []string {
	var out []string
	ms, _ := a.obj["methods"].([]any)
	for _, m := range ms {
		if mm, ok := m.(map[string]any); ok {
			id, _ := mm["id"].(string)
			out = append(out, id)
		}
	}
	return out
}

func (a ckAnswer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

var ckClient = &http.Client{Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends one request as given ("Host" in hdr sets the Host).
func (g *ckGW) do(method, path string, hdr map[string]string, body string) ckAnswer {
	g.t.Helper()
	a, err := (&blackbox.Client{Bases: []string{g.base}, HTTP: ckClient}).Request(method, path, hdr, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	return ckAnswer{status: a.Status, hdr: a.Header, body: a.Body, obj: a.JSON, cook: a.Cookies()}
}

// call sends a JSON body (already encoded) with an optional bearer token.
func (g *ckGW) call(method, path, token, body string) ckAnswer {
	g.t.Helper()
	hdr := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		hdr["Authorization"] = "Bearer " + token
	}
	return g.do(method, path, hdr, body)
}

func ckJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (g *ckGW) want(status int, a ckAnswer, what string) ckAnswer {
	g.t.Helper()
	if a.status != status {
		g.t.Fatalf("%s: %s, want %d", what, a, status)
	}
	return a
}

func (g *ckGW) signIn(user, pw string) string {
	g.t.Helper()
	a := g.want(200, g.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": user, "password": pw})), "sign in "+user)
	g.secrets = append(g.secrets, a.str("token"))
	return a.str("token")
}

func (g *ckGW) start(kind, user string) ckAnswer {
	g.t.Helper()
	a := g.want(200, g.call("POST", "/api/v1/"+kind, "", ckJSON(map[string]string{"username": user})), kind+" start "+user)
	g.secrets = append(g.secrets, a.str("flow"))
	return a
}

func (g *ckGW) send(kind, flow, method string) ckAnswer {
	g.t.Helper()
	return g.call("POST", "/api/v1/"+kind+"/send", "", ckJSON(map[string]string{"flow": flow, "method": method}))
}

// verify submits a code; on success it returns the flow's new id.
func (g *ckGW) verify(kind, flow, method, code string) (ckAnswer, string) {
	g.t.Helper()
	a := g.call("POST", "/api/v1/"+kind+"/verify", "", ckJSON(map[string]string{"flow": flow, "method": method, "code": code}))
	if a.status == 200 {
		g.secrets = append(g.secrets, a.str("flow"))
		return a, a.str("flow")
	}
	return a, flow
}

// proveEmail sends a code to the method and verifies it; the new flow id.
func (g *ckGW) proveEmail(kind, flow, method, addr string) string {
	g.t.Helper()
	g.want(202, g.send(kind, flow, method), "send")
	a, next := g.verify(kind, flow, method, g.box.code(g.t, addr))
	g.want(200, a, "verify")
	return next
}

func (g *ckGW) complete(flow, pw string) ckAnswer {
	g.t.Helper()
	return g.call("POST", "/api/v1/reset/complete", "", ckJSON(map[string]string{"flow": flow, "password": pw}))
}

// register signs user in and registers (and verifies) an email address
// and, when phone is set, a mobile number.
func (g *ckGW) register(user, pw, email, phone string) (token, emailID, smsID string) {
	g.t.Helper()
	token = g.signIn(user, pw)
	a := g.want(201, g.call("POST", "/api/v1/methods", token, ckJSON(map[string]string{"type": "email", "address": email})), "add email")
	emailID = a.str("id")
	g.want(200, g.call("POST", "/api/v1/methods/"+emailID+"/verify", token, ckJSON(map[string]string{"code": g.box.code(g.t, email)})), "verify email")
	if phone != "" {
		a = g.want(201, g.call("POST", "/api/v1/methods", token, ckJSON(map[string]string{"type": "sms", "address": phone})), "add phone")
		smsID = a.str("id")
		g.want(200, g.call("POST", "/api/v1/methods/"+smsID+"/verify", token, ckJSON(map[string]string{"code": g.box.smsCode(g.t, notifytest.E164(phone))})), "verify phone")
	}
	return token, emailID, smsID
}

// list returns the messages to addr whose subject contains subject (any
// subject when ""), newest first.
func (x *ckBox) list(t testing.TB, addr, subject string) []notifytest.MessageSummary {
	t.Helper()
	l, err := x.box.List(context.Background(), addr, subject)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitMail waits until at least n messages to addr with subject are there.
func (x *ckBox) waitMail(t testing.TB, addr, subject string, n int) []notifytest.MessageSummary {
	t.Helper()
	ctx, cancel := waitCtx()
	defer cancel()
	l, err := x.box.WaitList(ctx, addr, subject, n)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (x *ckBox) message(t testing.TB, id string) *notifytest.Message {
	t.Helper()
	m, err := x.mail.Message(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// code waits for a code mailed to addr that was not read before.
func (x *ckBox) code(t testing.TB, addr string) string {
	t.Helper()
	ctx, cancel := waitCtx()
	defer cancel()
	c, err := x.box.Code(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	x.codes = append(x.codes, c)
	return c
}

// smsTo lists the SMS the Twilio server accepted for number whose body
// contains sub.
func (x *ckBox) smsTo(number, sub string) []notifytest.TwilioMessage { return x.phone.To(number, sub) }

// smsCode waits for a code sent by SMS to number that was not read before.
func (x *ckBox) smsCode(t testing.TB, number string) string {
	t.Helper()
	ctx, cancel := waitCtx()
	defer cancel()
	c, err := x.phone.Code(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	x.codes = append(x.codes, c)
	return c
}

// audit reads the gateway's audit lines.
func (g *ckGW) audit() []map[string]any {
	g.t.Helper()
	return g.auditEvents()
}

// events are the audit events of a type (and outcome, unless "").
func (g *ckGW) events(typ, outcome string) []map[string]any {
	var out []map[string]any
	for _, ev := range g.audit() {
		if ev["event"] == typ && (outcome == "" || ev["outcome"] == outcome) {
			out = append(out, ev)
		}
	}
	return out
}

func (g *ckGW) logText() string {
	b, err := os.ReadFile(g.log)
	if err != nil {
		g.t.Fatal(err)
	}
	return string(b)
}

// ckBrowser is a web client that keeps its cookies itself (the cookies of a
// gateway whose public URL is https are Secure, which a cookie jar would not
// send over the loopback's plain HTTP).
type ckBrowser struct {
	g       *ckGW
	cookies map[string]string
	csrf    string
}

func (g *ckGW) browser() *ckBrowser { return &ckBrowser{g: g, cookies: map[string]string{}} }

var ckCSRFRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func (b *ckBrowser) do(method, path string, form url.Values, hdr map[string]string) ckAnswer {
	b.g.t.Helper()
	h := map[string]string{}
	body := ""
	if form != nil {
		body = form.Encode()
		h["Content-Type"] = "application/x-www-form-urlencoded"
	}
	var ck []string
	for k, v := range b.cookies {
		ck = append(ck, k+"="+v)
	}
	sort.Strings(ck)
	if len(ck) > 0 {
		h["Cookie"] = strings.Join(ck, "; ")
	}
	for k, v := range hdr {
		h[k] = v
	}
	a := b.g.do(method, path, h, body)
	for _, c := range a.cook {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return a
}

func (b *ckBrowser) get(path string) ckAnswer { b.g.t.Helper(); return b.do("GET", path, nil, nil) }

// token is this browser's form token (read from the reset page once).
func (b *ckBrowser) token() string {
	b.g.t.Helper()
	if b.csrf == "" {
		m := ckCSRFRE.FindSubmatch(b.get("/reset").body)
		if m == nil {
			b.g.t.Fatal("no form token on /reset")
		}
		b.csrf = string(m[1])
	}
	return b.csrf
}

// post submits a form the way the page would, with the form token.
func (b *ckBrowser) post(path string, form url.Values, hdr map[string]string) ckAnswer {
	b.g.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("_csrf", b.token())
	return b.do("POST", path, f, hdr)
}

// ckWithout removes the per-request values (flow ids, request ids) from an
// answer, so that two answers can be compared byte for byte.
var ckNonceRE = regexp.MustCompile(`"(flow|request_id)":"[^"]*"`)

func ckWithout(b []byte) string { return string(ckNonceRE.ReplaceAll(b, []byte(`"$1":""`))) }

// ckShape describes a JSON value's structure: object keys, element shapes.
func ckShape(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+":"+ckShape(x[k]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		return "[" + ckShape(x[0]) + "]"
	case string:
		return "s"
	case float64:
		return "n"
	case bool:
		return "b"
	case nil:
		return "null"
	}
	return "?"
}

func ckHeaderNames(h http.Header) string {
	var n []string
	for k := range h {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

func ckDomain(srv *dirtest.Server) string {
	if srv.Flavor == directory.ActiveDirectory {
		return "example.test"
	}
	return "example.org"
}

// ckKey is an address and a subject to count messages by.
type ckKey struct{ addr, subject string }

func (x *ckBox) counts(t testing.TB, keys ...ckKey) map[ckKey]int {
	t.Helper()
	m := map[ckKey]int{}
	for _, k := range keys {
		m[k] = len(x.list(t, k.addr, k.subject))
	}
	return m
}

// noNewMail waits a moment for asynchronous sending and fails if a message
// arrived beyond the counts in before.
func (x *ckBox) noNewMail(t testing.TB, before map[ckKey]int, what string) {
	t.Helper()
	time.Sleep(700 * time.Millisecond)
	for k, n := range before {
		if got := len(x.list(t, k.addr, k.subject)); got != n {
			t.Fatalf("%s: %d new message(s) to %s about %q", what, got-n, k.addr, k.subject)
		}
	}
}
