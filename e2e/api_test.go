package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

func TestAPIOpenLDAP(t *testing.T) {
	parallel(t)
	runAPISuite(t, dirtest.StartOpenLDAP(t), 1)
}

func TestAPIActiveDirectory(t *testing.T) {
	parallel(t)
	runAPISuite(t, dirtest.StartSamba(t), 1)
}

// TestAPIScaleOut runs the whole API suite against three instances sharing
// one PostgreSQL store, every call going to the next instance in turn: each
// flow, session and budget hops between processes.
func TestAPIScaleOut(t *testing.T) {
	parallel(t)
	runAPISuite(t, dirtest.StartOpenLDAP(t), 3)
}

// register signs user in and registers and verifies an email address and,
// when phone is not empty, a mobile number. It returns the method ids.
func (e *env) register(user, email, phone string) (emailID, smsID string) {
	e.t.Helper()
	r := e.must(200, e.api("POST", "/api/v1/session", "", map[string]string{"username": user, "password": e.dir.Password(user)}), "sign in "+user)
	token := r.str("token")
	e.secrets = append(e.secrets, token)
	if token == "" || r.str("expires_at") == "" {
		e.t.Fatalf("session answer %s", r.Body)
	}
	r = e.must(201, e.api("POST", "/api/v1/methods", token, map[string]string{"type": "email", "address": email}), "add email")
	emailID = r.str("id")
	code := e.mailCode(email)
	r = e.must(200, e.api("POST", "/api/v1/methods/"+emailID+"/verify", token, map[string]string{"code": code}), "verify email")
	if r.JSON["verified"] != true {
		e.t.Fatalf("email not verified: %s", r.Body)
	}
	if phone != "" {
		r = e.must(201, e.api("POST", "/api/v1/methods", token, map[string]string{"type": "sms", "address": phone}), "add sms")
		smsID = r.str("id")
		e164 := notifytest.E164(phone)
		code = e.smsCode(e164)
		e.must(200, e.api("POST", "/api/v1/methods/"+smsID+"/verify", token, map[string]string{"code": code}), "verify sms")
	}
	r = e.must(200, e.api("GET", "/api/v1/methods", token, nil), "list methods")
	var list []map[string]any
	json.Unmarshal(r.Body, &list)
	want := 1
	if phone != "" {
		want = 2
	}
	if len(list) != want {
		e.t.Fatalf("methods: %s", r.Body)
	}
	for _, m := range list {
		if m["verified"] != true || strings.Contains(m["hint"].(string), email) {
			e.t.Fatalf("method %v", m)
		}
	}
	return emailID, smsID
}

type flow struct {
	ID       string
	Required int
	Methods  []map[string]any
}

func (e *env) startReset(user string) (flow, resp) {
	e.t.Helper()
	r := e.must(200, e.api("POST", "/api/v1/reset", "", map[string]string{"username": user}), "reset start "+user)
	f := flow{ID: r.str("flow")}
	e.secrets = append(e.secrets, f.ID)
	if n, ok := r.JSON["required"].(float64); ok {
		f.Required = int(n)
	}
	for _, m := range r.JSON["methods"].([]any) {
		f.Methods = append(f.Methods, m.(map[string]any))
	}
	return f, r
}

func (e *env) verifyByEmail(f *flow, methodID, addr string) resp {
	e.t.Helper()
	e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": methodID}), "send")
	return e.verify(f, methodID, e.mailCode(addr))
}

// verify submits a code for a reset flow; a proven method gives the flow a
// new id, which f takes.
func (e *env) verify(f *flow, methodID, code string) resp {
	e.t.Helper()
	r := e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": f.ID, "method": methodID, "code": code})
	if r.Status == 200 {
		next := r.str("flow")
		if next == "" || next == f.ID {
			e.t.Fatalf("the flow id did not change: %s", r.Body)
		}
		f.ID = next
		e.secrets = append(e.secrets, next)
	}
	return r
}

func (e *env) complete(f flow, pw string) resp {
	return e.api("POST", "/api/v1/reset/complete", "", map[string]string{"flow": f.ID, "password": pw})
}

// settleMail waits until no new message has reached the mail server for
// noSendWait (longer than the outbox holds a message) and returns how many
// it holds.
func settleMail(t testing.TB, mail *notifytest.Mailpit) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last := -1
	for ctx.Err() == nil {
		n, err := mail.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == last {
			return n
		}
		last = n
		time.Sleep(noSendWait)
	}
	t.Fatal("mail kept arriving for 30 s")
	return 0
}

