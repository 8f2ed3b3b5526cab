package gateway

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

const noCodeHint = "No code after 5 minutes? You may have asked too often: try again in an hour or contact the helpdesk."

var firstMethod = regexp.MustCompile(`name="method" value="([^"]+)"`)

// TestLimitsSayWhatHappened: every code page says what a missing code may
// mean, for a real method and a fake one alike; a refused password links
// to Unlock and carries no "Reference" line; once the budget of wrong
// passwords is spent, sign-in answers 429 "Too many attempts" for a real
// account and an unknown name alike. Before, a spent budget answered
// "incorrect" even for the right password, the code page said a code was
// on its way and nothing more, and nothing pointed to Unlock.
func TestLimitsSayWhatHappened(t *testing.T) {
	tb := newTestbed(t, nil)
	tb.dir.SetPolicy(dirtest.MemoryPolicy{MinLength: 8, LockoutThreshold: 4})
	tb.enroll(t, "carol", "carol@home.example")

	for _, name := range []string{"carol", "nobody-here"} {
		c := newClient(t, tb)
		c.post("/reset", "/reset", url.Values{"username": {name}}, nil)
		m := firstMethod.FindStringSubmatch(c.get("/reset/methods").Body.String())
		if m == nil {
			t.Fatalf("%s: no method", name)
		}
		w := c.post("/reset/methods", "/reset/send", url.Values{"method": {m[1]}}, nil)
		if page := c.get(w.Header().Get("Location")).Body.String(); !strings.Contains(page, noCodeHint) {
			t.Fatalf("%s's code page lacks the hint:\n%s", name, page)
		}
	}
	// the registration's code page too
	r := newClient(t, tb)
	r.post("/register", "/register", url.Values{"username": {"carol"}, "password": {tb.dir.Password("carol")}}, nil)
	w := r.post("/register/methods", "/register/methods", url.Values{"type": {"email"}, "address": {"carol.second@home.example"}}, nil)
	if page := r.get(w.Header().Get("Location")).Body.String(); !strings.Contains(page, noCodeHint) {
		t.Fatalf("the registration's code page lacks the hint:\n%s", page)
	}

	// wrong passwords: the budget is 3 (threshold 4 - 1), for every name
	for _, name := range []string{"carol", "nobody-here"} {
		c := newClient(t, tb)
		for i := range 3 {
			w := c.post("/register", "/register", url.Values{"username": {name}, "password": {"Wrong-Password-1"}}, nil)
			page := w.Body.String()
			if w.Code != 401 || !strings.Contains(page, `<a href="/unlock">Unlock your account</a>`) || strings.Contains(page, "Reference:") {
				t.Fatalf("%s, wrong password %d: %d\n%s", name, i+1, w.Code, page)
			}
		}
		w := c.post("/register", "/register", url.Values{"username": {name}, "password": {"Wrong-Password-1"}}, nil)
		if page := w.Body.String(); w.Code != 429 || !strings.Contains(page, "Too many attempts: try again later.") ||
			!strings.Contains(page, `href="/unlock"`) || strings.Contains(page, "incorrect") {
			t.Fatalf("%s over the budget: %d\n%s", name, w.Code, page)
		}
	}
	// carol's right password is not called wrong either
	w = newClient(t, tb).post("/register", "/register", url.Values{"username": {"carol"}, "password": {tb.dir.Password("carol")}}, nil)
	if w.Code != 429 || !strings.Contains(w.Body.String(), "Too many attempts") {
		t.Fatalf("carol's right password over the budget: %d\n%s", w.Code, w.Body)
	}
}

