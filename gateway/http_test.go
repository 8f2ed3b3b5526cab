package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/flow"
)

type client struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
	// remote is the peer address (default 192.0.2.10:5555)
	remote string
}

func newClient(t *testing.T, tb *testbed) *client {
	return &client{t: t, h: tb.srv.Handler(), cookies: map[string]*http.Cookie{}}
}

func (c *client) do(req *http.Request) *httptest.ResponseRecorder {
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	req.RemoteAddr = "192.0.2.10:5555"
	if c.remote != "" {
		req.RemoteAddr = c.remote
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, req)
	for _, ck := range w.Result().Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck
		}
	}
	return w
}

func (c *client) get(path string) *httptest.ResponseRecorder {
	return c.do(httptest.NewRequest("GET", path, nil))
}

var csrfRE = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// post submits a form the way a browser on the page would, with the token
// from a GET of page.
func (c *client) post(page, path string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	c.t.Helper()
	if page != "" {
		m := csrfRE.FindStringSubmatch(c.get(page).Body.String())
		if m == nil {
			c.t.Fatalf("no csrf token on %s", page)
		}
		form.Set("_csrf", m[1])
	}
	req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", "https://sspr.example.org")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return c.do(req)
}

func (c *client) api(method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return c.do(req)
}

func TestSecurityHeadersOnEveryKindOfAnswer(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	for _, w := range []*httptest.ResponseRecorder{
		c.get("/"), c.get("/reset"), c.get("/no/such/page"), c.get("/healthz"),
		c.api("POST", "/api/v1/reset", `{"username":"x"}`, nil), c.api("GET", "/api/v1/reset", "", nil),
		c.api("POST", "/api/v1/reset", `{"username":`, nil),
	} {
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%d: CSP %q lacks %s", w.Code, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
			t.Errorf("CSP allows scripts: %q", csp)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			"Cache-Control": "no-store", "Strict-Transport-Security": "max-age=63072000; includeSubDomains"} {
			if h.Get(k) != v {
				t.Errorf("%d: %s = %q", w.Code, k, h.Get(k))
			}
		}
		if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Server") != "" || len(h.Get("X-Request-Id")) != 16 {
			t.Errorf("%d: headers %v", w.Code, h)
		}
	}
	if w := c.get("/api/v1/reset"); w.Code != 405 || !strings.Contains(w.Body.String(), `"method_not_allowed"`) {
		t.Fatalf("GET on a POST route: %d %s", w.Code, w.Body)
	}
}

func TestCSRF(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	form := func() url.Values { return url.Values{"username": {"carol"}} }
	cases := []struct {
		name string
		page string
		hdr  map[string]string
	}{
		{"no token", "", nil},
		{"cross-site fetch", "/reset", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site fetch", "/reset", map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"foreign origin", "/reset", map[string]string{"Origin": "https://evil.example"}},
		{"null origin without fetch metadata", "/reset", map[string]string{"Origin": "null", "Sec-Fetch-Site": ""}},
		{"null origin, cross-site", "/reset", map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}},
	}
	for _, tc := range cases {
		if w := c.post(tc.page, "/reset", form(), tc.hdr); w.Code != http.StatusForbidden {
			t.Errorf("%s: %d", tc.name, w.Code)
		}
	}
	// a token from another browser does not fit this one's cookie
	other := newClient(t, tb)
	tok := csrfRE.FindStringSubmatch(other.get("/reset").Body.String())[1]
	c.get("/reset")
	f := form()
	f.Set("_csrf", tok)
	if w := c.post("", "/reset", f, nil); w.Code != http.StatusForbidden {
		t.Errorf("foreign token: %d", w.Code)
	}
	// what Chromium sends from a page under Referrer-Policy: no-referrer
	if w := c.post("/reset", "/reset", form(), map[string]string{"Origin": "null"}); w.Code != http.StatusSeeOther {
		t.Fatalf("same-origin post with Origin: null: %d %s", w.Code, w.Body)
	}
	// the real thing, including an old browser without Sec-Fetch-Site/Origin
	if w := c.post("/reset", "/reset", form(), map[string]string{"Sec-Fetch-Site": "", "Origin": ""}); w.Code != http.StatusSeeOther {
		t.Fatalf("valid form: %d %s", w.Code, w.Body)
	}
}

