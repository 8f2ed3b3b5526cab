package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestChecklistWeb: the browser side (items B12, D6, E1-E6, I2): cookies,
// session ids, headers and links behind https, sign-out and reset end
// every session, cross-site posts and GETs change nothing, redirects go
// to fixed local paths.
func TestChecklistWeb(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistWebChecks(t, ckSetup(t, d))
		})
	}
}

func checklistWebChecks(t *testing.T, r *ckRun) {
	e, srv, box, dom, pw, carolEmail, carolSMS := r.e, r.srv, r.box, r.dom, r.pw, r.carolEmail, r.carolSMS

	t.Run("E1 E2 E5 I2 behind https: cookies, session ids, headers, links, secret file warning", func(t *testing.T) {
		key := make([]byte, 48)
		rand.Read(key)
		keyText := base64.StdEncoding.EncodeToString(key)
		keyFile := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(keyFile, []byte(keyText), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(keyFile, 0o644)
		const public = "https://sspr.example.org"
		g := ckGateway(t, srv, box, params{Limits: ckLimits(nil)}, map[string]string{
			"LATCHKEY_SERVER_PUBLIC_URL": public, "LATCHKEY_SERVER_SECRET_KEY_FILE": keyFile})
		g.t = t
		cookieOK := func(c *http.Cookie) {
			t.Helper()
			if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode ||
				c.Path != "/" || c.Domain != "" || len(c.String()) > 4096 {
				t.Fatalf("cookie %s", c)
			}
		}
		b := g.browser()
		a := b.get("/reset")
		if len(a.cook) != 1 || a.cook[0].Name != "__Host-latchkey_csrf" {
			t.Fatalf("form cookie: %v", a.cook)
		}
		cookieOK(a.cook[0])
		// a session id planted before sign-in is not adopted
		const planted = "planted-by-someone-else-0123456789abcdefghij"
		b.cookies["__Host-latchkey_session"] = planted
		a = b.post("/register", url.Values{"username": {"carol"}, "password": {pw("carol")}}, nil)
		if a.status != 303 || len(a.cook) != 1 || a.cook[0].Name != "__Host-latchkey_session" {
			t.Fatalf("sign-in: %s %v", a, a.cook)
		}
		cookieOK(a.cook[0])
		s1 := a.cook[0].Value
		if s1 == planted || len(s1) < 43 {
			t.Fatalf("session id %q", s1)
		}
		g.secrets = append(g.secrets, s1)
		other := g.browser()
		other.cookies["__Host-latchkey_session"] = planted
		if a := other.get("/register/methods"); a.status != 303 || a.hdr.Get("Location") != "/register" {
			t.Fatalf("the planted id: %s", a)
		}
		g.want(200, b.get("/register/methods"), "methods page")
		// signing in again gives a new id and ends the old one
		a = b.post("/register", url.Values{"username": {"carol"}, "password": {pw("carol")}}, nil)
		if a.status != 303 || b.cookies["__Host-latchkey_session"] == s1 {
			t.Fatalf("second sign-in: %s, same id", a)
		}
		g.secrets = append(g.secrets, b.cookies["__Host-latchkey_session"])
		other.cookies["__Host-latchkey_session"] = s1
		if a := other.get("/register/methods"); a.status != 303 {
			t.Fatalf("the old session id still works: %s", a)
		}
		// re-entering the password (to change methods) gives a new id too
		// and ends the one before
		s2 := b.cookies["__Host-latchkey_session"]
		if a := b.post("/register/reauth", url.Values{"password": {pw("carol")}}, nil); a.status != 303 {
			t.Fatalf("re-authentication: %s", a)
		}
		if s3 := b.cookies["__Host-latchkey_session"]; s3 == "" || s3 == s2 {
			t.Fatal("re-authentication kept the session id")
		} else {
			g.secrets = append(g.secrets, s3)
		}
		other.cookies["__Host-latchkey_session"] = s2
		if a := other.get("/register/methods"); a.status != 303 {
			t.Fatalf("the session id from before the re-authentication still works: %s", a)
		}
		// the flow id lives in a cookie, never in a URL
		a = b.post("/reset", url.Values{"username": {"carol"}}, nil)
		if a.status != 303 || a.hdr.Get("Location") != "/reset/methods" || len(a.cook) != 1 || a.cook[0].Name != "__Host-latchkey_flow" {
			t.Fatalf("reset start: %s %v", a, a.cook)
		}
		cookieOK(a.cook[0])
		if id := strings.TrimPrefix(a.cook[0].Value, "reset."); len(id) < 43 || strings.Contains(a.hdr.Get("Location"), id) {
			t.Fatalf("flow id %q", id)
		}
		// headers on every kind of answer, errors and redirects included
		for _, ans := range []ckAnswer{
			b.get("/"), b.get("/reset"), b.get("/no/such/page"), b.get("/reset/methods"), b.get("/healthz"), b.get("/metrics"),
			g.call("POST", "/api/v1/reset", "", `{"username":`), g.call("GET", "/api/v1/reset", "", ""),
			g.call("GET", "/api/v1/methods", "", ""), b.post("/reset", url.Values{"username": {"nobody"}}, nil),
			b.do("POST", "/reset", url.Values{"username": {"x"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}),
			g.do("GET", "/api/v1/methods", map[string]string{"Origin": "https://evil.example"}, ""),
			g.do("POST", "/api/v1/reset", map[string]string{"Origin": "null", "Content-Type": "application/json"}, `{"username":"carol"}`),
		} {
			h := ans.hdr
			csp := h.Get("Content-Security-Policy")
			hsts := regexp.MustCompile(`^max-age=(\d+)`).FindStringSubmatch(h.Get("Strict-Transport-Security"))
			if hsts == nil {
				t.Fatalf("%d: no HSTS: %v", ans.status, h)
			}
			if n, _ := strconv.Atoi(hsts[1]); n < 31536000 {
				t.Fatalf("HSTS %s", h.Get("Strict-Transport-Security"))
			}
			for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
				if !strings.Contains(csp, want) {
					t.Fatalf("%d: CSP %q lacks %s", ans.status, csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") || h.Get("Cross-Origin-Opener-Policy") != "same-origin" ||
				h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" ||
				h.Get("Access-Control-Allow-Origin") != "" || h.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("%d: headers %v", ans.status, h)
			}
			// (application/json is UTF-8 by definition: RFC 8259 gives it no charset)
			if ct := h.Get("Content-Type"); len(ans.body) > 0 && (ct == "" || strings.HasPrefix(ct, "text/") && !strings.Contains(strings.ToLower(ct), "charset=utf-8")) {
				t.Fatalf("%d: Content-Type %q", ans.status, ct)
			}
		}
		// links in messages are on the configured https host only
		tok := g.signIn("carol", pw("carol"))
		id := g.want(201, g.call("POST", "/api/v1/methods", tok, ckJSON(map[string]string{"type": "email", "address": "carol.g6@example.net"})), "add").str("id")
		before := len(box.list(t, "carol@"+dom, "recovery method was added"))
		g.want(200, g.call("POST", "/api/v1/methods/"+id+"/verify", tok, ckJSON(map[string]string{"code": box.code(t, "carol.g6@example.net")})), "verify")
		notices := box.waitMail(t, "carol@"+dom, "recovery method was added", before+1)
		links := regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>]*`)
		for _, id := range []string{box.list(t, "carol.g6@example.net", "verification code")[0].ID, notices[0].ID} {
			m := box.message(t, id)
			for _, l := range links.FindAllString(m.Text+" "+m.HTML, -1) {
				if !strings.HasPrefix(l, public) {
					t.Fatalf("a link that is not on %s: %q in %q", public, l, m.Subject)
				}
			}
			// (the client's address may be named as the source of the
			// request; a link to the listen address may not)
			if strings.Contains(m.Text+m.HTML, "://127.0.0.1") {
				t.Fatalf("a link to the listen address in %q", m.Subject)
			}
		}
		// the world-readable secret file is warned about, by key, not by content
		log := g.logText()
		if !strings.Contains(log, "readable by every user") || strings.Contains(log, keyText) {
			t.Fatalf("no warning about the world-readable secret file (or the key printed):\n%s", tail(log, 2000))
		}
	})

	t.Run("E3 B9 logout and a reset end every session and flow, and sign nobody in", func(t *testing.T) {
		e.t = t
		const addr = "grace.ck@example.net"
		tok, mid, _ := e.register("grace", pw("grace"), addr, "")
		t2 := e.signIn("grace", pw("grace"))
		e.want(204, e.call("DELETE", "/api/v1/session", t2, ""), "sign out")
		if a := e.call("GET", "/api/v1/methods", t2, ""); a.status != 401 || a.errCode() != "session_expired" {
			t.Fatalf("a signed-out token: %s", a)
		}
		f2 := e.start("reset", "grace").str("flow")
		e.want(202, e.send("reset", f2, mid), "send")
		pending := box.code(t, addr)
		f1 := e.proveEmail("reset", e.start("reset", "grace").str("flow"), mid, addr)
		const newPass = "Orchid-Lantern-River-63"
		a := e.want(200, e.complete(f1, newPass), "complete")
		if len(a.cook) != 0 || a.str("token") != "" || a.hdr.Get("Set-Cookie") != "" {
			t.Fatalf("the reset signed someone in: %s %v", a, a.hdr)
		}
		if a := e.call("GET", "/api/v1/methods", tok, ""); a.status != 401 || a.errCode() != "session_expired" {
			t.Fatalf("a session from before the reset: %s", a)
		}
		if a, _ := e.verify("reset", f2, mid, pending); a.status != 410 || a.errCode() != "flow_expired" {
			t.Fatalf("a flow from before the reset: %s", a)
		}
		if err := srv.UserBind("grace", newPass); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("E6 redirects go to fixed local paths whatever the request asks", func(t *testing.T) {
		e.t = t
		b := e.browser()
		evil := "?next=https://evil.example/&return=//evil.example&redirect_uri=https://evil.example&continue=%2F%2Fevil.example"
		for _, c := range []struct {
			a    ckAnswer
			want string
		}{
			{b.post("/reset"+evil, url.Values{"username": {"carol"}, "next": {"https://evil.example/"}}, nil), "/reset/methods"},
			{b.post("/register"+evil, url.Values{"username": {"carol"}, "password": {pw("carol")}, "next": {"//evil.example"}}, nil), "/register/methods"},
			{b.get("/register" + evil), "/register/methods"},
			{b.post("/register/signout"+evil, url.Values{"return": {"https://evil.example"}}, nil), "/"},
			{b.get("/register/methods" + evil), "/register"},
		} {
			if c.a.status != 303 || c.a.hdr.Get("Location") != c.want {
				t.Fatalf("redirect %d to %q, want %q", c.a.status, c.a.hdr.Get("Location"), c.want)
			}
		}
	})

	t.Run("D6 E4 B12 every form refuses cross-site posts and no GET changes anything", func(t *testing.T) {
		e.t = t
		b := e.browser()
		if a := b.post("/register", url.Values{"username": {"carol"}, "password": {pw("carol")}}, nil); a.status != 303 || a.hdr.Get("Location") != "/register/methods" {
			t.Fatalf("web sign-in: %s", a)
		}
		if a := b.post("/reset", url.Values{"username": {"carol"}}, nil); a.status != 303 {
			t.Fatalf("web reset start: %s", a)
		}
		const newPass = "Cross-Site-Pass-77"
		routes := []struct {
			path string
			form url.Values
		}{
			{"/register", url.Values{"username": {"carol"}, "password": {pw("carol")}}},
			{"/register/methods", url.Values{"type": {"email"}, "address": {"csrf.ck@example.net"}}},
			{"/register/reauth", url.Values{"password": {pw("carol")}}},
			{"/register/methods/" + carolEmail + "/verify", url.Values{"code": {"12345678"}}},
			{"/register/methods/" + carolEmail + "/resend", url.Values{}},
			{"/register/methods/" + carolSMS + "/remove", url.Values{"password": {pw("carol")}}},
			{"/register/signout", url.Values{}},
			{"/reset", url.Values{"username": {"carol"}}},
			{"/reset/send", url.Values{"method": {carolEmail}}},
			{"/reset/verify", url.Values{"method": {carolEmail}, "code": {"12345678"}}},
			{"/reset/password", url.Values{"password": {newPass}, "confirm": {newPass}}},
			{"/unlock", url.Values{"username": {"carol"}}},
			{"/unlock/send", url.Values{"method": {carolEmail}}},
			{"/unlock/verify", url.Values{"method": {carolEmail}, "code": {"12345678"}}},
			{"/unlock/complete", url.Values{}},
			{"/change", url.Values{"username": {"carol"}, "old_password": {pw("carol")}, "new_password": {newPass}, "confirm": {newPass}}},
		}
		quiet := box.counts(t, ckKey{carolMail, ""}, ckKey{"csrf.ck@example.net", ""}, ckKey{"carol@" + dom, "password"}, ckKey{"carol@" + dom, "removed"})
		smsBefore := len(box.smsTo(carolE164, ""))
		blocked := len(e.events("blocked", "csrf"))
		methodsBefore := e.want(200, e.call("GET", "/api/v1/methods", e.signIn("carol", pw("carol")), ""), "list").body
		for _, r := range routes {
			for name, hdr := range map[string]map[string]string{
				"cross-site":     {"Sec-Fetch-Site": "cross-site"},
				"same-site":      {"Sec-Fetch-Site": "same-site"},
				"foreign origin": {"Origin": "https://evil.example"},
			} {
				if a := b.post(r.path, r.form, hdr); a.status != 403 {
					t.Fatalf("%s %s: %s", name, r.path, a)
				}
			}
			if a := b.do("POST", r.path, r.form, nil); a.status != 403 {
				t.Fatalf("no token %s: %s", r.path, a)
			}
		}
		if n := len(e.events("blocked", "csrf")) - blocked; n != 4*len(routes) {
			t.Fatalf("%d csrf refusals audited, want %d", n, 4*len(routes))
		}
		// POST-only routes answer GET and HEAD with 405, whatever the query
		tok := e.signIn("carol", pw("carol"))
		q := "?username=carol&password=" + url.QueryEscape(pw("carol")) + "&method=" + carolEmail + "&code=12345678&type=email&address=csrf.ck%40example.net"
		for _, p := range []string{"/register/reauth", "/register/methods/" + carolEmail + "/resend", "/register/methods/" + carolSMS + "/remove",
			"/register/signout", "/reset/send", "/reset/verify", "/unlock/send", "/unlock/verify",
			"/api/v1/methods/" + carolEmail + "/verify", "/api/v1/methods/" + carolEmail + "/resend", "/api/v1/reset/policy",
			"/api/v1/reset/complete", "/api/v1/unlock/send", "/api/v1/unlock/verify", "/api/v1/unlock/complete"} {
			for _, m := range []string{"GET", "HEAD"} {
				if a := b.do(m, p+q, nil, map[string]string{"Authorization": "Bearer " + tok}); a.status != 405 {
					t.Fatalf("%s %s: %s", m, p, a)
				}
			}
		}
		// nothing happened: the password, the session, the methods
		if err := srv.UserBind("carol", pw("carol")); err != nil {
			t.Fatalf("carol's password changed: %v", err)
		}
		if a := b.get("/register/methods"); a.status != 200 {
			t.Fatalf("the session ended: %s", a)
		}
		if ms := e.want(200, e.call("GET", "/api/v1/methods", tok, ""), "list"); !bytes.Contains(ms.body, []byte(carolSMS)) ||
			bytes.Contains(ms.body, []byte("csrf.ck")) || !bytes.Equal(ms.body, methodsBefore) {
			t.Fatalf("methods changed: %s", ms.body)
		}
		box.noNewMail(t, quiet, "refused posts")
		if n := len(box.smsTo(carolE164, "")); n != smsBefore {
			t.Fatalf("%d SMS after refused posts", n-smsBefore)
		}
	})

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsWeb) })
}

// ckEventsWeb is what the run of TestChecklistWeb must leave in its audit (see ckAudit).
var ckEventsWeb = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "registration.method_added",
		"registration.method_verified/success", "reset.started", "reset.code_sent", "reset.gate/passed",
		"reset.completed/success", "blocked/csrf",
	},
	secrets: 10, notices: 5,
}
