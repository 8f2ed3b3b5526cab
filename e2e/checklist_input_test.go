package e2e

import (
	"bytes"
	"net/url"
	"os/exec"
	"strings"
	"testing"
)

// TestChecklistInput: hostile input (items F5, F9, F11, H5, I3, K2) is
// refused and changes nothing, never reaches a header, is escaped where
// echoed, and errors are fixed messages with a request id.
func TestChecklistInput(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistInputChecks(t, ckSetup(t, d))
		})
	}
}

func checklistInputChecks(t *testing.T, r *ckRun) {
	e, srv, box, dom, pw, carolEmail, carolSMS := r.e, r.srv, r.box, r.dom, r.pw, r.carolEmail, r.carolSMS

	t.Run("F5 K2 every step refuses ambiguous, malformed and oversized input and changes nothing", func(t *testing.T) {
		e.t = t
		tok := e.signIn("carol", pw("carol"))
		fv := e.proveEmail("reset", e.start("reset", "carol").str("flow"), carolEmail, carolMail)
		fl := e.start("unlock", "carol").str("flow")
		const never = "F5-Never-Written-77"
		type kv struct{ k, v string }
		steps := []struct {
			method, path, token string
			fields              []kv
		}{
			{"POST", "/api/v1/session", "", []kv{{"username", "carol"}, {"password", pw("carol")}}},
			{"POST", "/api/v1/methods", tok, []kv{{"type", "email"}, {"address", "f5.ck@example.net"}}},
			{"POST", "/api/v1/methods/" + carolEmail + "/verify", tok, []kv{{"code", "12345678"}}},
			{"DELETE", "/api/v1/methods/" + carolSMS, tok, []kv{{"password", pw("carol")}}},
			{"POST", "/api/v1/reset", "", []kv{{"username", "carol"}}},
			{"POST", "/api/v1/reset/send", "", []kv{{"flow", fv}, {"method", carolSMS}}},
			{"POST", "/api/v1/reset/verify", "", []kv{{"flow", fv}, {"method", carolSMS}, {"code", "12345678"}}},
			{"POST", "/api/v1/reset/policy", "", []kv{{"flow", fv}}},
			{"POST", "/api/v1/reset/complete", "", []kv{{"flow", fv}, {"password", never}}},
			{"POST", "/api/v1/unlock", "", []kv{{"username", "carol"}}},
			{"POST", "/api/v1/unlock/send", "", []kv{{"flow", fl}, {"method", carolEmail}}},
			{"POST", "/api/v1/unlock/verify", "", []kv{{"flow", fl}, {"method", carolEmail}, {"code", "12345678"}}},
			{"POST", "/api/v1/unlock/complete", "", []kv{{"flow", fl}}},
			{"POST", "/api/v1/change", "", []kv{{"username", "carol"}, {"old_password", pw("carol")}, {"new_password", never}}},
		}
		enc := func(fields []kv, extra string) string {
			var parts []string
			for _, f := range fields {
				parts = append(parts, ckJSON(f.k)+":"+ckJSON(f.v))
			}
			if extra != "" {
				parts = append(parts, extra)
			}
			return "{" + strings.Join(parts, ",") + "}"
		}
		quiet := box.counts(t, ckKey{carolMail, "verification code"}, ckKey{"f5.ck@example.net", ""}, ckKey{"carol@" + dom, "password"})
		smsBefore := len(box.smsTo(carolE164, "is your"))
		for _, s := range steps {
			last := s.fields[len(s.fields)-1]
			first := s.fields[0]
			arr := enc(s.fields[1:], ckJSON(first.k)+":["+ckJSON(first.v)+"]")
			variants := []struct{ name, ctype, body string }{
				{"repeated key", "application/json", enc(s.fields, ckJSON(last.k)+":"+ckJSON(last.v+"x"))},
				{"key in another case", "application/json", enc(s.fields, ckJSON(strings.ToUpper(last.k[:1])+last.k[1:])+":"+ckJSON(last.v))},
				{"array", "application/json", arr},
				{"unknown field", "application/json", enc(s.fields, `"admin":true`)},
				{"trailing data", "application/json", enc(s.fields, "") + `{"` + first.k + `":"x"}`},
				{"not an object", "application/json", "[" + enc(s.fields, "") + "]"},
				{"text/plain", "text/plain", enc(s.fields, "")},
				{"a form", "application/x-www-form-urlencoded", first.k + "=" + url.QueryEscape(first.v)},
				{"too large", "application/json", enc(s.fields, `"pad":"`+strings.Repeat("a", 70<<10)+`"`)},
			}
			for _, v := range variants {
				h := map[string]string{"Content-Type": v.ctype}
				if s.token != "" {
					h["Authorization"] = "Bearer " + s.token
				}
				a := e.do(s.method, s.path, h, v.body)
				want, code := 400, "invalid_request"
				if v.name == "too large" {
					want, code = 413, "too_large"
				}
				if a.status != want || a.errCode() != code {
					t.Fatalf("%s %s, %s: %s", s.method, s.path, v.name, a)
				}
			}
		}
		// fields are bounded before any work: no sign-in is even audited
		long := strings.Repeat("x", 2000)
		for _, c := range []struct{ path, body string }{
			{"DELETE /api/v1/methods/" + carolSMS, ckJSON(map[string]string{"password": long})},
			{"/api/v1/session", ckJSON(map[string]string{"username": "carol", "password": long})},
			{"/api/v1/session", ckJSON(map[string]string{"username": strings.Repeat("c", 300), "password": pw("carol")})},
			{"/api/v1/reset", ckJSON(map[string]string{"username": strings.Repeat("c", 300)})},
			{"/api/v1/change", ckJSON(map[string]string{"username": "carol", "old_password": pw("carol"), "new_password": long})},
			{"/api/v1/reset/complete", ckJSON(map[string]string{"flow": fv, "password": long})},
			{"/api/v1/reset/verify", ckJSON(map[string]string{"flow": fv, "method": carolEmail, "code": strings.Repeat("1", 40)})},
		} {
			method, path := "POST", c.path
			if m, p, ok := strings.Cut(c.path, " "); ok {
				method, path = m, p
			}
			a := e.call(method, path, tok, c.body)
			if a.status != 400 {
				t.Fatalf("%s with an overlong field: %s", c.path, a)
			}
			rid := a.hdr.Get("X-Request-Id")
			for _, ev := range e.audit() {
				if ev["request_id"] == rid {
					t.Fatalf("an overlong field reached the flow: %v", ev)
				}
			}
		}
		// the pages: repeated fields, a token in the query, JSON to a form
		b := e.browser()
		tk := b.token()
		cookie := "latchkey_csrf=" + b.cookies["latchkey_csrf"]
		for _, c := range []struct{ path, ctype, body string }{
			{"/reset", "application/x-www-form-urlencoded", "username=nobody&username=carol&_csrf=" + url.QueryEscape(tk)},
			{"/reset?_csrf=" + url.QueryEscape(tk), "application/x-www-form-urlencoded", "username=carol&_csrf=" + url.QueryEscape(tk)},
			{"/reset", "application/json", `{"username":"carol","_csrf":"` + tk + `"}`},
			{"/change", "application/x-www-form-urlencoded", "username=carol&old_password=" + url.QueryEscape(pw("carol")) + "&new_password=" + never + "&confirm=" + never + "&confirm=x&_csrf=" + url.QueryEscape(tk)},
		} {
			if a := e.do("POST", c.path, map[string]string{"Content-Type": c.ctype, "Cookie": cookie}, c.body); a.status != 400 {
				t.Fatalf("form %s %q: %s", c.path, c.body, a)
			}
		}
		// and nothing changed
		if err := srv.UserBind("carol", pw("carol")); err != nil {
			t.Fatalf("carol's password changed: %v", err)
		}
		e.want(200, e.call("POST", "/api/v1/reset/policy", "", ckJSON(map[string]string{"flow": fv})), "the verified flow is still there")
		if ms := e.want(200, e.call("GET", "/api/v1/methods", tok, ""), "list"); !bytes.Contains(ms.body, []byte(carolSMS)) || bytes.Contains(ms.body, []byte("f5.ck")) {
			t.Fatalf("methods changed: %s", ms.body)
		}
		box.noNewMail(t, quiet, "refused requests")
		if n := len(box.smsTo(carolE164, "is your")); n != smsBefore {
			t.Fatalf("%d code SMS after refused requests", n-smsBefore)
		}
	})

	t.Run("F9 F11 input never reaches a header and pages escape what they echo", func(t *testing.T) {
		e.t = t
		b := e.browser()
		b.post("/register", url.Values{"username": {"carol"}, "password": {pw("carol")}}, nil)
		inj := "%0D%0AX-Injected:%20yes%0D%0ASet-Cookie:%20evil=1"
		var answers []ckAnswer
		answers = append(answers,
			b.get("/reset/code?method="+inj),
			b.get("/register/methods/"+inj+"/verify"),
			b.post("/register/methods/"+inj+"/resend", url.Values{}, nil),
			b.get("/?notice="+inj),
			b.post("/reset", url.Values{"username": {"carol\r\nX-Injected: yes"}}, nil),
			b.post("/reset/send", url.Values{"method": {"x\r\nX-Injected: yes"}}, nil),
			e.do("GET", "/nope/"+inj, nil, ""),
		)
		for _, a := range answers {
			for k, vs := range a.hdr {
				for _, v := range vs {
					if strings.EqualFold(k, "X-Injected") || strings.ContainsAny(v, "\r\n") || strings.Contains(v, "evil=1") {
						t.Fatalf("injected header: %s: %q", k, v)
					}
				}
			}
		}
		evil := `<script>alert("ck")</script><img src=x onerror=alert(1)>"'&`
		a := e.browser().post("/register", url.Values{"username": {evil}, "password": {"Wrong-Pass-1!"}}, nil)
		if a.status != 401 || !bytes.Contains(a.body, []byte("&lt;script&gt;alert(&#34;ck&#34;)&lt;/script&gt;")) ||
			bytes.Contains(a.body, []byte("<script")) || bytes.Contains(a.body, []byte("<img src=x")) {
			t.Fatalf("the sign-in page echoes the name unescaped:\n%s", a.body)
		}
		if bytes.Contains(a.body, []byte("Wrong-Pass-1!")) {
			t.Fatal("the sign-in page echoes the password")
		}
	})

	t.Run("H5 I3 errors are fixed messages with a request id; no banner, debug route or echo", func(t *testing.T) {
		e.t = t
		unverified := e.start("reset", "carol").str("flow")
		errs := []ckAnswer{
			e.call("POST", "/api/v1/reset", "", `{"username":1}`),
			e.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": "nobody-h5", "password": "x"})),
			e.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": "erin", "password": pw("erin")})),
			e.call("GET", "/api/v1/nope", "", ""),
			e.call("GET", "/api/v1/reset", "", ""),
			e.complete(unverified, "Whatever-Pass-99"),
			e.complete("no-such-flow-id-0000000000000000000000000000", "Whatever-Pass-99"),
			e.call("POST", "/api/v1/reset", "", `{"username":"`+strings.Repeat("a", 70<<10)+`"}`),
			e.call("POST", "/api/v1/reset/verify", "", ckJSON(map[string]string{"flow": unverified, "method": carolEmail, "code": "1234"})),
			e.call("GET", "/api/v1/methods", "expired-or-forged-token", ""),
			e.call("POST", "/api/v1/change", "", ckJSON(map[string]string{"username": "carol", "old_password": pw("carol"), "new_password": "short"})),
		}
		seen := map[int]bool{}
		for _, a := range errs {
			seen[a.status] = true
			em, _ := a.obj["error"].(map[string]any)
			if a.status < 400 || em == nil || em["request_id"] != a.hdr.Get("X-Request-Id") || em["message"] == "" {
				t.Fatalf("error answer %s", a)
			}
			low := strings.ToLower(string(a.body))
			for _, leak := range []string{"ldap", "dc=", "result code", "goroutine", ".go:", "0000052d", "ppolicy", "127.0.0.1", "cn=sspr", "panic"} {
				if strings.Contains(low, leak) {
					t.Fatalf("the error shows %q: %s", leak, a)
				}
			}
		}
		for _, st := range []int{400, 401, 403, 404, 405, 409, 410, 413, 422} {
			if !seen[st] {
				t.Fatalf("no %d among the errors: %v", st, seen)
			}
		}
		p := e.do("GET", "/no/such/page", nil, "")
		if p.status != 404 || !bytes.Contains(p.body, []byte(p.hdr.Get("X-Request-Id"))) {
			t.Fatalf("the error page lacks its request id: %s", p)
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/vars", "/debug/requests", "/server-status", "/version",
			"/api/v1/version", "/api/v1/debug", "/.env", "/config", "/latchkey.yaml"} {
			if a := e.do("GET", path, nil, ""); a.status != 404 {
				t.Fatalf("%s: %s", path, a)
			}
		}
		out, err := exec.Command(binary, "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		version := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "latchkey"))
		for _, a := range []ckAnswer{e.do("GET", "/", nil, ""), e.do("GET", "/healthz", nil, ""), e.do("GET", "/nope", nil, "")} {
			for k, vs := range a.hdr {
				if k == "Server" || k == "X-Powered-By" || k == "X-Version" || strings.Contains(strings.ToLower(strings.Join(vs, " ")), "echo") {
					t.Fatalf("banner %s: %v", k, vs)
				}
			}
			if bytes.Contains(a.body, []byte("latchkey "+version)) || bytes.Contains(a.body, []byte("go1.")) {
				t.Fatalf("a version in %s", a)
			}
		}
		for _, m := range []string{"TRACE", "OPTIONS", "TRACK", "PROPFIND"} {
			a := e.do(m, "/reset", map[string]string{"X-Echo-Check": "echo-marker-4711", "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, "")
			if a.status != 405 || bytes.Contains(a.body, []byte("echo-marker-4711")) || a.hdr.Get("Access-Control-Allow-Origin") != "" || a.hdr.Get("Access-Control-Allow-Methods") != "" {
				t.Fatalf("%s: %s %v", m, a, a.hdr)
			}
		}
	})

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsInput) })
}

// ckEventsInput is what the run of TestChecklistInput must leave in its audit (see ckAudit).
var ckEventsInput = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "sign_in/failed", "sign_in/not_eligible",
		"registration.method_added", "registration.method_verified/success", "reset.started", "reset.code_sent",
		"reset.gate/passed", "reset.gate/failed", "reset.completed/not_verified", "unlock.started",
	},
	secrets: 6, notices: 2,
}
