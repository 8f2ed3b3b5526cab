package docs_test

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestEveryStatusIsDocumented calls every operation of the spec in the
// states a deployment meets (all well, the directory down, the store down)
// with what a real client holds (a session, open reset and unlock flows, a
// verified and an unverified method), and with malformed requests. l.do
// fails every answer whose status the operation's responses do not list
// (live.check), so an operation that can answer a status the spec leaves
// out fails here, not in a client's hands. An outage must be told as 503
// unavailable, never as a 500.
func TestEveryStatusIsDocumented(t *testing.T) {
	seen := map[string]map[int]bool{}
	note := func(op string, status int) {
		if seen[op] == nil {
			seen[op] = map[int]bool{}
		}
		seen[op][status] = true
	}
	states := []struct {
		name   string
		break_ func(l *live)
	}{
		{"all well", nil},
		{"directory down", func(l *live) { l.dir.SetDown(true) }},
		{"store down", func(l *live) { l.st.Close() }},
	}
	for _, state := range states {
		t.Run(state.name, func(t *testing.T) {
			l := newLive(t)
			h := holdings(t, l)
			if state.break_ != nil {
				state.break_(l)
			}
			for _, c := range h.calls() {
				a := l.do(c.method, c.path, c.token, c.body, "")
				note(c.op, a.status)
				if state.break_ != nil && a.status == http.StatusInternalServerError {
					t.Errorf("%s with the %s: 500 %s (an outage is 503 unavailable)", c.op, state.name, a.raw)
				}
				if state.name == "store down" && c.op == "DELETE /api/v1/session" && a.status != http.StatusServiceUnavailable {
					t.Errorf("sign-out with the store down: %d, want 503 (the session was not deleted)", a.status)
				}
			}
		})
	}
	t.Run("malformed", func(t *testing.T) {
		l := newLive(t)
		h := holdings(t, l)
		for _, c := range h.calls() {
			if c.body == nil {
				continue
			}
			for _, bad := range []struct{ body, ctype string }{
				{`{"username":`, ""},                               // not JSON
				{"{\"username\":\"car\xffol\"}", ""},               // not UTF-8
				{`{"unknown_field":1}`, ""},                        // a field the operation has not
				{`{"username":"carol"}`, "text/plain"},             // not JSON's media type
				{`{"x":"` + strings.Repeat("a", 1<<20) + `"}`, ""}, // too large
			} {
				a := l.do(c.method, c.path, c.token, bad.body, bad.ctype)
				note(c.op, a.status)
			}
		}
	})
	var ops []string
	for op := range seen {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		var st []int
		for s := range seen[op] {
			st = append(st, s)
		}
		slices.Sort(st)
		t.Logf("%-36s %v", op, st)
	}
	// the states the calls are there to reach were reached: a removal,
	// an admin's app kept, the budget of wrong passwords spent
	for _, st := range []int{http.StatusNoContent, http.StatusConflict, http.StatusTooManyRequests} {
		if !seen["DELETE /api/v1/methods/{id}"][st] {
			t.Errorf("DELETE /api/v1/methods/{id} never answered %d: the call meant to reach it does not", st)
		}
	}
	// every operation of the spec was called
	l := newLive(t)
	for name := range l.ops {
		if seen[name] == nil {
			t.Errorf("%s: not called by this test", name)
		}
	}
}

// held is what a client holds in the middle of its work: a session token,
// a verified method and two unverified ones (an email, an authenticator
// app), and open reset and unlock flows
// that offer the verified method.
type held struct {
	token, verified, unverified, totp, reset, unlock string
	// admin is an admin console token (ada's); adminCode a code of her
	// authenticator app, already spent; adaToken her registration
	// session, adaApp the id of her app
	admin, adminCode, adaToken, adaApp string
}

