package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/blackbox"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// The browser suite drives the HTML pages in headless Chromium (Debian's
// chromium-headless-shell or chromium package, or CHROMIUM_BIN) with chromedp, and runs axe-core
// (vendored in testdata/axe-core) plus a phone-width layout check on every
// page it visits. LATCHKEY_E2E_SCREENSHOTS=DIR saves a desktop and a phone
// screenshot of every page there.

const (
	axeVersion = "4.14.1"
	axePath    = "testdata/axe-core/axe.min.js"
	// stepTimeout bounds one step: a click and the page load it causes,
	// typing into a field, reading a text.
	stepTimeout = 30 * time.Second
)

func TestBrowserOpenLDAP(t *testing.T) {
	parallel(t)
	runBrowserSuite(t, func(t testing.TB) *dirtest.Server { return dirtest.StartOpenLDAP(t) })
}

func TestBrowserActiveDirectory(t *testing.T) {
	parallel(t)
	runBrowserSuite(t, dirtest.StartSamba)
}

// chromiumPath finds the browser: CHROMIUM_BIN, else Chromium's headless
// shell (Debian's chromium-headless-shell, made for automation), else the
// full chromium on PATH. The headless shell has no browser window to run:
// TestBrowserOpenLDAP took 4.9 s of CPU with it, 13.8 s with the full
// browser (whose headless mode keeps WebUI renderers for a window nobody
// sees), and 17 s instead of 22 s.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			notifytest.SkipOrFail(t, "browser: CHROMIUM_BIN=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	notifytest.SkipOrFail(t, "browser: neither chromium-headless-shell nor chromium is on PATH and CHROMIUM_BIN is not set (apt-get install chromium-headless-shell)")
	return ""
}

// browser is one headless Chromium with a fresh profile, and the checks run
// on every page.
type browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	axe    string
	shots  string
	pages  int
	axeDur time.Duration
	// scripts are the scripts the current page may load (only the
	// passkey pages load one: /static/webauthn.js)
	scripts []string
}

// newBrowser gives the test a fresh browser context (its own cookies,
// storage and tabs, like a new incognito window) in the package's one
// headless Chromium, started by the first test that needs it and stopped by
// TestMain: a context costs milliseconds, a browser start seconds.
func newBrowser(t *testing.T, exe, base string) *browser {
	t.Helper()
	src, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatalf("axe-core is vendored in e2e/%s: %v", axePath, err)
	}
	root := sharedChromium(t, exe)
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	ctx, tcancel := context.WithTimeout(ctx, 4*time.Minute)
	// closes the test's tab and disposes of its browser context
	t.Cleanup(func() { tcancel(); cancel() })
	b := &browser{t: t, ctx: ctx, base: base, axe: string(src), shots: os.Getenv("LATCHKEY_E2E_SCREENSHOTS")}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("a new browser context in %s: %v", exe, err)
	}
	return b
}

// chromium is the package's one headless Chromium (sharedChromium).
var chromium struct {
	mu     sync.Mutex
	ctx    context.Context // its first tab: cancelling it stops the browser
	cancel func()
	dir    string
	exe    string
}

// sharedChromium starts the package's Chromium on first use and returns
// the context new browser contexts are made from.
func sharedChromium(t *testing.T, exe string) context.Context {
	t.Helper()
	chromium.mu.Lock()
	defer chromium.mu.Unlock()
	if chromium.ctx != nil {
		if chromium.ctx.Err() == nil {
			return chromium.ctx
		}
		// the browser died (a crash): start another
		chromium.cancel()
		os.RemoveAll(chromium.dir)
		chromium.ctx = nil
	}
	tmp, err := os.MkdirTemp("", "latchkey-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // the suites run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(tmp, "profile")),
		chromedp.Env("TMPDIR="+tmp), // else every run leaves /tmp/org.chromium.Chromium.* behind
		chromedp.WindowSize(1280, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	// the browser outlives the test that started it: its errors go to
	// the process's log, not to that test's
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(log.Printf))
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		os.RemoveAll(tmp)
		t.Fatalf("starting %s: %v", exe, err)
	}
	t.Logf("browser started in %v", time.Since(start).Round(time.Millisecond))
	chromium.ctx, chromium.dir, chromium.exe = ctx, tmp, exe
	chromium.cancel = func() { cancel(); acancel() }
	return ctx
}

// stopChromium stops the package's Chromium, if one was started (TestMain).
func stopChromium() {
	chromium.mu.Lock()
	defer chromium.mu.Unlock()
	if chromium.ctx != nil {
		chromium.cancel()
		os.RemoveAll(chromium.dir)
		chromium.ctx = nil
	}
}

