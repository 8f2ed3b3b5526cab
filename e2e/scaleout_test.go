package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// budgetK is the per-account budget the scale-out test spreads over three
// instances: they must give K in all, not 3K.
const budgetK = 4

// TestScaleOut runs three `latchkey serve` processes with one secret key on
// one PostgreSQL database, against a syncrepl pair of slapd servers
// (directory.urls: provider, then consumer). Flows hop between instances,
// budgets hold across them, a killed instance loses no flow, and with the
// provider down a password write fails cleanly and is retried once it is
// back, written exactly once.
func TestScaleOut(t *testing.T) {
	parallel(t)
	prov := dirtest.StartOpenLDAP(t, dirtest.AsProvider())
	repl := dirtest.StartReplica(t, prov)
	for _, u := range []string{"frank", "grace", "twin1"} {
		addToGroup(t, prov, u, "staff")
	}
	if err := repl.WaitReplicated(prov, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)
	mail, sms := startMail(t)
	key := make([]byte, 48)
	rand.Read(key)
	p := params{
		Store: postgresStore(pg, db), SecretKey: key,
		DirURLs: []string{prov.LDAPSURL, repl.LDAPSURL}, DirTimeout: 5 * time.Second,
		Limits: "limits:\n  starts_per_account: 4\n  sends_per_account: 4\n  sends_per_destination: 100\n",
	}
	var gw [3]*env
	for i := range gw {
		gw[i] = startGateway(t, prov, mail, sms, p)
	}
	a, b, c := gw[0], gw[1], gw[2]
	ctx := context.Background()
	on := func(t *testing.T) {
		for _, e := range gw {
			e.t = t
		}
	}

	t.Run("a flow hops between instances", func(t *testing.T) {
		on(t)
		// registration hops too: session on A, method added on B, verified on C
		r := a.must(200, a.api("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": prov.Password("carol")}), "sign in on A")
		token := r.str("token")
		r = b.must(201, b.api("POST", "/api/v1/methods", token, map[string]string{"type": "email", "address": "carol.home@example.net"}), "add email on B")
		emailID := r.str("id")
		c.must(200, c.api("POST", "/api/v1/methods/"+emailID+"/verify", token, map[string]string{"code": c.mailCode("carol.home@example.net")}), "verify on C")

		f, _ := a.startReset("carol")
		b.must(202, b.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": emailID}), "send via B")
		c.must(200, c.verify(&f, emailID, c.mailCode("carol.home@example.net")), "verify on C")
		a.must(200, a.complete(f, "Hopping-Between-Nodes-1"), "complete on A")
		if err := prov.UserBind("carol", "Hopping-Between-Nodes-1"); err != nil {
			t.Fatalf("new password on the provider: %v", err)
		}
		if r := b.complete(f, "Hopping-Between-Nodes-2"); r.Status != 410 {
			t.Fatalf("completing again on B: %d %s", r.Status, r.Body)
		}
		mail.DeleteAll(ctx)
	})

	t.Run("starts per account hold across instances", func(t *testing.T) {
		on(t)
		b.register("grace", "grace.home@example.net", "")
		before := countAudit(t, gw[:], `"event":"reset.started"`, `"outcome":"eligible"`)
		for i := 0; i < 3*budgetK; i++ {
			gw[i%3].startReset("grace")
		}
		got := countAudit(t, gw[:], `"event":"reset.started"`, `"outcome":"eligible"`) - before
		blocked := countAudit(t, gw[:], `"event":"reset.started"`, `"outcome":"blocked"`)
		if got != budgetK || blocked != 2*budgetK {
			t.Fatalf("%d starts over 3 instances: %d real flows and %d blocked, want %d and %d", 3*budgetK, got, blocked, budgetK, 2*budgetK)
		}
		mail.DeleteAll(ctx)
	})

	t.Run("sends per account hold across instances", func(t *testing.T) {
		on(t)
		emailID, _ := c.register("twin1", "twin1.home@example.net", "")
		f, _ := a.startReset("twin1")
		for i := 0; i < 3*budgetK; i++ {
			gw[i%3].must(202, gw[i%3].api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": emailID}), "send")
		}
		settleMail(t, mail)
		list, err := mail.Search(ctx, `to:"twin1.home@example.net" subject:"verification code"`)
		if err != nil {
			t.Fatal(err)
		}
		// the registration's code was the account's first send
		if len(list) != budgetK-1 {
			t.Fatalf("%d sends over 3 instances delivered %d codes, want %d (budget %d, one spent on registration)", 3*budgetK, len(list), budgetK-1, budgetK)
		}
		mail.DeleteAll(ctx)
	})

	t.Run("a killed instance loses no flow", func(t *testing.T) {
		on(t)
		emailID, _ := b.register("bob", "bob.home@example.net", "")
		f, _ := c.startReset("bob")
		c.must(202, c.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": emailID}), "send via C")
		code := c.mailCode("bob.home@example.net")
		c.kill() // SIGKILL: no shutdown at all
		a.must(200, a.verify(&f, emailID, code), "verify on A after C died")
		b.must(200, b.complete(f, "Survived-The-Crash-7"), "complete on B")
		if err := prov.UserBind("bob", "Survived-The-Crash-7"); err != nil {
			t.Fatal(err)
		}
		mail.DeleteAll(ctx)
	})

	t.Run("provider down: reads fail over, the write waits for the provider", func(t *testing.T) {
		on(t)
		emailID, _ := a.register("frank", "frank.home@example.net", "")
		f, _ := a.startReset("frank")
		b.must(202, b.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": emailID}), "send")
		a.must(200, a.verify(&f, emailID, a.mailCode("frank.home@example.net")), "verify")

		prov.Stop(t)
		// reads go to the consumer: ready, and a new flow starts
		r := a.api("GET", "/readyz", "", nil)
		if r.Status != 200 {
			t.Fatalf("readyz with the provider down: %d %s", r.Status, r.Body)
		}
		b.startReset("frank")
		// the write: a generic 503, nothing written anywhere
		r = b.complete(f, "Written-Exactly-Once-5")
		if r.Status != 503 || r.errCode() != "unavailable" {
			t.Fatalf("complete with the provider down: %d %s", r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "shadow") || strings.Contains(string(r.Body), "ldap") {
			t.Fatalf("the answer tells directory details: %s", r.Body)
		}
		if err := repl.UserBind("frank", prov.Password("frank")); err != nil {
			t.Fatalf("the old password no longer binds on the consumer: %v", err)
		}

		prov.Restart(t)
		// the same flow, on another instance, once the provider is back
		a.must(200, a.complete(f, "Written-Exactly-Once-5"), "complete after the provider is back")
		if r := b.complete(f, "Written-Exactly-Once-5"); r.Status != 410 {
			t.Fatalf("completing again: %d %s", r.Status, r.Body)
		}
		if err := prov.UserBind("frank", "Written-Exactly-Once-5"); err != nil {
			t.Fatal(err)
		}
		if err := repl.WaitReplicated(prov, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		// one write: the history holds exactly the seeded password
		for name, s := range map[string]*dirtest.Server{"provider": prov, "consumer": repl} {
			if n := len(pwdHistory(t, s, "frank")); n != 1 {
				t.Fatalf("%s: pwdHistory has %d entries after one reset, want 1", name, n)
			}
		}
		mail.DeleteAll(ctx)
	})
}

// countAudit counts the audit lines of the gateways that contain every one
// of parts.
func countAudit(t testing.TB, gws []*env, parts ...string) int {
	t.Helper()
	n := 0
	for _, e := range gws {
		b, err := os.ReadFile(e.audit)
		if err != nil {
			t.Fatal(err)
		}
	line:
		for _, l := range strings.Split(string(b), "\n") {
			for _, p := range parts {
				if !strings.Contains(l, p) {
					continue line
				}
			}
			n++
		}
	}
	return n
}

// pwdHistory reads a user's ppolicy password history (one value per
// password replaced) as the directory's administrator.
func pwdHistory(t testing.TB, s *dirtest.Server, user string) []string {
	t.Helper()
	res, err := s.Admin(t).Search(ldap.NewSearchRequest(s.UserDN(user), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"pwdHistory"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("reading pwdHistory: %v", err)
	}
	return res.Entries[0].GetAttributeValues("pwdHistory")
}

// TestInstanceKilledMidWrite: instance A is killed after slapd applied its
// password write and before the answer reached it, so A never recorded
// the reset. The user, sent to instance B, submits again: B sees in the
// directory that the password was set since A read it, answers
// already_completed, writes nothing a second time, and records the reset
// (flow ended, audited once).
func TestInstanceKilledMidWrite(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	proxy := startLDAPProxy(t, strings.TrimPrefix(srv.URL, "ldap://"))
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)
	mail, sms := startMail(t)
	key := make([]byte, 48)
	rand.Read(key)
	p := params{Store: postgresStore(pg, db), SecretKey: key,
		DirURLs: []string{proxy.URL()}, DirPlaintext: true, DirTimeout: 30 * time.Second}
	a := startGateway(t, srv, mail, sms, p)
	b := startGateway(t, srv, mail, sms, p)
	f := a.verifiedFlow("carol", "carol.home@example.net")

	proxy.mu.Lock()
	proxy.loseAnswers = true
	proxy.mu.Unlock()
	proxy.freeze(true)
	done := make(chan error, 1)
	go func() {
		// not a.complete: its connection is expected to end without an answer
		body := strings.NewReader(`{"flow":"` + f.ID + `","password":"Killed-Mid-Write-42"}`)
		res, err := httpClient.Post(a.target()+"/api/v1/reset/complete", "application/json", body)
		if err == nil {
			res.Body.Close()
			err = fmt.Errorf("instance A answered %d before it was killed", res.StatusCode)
		}
		done <- err
	}()
	// the write has landed on slapd; its answer is held by the proxy
	for deadline := time.Now().Add(20 * time.Second); srv.UserBind("carol", "Killed-Mid-Write-42") != nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the write never landed (%d held)", proxy.heldWrites())
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.kill()
	if err := <-done; err != nil && strings.Contains(err.Error(), "answered") {
		t.Fatal(err)
	}
	proxy.freeze(false)

	r := b.complete(f, "Killed-Mid-Write-42")
	if r.Status != 409 || r.errCode() != "already_completed" {
		t.Fatalf("submitted again on B: %d %s", r.Status, r.Body)
	}
	// B recorded the reset A never did: the flow is finished, audited once
	if r := b.complete(f, "Killed-Mid-Write-42"); r.Status != 410 {
		t.Fatalf("the flow outlived the reset: %d %s", r.Status, r.Body)
	}
	if n := countAudit(t, []*env{a, b}, `"reset.completed"`, `"already_written"`); n != 1 {
		t.Fatalf("%d reset.completed already_written audit events, want 1", n)
	}
	if n := len(pwdHistory(t, srv, "carol")); n != 1 {
		t.Fatalf("pwdHistory has %d entries, want 1: the password was written again", n)
	}
	if err := srv.UserBind("carol", "Killed-Mid-Write-42"); err != nil {
		t.Fatal(err)
	}
}

// startThreeOnPostgres starts three gateways with p on one new PostgreSQL
// database and one secret key; calls to the returned one go to each in
// turn.
func startThreeOnPostgres(t *testing.T, srv *dirtest.Server, p params) *env {
	pg := pgtest.Start(t)
	mail, sms := startMail(t)
	p.Store, p.SecretKey = postgresStore(pg, pg.NewDatabase(t)), make([]byte, 48)
	rand.Read(p.SecretKey)
	e := startGateway(t, srv, mail, sms, p)
	e.peers = []*env{startGateway(t, srv, mail, sms, p), startGateway(t, srv, mail, sms, p)}
	return e
}

// TestRaceAcrossInstances: twenty concurrent redemptions of one code, then
// twenty concurrent completions of one flow, spread over three instances
// on one PostgreSQL: exactly one of each wins, as on one instance.
func TestRaceAcrossInstances(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	e := startThreeOnPostgres(t, srv, params{})
	raceRedeemAndComplete(t, e, srv)
	if n := len(pwdHistory(t, srv, "carol")); n != 1 {
		t.Fatalf("pwdHistory has %d entries after the race, want 1", n)
	}
}

// TestTOTPReplayAcrossInstances: one authenticator-app code sent to six
// reset flows at once, the calls spread over three instances on one
// PostgreSQL, is accepted once; the five replays are refused and audited,
// whichever instance took them.
func TestTOTPReplayAcrossInstances(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	e := startThreeOnPostgres(t, srv, params{Methods: totpMethods})
	peers := e.peers

	token := e.signIn("carol")
	app := e.addApp(token)
	s := currentStep() // codes of s and s+1 only
	e.must(200, e.api("POST", "/api/v1/methods/"+app.ID+"/verify", token, map[string]string{"code": stepCode(t, app.Secret, s)}), "verify app")
	flows, apps := make([]flow, 6), make([]string, 6)
	for i := range flows {
		flows[i], _ = e.startReset("carol")
		apps[i] = appOf(t, flows[i])
	}
	code := stepCode(t, app.Secret, s+1)
	statuses := race(len(flows), func(i int) int {
		f := flows[i]
		return e.verify(&f, apps[i], code).Status
	})
	if statuses[200] != 1 || statuses[422] != len(flows)-1 {
		t.Fatalf("one code in %d flows over three instances: %v", len(flows), statuses)
	}
	if time.Now().Unix()/30 > s+1 {
		t.Log("the step after the enrolment's ended during the test")
	}
	replays := 0
	for _, g := range append([]*env{e}, peers...) {
		replays += g.replaysAudited()
	}
	if replays != len(flows)-1 {
		t.Fatalf("%d replays audited over the three instances, want %d", replays, len(flows)-1)
	}
}
