package e2e

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChecklistBudgets: the budgets (items A6, B10, C1-C4, F4, K4) count
// every spelling of an account once, throttle invisibly, hold across
// resent codes, ignore forged forwarding headers, cap SMS, never spend a
// bind on an empty password and bound the state requests without a proof
// can grow.
func TestChecklistBudgets(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistBudgetsChecks(t, ckSetup(t, d))
		})
	}
}

func checklistBudgetsChecks(t *testing.T, r *ckRun) {
	e, srv, box, isAD, dom, pw, userFilter := r.e, r.srv, r.box, r.isAD, r.dom, r.pw, r.userFilter

	t.Run("A6 C1 C2 budgets count every spelling of an account once and throttle invisibly", func(t *testing.T) {
		// the filter accepts the mail address (and the UPN on AD) as well
		// as the account name: more spellings of one account
		filter := userFilter("uid", "mail")
		if isAD {
			filter = userFilter("sAMAccountName", "userPrincipalName", "mail")
		}
		g := ckGateway(t, srv, box, params{Limits: ckLimits(map[string]int{"starts_per_account": 3, "sends_per_account": 4})},
			map[string]string{"LATCHKEY_DIRECTORY_USER_FILTER": filter})
		g.t = t
		const addr = "frank.ck@example.net"
		_, mid, _ := g.register("frank", pw("frank"), addr, "") // send 1 of 4
		var flows []string
		var first string
		for i, n := range []string{"frank", "FRANK", " frank@" + dom + " ", "Frank", "FRANK@" + strings.ToUpper(dom)} {
			a := g.start("reset", n)
			if !slices.Contains(a.methodIDs(), mid) {
				t.Fatalf("%q does not find frank: %s", n, a)
			}
			flows = append(flows, a.str("flow"))
			if i == 0 {
				first = ckWithout(a.body)
			} else if ckWithout(a.body) != first {
				t.Fatalf("%q (start %d) answers differently:\n%s\n%s", n, i+1, ckWithout(a.body), first)
			}
		}
		// a name that names nobody is throttled as invisibly
		var unknown string
		for i := 0; i < 5; i++ {
			a := g.start("reset", "nobody-c1")
			if i == 0 {
				unknown = ckWithout(a.body)
			} else if ckWithout(a.body) != unknown {
				t.Fatalf("an unknown name answers differently at start %d", i+1)
			}
		}
		// five sends through the first flow: the account's budget lets three
		// more codes out (the registration code was the first)
		for i := 0; i < 5; i++ {
			g.want(202, g.send("reset", flows[0], mid), "send")
		}
		box.waitMail(t, addr, "verification code", 4)
		// the starts past the budget (every spelling counted) send nothing
		for _, f := range flows[3:] {
			g.want(202, g.send("reset", f, mid), "send in a throttled flow")
		}
		time.Sleep(700 * time.Millisecond)
		if n := len(box.list(t, addr, "verification code")); n != 4 {
			t.Fatalf("%d codes mailed, want 4 (1 registration + 3 within the send budget)", n)
		}
		if evs := g.events("blocked", "start_budget"); len(evs) != 4 { // frank twice, nobody-c1 twice
			t.Fatalf("%d blocked starts, want 4", len(evs))
		}
		for _, m := range box.list(t, addr, "verification code") {
			box.seen[m.ID] = true
		}
		// wrong passwords under four spellings share one bind budget:
		// below the directory's lockout threshold (3), whatever the
		// spelling. What the answer shows counts the name as typed (case
		// and surrounding spaces folded), for every name alike: the third
		// "grace" is 429 too_many ("Too many attempts"), while the e-mail
		// spelling, a name typed for the first time, answers 401 as an
		// unknown name would (a too_many there would tell that the two
		// spellings reach one account)
		for i, n := range []string{"grace", "GRACE", " grace ", "grace@" + dom} {
			a := g.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": n, "password": "Wrong-Guess-7!"}))
			if want := map[bool]int{true: 429, false: 401}[i == 2]; a.status != want {
				t.Fatalf("%q: %s, want %d", n, a, want)
			}
		}
		if a := g.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": "grace", "password": pw("grace")})); a.status != 429 || a.errCode() != "too_many" {
			t.Fatalf("the bind budget did not hold across spellings: %s", a)
		}
		if err := srv.UserBind("grace", pw("grace")); err != nil {
			t.Fatalf("grace was locked at the directory: %v", err)
		}
	})

	t.Run("C3 SMS only to verified numbers of allowed countries, within the hourly budget", func(t *testing.T) {
		// the hourly budget is per clock hour: not across a boundary
		if left := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); left < 30*time.Second {
			time.Sleep(left + time.Second)
		}
		g := ckGateway(t, srv, box, params{Limits: ckLimits(map[string]int{"sms_per_hour": 2})}, nil)
		g.t = t
		tok := g.signIn("carol", pw("carol"))
		for _, n := range []string{"+49 30 1234567", "+33 6 12 34 56 78", "+44 12"} {
			if a := g.call("POST", "/api/v1/methods", tok, ckJSON(map[string]string{"type": "sms", "address": n})); a.status != 422 || a.errCode() != "invalid_phone" {
				t.Fatalf("%s: %s", n, a)
			}
		}
		a := g.want(201, g.call("POST", "/api/v1/methods", tok, ckJSON(map[string]string{"type": "sms", "address": "+44 7700 900222"})), "add") // SMS 1 of 2
		verified := a.str("id")
		g.want(200, g.call("POST", "/api/v1/methods/"+verified+"/verify", tok, ckJSON(map[string]string{"code": box.smsCode(t, "+447700900222")})), "verify")
		a = g.want(201, g.call("POST", "/api/v1/methods", tok, ckJSON(map[string]string{"type": "sms", "address": "+44 7911 123456"})), "add") // SMS 2 of 2
		unverified := a.str("id")
		box.smsCode(t, "+447911123456")
		f := g.start("reset", "carol")
		if !slices.Contains(f.methodIDs(), verified) || slices.Contains(f.methodIDs(), unverified) {
			t.Fatalf("offered %v: want the verified number only", f.methodIDs())
		}
		if a := g.send("reset", f.str("flow"), unverified); a.status != 400 {
			t.Fatalf("send to an unverified number: %s", a)
		}
		// the hour's two SMS are spent: the same 202, and nothing is sent,
		// to this account or any other
		g.want(202, g.send("reset", f.str("flow"), verified), "send over the SMS budget")
		other := g.signIn("alice", pw("alice"))
		if a := g.call("POST", "/api/v1/methods", other, ckJSON(map[string]string{"type": "sms", "address": "+1 202 555 0143"})); a.status != 429 {
			t.Fatalf("another account's SMS over the hourly budget: %s", a)
		}
		time.Sleep(700 * time.Millisecond)
		if n := len(box.smsTo("+447700900222", "is your")); n != 1 {
			t.Fatalf("%d code SMS to the number, want 1 (the registration)", n)
		}
		if n := len(box.smsTo("+12025550143", "")); n != 0 {
			t.Fatal("an SMS past the hourly budget")
		}
	})

	t.Run("B10 C4 wrong codes across resends and the per-address budgets", func(t *testing.T) {
		g := ckGateway(t, srv, box, params{Limits: ckLimits(map[string]int{"code_failures_per_account": 6, "starts_per_ip": 3, "sign_ins_per_ip": 3})}, nil)
		g.t = t
		const addr = "carol.g4@example.net"
		_, mid, _ := g.register("carol", pw("carol"), addr, "") // sign-in 1 of 3; a right code: not counted
		f := g.start("reset", "carol").str("flow")              // start 1 of 3
		// wrong tries 1-3 on a first code, 4-6 on a second: the budget is
		// the account's, not the code's (each code dies only at its fifth)
		g.want(202, g.send("reset", f, mid), "send")
		box.code(t, addr)
		for i := 0; i < 3; i++ {
			g.want(422, g.call("POST", "/api/v1/reset/verify", "", ckJSON(map[string]string{"flow": f, "method": mid, "code": "00000000"})), "wrong code")
		}
		g.want(202, g.send("reset", f, mid), "resend")
		box.code(t, addr)
		for i := 0; i < 3; i++ {
			g.want(422, g.call("POST", "/api/v1/reset/verify", "", ckJSON(map[string]string{"flow": f, "method": mid, "code": "00000000"})), "wrong code")
		}
		g.want(202, g.send("reset", f, mid), "resend")
		fresh := box.code(t, addr)
		if a, _ := g.verify("reset", f, mid, fresh); a.status != 422 || a.errCode() != "invalid_code" {
			t.Fatalf("a fresh right code past the account's budget of wrong codes: %s", a)
		}
		if evs := g.events("blocked", "code_budget"); len(evs) != 1 {
			t.Fatalf("%d code_budget events", len(evs))
		}

		// forged forwarding headers give no new address: 2 starts of this
		// address's 3 are left, the other 3 are refused with too_many (the
		// address's budget names no account) and store no flow
		forged := []map[string]string{
			{"X-Forwarded-For": "203.0.113.1"}, {"X-Real-IP": "203.0.113.2"}, {"Forwarded": "for=203.0.113.3"},
			{"True-Client-IP": "203.0.113.4"}, {"X-Forwarded-For": "203.0.113.5, 198.51.100.5", "X-Client-IP": "203.0.113.6"},
		}
		for i, h := range forged {
			h["Content-Type"] = "application/json"
			a := g.do("POST", "/api/v1/reset", h, ckJSON(map[string]string{"username": "nobody-c4-" + strconv.Itoa(i)}))
			if (i < 2) != (a.status == 200) || (i >= 2 && a.errCode() != "too_many") {
				t.Fatalf("start %d with forged headers: %s", i+1, a)
			}
		}
		evs := g.events("blocked", "start_ip_budget")
		if len(evs) != 3 {
			t.Fatalf("%d throttled starts, want 3: forged headers must not count as new addresses", len(evs))
		}
		// sign-ins per address: 2 of 3 left
		for i, h := range forged[:4] {
			h["Content-Type"] = "application/json"
			a := g.do("POST", "/api/v1/session", h, ckJSON(map[string]string{"username": "carol", "password": pw("carol")}))
			if (i < 2) != (a.status == 200) {
				t.Fatalf("sign-in %d with forged headers: %s", i+1, a)
			}
			// past the address's budget: wait, not "wrong password"
			if i >= 2 && (a.status != 429 || a.errCode() != "too_many") {
				t.Fatalf("sign-in %d past the address's budget: %s, want 429 too_many", i+1, a)
			}
		}
		for _, ev := range g.audit() {
			if ip, ok := ev["client_ip"]; ok && ev["event"] != "configuration.loaded" && ip != "127.0.0.1" {
				t.Fatalf("client_ip %v in %v", ip, ev)
			}
		}
		if b, _ := os.ReadFile(g.env.audit); bytes.Contains(b, []byte("203.0.113.")) || bytes.Contains(b, []byte("198.51.100.")) {
			t.Fatal("a forged address reached the audit")
		}
	})

	t.Run("F4 empty passwords never reach a bind", func(t *testing.T) {
		e.t = t
		for i := 0; i < 6; i++ {
			for _, a := range []ckAnswer{
				e.call("POST", "/api/v1/session", "", ckJSON(map[string]string{"username": "carol", "password": ""})),
				e.call("POST", "/api/v1/change", "", ckJSON(map[string]string{"username": "carol", "old_password": "", "new_password": "Empty-Old-Pass-99"})),
			} {
				if a.status != 401 || a.errCode() != "sign_in_failed" {
					t.Fatalf("empty password: %s", a)
				}
			}
		}
		// six tries each would have spent the two wrong binds the gateway
		// allows carol (the directory locks at three): none was counted
		e.signIn("carol", pw("carol"))
		if err := srv.UserBind("carol", pw("carol")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("K4 requests without a proof cannot grow the state without bound", func(t *testing.T) {
		g := ckGateway(t, srv, box, params{Limits: ckLimits(map[string]int{"starts_total": 4})}, nil)
		g.t = t
		for i := 0; i < 4; i++ {
			g.start("reset", "nobody-k4-"+strconv.Itoa(i))
		}
		var ref string
		for _, n := range []string{"carol", "erin", "nobody-k4-x", "nobody-k4-y"} {
			for _, kind := range []string{"reset", "unlock"} {
				a := g.call("POST", "/api/v1/"+kind, "", ckJSON(map[string]string{"username": n}))
				if a.status != 429 || a.errCode() != "too_many" || a.str("flow") != "" {
					t.Fatalf("%s %q past the total budget: %s", kind, n, a)
				}
				if ref == "" {
					ref = ckWithout(a.body)
				} else if ckWithout(a.body) != ref {
					t.Fatalf("%s %q answers differently: %s", kind, n, a.body)
				}
			}
		}
		if n := len(g.events("blocked", "start_total_budget")); n != 8 {
			t.Fatalf("%d start_total_budget events, want 8", n)
		}
		if n := len(g.events("reset.started", "")); n != 4 {
			t.Fatalf("%d flows started, want 4", n)
		}
	})

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsBudgets) })
}

// ckEventsBudgets is what the run of TestChecklistBudgets must leave in its audit (see ckAudit).
var ckEventsBudgets = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "sign_in/failed", "registration.method_added",
		"registration.method_verified/success", "change.completed/failed",
	},
	secrets: 8, notices: 4,
}
