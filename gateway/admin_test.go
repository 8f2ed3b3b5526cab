package gateway

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// The admin console over the in-memory directory: who may sign in, the
// settings API and pages, and that nothing of the console answers
// without an admin session. The real-server suites are in e2e/admin_test.go.

// adminConfig is a configuration whose policy is the testbed's
// (flowtest.Eligibility with authenticator apps) and whose console is on
// for cn=admins (alice).
func adminConfig() *config.Config {
	cfg := config.Default()
	cfg.Server.PublicURL = flowtest.PublicURL().String()
	cfg.Server.Helpdesk = flowtest.Helpdesk
	cfg.SMS.Enabled = true
	cfg.Policy.Scope, cfg.Policy.Groups = policy.ScopeSelected, []string{"cn=staff"}
	cfg.Policy.Methods = []string{"email", "sms", "totp"}
	cfg.Policy.Tiers = []config.Tier{{Groups: []string{"cn=admins"}, MethodsRequired: 2}}
	cfg.Admin.Groups = []string{"cn=admins"}
	return cfg
}

// adminBed is a testbed with the console on; alice (cn=admins) has an
// authenticator app, and the clock is on a step her set-up did not use.
func adminBed(t *testing.T, tweak func(*flow.Options)) (*testbed, *flowtest.Clock, string) {
	t.Helper()
	cfg := adminConfig()
	tb, clk, _ := totpBed(t, func(o *flow.Options) {
		o.Eligibility = cfg.Eligibility()
		o.Admin = flow.AdminOptions{Groups: cfg.Admin.Groups, Settings: cfg.Admin.Settings, Config: cfg}
		if tweak != nil {
			tweak(o)
		}
	})
	_, en := tb.enrolApp(t, clk, "alice")
	clk.Add(30 * time.Second)
	return tb, clk, en.Secret
}

// adminToken signs alice in over the API.
func adminToken(t *testing.T, tb *testbed, clk *flowtest.Clock, secret string) string {
	t.Helper()
	c := newClient(t, tb)
	body, _ := json.Marshal(map[string]string{"username": "alice", "password": tb.dir.Password("alice"), "code": flowtest.CodeAt(t, secret, clk.Now())})
	w := c.api("POST", "/api/v1/admin/session", string(body), nil)
	if w.Code != http.StatusOK {
		t.Fatalf("admin sign-in: %d %s", w.Code, w.Body)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Token == "" {
		t.Fatalf("admin sign-in answer %s: %v", w.Body, err)
	}
	clk.Add(30 * time.Second) // the next sign-in needs a fresh step
	return out.Token
}

func TestAdminSignInAnswersAlikeForEveryFailure(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	// carol has an app too, but is no admin; dana is an admin with none
	_, carolApp := tb.enrolApp(t, clk, "carol")
	tb.dir.AddUser(directory.User{DN: "uid=dana,ou=people,dc=x", ID: "id-dana", Username: "dana", DisplayName: "Dana Test", Mail: "dana@corp.example"},
		"Dana-Pass1!", "cn=staff", "cn=admins")
	clk.Add(30 * time.Second)
	good := func() string { return flowtest.CodeAt(t, secret, clk.Now()) }
	cases := []struct{ name, user, password, code string }{
		{"unknown name", "nobody", "Whatever-Pass1!", good()},
		{"wrong password", "alice", "Wrong-Pass1!", good()},
		{"wrong code", "alice", tb.dir.Password("alice"), flowtest.WrongTOTP(t, secret, clk.Now())},
		{"not an admin", "carol", tb.dir.Password("carol"), flowtest.CodeAt(t, carolApp.Secret, clk.Now())},
		{"an admin without an app", "dana", "Dana-Pass1!", "123456"},
	}
	var first string
	for _, tc := range cases {
		c := newClient(t, tb)
		body, _ := json.Marshal(map[string]string{"username": tc.user, "password": tc.password, "code": tc.code})
		w := c.api("POST", "/api/v1/admin/session", string(body), nil)
		var e apiErrorBody
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != http.StatusUnauthorized || e.Error.Code != flow.CodeSignInFailed {
			t.Fatalf("%s: %d %s, want 401 sign_in_failed", tc.name, w.Code, w.Body)
		}
		if first == "" {
			first = e.Error.Message
		} else if e.Error.Message != first {
			t.Errorf("%s: message %q differs from %q", tc.name, e.Error.Message, first)
		}
		// the page answers the same, with the same words
		pc := newClient(t, tb)
		pw := pc.post("/admin", "/admin", url.Values{"username": {tc.user}, "password": {tc.password}, "code": {tc.code}}, nil)
		if pw.Code != http.StatusUnauthorized || !strings.Contains(pw.Body.String(), "The username or password is incorrect") {
			t.Errorf("%s: page %d", tc.name, pw.Code)
		}
		if _, ok := pc.cookies["__Host-latchkey_admin"]; ok {
			t.Errorf("%s: an admin cookie was set", tc.name)
		}
	}
	// the right password, membership and code open a session; the code
	// is then spent
	code := good()
	c := newClient(t, tb)
	if w := c.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {code}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("admin sign-in page: %d %s", w.Code, w.Body)
	}
	ck := c.cookies["__Host-latchkey_admin"]
	if ck == nil || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("admin cookie %+v", ck)
	}
	if w := c.get("/admin/properties"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Self-service password reset enabled") {
		t.Fatalf("properties page: %d", w.Code)
	}
	again := newClient(t, tb)
	if w := again.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {code}}, nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("a replayed code: %d, want 401", w.Code)
	}
	if got := tb.auditOutcomes(t, "admin.sign_in"); strings.Count(strings.Join(got, ","), "success") != 1 {
		t.Errorf("admin.sign_in outcomes %v, want one success", got)
	}
	// each failure was audited with its reason (dana's: no strong method)
	evs, _ := tb.st.ListAudit(t.Context(), storeQuery("admin.sign_in"))
	reasons := map[string]bool{}
	for _, e := range evs {
		reasons[e.Details["reason"]] = true
	}
	for _, r := range []string{"no_strong_method", "not_admin", "wrong_code"} {
		if !reasons[r] {
			t.Errorf("no admin.sign_in failure with reason %s: %v", r, reasons)
		}
	}
}