func holdings(t *testing.T, l *live) held {
	t.Helper()
	var h held
	a := l.do("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": carolPassword}, "")
	h.token, _ = a.obj()["token"].(string)
	a = l.do("POST", "/api/v1/methods", h.token, map[string]string{"type": "email", "address": "carol@example.net"}, "")
	h.verified, _ = a.obj()["id"].(string)
	a = l.do("POST", "/api/v1/methods/"+h.verified+"/verify", h.token, map[string]string{"code": l.mail.code(t, "carol@example.net", 1)}, "")
	if a.status != 200 {
		t.Fatalf("verifying carol's email: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/methods", h.token, map[string]string{"type": "email", "address": "carol.two@example.net"}, "")
	h.unverified, _ = a.obj()["id"].(string)
	a = l.do("POST", "/api/v1/methods", h.token, map[string]string{"type": "totp"}, "")
	h.totp, _ = a.obj()["id"].(string)
	h.reset, _ = l.do("POST", "/api/v1/reset", "", map[string]string{"username": "carol"}, "").obj()["flow"].(string)
	h.unlock, _ = l.do("POST", "/api/v1/unlock", "", map[string]string{"username": "carol"}, "").obj()["flow"].(string)
	h.admin, h.adminCode, h.adaToken, h.adaApp = adminSignIn(t, l)
	if h.token == "" || h.verified == "" || h.unverified == "" || h.totp == "" || h.reset == "" || h.unlock == "" || h.admin == "" || h.adaApp == "" {
		t.Fatalf("holdings incomplete: %+v", h)
	}
	return h
}

type call struct {
	op, method, path, token string
	body                    any
}

// calls are one call of every operation of the spec, each with a body it
// accepts, made with h.
func (h held) calls() []call {
	tok := h.token
	var cs []call
	add := func(method, path, token string, body any) {
		op, _, _ := strings.Cut(method+" "+path, "?")
		op = strings.ReplaceAll(op, h.verified, "{id}")
		op = strings.ReplaceAll(op, h.unverified, "{id}")
		op = strings.ReplaceAll(op, h.totp, "{id}")
		op = strings.ReplaceAll(op, h.adaApp, "{id}")
		cs = append(cs, call{op, method, path, token, body})
	}
	for _, kind := range []string{"reset", "unlock"} {
		f := h.reset
		if kind == "unlock" {
			f = h.unlock
		}
		p := "/api/v1/" + kind
		add("POST", p, "", map[string]string{"username": "carol"})
		add("POST", p+"/send", "", map[string]string{"flow": f, "method": h.verified})
		add("POST", p+"/verify", "", map[string]string{"flow": f, "method": h.verified, "code": "00000000"})
		add("POST", p+"/questions", "", map[string]string{"flow": f, "method": h.verified})
		if kind == "reset" {
			add("POST", p+"/policy", "", map[string]string{"flow": f})
			add("POST", p+"/complete", "", map[string]string{"flow": f, "password": newPassword})
		} else {
			add("POST", p+"/complete", "", map[string]string{"flow": f})
		}
	}
	add("GET", "/api/v1/methods", tok, nil)
	add("GET", "/api/v1/questions", tok, nil)
	add("POST", "/api/v1/methods", tok, map[string]string{"type": "email", "address": "carol.three@example.net"})
	add("POST", "/api/v1/methods/"+h.unverified+"/verify", tok, map[string]string{"code": "00000000"})
	add("POST", "/api/v1/methods/"+h.unverified+"/resend", tok, nil)
	add("POST", "/api/v1/methods/"+h.totp+"/resend", tok, nil) // 400: an app has no code to send
	add("DELETE", "/api/v1/methods/"+h.unverified, tok, map[string]string{"password": carolPassword})
	// after the calls that need carol's password: the change ends her
	// sessions
	add("POST", "/api/v1/change", "", map[string]string{"username": "carol", "old_password": carolPassword, "new_password": newPassword})
	for _, p := range []string{"/healthz", "/readyz", "/healthz/deps", "/metrics"} {
		add("GET", p, "", nil)
	}
	add("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": carolPassword})
	add("DELETE", "/api/v1/session", tok, nil)
	// the admin API: with ada's admin token, and once with a
	// registration token
	adm := h.admin
	add("GET", "/api/v1/admin/settings", adm, nil)
	add("GET", "/api/v1/admin/settings", tok, nil)
	add("PUT", "/api/v1/admin/settings", adm, map[string]any{"version": 0, "settings": map[string]any{
		"policy": map[string]any{"scope": "all", "methods_required": 1, "methods": []string{"email"}}, "server": map[string]any{}}})
	add("PUT", "/api/v1/admin/settings", adm, map[string]any{"version": 0, "settings": map[string]any{
		"policy": map[string]any{"scope": "none", "methods_required": 1, "methods": []string{"email"}}, "server": map[string]any{}}})
	add("PUT", "/api/v1/admin/settings", adm, map[string]any{"version": 1, "settings": map[string]any{
		"policy": map[string]any{"scope": "all", "methods_required": 3, "methods": []string{"email"}}, "server": map[string]any{}}})
	add("GET", "/api/v1/admin/audit", adm, nil)
	add("GET", "/api/v1/admin/audit?account=carol&event=registration.&limit=1", adm, nil)
	add("GET", "/api/v1/admin/audit?format=csv", adm, nil)
	add("GET", "/api/v1/admin/audit?since=yesterday", adm, nil)
	add("GET", "/api/v1/admin/explain?username=carol", adm, nil)
	add("GET", "/api/v1/admin/explain?username=nobody", adm, nil)
	add("POST", "/api/v1/admin/preview", adm, map[string]any{"settings": map[string]any{
		"policy": map[string]any{"scope": "selected", "groups": []string{liveAdmins}, "methods_required": 1, "methods": []string{"email"}}, "server": map[string]any{}}})
	add("POST", "/api/v1/admin/preview", adm, map[string]any{"settings": map[string]any{
		"policy": map[string]any{"scope": "all", "methods_required": 3, "methods": []string{"email"}}, "server": map[string]any{}}})
	add("GET", "/api/v1/admin/groups?q=admin", adm, nil)
	add("GET", "/api/v1/admin/groups?q=nothing-is-called-this", adm, nil)
	add("GET", "/api/v1/admin/blocked", adm, nil)
	add("POST", "/api/v1/admin/unblock", adm, map[string]string{"account": "carol"})
	add("POST", "/api/v1/admin/unblock", adm, map[string]string{"address": "192.0.2.10"})
	add("POST", "/api/v1/admin/unblock", adm, map[string]string{"address": "not an address"})
	add("POST", "/api/v1/admin/remove-app", adm, map[string]string{"username": "nobody-at-all"})
	add("POST", "/api/v1/admin/session", "", map[string]string{"username": "ada", "password": adaPassword, "code": h.adminCode})
	add("DELETE", "/api/v1/admin/session", adm, nil)
	// an admin's app is not removed with her password alone (409
	// admin_app_kept)
	add("DELETE", "/api/v1/methods/"+h.adaApp, h.adaToken, map[string]string{"password": adaPassword})
	add("POST", "/api/v1/methods", h.adaToken, map[string]string{"type": "totp"})
	// last, as it spends ada's budget of wrong passwords: removing a
	// method with wrong passwords until the budget is spent (429)
	for range 5 {
		add("DELETE", "/api/v1/methods/"+h.adaApp, h.adaToken, map[string]string{"password": "Not-Her-Password-1"})
	}
	return cs
}

