package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
)

// tagOf is the start tag of the element with the given id, "" if none.
func tagOf(page, id string) string {
	return regexp.MustCompile(`<[a-z]+ [^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(page)
}

// a11yAttrs lists, in order, the accessibility attributes of a page's
// start tags that an error sets (id, aria-invalid, aria-describedby,
// autofocus, tabindex), with the element's id.
func a11yAttrs(page string) []string {
	var out []string
	for _, tag := range regexp.MustCompile(`<[a-z]+ [^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, "aria-invalid") && !strings.Contains(tag, "autofocus") && !strings.Contains(tag, "aria-describedby") {
			continue
		}
		var a []string
		for _, m := range regexp.MustCompile(`\b(id|aria-invalid|aria-describedby|tabindex)="([^"]*)"|\b(autofocus)\b`).FindAllStringSubmatch(tag, -1) {
			a = append(a, m[0])
		}
		out = append(out, strings.Join(a, " "))
	}
	return out
}

// wantField checks that the field id is marked invalid, described by the
// error's text (and describedBy after it), and whether it takes focus.
func wantField(t *testing.T, where, page, id, describedBy string, focus bool) {
	t.Helper()
	tag := tagOf(page, id)
	if !strings.Contains(tag, ` aria-invalid="true"`) || !strings.Contains(tag, ` aria-describedby="`+describedBy+`"`) ||
		strings.Contains(tag, " autofocus") != focus {
		t.Fatalf("%s: #%s is %s: want aria-invalid, aria-describedby=%q, autofocus %v", where, id, tag, describedBy, focus)
	}
}

func wantValid(t *testing.T, where, page, id string) {
	t.Helper()
	if tag := tagOf(page, id); tag == "" || strings.Contains(tag, "aria-invalid") || strings.Contains(tag, "autofocus") {
		t.Fatalf("%s: #%s is %s: want it present, not invalid, no focus", where, id, tag)
	}
}

