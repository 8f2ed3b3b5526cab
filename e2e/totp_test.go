package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// The authenticator app (TOTP) against the built binary: registration over
// the API, resets with the app (alone, and with email in a two-method tier),
// replays and clock skew, fakes for unknown names, and the set-up page in
// Chromium with axe-core. Codes are computed here from the seed the
// gateway hands out, at times chosen relative to the real clock.

func TestTOTPOpenLDAP(t *testing.T) {
	parallel(t)
	runTOTPSuite(t, dirtest.StartOpenLDAP(t))
}

func TestTOTPActiveDirectory(t *testing.T) {
	parallel(t)
	runTOTPSuite(t, dirtest.StartSamba(t))
}

const totpMethods = "email, sms, totp"

// stepCode is the app's code for secret in the 30 s step that starts at
// step*30 s.
func stepCode(t testing.TB, secret string, step int64) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, time.Unix(step*30, 0), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// freshStep waits, if need be, until at least left remains of the current
// 30 s step, and returns that step: codes computed from it stay in the
// steps the test means while it uses them. Only a test that uses the
// previous step's code (s-1) or checks that s±2 are refused needs this: the
// gateway accepts a code of steps s-1 to s+1 of its clock, so codes of s and
// s+1 stay valid for at least 30 s from now whatever the time in the step
// (currentStep). The wait costs left²/60 s on average.
// currentStep is the current 30 s step, for a test that uses only codes of
// this step and the next: both stay valid for at least 30 s, so no wait.
func currentStep() int64 { return time.Now().Unix() / 30 }

func freshStep(left time.Duration) int64 {
	now := time.Now()
	end := now.Truncate(30 * time.Second).Add(30 * time.Second)
	if end.Sub(now) < left {
		time.Sleep(end.Sub(now) + 200*time.Millisecond)
	}
	return time.Now().Unix() / 30
}

// appEnrolment is the answer to POST /api/v1/methods {type: totp}.
type appEnrolment struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	URL    string `json:"otpauth_url"`
	QR     string `json:"qr_png"`
}

// signIn opens a registration session for user.
func (e *env) signIn(user string) string {
	e.t.Helper()
	r := e.must(200, e.api("POST", "/api/v1/session", "", map[string]string{"username": user, "password": e.dir.Password(user)}), "sign in "+user)
	e.secrets = append(e.secrets, r.str("token"))
	return r.str("token")
}

// addApp sets up an authenticator app (not yet verified).
func (e *env) addApp(token string) appEnrolment {
	e.t.Helper()
	r := e.must(201, e.api("POST", "/api/v1/methods", token, map[string]string{"type": "totp"}), "add app")
	var en appEnrolment
	if err := json.Unmarshal(r.Body, &en); err != nil {
		e.t.Fatal(err)
	}
	if len(en.Secret) != 32 || !strings.Contains(en.URL, "secret="+en.Secret) || en.ID == "" {
		e.t.Fatalf("enrolment answer %s", r.Body)
	}
	img, err := base64.StdEncoding.DecodeString(en.QR)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		e.t.Fatalf("qr_png: %v", err)
	}
	e.secrets = append(e.secrets, en.Secret)
	return en
}

// appOf returns the id of the flow's authenticator app.
func appOf(t testing.TB, f flow) string {
	t.Helper()
	for _, m := range f.Methods {
		if m["type"] == "totp" {
			if m["hint"] != "Authenticator app" {
				t.Fatalf("app hint %v", m["hint"])
			}
			return m["id"].(string)
		}
	}
	t.Fatalf("no authenticator app offered: %v", f.Methods)
	return ""
}

func (e *env) replaysAudited() int {
	n := 0
	for _, ev := range e.auditEvents() {
		if ev["reason"] == "totp_replayed" && ev["outcome"] == "failed" {
			n++
		}
	}
	return n
}