func TestAdminRoutesRefuseWithoutAnAdminSession(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	// a registration session of the same admin is not an admin session
	reg, _ := tb.enrolApp(t, clk, "carol")
	admin := adminToken(t, tb, clk, secret)
	apiCalls := []struct{ method, path, body string }{
		{"GET", "/api/v1/admin/settings", ""},
		{"PUT", "/api/v1/admin/settings", `{"version":0,"settings":{}}`},
		{"GET", "/api/v1/admin/audit", ""},
		{"GET", "/api/v1/admin/explain?username=carol", ""},
		{"GET", "/api/v1/admin/blocked", ""},
		{"POST", "/api/v1/admin/preview", `{"settings":{"policy":{"scope":"all"},"server":{}}}`},
		{"GET", "/api/v1/admin/groups?q=staff", ""},
		{"POST", "/api/v1/admin/unblock", `{"account":"carol"}`},
		{"DELETE", "/api/v1/admin/session", ""},
	}
	for _, tok := range []string{"", "not-a-token-at-all-0123456789", reg.ID} {
		c := newClient(t, tb)
		for _, a := range apiCalls {
			w := c.api(a.method, a.path, a.body, map[string]string{"Authorization": "Bearer " + tok})
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), flow.CodeAdminAuth) {
				t.Errorf("%s %s with token %.6q: %d %s", a.method, a.path, tok, w.Code, w.Body)
			}
		}
	}
	// the admin's token is not a registration session either
	c := newClient(t, tb)
	if w := c.api("GET", "/api/v1/methods", "", map[string]string{"Authorization": "Bearer " + admin}); w.Code != http.StatusUnauthorized {
		t.Errorf("an admin token on /api/v1/methods: %d", w.Code)
	}
	// pages: 401 with the sign-in form, for anonymous and registration cookies
	for _, ck := range []string{"", reg.ID} {
		c := newClient(t, tb)
		if ck != "" {
			c.cookies["__Host-latchkey_admin"] = &http.Cookie{Name: "__Host-latchkey_admin", Value: ck}
		}
		for _, p := range []string{"/admin/properties", "/admin/methods", "/admin/customization", "/admin/activity", "/admin/activity.csv", "/admin/explain?username=carol", "/admin/blocked"} {
			w := c.get(p)
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `action="/admin"`) {
				t.Errorf("GET %s (cookie %.6q): %d", p, ck, w.Code)
			}
		}
		for _, p := range []string{"/admin/properties", "/admin/methods", "/admin/customization", "/admin/unblock", "/admin/signout"} {
			w := c.post("/admin", p, url.Values{"version": {"0"}, "scope": {"all"}, "account": {"carol"}}, nil)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("POST %s (cookie %.6q): %d", p, ck, w.Code)
			}
		}
	}
	if v := tb.svc.Settings(); v.Version != 0 || v.Settings.Policy.Scope != policy.ScopeSelected {
		t.Errorf("settings changed by refused requests: %+v", v)
	}
}

func TestAdminFormsNeedCSRF(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	c := newClient(t, tb)
	if w := c.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", w.Code)
	}
	for _, p := range []string{"/admin/properties", "/admin/methods", "/admin/customization", "/admin/unblock", "/admin/signout"} {
		// no token
		if w := c.post("", p, url.Values{"version": {"0"}, "scope": {"all"}, "methods_required": {"1"}}, nil); w.Code != http.StatusForbidden {
			t.Errorf("POST %s without a token: %d", p, w.Code)
		}
		// a token, from another site
		if w := c.post("/admin/properties", p, url.Values{"version": {"0"}, "scope": {"all"}, "methods_required": {"1"}},
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); w.Code != http.StatusForbidden {
			t.Errorf("POST %s cross-site: %d", p, w.Code)
		}
	}
	if v := tb.svc.Settings(); v.Version != 0 {
		t.Errorf("settings saved without CSRF: version %d", v.Version)
	}
}

func TestAdminSettingsAPI(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	tok := adminToken(t, tb, clk, secret)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	c := newClient(t, tb)
	var view flow.SettingsView
	w := c.api("GET", "/api/v1/admin/settings", "", auth)
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &view) != nil {
		t.Fatalf("GET settings: %d %s", w.Code, w.Body)
	}
	if view.Version != 0 || view.Source != "store" || view.ReadOnly || view.Settings.Policy.Scope != "selected" {
		t.Fatalf("first settings %+v", view)
	}
	// erin is in no group: not eligible with scope selected
	if _, err := tb.svc.SignIn(t.Context(), "erin", tb.dir.Password("erin"), flow.Meta{}); flow.AsProblem(err).Code != flow.CodeNotEligible {
		t.Fatalf("erin before: %v, want not_eligible", err)
	}
	put := func(version int, set config.Settings) *httptest.ResponseRecorder {
		b, _ := json.Marshal(map[string]any{"version": version, "settings": set})
		return c.api("PUT", "/api/v1/admin/settings", string(b), auth)
	}
	set := view.Settings
	set.Policy.Scope = policy.ScopeAll
	set.Server.Organisation = "Example Ltd"
	w = put(0, set)
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &view) != nil || view.Version != 1 {
		t.Fatalf("PUT scope all: %d %s", w.Code, w.Body)
	}
	// in force at once on this instance: erin may register now
	if _, err := tb.svc.SignIn(t.Context(), "erin", tb.dir.Password("erin"), flow.Meta{}); err != nil {
		t.Fatalf("erin after scope all: %v", err)
	}
	if b := newClient(t, tb).get("/reset").Body.String(); !strings.Contains(b, "Example Ltd") {
		t.Error("the organisation's name is not on the pages")
	}
	// a save based on version 0 is stale: 409 with what differs
	stale := view.Settings
	stale.Policy.Scope = policy.ScopeNone
	w = put(0, stale)
	var conflict struct {
		Error   struct{ Code string }
		Current flow.SettingsView
		Changed []string
	}
	if w.Code != http.StatusConflict || json.Unmarshal(w.Body.Bytes(), &conflict) != nil || conflict.Error.Code != flow.CodeConflict ||
		conflict.Current.Version != 1 || strings.Join(conflict.Changed, ",") != "policy.scope" {
		t.Fatalf("stale PUT: %d %s", w.Code, w.Body)
	}
	// settings a configuration file could not hold: 422 at their keys
	bad := view.Settings
	bad.Policy.Methods = []string{"questions"}
	bad.Policy.MethodsRequired = 3
	w = put(1, bad)
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "policy.methods_required") || !strings.Contains(w.Body.String(), "policy.methods") {
		t.Fatalf("invalid PUT: %d %s", w.Code, w.Body)
	}
	// unknown keys are refused, as everywhere in the API
	if w := c.api("PUT", "/api/v1/admin/settings", `{"version":1,"settings":{"policy":{"scope":"all","bind_password":"x"}}}`, auth); w.Code != http.StatusBadRequest {
		t.Fatalf("PUT with an unknown key: %d %s", w.Code, w.Body)
	}
	// the save is audited with who, and the before and after
	evs, err := tb.st.ListAudit(t.Context(), storeQuery("admin.settings_changed"))
	if err != nil {
		t.Fatal(err)
	}
	var saved int
	for _, e := range evs {
		if e.Outcome == "success" {
			saved++
			if e.AccountID != "id-alice" || !strings.Contains(e.Details["before"], `"policy.scope":"selected"`) || !strings.Contains(e.Details["after"], `"policy.scope":"all"`) {
				t.Errorf("audit event %+v", e)
			}
		}
	}
	if saved != 1 {
		t.Errorf("%d settings_changed successes, want 1", saved)
	}
	// None turns self-service off for everyone
	none := view.Settings
	none.Policy.Scope = policy.ScopeNone
	if w := put(1, none); w.Code != http.StatusOK {
		t.Fatalf("PUT none: %d %s", w.Code, w.Body)
	}
	if _, err := tb.svc.SignIn(t.Context(), "carol", tb.dir.Password("carol"), flow.Meta{}); flow.AsProblem(err).Code != flow.CodeNotEligible {
		t.Fatalf("carol with scope none: %v, want not_eligible", err)
	}
}

