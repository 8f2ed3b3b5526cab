package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChecklistWrites: password writes (items C8, D8, F8, G3, G4, G6, H1):
// one password policy, refusals keep the flow, long passwords pass
// unchanged, eligibility is checked again before the write, unlock clears
// the lockout only, and every write is told on every channel.
func TestChecklistWrites(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistWritesChecks(t, ckSetup(t, d))
		})
	}
}

func checklistWritesChecks(t *testing.T, r *ckRun) {
	e, srv, box, dom, pw := r.e, r.srv, r.box, r.dom, r.pw

	t.Run("F8 G3 G4 G6 one password policy, refusals keep the flow, long passwords pass unchanged", func(t *testing.T) {
		e.t = t
		const addr = "heidi.ck@example.net"
		_, mid, _ := e.register("heidi", pw("heidi"), addr, "")
		f := e.proveEmail("reset", e.start("reset", "heidi").str("flow"), mid, addr)
		codes := func(a ckAnswer) string {
			var out []string
			errs, _ := a.obj["errors"].([]any)
			for _, v := range errs {
				c, _ := v.(map[string]any)["code"].(string)
				out = append(out, c)
			}
			sort.Strings(out)
			return strings.Join(out, ",")
		}
		// the same rules for a reset and for a change (as heidi, with her
		// right old password: the rules are checked once she is proven)
		for _, cand := range []string{"heidi-Passwort-2024", "Kurz-1!", strings.Repeat("Lang-Passwort-", 10)} {
			r := e.complete(f, cand)
			c := e.call("POST", "/api/v1/change", "", ckJSON(map[string]string{"username": "heidi", "old_password": pw("heidi"), "new_password": cand}))
			if r.status != 422 || c.status != 422 || codes(r) == "" || codes(r) != codes(c) {
				t.Fatalf("%q: reset %s, change %s", cand, r, c)
			}
		}
		if err := srv.UserBind("heidi", pw("heidi")); err != nil {
			t.Fatalf("a refused change changed the password: %v", err)
		}
		// the directory's own policy (14 characters for heidi): a failure
		// with its reason, no notice, no success in the audit, and the
		// flow still open
		resetNotices := len(box.list(t, addr, "password was reset"))
		quiet := box.counts(t, ckKey{addr, "password was reset"}, ckKey{"heidi@" + dom, "password was reset"})
		a := e.complete(f, "Short-Pass-1!")
		if a.status != 422 || codes(a) != "directory_too_short" {
			t.Fatalf("too short for the directory: %s", a)
		}
		var outcomes []string
		for _, ev := range e.audit() {
			if ev["request_id"] == a.hdr.Get("X-Request-Id") {
				outcomes = append(outcomes, fmt.Sprint(ev["event"], "/", ev["outcome"]))
			}
		}
		if !slices.Equal(outcomes, []string{"reset.completed/refused"}) {
			t.Fatalf("audit of the refused write: %v", outcomes)
		}
		box.noNewMail(t, quiet, "a write the directory refused")
		// a long password with spaces and non-ASCII letters, passed as typed
		const ascii = "Ein sehr langes Passwort mit Leerzeichen und Zahlen 1234567890 ab"
		long := ascii + " Grüße aus Köln ✓"
		if len(ascii) < 64 {
			t.Fatal("the test password is too short")
		}
		e.want(200, e.complete(f, long), "complete with a long password")
		if err := srv.UserBind("heidi", long); err != nil {
			t.Fatalf("the long password does not bind: %v", err)
		}
		for _, cut := range []string{long[:64], strings.ToLower(long)} {
			if srv.UserBind("heidi", cut) == nil {
				t.Fatalf("a different password binds: %q", cut)
			}
		}
		box.waitMail(t, addr, "password was reset", resetNotices+1)
	})

	t.Run("D8 eligibility is checked again right before the write", func(t *testing.T) {
		e.t = t
		const addr = "bob.ck@example.net"
		_, mid, _ := e.register("bob", pw("bob"), addr, "")
		f := e.proveEmail("reset", e.start("reset", "bob").str("flow"), mid, addr)
		// between the proof and the write, bob joins an excluded group
		quiet := box.counts(t, ckKey{addr, "password was reset"}, ckKey{"bob@" + dom, "password was reset"})
		addToGroup(t, srv, "bob", "cycle-a")
		if a := e.complete(f, "Excluded-Bob-Pass-9"); a.status != 403 || a.errCode() != "not_eligible" {
			t.Fatalf("complete after bob became ineligible: %s", a)
		}
		if err := srv.UserBind("bob", pw("bob")); err != nil {
			t.Fatalf("bob's password changed: %v", err)
		}
		if evs := e.events("reset.completed", "not_eligible"); len(evs) != 1 || evs[0]["account_id"] == "" {
			t.Fatalf("audit: %v", evs)
		}
		box.noNewMail(t, quiet, "a write refused for eligibility")
	})

	t.Run("C8 H1 unlock clears the lockout only; unlock and change are told on every channel", func(t *testing.T) {
		e.t = t
		const addr = "twin1.ck@example.net"
		dirMail := "twin1@" + dom
		_, mid, _ := e.register("twin1", pw("twin1"), addr, "")
		for i := 0; i < 3; i++ {
			srv.UserBind("twin1", "Bad-Guess-1!")
		}
		if srv.UserBind("twin1", pw("twin1")) == nil {
			t.Fatal("twin1 not locked")
		}
		f := e.start("unlock", "twin1").str("flow")
		if a := e.call("POST", "/api/v1/unlock/complete", "", ckJSON(map[string]string{"flow": f})); a.status != 409 {
			t.Fatalf("unlock without a proof: %s", a)
		}
		f = e.proveEmail("unlock", f, mid, addr)
		e.want(200, e.call("POST", "/api/v1/unlock/complete", "", ckJSON(map[string]string{"flow": f})), "unlock")
		if err := srv.UserBind("twin1", pw("twin1")); err != nil {
			t.Fatalf("after the unlock the old password does not bind: %v", err)
		}
		checkNotice := func(to, subject string) {
			t.Helper()
			m := box.message(t, box.waitMail(t, to, subject, 1)[0].ID)
			txt := m.Text + m.HTML
			if !strings.Contains(txt, strconv.Itoa(time.Now().UTC().Year())) || !strings.Contains(txt, "helpdesk@example.org") ||
				!strings.Contains(strings.ToLower(txt), "not") {
				t.Fatalf("notice %q lacks the time or the way to report it:\n%s", m.Subject, m.Text)
			}
			for _, s := range append([]string{pw("twin1"), "Harbor-Kite-Meadow-77", srv.ServicePassword}, e.secrets...) {
				if s != "" && strings.Contains(txt, s) {
					t.Fatalf("notice %q holds a secret", m.Subject)
				}
			}
			for _, l := range regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>]*`).FindAllString(txt, -1) {
				if !strings.HasPrefix(l, e.base) {
					t.Fatalf("notice %q links elsewhere: %s", m.Subject, l)
				}
			}
		}
		for _, to := range []string{addr, dirMail} {
			checkNotice(to, "your account was unlocked")
		}
		if evs := e.events("unlock.completed", "success"); len(evs) != 1 || evs[0]["account_id"] == "" {
			t.Fatalf("audit %v", evs)
		}
		// a disabled account gets the usual answer and stays disabled
		iv := e.start("unlock", "ivan")
		e.send("unlock", iv.str("flow"), iv.methodIDs()[0])
		if srv.UserBind("ivan", pw("ivan")) == nil {
			t.Fatal("ivan can bind")
		}
		// a change ends the account's sessions and flows and is told
		tok := e.signIn("twin1", pw("twin1"))
		open := e.start("reset", "twin1").str("flow")
		e.want(200, e.call("POST", "/api/v1/change", "", ckJSON(map[string]string{"username": "twin1", "old_password": pw("twin1"), "new_password": "Harbor-Kite-Meadow-77"})), "change")
		for _, to := range []string{addr, dirMail} {
			checkNotice(to, "your password was changed")
		}
		if a := e.call("GET", "/api/v1/methods", tok, ""); a.status != 401 {
			t.Fatalf("a session from before the change: %s", a)
		}
		if a := e.send("reset", open, mid); a.status != 410 {
			t.Fatalf("a flow from before the change: %s", a)
		}
		if err := srv.UserBind("twin1", "Harbor-Kite-Meadow-77"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsWrites) })
}

// ckEventsWrites is what the run of TestChecklistWrites must leave in its audit (see ckAudit).
var ckEventsWrites = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "registration.method_added",
		"registration.method_verified/success", "reset.started", "reset.code_sent", "reset.gate/passed",
		"reset.completed/success", "reset.completed/refused", "reset.completed/not_eligible", "unlock.started",
		"unlock.code_sent", "unlock.gate/passed", "unlock.completed/success", "change.completed/success",
	},
	secrets: 15, notices: 9,
}
