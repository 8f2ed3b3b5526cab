package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// The admin console against the built binary, on slapd and on Samba AD:
// an admin whom self-service excludes sets up an authenticator app, signs
// in to the console in Chromium (axe-core and phone widths on every page)
// and switches Selected to All, after which a user outside the groups can
// register; None answers every name as an unknown one; the API's sign-in
// answers every failure alike; no admin call answers without an admin
// session; the activity log finds a test user's registration; nothing
// secret reaches the logs or the audit export.
//
// admin.groups is sspr-admins and cycle-b: alice (staff, sspr-admins) is
// an admin self-service covers; judy (cycle-a, which excludes her from
// self-service, in a cycle with cycle-b) an admin it excludes. The
// directory's groups are not changed.

func TestAdminOpenLDAP(t *testing.T) {
	parallel(t)
	runAdminSuite(t, dirtest.StartOpenLDAP(t))
}

func TestAdminActiveDirectory(t *testing.T) {
	parallel(t)
	runAdminSuite(t, dirtest.StartSamba(t))
}

// adminApp is an admin's authenticator app and the steps whose codes it
// has spent (each step's code is accepted once).
type adminApp struct {
	secret string
	used   map[int64]bool
}

// code is a code of a step the gateway accepts now (the current one or
// the next) that was not used yet; it waits for the next step when both
// were.
func (a *adminApp) code(t testing.TB) string {
	t.Helper()
	for {
		cur := currentStep()
		for _, st := range []int64{cur + 1, cur} {
			if !a.used[st] {
				a.used[st] = true
				return stepCode(t, a.secret, st)
			}
		}
		time.Sleep(time.Until(time.Unix((cur+1)*30, 0)) + 200*time.Millisecond)
	}
}

// peek is a code of the current step, not marked used: for tries that
// are refused before the code is checked, or with a code that is wrong.
func (a *adminApp) peek(t testing.TB) string {
	t.Helper()
	return stepCode(t, a.secret, currentStep())
}

// enrolApp registers and verifies an authenticator app for user.
func (e *env) enrolApp(user string) *adminApp {
	e.t.Helper()
	tok := e.signIn(user)
	en := e.addApp(tok)
	app := &adminApp{secret: en.Secret, used: map[int64]bool{}}
	e.must(200, e.api("POST", "/api/v1/methods/"+en.ID+"/verify", tok, map[string]string{"code": app.code(e.t)}), "verify "+user+"'s app")
	return app
}

// adminSignIn opens an admin session over the API.
func (e *env) adminSignIn(user string, app *adminApp) string {
	e.t.Helper()
	r := e.must(200, e.api("POST", "/api/v1/admin/session", "", map[string]string{"username": user, "password": e.dir.Password(user), "code": app.code(e.t)}), "admin sign-in "+user)
	e.secrets = append(e.secrets, r.str("token"))
	return r.str("token")
}

// settings reads the settings over the API: their version and the
// settings object.
func (e *env) settings(token string) (int, map[string]any) {
	e.t.Helper()
	r := e.must(200, e.api("GET", "/api/v1/admin/settings", token, nil), "GET settings")
	return int(r.JSON["version"].(float64)), r.JSON["settings"].(map[string]any)
}

// setScope saves the settings with policy.scope changed.
func (e *env) setScope(token, scope string) {
	e.t.Helper()
	v, set := e.settings(token)
	set["policy"].(map[string]any)["scope"] = scope
	e.must(200, e.api("PUT", "/api/v1/admin/settings", token, map[string]any{"version": v, "settings": set}), "PUT scope "+scope)
}