// adminSignIn registers an authenticator app for ada and signs her in to
// the admin console: her token, the code it spent, her registration
// session's token and her app's id.
func adminSignIn(t *testing.T, l *live) (admin, code, reg, app string) {
	t.Helper()
	a := l.do("POST", "/api/v1/session", "", map[string]string{"username": "ada", "password": adaPassword}, "")
	tok, _ := a.obj()["token"].(string)
	a = l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "totp"}, "")
	id, _ := a.obj()["id"].(string)
	secret, _ := a.obj()["secret"].(string)
	step := time.Now().Unix() / 30
	a = l.do("POST", "/api/v1/methods/"+id+"/verify", tok, map[string]string{"code": totpCode(t, secret, time.Unix(step*30, 0))}, "")
	if a.status != 200 {
		t.Fatalf("verifying ada's app: %d %s", a.status, a.raw)
	}
	// the next step's code: the one the verification spent signs in no more
	code = totpCode(t, secret, time.Unix((step+1)*30, 0))
	a = l.do("POST", "/api/v1/admin/session", "", map[string]string{"username": "ada", "password": adaPassword, "code": code}, "")
	if a.status != 200 {
		t.Fatalf("ada's admin sign-in: %d %s", a.status, a.raw)
	}
	admin, _ = a.obj()["token"].(string)
	return admin, code, tok, id
}
