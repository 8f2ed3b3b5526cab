package e2e

import (
	"bytes"
	"os"
	"slices"
	"testing"
	"time"
)

// TestChecklistMethods: recovery methods (items D1, D2, D4, D5) are proven
// before use, removed only with the password, every change is told, and a
// new method alone cannot reset.
func TestChecklistMethods(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistMethodsChecks(t, ckSetup(t, d))
		})
	}
}

func checklistMethodsChecks(t *testing.T, r *ckRun) {
	e, srv, box, dom, pw := r.e, r.srv, r.box, r.dom, r.pw

	t.Run("D1 D2 D4 methods: proven before use, removed with the password, every change told", func(t *testing.T) {
		e.t = t
		const second = "carol.ck2@example.net"
		tok := e.signIn("carol", pw("carol"))
		id := e.want(201, e.call("POST", "/api/v1/methods", tok, ckJSON(map[string]string{"type": "email", "address": second})), "add").str("id")
		code := box.code(t, second)
		// not usable before its code comes back
		f := e.start("reset", "carol")
		if slices.Contains(f.methodIDs(), id) {
			t.Fatal("an unverified address is offered")
		}
		if a := e.send("reset", f.str("flow"), id); a.status != 400 {
			t.Fatalf("send to an unverified address: %s", a)
		}
		addedTo := []string{carolMail, "carol@" + dom}
		before := map[string]int{}
		for _, a := range append(addedTo, second) {
			before[a] = len(box.list(t, a, "recovery method was added"))
		}
		smsBefore := len(box.smsTo(carolE164, "recovery method was added"))
		e.want(200, e.call("POST", "/api/v1/methods/"+id+"/verify", tok, ckJSON(map[string]string{"code": code})), "verify")
		for _, a := range addedTo {
			box.waitMail(t, a, "recovery method was added", before[a]+1)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(box.smsTo(carolE164, "recovery method was added")) == smsBefore {
			if time.Now().After(deadline) {
				t.Fatal("the phone was not told about the new method")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := len(box.list(t, second, "recovery method was added")); n != before[second] {
			t.Fatal("the notice went to the new address itself, not only to the others")
		}
		// removing needs the password, every time
		removedBefore := box.counts(t, ckKey{second, "removed"}, ckKey{carolMail, "removed"}, ckKey{"carol@" + dom, "removed"})
		for _, body := range []string{"", `{}`, `{"password":""}`, `{"password":"Not-Carols-Password-1"}`} {
			a := e.call("DELETE", "/api/v1/methods/"+id, tok, body)
			if a.status != 400 && a.status != 401 {
				t.Fatalf("remove with %q: %s", body, a)
			}
		}
		if ms := e.want(200, e.call("GET", "/api/v1/methods", tok, ""), "list"); !bytes.Contains(ms.body, []byte(id)) {
			t.Fatal("the method went without the password")
		}
		box.noNewMail(t, removedBefore, "refused removals")
		e.want(204, e.call("DELETE", "/api/v1/methods/"+id, tok, ckJSON(map[string]string{"password": pw("carol")})), "remove")
		for _, a := range []string{second, carolMail, "carol@" + dom} { // the removed address too
			box.waitMail(t, a, "recovery method was removed", 1)
		}
		if len(e.events("reauth", "failed")) == 0 {
			t.Fatal("no reauth failure in the audit")
		}
	})

	t.Run("D5 a new method alone cannot reset and a shared address is flagged", func(t *testing.T) {
		g := ckGateway(t, srv, box, params{Limits: ckLimits(nil)}, map[string]string{"LATCHKEY_POLICY_COOLING_OFF": "1h"})
		g.t = t
		const shared = "shared.ck@example.net"
		_, mid, _ := g.register("carol", pw("carol"), shared, "")
		f := g.start("reset", "carol").str("flow")
		// said at the proof, with when it becomes usable, before any
		// password is typed
		g.want(202, g.send("reset", f, mid), "send")
		a, _ := g.verify("reset", f, mid, g.box.code(g.t, shared))
		if e, _ := a.obj["error"].(map[string]any); a.status != 409 || a.errCode() != "method_too_new" || e["usable_at"] == nil {
			t.Fatalf("proving a method verified seconds ago: %s", a)
		}
		if a := g.complete(f, "Too-Soon-Password-42"); a.status != 409 || a.errCode() != "not_verified" {
			t.Fatalf("reset after the refused proof: %s", a)
		}
		if err := srv.UserBind("carol", pw("carol")); err != nil {
			t.Fatalf("carol's password changed: %v", err)
		}
		if len(g.events("registration.shared_destination", "")) != 0 {
			t.Fatal("flagged with one account")
		}
		g.register("alice", pw("alice"), "Shared.CK@example.net", "")
		evs := g.events("registration.shared_destination", "flagged")
		if len(evs) != 1 || evs[0]["accounts"] != "2" || evs[0]["account_id"] == "" {
			t.Fatalf("shared destination events: %v", evs)
		}
		b, _ := os.ReadFile(g.env.audit)
		if bytes.Contains(bytes.ToLower(b), []byte("shared.ck")) {
			t.Fatal("the address is in the audit")
		}
	})

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsMethods) })
}

// ckEventsMethods is what the run of TestChecklistMethods must leave in its audit (see ckAudit).
var ckEventsMethods = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "reauth/failed", "registration.method_added",
		"registration.method_verified/success", "registration.method_removed", "reset.started",
	},
	secrets: 6, notices: 7,
}
