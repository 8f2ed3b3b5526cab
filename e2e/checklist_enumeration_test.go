package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestChecklistEnumeration: what a name finds and what every name is
// answered (items A1, A5, F1-F3, F7, G7): every account state looks alike,
// a failing SMS provider does not show, filter syntax and ambiguous names
// find nobody, every spelling reaches the one account, referrals are not
// followed.
func TestChecklistEnumeration(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistEnumerationChecks(t, ckSetup(t, d))
		})
	}
}

func checklistEnumerationChecks(t *testing.T, r *ckRun) {
	e, srv, box, sms, isAD, pw, carolEmail, carolSMS, userFilter := r.e, r.srv, r.box, r.sms, r.isAD, r.pw, r.carolEmail, r.carolSMS, r.userFilter

	// F3 first: twin2 is still unlocked, so a gateway that took either of
	// the two entries would let one of the two passwords in.
	t.Run("F3 a name that matches two entries signs nobody in", func(t *testing.T) {
		g := ckGateway(t, srv, box, params{Limits: ckLimits(nil)}, map[string]string{"LATCHKEY_DIRECTORY_USER_FILTER": userFilter("sn")})
		g.t = t
		// the control: one entry with that surname signs in
		g.signIn("Chen", pw("carol"))
		for _, who := range []string{"twin1", "twin2"} {
			a := g.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": "Twin", "password": pw(who)}))
			if a.status != 401 || a.errCode() != "sign_in_failed" {
				t.Fatalf("\"Twin\" with %s's password: %s", who, a)
			}
			if err := srv.UserBind(who, pw(who)); err != nil {
				t.Fatalf("%s cannot bind: %v", who, err)
			}
		}
	})

	t.Run("A1 every account state gets the same answer from the API and the pages", func(t *testing.T) {
		e.t = t
		for i := 0; i < 3; i++ {
			srv.UserBind("twin2", "Bad-Guess-1!")
		}
		if srv.UserBind("twin2", pw("twin2")) == nil {
			t.Fatal("twin2 is not locked")
		}
		// registered, eligible without methods, in no group, excluded,
		// disabled, locked, missing, filter metacharacters, non-ASCII
		names := []string{"carol", "bob", "erin", "judy", "ivan", "twin2", "nobody-ck", "x)(uid=*", "Ünknown Üser"}
		for _, kind := range []string{"reset", "unlock"} {
			var ref map[string]string
			for _, n := range names {
				a := e.start(kind, n)
				got := map[string]string{"headers": ckHeaderNames(a.hdr), "shape": ckShape(a.obj)}
				if a.obj["required"] != 1.0 || len(a.methodIDs()) == 0 || len(a.str("flow")) < 43 {
					t.Fatalf("%s %q: %s", kind, n, a)
				}
				for _, m := range a.obj["methods"].([]any) {
					if h, _ := m.(map[string]any)["hint"].(string); !strings.Contains(h, "•") {
						t.Fatalf("%s %q: unmasked hint %q", kind, n, h)
					}
				}
				// the steps without a proof answer alike too
				body := map[string]string{"flow": a.str("flow")}
				if kind == "reset" {
					body["password"] = "Whatever-Password-9"
				}
				c := e.call("POST", "/api/v1/"+kind+"/complete", "", ckJSON(body))
				got["complete"] = fmt.Sprint(c.status, " ", ckWithout(c.body))
				v, _ := e.verify(kind, a.str("flow"), a.methodIDs()[0], "12345678")
				got["verify"] = fmt.Sprint(v.status, " ", ckWithout(v.body))
				if ref == nil {
					ref = got
					if c.status != 409 || v.status != 422 {
						t.Fatalf("%s %q: complete %s, verify %s", kind, n, c, v)
					}
					continue
				}
				for k := range ref {
					if got[k] != ref[k] {
						t.Fatalf("%s %q: %s differs:\n%s\n%s", kind, n, k, got[k], ref[k])
					}
				}
			}
		}
		// the pages: the same redirect, the same one cookie, no name in a URL
		var ref string
		for _, n := range names {
			b := e.browser()
			b.token()
			a := b.post("/reset", url.Values{"username": {n}}, nil)
			if a.status != 303 || a.hdr.Get("Location") != "/reset/methods" || len(a.cook) != 1 || a.cook[0].Name != "latchkey_flow" {
				t.Fatalf("web start %q: %d %v %v", n, a.status, a.hdr, a.cook)
			}
			if got := ckHeaderNames(a.hdr); ref == "" {
				ref = got
			} else if got != ref {
				t.Fatalf("web start %q: headers %s, want %s", n, got, ref)
			}
			if p := b.get("/reset/methods"); p.status != 200 || !bytes.Contains(p.body, []byte("•")) {
				t.Fatalf("methods page for %q: %d", n, p.status)
			}
		}
	})

	t.Run("A5 a failing SMS provider does not show in the answer", func(t *testing.T) {
		e.t = t
		real := e.start("reset", "carol")
		fake := e.start("reset", "nobody-a5")
		rejected := len(sms.Rejections())
		delivered := len(box.smsTo(carolE164, "is your"))
		sms.FailNext(503, 20503)
		a := e.send("reset", real.str("flow"), carolSMS)
		b := e.send("reset", fake.str("flow"), fake.methodIDs()[0])
		if a.status != 202 || b.status != 202 || len(a.body) != 0 || len(b.body) != 0 || ckHeaderNames(a.hdr) != ckHeaderNames(b.hdr) {
			t.Fatalf("send with the provider failing: %s / fake %s", a, b)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(sms.Rejections()) == rejected {
			if time.Now().After(deadline) {
				t.Fatal("the provider never refused the SMS")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := len(box.smsTo(carolE164, "is your")); n != delivered {
			t.Fatalf("%d code SMS delivered despite the failure", n-delivered)
		}
		// the gateway logs the refusal once the provider's answer has
		// reached it, which can be just after the provider counted it
		for !strings.Contains(e.logText(), "sending sms failed") {
			if time.Now().After(deadline) {
				t.Fatal("the failure is not in the log")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("F1 F2 wildcards and filter syntax find nobody; names with DN metacharacters are found exactly", func(t *testing.T) {
		e.t = t
		for _, n := range []string{"*", "car*", "c*l", "carol)(uid=*", "*)(|(objectClass=*", "carol)(|(sAMAccountName=*", `carol\2a`, "carol*"} {
			a := e.start("reset", n)
			if slices.Contains(a.methodIDs(), carolEmail) || slices.Contains(a.methodIDs(), carolSMS) {
				t.Fatalf("%q found carol", n)
			}
			if a := e.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": n, "password": pw("carol")})); a.status != 401 {
				t.Fatalf("sign-in as %q with carol's password: %s", n, a)
			}
		}
		if err := srv.UserBind("carol", pw("carol")); err != nil {
			t.Fatal(err)
		}
		// the seeded user named with DN and filter metacharacters: found,
		// bound by the DN the directory gave, and not eligible (in no group)
		if a := e.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": srv.SpecialUser, "password": pw(srv.SpecialUser)})); a.status != 403 || a.errCode() != "not_eligible" {
			t.Fatalf("%q with its password: %s", srv.SpecialUser, a)
		}
	})

	t.Run("F7 every spelling of a name reaches the one registration", func(t *testing.T) {
		e.t = t
		for _, n := range []string{"CAROL", " Carol ", "cArOl"} {
			tok := e.signIn(n, pw("carol"))
			ms := e.want(200, e.call("GET", "/api/v1/methods", tok, ""), "list")
			f := e.start("reset", n)
			for _, id := range []string{carolEmail, carolSMS} {
				if !bytes.Contains(ms.body, []byte(id)) || !slices.Contains(f.methodIDs(), id) {
					t.Fatalf("%q does not reach carol's method %s: %s / %s", n, id, ms.body, f)
				}
			}
		}
	})

	if !isAD {
		t.Run("G7 a referral is neither followed nor a success", func(t *testing.T) {
			e.t = t
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var reached atomic.Int32
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					reached.Add(1)
					c.Close()
				}
			}()
			target := "ldap://" + ln.Addr().String() + "/uid=mallory,ou=people," + srv.BaseDN
			cmd := exec.Command("ldapadd", "-x", "-M", "-H", srv.LDAPSURL, "-D", srv.AdminDN, "-w", srv.AdminPassword)
			cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+srv.CAFile)
			cmd.Stdin = strings.NewReader("dn: uid=mallory,ou=people," + srv.BaseDN + "\nobjectClass: referral\nobjectClass: extensibleObject\nuid: mallory\nref: " + target + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("adding the referral: %v\n%s", err, out)
			}
			// the precondition: the service account's lookup of mallory is
			// answered with a continuation reference to the listener
			q := exec.Command("ldapsearch", "-x", "-H", srv.LDAPSURL, "-D", srv.ServiceDN, "-w", srv.ServicePassword, "-b", srv.BaseDN,
				strings.ReplaceAll(srv.UserFilter, "{username}", "mallory"))
			q.Env = append(os.Environ(), "LDAPTLS_CACERT="+srv.CAFile)
			if out, err := q.CombinedOutput(); err != nil || !strings.Contains(string(out), "ref: "+target) {
				t.Fatalf("the directory does not answer with the referral: %v\n%s", err, out)
			}
			if a := e.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": "mallory", "password": "Mallory-Pass1!"})); a.status != 401 {
				t.Fatalf("sign-in through a referral: %s", a)
			}
			// the answer of any name that names nobody
			if m, n := e.start("reset", "mallory"), e.start("reset", "nobody-g7"); ckShape(m.obj) != ckShape(n.obj) || ckHeaderNames(m.hdr) != ckHeaderNames(n.hdr) {
				t.Fatalf("mallory %s, nobody %s", m, n)
			}
			// lookups under a base holding a referral still work
			e.signIn("carol", pw("carol"))
			time.Sleep(300 * time.Millisecond)
			if n := reached.Load(); n != 0 {
				t.Fatalf("the gateway followed the referral (%d connection(s))", n)
			}
		})
	}

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsEnumeration) })
}

// ckEventsEnumeration is what the run of TestChecklistEnumeration must leave in its audit (see ckAudit).
var ckEventsEnumeration = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "sign_in/failed", "sign_in/not_eligible",
		"registration.method_added", "registration.method_verified/success", "reset.started", "reset.code_sent",
		"reset.gate/failed", "reset.completed/not_verified", "unlock.started",
	},
	secrets: 30, notices: 2,
}