// TestErrorsTiedToTheirFields (issue #22, a11y M1): after a refused post
// the fields concerned carry aria-invalid and aria-describedby to the
// error's text, and the first takes focus (autofocus); an error about no
// field puts focus on its summary. The attributes before any proof are the
// same for a real name and an unknown one. Before, no field was marked and
// focus stayed at the top of the page.
func TestErrorsTiedToTheirFields(t *testing.T) {
	tb := newTestbed(t, nil)
	tb.enroll(t, "carol", "carol.home@example.net")

	// sign-in: both fields (the message does not say which), focus on the
	// password, the same for a real name and an unknown one
	var signin [][]string
	for _, name := range []string{"carol", "no-such-user-a1"} {
		c := newClient(t, tb)
		w := c.post("/register", "/register", url.Values{"username": {name}, "password": {"Not-The-Password-1"}}, nil)
		page := w.Body.String()
		if w.Code != 401 || !strings.Contains(page, `<p id="error-message">The username or password is incorrect`) {
			t.Fatalf("sign-in %s: %d\n%s", name, w.Code, page)
		}
		wantField(t, "sign-in "+name, page, "username", "error-message", false)
		wantField(t, "sign-in "+name, page, "password", "error-message", true)
		signin = append(signin, a11yAttrs(page))
	}
	if !slices.Equal(signin[0], signin[1]) {
		t.Fatalf("sign-in: the attributes differ by name:\n%q\n%q", signin[0], signin[1])
	}

	// change: the wrong current password; two passwords that differ; a
	// weak one (its list of reasons and the rules describe the field)
	c := newClient(t, tb)
	page := c.post("/change", "/change", url.Values{"username": {"carol"}, "old_password": {"Wrong-Old-Pass-1"},
		"new_password": {"Brand-New-Pass-43"}, "confirm": {"Brand-New-Pass-43"}}, nil).Body.String()
	wantField(t, "change, wrong password", page, "username", "error-message", false)
	wantField(t, "change, wrong password", page, "old", "error-message", true)
	wantValid(t, "change, wrong password", page, "confirm")
	page = c.post("/change", "/change", url.Values{"username": {"carol"}, "old_password": {tb.dir.Password("carol")},
		"new_password": {"Brand-New-Pass-43"}, "confirm": {"Brand-New-Pass-44"}}, nil).Body.String()
	wantField(t, "change, mismatch", page, "confirm", "error-message error-list", true)
	wantValid(t, "change, mismatch", page, "new")
	wantValid(t, "change, mismatch", page, "old")
	page = c.post("/change", "/change", url.Values{"username": {"carol"}, "old_password": {tb.dir.Password("carol")},
		"new_password": {"short"}, "confirm": {"short"}}, nil).Body.String()
	wantField(t, "change, weak", page, "new", "error-message error-list rules", true)
	wantValid(t, "change, weak", page, "confirm")
	if !strings.Contains(page, `<ul id="error-list"><li>`) {
		t.Fatalf("change, weak: no list of reasons:\n%s", page)
	}

	// reset: an expired flow (no field: the summary takes focus), a wrong
	// code, then the new password
	r := newClient(t, tb)
	w := r.get("/reset/methods")
	page = w.Body.String()
	if w.Code != 410 || !strings.Contains(page, `<div class="error" id="error" role="alert" tabindex="-1" autofocus>`) || strings.Contains(page, "aria-invalid") {
		t.Fatalf("expired flow: %d: want the summary to take focus and no field marked\n%s", w.Code, page)
	}
	r.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	methods := r.get("/reset/methods").Body.String()
	id := regexp.MustCompile(`name="method" value="([^"]+)"`).FindStringSubmatch(methods)
	if id == nil {
		t.Fatalf("no method offered:\n%s", methods)
	}
	r.post("/reset/methods", "/reset/send", url.Values{"method": {id[1]}}, nil)
	code := tb.inbox.LastCode(t, "carol.home@example.net")
	bad := []byte(code)
	bad[0] = '0' + (bad[0]-'0'+1)%10
	w = r.post("/reset/code?method="+url.QueryEscape(id[1]), "/reset/verify", url.Values{"method": {id[1]}, "code": {string(bad)}}, nil)
	page = w.Body.String()
	if w.Code != 422 {
		t.Fatalf("wrong code: %d\n%s", w.Code, page)
	}
	wantField(t, "reset, wrong code", page, "code", "error-message", true)
	if strings.Contains(page, `role="alert" tabindex`) {
		t.Fatalf("wrong code: the summary takes focus too:\n%s", page)
	}
	w = r.post("/reset/code?method="+url.QueryEscape(id[1]), "/reset/verify", url.Values{"method": {id[1]}, "code": {code}}, nil)
	if w.Header().Get("Location") != "/reset/password" {
		t.Fatalf("right code: %d %v", w.Code, w.Header())
	}
	page = r.post("/reset/password", "/reset/password", url.Values{"password": {"short"}, "confirm": {"short"}}, nil).Body.String()
	wantField(t, "reset, weak", page, "password", "error-message error-list rules", true)
	wantValid(t, "reset, weak", page, "confirm")
	page = r.post("/reset/password", "/reset/password", url.Values{"password": {"Brand-New-Pass-43"}, "confirm": {"Brand-New-Pass-44"}}, nil).Body.String()
	wantField(t, "reset, mismatch", page, "confirm", "error-message error-list", true)
	if tag := tagOf(page, "password"); tag == "" || !strings.Contains(tag, `aria-describedby="rules"`) || strings.Contains(tag, "aria-invalid") {
		t.Fatalf("reset, mismatch: #password is %s", tag)
	}

	// no error: no field marked, nothing autofocused
	if page := newClient(t, tb).get("/change").Body.String(); strings.Contains(page, "aria-invalid") || strings.Contains(page, "autofocus") {
		t.Fatalf("a fresh /change marks a field:\n%s", page)
	}
}

// TestNoticeTakesFocus (a11y m2): a notice after a redirect is a polite
// live region and takes focus, so that it is read out (a live region
// already there at load is not announced). Before, it was a bare
// role=status.
func TestNoticeTakesFocus(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	c.post("/register", "/register", url.Values{"username": {"carol"}, "password": {tb.dir.Password("carol")}}, nil)
	page := c.get("/register/methods?notice=removed").Body.String()
	if !strings.Contains(page, `<div class="notice" id="notice" role="status" aria-live="polite" tabindex="-1" autofocus>The method was removed.</div>`) {
		t.Fatalf("notice:\n%s", page)
	}
	if page := c.get("/register/methods").Body.String(); strings.Contains(page, "autofocus") {
		t.Fatalf("no notice, yet something takes focus:\n%s", page)
	}
}