// open loads path and checks the status of the final response.
func (b *browser) open(path string, status int) {
	b.t.Helper()
	res, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	if res.Status != int64(status) {
		b.t.Fatalf("GET %s: status %d, want %d", path, res.Status, status)
	}
}

// click clicks the element the CSS selector sel selects, waits for the page
// it leads to, and checks the status of that page (after any redirect) and
// its path (unless path is "").
func (b *browser) click(sel string, status int, path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	click := chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)
	res, err := chromedp.RunResponse(ctx, click)
	if err != nil {
		state, serr := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => {
		  const e = document.querySelector(`+jsString(sel)+`);
		  const r = e && e.getBoundingClientRect();
		  return location.pathname + ' window ' + innerWidth + 'x' + innerHeight + ' scale ' + visualViewport.scale +
		    ' scroll ' + scrollX + ',' + scrollY + ' element ' + (r ? JSON.stringify(r) : 'missing');
		})()`))
		loc, lerr := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("click %s: %v (page: %s %v; location %s %v)", sel, err, state, serr, loc, lerr)
	}
	if res.Status != int64(status) {
		hint := ""
		if res.Status == 403 && status != 403 {
			hint = "; if the gateway log says \"foreign origin\", its CSRF check refuses what Chromium sends:" +
				" under Referrer-Policy: no-referrer a page's own form posts carry \"Origin: null\" with Sec-Fetch-Site: same-origin"
		}
		b.t.Fatalf("click %s: %s answered %d, want %d%s", sel, res.URL, res.Status, status, hint)
	}
	if got := b.path(); path != "" && got != path {
		b.t.Fatalf("click %s: at %s, want %s", sel, got, path)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// path is the path of the current page, without the query.
func (b *browser) path() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.Path
}

// typeInto types text into the (empty) field with the given id.
func (b *browser) typeInto(id, text string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID(id), text, chromedp.NodeVisible)); err != nil {
		b.t.Fatalf("typing into #%s: %v", id, err)
	}
}

func (b *browser) text(sel chromedp.CSS) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(sel, chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// mainText is what the page's main landmark says.
func (b *browser) mainText() string {
	b.t.Helper()
	return b.text("main")
}

func (b *browser) mustSee(want ...string) {
	b.t.Helper()
	txt := b.mainText()
	for _, w := range want {
		if !strings.Contains(txt, w) {
			b.t.Fatalf("%s: %q not on the page:\n%s", b.path(), w, txt)
		}
	}
}

// errorText is the text of the page's alert, or "" when it shows none.
func (b *browser) errorText() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
		`(() => { const e = document.querySelector('main .error[role=alert]'); return e ? e.innerText : ''; })()`))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// mustError checks that the page shows an alert that says want, and that
// its title starts with "Error:".
func (b *browser) mustError(want string) {
	b.t.Helper()
	got := b.errorText()
	title, err := chromedp.Run(b.ctx, chromedp.Title())
	if err != nil {
		b.t.Fatal(err)
	}
	if !strings.Contains(got, want) || !strings.HasPrefix(title, "Error: ") {
		b.t.Fatalf("%s: title %q, alert %q: want an alert saying %q and a title starting with \"Error: \"", b.path(), title, got, want)
	}
}

// ---------------------------------------------------------------- checks

type axeNode struct {
	HTML    string `json:"html"`
	Target  string `json:"target"`
	Summary string `json:"summary"`
}

type axeViolation struct {
	ID      string    `json:"id"`
	Impact  string    `json:"impact"`
	Help    string    `json:"help"`
	HelpURL string    `json:"helpUrl"`
	Nodes   []axeNode `json:"nodes"`
}

type axeResult struct {
	Version    string         `json:"version"`
	Violations []axeViolation `json:"violations"`
	Incomplete []axeViolation `json:"incomplete"`
}

// axeRun reduces axe's answer to plain strings in the page: node targets
// can be nested arrays.
const axeRun = `(async () => {
  const r = await axe.run(document, {
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
    resultTypes: ['violations', 'incomplete'],
  });
  const slim = list => list.map(v => ({
    id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({html: n.html, target: JSON.stringify(n.target), summary: n.failureSummary || ''})),
  }));
  return {version: axe.version, violations: slim(r.violations), incomplete: slim(r.incomplete)};
})()`

// runAxe injects axe-core through CDP (the page's CSP allows no script of
// its own) and runs it on the current page.
func (b *browser) runAxe() axeResult {
	b.t.Helper()
	start := time.Now()
	ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](b.axe+"\n;typeof axe === 'object'"))
	if err != nil || !ok {
		b.t.Fatalf("injecting axe-core: %v", err)
	}
	r, err := chromedp.Run(b.ctx, chromedp.Evaluate[axeResult](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe.run: %v", err)
	}
	b.axeDur += time.Since(start)
	if r.Version != axeVersion {
		b.t.Fatalf("axe-core %s ran, want %s", r.Version, axeVersion)
	}
	return r
}

func formatAxe(vs []axeViolation) string {
	var sb strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&sb, "  [%s] %s: %s\n      %s\n", v.Impact, v.ID, v.Help, v.HelpURL)
		for _, n := range v.Nodes {
			fmt.Fprintf(&sb, "      - %s\n        at %s\n", n.HTML, n.Target)
			for _, line := range strings.Split(strings.TrimSpace(n.Summary), "\n") {
				if line != "" {
					fmt.Fprintf(&sb, "          %s\n", strings.TrimSpace(line))
				}
			}
		}
	}
	return sb.String()
}

type layout struct {
	Width       int      `json:"width"`
	InnerWidth  int      `json:"innerWidth"`
	ScrollWidth int      `json:"scrollWidth"`
	Wide        []string `json:"wide"`
}

// measure reports the page's width, how wide its content is, and the
// elements that stick out of the viewport.
const measure = `(() => {
  const de = document.documentElement, w = de.clientWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > w + 0.5 || r.left < -0.5)) {
      wide.push(el.outerHTML.replace(/\s+/g, ' ').slice(0, 160) + ' [left ' + Math.round(r.left) + ', right ' + Math.round(r.right) + ']');
    }
  }
  return {width: w, innerWidth: window.innerWidth,
          scrollWidth: Math.max(de.scrollWidth, document.body.scrollWidth), wide: wide.slice(0, 8)};
})()`

// phoneLayout lays the page out on a phone-sized screen and reports it.
func (b *browser) phoneLayout(width int64) (layout, []byte) {
	b.t.Helper()
	desktop, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`innerWidth`))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(width, 800, chromedp.EmulateMobile, chromedp.EmulatePortrait)); err != nil {
		b.t.Fatal(err)
	}
	defer func() {
		if _, err := chromedp.Call(b.ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
			b.t.Fatal(err)
		}
		// The command returns before the page is laid out again; a click
		// before that would aim at where the element was on the phone.
		w, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](fmt.Sprintf(`new Promise(done => {
		  const t0 = performance.now();
		  const tick = () => (innerWidth === %d || performance.now() - t0 > 5000)
		    ? requestAnimationFrame(() => requestAnimationFrame(() => done(innerWidth)))
		    : requestAnimationFrame(tick);
		  tick();
		})`, desktop), chromedp.EvalAwaitPromise))
		if err != nil || w != desktop {
			b.t.Fatalf("the page did not return to %d px after the phone check: %d %v", desktop, w, err)
		}
	}()
	l, err := chromedp.Run(b.ctx, chromedp.Evaluate[layout](measure))
	if err != nil {
		b.t.Fatal(err)
	}
	var shot []byte
	if b.shots != "" {
		if shot, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); err != nil {
			b.t.Fatal(err)
		}
	}
	return l, shot
}

func (l layout) problem(width int64) string {
	if l.InnerWidth == int(width) && l.Width == int(width) && l.ScrollWidth <= l.Width && len(l.Wide) == 0 {
		return ""
	}
	return fmt.Sprintf("at %d px wide the page is %d px (viewport %d, window %d); sticking out:\n    %s",
		width, l.ScrollWidth, l.Width, l.InnerWidth, strings.Join(l.Wide, "\n    "))
}

// waitLoaded waits (up to 30 s) until the current page has loaded with
// everything it links to (document.readyState "complete": the load event,
// which waits for stylesheets).
func (b *browser) waitLoaded(where string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		state, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.readyState`))
		if err == nil && state == "complete" {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: not loaded after 30 s (readyState %q, %v)", where, state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type pageFacts struct {
	Scripts []string `json:"scripts"`
	Rules   int      `json:"rules"`
	Lang    string   `json:"lang"`
	Margin  string   `json:"margin"`
}

