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
	"github.com/latchkeyhq/latchkey/internal/flowtest"
)

// TestPasskeyAPI: the JSON API registers a passkey and resets with it;
// the credential must be a JSON object and unknown fields are refused.
func TestPasskeyAPI(t *testing.T) {
	tb := passkeyBed(t)
	c := newClient(t, tb)
	w := c.api("POST", "/api/v1/session", `{"username":"carol","password":"Carol-Pass1!"}`, nil)
	var sess struct{ Token string }
	json.Unmarshal(w.Body.Bytes(), &sess)
	auth := map[string]string{"Authorization": "Bearer " + sess.Token}
	w = c.api("POST", "/api/v1/methods", `{"type":"webauthn","label":"Laptop"}`, auth)
	if w.Code != http.StatusCreated {
		t.Fatalf("add passkey: %d %s", w.Code, w.Body)
	}
	var add struct {
		ID      string          `json:"id"`
		Options json.RawMessage `json:"options"`
	}
	json.Unmarshal(w.Body.Bytes(), &add)
	key := flowtest.NewSoftKey(t)
	cred := key.MustCreate(add.Options)
	for _, bad := range []string{`{"credential":"x"}`, `{"credential":[1]}`, `{"credential":{},"code":"123456"}`, `{"credential":{},"extra":1}`} {
		if w := c.api("POST", "/api/v1/methods/"+add.ID+"/verify", bad, auth); w.Code != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", bad, w.Code, w.Body)
		}
	}
	w = c.api("POST", "/api/v1/methods/"+add.ID+"/verify", `{"credential":`+string(cred)+`}`, auth)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"hint":"Laptop"`) {
		t.Fatalf("verify passkey: %d %s", w.Code, w.Body)
	}
	w = c.api("POST", "/api/v1/reset", `{"username":"carol"}`, nil)
	var f struct {
		Flow    string
		Methods []flow.Offered
	}
	json.Unmarshal(w.Body.Bytes(), &f)
	if len(f.Methods) != 1 || f.Methods[0].Type != flow.MethodWebAuthn {
		t.Fatalf("reset methods: %s", w.Body)
	}
	w = c.api("POST", "/api/v1/reset/send", `{"flow":"`+f.Flow+`","method":"`+f.Methods[0].ID+`"}`, nil)
	var send struct {
		Options json.RawMessage `json:"options"`
	}
	json.Unmarshal(w.Body.Bytes(), &send)
	if w.Code != http.StatusAccepted || len(send.Options) == 0 {
		t.Fatalf("send: %d %s", w.Code, w.Body)
	}
	w = c.api("POST", "/api/v1/reset/verify", `{"flow":"`+f.Flow+`","method":"`+f.Methods[0].ID+`","credential":`+string(key.MustGet(send.Options))+`}`, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"remaining":0`) {
		t.Fatalf("verify: %d %s", w.Code, w.Body)
	}
}

// TestPasskeyPagesCSP: only the passkey pages may run a script, and only
// the gateway's own file; the page works as a form and says it needs
// JavaScript when none runs; other pages keep a CSP without scripts.
func TestPasskeyPagesCSP(t *testing.T) {
	tb := passkeyBed(t)
	c := newClient(t, tb)
	w := c.post("/register", "/register", url.Values{"username": {"carol"}, "password": {"Carol-Pass1!"}}, nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", w.Code)
	}
	w = c.get("/register/methods")
	if csp := w.Header().Get("Content-Security-Policy"); strings.Contains(csp, "script-src") || !strings.Contains(w.Body.String(), "Add a passkey") {
		t.Fatalf("methods page: CSP %q", csp)
	}
	w = c.post("/register/methods", "/register/methods", url.Values{"type": {"webauthn"}, "label": {`<b>"x"</b>`}}, nil)
	body, csp := w.Body.String(), w.Header().Get("Content-Security-Policy")
	if w.Code != http.StatusOK || csp != cspPasskey || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
		t.Fatalf("passkey page: %d CSP %q", w.Code, csp)
	}
	if strings.Count(body, "<script") != 1 || !strings.Contains(body, `<script src="/static/webauthn.js" defer></script>`) ||
		!strings.Contains(body, "Passkeys need JavaScript") || !strings.Contains(body, `id="passkey-form" hidden`) ||
		!strings.Contains(body, `data-options="{&#34;`) {
		t.Fatalf("passkey page body:\n%s", body)
	}
	js := c.get("/static/webauthn.js")
	if js.Code != http.StatusOK || !strings.Contains(js.Header().Get("Content-Type"), "javascript") || !strings.Contains(js.Body.String(), "navigator.credentials.create") {
		t.Fatalf("script: %d %q", js.Code, js.Header().Get("Content-Type"))
	}
	for _, p := range []string{"/", "/reset", "/register", "/change"} {
		if csp := c.get(p).Header().Get("Content-Security-Policy"); csp != cspPages {
			t.Fatalf("%s: CSP %q", p, csp)
		}
	}
	// the reset and unlock pages that use a passkey: the same CSP and the
	// one script, also when shown again after a refused assertion; the
	// methods page before them runs none
	tb.addPasskey(t, "carol", flowtest.NewSoftKey(t))
	for _, kind := range []string{"reset", "unlock"} {
		b := newClient(t, tb)
		b.post("/"+kind, "/"+kind, url.Values{"username": {"carol"}}, nil)
		mp := b.get("/" + kind + "/methods")
		id := regexp.MustCompile(`name="method" value="([0-9a-f]+)">\s*<button type="submit">Use passkey`).FindStringSubmatch(mp.Body.String())
		if id == nil || mp.Header().Get("Content-Security-Policy") != cspPages {
			t.Fatalf("%s methods page: CSP %q\n%s", kind, mp.Header().Get("Content-Security-Policy"), mp.Body)
		}
		for _, w := range []*httptest.ResponseRecorder{
			b.post("/"+kind+"/methods", "/"+kind+"/send", url.Values{"method": {id[1]}}, nil),
			b.post("/"+kind+"/methods", "/"+kind+"/passkey", url.Values{"method": {id[1]}, "credential": {`{}`}}, nil),
		} {
			body := w.Body.String()
			if csp := w.Header().Get("Content-Security-Policy"); csp != cspPasskey || strings.Count(body, "<script") != 1 ||
				!strings.Contains(body, `<script src="/static/webauthn.js" defer></script>`) || !strings.Contains(body, `data-mode="get"`) {
				t.Fatalf("%s passkey page: %d CSP %q\n%s", kind, w.Code, csp, body)
			}
		}
	}
}