func TestAdminSettingsFileIsReadOnly(t *testing.T) {
	tb, clk, secret := adminBed(t, func(o *flow.Options) { o.Admin.Settings = config.AdminSettingsFile })
	tok := adminToken(t, tb, clk, secret)
	c := newClient(t, tb)
	w := c.api("PUT", "/api/v1/admin/settings", `{"version":0,"settings":{"policy":{"scope":"all"},"server":{}}}`, map[string]string{"Authorization": "Bearer " + tok})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), flow.CodeReadOnly) {
		t.Fatalf("PUT with admin.settings file: %d %s", w.Code, w.Body)
	}
	var view flow.SettingsView
	w = c.api("GET", "/api/v1/admin/settings", "", map[string]string{"Authorization": "Bearer " + tok})
	if json.Unmarshal(w.Body.Bytes(), &view) != nil || !view.ReadOnly || view.Source != "file" {
		t.Fatalf("GET with admin.settings file: %s", w.Body)
	}
}

func TestAdminPagesSaveAndShowTheActivity(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	c := newClient(t, tb)
	if w := c.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", w.Code)
	}
	// the page shows the tier (cn=admins, two methods) and an empty one to
	// add; the form keeps the first, and adds a second
	if b := c.get("/admin/methods").Body.String(); !strings.Contains(b, `name="tiers" value="1"`) || !strings.Contains(b, "cn=admins\n</textarea>") {
		t.Fatalf("methods page:\n%s", b)
	}
	w := c.post("/admin/methods", "/admin/methods", url.Values{"version": {"0"}, "methods_required": {"2"}, "method_email": {"on"}, "method_totp": {"on"},
		"questions_required": {"4"}, "questions_ask": {"2"}, "questions_list": {"First pet?\n\nFirst school?\nFirst car?\nFirst job?\n"},
		"tiers": {"1"}, "tier0_groups": {"cn=admins"}, "tier0_required": {"2"},
		"tier1_groups": {"cn=staff"}, "tier1_required": {"0"}, "tier1_require_totp": {"on"}}, nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("methods save: %d %s", w.Code, w.Body)
	}
	v := tb.svc.Settings()
	if v.Version != 1 || v.Settings.Policy.MethodsRequired != 2 || strings.Join(v.Settings.Policy.Methods, ",") != "email,totp" ||
		len(v.Settings.Policy.Tiers) != 2 || v.Settings.Policy.Tiers[1].Groups[0] != "cn=staff" || strings.Join(v.Settings.Policy.Tiers[1].RequireOneOf, ",") != "totp" ||
		v.Settings.Policy.Questions.Required != 4 || len(v.Settings.Policy.Questions.List) != 4 {
		t.Fatalf("after the methods page: %+v", v.Settings.Policy)
	}
	// a form without its tiers is refused, not read as "no tiers"
	if w := c.post("/admin/methods", "/admin/methods", url.Values{"version": {"1"}, "methods_required": {"1"}, "method_email": {"on"},
		"questions_required": {"3"}, "questions_ask": {"2"}}, nil); w.Code != http.StatusBadRequest {
		t.Fatalf("methods form without tiers: %d", w.Code)
	}
	// a tier removed
	w = c.post("/admin/methods", "/admin/methods", url.Values{"version": {"1"}, "methods_required": {"2"}, "method_email": {"on"}, "method_totp": {"on"},
		"questions_required": {"3"}, "questions_ask": {"2"}, "tiers": {"2"}, "tier0_groups": {"cn=admins"}, "tier0_required": {"2"}, "tier1_groups": {"cn=staff"}, "tier1_required": {"0"}, "tier1_remove": {"on"},
		"tier2_groups": {""}, "tier2_required": {"0"}}, nil)
	if v := tb.svc.Settings(); w.Code != http.StatusSeeOther || v.Version != 2 || len(v.Settings.Policy.Tiers) != 1 {
		t.Fatalf("tier removed: %d, %+v", w.Code, v.Settings.Policy.Tiers)
	}
	// a second tab still holds version 0: the save is refused and the page
	// shows what is in force
	w = c.post("/admin/properties", "/admin/properties", url.Values{"version": {"0"}, "scope": {"all"}}, nil)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "<code>policy.scope</code>") ||
		!strings.Contains(w.Body.String(), `id="scope-selected" name="scope" value="selected" checked`) {
		t.Fatalf("stale properties save: %d", w.Code)
	}
	w = c.get("/admin/activity?event=admin.")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "admin.settings_changed") || !strings.Contains(w.Body.String(), "admin.sign_in") {
		t.Fatalf("activity: %d %s", w.Code, w.Body)
	}
	w = c.get("/admin/activity.csv?event=admin.settings_changed")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") || !strings.Contains(w.Body.String(), "admin.settings_changed") {
		t.Fatalf("csv: %d %s", w.Code, w.Body)
	}
	w = c.get("/admin/explain?username=carol")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "id-carol") {
		t.Fatalf("explain: %d %s", w.Code, w.Body)
	}
	if w := c.post("/admin/properties", "/admin/signout", url.Values{}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", w.Code)
	}
	if w := c.get("/admin/properties"); w.Code != http.StatusUnauthorized {
		t.Fatalf("after sign-out: %d", w.Code)
	}
}