// check runs every page check on the current page: no script, the
// stylesheet applied, axe-core without violations, and no horizontal
// scrolling at 375 and 320 px (WCAG 1.4.10 reflow).
func (b *browser) check(name string) {
	b.t.Helper()
	b.pages++
	where := fmt.Sprintf("page %q (%s)", name, b.path())
	// The page's text may be there before its stylesheet (a CI run under
	// load saw the passkey page with no CSS rules yet): the facts are read
	// once the page has loaded whole.
	b.waitLoaded(where)
	f, err := chromedp.Run(b.ctx, chromedp.Evaluate[pageFacts](`({
	  scripts: Array.from(document.scripts).map(s => s.src || 'inline'),
	  rules: Array.from(document.styleSheets).reduce((n, s) => n + s.cssRules.length, 0),
	  lang: document.documentElement.lang,
	  margin: getComputedStyle(document.body).marginTop})`))
	if err != nil {
		b.t.Fatal(err)
	}
	if !slices.Equal(f.Scripts, b.scripts) || f.Rules == 0 || f.Margin != "0px" || f.Lang == "" {
		b.t.Errorf("%s: scripts %q, CSS rules %d, body margin %s, lang %q: want scripts %q and style.css applied",
			where, f.Scripts, f.Rules, f.Margin, f.Lang, b.scripts)
	}
	if b.shots != "" {
		b.screenshot(name, "desktop", nil)
	}
	r := b.runAxe()
	if len(r.Violations) > 0 {
		b.t.Errorf("axe-core %s: %d violation(s) on %s:\n%s", r.Version, len(r.Violations), where, formatAxe(r.Violations))
	}
	if len(r.Incomplete) > 0 {
		b.t.Logf("axe-core: %d result(s) to review by hand on %s:\n%s", len(r.Incomplete), where, formatAxe(r.Incomplete))
	}
	for _, w := range []int64{375, 320} {
		l, shot := b.phoneLayout(w)
		if p := l.problem(w); p != "" {
			b.t.Errorf("%s: %s", where, p)
		}
		if shot != nil {
			b.screenshot(name, fmt.Sprintf("phone%d", w), shot)
		}
	}
}

