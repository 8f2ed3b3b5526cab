package gateway

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/flow"
)

var (
	titleRE   = regexp.MustCompile(`<title>([^<]*)</title>`)
	sendForms = regexp.MustCompile(`<form method="post" action="/reset/send">`)
)

func titleOf(page string) string {
	if m := titleRE.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

// TestTiersShownHonestly: alice's tier (cn=admins) needs two different
// methods. Registration says so and counts what she has; a reset shows the
// policy's base (one method, "step 1 of 2") to every name before a proof,
// then, after her first proof, the true number of steps and, as she has
// registered only an email, the helpdesk message instead of the fake
// methods that padded her list to two. With a second method registered
// she is offered it and reaches the password at "step 3 of 3". Before,
// the verify notice said "You can use it to reset your password", the
// methods page said nothing of two methods, and after the email a
// method she never set up was offered.
func TestTiersShownHonestly(t *testing.T) {
	tb := newTestbed(t, nil)

	// registration
	r := newClient(t, tb)
	r.post("/register", "/register", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}}, nil)
	if page := r.get("/register/methods").Body.String(); !strings.Contains(page, "Your account needs 2 different methods (0 registered).") {
		t.Fatalf("methods page before any method:\n%s", page)
	}
	w := r.post("/register/methods", "/register/methods", url.Values{"type": {"email"}, "address": {"alice@home.example"}}, nil)
	verify := w.Header().Get("Location")
	w = r.post(verify, verify, url.Values{"code": {tb.inbox.LastCode(t, "alice@home.example")}}, nil)
	if loc := w.Header().Get("Location"); loc != "/register/methods?notice=verified_more" {
		t.Fatalf("after the first method: %d %s", w.Code, loc)
	}
	page := r.get("/register/methods?notice=verified_more").Body.String()
	for _, want := range []string{"Your account needs 2 different methods (1 registered). Add 1 more, each a different one, to be able to reset your password yourself.",
		"Your account needs more different methods before you can reset your password yourself"} {
		if !strings.Contains(page, want) {
			t.Fatalf("methods page after one method lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "You can use it to reset your password") {
		t.Fatal("one method of two is said to be enough")
	}
	tb.inbox.Wait(t, "alice@corp.example", 1)

	// before a proof: the same words for alice, carol (one method), an
	// unknown name and erin (not eligible)
	tb.enroll(t, "carol", "carol@home.example")
	var first string
	for _, name := range []string{"alice", "carol", "nobody-here", "erin"} {
		c := newClient(t, tb)
		c.post("/reset", "/reset", url.Values{"username": {name}}, nil)
		page := c.get("/reset/methods").Body.String()
		if titleOf(page) != "Reset your password: step 1 of 2 - Latchkey" || !strings.Contains(page, "Choose a method to receive a code.") ||
			strings.Contains(page, "You need") || strings.Contains(page, "cannot finish") {
			t.Fatalf("%s before a proof:\n%s", name, page)
		}
		// the page with the masked methods and the name taken out
		generic := regexp.MustCompile(`(?s)<ul class="methods">.*</ul>|<strong>[^<]*</strong>`).ReplaceAllString(page, "")
		generic = csrfRE.ReplaceAllString(generic, "")
		if first == "" {
			first = generic
		} else if generic != first {
			t.Fatalf("%s's page before a proof differs from alice's:\n%s\n---\n%s", name, generic, first)
		}
	}

	// after alice's email: two steps are needed and she has one method
	c := newClient(t, tb)
	c.post("/reset", "/reset", url.Values{"username": {"alice"}}, nil)
	mp := c.get("/reset/methods").Body.String()
	if n := len(sendForms.FindAllString(mp, -1)); n != 2 {
		t.Fatalf("alice's list before a proof has %d methods, want 2 (one padded):\n%s", n, mp)
	}
	emailID := regexp.MustCompile(`name="method" value="([^"]+)">\s*<button type="submit">Send code<span class="visually-hidden"> by email`).FindStringSubmatch(mp)
	if emailID == nil {
		t.Fatalf("no email offered:\n%s", mp)
	}
	w = c.post("/reset/methods", "/reset/send", url.Values{"method": {emailID[1]}}, nil)
	code := w.Header().Get("Location")
	w = c.post(code, "/reset/verify", url.Values{"method": {emailID[1]}, "code": {tb.inbox.LastCode(t, "alice@home.example")}}, nil)
	if loc := w.Header().Get("Location"); loc != "/reset/methods?notice=method_ok" {
		t.Fatalf("after the email: %d %s", w.Code, loc)
	}
	mp = c.get("/reset/methods").Body.String()
	if titleOf(mp) != "Reset your password: step 2 of 3 - Latchkey" ||
		!strings.Contains(mp, "Your account needs 2 different methods and you have registered 1, so you cannot finish here. Contact the helpdesk") ||
		sendForms.MatchString(mp) || strings.Contains(mp, "Choose 1 more method") {
		t.Fatalf("after alice's email, with no second method:\n%s", mp)
	}

	// a second method registered: offered, then the password at the last step
	sess, err := tb.svc.SignIn(t.Context(), "alice", tb.dir.Password("alice"), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	ph := tb.addPhone(t, sess, "+44 7700 900123")
	c = newClient(t, tb)
	c.post("/reset", "/reset", url.Values{"username": {"alice"}}, nil)
	w = c.post("/reset/methods", "/reset/send", url.Values{"method": {emailID[1]}}, nil)
	code = w.Header().Get("Location")
	c.post(code, "/reset/verify", url.Values{"method": {emailID[1]}, "code": {tb.inbox.LastCode(t, "alice@home.example")}}, nil)
	mp = c.get("/reset/methods").Body.String()
	if titleOf(mp) != "Reset your password: step 2 of 3 - Latchkey" || !strings.Contains(mp, "Choose 1 more method to receive a code.") ||
		!strings.Contains(mp, "You need 2 verified methods, each a different one.") || strings.Contains(mp, "cannot finish") ||
		len(sendForms.FindAllString(mp, -1)) != 1 || !strings.Contains(mp, `value="`+ph.ID+`"`) {
		t.Fatalf("after alice's email, with a phone:\n%s", mp)
	}
	w = c.post("/reset/methods", "/reset/send", url.Values{"method": {ph.ID}}, nil)
	code = w.Header().Get("Location")
	if page := c.get(code).Body.String(); titleOf(page) != "Reset your password: step 2 of 3 - Latchkey" {
		t.Fatalf("code page of the second method: %q", titleOf(page))
	}
	w = c.post(code, "/reset/verify", url.Values{"method": {ph.ID}, "code": {tb.inbox.LastCode(t, "+447700900123")}}, nil)
	if loc := w.Header().Get("Location"); loc != "/reset/password" {
		t.Fatalf("after the phone: %d %s", w.Code, loc)
	}
	if page := c.get("/reset/password").Body.String(); titleOf(page) != "Choose a new password: step 3 of 3 - Latchkey" {
		t.Fatalf("password page: %q", titleOf(page))
	}
}

// TestMethodsPageWithTheDirectoryDown: the registration's methods page
// needs the directory only for the tier's line ("needs N different
// methods"): with the directory down it still lists the methods and offers
// to add one, without that line, and the line is back with the directory.
func TestMethodsPageWithTheDirectoryDown(t *testing.T) {
	tb := newTestbed(t, nil)
	r := newClient(t, tb)
	r.post("/register", "/register", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}}, nil)
	w := r.post("/register/methods", "/register/methods", url.Values{"type": {"email"}, "address": {"alice@home.example"}}, nil)
	verify := w.Header().Get("Location")
	r.post(verify, verify, url.Values{"code": {tb.inbox.LastCode(t, "alice@home.example")}}, nil)
	up := r.get("/register/methods")
	if up.Code != 200 || !strings.Contains(up.Body.String(), "Your account needs 2 different methods (1 registered).") {
		t.Fatalf("methods page with the directory up: %d\n%s", up.Code, up.Body)
	}

	tb.dir.SetDown(true)
	down := r.get("/register/methods")
	page := down.Body.String()
	if down.Code != 200 {
		t.Fatalf("methods page with the directory down: %d\n%s", down.Code, page)
	}
	for _, want := range []string{titleOf(up.Body.String()), `action="/register/methods"`, "a•••@h•••.example"} {
		if !strings.Contains(page, want) {
			t.Fatalf("methods page with the directory down lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "different methods") {
		t.Fatalf("the tier's line without the directory that tells it:\n%s", page)
	}

	tb.dir.SetDown(false)
	if page := r.get("/register/methods").Body.String(); !strings.Contains(page, "Your account needs 2 different methods (1 registered).") {
		t.Fatalf("the tier's line did not come back with the directory:\n%s", page)
	}
}