// settleSends waits until neither mailpit nor the SMS server has received
// anything new for noSendWait.
func settleSends(t testing.TB, mail *notifytest.Mailpit, sms *notifytest.FakeTwilio) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := -1
	for time.Now().Before(deadline) {
		n := settleMail(t, mail) + len(sms.Messages())
		if n == last {
			return
		}
		last = n
	}
	t.Fatal("mail or SMS kept arriving for 30 s")
}

func violations(r resp) []string {
	var out []string
	for _, v := range r.JSON["errors"].([]any) {
		out = append(out, v.(map[string]any)["code"].(string))
	}
	return out
}

// runAPISuite drives the JSON API of `instances` gateways: one on SQLite,
// or several sharing a PostgreSQL store and taking the calls in turn.
func runAPISuite(t *testing.T, srv *dirtest.Server, instances int) {
	mail, sms := startMail(t)
	addToGroup(t, srv, "heidi", "staff")
	for _, u := range []string{"ivan", "frank", "grace", "twin1"} {
		addToGroup(t, srv, u, "staff")
	}
	var p params
	if instances > 1 {
		pg := pgtest.Start(t)
		p.Store, p.SecretKey = postgresStore(pg, pg.NewDatabase(t)), make([]byte, 48)
		rand.Read(p.SecretKey)
	}
	e := startGateway(t, srv, mail, sms, p)
	for i := 1; i < instances; i++ {
		e.peers = append(e.peers, startGateway(t, srv, mail, sms, p))
	}
	isAD := srv.Flavor == directory.ActiveDirectory
	ctx := context.Background()

	t.Run("nested group member registers email and SMS and resets with one method", func(t *testing.T) {
		e.t = t
		emailID, _ := e.register("carol", "carol.home@example.net", "+44 7700 900003")
		f, _ := e.startReset("carol")
		if f.Required != 1 || len(f.Methods) != 2 {
			t.Fatalf("flow %+v", f)
		}
		old := f
		r := e.must(200, e.verifyByEmail(&f, emailID, "carol.home@example.net"), "verify")
		if r.JSON["remaining"].(float64) != 0 {
			t.Fatalf("remaining %s", r.Body)
		}
		// the flow id from before the proof is dead
		if r := e.complete(old, "Violet-Meadow-Lantern-7"); r.Status != 410 || r.errCode() != "flow_expired" {
			t.Fatalf("completing with the id from before the proof: %d %s", r.Status, r.Body)
		}
		e.must(200, e.complete(f, "Violet-Meadow-Lantern-7"), "complete")
		if err := srv.UserBind("carol", "Violet-Meadow-Lantern-7"); err != nil {
			t.Fatalf("new password does not bind: %v", err)
		}
		// told on every channel: the directory mail, the registered email, the phone
		for _, to := range []string{"carol.home@example.net", "carol@" + domain(srv)} {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			m, err := mail.WaitForMessage(cctx, to)
			cancel()
			if err != nil || !strings.Contains(m.Subject, "password was reset") {
				t.Fatalf("no reset notice to %s: %v", to, err)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := sms.WaitFor(cctx, "+447700900003")
		cancel()
		if err != nil || !strings.Contains(m.Body, "password was reset") {
			t.Fatalf("no SMS notice: %v %q", err, m.Body)
		}
		// the flow is finished
		r = e.complete(f, "Another-Fine-Password-9")
		if r.Status != 410 || r.errCode() != "flow_expired" {
			t.Fatalf("completing twice: %d %s", r.Status, r.Body)
		}
		mail.DeleteAll(ctx)
	})

	t.Run("tier requires two different methods", func(t *testing.T) {
		e.t = t
		emailID, smsID := e.register("alice", "alice.home@example.net", "+44 7700 900001")
		f, _ := e.startReset("alice")
		// the tier's number shows only after a first proof (before, it
		// would tell anyone that alice is a real administrator)
		if f.Required != 1 {
			t.Fatalf("required %d before a proof", f.Required)
		}
		r := e.must(200, e.verifyByEmail(&f, emailID, "alice.home@example.net"), "verify email")
		if r.JSON["remaining"].(float64) != 1 {
			t.Fatalf("remaining %s", r.Body)
		}
		// the same method again does not count twice
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": emailID}), "send again")
		r = e.complete(f, "Quiet-River-Stone-42")
		if r.Status != 409 || r.errCode() != "not_verified" {
			t.Fatalf("complete with one of two: %d %s", r.Status, r.Body)
		}
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": smsID}), "send sms")
		code := e.smsCode("+447700900001")
		r = e.must(200, e.verify(&f, smsID, code), "verify sms")
		if r.JSON["remaining"].(float64) != 0 {
			t.Fatalf("remaining %s", r.Body)
		}
		e.must(200, e.complete(f, "Quiet-River-Stone-42"), "complete")
		if err := srv.UserBind("alice", "Quiet-River-Stone-42"); err != nil {
			t.Fatal(err)
		}
		mail.DeleteAll(ctx)
		sms.Reset()
	})

	t.Run("directory refuses a password and the user retries", func(t *testing.T) {
		e.t = t
		emailID, _ := e.register("heidi", "heidi.home@example.net", "")
		f, _ := e.startReset("heidi")
		e.must(200, e.verifyByEmail(&f, emailID, "heidi.home@example.net"), "verify")
		// passes the gateway's rules (8+), not heidi's directory policy (14+)
		r := e.complete(f, "Short-Pass-1!")
		if r.Status != 422 || !reflect.DeepEqual(violations(r), []string{"directory_too_short"}) {
			t.Fatalf("too short: %d %s", r.Status, r.Body)
		}
		// the gateway's own rules come first
		r = e.complete(f, "heidi-2024")
		if r.Status != 422 || !contains(violations(r), "contains_username") {
			t.Fatalf("local rules: %d %s", r.Status, r.Body)
		}
		// the policy shown before typing includes the directory's
		r = e.must(200, e.api("POST", "/api/v1/reset/policy", "", map[string]string{"flow": f.ID}), "policy")
		if !strings.Contains(string(r.Body), "at least 14 characters") {
			t.Fatalf("policy %s", r.Body)
		}
		// one effective list: the stricter minimum (14) in one line
		var lengths []string
		for _, v := range r.JSON["effective"].([]any) {
			if m := v.(map[string]any)["message"].(string); strings.Contains(strings.ToLower(m), "at least") {
				lengths = append(lengths, m)
			}
		}
		if len(lengths) != 1 || !strings.HasPrefix(lengths[0], "At least 14 characters") || r.JSON["min_length"] != float64(14) {
			t.Fatalf("effective rules: %s", r.Body)
		}
		e.must(200, e.complete(f, "Long-Enough-Meadow-Lantern-7"), "retry")
		if err := srv.UserBind("heidi", "Long-Enough-Meadow-Lantern-7"); err != nil {
			t.Fatal(err)
		}
		// the current password again: history (Samba skips history on resets)
		f, _ = e.startReset("heidi")
		e.must(200, e.verifyByEmail(&f, emailID, "heidi.home@example.net"), "verify")
		r = e.complete(f, "Long-Enough-Meadow-Lantern-7")
		if isAD {
			e.must(200, r, "Samba 4.17 accepts a reset to a password in history")
		} else if r.Status != 422 || !reflect.DeepEqual(violations(r), []string{"directory_in_history"}) {
			t.Fatalf("history: %d %s", r.Status, r.Body)
		}
		mail.DeleteAll(ctx)
	})

	t.Run("ineligible, unknown, excluded, disabled and no-method users look alike and get nothing", func(t *testing.T) {
		e.t = t
		settleMail(t, mail) // notices of the earlier steps may still be on their way
		mail.DeleteAll(ctx)
		sms.Reset()
		// judy is in cycle-a (excluded); erin in no group; ivan disabled;
		// bob eligible without methods; nobody does not exist
		users := []string{"erin", "nobody-here", "judy", "ivan", "bob"}
		var shapes []string
		for _, u := range users {
			f, r := e.startReset(u)
			keys := make([]string, 0, len(r.JSON))
			for k := range r.JSON {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			shapes = append(shapes, strings.Join(keys, ","))
			if f.Required != 1 || len(f.Methods) < 1 || len(f.ID) < 40 {
				t.Fatalf("%s: flow %+v", u, f)
			}
			for _, m := range f.Methods {
				if len(m["id"].(string)) != 22 || !strings.Contains(m["hint"].(string), "•") {
					t.Fatalf("%s: method %v", u, m)
				}
				e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": m["id"].(string)}), "send "+u)
				r := e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": f.ID, "method": m["id"].(string), "code": "123456"})
				if r.Status != 422 || r.errCode() != "invalid_code" {
					t.Fatalf("%s: verify %d %s", u, r.Status, r.Body)
				}
			}
			r = e.complete(f, "Whatever-Password-1")
			if r.Status != 409 || r.errCode() != "not_verified" {
				t.Fatalf("%s: complete %d %s", u, r.Status, r.Body)
			}
		}
		for _, s := range shapes[1:] {
			if s != shapes[0] {
				t.Fatalf("answer shapes differ: %v", shapes)
			}
		}
		// the same fake set on every ask
		a, _ := e.startReset("nobody-here")
		b, _ := e.startReset("nobody-here")
		if !reflect.DeepEqual(a.Methods, b.Methods) {
			t.Fatalf("decoys change: %v vs %v", a.Methods, b.Methods)
		}
		// nothing was sent to anyone
		time.Sleep(noSendWait)
		if list, err := mail.Messages(ctx); err != nil || len(list) != 0 {
			t.Fatalf("mail sent: %v %v", list, err)
		}
		if msgs := sms.Messages(); len(msgs) != 0 {
			t.Fatalf("sms sent: %v", msgs)
		}
		// and an ineligible user cannot register either
		r := e.api("POST", "/api/v1/session", "", map[string]string{"username": "erin", "password": srv.Password("erin")})
		if r.Status != 403 || r.errCode() != "not_eligible" {
			t.Fatalf("erin sign in: %d %s", r.Status, r.Body)
		}
		if isAD {
			// privileged accounts are excluded by default, even in the group
			addToGroup(t, srv, "Administrator", "staff")
			r := e.api("POST", "/api/v1/session", "", map[string]string{"username": "Administrator", "password": srv.AdminPassword})
			if r.Status != 403 || r.errCode() != "not_eligible" {
				t.Fatalf("Administrator sign in: %d %s", r.Status, r.Body)
			}
		}
		r = e.api("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": "wrong-password"})
		r2 := e.api("POST", "/api/v1/session", "", map[string]string{"username": "nobody-here", "password": "wrong-password"})
		if r.Status != 401 || r2.Status != 401 || r.errCode() != "sign_in_failed" || r2.errCode() != "sign_in_failed" {
			t.Fatalf("sign-in failures differ: %s / %s", r.Body, r2.Body)
		}
	})

	t.Run("codes are single use and die after five wrong tries", func(t *testing.T) {
		e.t = t
		emailID := registeredEmail(t, e, "frank", "frank.home@example.net")
		f, _ := e.startReset("frank")
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": emailID}), "send")
		code := e.mailCode("frank.home@example.net")
		e.must(200, e.verify(&f, emailID, code), "verify")
		r := e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": f.ID, "method": emailID, "code": code})
		if r.Status != 422 || r.errCode() != "invalid_code" {
			t.Fatalf("code used twice: %d %s", r.Status, r.Body)
		}
		// a code from one flow does not work in another
		g, _ := e.startReset("frank")
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": g.ID, "method": emailID}), "send")
		code = e.mailCode("frank.home@example.net")
		h, _ := e.startReset("frank")
		r = e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": h.ID, "method": emailID, "code": code})
		if r.Status != 422 {
			t.Fatalf("code of another flow: %d %s", r.Status, r.Body)
		}
		// five wrong tries kill the code
		for i := 0; i < 5; i++ {
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			r = e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": g.ID, "method": emailID, "code": wrong})
			if r.Status != 422 {
				t.Fatalf("wrong try %d: %d %s", i, r.Status, r.Body)
			}
		}
		r = e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": g.ID, "method": emailID, "code": code})
		if r.Status != 422 || r.errCode() != "invalid_code" {
			t.Fatalf("right code after five wrong: %d %s", r.Status, r.Body)
		}
	})

	t.Run("an expired code is refused", func(t *testing.T) {
		e.t = t
		// grace registers on a gateway with the usual code lifetime (a
		// 1 s registration code expired before it was typed back on a
		// loaded CI machine), then the 1 s gateway takes over its store
		key := make([]byte, 48)
		rand.Read(key)
		db := filepath.Join(t.TempDir(), "latchkey.db")
		reg := startGateway(t, srv, mail, sms, params{SQLitePath: db, SecretKey: key})
		emailID := registeredEmail(t, reg, "grace", "grace.home@example.net")
		if code := reg.stop(); code != 0 {
			t.Fatalf("the registration gateway exited %d", code)
		}
		short := startGateway(t, srv, mail, sms, params{CodeTTL: time.Second, SQLitePath: db, SecretKey: key})
		f, _ := short.startReset("grace")
		short.must(202, short.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": emailID}), "send")
		code := short.mailCode("grace.home@example.net")
		time.Sleep(1500 * time.Millisecond)
		r := short.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": f.ID, "method": emailID, "code": code})
		if r.Status != 422 || r.errCode() != "invalid_code" {
			t.Fatalf("expired code: %d %s", r.Status, r.Body)
		}
	})

	t.Run("unlock and change", func(t *testing.T) {
		e.t = t
		emailID := registeredEmail(t, e, "twin1", "twin1.home@example.net")
		for i := 0; i < 3; i++ {
			srv.UserBind("twin1", "Bad-Guess-1")
		}
		if err := srv.UserBind("twin1", srv.Password("twin1")); err == nil {
			t.Fatal("twin1 not locked")
		}
		r := e.must(200, e.api("POST", "/api/v1/unlock", "", map[string]string{"username": "twin1"}), "unlock start")
		fid := r.str("flow")
		e.must(202, e.api("POST", "/api/v1/unlock/send", "", map[string]string{"flow": fid, "method": emailID}), "send")
		code := e.mailCode("twin1.home@example.net")
		r = e.must(200, e.api("POST", "/api/v1/unlock/verify", "", map[string]string{"flow": fid, "method": emailID, "code": code}), "verify")
		fid = r.str("flow")
		e.must(200, e.api("POST", "/api/v1/unlock/complete", "", map[string]string{"flow": fid}), "unlock")
		if err := srv.UserBind("twin1", srv.Password("twin1")); err != nil {
			t.Fatalf("after unlock: %v", err)
		}
		r = e.api("POST", "/api/v1/change", "", map[string]string{"username": "twin1", "old_password": "Wrong-Old-1", "new_password": "Golden-Harbor-Kite-5"})
		if r.Status != 401 || r.errCode() != "sign_in_failed" {
			t.Fatalf("change with a wrong password: %d %s", r.Status, r.Body)
		}
		e.must(200, e.api("POST", "/api/v1/change", "", map[string]string{"username": "twin1", "old_password": srv.Password("twin1"), "new_password": "Golden-Harbor-Kite-5"}), "change")
		if err := srv.UserBind("twin1", "Golden-Harbor-Kite-5"); err != nil {
			t.Fatalf("after change: %v", err)
		}
	})

	if len(e.peers) > 0 {
		t.Run("every instance took part in the flows", func(t *testing.T) {
			// a whole reset on each instance in turn (twin2's, used
			// nowhere else): which instance the round robin gave the
			// completions above depends on how many calls each flow took,
			// and all of them could land on one
			e.t = t
			addToGroup(t, srv, "twin2", "staff")
			emailID := registeredEmail(t, e, "twin2", "twin2.home@example.net")
			peers := e.peers
			e.peers = nil // e's own calls go to e alone for this part
			defer func() { e.peers = peers }()
			for i, inst := range append([]*env{e}, peers...) {
				inst.t = t
				pw := "Every-Instance-Kite-" + strconv.Itoa(i+3)
				f, _ := inst.startReset("twin2")
				inst.must(200, inst.verifyByEmail(&f, emailID, "twin2.home@example.net"), "verify on instance "+strconv.Itoa(i))
				inst.must(200, inst.complete(f, pw), "complete on instance "+strconv.Itoa(i))
				if err := srv.UserBind("twin2", pw); err != nil {
					t.Fatalf("instance %d: the new password does not bind: %v", i, err)
				}
			}
			for i, inst := range append([]*env{e}, peers...) {
				b, _ := readFile(inst.audit)
				for _, ev := range []string{`"event":"reset.started"`, `"event":"reset.gate"`, `"event":"reset.completed"`} {
					if !strings.Contains(b, ev) {
						t.Fatalf("instance %d audited no %s: the calls did not hop", i, ev)
					}
				}
			}
		})
	}

	t.Run("logs hold no secrets", func(t *testing.T) {
		e.t = t
		paths := []string{e.log, e.audit}
		for _, peer := range e.peers {
			paths = append(paths, peer.log, peer.audit)
		}
		for _, path := range paths {
			b, _ := readFile(path)
			secrets := append([]string{srv.ServicePassword, twilioToken, "Violet-Meadow-Lantern-7", "Quiet-River-Stone-42",
				"Long-Enough-Meadow-Lantern-7", "Golden-Harbor-Kite-5", "carol.home@example.net", "+447700900003"}, e.secrets...)
			if len(e.secrets) < 20 {
				t.Fatalf("only %d codes, tokens and flow ids collected", len(e.secrets))
			}
			for _, secret := range secrets {
				if strings.Contains(b, secret) {
					t.Fatalf("%s contains %q", path, secret)
				}
			}
		}
	})
}

func registeredEmail(t *testing.T, e *env, user, addr string) string {
	id, _ := e.register(user, addr, "")
	return id
}

func domain(srv *dirtest.Server) string {
	if srv.Flavor == directory.ActiveDirectory {
		return "example.test"
	}
	return "example.org"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