func (b *browser) screenshot(name, kind string, png []byte) {
	b.t.Helper()
	if png == nil {
		var err error
		if png, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); err != nil {
			b.t.Fatal(err)
		}
	}
	dir := filepath.Join(b.shots, strings.ReplaceAll(b.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	file := fmt.Sprintf("%02d-%s-%s.png", b.pages, strings.NewReplacer(" ", "-", ":", "", "(", "", ")", "", "'", "").Replace(name), kind)
	if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// selfTest shows that the checks can fail: a control without a label and
// an element wider than a phone, added to the current page.
func (b *browser) selfTest() {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Evaluate[chromedp.Void](`(() => {
	  const i = document.createElement('input'); i.id = 'axe-self-test'; document.querySelector('main').append(i);
	  const d = document.createElement('div'); d.id = 'wide-self-test'; d.style.width = '600px'; d.textContent = 'wide'; document.querySelector('main').append(d);
	})()`)); err != nil {
		b.t.Fatal(err)
	}
	r := b.runAxe()
	found := false
	for _, v := range r.Violations {
		for _, n := range v.Nodes {
			found = found || (v.ID == "label" && strings.Contains(n.HTML, "axe-self-test"))
		}
	}
	if !found {
		b.t.Fatalf("axe-core did not report an input without a label: %s", formatAxe(r.Violations))
	}
	l, _ := b.phoneLayout(375)
	if l.problem(375) == "" || len(l.Wide) == 0 || !strings.Contains(strings.Join(l.Wide, " "), "wide-self-test") {
		b.t.Fatalf("the layout check did not notice a 600 px element at 375 px: %+v", l)
	}
}

// ---------------------------------------------------------------- the suite

func runBrowserSuite(t *testing.T, startDir func(testing.TB) *dirtest.Server) {
	exe := chromiumPath(t)
	t0 := time.Now()
	srv := startDir(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{})
	t.Logf("directory, mail, SMS and gateway ready in %v", time.Since(t0).Round(time.Millisecond))

	t1 := time.Now()
	b := newBrowser(t, exe, e.base)
	const (
		email    = "carol.home@example.net"
		phone    = "+44 7700 900003"
		e164     = "+447700900003"
		newPass  = "Amber-Harbor-Lantern-58"
		otherPwd = "Amber-Harbor-Lantern-59"
	)

	// The checks themselves work.
	b.open("/", 200)
	b.check("home")
	b.selfTest()

	// ------------------------------------------------ registration
	b.open("/", 200)
	b.click(`main a[href="/register"]`, 200, "/register")
	b.check("sign in")

	b.typeInto("username", "carol")
	b.typeInto("password", "not-carols-password")
	b.click(`form[action="/register"] button[type=submit]`, 401, "/register")
	b.mustError("The username or password is incorrect")
	b.check("sign in: wrong password")

	// the username stays, the password does not
	if v, _ := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("username"))); v != "carol" {
		t.Fatalf("username after a failed sign-in: %q", v)
	}
	b.typeInto("password", srv.Password("carol"))
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("Register at least one recovery method", "You have no recovery methods yet.")
	b.check("methods: none yet")

	// an email address
	b.typeInto("email", email)
	b.click(`form:has(input[name=type][value=email]) button[type=submit]`, 200, "")
	// (the path holds the method id; check its shape instead)
	verifyPath := b.path()
	if !strings.HasPrefix(verifyPath, "/register/methods/") || !strings.HasSuffix(verifyPath, "/verify") {
		t.Fatalf("after adding an email: at %s", verifyPath)
	}
	code := e.mailCode(email)
	b.mustSee("We sent a code to")
	if strings.Contains(b.mainText(), email) {
		t.Fatalf("the verify page shows the full address")
	}
	b.check("verify email")

	b.typeInto("code", wrongCode(code))
	b.click(`form[action$="/verify"] button[type=submit]`, 422, verifyPath)
	b.mustError("That code is not valid")
	b.check("verify email: wrong code")
	b.typeInto("code", code)
	b.click(`form[action$="/verify"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("The method is verified.", "Verified")
	b.check("methods: email verified")

	// a mobile number: first one the gateway refuses, then hers
	b.typeInto("phone", "+44 12")
	b.click(`form:has(input[name=type][value=sms]) button[type=submit]`, 422, "/register/methods")
	b.mustError("Enter a mobile number in international format")
	b.check("methods: invalid phone")
	b.typeInto("phone", phone)
	b.click(`form:has(input[name=type][value=sms]) button[type=submit]`, 200, "")
	if p := b.path(); !strings.HasPrefix(p, "/register/methods/") || p == verifyPath {
		t.Fatalf("after adding a phone: at %s", p)
	}
	code = e.smsCode(e164)
	b.mustSee("Enter it to confirm this number is yours")
	b.check("verify phone")
	phonePath := b.path()
	// back to the list, where the number waits for its code, and back again
	b.click(`main a[href="/register/methods"]`, 200, "/register/methods")
	b.mustSee("Not verified", "Enter the code for this method")
	b.check("methods: phone not verified")
	b.click(`main a[href$="/verify"]`, 200, phonePath)
	b.typeInto("code", code)
	b.click(`form[action$="/verify"] button[type=submit]`, 200, "/register/methods")
	rows, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('ul.methods > li')).map(li => li.innerText)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || !strings.Contains(rows[0]+rows[1], "Email") || !strings.Contains(rows[0]+rows[1], "Mobile phone") ||
		strings.Count(rows[0]+rows[1], "Not verified") != 0 || strings.Count(rows[0]+rows[1], "Verified") != 2 {
		t.Fatalf("methods after registering: %q", rows)
	}
	if txt := b.mainText(); strings.Contains(txt, email) || strings.Contains(txt, "7700 900003") || strings.Contains(txt, "7700900003") {
		t.Fatalf("the methods page shows a full address or number:\n%s", txt)
	}
	b.check("methods: email and phone verified")
	t.Logf("registration done in %v", time.Since(t1).Round(time.Millisecond))

	// ------------------------------------------------ reset
	t2 := time.Now()
	b.click(`form[action="/register/signout"] button[type=submit]`, 200, "/")
	b.click(`main a[href="/register"]`, 200, "/register")
	if got := b.text(`main a[href="/reset"]`); got != "Can't access your account?" {
		t.Fatalf("reset link says %q", got)
	}
	b.click(`main a[href="/reset"]`, 200, "/reset")
	b.check("reset: username")
	// a mistyped name: the page names it, and "Start again" goes back
	b.typeInto("username", "carlo")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee("Resetting the password of carlo. Not you? Start again")
	b.check("reset: a mistyped name")
	b.click(`main p.who a[href="/reset"]`, 200, "/reset")
	if v, _ := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("username"))); v != "" {
		t.Fatalf("start again keeps the mistyped name: %q", v)
	}
	b.typeInto("username", "carol")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee("Resetting the password of carol. Not you? Start again")
	rows, err = chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('ul.methods > li')).map(li => li.innerText)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || !strings.Contains(strings.Join(rows, "\n"), "Email to") || !strings.Contains(strings.Join(rows, "\n"), "Text message to") {
		t.Fatalf("reset methods: %q", rows)
	}
	if txt := b.mainText(); strings.Contains(txt, email) || strings.Contains(txt, "900003") || !strings.Contains(txt, "•") {
		t.Fatalf("the reset methods are not masked:\n%s", txt)
	}
	b.check("reset: choose a method")
	emailMethod, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => {
	  const li = Array.from(document.querySelectorAll('ul.methods > li')).find(li => li.innerText.trim().startsWith('Email to'));
	  const m = li && li.querySelector('form input[name=method]');
	  return m ? m.value : '';
	})()`))
	if err != nil || emailMethod == "" || strings.ContainsAny(emailMethod, `"\\`) {
		t.Fatalf("no Send code button for the email: %q %v", emailMethod, err)
	}
	b.click(`ul.methods form:has(input[name=method][value="`+emailMethod+`"]) button[type=submit]`, 200, "/reset/code")
	code = e.mailCode(email)
	b.mustSee("a code is on its way", "No code after 5 minutes? You may have asked too often: try again in an hour or contact the helpdesk.")
	b.check("reset: enter the code")
	b.typeInto("code", code)
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/password")
	rules, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('main .panel li')).map(li => li.innerText)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 || !strings.Contains(strings.Join(rules, "\n"), "At least 8 characters") {
		t.Fatalf("password rules shown: %q", rules)
	}
	b.check("reset: new password")

	b.typeInto("password", newPass)
	b.typeInto("confirm", otherPwd)
	b.click(`form[action="/reset/password"] button[type=submit]`, 422, "/reset/password")
	b.mustError("The two passwords are not the same.")
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('main .panel li').length`)); n != len(rules) {
		t.Fatalf("the rules are gone after an error: %d of %d", n, len(rules))
	}
	b.check("reset: passwords differ")
	if err := srv.UserBind("carol", newPass); err == nil {
		t.Fatal("a mismatching confirmation changed the password")
	}

	b.typeInto("password", newPass)
	b.typeInto("confirm", newPass)
	b.click(`form[action="/reset/password"] button[type=submit]`, 200, "/reset/done")
	b.mustSee("Your password has been reset.", "This page does not sign you in.")
	b.check("reset: done")
	if err := srv.UserBind("carol", newPass); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	if err := srv.UserBind("carol", srv.Password("carol")); err == nil {
		t.Fatal("the old password still binds")
	}
	t.Logf("reset done in %v", time.Since(t2).Round(time.Millisecond))

	// ------------------------------------------------ the other pages
	// the flow is finished: going back to it shows an error
	b.open("/reset/methods", 410)
	b.mustError("has expired")
	b.check("reset: flow expired")
	b.open("/unlock", 200)
	b.check("unlock: username")
	b.open("/change", 200)
	b.check("change")
	// one set of rules: /change (the directory's default policy, before
	// the user is known) lists what carol's reset page listed
	if got := b.rulesShown(); !slices.Equal(got, rules) || len(lengthRules(got)) != 1 {
		t.Fatalf("/change lists %q, carol's reset page %q: want the same list with one length line", got, rules)
	}
	passwordRulesInBrowser(t, b, e)
	unlockInBrowser(t, b, e)
	tierInBrowser(t, b, e)
	codeBudgetsInBrowser(t, b, e)
	// wrong passwords: "incorrect" with a way to Unlock, then, once the
	// budget (below the directory's lockout threshold of 3) is spent,
	// "Too many attempts", for a real name and an unknown one alike
	for _, name := range []string{"frank", "no-such-user-b7"} {
		b.open("/register", 200)
		for i := range 3 {
			status, want := 401, "The username or password is incorrect"
			if i == 2 {
				status, want = 429, "Too many attempts: try again later."
			}
			b.typeInto("username", name)
			b.typeInto("password", "Not-The-Password-1")
			b.click(`form[action="/register"] button[type=submit]`, status, "/register")
			b.mustError(want)
			if href := b.text(`main .error a`); href != "Unlock your account" {
				t.Fatalf("%s, try %d: the error links to %q, want Unlock", name, i+1, href)
			}
			if _, err := chromedp.Run(b.ctx, chromedp.Clear(chromedp.ID("username"))); err != nil {
				t.Fatal(err)
			}
		}
		b.check("sign in: too many attempts")
	}
	b.open("/no-such-page", 404)
	b.check("not found")
	// a user outside the eligible groups
	b.open("/register", 200)
	b.typeInto("username", "erin")
	b.typeInto("password", srv.Password("erin"))
	b.click(`form[action="/register"] button[type=submit]`, 403, "/register")
	b.mustSee("not enabled for self-service password reset")
	b.check("sign in: not eligible")

	t.Logf("browser part: %v for %d pages (axe-core %v of it)",
		time.Since(t1).Round(time.Millisecond), b.pages, b.axeDur.Round(time.Millisecond))
}

// rulesShown are the password rules the page lists.
func (b *browser) rulesShown() []string {
	b.t.Helper()
	rs, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#rules li')).map(li => li.innerText)`))
	if err != nil {
		b.t.Fatal(err)
	}
	return rs
}