func runTOTPSuite(t *testing.T, srv *dirtest.Server) {
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Methods: totpMethods})
	var carolApp appEnrolment

	t.Run("register an app, reset with it, replay and clock skew", func(t *testing.T) {
		e.t = t
		token := e.signIn("carol")
		carolApp = e.addApp(token)
		r := e.must(200, e.api("GET", "/api/v1/methods", token, nil), "list")
		if !strings.Contains(string(r.Body), `"hint":"Authenticator app"`) || !strings.Contains(string(r.Body), `"verified":false`) {
			t.Fatalf("pending app: %s", r.Body)
		}
		// not offered before it is verified: carol has nothing else, so
		// only fakes are offered
		f, _ := e.startReset("carol")
		for _, m := range f.Methods {
			if m["id"] == carolApp.ID {
				t.Fatalf("an unverified app is offered: %v", f.Methods)
			}
		}

		s := freshStep(20 * time.Second)
		// a phone 30 s slow: the previous step's code verifies the app
		e.must(200, e.api("POST", "/api/v1/methods/"+carolApp.ID+"/verify", token, map[string]string{"code": stepCode(t, carolApp.Secret, s-1)}), "verify app")
		r = e.must(200, e.api("GET", "/api/v1/methods", token, nil), "list")
		if !strings.Contains(string(r.Body), `"verified":true`) || strings.Contains(string(r.Body), carolApp.Secret) {
			t.Fatalf("verified app: %s", r.Body)
		}

		before, smsBefore := e.mailCount(), len(sms.Messages())
		f, _ = e.startReset("carol")
		app := appOf(t, f)
		// "send" to an app: 202 and nothing sent
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": app}), "send to app")
		// mailCount settles for longer than the outbox holds a code
		if n := e.mailCount(); n != before || len(sms.Messages()) != smsBefore {
			t.Fatalf("sending to an app sent something: %d mails (was %d), %d SMS (was %d)", n, before, len(sms.Messages()), smsBefore)
		}
		// the code that verified the app is spent: a replay
		if r := e.verify(&f, app, stepCode(t, carolApp.Secret, s-1)); r.Status != 422 || r.errCode() != "invalid_code" {
			t.Fatalf("the enrolment code in a reset: %d %s", r.Status, r.Body)
		}
		// two steps either side: refused
		for _, d := range []int64{-2, 2} {
			if r := e.verify(&f, app, stepCode(t, carolApp.Secret, s+d)); r.Status != 422 {
				t.Fatalf("a code %d steps off: %d %s", d, r.Status, r.Body)
			}
		}
		// a phone 30 s fast: the next step's code is accepted
		r = e.must(200, e.verify(&f, app, stepCode(t, carolApp.Secret, s+1)), "verify with the app")
		if r.JSON["remaining"].(float64) != 0 {
			t.Fatalf("remaining %s", r.Body)
		}
		// the same code in another flow: a replay
		g, _ := e.startReset("carol")
		if r := e.verify(&g, appOf(t, g), stepCode(t, carolApp.Secret, s+1)); r.Status != 422 {
			t.Fatalf("a replayed code: %d %s", r.Status, r.Body)
		}
		if time.Now().Unix()/30 > s {
			t.Log("the step ended during the test: the replay checks may have been refused as too old instead")
		}
		if n := e.replaysAudited(); n != 2 {
			t.Fatalf("%d replays audited, want 2", n)
		}
		e.must(200, e.complete(f, "Copper-Lantern-Meadow-31"), "complete")
		if err := srv.UserBind("carol", "Copper-Lantern-Meadow-31"); err != nil {
			t.Fatalf("the new password does not bind: %v", err)
		}
	})

	t.Run("a two-method user resets with email and the app", func(t *testing.T) {
		e.t = t
		emailID, _ := e.register("alice", "alice.home@example.net", "")
		token := e.signIn("alice")
		en := e.addApp(token)
		s := currentStep() // codes of s and s+1 only
		e.must(200, e.api("POST", "/api/v1/methods/"+en.ID+"/verify", token, map[string]string{"code": stepCode(t, en.Secret, s)}), "verify app")
		settleMail(t, mail)
		mail.DeleteAll(context.Background())

		f, _ := e.startReset("alice")
		if f.Required != 1 || len(f.Methods) != 2 {
			t.Fatalf("flow %+v", f)
		}
		app := appOf(t, f)
		r := e.must(200, e.verifyByEmail(&f, emailID, "alice.home@example.net"), "verify email")
		if r.JSON["remaining"].(float64) != 1 {
			t.Fatalf("after the email: %s", r.Body)
		}
		if r := e.complete(f, "Quiet-Harbor-Stone-77"); r.Status != 409 || r.errCode() != "not_verified" {
			t.Fatalf("complete with one of two: %d %s", r.Status, r.Body)
		}
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": app}), "send to app")
		r = e.must(200, e.verify(&f, app, stepCode(t, en.Secret, s+1)), "verify app")
		if r.JSON["remaining"].(float64) != 0 {
			t.Fatalf("after the app: %s", r.Body)
		}
		e.must(200, e.complete(f, "Quiet-Harbor-Stone-77"), "complete")
		if err := srv.UserBind("alice", "Quiet-Harbor-Stone-77"); err != nil {
			t.Fatalf("the new password does not bind: %v", err)
		}
		// told on the email; no message went to anything but an address
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if m, err := mail.WaitForMessage(cctx, "alice.home@example.net"); err != nil || !strings.Contains(m.Subject, "password was reset") {
			t.Fatalf("no reset notice: %v", err)
		}
		settleMail(t, mail)
		list, _ := mail.Messages(context.Background())
		for _, m := range list {
			for _, to := range m.To {
				if !strings.Contains(to.Address, "@") {
					t.Fatalf("a message went to %q", to.Address)
				}
			}
		}
	})

	t.Run("unknown names get fake apps too", func(t *testing.T) {
		e.t = t
		apps := 0
		for i := range 25 {
			f, _ := e.startReset(fmt.Sprintf("nobody-totp-%d", i))
			n := 0
			for _, m := range f.Methods {
				if m["type"] == "totp" {
					n++
					if m["hint"] != "Authenticator app" {
						t.Fatalf("fake app hint %v", m["hint"])
					}
					// the same 202 as for a real app, and every code refused
					e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": m["id"].(string)}), "send to a fake app")
					if r := e.verify(&f, m["id"].(string), "123456"); r.Status != 422 || r.errCode() != "invalid_code" {
						t.Fatalf("a fake app: %d %s", r.Status, r.Body)
					}
				}
			}
			if n > 1 {
				t.Fatalf("two apps in a fake set: %v", f.Methods)
			}
			apps += n
		}
		if apps == 0 {
			t.Fatal("no fake set of 25 holds an app: a real app would prove the account exists")
		}
	})

	t.Run("no seed in the logs, the audit or the database", func(t *testing.T) {
		e.t = t
		var db []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(filepath.Join(e.work, "latchkey.db"+suffix))
			if err != nil && suffix == "" {
				t.Fatal(err)
			}
			db = append(db, b...)
		}
		if !bytes.Contains(db, []byte("registration.method_verified")) {
			t.Fatal("the database scan does not see the audit rows")
		}
		logs, _ := readFile(e.log)
		audit, _ := readFile(e.audit)
		if !strings.Contains(audit, `"type":"totp"`) {
			t.Fatal("the app's registration is not in the audit log")
		}
		for _, secret := range e.secrets {
			for what, text := range map[string]string{"the log": logs, "the audit log": audit, "the database": string(db)} {
				if strings.Contains(text, secret) {
					t.Fatalf("%s holds %q", what, secret)
				}
			}
		}
	})
}

