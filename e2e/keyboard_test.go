package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestBrowserOpenLDAPKeyboard and TestBrowserActiveDirectoryKeyboard
// (issue #22, a11y M1, m1, m2): a keyboard-only journey in Chromium (key
// events only: Tab, typed characters and Enter; no click) through
// registration, a reset and an unlock on OpenLDAP and on Samba AD, with
// failed submits on purpose (a wrong password for carol and for a name
// that is no account, wrong codes, a password too short, two that
// differ). After each submit it asserts where focus lands
// (document.activeElement) and, from Chromium's accessibility tree, that
// the focused field is invalid and described by the error's text, and the
// page's title; a notice after a redirect takes focus; a select, a summary
// and a textarea reached by Tab carry the product's focus ring. axe-core
// and the layout checks run on every error state. Before the fix focus
// stayed on the document after every submit and no field was ever
// invalid.
func TestBrowserOpenLDAPKeyboard(t *testing.T) {
	parallel(t)
	runKeyboardSuite(t, func(t testing.TB) *dirtest.Server { return dirtest.StartOpenLDAP(t) }, "carol@example.org")
}

func TestBrowserActiveDirectoryKeyboard(t *testing.T) {
	parallel(t)
	runKeyboardSuite(t, dirtest.StartSamba, "carol@example.test")
}