// TestFlowTimeLimitStated (a11y m6, WCAG 2.2.1): every page of a reset or
// unlock says how long the flow lives, from the configured lifetime.
func TestFlowTimeLimitStated(t *testing.T) {
	tb := newTestbed(t, func(o *flow.Options) { o.FlowTTL = 7 * time.Minute })
	tb.enroll(t, "carol", "carol.home@example.net")
	const say = "For your security, you have 7 minutes from the first step to finish; after that you start again."
	for _, kind := range []string{"reset", "unlock"} {
		c := newClient(t, tb)
		if page := c.get("/" + kind).Body.String(); !strings.Contains(page, say) {
			t.Fatalf("/%s does not state the limit:\n%s", kind, page)
		}
		c.post("/"+kind, "/"+kind, url.Values{"username": {"carol"}}, nil)
		if page := c.get("/" + kind + "/methods").Body.String(); !strings.Contains(page, say) {
			t.Fatalf("/%s/methods does not state the limit:\n%s", kind, page)
		}
	}
	if page := newClient(t, tb).get("/change").Body.String(); strings.Contains(page, "from the first step") {
		t.Fatalf("/change states a flow's limit:\n%s", page)
	}
	// the steps that prove a method: a code's page, and a passkey's
	pb := newTestbed(t, func(o *flow.Options) {
		o.FlowTTL = 7 * time.Minute
		o.Eligibility.Methods = []string{"email", "sms", "webauthn"}
	})
	_, emailID := pb.enroll(t, "carol", "carol.home@example.net")
	pb.addPasskey(t, "carol", flowtest.NewSoftKey(t))
	_, passkeyID := pb.passkeyFlow(t, "carol")
	for _, kind := range []string{"reset", "unlock"} {
		for what, id := range map[string]string{"code": emailID, "passkey": passkeyID} {
			c := newClient(t, pb)
			c.post("/"+kind, "/"+kind, url.Values{"username": {"carol"}}, nil)
			w := c.post("/"+kind+"/methods", "/"+kind+"/send", url.Values{"method": {id}}, nil)
			if w.Code == http.StatusSeeOther {
				w = c.get(w.Header().Get("Location"))
			}
			if !strings.Contains(w.Body.String(), say) {
				t.Fatalf("the %s step of %s (%d) does not state the limit:\n%s", what, kind, w.Code, w.Body.String())
			}
		}
	}
	if got := minutes(15 * time.Minute); got != "15 minutes" {
		t.Fatalf("minutes(15m) = %q", got)
	}
	if got := minutes(time.Minute); got != "1 minute" {
		t.Fatalf("minutes(1m) = %q", got)
	}
}

// TestMasksReadAloud (a11y m4): a masked address is hidden from screen
// readers and said in words that tell no more than the mask shows.
func TestMasksReadAloud(t *testing.T) {
	for mask, want := range map[string]string{
		"c•••@e•••.net": "an address starting with c, at a domain starting with e, ending in .net",
		"j•••@m•••":     "an address starting with j, at a domain starting with m",
		"+44 •••• ••56": "a number with country code +44, ending in 56",
		"•••• ••56":     "a number ending in 56",
		"•••":           "hidden",
		"Work laptop":   "Work laptop",
		"a•••b":         "a (hidden) b",
		"+1 •••• ••":    "+1 (hidden) (hidden)",
	} {
		if got := spoken(mask); got != want {
			t.Errorf("spoken(%q) = %q, want %q", mask, got, want)
		}
	}
	tb := newTestbed(t, nil)
	tb.enroll(t, "carol", "carol.home@example.net")
	c := newClient(t, tb)
	c.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	page := c.get("/reset/methods").Body.String()
	if !strings.Contains(page, `Email to <strong><span aria-hidden="true">c•••@e•••.net</span><span class="visually-hidden">an address starting with c, at a domain starting with e, ending in .net</span></strong>`) ||
		!strings.Contains(page, `Send code<span class="visually-hidden"> by email to an address starting with c, at a domain starting with e, ending in .net</span>`) {
		t.Fatalf("reset methods: the mask is not said in words:\n%s", page)
	}
	if strings.Contains(page, "carol.home") || strings.Contains(page, "example.net") {
		t.Fatalf("the page tells more than the mask:\n%s", page)
	}
}