// TestUnlockSaysWhetherTheAccountWasLocked: after the proof, the unlock
// page says whether the account is locked; "Account unlocked" only when
// it was, a neutral message otherwise (with the way to a reset). Before,
// an account that was not locked was told "Account unlocked".
func TestUnlockSaysWhetherTheAccountWasLocked(t *testing.T) {
	tb := newTestbed(t, nil)
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	unlock := func() *client {
		c := newClient(t, tb)
		c.post("/unlock", "/unlock", url.Values{"username": {"carol"}}, nil)
		w := c.post("/unlock/methods", "/unlock/send", url.Values{"method": {mid}}, nil)
		w = c.post(w.Header().Get("Location"), "/unlock/verify", url.Values{"method": {mid}, "code": {tb.inbox.LastCode(t, "carol@home.example")}}, nil)
		if loc := w.Header().Get("Location"); loc != "/unlock/complete" {
			t.Fatalf("after the code: %d %s", w.Code, loc)
		}
		return c
	}
	// not locked: nothing to unlock, and no "Account unlocked"
	c := unlock()
	page := c.get("/unlock/complete").Body.String()
	if !strings.Contains(page, "Your account is not locked, so there is nothing to unlock.") || strings.Contains(page, `action="/unlock/complete"`) ||
		!strings.Contains(page, `href="/reset"`) {
		t.Fatalf("complete page, not locked:\n%s", page)
	}
	// (a page from before, or another tab: the form's token from /unlock)
	w := c.post("/unlock", "/unlock/complete", url.Values{}, nil)
	if loc := w.Header().Get("Location"); loc != "/unlock/done?was=not_locked" {
		t.Fatalf("unlocking an account that is not locked: %d %s", w.Code, loc)
	}
	if page := c.get("/unlock/done?was=not_locked").Body.String(); strings.Contains(page, "Account unlocked") || !strings.Contains(page, "was not locked") {
		t.Fatalf("done page, not locked:\n%s", page)
	}
	// the notice says so too (someone proved the methods: told all the same)
	notice := func(subject string) string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, e := range tb.rec.Emails() {
				if e.To == "carol@corp.example" && strings.Contains(e.Subject, subject) {
					return e.Text
				}
			}
		}
		t.Fatalf("no notice %q to carol's directory address", subject)
		return ""
	}
	if txt := notice("an unlock of your account was asked for (it was not locked)"); !strings.Contains(txt, "It was not locked, so nothing changed.") ||
		strings.Contains(txt, "was unlocked") {
		t.Fatalf("notice, not locked:\n%s", txt)
	}
	// locked
	tb.dir.Edit("carol", func(u *directory.User, _ *string) { u.Status.Locked = true })
	c = unlock()
	if page := c.get("/unlock/complete").Body.String(); !strings.Contains(page, "Your account is locked.") || !strings.Contains(page, `action="/unlock/complete"`) {
		t.Fatalf("complete page, locked:\n%s", page)
	}
	w = c.post("/unlock/complete", "/unlock/complete", url.Values{}, nil)
	if loc := w.Header().Get("Location"); loc != "/unlock/done" {
		t.Fatalf("unlocking a locked account: %d %s", w.Code, loc)
	}
	if page := c.get("/unlock/done").Body.String(); !strings.Contains(page, "Account unlocked") {
		t.Fatalf("done page, locked:\n%s", page)
	}
	if err := tb.dir.UserBind("carol", tb.dir.Password("carol")); err != nil {
		t.Fatalf("still locked: %v", err)
	}
	if txt := notice("your account was unlocked"); !strings.Contains(txt, "Your account was unlocked through") {
		t.Fatalf("notice, locked:\n%s", txt)
	}
	// locked when the page was shown, unlocked by the helpdesk before the
	// gateway's write: the done page says what the write found, as the
	// notice does
	tb.dir.Edit("carol", func(u *directory.User, _ *string) { u.Status.Locked = true })
	c = unlock()
	if page := c.get("/unlock/complete").Body.String(); !strings.Contains(page, "Your account is locked.") {
		t.Fatalf("complete page, locked:\n%s", page)
	}
	tb.dir.SetBeforeUnlock(func() { tb.dir.Edit("carol", func(u *directory.User, _ *string) { u.Status.Locked = false }) })
	w = c.post("/unlock/complete", "/unlock/complete", url.Values{}, nil)
	if loc := w.Header().Get("Location"); loc != "/unlock/done?was=not_locked" {
		t.Fatalf("an account unlocked elsewhere before the write: %d %s, want the not-locked page", w.Code, loc)
	}
}

// TestUnlockAPISaysWhetherItWasLocked: the API's unlock answer carries
// was_locked, the directory's answer at the write.
func TestUnlockAPISaysWhetherItWasLocked(t *testing.T) {
	tb := newTestbed(t, nil)
	_, mid := tb.enroll(t, "carol", "carol@home.example")
	for _, locked := range []bool{false, true} {
		tb.dir.Edit("carol", func(u *directory.User, _ *string) { u.Status.Locked = locked })
		c := newClient(t, tb)
		var f struct {
			Flow string `json:"flow"`
		}
		w := c.api("POST", "/api/v1/unlock", `{"username":"carol"}`, nil)
		if err := json.Unmarshal(w.Body.Bytes(), &f); err != nil || f.Flow == "" {
			t.Fatalf("unlock start: %d %s", w.Code, w.Body)
		}
		c.api("POST", "/api/v1/unlock/send", fmt.Sprintf(`{"flow":%q,"method":%q}`, f.Flow, mid), nil)
		w = c.api("POST", "/api/v1/unlock/verify", fmt.Sprintf(`{"flow":%q,"method":%q,"code":%q}`, f.Flow, mid, tb.inbox.LastCode(t, "carol@home.example")), nil)
		// a proof gives the flow a new id
		if err := json.Unmarshal(w.Body.Bytes(), &f); w.Code != 200 || err != nil || f.Flow == "" {
			t.Fatalf("unlock verify: %d %s", w.Code, w.Body)
		}
		w = c.api("POST", "/api/v1/unlock/complete", fmt.Sprintf(`{"flow":%q}`, f.Flow), nil)
		want := fmt.Sprintf(`{"status":"unlocked","was_locked":%v}`, locked)
		if got := strings.TrimSpace(w.Body.String()); w.Code != 200 || got != want {
			t.Fatalf("unlock complete, locked %v: %d %s, want %s", locked, w.Code, got, want)
		}
	}
}