// runKeyboardSuite walks the journey on the directory startDir starts, in
// which carol's own (work) address is workMail.
func runKeyboardSuite(t *testing.T, startDir func(testing.TB) *dirtest.Server, workMail string) {
	exe := chromiumPath(t)
	srv := startDir(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{})
	b := newBrowser(t, exe, e.base)
	const (
		email   = "carol.keys@example.net"
		newPass = "Amber-Harbor-Lantern-61"
	)

	// a name that is no account: focus and the tree as for carol below
	// (a page before a proof is the same for every name)
	b.open("/register", 200)
	b.tabTo("#username")
	b.keys("no-such-user-k9")
	b.tabTo("#password")
	b.keys("Not-Carols-Password-1")
	b.enter(401, "/register")
	b.focusOn("password", "Password", "The username or password is incorrect", "Error: Register recovery methods - Latchkey")
	// its budget spent (the third try): no field is wrong, so the error
	// summary takes focus, and it says what happened
	b.keys("Not-Carols-Password-2")
	b.enter(401, "/register")
	b.focusOn("password", "Password", "The username or password is incorrect", "Error: Register recovery methods - Latchkey")
	b.keys("Not-Carols-Password-3")
	b.enter(429, "/register")
	b.focusOn("error", "", "", "Error: Register recovery methods - Latchkey")
	if f := b.focusedAX(); f.role != "alert" || b.invalid("password") || b.invalid("username") {
		t.Fatalf("too many attempts: the focused node is %+v (want the alert), fields marked invalid: password %v, username %v",
			f, b.invalid("password"), b.invalid("username"))
	}
	b.mustError("Too many attempts: try again later.")
	b.check("keyboard: too many attempts")

	// registration: a wrong password, then the right one
	b.open("/register", 200)
	b.tabTo("#username")
	b.keys("carol")
	b.tabTo("#password")
	b.keys("Not-Carols-Password-1")
	b.enter(401, "/register")
	b.focusOn("password", "Password", "The username or password is incorrect", "Error: Register recovery methods - Latchkey")
	b.check("keyboard: sign in refused")
	b.keys(srv.Password("carol"))
	b.enter(200, "/register/methods")
	b.tabTo("#email")
	b.keys(email)
	b.enter(200, "")
	code := e.mailCode(email)
	b.tabTo("#code")
	b.keys(wrongCode(code))
	b.enter(422, "")
	b.focusOn("code", "Code", "That code is not valid", "Error: Confirm your method - Latchkey")
	b.check("keyboard: verify email, wrong code")
	b.keys(code)
	b.enter(200, "/register/methods")
	// the notice after the redirect takes focus, so that it is read out
	b.focusOn("notice", "", "", "Your recovery methods - Latchkey")
	if role := b.focusedAX().role; role != "status" {
		t.Fatalf("the focused notice has role %q, want status", role)
	}
	// a number the gateway refuses, and her work address as a personal
	// email: the field takes focus, invalid, described by the refusal
	b.tabTo("#phone")
	b.keys("+44 12")
	b.enter(422, "/register/methods")
	b.focusOn("phone", "Mobile number with country code", "Enter a mobile number in international format", "Error: Your recovery methods - Latchkey")
	b.check("keyboard: methods, a number refused")
	b.tabTo("#email")
	b.keys(workMail)
	b.enter(422, "/register/methods")
	b.focusOn("email", "Personal email address (not your work address)", "That is your work address", "Error: Your recovery methods - Latchkey")
	b.check("keyboard: methods, the work address")

	// reset: a wrong code, a password too short, two that differ
	b.open("/reset", 200)
	b.title("Reset your password - Latchkey")
	b.tabTo("#username")
	b.keys("carol")
	b.enter(200, "/reset/methods")
	b.title("Reset your password: step 1 of 2 - Latchkey")
	b.tabTo(`ul.methods button[type=submit]`)
	b.enter(200, "/reset/code")
	b.title("Reset your password: step 1 of 2 - Latchkey")
	code = e.mailCode(email)
	b.tabTo("#code")
	b.keys(wrongCode(code))
	b.enter(422, "/reset/verify")
	b.focusOn("code", "Code", "That code is not valid", "Error: Reset your password: step 1 of 2 - Latchkey")
	b.check("keyboard: reset, wrong code")
	b.keys(code)
	b.enter(200, "/reset/password")
	b.title("Choose a new password: step 2 of 2 - Latchkey")
	b.tabTo("#password")
	b.keys("short")
	b.tabTo("#confirm")
	b.keys("short")
	b.enter(422, "/reset/password")
	desc := b.focusOn("password", "New password", "The new password was not accepted:", "Error: Choose a new password: step 2 of 2 - Latchkey")
	if !strings.Contains(desc, "Use at least") {
		t.Fatalf("the refused password is described by %q: want the reason with its number", desc)
	}
	if b.invalid("confirm") {
		t.Fatal("the confirmation is marked invalid for a weak password")
	}
	b.check("keyboard: reset, too short")
	b.keys(newPass)
	b.tabTo("#confirm")
	b.keys(newPass + "x")
	b.enter(422, "/reset/password")
	desc = b.focusOn("confirm", "Confirm the new password", "The new password was not accepted:", "Error: Choose a new password: step 2 of 2 - Latchkey")
	if !strings.Contains(desc, "The two passwords are not the same.") {
		t.Fatalf("the confirmation is described by %q: want the mismatch", desc)
	}
	if b.invalid("password") {
		t.Fatal("the new password is marked invalid for a mismatch")
	}
	b.check("keyboard: reset, passwords differ")
	b.tabTo("#password")
	b.keys(newPass)
	b.tabTo("#confirm")
	b.keys(newPass)
	b.enter(200, "/reset/done")
	b.title("Password reset - Latchkey")
	if err := srv.UserBind("carol", newPass); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}

	// /change: a wrong current password (carol's second wrong one, within
	// the budget of two), then a new one too short
	b.open("/change", 200)
	b.tabTo("#username")
	b.keys("carol")
	b.tabTo("#old")
	b.keys("Not-Carols-Password-9")
	b.tabTo("#new")
	b.keys(newPass + "-2")
	b.tabTo("#confirm")
	b.keys(newPass + "-2")
	b.enter(401, "/change")
	b.focusOn("old", "Current password", "The username or password is incorrect", "Error: Change your password - Latchkey")
	b.check("keyboard: change, wrong current password")
	b.keys(newPass)
	b.tabTo("#new")
	b.keys("short")
	b.tabTo("#confirm")
	b.keys("short")
	b.enter(422, "/change")
	desc = b.focusOn("new", "New password", "The new password was not accepted:", "Error: Change your password - Latchkey")
	if !strings.Contains(desc, "Use at least") {
		t.Fatalf("the refused new password is described by %q: want the reason with its number", desc)
	}
	b.check("keyboard: change, too short")

	// unlock: each step's title, a wrong code
	b.open("/unlock", 200)
	b.title("Unlock your account - Latchkey")
	b.tabTo("#username")
	b.keys("carol")
	b.enter(200, "/unlock/methods")
	b.title("Unlock your account: step 1 of 2 - Latchkey")
	b.tabTo(`ul.methods button[type=submit]`)
	b.enter(200, "/unlock/code")
	code = e.mailCode(email)
	b.tabTo("#code")
	b.keys(wrongCode(code))
	b.enter(422, "/unlock/verify")
	b.focusOn("code", "Code", "That code is not valid", "Error: Unlock your account: step 1 of 2 - Latchkey")
	b.check("keyboard: unlock, wrong code")
	b.keys(code)
	b.enter(200, "/unlock/complete")
	b.title("Unlock your account: step 2 of 2 - Latchkey")

	// m1: a select, a summary and a textarea reached by Tab get the ring
	// of every other control, not the browser's own
	if err := chromedp.Do(b.ctx, chromedp.Evaluate[chromedp.Void](`(() => {
	  const m = document.querySelector('main');
	  m.insertAdjacentHTML('beforeend', '<label for="ring-select">S</label><select id="ring-select"><option>a</option></select>' +
	    '<details><summary id="ring-summary">More</summary><p>x</p></details>' +
	    '<label for="ring-textarea">T</label><textarea id="ring-textarea"></textarea>');
	})()`)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ring-select", "ring-summary", "ring-textarea"} {
		b.tabTo("#" + id)
		ring, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => { const s = getComputedStyle(document.activeElement);
		  return s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor + ' ' + s.outlineOffset; })()`))
		if err != nil {
			t.Fatal(err)
		}
		if ring != "solid 3px rgb(11, 87, 208) 2px" {
			t.Errorf("#%s focused by Tab has the outline %q, want the product's 3px ring", id, ring)
		}
	}
}

// keys types text into the focused element, as key events.
func (b *browser) keys(text string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.KeyEvent(text)); err != nil {
		b.t.Fatalf("typing: %v", err)
	}
}

// tabTo presses Tab until the element sel selects has focus (at most 40
// times: the pages have fewer stops).
func (b *browser) tabTo(sel string) {
	b.t.Helper()
	for range 40 {
		on, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { const a = document.activeElement; return !!a && a.matches(`+jsString(sel)+`); })()`))
		if err != nil {
			b.t.Fatal(err)
		}
		if on {
			return
		}
		b.keys("\t")
	}
	b.t.Fatalf("%s: 40 Tabs did not reach %s", b.path(), sel)
}

