package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestPrivilegedActiveDirectory: on a real Samba AD DC, with the default
// policy (privileged accounts excluded), every protected account is
// refused whatever makes it protected: Domain Admins as the primary group
// (no member link, as AD stores it; Samba sets no adminCount), a group
// nested in Domain Admins, and each operators group; and an account whose
// primary group is the excluded group. Sign-in answers not_eligible, and a
// reset gives the answer an unknown name gets: made-up methods, nothing
// sent, no code accepted. The primary-group Domain Admin had registered an
// email while still an ordinary user.
func TestPrivilegedActiveDirectory(t *testing.T) {
	parallel(t)
	srv := dirtest.StartSamba(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{})
	base, staff := srv.BaseDN, srv.Group("staff")
	nested := "CN=Helpdesk-Admins,OU=Groups," + base
	srv.Modify(t, "dn: "+nested+"\nchangetype: add\nobjectClass: group\nsAMAccountName: Helpdesk-Admins\n")
	t.Cleanup(func() { srv.Modify(t, "dn: "+nested+"\nchangetype: delete\n") })
	srv.Modify(t, "dn: CN=Domain Admins,CN=Users,"+base+"\nchangetype: modify\nadd: member\nmember: "+nested+"\n")

	// dave registers while an ordinary user, then becomes a Domain Admin
	// by his primary group
	dave := srv.AddADUser(t, "pg-dave", staff)
	emailID := registeredEmail(t, e, "pg-dave", "pg-dave.home@example.net")
	srv.SetPrimaryGroup(t, dave, "CN=Domain Admins,CN=Users,"+base)

	refused := map[string]string{"pg-dave": "privileged"}
	srv.AddADUser(t, "pg-nested", staff, nested)
	refused["pg-nested"] = "privileged"
	for i, g := range []string{"Account Operators", "Server Operators", "Print Operators", "Backup Operators", "Replicator"} {
		name := fmt.Sprintf("pg-op%d", i)
		srv.AddADUser(t, name, staff, "CN="+g+",CN=Builtin,"+base)
		refused[name] = "privileged"
	}
	ex := srv.AddADUser(t, "pg-excluded", staff)
	srv.SetPrimaryGroup(t, ex, srv.Group("cycle-a")) // policy.exclude_groups
	refused["pg-excluded"] = "excluded"

	shape := func(r resp) string {
		keys := make([]string, 0, len(r.JSON))
		for k := range r.JSON {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return strings.Join(keys, ",")
	}
	_, unknown := e.startReset("nobody-here-at-all")
	for name, reason := range refused {
		r := e.api("POST", "/api/v1/session", "", map[string]string{"username": name, "password": srv.Password(name)})
		if r.Status != 403 || r.errCode() != "not_eligible" {
			t.Errorf("%s signs in: %d %s", name, r.Status, r.Body)
		}
		f, got := e.startReset(name)
		if shape(got) != shape(unknown) || f.Required != 1 || len(f.Methods) < 1 {
			t.Errorf("%s: reset start %s, an unknown name gets %s", name, got.Body, unknown.Body)
		}
		for _, m := range f.Methods {
			if m["id"] == emailID {
				t.Errorf("%s: the registered email is offered: %s", name, got.Body)
			}
			e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": m["id"].(string)}), "send "+name)
			if r := e.verify(&f, m["id"].(string), "123456"); r.Status != 422 || r.errCode() != "invalid_code" {
				t.Errorf("%s: verify %d %s", name, r.Status, r.Body)
			}
		}
		if r := e.complete(f, "Never-Written-Pass-42"); r.Status != 409 || r.errCode() != "not_verified" {
			t.Errorf("%s: complete %d %s", name, r.Status, r.Body)
		}
		found := false
		for _, ev := range e.auditEvents() {
			if ev["event"] == "reset.started" && ev["outcome"] == "not_eligible:"+reason {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no reset.started not_eligible:%s in the audit", name, reason)
		}
	}
	// nothing reached dave's registered address (mailCode emptied the
	// mailbox after his registration code)
	settleMail(t, mail)
	list, err := mail.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range list {
		if strings.Contains(fmt.Sprint(m.To), "pg-dave.home@example.net") {
			n++
		}
	}
	if n != 0 {
		t.Errorf("%d messages to dave's registered address after his registration, want none", n)
	}
}