func TestCSVCellsAreNotFormulas(t *testing.T) {
	for in, want := range map[string]string{"=1+1": "'=1+1", "+x": "'+x", "-2": "'-2", "@SUM": "'@SUM", "alice": "alice", "": ""} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAdminBlockedAndUnblock(t *testing.T) {
	tb, clk, secret := adminBed(t, func(o *flow.Options) { o.Limits.SendsPerAccount = 2 })
	_, carolEmail := tb.enroll(t, "carol", "carol.home@example.net")
	tok := adminToken(t, tb, clk, secret)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	ctx := t.Context()
	window := time.Hour
	count := func(key string) int {
		n, err := tb.st.Count(ctx, key, window, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// codes asked for carol until her send budget is spent
	f, err := tb.svc.StartFlow(ctx, "reset", "carol", flow.Meta{ClientIP: "198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		_ = tb.svc.SendFlowCode(ctx, "reset", f.ID, carolEmail, flow.Meta{ClientIP: "198.51.100.7"})
	}
	// and wrong passwords, an app suspension, an address's starts
	for range 5 {
		_, _ = tb.svc.SignIn(ctx, "carol", "Wrong-Pass1!", flow.Meta{ClientIP: "198.51.100.7"})
	}
	if _, err := tb.st.Hit(ctx, "appblock:acct:id-carol", window, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if count("send:acct:id-carol") < 3 || count("bindfail:id-carol") == 0 || count("start-ip:198.51.100.7") == 0 {
		t.Fatalf("counters before: send %d, bind %d, start-ip %d", count("send:acct:id-carol"), count("bindfail:id-carol"), count("start-ip:198.51.100.7"))
	}
	c := newClient(t, tb)
	w := c.api("GET", "/api/v1/admin/blocked", "", auth)
	var out struct{ Held []flow.Held }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &out) != nil {
		t.Fatalf("blocked: %d %s", w.Code, w.Body)
	}
	i := slices.IndexFunc(out.Held, func(h flow.Held) bool { return h.AccountID == "id-carol" })
	if i < 0 || !slices.Contains(out.Held[i].Reasons, "send_budget") {
		t.Fatalf("carol not listed as held back: %s", w.Body)
	}
	// the page lists her too, with an unblock form
	pc := newClient(t, tb)
	if w := pc.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", w.Code)
	}
	if b := pc.get("/admin/blocked").Body.String(); !strings.Contains(b, `name="account" value="id-carol"`) {
		t.Fatalf("blocked page:\n%s", b)
	}
	if w := pc.post("/admin/blocked", "/admin/unblock", url.Values{"account": {"carol"}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("unblock: %d %s", w.Code, w.Body)
	}
	// her budgets start again, the app suspension is lifted; the count of
	// wrong passwords stays (it keeps the directory from locking her)
	if count("send:acct:id-carol") != 0 || count("appblock:acct:id-carol") != 0 || count("bindfail:id-carol") == 0 {
		t.Fatalf("counters after: send %d, appblock %d, bind %d", count("send:acct:id-carol"), count("appblock:acct:id-carol"), count("bindfail:id-carol"))
	}
	evs, _ := tb.st.ListAudit(ctx, storeQuery("admin.unblocked"))
	if len(evs) != 1 || evs[0].AccountID != "id-alice" || evs[0].Details["account"] != "id-carol" {
		t.Fatalf("unblock audit: %+v", evs)
	}
	// and she is no longer listed
	if b := pc.get("/admin/blocked").Body.String(); strings.Contains(b, `value="id-carol"`) {
		t.Fatal("carol still listed after the unblock")
	}
	// an address, over the API; a bad one is refused
	if w := c.api("POST", "/api/v1/admin/unblock", `{"address":"198.51.100.7"}`, auth); w.Code != http.StatusNoContent {
		t.Fatalf("unblock an address: %d %s", w.Code, w.Body)
	}
	if count("start-ip:198.51.100.7") != 0 || count("signin-ip:198.51.100.7") != 0 {
		t.Fatal("the address's counters were not forgotten")
	}
	for _, body := range []string{`{"address":"not-an-ip"}`, `{}`, `{"account":"carol","address":"198.51.100.7"}`} {
		if w := c.api("POST", "/api/v1/admin/unblock", body, auth); w.Code != http.StatusBadRequest {
			t.Errorf("unblock %s: %d", body, w.Code)
		}
	}
}

func TestAdminPreview(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	tb.enroll(t, "carol", "carol.home@example.net") // carol can reset with one method
	tok := adminToken(t, tb, clk, secret)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	c := newClient(t, tb)
	preview := func(edit func(*config.Settings)) flow.Preview {
		t.Helper()
		set := tb.svc.Settings().Settings
		edit(&set)
		b, _ := json.Marshal(map[string]any{"settings": set})
		w := c.api("POST", "/api/v1/admin/preview", string(b), auth)
		var p flow.Preview
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &p) != nil {
			t.Fatalf("preview: %d %s", w.Code, w.Body)
		}
		return p
	}
	// the staff directory: carol and alice (staff), erin (no group), ivan
	// (staff, disabled); alice's tier needs two methods and she has one
	p := preview(func(s *config.Settings) { s.Policy.Scope = policy.ScopeAll })
	if p.Users != 4 || p.Before != (flow.Coverage{Eligible: 2, Ready: 1}) || p.After != (flow.Coverage{Eligible: 3, Ready: 1}) ||
		p.GainEligible.Count != 1 || p.GainEligible.Sample[0] != "erin" || p.LoseEligible.Count != 0 || p.LoseReady.Count != 0 {
		t.Fatalf("scope all: %+v", p)
	}
	p = preview(func(s *config.Settings) { s.Policy.MethodsRequired = 2 })
	if p.After != (flow.Coverage{Eligible: 2, Ready: 0}) || p.LoseReady.Count != 1 || p.LoseReady.Sample[0] != "carol" || p.GainEligible.Count != 0 {
		t.Fatalf("two methods: %+v", p)
	}
	// a method no longer offered: carol, who has only an email, could not
	// reset
	p = preview(func(s *config.Settings) { s.Policy.Methods = []string{"sms", "totp"} })
	if p.LoseReady.Count != 1 || p.LoseReady.Sample[0] != "carol" || p.After.Ready != 0 {
		t.Fatalf("email no longer offered: %+v", p)
	}
	p = preview(func(s *config.Settings) { s.Policy.Scope = policy.ScopeNone })
	if p.After != (flow.Coverage{}) || p.LoseEligible.Count != 2 || p.LoseReady.Count != 1 {
		t.Fatalf("scope none: %+v", p)
	}
	// a preview saves nothing, and is audited
	if v := tb.svc.Settings(); v.Version != 0 {
		t.Fatalf("a preview saved version %d", v.Version)
	}
	if got := tb.auditOutcomes(t, "admin.preview"); len(got) != 4 {
		t.Fatalf("admin.preview audited %v, want 4", got)
	}
	// invalid settings are refused as a save refuses them
	b, _ := json.Marshal(map[string]any{"settings": map[string]any{"policy": map[string]any{"scope": "sometimes"}, "server": map[string]any{}}})
	if w := c.api("POST", "/api/v1/admin/preview", string(b), auth); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid preview: %d %s", w.Code, w.Body)
	}
	// the page's Preview button shows the numbers without saving
	pc := newClient(t, tb)
	if w := pc.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", w.Code)
	}
	w := pc.post("/admin/properties", "/admin/properties", url.Values{"version": {"0"}, "scope": {"all"}, "groups": {"cn=staff"}, "action": {"preview"}}, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Gain self-service: 1 (erin)") || !strings.Contains(w.Body.String(), `value="all" checked`) {
		t.Fatalf("preview page: %d\n%s", w.Code, w.Body)
	}
	if v := tb.svc.Settings(); v.Version != 0 {
		t.Fatalf("the preview button saved version %d", v.Version)
	}
	// the group picker
	w = pc.get("/admin/properties?q=STA")
	if !strings.Contains(w.Body.String(), "<code>cn=staff</code>") {
		t.Fatalf("group search:\n%s", w.Body)
	}
	var gs struct{ Groups []flow.GroupView }
	if w := c.api("GET", "/api/v1/admin/groups?q=staff", "", auth); w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &gs) != nil ||
		len(gs.Groups) != 1 || gs.Groups[0].Members != 3 {
		t.Fatalf("groups API: %d %s", w.Code, w.Body)
	}
}

