package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/webauthntest"
)

// Passkeys in the browser suite: Chromium's virtual authenticator (CDP
// WebAuthn domain, CTAP2, internal transport, resident keys, user
// verification) stands in for a platform authenticator. WebAuthn needs a
// secure context and an RP ID that is a domain, so the gateway's
// public_url is http://localhost:PORT (potentially trustworthy, and a
// valid RP ID), where the other suites use 127.0.0.1.

func TestBrowserPasskeyOpenLDAP(t *testing.T) {
	parallel(t)
	runPasskeySuite(t, func(t testing.TB) *dirtest.Server { return dirtest.StartOpenLDAP(t) })
}

func TestBrowserPasskeyActiveDirectory(t *testing.T) {
	parallel(t)
	runPasskeySuite(t, dirtest.StartSamba)
}

// checkPasskey is check for the one kind of page that loads a script.
func (b *browser) checkPasskey(name string) {
	b.t.Helper()
	b.scripts = []string{b.base + "/static/webauthn.js"}
	defer func() { b.scripts = nil }()
	b.check(name)
}

// clickAndWait clicks sel, which starts a passkey ceremony in the page's
// script; the script posts a form once the authenticator has answered.
// It waits until the page is at path.
func (b *browser) clickAndWait(sel, path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && strings.Contains(loc, path) {
			if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS("footer"))); err != nil {
				b.t.Fatal(err)
			}
			return
		}
		select {
		case <-ctx.Done():
			status, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.getElementById('passkey-status') || {}).textContent || ''`))
			b.t.Fatalf("after %s: at %s, want %s (page says %q)", sel, loc, path, status)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runPasskeySuite(t *testing.T, startDir func(testing.TB) *dirtest.Server) {
	exe := chromiumPath(t)
	srv := startDir(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Methods: "email, sms, webauthn", PublicHost: "localhost"})
	b := newBrowser(t, exe, e.base)
	const newPass = "Copper-Meadow-Falcon-83"

	va := b.virtualAuthenticator(t)

	// ------------------------------------------------ registration
	b.open("/register", 200)
	b.typeInto("username", "carol")
	b.typeInto("password", srv.Password("carol"))
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("Add a passkey")
	b.check("methods: passkeys on")
	b.typeInto("passkey-label", "Test <laptop>")
	b.click(`form:has(input[name=type][value=webauthn]) button[type=submit]`, 200, "/register/methods")
	b.mustSee("Create passkey")
	if hidden, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.getElementById('passkey-nojs').hidden`)); !hidden {
		t.Fatal("with JavaScript on, the page still says passkeys need it")
	}
	b.checkPasskey("passkey: create")
	b.clickAndWait("#passkey-start", "/register/methods?notice=passkey_added")
	b.mustSee("The passkey is added", "Passkey: Test <laptop>", "Verified")
	b.check("methods: passkey added")
	creds, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(va))
	if err != nil || len(creds.Credentials) != 1 || creds.Credentials[0].RpID != "localhost" || !creds.Credentials[0].IsResidentCredential {
		t.Fatalf("credentials on the virtual authenticator: %+v %v", creds, err)
	}

	// ------------------------------------------------ reset with the passkey
	b.click(`form[action="/register/signout"] button[type=submit]`, 200, "/")
	b.open("/reset", 200)
	b.typeInto("username", "carol")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee("Your passkey")
	if strings.Contains(b.mainText(), "laptop") {
		t.Fatal("the reset page shows the passkey's label to anyone who types the name")
	}
	b.check("reset: choose the passkey")
	b.click(`ul.methods form button[type=submit]`, 200, "/reset/send")
	b.mustSee("Use passkey")
	b.checkPasskey("passkey: get")
	b.clickAndWait("#passkey-start", "/reset/password")
	b.check("reset: new password after the passkey")
	b.typeInto("password", newPass)
	b.typeInto("confirm", newPass)
	b.click(`form[action="/reset/password"] button[type=submit]`, 200, "/reset/done")
	if err := srv.UserBind("carol", newPass); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	if err := srv.UserBind("carol", srv.Password("carol")); err == nil {
		t.Fatal("the old password still binds")
	}
	creds, err = chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams(va))
	if err != nil || len(creds.Credentials) != 1 || creds.Credentials[0].SignCount < 1 {
		t.Fatalf("the passkey was not used: %+v %v", creds, err)
	}
	audit, err := readFile(e.audit)
	if err != nil || !strings.Contains(audit, `"type":"webauthn"`) || !strings.Contains(audit, `"event":"reset.gate"`) {
		t.Fatalf("audit log has no passkey gate: %v", err)
	}
}

