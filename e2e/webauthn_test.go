package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// Passkeys in the browser suite: Chromium's virtual authenticator (CDP
// WebAuthn domain, CTAP2, internal transport, resident keys, user
// verification) stands in for a platform authenticator. WebAuthn needs a
// secure context and an RP ID that is a domain, so the gateway's
// public_url is http://localhost:PORT (potentially trustworthy, and a
// valid RP ID), where the other suites use 127.0.0.1.

func TestBrowserPasskeyOpenLDAP(t *testing.T) {
	runPasskeySuite(t, func(t testing.TB) *dirtest.Server { return dirtest.StartOpenLDAP(t) })
}

func TestBrowserPasskeyActiveDirectory(t *testing.T) {
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