// enter presses Enter on the focused element, waits for the page it leads
// to and checks its status and path (unless "").
func (b *browser) enter(status int, path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.KeyEvent("\r"))
	if err != nil {
		b.t.Fatalf("%s: Enter: %v", b.path(), err)
	}
	if res.Status != int64(status) {
		b.t.Fatalf("Enter: %s answered %d, want %d", res.URL, res.Status, status)
	}
	if got := b.path(); path != "" && got != path {
		b.t.Fatalf("Enter: at %s, want %s", got, path)
	}
	b.waitLoaded(b.path())
}

func (b *browser) title(want string) {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Title())
	if err != nil {
		b.t.Fatal(err)
	}
	if got != want {
		b.t.Fatalf("%s: title %q, want %q", b.path(), got, want)
	}
}

// axFacts is what Chromium's accessibility tree says of a node.
type axFacts struct {
	role, name, description string
	invalid, focused        bool
}

func axString(v *accessibility.Value) string {
	if v == nil {
		return ""
	}
	return strings.Trim(string(v.Value), `"`)
}

// focusedAX is the node of the accessibility tree that has focus (not
// the document's).
func (b *browser) focusedAX() axFacts {
	b.t.Helper()
	tree, err := chromedp.Call(b.ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, n := range tree.Nodes {
		f := axFacts{role: axString(n.Role), name: axString(n.Name), description: axString(n.Description)}
		for _, p := range n.Properties {
			switch p.Name {
			case accessibility.PropertyNameFocused:
				f.focused = axString(p.Value) == "true"
			case accessibility.PropertyNameInvalid:
				f.invalid = axString(p.Value) == "true"
			}
		}
		// the document is focused too (its root node says so)
		if f.focused && !n.Ignored && f.role != "RootWebArea" {
			return f
		}
	}
	return axFacts{}
}

// focusOn waits (up to 10 s: autofocus runs at a rendering update after
// the load) until the element with the given id has focus, then checks
// the page title and, unless name is "", that the accessibility tree's
// focused node is that field, invalid, and described by text starting
// with the error's words. It returns the description.
func (b *browser) focusOn(id, name, described, title string) string {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ''`))
		if err != nil {
			b.t.Fatal(err)
		}
		if got == id {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: focus is on %q after the submit, want #%s", b.path(), got, id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.title(title)
	if name == "" {
		return ""
	}
	f := b.focusedAX()
	if f.name != name || !f.invalid || !strings.HasPrefix(f.description, described) {
		b.t.Fatalf("%s: the focused node is %+v: want %q, invalid, described by %q…", b.path(), f, name, described)
	}
	return f.description
}

// invalid says whether the field with the given id is aria-invalid.
func (b *browser) invalid(id string) bool {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.getElementById(`+jsString(id)+`).getAttribute('aria-invalid') === 'true'`))
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}