// newAuthenticator is a software authenticator (internal/webauthntest) for
// the gateway at base.
func newAuthenticator(t testing.TB, base string) *webauthntest.Authenticator {
	t.Helper()
	a, err := webauthntest.New(base)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// answer is an authenticator's response as a JSON value of a request body.
func answer(t testing.TB, f func(json.RawMessage) ([]byte, error), options any) json.RawMessage {
	t.Helper()
	opts, err := json.Marshal(options)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// addPasskeyAPI registers a passkey for the session over the API with key
// and returns the response to the verify call.
func (e *env) addPasskeyAPI(token, label string, key *webauthntest.Authenticator) resp {
	e.t.Helper()
	r := e.must(201, e.api("POST", "/api/v1/methods", token, map[string]string{"type": "webauthn", "label": label}), "add passkey")
	id := r.str("id")
	if id == "" || r.JSON["options"] == nil {
		e.t.Fatalf("add passkey: %s", r.Body)
	}
	cred := answer(e.t, key.Create, r.JSON["options"])
	return e.api("POST", "/api/v1/methods/"+id+"/verify", token, map[string]any{"credential": cred})
}

// passkeyOf is the id of the flow's passkey.
func passkeyOf(t testing.TB, methods []any) string {
	t.Helper()
	for _, m := range methods {
		if mm := m.(map[string]any); mm["type"] == "webauthn" {
			if mm["hint"] != "Passkey" {
				t.Fatalf("passkey hint %v", mm["hint"])
			}
			return mm["id"].(string)
		}
	}
	t.Fatalf("no passkey offered: %v", methods)
	return ""
}

// passkeyProof starts a kind ("reset" or "unlock") flow for user, asks for
// the passkey's assertion options and returns the flow, the method and the
// options.
func (e *env) passkeyProof(kind, user string) (flowID, method string, options any) {
	e.t.Helper()
	r := e.must(200, e.api("POST", "/api/v1/"+kind, "", map[string]string{"username": user}), kind+" start")
	flowID = r.str("flow")
	method = passkeyOf(e.t, r.JSON["methods"].([]any))
	r = e.must(202, e.api("POST", "/api/v1/"+kind+"/send", "", map[string]string{"flow": flowID, "method": method}), kind+" send")
	if r.JSON["options"] == nil {
		e.t.Fatalf("no assertion options: %s", r.Body)
	}
	e.secrets = append(e.secrets, flowID)
	return flowID, method, r.JSON["options"]
}

// TestPasskeyAPIOpenLDAP runs the passkey flows over the JSON API against
// slapd with a software authenticator: register, reset with the passkey,
// unlock with it; a replayed assertion, a cloned counter and another
// account's credential id are refused.
func TestPasskeyAPIOpenLDAP(t *testing.T) {
	parallel(t)
	runPasskeyAPI(t, dirtest.StartOpenLDAP(t))
}

func TestPasskeyAPIActiveDirectory(t *testing.T) {
	parallel(t)
	runPasskeyAPI(t, dirtest.StartSamba(t))
}

// runPasskeyAPI registers a passkey and resets and unlocks with it through
// the JSON API.
func runPasskeyAPI(t *testing.T, srv *dirtest.Server) {
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Methods: "email, sms, webauthn", PublicHost: "localhost",
		Limits: "limits:\n  code_failures_per_account: 20\n"})
	key := newAuthenticator(t, e.base)
	const newPass = "Juniper-Lantern-Quarry-58"

	// ------------------------------------------------ register
	token := e.signIn("carol")
	r := e.must(200, e.addPasskeyAPI(token, "CI key", key), "verify passkey")
	if r.str("type") != "webauthn" || r.JSON["verified"] != true || r.str("hint") != "CI key" {
		t.Fatalf("registered passkey: %s", r.Body)
	}
	// the same authenticator again: already registered
	if r := e.addPasskeyAPI(token, "again", key); r.Status < 400 {
		t.Fatalf("the same credential twice: %d %s", r.Status, r.Body)
	}

	// ------------------------------------------------ reset
	fid, method, opts := e.passkeyProof("reset", "carol")
	assertion := answer(t, key.Get, opts)
	r = e.must(200, e.api("POST", "/api/v1/reset/verify", "", map[string]any{"flow": fid, "method": method, "credential": assertion}), "reset verify")
	if r.JSON["remaining"].(float64) != 0 || r.str("flow") == fid {
		t.Fatalf("after the passkey: %s", r.Body)
	}
	proven := r.str("flow")
	e.secrets = append(e.secrets, proven)

	// the same assertion in another flow (whose challenge differs), and
	// again in this flow's new id: refused
	gid, gm, _ := e.passkeyProof("reset", "carol")
	if r := e.api("POST", "/api/v1/reset/verify", "", map[string]any{"flow": gid, "method": gm, "credential": assertion}); r.Status != 422 || r.errCode() != "passkey_failed" {
		t.Fatalf("a replayed assertion: %d %s", r.Status, r.Body)
	}
	if r := e.api("POST", "/api/v1/reset/verify", "", map[string]any{"flow": proven, "method": method, "credential": assertion}); r.Status < 400 {
		t.Fatalf("a replayed assertion in its own flow: %d %s", r.Status, r.Body)
	}
	// a clone: a fresh challenge signed with a counter that did not move
	hid, hm, hopts := e.passkeyProof("reset", "carol")
	clone := *key
	clone.SameCount = true
	if r := e.api("POST", "/api/v1/reset/verify", "", map[string]any{"flow": hid, "method": hm, "credential": answer(t, clone.Get, hopts)}); r.Status != 422 {
		t.Fatalf("a cloned counter: %d %s", r.Status, r.Body)
	}

	e.must(200, e.api("POST", "/api/v1/reset/complete", "", map[string]string{"flow": proven, "password": newPass}), "reset complete")
	if err := srv.UserBind("carol", newPass); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	if err := srv.UserBind("carol", srv.Password("carol")); err == nil {
		t.Fatal("the old password still binds")
	}

	// ------------------------------------------------ unlock
	for range 3 {
		srv.UserBind("carol", "Bad-Guess-1")
	}
	if err := srv.UserBind("carol", newPass); err == nil {
		t.Fatal("carol is not locked")
	}
	uid, um, uopts := e.passkeyProof("unlock", "carol")
	r = e.must(200, e.api("POST", "/api/v1/unlock/verify", "", map[string]any{"flow": uid, "method": um, "credential": answer(t, key.Get, uopts)}), "unlock verify")
	if r.JSON["remaining"].(float64) != 0 {
		t.Fatalf("after the passkey: %s", r.Body)
	}
	e.must(200, e.api("POST", "/api/v1/unlock/complete", "", map[string]string{"flow": r.str("flow")}), "unlock complete")
	if err := srv.UserBind("carol", newPass); err != nil {
		t.Fatalf("after unlock: %v", err)
	}

	// ------------------------------------------------ another account, carol's credential id
	thief := newAuthenticator(t, e.base)
	thief.ID = append([]byte{}, key.ID...)
	if r := e.addPasskeyAPI(e.signIn("bob"), "", thief); r.Status != 422 || r.errCode() != "passkey_failed" {
		t.Fatalf("another account's credential id: %d %s", r.Status, r.Body)
	}
	r = e.must(200, e.api("GET", "/api/v1/methods", e.signIn("bob"), nil), "bob's methods")
	if strings.Contains(string(r.Body), "webauthn") {
		t.Fatalf("the refused passkey was stored: %s", r.Body)
	}

	audit, _ := readFile(e.audit)
	for _, want := range []string{`"event":"reset.gate"`, `"event":"unlock.gate"`, `"reason":"sign_count"`, `"reason":"credential_in_use"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log has no %s", want)
		}
	}
}

// virtualAuthenticator turns on the browser's WebAuthn domain and adds a
// virtual platform authenticator (CTAP2) that keeps resident keys,
// verifies the user and answers at once.
func (b *browser) virtualAuthenticator(t *testing.T) webauthn.AddVirtualAuthenticatorResult {
	t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	va, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return va
}