func TestAdminNotifications(t *testing.T) {
	// staff are admins too here: carol's reset is an admin's
	tb, clk, secret := adminBed(t, func(o *flow.Options) { o.Admin.Groups = []string{"cn=admins", "cn=staff"} })
	_, carolEmail := tb.enroll(t, "carol", "carol.home@example.net")
	tok := adminToken(t, tb, clk, secret)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	c := newClient(t, tb)
	save := func(users, admins bool) {
		t.Helper()
		v := tb.svc.Settings()
		set := v.Settings
		set.Notifications = config.Notifications{Users: users, Admins: admins}
		b, _ := json.Marshal(map[string]any{"version": v.Version, "settings": set})
		if w := c.api("PUT", "/api/v1/admin/settings", string(b), auth); w.Code != http.StatusOK {
			t.Fatalf("PUT notifications: %d %s", w.Code, w.Body)
		}
	}
	reset := func(pw string) {
		t.Helper()
		f, err := tb.svc.StartFlow(t.Context(), "reset", "carol", flow.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		f = tb.proveEmail(t, f, carolEmail, "carol.home@example.net")
		if err := tb.svc.CompleteFlow(t.Context(), "reset", f.ID, pw, flow.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	subjects := func(to string) []string {
		var out []string
		for _, e := range tb.rec.Emails() {
			if e.To == to {
				out = append(out, e.Subject)
			}
		}
		return out
	}
	adminNotices := func() int {
		n := 0
		for _, s := range subjects("alice@corp.example") {
			if strings.Contains(s, "an admin's password was reset") {
				n++
			}
		}
		return n
	}
	// every admin is told of carol's reset; carol is told as before
	save(true, true)
	reset("Fresh-Harbor-Lantern-41")
	for deadline := time.Now().Add(30 * time.Second); adminNotices() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("alice was not told of carol's reset: %q", subjects("alice@corp.example"))
		}
	}
	for _, e := range tb.rec.Emails() {
		if e.To == "alice@corp.example" && strings.Contains(e.Subject, "an admin's") && (!strings.Contains(e.Text, "Carol Test (carol)") || strings.Contains(e.Text, "Fresh-Harbor")) {
			t.Fatalf("admin notice:\n%s", e.Text)
		}
	}
	if got := subjects("carol@corp.example"); !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "your password was reset") }) {
		t.Fatalf("carol's directory mail: %q", got)
	}
	// users off: carol is an admin here, so she is still told (her
	// account signs in to the console); alice is no longer told
	save(false, false)
	resetNotices := func() int {
		n := 0
		for _, to := range []string{"carol@corp.example", "carol.home@example.net"} {
			for _, s := range subjects(to) {
				if strings.Contains(s, "your password was reset") {
					n++
				}
			}
		}
		return n
	}
	before := resetNotices()
	reset("Fresh-Harbor-Lantern-42")
	tb.svc.CloseWithin(5 * time.Second) // the outbox has sent what it had
	if after := resetNotices(); after <= before {
		t.Fatalf("an admin was not told of her reset with notifications.users off: %d mails, then %d", before, after)
	}
	if got := tb.auditOutcomes(t, "notice.not_sent"); len(got) != 0 {
		t.Fatalf("notice.not_sent for an admin: %v", got)
	}
	if n := adminNotices(); n != 1 {
		t.Fatalf("alice told %d times, once with notifications.admins off", n)
	}
}