// TestTOTPBrowser sets up an authenticator app on the pages in Chromium and
// resets with it, running axe-core and the phone-width checks on the set-up
// page and the pages that follow.
func TestTOTPBrowser(t *testing.T) {
	parallel(t)
	runTOTPBrowser(t, dirtest.StartOpenLDAP(t))
}

func TestTOTPBrowserActiveDirectory(t *testing.T) {
	parallel(t)
	runTOTPBrowser(t, dirtest.StartSamba(t))
}

// runTOTPBrowser sets up an authenticator app on the pages and resets
// with it, in Chromium.
func runTOTPBrowser(t *testing.T, srv *dirtest.Server) {
	exe := chromiumPath(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Methods: totpMethods})
	b := newBrowser(t, exe, e.base)

	b.open("/register", 200)
	b.typeInto("username", "carol")
	b.typeInto("password", srv.Password("carol"))
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("Add an authenticator app")
	b.check("methods: with an authenticator app")

	b.click(`form:has(input[name=type][value=totp]) button[type=submit]`, 200, "/register/methods")
	b.mustSee("Scan this QR code", "This key is shown only while you set up the app.")
	// the QR code is drawn: the page's CSP lets its data: image load
	loaded, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { const i = document.querySelector('.qr img'); return !!i && i.complete && i.naturalWidth >= 200; })()`))
	if err != nil || !loaded {
		t.Fatalf("the QR code did not load: %v", err)
	}
	b.check("authenticator app set-up")
	secret := strings.ReplaceAll(b.text("#totp-secret"), " ", "")
	if len(secret) != 32 {
		t.Fatalf("key on the page: %q", secret)
	}
	e.secrets = append(e.secrets, secret)

	s := currentStep() // codes of s and s+1 only
	b.typeInto("code", wrongCode(stepCode(t, secret, s)))
	b.click(`form[action$="/verify"] button[type=submit]`, 422, "")
	b.mustError("That code is not right.")
	// the set-up stays: the QR code and the key, and no "send a new code"
	loaded, err = chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { const i = document.querySelector('.qr img'); return !!i && i.complete && i.naturalWidth >= 200; })()`))
	if err != nil || !loaded || !strings.Contains(strings.ReplaceAll(b.mainText(), " ", ""), secret) || strings.Contains(b.mainText(), "send a new code") {
		t.Fatalf("the page after a wrong code lost the set-up (QR loaded %v, %v):\n%s", loaded, err, b.mainText())
	}
	b.check("authenticator app: wrong code")
	b.typeInto("code", stepCode(t, secret, s))
	b.click(`form[action$="/verify"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("The method is verified.", "Authenticator app", "Replace your authenticator app")
	if strings.Contains(strings.ReplaceAll(b.mainText(), " ", ""), secret) {
		t.Fatal("the methods page shows the key")
	}
	b.check("methods: authenticator app verified")

	b.click(`form[action="/register/signout"] button[type=submit]`, 200, "/")
	b.open("/reset", 200)
	b.typeInto("username", "carol")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee("Authenticator app")
	b.check("reset: choose the authenticator app")
	b.click(`ul.methods form button[type=submit]`, 200, "/reset/code")
	b.mustSee("authenticator app shows now")
	b.check("reset: code from the authenticator app")
	b.typeInto("code", stepCode(t, secret, s+1))
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/password")
	b.check("reset: new password after the authenticator app")
	b.typeInto("password", "Amber-Kite-Harbor-64")
	b.typeInto("confirm", "Amber-Kite-Harbor-64")
	b.click(`form[action="/reset/password"] button[type=submit]`, 200, "/reset/done")
	b.mustSee("Your password has been reset")
	b.check("reset: done after the authenticator app")
	if err := srv.UserBind("carol", "Amber-Kite-Harbor-64"); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	for _, path := range []string{e.log, e.audit} {
		if txt, _ := readFile(path); strings.Contains(txt, secret) {
			t.Fatalf("%s holds the key", path)
		}
	}
}

// offeredID is the method id of the reset page's entry whose text starts
// with prefix ("Email to", "Code from your").
func (b *browser) offeredID(prefix string) string {
	b.t.Helper()
	id, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => {
	  const li = Array.from(document.querySelectorAll('ul.methods > li')).find(li => li.innerText.trim().startsWith(`+jsString(prefix)+`));
	  const m = li && li.querySelector('form input[name=method]');
	  return m ? m.value : '';
	})()`))
	if err != nil || id == "" || strings.ContainsAny(id, `"\\`) {
		b.t.Fatalf("no method offered as %q: %q %v", prefix, id, err)
	}
	return id
}

