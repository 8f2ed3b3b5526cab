package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
)

// TestTOTPEnrolmentOverTheAPI: the enrolment answer carries the seed (as
// text, URL and QR code) once; the method is active only after a code from
// it; afterwards no list, log line or audit event holds the seed.
func TestTOTPEnrolmentOverTheAPI(t *testing.T) {
	tb, clk, logs := totpBed(t, nil)
	c := newClient(t, tb)
	w := c.api("POST", "/api/v1/session", `{"username":"carol","password":"Carol-Pass1!"}`, nil)
	var sess struct{ Token string }
	json.Unmarshal(w.Body.Bytes(), &sess)
	auth := map[string]string{"Authorization": "Bearer " + sess.Token}

	// an address is refused: an app has none
	if w = c.api("POST", "/api/v1/methods", `{"type":"totp","address":"x@y.example"}`, auth); w.Code != 400 {
		t.Fatalf("totp with an address: %d %s", w.Code, w.Body)
	}
	w = c.api("POST", "/api/v1/methods", `{"type":"totp"}`, auth)
	if w.Code != 201 || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("enrol: %d %v %s", w.Code, w.Header(), w.Body)
	}
	var en struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
		URL    string `json:"otpauth_url"`
		QR     string `json:"qr_png"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &en); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(en.Secret) {
		t.Fatalf("secret %q: want 160 bits in base32", en.Secret)
	}
	u, err := url.Parse(en.URL)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != en.Secret ||
		u.Query().Get("issuer") != "Latchkey" || u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" {
		t.Fatalf("otpauth_url %q", en.URL)
	}
	raw, err := base64.StdEncoding.DecodeString(en.QR)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil || img.Bounds().Dx() < 200 {
		t.Fatalf("qr_png is not a usable PNG: %v", err)
	}

	list := func() string {
		w := c.api("GET", "/api/v1/methods", "", auth)
		if w.Code != 200 {
			t.Fatalf("list: %d %s", w.Code, w.Body)
		}
		return w.Body.String()
	}
	if l := list(); !strings.Contains(l, `"hint":"Authenticator app"`) || !strings.Contains(l, `"verified":false`) {
		t.Fatalf("pending app: %s", l)
	}
	// not active before a code: not offered for reset
	if f, _ := tb.svc.StartFlow(context.Background(), "reset", "carol", flow.Meta{}); slices.ContainsFunc(f.Methods, func(o flow.Offered) bool { return o.ID == en.ID }) {
		t.Fatalf("an unverified app is offered: %+v", f.Methods)
	}
	// nothing to resend to an app
	if w = c.api("POST", "/api/v1/methods/"+en.ID+"/resend", ``, auth); w.Code != 400 {
		t.Fatalf("resend to an app: %d", w.Code)
	}
	// a code two steps away is not accepted; the current one is
	if w = c.api("POST", "/api/v1/methods/"+en.ID+"/verify", `{"code":"`+flowtest.CodeAt(t, en.Secret, clk.Now().Add(-60*time.Second))+`"}`, auth); w.Code != 422 {
		t.Fatalf("old code: %d %s", w.Code, w.Body)
	}
	if w = c.api("POST", "/api/v1/methods/"+en.ID+"/verify", `{"code":"`+flowtest.CodeAt(t, en.Secret, clk.Now())+`"}`, auth); w.Code != 200 {
		t.Fatalf("verify: %d %s", w.Code, w.Body)
	}
	l := list()
	if !strings.Contains(l, `"type":"totp"`) || !strings.Contains(l, `"verified":true`) {
		t.Fatalf("verified app: %s", l)
	}
	f, mid := tb.appFlow(t, "carol")
	if err := tb.svc.SendFlowCode(context.Background(), "reset", f.ID, mid, flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	if _, err := tb.svc.VerifyFlowCode(context.Background(), "reset", f.ID, mid, flowtest.CodeAt(t, en.Secret, clk.Now()), flow.Meta{}); err != nil {
		t.Fatal(err)
	}
	tb.svc.Close() // every message sent, every log line written

	evs, err := tb.st.ListAudit(context.Background(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	audit, _ := json.Marshal(evs)
	for what, text := range map[string]string{"the method list": l, "the logs": logs.String(), "the stored audit": string(audit),
		"a message": fmt.Sprint(tb.rec.Emails(), tb.rec.SMS())} {
		if strings.Contains(text, en.Secret) || strings.Contains(strings.ToLower(text), strings.ToLower(en.Secret)) {
			t.Errorf("the seed is in %s", what)
		}
	}
	if !strings.Contains(string(audit), `"registration.method_verified"`) || !strings.Contains(logs.String(), `"type":"totp"`) {
		t.Fatalf("the app's registration is not audited: %s", audit)
	}
}

// TestTOTPEnrolmentPage: the page answers the form post itself with the QR
// code as a data: image, which that answer's CSP alone allows, and the key
// as text; no other page or URL shows the key; a code from it verifies.
func TestTOTPEnrolmentPage(t *testing.T) {
	tb, clk, _ := totpBed(t, nil)
	c := newClient(t, tb)
	c.post("/register", "/register", url.Values{"username": {"carol"}, "password": {"Carol-Pass1!"}}, nil)
	methods := c.get("/register/methods")
	if !strings.Contains(methods.Body.String(), "Set up authenticator app") {
		t.Fatalf("no authenticator app on the methods page:\n%s", methods.Body)
	}
	if csp := methods.Header().Get("Content-Security-Policy"); strings.Contains(csp, "data:") {
		t.Fatalf("data: images allowed on the methods page: %s", csp)
	}
	w := c.post("/register/methods", "/register/methods", url.Values{"type": {"totp"}}, nil)
	body := w.Body.String()
	if w.Code != http.StatusOK || w.Header().Get("Location") != "" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("set-up: %d %v", w.Code, w.Header())
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "img-src 'self' data:;") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Fatalf("CSP of the set-up page: %s", csp)
	}
	if !regexp.MustCompile(`<img src="data:image/png;base64,([A-Za-z0-9/=]|&#43;)+"`).MatchString(body) {
		t.Fatalf("no QR code image:\n%s", body)
	}
	m := regexp.MustCompile(`id="totp-secret">([A-Z2-7 ]+)<`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no key on the page:\n%s", body)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	id := regexp.MustCompile(`action="/register/methods/([0-9a-f]+)/verify"`).FindStringSubmatch(body)[1]
	for _, p := range []string{"/register/methods", "/register/methods/" + id + "/verify"} {
		if b := c.get(p).Body.String(); strings.Contains(b, secret) || strings.Contains(b, m[1]) {
			t.Fatalf("%s shows the key", p)
		}
	}
	page := "/register/methods/" + id + "/verify"
	// a wrong code: the answer to that post shows the set-up again, QR
	// code and key (one slip does not mean starting over), and does not
	// speak of sending a code
	w = c.post(page, page, url.Values{"code": {flowtest.WrongTOTP(t, secret, clk.Now())}}, nil)
	if wb := w.Body.String(); w.Code != 422 || !strings.Contains(wb, m[1]) || !strings.Contains(wb, `<img src="data:image/png;base64,`) ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "img-src 'self' data:;") || !strings.Contains(wb, "That code is not right.") ||
		strings.Contains(wb, "send a new code") {
		t.Fatalf("wrong code: %d %v\n%s", w.Code, w.Header(), wb)
	}
	// and no GET shows it
	for _, p := range []string{"/register/methods", "/register/methods/" + id + "/verify"} {
		if b := c.get(p).Body.String(); strings.Contains(b, secret) || strings.Contains(b, m[1]) {
			t.Fatalf("%s shows the key", p)
		}
	}
	if w = c.post(page, page, url.Values{"code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Code != http.StatusSeeOther {
		t.Fatalf("verify: %d %s", w.Code, w.Body)
	}
	if b := c.get("/register/methods").Body.String(); !strings.Contains(b, "Authenticator app") || !strings.Contains(b, "Replace your authenticator app") {
		t.Fatalf("methods after verifying:\n%s", b)
	}
	// the reset pages: the app is offered, "sending" leads to the code page
	b := newClient(t, tb)
	b.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	rp := b.get("/reset/methods").Body.String()
	if !strings.Contains(rp, "Use authenticator app") {
		t.Fatalf("reset methods:\n%s", rp)
	}
	w = b.post("/reset/methods", "/reset/send", url.Values{"method": {id}}, nil)
	codePage := w.Header().Get("Location")
	if cp := b.get(codePage).Body.String(); !strings.Contains(cp, "authenticator app") || strings.Contains(cp, "a code is on its way") {
		t.Fatalf("code page:\n%s", cp)
	}
	clk.Add(30 * time.Second)
	if w = b.post(codePage, "/reset/verify", url.Values{"method": {id}, "code": {flowtest.WrongTOTP(t, secret, clk.Now())}}, nil); w.Code != 422 ||
		!strings.Contains(w.Body.String(), "That code is not right.") || strings.Contains(w.Body.String(), "send a new code") {
		t.Fatalf("a wrong code from the app in a reset: %d\n%s", w.Code, w.Body)
	}
	if w = b.post(codePage, "/reset/verify", url.Values{"method": {id}, "code": {flowtest.CodeAt(t, secret, clk.Now())}}, nil); w.Header().Get("Location") != "/reset/password" {
		t.Fatalf("verify: %d %v", w.Code, w.Header())
	}
}