// lengthRules are the rules that speak of a minimum length.
func lengthRules(rs []string) []string {
	var out []string
	for _, r := range rs {
		if strings.Contains(strings.ToLower(r), "at least") {
			out = append(out, r)
		}
	}
	return out
}

// passwordRulesInBrowser: heidi's directory policy (ppolicy cn=strict on
// slapd, the PSO "strict" on Samba AD) asks 14 characters, the gateway 8.
// Her reset page lists one length line, 14, and every length refusal
// names 14: the gateway's (after her proof) and the directory's, on the
// reset page and on /change. Each page is also checked at phone width.
func passwordRulesInBrowser(t *testing.T, b *browser, e *env) {
	const addr = "heidi.home@example.net"
	e.t = t
	addToGroup(t, e.dir, "heidi", "staff")
	e.register("heidi", addr, "")
	b.open("/reset", 200)
	b.typeInto("username", "heidi")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.click(`ul.methods form button[type=submit]`, 200, "/reset/code")
	b.typeInto("code", e.mailCode(addr))
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/password")
	rs := b.rulesShown()
	if l := lengthRules(rs); len(l) != 1 || !strings.HasPrefix(l[0], "At least 14 characters") {
		t.Fatalf("heidi's rules: %q (length lines %q): want one, of 14 characters", rs, l)
	}
	b.check("reset: heidi's merged rules")
	for _, c := range []struct{ pw, want string }{
		{"Kurz-1!", "Use at least 14 characters."},                          // the gateway's (7 < 8)
		{"Short-Pass-1!", "The directory requires at least 14 characters."}, // the directory's (13 < 14)
	} {
		b.typeInto("password", c.pw)
		b.typeInto("confirm", c.pw)
		b.click(`form[action="/reset/password"] button[type=submit]`, 422, "/reset/password")
		b.mustError(c.want)
		if got := b.rulesShown(); !slices.Equal(got, rs) {
			t.Fatalf("rules after an error: %q, before %q", got, rs)
		}
		b.check("reset: heidi, too short: " + c.pw)
	}
	b.open("/change", 200)
	b.typeInto("username", "heidi")
	b.typeInto("old", e.dir.Password("heidi"))
	b.typeInto("new", "Short-Pass-1!")
	b.typeInto("confirm", "Short-Pass-1!")
	b.click(`form[action="/change"] button[type=submit]`, 422, "/change")
	b.mustError("The directory requires at least 14 characters.")
	b.check("change: heidi, too short for the directory")
	if err := e.dir.UserBind("heidi", e.dir.Password("heidi")); err != nil {
		t.Fatalf("a refused change changed heidi's password: %v", err)
	}
}