func runAdminSuite(t *testing.T, srv *dirtest.Server) {
	exe := chromiumPath(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Methods: totpMethods, Admin: []string{srv.Group("sspr-admins"), srv.Group("cycle-b")}})

	alice := e.enrolApp("alice")
	carol := e.enrolApp("carol") // no admin

	t.Run("an admin self-service excludes may set up only an app", func(t *testing.T) {
		e.t = t
		tok := e.signIn("judy")
		if r := e.api("POST", "/api/v1/methods", tok, map[string]string{"type": "email", "address": "judy.home@example.net"}); r.Status != 422 || r.errCode() != "method_unavailable" {
			t.Fatalf("judy adding an email: %d %s", r.Status, r.Body)
		}
		// frank is neither eligible nor an admin: no session at all
		if r := e.api("POST", "/api/v1/session", "", map[string]string{"username": "frank", "password": srv.Password("frank")}); r.Status != 403 {
			t.Fatalf("frank's sign-in: %d %s", r.Status, r.Body)
		}
	})
	t.Run("the sign-in answers every failure alike", func(t *testing.T) {
		e.t = t
		try := func(user, password, code string) []byte {
			r := e.api("POST", "/api/v1/admin/session", "", map[string]string{"username": user, "password": password, "code": code})
			if r.Status != 401 || r.errCode() != "sign_in_failed" {
				t.Fatalf("%s: %d %s, want 401 sign_in_failed", user, r.Status, r.Body)
			}
			return nonces.ReplaceAll(r.Body, nil)
		}
		answers := map[string][]byte{
			"unknown name":          try("nobody-at-all", "Some-Pass1!", alice.peek(t)),
			"wrong password":        try("alice", "Wrong-Pass1!", alice.peek(t)),
			"wrong code":            try("alice", srv.Password("alice"), wrongCode(alice.peek(t))),
			"not an admin":          try("carol", srv.Password("carol"), carol.peek(t)),
			"an admin with no app":  try("judy", srv.Password("judy"), "123456"),
			"a code of another app": try("alice", srv.Password("alice"), carol.peek(t)),
		}
		var first []byte
		for what, a := range answers {
			if first == nil {
				first = a
			} else if string(a) != string(first) {
				t.Errorf("%s answers %s, others %s", what, a, first)
			}
		}
	})
	judy := e.enrolApp("judy")
	token := e.adminSignIn("alice", alice)
	carolReg := e.signIn("carol")

	t.Run("no admin call answers without an admin session", func(t *testing.T) {
		e.t = t
		calls := [][2]string{{"GET", "/api/v1/admin/settings"}, {"PUT", "/api/v1/admin/settings"}, {"GET", "/api/v1/admin/audit"},
			{"GET", "/api/v1/admin/audit?format=csv"}, {"GET", "/api/v1/admin/explain?username=carol"}, {"GET", "/api/v1/admin/blocked"}, {"POST", "/api/v1/admin/unblock"},
			{"POST", "/api/v1/admin/preview"}, {"GET", "/api/v1/admin/groups?q=staff"},
			{"DELETE", "/api/v1/admin/session"}}
		for _, tok := range []string{"", "x-not-a-token-0123456789abcdef", carolReg} {
			for _, c := range calls {
				var body any
				switch c[0] {
				case "PUT":
					body = map[string]any{"version": 0, "settings": map[string]any{"policy": map[string]any{"scope": "all"}}}
				case "POST":
					body = map[string]any{"account": "carol", "settings": map[string]any{"policy": map[string]any{"scope": "all"}}}
				}
				if r := e.api(c[0], c[1], tok, body); r.Status != 401 || r.errCode() != "admin_session_required" {
					t.Errorf("%s %s with token %.8q: %d %s", c[0], c[1], tok, r.Status, r.Body)
				}
			}
		}
		for _, p := range []string{"/admin/properties", "/admin/methods", "/admin/customization", "/admin/activity", "/admin/activity.csv", "/admin/explain", "/admin/blocked", "/admin/notifications", "/admin/registration"} {
			if st, _, _ := e.raw("GET", p, "", "", nil); st != 401 {
				t.Errorf("GET %s anonymous: %d", p, st)
			}
		}
		// and the admin's token opens no registration session
		if r := e.api("GET", "/api/v1/methods", token, nil); r.Status != 401 {
			t.Errorf("an admin token on /api/v1/methods: %d", r.Status)
		}
		if v, _ := e.settings(token); v != 0 {
			t.Fatalf("settings version %d after refused calls", v)
		}
	})

	t.Run("the preview of Selected to All agrees with explain", func(t *testing.T) {
		e.t = t
		_, set := e.settings(token)
		set["policy"].(map[string]any)["scope"] = "all"
		r := e.must(200, e.api("POST", "/api/v1/admin/preview", token, map[string]any{"settings": set}), "preview")
		type change struct {
			Count  int
			Sample []string
		}
		var p struct {
			Users         int
			Before, After struct{ Eligible, Ready int }
			GainEligible  change `json:"gain_eligible"`
			LoseEligible  change `json:"lose_eligible"`
		}
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatal(err)
		}
		t.Logf("preview: %s", r.Body)
		gain := map[string]bool{}
		for _, n := range p.GainEligible.Sample {
			gain[strings.ToLower(n)] = true
		}
		// seeded: erin, frank, grace, heidi and the twins are in no group;
		// ivan is disabled, judy excluded (cycle-a), the rest in staff
		for _, n := range []string{"erin", "frank", "grace", "heidi", "twin1", "twin2"} {
			if !gain[n] && p.GainEligible.Count <= len(p.GainEligible.Sample) {
				t.Errorf("%s does not gain self-service with scope all", n)
			}
		}
		for _, n := range []string{"ivan", "judy", "administrator", "alice", "bob", "carol"} {
			if gain[n] {
				t.Errorf("%s gains self-service with scope all", n)
			}
		}
		if p.LoseEligible.Count != 0 || p.After.Eligible != p.Before.Eligible+p.GainEligible.Count || p.Users < len(dirtest.People) {
			t.Errorf("preview numbers: %+v", p)
		}
		// the seeded directory: alice, bob and carol are in staff (bob and
		// carol through engineering); with scope all everyone is but ivan
		// (disabled) and judy (cycle-a, excluded), and on AD the built-in
		// Administrator (Domain Admins), Guest and krbtgt (disabled)
		left := 2
		if srv.Flavor == directory.ActiveDirectory {
			left = 5
		}
		if p.Before.Eligible != 3 || p.After.Eligible != p.Users-left {
			t.Errorf("preview of the seeded directory: %d users, %d eligible before (want 3), %d after (want %d)",
				p.Users, p.Before.Eligible, p.After.Eligible, p.Users-left)
		}
		// explain, which reads each account (on AD its token), says the
		// same of every name the preview lists
		for n := range gain {
			r := e.must(200, e.api("GET", "/api/v1/admin/explain?username="+url.QueryEscape(n), token, nil), "explain "+n)
			if r.JSON["eligible"] != false || r.JSON["reason"] != "not_in_group" {
				t.Errorf("preview says %s gains, explain says %s", n, r.Body)
			}
		}
	})

	t.Run("in Chromium: Selected to All", func(t *testing.T) {
		e.t = t
		// erin is in no group: not eligible yet
		if r := e.api("POST", "/api/v1/session", "", map[string]string{"username": "erin", "password": srv.Password("erin")}); r.Status != 403 {
			t.Fatalf("erin before: %d %s", r.Status, r.Body)
		}
		b := newBrowser(t, exe, e.base)
		b.open("/admin", 200)
		b.check("admin sign-in")
		b.typeInto("username", "judy")
		b.typeInto("password", srv.Password("judy"))
		b.typeInto("code", wrongCode(judy.peek(t)))
		b.click(`form[action="/admin"] button[type=submit]`, 401, "/admin")
		b.mustError("The username or password is incorrect")
		b.check("admin sign-in: refused")
		b.typeInto("password", srv.Password("judy"))
		b.typeInto("code", judy.code(t))
		b.click(`form[action="/admin"] button[type=submit]`, 200, "/admin/properties")
		b.mustSee("Self-service password reset enabled", "Selected: members of the groups below")
		b.check("admin properties")
		b.typeInto("q", "staff")
		b.click(`form[action="/admin/properties"][method="get"] button[type=submit]`, 200, "/admin/properties")
		b.mustSee(srv.Group("staff"), "members (nested groups counted)")
		b.check("admin properties: group search")
		b.tick("scope-all")
		b.click(`button[name=action][value=preview]`, 200, "/admin/properties")
		b.mustSee("Impact of these settings (not saved yet)", "Gain self-service: ")
		b.check("admin properties: preview")
		b.click(`button[name=action][value=save]`, 200, "/admin/properties")
		b.mustSee("The settings are saved", "Version 1")
		b.check("admin properties: saved")
		// in force on the instance at once: erin registers, and resets
		// her password as a test user would
		erinEmail := registeredEmail(t, e, "erin", "erin.home@example.net")
		f, _ := e.startReset("erin")
		e.must(200, e.verifyByEmail(&f, erinEmail, "erin.home@example.net"), "erin's code")
		e.must(200, e.complete(f, "Admin-Found-This-Reset-7"), "erin's reset")
		for _, p := range []struct{ path, name, see string }{
			{"/admin/methods", "admin methods", "Number of methods required to reset"},
			{"/admin/registration", "admin registration", "re-confirm their recovery methods"},
			{"/admin/notifications", "admin notifications", "Notify all admins"},
			{"/admin/customization", "admin customization", "Helpdesk link"},
			{"/admin/activity", "admin activity", "reset.completed"},
			{"/admin/blocked", "admin blocked", "Unblock forgets"},
			{"/admin/explain", "admin explain", "Username"},
		} {
			b.click(fmt.Sprintf(`nav a[href=%q]`, p.path), 200, p.path)
			b.mustSee(p.see)
			b.check(p.name)
			if p.path == "/admin/methods" {
				// two methods required: the preview names who that leaves
				// without a way to reset (erin has one email), then the save
				b.tick("required-2")
				b.click(`button[name=action][value=preview]`, 200, "/admin/methods")
				b.mustSee("Could reset and no longer can", "erin")
				b.check("admin methods: preview of two methods")
				b.click(`button[name=action][value=save]`, 200, "/admin/methods")
				b.mustSee("The settings are saved", "Version 2")
			}
		}
		b.typeInto("username", "erin")
		b.click(`form[action="/admin/explain"] button[type=submit]`, 200, "/admin/explain")
		b.mustSee("Eligible, but has not registered enough methods yet (1 of 2)", "email: ") // two methods are required now
		b.check("admin explain: erin")
		b.click(`form[action="/admin/signout"] button[type=submit]`, 200, "/admin")
		b.open("/admin/properties", 401)
	})

	t.Run("a stale save answers 409 with what differs", func(t *testing.T) {
		e.t = t
		_, set := e.settings(token)
		set["policy"].(map[string]any)["scope"] = "none"
		r := e.api("PUT", "/api/v1/admin/settings", token, map[string]any{"version": 0, "settings": set})
		// version 0 is two saves old; the save differs from what is in
		// force in its scope
		if r.Status != 409 || r.errCode() != "conflict" || fmt.Sprint(r.JSON["changed"]) != "[policy.scope]" {
			t.Fatalf("stale save: %d %s", r.Status, r.Body)
		}
		if v, set := e.settings(token); v != 2 || set["policy"].(map[string]any)["scope"] != "all" || set["policy"].(map[string]any)["methods_required"] != 2.0 {
			t.Fatalf("after the stale save: version %d, %v", v, set["policy"])
		}
	})

	t.Run("None answers every name as an unknown one", func(t *testing.T) {
		e.t = t
		e.setScope(token, "none")
		shape := func(user string) string {
			r := e.api("POST", "/api/v1/reset", "", map[string]string{"username": user})
			keys := slices.Sorted(maps.Keys(r.JSON))
			return fmt.Sprintf("%d %v required=%v", r.Status, keys, r.JSON["required"])
		}
		want := shape("nobody-at-all")
		for _, u := range []string{"carol", "erin", "alice"} {
			if got := shape(u); got != want {
				t.Errorf("%s with scope none: %s, an unknown name: %s", u, got, want)
			}
		}
		if r := e.api("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": srv.Password("carol")}); r.Status != 403 {
			t.Errorf("carol's registration with scope none: %d", r.Status)
		}
		e.setScope(token, "selected")
	})

	t.Run("the activity log finds the test user's reset", func(t *testing.T) {
		e.t = t
		r := e.must(200, e.api("GET", "/api/v1/admin/audit?account=erin&event=reset.completed", token, nil), "audit erin's reset")
		if !strings.Contains(string(r.Body), `"event":"reset.completed","outcome":"success"`) {
			t.Fatalf("erin's reset is not in the activity log: %s", r.Body)
		}
		r = e.must(200, e.api("GET", "/api/v1/admin/audit?account=erin&event=registration.", token, nil), "audit erin")
		var page struct {
			Events []struct {
				Event, Outcome string
				AccountID      string `json:"account_id"`
			} `json:"events"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil || len(page.Events) == 0 {
			t.Fatalf("erin's registration events: %s", r.Body)
		}
		for _, ev := range page.Events {
			if !strings.HasPrefix(ev.Event, "registration.") || ev.AccountID == "" {
				t.Errorf("event %+v does not match the filter", ev)
			}
		}
		r = e.must(200, e.api("GET", "/api/v1/admin/explain?username=erin", token, nil), "explain erin")
		if r.JSON["eligible"] != false || r.JSON["reason"] != "not_in_group" {
			t.Errorf("erin with scope selected again: %s", r.Body)
		}
	})

	t.Run("no secret in the logs or the audit export", func(t *testing.T) {
		e.t = t
		_, csv, _ := e.raw("GET", "/api/v1/admin/audit?format=csv&limit=1000", "", "", map[string]string{"Authorization": "Bearer " + token})
		if !strings.Contains(string(csv), "admin.settings_changed") {
			t.Fatalf("the export lacks the settings' changes:\n%.2000s", csv)
		}
		logs, _ := readFile(e.log)
		audit, _ := readFile(e.audit)
		secrets := append([]string{srv.ServicePassword, srv.Password("alice"), srv.Password("judy"), srv.Password("carol"),
			alice.secret, carol.secret, judy.secret, "erin.home@example.net"}, e.secrets...)
		for name, text := range map[string]string{"log": logs, "audit": audit, "audit export": string(csv)} {
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("the %s holds %.12q…", name, s)
				}
			}
		}
	})
}

// tick clicks the radio button or checkbox with the given id (no page
// load follows).
func (b *browser) tick(id string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID(id), chromedp.NodeVisible)); err != nil {
		b.t.Fatalf("click #%s: %v", id, err)
	}
}

// TestAdminSettingsAcrossInstances: two instances on one PostgreSQL
// store. A save on one is in force on the other without a restart (each
// instance reads the stored version every 2 s: the test logs the delay it
// saw, and waits up to 30 s, not a deadline of its own); a save based on
// the old version, on the other instance, answers 409.
func TestAdminSettingsAcrossInstances(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	pg := pgtest.Start(t)
	mail, sms := startMail(t)
	key := make([]byte, 48)
	rand.Read(key)
	p := params{Store: postgresStore(pg, pg.NewDatabase(t)), SecretKey: key, Methods: totpMethods, Admin: []string{srv.Group("sspr-admins")}}
	a := startGateway(t, srv, mail, sms, p)
	b := startGateway(t, srv, mail, sms, p)

	alice := a.enrolApp("alice")
	token := a.adminSignIn("alice", alice)
	erinSignIn := func(e *env) int {
		return e.api("POST", "/api/v1/session", "", map[string]string{"username": "erin", "password": srv.Password("erin")}).Status
	}
	if st := erinSignIn(b); st != 403 {
		t.Fatalf("erin on B before: %d", st)
	}
	// the admin session is the store's: B knows it
	v, set := b.settings(token)
	set["policy"].(map[string]any)["scope"] = "all"
	saved := time.Now()
	a.must(200, a.api("PUT", "/api/v1/admin/settings", token, map[string]any{"version": v, "settings": set}), "PUT on A")
	for erinSignIn(b) != 200 {
		if time.Since(saved) > 30*time.Second {
			t.Fatal("B did not apply A's save within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("B applied A's save %v after it", time.Since(saved).Round(10*time.Millisecond))
	set["policy"].(map[string]any)["scope"] = "none"
	r := b.api("PUT", "/api/v1/admin/settings", token, map[string]any{"version": v, "settings": set})
	if r.Status != 409 || r.errCode() != "conflict" {
		t.Fatalf("a stale save on B: %d %s", r.Status, r.Body)
	}
	cur := r.JSON["current"].(map[string]any)
	if cur["version"].(float64) != float64(v+1) || cur["settings"].(map[string]any)["policy"].(map[string]any)["scope"] != "all" {
		t.Fatalf("409's current: %v", cur)
	}
	if st := erinSignIn(a); st != 200 {
		t.Fatalf("erin on A after the refused save: %d", st)
	}
}

// TestAdminPasskeyBrowser: an admin whom self-service excludes (judy) adds
// a passkey at /register (the only strong methods offered to her) and
// signs in to the console with her password and the passkey, in Chromium
// with its virtual authenticator (see webauthn_test.go), on slapd.
func TestAdminPasskeyBrowser(t *testing.T) {
	parallel(t)
	exe := chromiumPath(t)
	srv := dirtest.StartOpenLDAP(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{PublicHost: "localhost", Admin: []string{srv.Group("sspr-admins"), srv.Group("cycle-b")}})
	b := newBrowser(t, exe, e.base)
	b.virtualAuthenticator(t)
	b.open("/register", 200)
	b.typeInto("username", "judy")
	b.typeInto("password", srv.Password("judy"))
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("Add a passkey")
	if strings.Contains(b.mainText(), "Add an email") {
		t.Fatal("an admin self-service excludes is offered email")
	}
	b.typeInto("passkey-label", "Admin key")
	b.click(`form:has(input[name=type][value=webauthn]) button[type=submit]`, 200, "/register/methods")
	b.clickAndWait("#passkey-start", "/register/methods?notice=passkey_added")
	b.click(`form[action="/register/signout"] button[type=submit]`, 200, "/")

	b.open("/admin", 200)
	b.mustSee("Or sign in with a passkey")
	b.check("admin sign-in with passkeys")
	b.typeInto("pk-username", "judy")
	b.typeInto("pk-password", srv.Password("judy"))
	b.click(`form[action="/admin/passkey-start"] button[type=submit]`, 200, "/admin/passkey-start")
	b.mustSee("Use passkey")
	b.checkPasskey("admin sign-in: passkey")
	b.clickAndWait("#passkey-start", "/admin/properties")
	b.mustSee("Self-service password reset enabled")
	audit, err := readFile(e.audit)
	if err != nil || !strings.Contains(audit, `"event":"admin.sign_in"`) || !strings.Contains(audit, `"method":"webauthn"`) {
		t.Fatalf("no passkey sign-in in the audit: %v", err)
	}
}