func TestCookies(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	w := c.post("/register", "/register", url.Values{"username": {"carol"}, "password": {"Carol-Pass1!"}}, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/register/methods" {
		t.Fatalf("sign in: %d %s", w.Code, w.Body)
	}
	first := c.cookies["__Host-latchkey_session"]
	if first == nil {
		t.Fatalf("cookies %v", c.cookies)
	}
	for _, ck := range w.Result().Cookies() {
		if !strings.HasPrefix(ck.Name, "__Host-") || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
			t.Fatalf("cookie %+v", ck)
		}
	}
	if w := c.get("/register/methods"); w.Code != 200 || !strings.Contains(w.Body.String(), "Register at least one") {
		t.Fatalf("methods page: %d", w.Code)
	}
	// signing in again gives a new session id and ends the old one
	c.post("/register/methods", "/register", url.Values{"username": {"carol"}, "password": {"Carol-Pass1!"}}, nil)
	if second := c.cookies["__Host-latchkey_session"]; second == nil || second.Value == first.Value {
		t.Fatal("session id not rotated")
	}
	old := newClient(t, tb)
	old.cookies[first.Name] = first
	if w := old.get("/register/methods"); w.Code != http.StatusSeeOther {
		t.Fatalf("old session still works: %d", w.Code)
	}
}