// unlockInBrowser: grace is locked by three wrong passwords at the
// directory itself (a workstation), proves her email at /unlock, is told
// her account is locked and unlocks it: "Account unlocked", and her
// password binds again. A second unlock, now that she is not locked, says
// there is nothing to unlock and offers no button.
func unlockInBrowser(t *testing.T, b *browser, e *env) {
	const addr = "grace.home@example.net"
	e.t = t
	addToGroup(t, e.dir, "grace", "staff")
	e.register("grace", addr, "")
	for i := range 3 {
		if err := e.dir.UserBind("grace", fmt.Sprintf("Not-Graces-%d", i)); err == nil {
			t.Fatal("a wrong password of grace's bound")
		}
	}
	if err := e.dir.UserBind("grace", e.dir.Password("grace")); err == nil {
		t.Fatal("grace is not locked after 3 wrong passwords")
	}
	prove := func() {
		t.Helper()
		b.open("/unlock", 200)
		b.typeInto("username", "grace")
		b.click(`form[action="/unlock"] button[type=submit]`, 200, "/unlock/methods")
		b.mustSee("Unlocking the account of grace. Not you? Start again")
		b.click(`ul.methods form button[type=submit]`, 200, "/unlock/code")
		b.typeInto("code", e.mailCode(addr))
		b.click(`form[action="/unlock/verify"] button[type=submit]`, 200, "/unlock/complete")
	}
	prove()
	b.mustSee("Your account is locked.")
	b.check("unlock: locked")
	b.click(`form[action="/unlock/complete"] button[type=submit]`, 200, "/unlock/done")
	b.mustSee("Account unlocked", "Your account is unlocked. Your password has not changed.")
	b.check("unlock: done")
	if err := e.dir.UserBind("grace", e.dir.Password("grace")); err != nil {
		t.Fatalf("grace's password after the unlock: %v", err)
	}
	prove()
	b.mustSee("Your account is not locked, so there is nothing to unlock.")
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action="/unlock/complete"]').length`)); n != 0 {
		t.Fatal("an unlock button for an account that is not locked")
	}
	b.check("unlock: not locked")
}

