package e2e

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestChecklistCodes: one-time codes (items B2, B5, B7, B9, D7, F6, H2)
// are 8 digits, bound to their flow and purpose, superseded by a resend,
// never shown, sent to the stored address only, and a second method
// failing after a first proof is told.
func TestChecklistCodes(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistCodesChecks(t, ckSetup(t, d))
		})
	}
}

func checklistCodesChecks(t *testing.T, r *ckRun) {
	e, srv, box, mail, dom, pw, carolEmail := r.e, r.srv, r.box, r.mail, r.dom, r.pw, r.carolEmail

	t.Run("B2 B5 B7 B9 codes are 8 digits, bound to their flow and purpose, superseded, never shown", func(t *testing.T) {
		e.t = t
		var answers []ckAnswer
		keep := func(a ckAnswer) ckAnswer { answers = append(answers, a); return a }
		r := keep(e.start("reset", "carol"))
		fr := r.str("flow")
		keep(e.want(202, e.send("reset", fr, carolEmail), "send"))
		c1 := box.code(t, carolMail)
		keep(e.want(202, e.send("reset", fr, carolEmail), "send again"))
		c2 := box.code(t, carolMail)
		for _, c := range []string{c1, c2} {
			if !regexp.MustCompile(`^\d{8}$`).MatchString(c) {
				t.Fatalf("code %q: want 8 digits", c)
			}
		}
		if c1 == c2 {
			t.Fatal("the same code twice")
		}
		e.secrets = append(e.secrets, c1, c2)
		// the new code replaced the old one
		if a, _ := e.verify("reset", fr, carolEmail, c1); keep(a).status != 422 {
			t.Fatalf("a superseded code: %s", a)
		}
		// a reset code in an unlock flow of the same account, and a reset
		// flow on the unlock steps
		u := keep(e.start("unlock", "carol"))
		if a, _ := e.verify("unlock", u.str("flow"), carolEmail, c2); keep(a).status != 422 {
			t.Fatalf("a reset code in an unlock flow: %s", a)
		}
		if a := keep(e.send("unlock", fr, carolEmail)); a.status != 410 || a.errCode() != "flow_expired" {
			t.Fatalf("a reset flow on the unlock steps: %s", a)
		}
		// a registration code in the reset flow, and the reset code for a
		// registration
		tok := e.signIn("carol", pw("carol"))
		m := keep(e.want(201, e.call("POST", "/api/v1/methods", tok, ckJSON(map[string]string{"type": "email", "address": "carol.ck3@example.net"})), "add"))
		rc := box.code(t, "carol.ck3@example.net")
		e.secrets = append(e.secrets, rc)
		if a, _ := e.verify("reset", fr, carolEmail, rc); keep(a).status != 422 {
			t.Fatalf("a registration code in a reset flow: %s", a)
		}
		if a := keep(e.call("POST", "/api/v1/methods/"+m.str("id")+"/verify", tok, ckJSON(map[string]string{"code": c2}))); a.status != 422 {
			t.Fatalf("a reset code verified a new method: %s", a)
		}
		// still good where it belongs
		a, _ := e.verify("reset", fr, carolEmail, c2)
		keep(e.want(200, a, "the live code in its own flow"))
		// forged state is refused
		for _, body := range []string{
			ckJSON(map[string]any{"flow": a.str("flow"), "password": "Forged-Password-9", "verified": true}),
			ckJSON(map[string]any{"flow": a.str("flow"), "password": "Forged-Password-9", "username": "bob"}),
		} {
			if a := keep(e.call("POST", "/api/v1/reset/complete", "", body)); a.status != 400 {
				t.Fatalf("forged fields: %s", a)
			}
		}
		keep(e.want(200, e.call("POST", "/api/v1/reset/policy", "", ckJSON(map[string]string{"flow": a.str("flow")})), "policy"))
		// no code and no full destination reached the client
		for _, ans := range answers {
			all := string(ans.body) + fmt.Sprint(ans.hdr)
			for _, s := range []string{c1, c2, rc, carolMail, "carol.ck3@example.net", "7700900111", "900111"} {
				if strings.Contains(all, s) {
					t.Fatalf("an answer shows %q: %s", s, ans)
				}
			}
		}
		if err := srv.UserBind("carol", pw("carol")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("D7 F6 a code goes to the stored address only, whatever the request names", func(t *testing.T) {
		e.t = t
		const evil = "evil.ck@example.net"
		b := e.browser()
		b.post("/reset", url.Values{"username": {"carol"}}, nil)
		a := b.post("/reset/send", url.Values{"method": {carolEmail}, "address": {evil}, "to": {evil}, "email": {evil}}, nil)
		if a.status != 303 || !strings.HasPrefix(a.hdr.Get("Location"), "/reset/code?method=") {
			t.Fatalf("web send: %s %v", a, a.hdr)
		}
		box.code(t, carolMail)
		tok := e.signIn("carol", pw("carol"))
		for _, body := range []string{
			ckJSON(map[string]string{"type": "email", "address": "carol.x@example.net", "to": evil}),
			`{"type":"email","address":["carol.x@example.net","` + evil + `"]}`,
			`{"type":"email","address":"carol.x@example.net","address":"` + evil + `"}`,
		} {
			if a := e.call("POST", "/api/v1/methods", tok, body); a.status != 400 {
				t.Fatalf("%s: %s", body, a)
			}
		}
		for _, addr := range []string{"carol.x@example.net\r\nBcc: " + evil, "carol.x@example.net, " + evil, "Carol <" + evil + ">", "carol.x@example.net\nTo: " + evil} {
			if a := e.call("POST", "/api/v1/methods", tok, ckJSON(map[string]string{"type": "email", "address": addr})); a.status != 422 || a.errCode() != "invalid_email" {
				t.Fatalf("%q: %s", addr, a)
			}
		}
		box.noNewMail(t, map[ckKey]int{{evil, ""}: 0, {"carol.x@example.net", ""}: 0}, "injected recipients")
		list, err := mail.Messages(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range list {
			if m.HasRecipient(evil) {
				t.Fatal("a message went to the injected address")
			}
		}
	})

	t.Run("H2 a second method failing after a first proof is told on every channel", func(t *testing.T) {
		e.t = t
		const addr, phone, e164 = "alice.ck@example.net", "+44 7700 900112", "+447700900112"
		_, mid, sid := e.register("alice", pw("alice"), addr, phone)
		f := e.start("reset", "alice").str("flow")
		e.want(202, e.send("reset", f, mid), "send")
		a, f := e.verify("reset", f, mid, box.code(t, addr))
		if a.status != 200 || a.obj["remaining"] != 1.0 {
			t.Fatalf("first proof: %s", a)
		}
		e.want(202, e.send("reset", f, sid), "send sms")
		box.smsCode(t, e164)
		for i := 0; i < 3; i++ {
			e.want(422, e.call("POST", "/api/v1/reset/verify", "", ckJSON(map[string]string{"flow": f, "method": sid, "code": "00000000"})), "wrong code")
		}
		for _, to := range []string{addr, "alice@" + dom} {
			box.waitMail(t, to, "started and not finished", 1)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(box.smsTo(e164, "not finished")) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the phone was not told")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if evs := e.events("reset.partial_failure", ""); len(evs) != 1 || evs[0]["account_id"] == "" {
			t.Fatalf("audit %v", evs)
		}
	})

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsCodes) })
}

// ckEventsCodes is what the run of TestChecklistCodes must leave in its audit (see ckAudit).
var ckEventsCodes = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "registration.method_added",
		"registration.method_verified/success", "registration.method_verified/failed", "reset.started",
		"reset.code_sent", "reset.gate/passed", "reset.gate/failed", "reset.partial_failure", "unlock.started",
	},
	secrets: 16, notices: 6,
}