// TestReferenceOutsideTheAlert (a11y m5): on a failure of the gateway
// (5xx) the Reference line for the helpdesk follows the alert instead of
// being read out as part of it. Before, it was the alert's last line.
func TestReferenceOutsideTheAlert(t *testing.T) {
	tb := newTestbed(t, nil)
	req := httptest.NewRequest("GET", "/change", nil)
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(req, rec)
	c.Set(ctxRequestID, "3c9125a10904feef")
	if err := tb.srv.render(c, 503, "change", "Change your password", changePage{}, flow.NewProblem(flow.CodeUnavailable, nil)); err != nil {
		t.Fatal(err)
	}
	page := rec.Body.String()
	alert := regexp.MustCompile(`(?s)<div class="error" id="error" role="alert"[^>]*>.*?</div>`).FindString(page)
	if alert == "" || strings.Contains(alert, "3c9125a10904feef") || !strings.Contains(page, `</div>
<p class="request-id">Reference: 3c9125a10904feef</p>`) {
		t.Fatalf("the reference is not right after the alert, outside it:\n%s", page)
	}
}

// TestErrorsTiedToTheirFieldsElsewhere: the methods page (the address
// refused, the password to remove a method refused) and the security
// questions (weak answers at registration, wrong ones at a reset) mark
// their fields too.
func TestErrorsTiedToTheirFieldsElsewhere(t *testing.T) {
	tb, _, _ := qBed(t, nil)
	sess, emailID := tb.enroll(t, "carol", "carol@home.example")
	qm := tb.setGoodQuestions(t, sess)

	r := newClient(t, tb)
	r.post("/register", "/register", url.Values{"username": {"carol"}, "password": {tb.dir.Password("carol")}}, nil)
	page := r.post("/register/methods", "/register/methods", url.Values{"type": {"sms"}, "address": {"+44 12"}}, nil).Body.String()
	wantField(t, "invalid phone", page, "phone", "error-message phone-hint", true)
	wantValid(t, "invalid phone", page, "email")
	page = r.post("/register/methods", "/register/methods", url.Values{"type": {"email"}, "address": {"carol@corp.example"}}, nil).Body.String()
	wantField(t, "work email", page, "email", "error-message email-hint", true)
	wantValid(t, "work email", page, "phone")
	page = r.post("/register/methods", "/register/methods/"+emailID+"/remove", url.Values{"password": {"Not-The-Password-1"}}, nil).Body.String()
	wantField(t, "remove, wrong password", page, "rm-"+emailID, "error-message", true)
	wantValid(t, "remove, wrong password", page, "rm-"+qm.ID)

	// registration: weak answers mark every answer, the first takes focus
	form := url.Values{}
	for i, a := range []string{"Juniper Anvil", "1234", "Mossy Harbour"} {
		form.Set(fmt.Sprintf("question-%d", i), tb.svc.AdminQuestions()[i].ID)
		form.Set(fmt.Sprintf("answer-%d", i), a)
	}
	w := r.post("/register/questions", "/register/questions", form, nil)
	if w.Code != 422 {
		t.Fatalf("weak answers: %d\n%s", w.Code, w.Body)
	}
	page = w.Body.String()
	wantField(t, "weak answers", page, "answer-0", "error-message error-list answers-hint", true)
	wantField(t, "weak answers", page, "answer-2", "error-message error-list answers-hint", false)

	// reset: wrong answers, after the email
	b := newClient(t, tb)
	b.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	w = b.post("/reset/methods", "/reset/send", url.Values{"method": {qm.ID}}, nil)
	qpath := w.Header().Get("Location")
	w = b.post("/reset/methods", "/reset/send", url.Values{"method": {emailID}}, nil)
	b.post(w.Header().Get("Location"), "/reset/verify", url.Values{"method": {emailID}, "code": {tb.inbox.LastCode(t, "carol@home.example")}}, nil)
	qpage := b.get(qpath).Body.String()
	wrong := url.Values{"method": {qm.ID}}
	for _, id := range regexp.MustCompile(`name="answer-([0-9a-z]+)"`).FindAllStringSubmatch(qpage, -1) {
		wrong.Set("answer-"+id[1], "Not It At All")
	}
	w = b.post("", "/reset/verify", withCSRF(t, qpage, wrong), nil)
	if w.Code != 422 {
		t.Fatalf("wrong answers: %d\n%s", w.Code, w.Body)
	}
	page = w.Body.String()
	wantField(t, "wrong answers", page, "answer-0", "error-message", true)
	wantField(t, "wrong answers", page, "answer-1", "error-message", false)
}

// withCSRF sets the form token of page in form.
func withCSRF(t *testing.T, page string, form url.Values) url.Values {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf token:\n%s", page)
	}
	form.Set("_csrf", m[1])
	return form
}