func TestNotificationsUsersOff(t *testing.T) {
	tb, clk, secret := adminBed(t, nil) // carol is no admin here
	_, carolEmail := tb.enroll(t, "carol", "carol.home@example.net")
	tok := adminToken(t, tb, clk, secret)
	v := tb.svc.Settings()
	set := v.Settings
	set.Notifications.Users = false
	b, _ := json.Marshal(map[string]any{"version": v.Version, "settings": set})
	if w := newClient(t, tb).api("PUT", "/api/v1/admin/settings", string(b), map[string]string{"Authorization": "Bearer " + tok}); w.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	f, err := tb.svc.StartFlow(t.Context(), "reset", "carol", flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f = tb.proveEmail(t, f, carolEmail, "carol.home@example.net")
	if err := tb.svc.CompleteFlow(t.Context(), "reset", f.ID, "Fresh-Harbor-Lantern-43", flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	tb.svc.CloseWithin(5 * time.Second) // the outbox has sent what it had
	for _, e := range tb.rec.Emails() {
		if strings.Contains(e.Subject, "your password was reset") {
			t.Fatalf("carol was told with notifications.users off: %s to %s", e.Subject, e.To)
		}
	}
	if got := tb.auditOutcomes(t, "notice.not_sent"); len(got) != 1 || got[0] != "notifications_off" {
		t.Fatalf("notice.not_sent: %v", got)
	}
}

func TestAdminSessionEnds(t *testing.T) {
	tb, clk, secret := adminBed(t, func(o *flow.Options) { o.Admin.SessionIdle, o.Admin.SessionTTL = 15*time.Minute, 30*time.Minute })
	c := newClient(t, tb)
	get := func(tok string) int {
		return c.api("GET", "/api/v1/admin/settings", "", map[string]string{"Authorization": "Bearer " + tok}).Code
	}
	// idle: 15 minutes without a request end it
	tok := adminToken(t, tb, clk, secret)
	clk.Add(14 * time.Minute)
	if st := get(tok); st != http.StatusOK {
		t.Fatalf("after 14 idle minutes: %d", st)
	}
	clk.Add(15*time.Minute + time.Second)
	if st := get(tok); st != http.StatusUnauthorized {
		t.Fatalf("after 15 idle minutes: %d, want 401", st)
	}
	// lifetime: 30 minutes after the sign-in, however busy
	tok = adminToken(t, tb, clk, secret) // signed in, then 30 s pass
	for _, d := range []time.Duration{10 * time.Minute, 10 * time.Minute, 9 * time.Minute} {
		clk.Add(d)
		if st := get(tok); st != http.StatusOK {
			t.Fatalf("a busy session at %v: %d", clk.Now(), st)
		}
	}
	clk.Add(time.Minute) // 30.5 minutes after the sign-in
	if st := get(tok); st != http.StatusUnauthorized {
		t.Fatalf("30.5 minutes after the sign-in: %d, want 401", st)
	}
}

func TestAdminExplainShowsMaskedHints(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	tb.enroll(t, "carol", "carol.home@example.net")
	tok := adminToken(t, tb, clk, secret)
	c := newClient(t, tb)
	w := c.api("GET", "/api/v1/admin/explain?username=carol", "", map[string]string{"Authorization": "Bearer " + tok})
	var ex flow.Explanation
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &ex) != nil {
		t.Fatalf("explain: %d %s", w.Code, w.Body)
	}
	if !ex.Eligible || !ex.Ready || len(ex.Registered) != 1 || !strings.Contains(ex.Registered[0].Hint, "•") {
		t.Fatalf("explain carol: %+v", ex)
	}
	if strings.Contains(w.Body.String(), "carol.home") || strings.Contains(w.Body.String(), "example.net") {
		t.Fatalf("explain shows the address: %s", w.Body)
	}
	if got := tb.auditOutcomes(t, "admin.explain"); len(got) != 1 || got[0] != "success" {
		t.Fatalf("admin.explain audited %v", got)
	}
}

func TestAdminCoveredBySelfServiceMayAddAnApp(t *testing.T) {
	// the policy offers email and SMS only; alice (an admin) still needs
	// an app for the console
	cfg := adminConfig()
	cfg.Policy.Methods = []string{"email", "sms"}
	tb, _, _ := totpBed(t, func(o *flow.Options) {
		o.Eligibility = cfg.Eligibility()
		o.Admin = flow.AdminOptions{Groups: cfg.Admin.Groups, Settings: cfg.Admin.Settings, Config: cfg}
	})
	ctx := t.Context()
	alice, err := tb.svc.SignIn(ctx, "alice", tb.dir.Password("alice"), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.EnrolTOTP(ctx, alice, flow.Meta{}); err != nil {
		t.Fatalf("alice's app: %v", err)
	}
	carol, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.EnrolTOTP(ctx, carol, flow.Meta{}); flow.AsProblem(err).Code != flow.CodeMethodType {
		t.Fatalf("carol (no admin) adding an app the policy does not offer: %v", err)
	}
}

func TestAdminWrongCodesAreBounded(t *testing.T) {
	tb, clk, secret := adminBed(t, func(o *flow.Options) { o.Limits.CodeFailuresPerAccount = 3 })
	try := func(code string) int {
		body, _ := json.Marshal(map[string]string{"username": "alice", "password": tb.dir.Password("alice"), "code": code})
		return newClient(t, tb).api("POST", "/api/v1/admin/session", string(body), nil).Code
	}
	for i := range 3 {
		if st := try(flowtest.WrongTOTP(t, secret, clk.Now())); st != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i+1, st)
		}
	}
	// the budget is spent: even the right code is refused, in the same words
	if st := try(flowtest.CodeAt(t, secret, clk.Now())); st != http.StatusUnauthorized {
		t.Fatalf("the right code past the budget: %d, want 401", st)
	}
	if got := tb.auditOutcomes(t, "blocked"); !slices.Contains(got, "admin_code_budget") {
		t.Fatalf("blocked outcomes %v", got)
	}
	// an unblock (by another admin, here through the service) lets alice in
	if err := tb.svc.Unblock(t.Context(), store.Session{AccountID: "id-alice"}, "alice", "", flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	if st := try(flowtest.CodeAt(t, secret, clk.Now())); st != http.StatusOK {
		t.Fatalf("after the unblock: %d", st)
	}
}

// TestEveryAdminRouteNeedsAnAdminSession walks the router: every admin
// page and API route but the sign-in answers 401 to an anonymous client
// and to a registration session, whatever it is (a route added later is
// covered without a change here).
func TestEveryAdminRouteNeedsAnAdminSession(t *testing.T) {
	tb, clk, _ := adminBed(t, nil)
	reg, _ := tb.enrolApp(t, clk, "carol")
	// alice's registration session is an admin's (kind admin_user): still
	// no admin session
	adminReg, err := tb.svc.SignIn(t.Context(), "alice", tb.dir.Password("alice"), flow.Meta{})
	if err != nil || adminReg.Kind != flow.SessionAdminUser {
		t.Fatalf("alice's registration session: %+v %v", adminReg, err)
	}
	n := 0
	for _, r := range tb.srv.e.Routes() {
		path := strings.ReplaceAll(r.Path, ":id", "x")
		isAPI := strings.HasPrefix(path, "/api/v1/admin/")
		signIn := (isAPI && path == "/api/v1/admin/session" && r.Method == "POST") || path == "/admin/passkey-start" || path == "/admin/passkey"
		if (!isAPI && !strings.HasPrefix(path, "/admin/")) || signIn {
			continue
		}
		n++
		for _, tok := range []string{"", reg.ID, adminReg.ID} {
			c := newClient(t, tb)
			var w *httptest.ResponseRecorder
			switch {
			case isAPI:
				w = c.api(r.Method, path, `{}`, map[string]string{"Authorization": "Bearer " + tok})
			case r.Method == "GET":
				if tok != "" {
					c.cookies["__Host-latchkey_admin"] = &http.Cookie{Name: "__Host-latchkey_admin", Value: tok}
				}
				w = c.get(path)
			default:
				if tok != "" {
					c.cookies["__Host-latchkey_admin"] = &http.Cookie{Name: "__Host-latchkey_admin", Value: tok}
				}
				// with a valid CSRF token: the session is what refuses
				w = c.post("/admin", path, url.Values{"version": {"0"}}, nil)
			}
			if w.Code != http.StatusUnauthorized {
				t.Errorf("%s %s (registration session %v): %d", r.Method, path, tok != "", w.Code)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d admin routes found", n)
	}
}

// TestAdminPagesHoldNoSecret: every admin page and export, with an
// admin signed in, after a user registered an address and an app, holds
// no password, address, seed or token.
func TestAdminPagesHoldNoSecret(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	_, _ = tb.enroll(t, "carol", "carol.home@example.net")
	_, app := tb.enrolApp(t, clk, "carol")
	clk.Add(30 * time.Second)
	c := newClient(t, tb)
	if w := c.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", w.Code)
	}
	secrets := []string{tb.dir.Password("alice"), tb.dir.Password("carol"), "carol.home@example.net", "carol.home", app.Secret, secret,
		c.cookies["__Host-latchkey_admin"].Value}
	for _, p := range []string{"/admin/properties", "/admin/properties?q=s", "/admin/methods", "/admin/notifications", "/admin/customization",
		"/admin/activity", "/admin/activity?account=carol", "/admin/activity.csv", "/admin/activity.csv?account=carol", "/admin/blocked",
		"/admin/explain?username=carol"} {
		w := c.get(p)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", p, w.Code)
		}
		for _, s := range secrets {
			if strings.Contains(w.Body.String(), s) {
				t.Errorf("%s holds %.8q…", p, s)
			}
		}
	}
}

func TestAdminAppIsNotReplacedWithThePasswordAlone(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	ctx := t.Context()
	// dana: a second admin, with an app of her own
	tb.dir.AddUser(directory.User{DN: "uid=dana,ou=people,dc=x", ID: "id-dana", Username: "dana", DisplayName: "Dana Test", Mail: "dana@corp.example"},
		"Dana-Pass1!", "cn=staff", "cn=admins")
	_, en := tb.enrolApp(t, clk, "dana")
	clk.Add(30 * time.Second)
	// with alice's password only, a new app is refused, and so is removing
	// hers
	alice, err := tb.svc.SignIn(ctx, "alice", tb.dir.Password("alice"), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.EnrolTOTP(ctx, alice, flow.Meta{}); flow.AsProblem(err).Code != flow.CodeAdminAppKept {
		t.Fatalf("a new app for an admin with one: %v, want admin_app_kept", err)
	}
	ms, _ := tb.svc.Methods(ctx, alice)
	i := slices.IndexFunc(ms, func(m flow.MethodView) bool { return m.Type == flow.MethodTOTP })
	if err := tb.svc.RemoveMethod(ctx, alice, ms[i].ID, tb.dir.Password("alice"), flow.Meta{}); flow.AsProblem(err).Code != flow.CodeAdminAppKept {
		t.Fatalf("an admin removing her app with the password: %v, want admin_app_kept", err)
	}
	// a non-admin replaces and removes theirs as before
	carol, _ := tb.enrolApp(t, clk, "carol")
	if _, err := tb.svc.EnrolTOTP(ctx, carol, flow.Meta{}); err != nil {
		t.Fatalf("carol replacing her app: %v", err)
	}
	alicesToken := adminToken(t, tb, clk, secret)
	// dana signs in to the console; she cannot remove her own app, nor
	// carol's (no admin); she removes alice's
	clk.Add(30 * time.Second)
	body, _ := json.Marshal(map[string]string{"username": "dana", "password": "Dana-Pass1!", "code": flowtest.CodeAt(t, en.Secret, clk.Now())})
	w := newClient(t, tb).api("POST", "/api/v1/admin/session", string(body), nil)
	var out struct{ Token string }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &out) != nil {
		t.Fatalf("dana's sign-in: %d %s", w.Code, w.Body)
	}
	c := newClient(t, tb)
	auth := map[string]string{"Authorization": "Bearer " + out.Token}
	for _, who := range []string{"dana", "carol"} {
		if w := c.api("POST", "/api/v1/admin/remove-app", `{"username":"`+who+`"}`, auth); w.Code == http.StatusNoContent {
			t.Fatalf("remove-app of %s: %d", who, w.Code)
		}
	}
	if w := c.api("POST", "/api/v1/admin/remove-app", `{"username":"alice"}`, auth); w.Code != http.StatusNoContent {
		t.Fatalf("remove-app of alice: %d %s", w.Code, w.Body)
	}
	// alice's console session ends with her app
	if w := c.api("GET", "/api/v1/admin/settings", "", map[string]string{"Authorization": "Bearer " + alicesToken}); w.Code != http.StatusUnauthorized {
		t.Fatalf("alice's admin session after the app's removal: %d", w.Code)
	}
	evs, _ := tb.st.ListAudit(ctx, storeQuery("admin.app_removed"))
	if len(evs) != 1 || evs[0].AccountID != "id-dana" || evs[0].Details["account"] != "id-alice" || !strings.HasPrefix(evs[0].Details["removed"], "totp:") {
		t.Fatalf("admin.app_removed: %+v", evs)
	}
	alice, err = tb.svc.SignIn(ctx, "alice", tb.dir.Password("alice"), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.EnrolTOTP(ctx, alice, flow.Meta{}); err != nil {
		t.Fatalf("a new app after the removal: %v", err)
	}
	// until the new app is verified, the old one's codes open nothing
	clk.Add(30 * time.Second)
	body, _ = json.Marshal(map[string]string{"username": "alice", "password": tb.dir.Password("alice"), "code": flowtest.CodeAt(t, secret, clk.Now())})
	if w := c.api("POST", "/api/v1/admin/session", string(body), nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("the removed app's code at the console: %d", w.Code)
	}
}

func TestReconfirmAfterTheConfiguredDays(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	tb.enroll(t, "carol", "carol.home@example.net")
	// the admin asks every 30 days, on the Registration page
	ac := newClient(t, tb)
	if w := ac.post("/admin", "/admin", url.Values{"username": {"alice"}, "password": {tb.dir.Password("alice")}, "code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("admin sign-in: %d", w.Code)
	}
	if w := ac.post("/admin/registration", "/admin/registration", url.Values{"version": {"0"}, "reconfirm_days": {"30"}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("registration save: %d %s", w.Code, w.Body)
	}
	methods := func() string {
		c := newClient(t, tb)
		if w := c.post("/register", "/register", url.Values{"username": {"carol"}, "password": {tb.dir.Password("carol")}}, nil); w.Code != http.StatusSeeOther {
			t.Fatalf("carol's sign-in: %d", w.Code)
		}
		b := c.get("/register/methods").Body.String()
		if strings.Contains(b, `id="reconfirm"`) {
			if w := c.post("/register/methods", "/register/reconfirm", url.Values{}, nil); w.Code != http.StatusSeeOther {
				t.Fatalf("reconfirm: %d", w.Code)
			}
			if strings.Contains(c.get("/register/methods").Body.String(), `id="reconfirm"`) {
				t.Fatal("still asked after confirming")
			}
		}
		return b
	}
	if strings.Contains(methods(), `id="reconfirm"`) {
		t.Fatal("asked to re-confirm a method verified today")
	}
	// the form needs a session and its CSRF token, and records nothing
	// when nothing is due
	anon := newClient(t, tb)
	if w := anon.post("/register", "/register/reconfirm", url.Values{}, nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/register" {
		t.Fatalf("reconfirm without a session: %d %s", w.Code, w.Header().Get("Location"))
	}
	if w := anon.post("", "/register/reconfirm", url.Values{}, nil); w.Code != http.StatusForbidden {
		t.Fatalf("reconfirm without a CSRF token: %d", w.Code)
	}
	early := newClient(t, tb)
	if w := early.post("/register", "/register", url.Values{"username": {"carol"}, "password": {tb.dir.Password("carol")}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("carol's sign-in: %d", w.Code)
	}
	if w := early.post("/register/methods", "/register/reconfirm", url.Values{}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("reconfirm when not due: %d", w.Code)
	}
	if got := tb.auditOutcomes(t, "registration.reconfirmed"); len(got) != 0 {
		t.Fatalf("a confirmation recorded when none was due: %v", got)
	}
	clk.Add(31 * 24 * time.Hour)
	if !strings.Contains(methods(), "They are still right") {
		t.Fatal("not asked after 31 days")
	}
	if got := tb.auditOutcomes(t, "registration.reconfirmed"); len(got) != 1 {
		t.Fatalf("registration.reconfirmed: %v", got)
	}
	// confirmed today: not asked again for 30 days
	clk.Add(29 * 24 * time.Hour)
	if strings.Contains(methods(), `id="reconfirm"`) {
		t.Fatal("asked again 29 days after confirming")
	}
}

var (
	optionsRE = regexp.MustCompile(`data-options="([^"]+)"`)
	tokenRE   = regexp.MustCompile(`name="token" value="([^"]+)"`)
)

// passkeyStart posts the passkey sign-in's first form and returns the
// ceremony's token and options from the page.
func passkeyStart(t *testing.T, c *client, user, password string) (string, json.RawMessage) {
	t.Helper()
	w := c.post("/admin", "/admin/passkey-start", url.Values{"username": {user}, "password": {password}}, nil)
	body := w.Body.String()
	om, tm := optionsRE.FindStringSubmatch(body), tokenRE.FindStringSubmatch(body)
	if w.Code != http.StatusOK || om == nil || tm == nil || !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("passkey start for %s: %d\n%s", user, w.Code, body)
	}
	return tm[1], json.RawMessage(html.UnescapeString(om[1]))
}

func TestAdminSignInWithAPasskey(t *testing.T) {
	tb, clk, _ := adminBed(t, nil)
	// dana: an admin whose only strong method is a passkey
	tb.dir.AddUser(directory.User{DN: "uid=dana,ou=people,dc=x", ID: "id-dana", Username: "dana", DisplayName: "Dana Test", Mail: "dana@corp.example"},
		"Dana-Pass1!", "cn=staff", "cn=admins")
	key := flowtest.NewSoftKey(t)
	tb.addPasskey(t, "dana", key)
	_, _ = tb.enrolApp(t, clk, "carol") // no admin
	finish := func(c *client, tok string, cred []byte) *httptest.ResponseRecorder {
		return c.post("/admin", "/admin/passkey", url.Values{"token": {tok}, "credential": {string(cred)}}, nil)
	}
	// every failure of the first step answers a ceremony all the same;
	// the second then fails as a wrong passkey does
	for _, tc := range []struct{ name, user, password string }{
		{"unknown name", "nobody", "Whatever-Pass1!"},
		{"wrong password", "dana", "Wrong-Pass1!"},
		{"not an admin", "carol", tb.dir.Password("carol")},
		{"an admin without a passkey", "alice", tb.dir.Password("alice")},
	} {
		c := newClient(t, tb)
		tok, opts := passkeyStart(t, c, tc.user, tc.password)
		cred, err := key.Get(opts)
		if err != nil {
			// no credential of the key is allowed (a fake ceremony):
			// answer with dana's passkey, signed for another ceremony
			_, other := passkeyStart(t, newClient(t, tb), "dana", "Dana-Pass1!")
			cred = key.MustGet(other)
		}
		if w := finish(c, tok, cred); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "The username or password is incorrect") {
			t.Fatalf("%s: finish %d", tc.name, w.Code)
		}
		if _, ok := c.cookies["__Host-latchkey_admin"]; ok {
			t.Fatalf("%s: an admin cookie", tc.name)
		}
	}
	// the right password and passkey open a session
	c := newClient(t, tb)
	tok, opts := passkeyStart(t, c, "dana", "Dana-Pass1!")
	cred := key.MustGet(opts)
	if w := finish(c, tok, cred); w.Code != http.StatusSeeOther {
		t.Fatalf("dana's passkey sign-in: %d %s", w.Code, w.Body)
	}
	if w := c.get("/admin/properties"); w.Code != http.StatusOK {
		t.Fatalf("properties after a passkey sign-in: %d", w.Code)
	}
	// the ceremony is used once
	if w := finish(newClient(t, tb), tok, cred); w.Code != http.StatusUnauthorized {
		t.Fatalf("the ceremony again: %d", w.Code)
	}
	// another admin's passkey, signed for dana's very ceremony, is refused
	tb.dir.AddUser(directory.User{DN: "uid=eve,ou=people,dc=x", ID: "id-eve", Username: "eve", DisplayName: "Eve Test", Mail: "eve@corp.example"},
		"Eve-Pass1!", "cn=staff", "cn=admins")
	eveKey := flowtest.NewSoftKey(t)
	tb.addPasskey(t, "eve", eveKey)
	_, eveOpts := passkeyStart(t, newClient(t, tb), "eve", "Eve-Pass1!")
	c2 := newClient(t, tb)
	danaTok, danaOpts := passkeyStart(t, c2, "dana", "Dana-Pass1!")
	var do, eo map[string]any
	if json.Unmarshal(danaOpts, &do) != nil || json.Unmarshal(eveOpts, &eo) != nil {
		t.Fatal("options are not JSON")
	}
	do["allowCredentials"] = eo["allowCredentials"] // dana's challenge, eve's credential
	forged, _ := json.Marshal(do)
	if w := finish(c2, danaTok, eveKey.MustGet(forged)); w.Code != http.StatusUnauthorized {
		t.Fatalf("eve's passkey on dana's ceremony: %d", w.Code)
	}
	// one answer, sent many times at once, opens one session at most
	tok, opts = passkeyStart(t, newClient(t, tb), "dana", "Dana-Pass1!")
	cred = key.MustGet(opts)
	var wg sync.WaitGroup
	var opened atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tb.svc.AdminPasskeyFinish(t.Context(), tok, cred, flow.Meta{}); err == nil {
				opened.Add(1)
			}
		}()
	}
	wg.Wait()
	if opened.Load() != 1 {
		t.Fatalf("%d sessions from one ceremony", opened.Load())
	}
	// dana cannot add another passkey or an app with her password alone
	sess, err := tb.svc.SignIn(t.Context(), "dana", "Dana-Pass1!", flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.BeginPasskey(t.Context(), sess, "", flow.Meta{}); flow.AsProblem(err).Code != flow.CodeAdminAppKept {
		t.Fatalf("a second passkey for an admin: %v", err)
	}
	if _, err := tb.svc.EnrolTOTP(t.Context(), sess, flow.Meta{}); flow.AsProblem(err).Code != flow.CodeAdminAppKept {
		t.Fatalf("an app for an admin with a passkey: %v", err)
	}
}

// With admin.settings: file, a copy saved in the store earlier is ignored:
// the configuration file's values are in force, and the console is
// read-only.
func TestAdminSettingsFileIgnoresTheStoredCopy(t *testing.T) {
	tb, clk, secret := adminBed(t, nil)
	tok := adminToken(t, tb, clk, secret)
	v := tb.svc.Settings()
	set := v.Settings
	set.Policy.Scope = policy.ScopeAll
	b, _ := json.Marshal(map[string]any{"version": v.Version, "settings": set})
	if w := newClient(t, tb).api("PUT", "/api/v1/admin/settings", string(b), map[string]string{"Authorization": "Bearer " + tok}); w.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	// another instance on the same store: the stored copy, then the file
	open := func(mode string) *flow.Service {
		cfg := adminConfig()
		cfg.Admin.Settings = mode
		o := flow.Options{PublicURL: flowtest.PublicURL(), SecretKey: flowtest.SecretKey, Eligibility: cfg.Eligibility(),
			Password: flowtest.PasswordRules(), AllowedCountries: flowtest.Countries(),
			Admin: flow.AdminOptions{Groups: cfg.Admin.Groups, Settings: mode, Config: cfg}}
		svc, err := flow.NewService(o, flow.Deps{Directory: tb.dir, Store: tb.st})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		return svc
	}
	if got := open(config.AdminSettingsStore).Settings(); got.Version != 1 || got.Settings.Policy.Scope != policy.ScopeAll {
		t.Fatalf("store mode: %+v", got)
	}
	svc := open(config.AdminSettingsFile)
	if got := svc.Settings(); got.Version != 0 || got.Settings.Policy.Scope != policy.ScopeSelected || !got.ReadOnly {
		t.Fatalf("file mode: %+v", got)
	}
	if _, err := svc.SignIn(t.Context(), "erin", tb.dir.Password("erin"), flow.Meta{}); flow.AsProblem(err).Code != flow.CodeNotEligible {
		t.Fatalf("erin under the file's scope selected: %v", err)
	}
}