func TestStrictInput(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	for name, body := range map[string]string{
		"unknown field":     `{"username":"carol","admin":true}`,
		"repeated key":      `{"username":"carol","username":"alice"}`,
		"repeated, case":    `{"username":"carol","Username":"alice"}`,
		"array":             `{"username":["carol","alice"]}`,
		"trailing data":     `{"username":"carol"} {}`,
		"not an object":     `"carol"`,
		"username too long": `{"username":"` + strings.Repeat("a", 300) + `"}`,
	} {
		if w := c.api("POST", "/api/v1/reset", body, nil); w.Code != 400 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	if w := c.api("POST", "/api/v1/reset", `{"username":"carol"}`, map[string]string{"Content-Type": "text/plain"}); w.Code != 400 {
		t.Errorf("text/plain: %d", w.Code)
	}
	if w := c.api("POST", "/api/v1/reset", `{"username":"`+strings.Repeat("a", 70<<10)+`"}`, nil); w.Code != 413 {
		t.Errorf("oversized body: %d", w.Code)
	}
	// repeated form fields
	c.get("/reset")
	tok := csrfRE.FindStringSubmatch(c.get("/reset").Body.String())[1]
	req := httptest.NewRequest("POST", "/reset", strings.NewReader("username=carol&username=alice&_csrf="+url.QueryEscape(tok)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := c.do(req); w.Code != 400 {
		t.Errorf("repeated form field: %d", w.Code)
	}
	// error bodies are fixed messages with a request id, nothing from the input
	w := c.api("POST", "/api/v1/reset", `{"username":"<script>x</script>","zzz":1}`, nil)
	var e apiErrorBody
	json.Unmarshal(w.Body.Bytes(), &e)
	if e.Error.Code != "invalid_request" || e.Error.RequestID == "" || strings.Contains(w.Body.String(), "script") || strings.Contains(w.Body.String(), "zzz") {
		t.Fatalf("error body %s", w.Body)
	}
}

func TestClientIPIgnoresForwardedForFromUntrustedPeers(t *testing.T) {
	tb := newTestbed(t, nil)
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.10:1234"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if ip := tb.srv.clientIP(r); ip != "192.0.2.10" {
		t.Fatalf("untrusted peer: %s", ip)
	}
	r.RemoteAddr = "[2001:db8:1:2:aaaa::1]:443"
	r2 := httptest.NewRequest("GET", "/", nil)
	r2.RemoteAddr = "[2001:db8:1:2:bbbb::9]:443"
	r2.RemoteAddr = "[2001:db8:1:ff:bbbb::9]:443"
	if a, b := tb.srv.clientIP(r), tb.srv.clientIP(r2); a != b || a != "2001:db8:1::/56" {
		t.Fatalf("IPv6 addresses of one /56 count apart: %s %s", a, b)
	}
	tb = newTestbed(t, func(o *flow.Options) { o.Limits.IPv6Prefix = 64 }) // limits.ipv6_prefix
	if a, b := tb.srv.clientIP(r), tb.srv.clientIP(r2); a == b || a != "2001:db8:1:2::/64" {
		t.Fatalf("per /64: %s %s", a, b)
	}
	r.RemoteAddr = "192.0.2.10:1234"
	tb = newTestbed(t, func(o *flow.Options) {
		o.Limits.IPv6Prefix = 64
		o.TrustedProxies = append(o.TrustedProxies, mustPrefix("192.0.2.0/24"))
	})
	r.Header.Set("X-Forwarded-For", "198.51.100.7, 203.0.113.9, 192.0.2.99")
	if ip := tb.srv.clientIP(r); ip != "203.0.113.9" {
		t.Fatalf("trusted proxy chain: %s", ip)
	}
}

func TestPagesFlowWithoutJavaScript(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	c.post("/register", "/register", url.Values{"username": {"carol"}, "password": {"Carol-Pass1!"}}, nil)
	w := c.post("/register/methods", "/register/methods", url.Values{"type": {"email"}, "address": {"carol@home.example"}}, nil)
	loc := w.Header().Get("Location")
	if w.Code != http.StatusSeeOther || !strings.HasSuffix(loc, "/verify") {
		t.Fatalf("add method: %d %s", w.Code, w.Body)
	}
	code := tb.inbox.LastCode(t, "carol@home.example")
	if w = c.post(loc, loc, url.Values{"code": {"000000"}}, nil); w.Code != 422 || !strings.Contains(w.Body.String(), "not valid") {
		t.Fatalf("wrong code: %d", w.Code)
	}
	if w = c.post(loc, loc, url.Values{"code": {code}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("verify: %d %s", w.Code, w.Body)
	}
	// forgot password, in a new browser
	b := newClient(t, tb)
	w = b.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	if w.Header().Get("Location") != "/reset/methods" || strings.Contains(w.Header().Get("Location"), "carol") {
		t.Fatalf("reset start: %d %v", w.Code, w.Header())
	}
	page := b.get("/reset/methods").Body.String()
	mid := regexp.MustCompile(`name="method" value="([0-9a-f]{22})"`).FindStringSubmatch(page)[1]
	// GET never consumes: looking at pages twice changes nothing
	b.get("/reset/methods")
	w = b.post("/reset/methods", "/reset/send", url.Values{"method": {mid}}, nil)
	codePage := w.Header().Get("Location")
	code = tb.inbox.LastCode(t, "carol@home.example")
	b.get(codePage)
	if w = b.post(codePage, "/reset/verify", url.Values{"method": {mid}, "code": {code}}, nil); w.Header().Get("Location") != "/reset/password" {
		t.Fatalf("verify: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if pw := b.get("/reset/password").Body.String(); !strings.Contains(pw, "At least 8 characters") || !strings.Contains(pw, "last 3 passwords") {
		t.Fatalf("rules not shown:\n%s", pw)
	}
	if w = b.post("/reset/password", "/reset/password", url.Values{"password": {"Fresh-Password-77"}, "confirm": {"Fresh-Password-78"}}, nil); w.Code != 422 {
		t.Fatalf("mismatch: %d", w.Code)
	}
	if w = b.post("/reset/password", "/reset/password", url.Values{"password": {"Fresh-Password-77"}, "confirm": {"Fresh-Password-77"}}, nil); w.Header().Get("Location") != "/reset/done" {
		t.Fatalf("complete: %d %s", w.Code, w.Body)
	}
	if tb.dir.Password("carol") != "Fresh-Password-77" {
		t.Fatal("not written")
	}
	if w = b.get("/reset/done"); w.Code != 200 || b.cookies["__Host-latchkey_session"] != nil {
		t.Fatal("done page, or a sign-in happened")
	}
}

func TestMetrics(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	c.api("POST", "/api/v1/reset", `{"username":"carol-secret-name"}`, nil)
	c.get("/reset")
	w := c.get("/metrics")
	body := w.Body.String()
	for _, want := range []string{
		`latchkey_http_requests_total{method="POST",route="/api/v1/reset",status="200"} 1`,
		`latchkey_http_requests_total{method="GET",route="/reset",status="200"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, "carol-secret-name") || strings.Contains(body, "reset.started") || strings.Contains(body, "unknown") {
		t.Fatal("a username reached /metrics")
	}
}