// TestTierKindsBrowser: a tier with require_one_of [totp, webauthn], on the
// pages in Chromium against slapd. A member with only email and SMS is
// told after the email which kinds the account needs, that none is
// registered and whom to ask, and cannot reach the password page; a member
// with email and an authenticator app is told what is still needed and
// completes with the app. axe-core runs on each page.
func TestTierKindsBrowser(t *testing.T) {
	parallel(t)
	exe := chromiumPath(t)
	srv := dirtest.StartOpenLDAP(t)
	addToGroup(t, srv, "bob", "sspr-admins")
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Methods: totpMethods, Tier: "      require_one_of: [totp, webauthn]\n"})
	b := newBrowser(t, exe, e.base)
	const need = "Your account must also verify an authenticator app or a passkey before you can choose a new password."
	const none = "You have not registered an authenticator app or a passkey, so you cannot finish here."

	// ------------------------------------------------ alice: email and SMS only
	aliceEmail, _ := e.register("alice", "alice.home@example.net", "+44 7700 900001")
	settleMail(t, mail)
	mail.DeleteAll(context.Background())
	b.open("/reset", 200)
	b.typeInto("username", "alice")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	if txt := b.mainText(); strings.Contains(txt, "authenticator app or a passkey") {
		t.Fatal("the tier's kinds show before a proof: anyone could tell a tier member by name")
	}
	b.click(`ul.methods form:has(input[name=method][value="`+aliceEmail+`"]) button[type=submit]`, 200, "/reset/code")
	b.typeInto("code", e.mailCode("alice.home@example.net"))
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee(need, none, "Contact the helpdesk")
	if txt := b.mainText(); strings.Contains(txt, "Choose 1 more method") || strings.Contains(txt, "to receive a code") {
		t.Fatalf("the page still asks to choose a method when none would do:\n%s", txt)
	}
	b.check("reset: the tier needs an app or a passkey, none registered")
	// the SMS does not help, and the password page is out of reach
	b.open("/reset/password", 200)
	if p := b.path(); p != "/reset/methods" {
		t.Fatalf("the password page with email alone: at %s", p)
	}
	b.mustSee(need, none)
	if err := srv.UserBind("alice", srv.Password("alice")); err != nil {
		t.Fatalf("alice's password changed: %v", err)
	}

	// ------------------------------------------------ bob: email and an authenticator app
	bobEmail, _ := e.register("bob", "bob.home@example.net", "")
	token := e.signIn("bob")
	app := e.addApp(token)
	s := currentStep() // codes of s and s+1 only
	e.must(200, e.api("POST", "/api/v1/methods/"+app.ID+"/verify", token, map[string]string{"code": stepCode(t, app.Secret, s)}), "verify app")
	settleMail(t, mail)
	mail.DeleteAll(context.Background())

	b.open("/reset", 200)
	b.typeInto("username", "bob")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.click(`ul.methods form:has(input[name=method][value="`+bobEmail+`"]) button[type=submit]`, 200, "/reset/code")
	b.typeInto("code", e.mailCode("bob.home@example.net"))
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee(need, "Choose 1 more method")
	if strings.Contains(b.mainText(), none) {
		t.Fatal("bob, who has an app, is told he has none")
	}
	b.check("reset: the tier needs an app or a passkey, one registered")
	appID := b.offeredID("Code from your")
	if appID != app.ID {
		t.Fatalf("the app offered is %q, registered %q", appID, app.ID)
	}
	b.click(`ul.methods form:has(input[name=method][value="`+appID+`"]) button[type=submit]`, 200, "/reset/code")
	b.typeInto("code", stepCode(t, app.Secret, s+1))
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/password")
	b.typeInto("password", "Granite-Orchard-Wren-27")
	b.typeInto("confirm", "Granite-Orchard-Wren-27")
	b.click(`form[action="/reset/password"] button[type=submit]`, 200, "/reset/done")
	if err := srv.UserBind("bob", "Granite-Orchard-Wren-27"); err != nil {
		t.Fatalf("bob's new password does not bind: %v", err)
	}
}