// tierInBrowser: alice is in sspr-admins, whose tier needs two methods,
// and registered one email (b.tierJourney).
func tierInBrowser(t *testing.T, b *browser, e *env) {
	const addr = "alice.home@example.net"
	e.t = t
	emailID, _ := e.register("alice", addr, "")
	b.tierJourney("alice", e.dir.Password("alice"), emailID, func() string { return e.mailCode(addr) }, "alice's")
}

// tierJourney: user's tier needs two methods and they registered one,
// methodID, whose code code reads. Registration says so; a reset says
// nothing of it before the proof ("step 1 of 2", as for every name), then
// the true steps and the helpdesk instead of a method never set up. The
// pages are checked as who's.
func (b *browser) tierJourney(user, password, methodID string, code func() string, who string) {
	t := b.t
	t.Helper()
	b.open("/register", 200)
	b.typeInto("username", user)
	b.typeInto("password", password)
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("Your account needs 2 different methods (1 registered). Add 1 more")
	b.check(who + " methods, one of two")
	b.click(`form[action="/register/signout"] button[type=submit]`, 200, "/")
	b.open("/reset", 200)
	b.typeInto("username", user)
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	if title, _ := chromedp.Run(b.ctx, chromedp.Title()); !strings.HasPrefix(title, "Reset your password: step 1 of 2") {
		t.Fatalf("%s title before a proof: %q", who, title)
	}
	if txt := b.mainText(); strings.Contains(txt, "2 different methods") || strings.Contains(txt, "cannot finish") {
		t.Fatalf("%s tier shows before a proof:\n%s", who, txt)
	}
	// the one real method (a flow offers a method by its id), among fakes
	b.click(`ul.methods form:has(input[name=method][value="`+methodID+`"]) button[type=submit]`, 200, "/reset/code")
	b.typeInto("code", code())
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee("Your account needs 2 different methods and you have registered 1, so you cannot finish here. Contact the helpdesk")
	if title, _ := chromedp.Run(b.ctx, chromedp.Title()); !strings.HasPrefix(title, "Reset your password: step 2 of 3") {
		t.Fatalf("%s title after the proof: %q", who, title)
	}
	if n, _ := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('ul.methods form').length`)); n != 0 {
		t.Fatalf("%s reset offers %d method(s) that cannot be used:\n%s", who, n, b.mainText())
	}
	b.check(who + " reset, no second method")
}

// codeBudgetsInBrowser spends twin1's code budgets on purpose. Ten wrong
// codes (limits.code_failures_per_account) and her right code is refused
// in words that say it may be the budget, as for every name. Codes to her
// address past limits.sends_per_destination (5 an hour, her registration's
// among them) are not sent, and the code page says what it always says,
// which covers it: "No code after 5 minutes? You may have asked too often".
func codeBudgetsInBrowser(t *testing.T, b *browser, e *env) {
	const addr = "twin1.home@example.net"
	e.t = t
	addToGroup(t, e.dir, "twin1", "staff")
	e.register("twin1", addr, "") // her address's first code
	send := func() {
		t.Helper()
		b.open("/reset/methods", 200)
		b.click(`ul.methods form button[type=submit]`, 200, "/reset/code")
		b.mustSee("a code is on its way", "No code after 5 minutes? You may have asked too often: try again in an hour or contact the helpdesk.")
	}
	b.open("/reset", 200)
	b.typeInto("username", "twin1")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	send() // the second
	code := e.mailCode(addr)
	for range 10 {
		b.typeInto("code", wrongCode(code))
		b.click(`form[action="/reset/verify"] button[type=submit]`, 422, "/reset/verify")
		b.mustError("That code is not valid or has expired.")
	}
	send() // the third
	code = e.mailCode(addr)
	b.typeInto("code", code)
	b.click(`form[action="/reset/verify"] button[type=submit]`, 422, "/reset/verify")
	b.mustError("After too many wrong codes no code is accepted for a while: then try again later, or contact the helpdesk.")
	b.check("reset: too many wrong codes")
	send() // the fourth
	send() // the fifth
	ctx, cancel := waitCtx()
	defer cancel()
	if _, err := (blackbox.Mailbox{Mail: e.mail}).WaitList(ctx, addr, blackbox.CodeSubject, 2); err != nil {
		t.Fatal(err)
	}
	send() // the sixth: not sent
	b.check("reset: a code past the address's budget")
	if n := e.codesTo(addr); n != 2 {
		t.Fatalf("%d codes mailed after the sixth to one address in an hour, want still 2", n)
	}
	// what decided it, whatever the timing of the mail: the audit
	blocked := 0
	for _, ev := range e.auditEvents() {
		if ev["event"] == "blocked" && ev["outcome"] == "send_budget" && ev["limit"] == "limits.sends_per_destination" {
			blocked++
		}
	}
	if blocked != 1 {
		t.Fatalf("%d codes refused for limits.sends_per_destination in the audit log, want 1 (the sixth)", blocked)
	}
}

// wrongCode is a code of the same length that is not code.
func wrongCode(code string) string {
	w := []byte(code)
	for i := range w {
		w[i] = '0' + (code[i]-'0'+1)%10
	}
	return string(w)
}
