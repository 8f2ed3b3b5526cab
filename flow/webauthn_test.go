package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/internal/webauthntest"
	"github.com/latchkeyhq/latchkey/store"
)

var b64 = webauthntest.B64

// passkeyBed is a testbed with passkeys enabled.
func passkeyBed(t *testing.T) *testbed {
	return newTestbed(t, func(o *Options) { o.Eligibility.Methods = []string{"email", "sms", "webauthn"} })
}

// addPasskey signs user in and registers key as a passkey.
func (tb *testbed) addPasskey(t *testing.T, user string, key *flowtest.SoftKey) (store.Session, MethodView) {
	t.Helper()
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, user, tb.dir.Password(user), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tb.svc.BeginPasskey(ctx, sess, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := tb.svc.FinishPasskey(ctx, sess, pc.MethodID, key.MustCreate(pc.Options), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return sess, mv
}

// passkeyFlow starts a reset for user and returns it with the first
// passkey offered.
func (tb *testbed) passkeyFlow(t *testing.T, user string) (FlowView, string) {
	t.Helper()
	f, err := tb.svc.StartFlow(context.Background(), "reset", user, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Methods {
		if m.Type == MethodWebAuthn {
			return f, m.ID
		}
	}
	t.Fatalf("no passkey offered to %s: %+v", user, f.Methods)
	return f, ""
}

func (tb *testbed) assertionOptions(t *testing.T, flowID, method string) json.RawMessage {
	t.Helper()
	pc, err := tb.svc.SendFlowChallenge(context.Background(), "reset", flowID, method, Meta{})
	if err != nil || pc == nil {
		t.Fatalf("assertion options: %v %v", pc, err)
	}
	return pc.Options
}

func wantProblem(t *testing.T, err error, code, what string) {
	t.Helper()
	if err == nil || asProblem(err).Code != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// TestPasskeyRegistrationAndReset: a passkey registered with a software
// authenticator proves the account in a reset, the password is written,
// and the owner's list shows the passkey while the flow shows "Passkey".
func TestPasskeyRegistrationAndReset(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	key := flowtest.NewSoftKey(t)
	sess, mv := tb.addPasskey(t, "carol", key)
	if mv.Type != MethodWebAuthn || !mv.Verified || !strings.HasPrefix(mv.Hint, "Passkey (added ") {
		t.Fatalf("method after registration: %+v", mv)
	}
	ms, _ := tb.svc.Methods(ctx, sess)
	if len(ms) != 1 || ms[0].ID != mv.ID {
		t.Fatalf("methods: %+v", ms)
	}
	f, id := tb.passkeyFlow(t, "carol")
	if f.Methods[0].Hint != passkeyHint {
		t.Fatalf("the flow shows %q for a passkey", f.Methods[0].Hint)
	}
	opts := tb.assertionOptions(t, f.ID, id)
	var o struct {
		RPID  string `json:"rpId"`
		Allow []struct {
			ID         string   `json:"id"`
			Transports []string `json:"transports"`
		} `json:"allowCredentials"`
		UV string `json:"userVerification"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	if o.RPID != "sspr.example.org" || len(o.Allow) != 1 || o.Allow[0].ID != b64.EncodeToString(key.ID) || o.Allow[0].Transports != nil || o.UV != "preferred" {
		t.Fatalf("assertion options: %s", opts)
	}
	nf, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, key.MustGet(opts), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if nf.Remaining != 0 || nf.ID == f.ID {
		t.Fatalf("after the passkey: %+v", nf)
	}
	if err := tb.svc.CompleteFlow(ctx, "reset", nf.ID, "Brand-New-Pass-77", Meta{}); err != nil {
		t.Fatal(err)
	}
	if tb.dir.Password("carol") != "Brand-New-Pass-77" {
		t.Fatal("the password was not written")
	}
	// the counter the authenticator reached is kept
	meth, err := tb.st.GetMethod(ctx, "id-carol", mv.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := parsePasskey(meth.Secret)
	if err != nil || rec.Credential.Authenticator.SignCount != key.Count || key.Count == 0 || !meth.Verified ||
		meth.CreatedAt.Sub(mv.CreatedAt).Abs() > time.Millisecond {
		t.Fatalf("stored passkey after use: %+v %+v %v", meth, rec.Credential.Authenticator, err)
	}
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.gate"})
	if len(evs) != 1 || evs[0].Outcome != "passed" || evs[0].Details["type"] != MethodWebAuthn {
		t.Fatalf("gate events: %+v", evs)
	}
}

// TestPasskeyRegistrationChallengeSingleUse: a creation challenge serves
// one answer; replaying the same answer, or answering after the ceremony
// expired, is refused; and another session cannot finish it.
func TestPasskeyRegistrationChallengeSingleUse(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tb.svc.BeginPasskey(ctx, sess, "Work laptop", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	key := flowtest.NewSoftKey(t)
	answer := key.MustCreate(pc.Options)
	_, err = tb.svc.FinishPasskey(ctx, other, pc.MethodID, answer, Meta{})
	wantProblem(t, err, CodePasskeyFailed, "finishing from another session")
	mv, err := tb.svc.FinishPasskey(ctx, sess, pc.MethodID, answer, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if mv.Hint != "Work laptop" {
		t.Fatalf("label: %q", mv.Hint)
	}
	_, err = tb.svc.FinishPasskey(ctx, sess, pc.MethodID, answer, Meta{})
	wantProblem(t, err, CodePasskeyFailed, "the same answer again")

	// concurrent answers to one challenge: at most one is accepted
	pc, err = tb.svc.BeginPasskey(ctx, sess, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	second := flowtest.NewSoftKey(t)
	answer = second.MustCreate(pc.Options)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 4 {
		wg.Go(func() {
			if _, err := tb.svc.FinishPasskey(ctx, sess, pc.MethodID, answer, Meta{}); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent answers to one challenge accepted, want 1", ok)
	}

	// expired: the ceremony lives passkeyTimeout
	clk := flowtest.NewClock(time.Now().UTC())
	tb.svc.d.Now = clk.Now
	pc, err = tb.svc.BeginPasskey(ctx, sess, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(passkeyTimeout + time.Second)
	sess.AuthAt = clk.Now()
	_, err = tb.svc.FinishPasskey(ctx, sess, pc.MethodID, flowtest.NewSoftKey(t).MustCreate(pc.Options), Meta{})
	wantProblem(t, err, CodePasskeyFailed, "an expired ceremony")
}

// TestPasskeyRegistrationRefusals: the wrong origin, the wrong RP id, no
// user presence, a bad label and a stale password are refused, and nothing
// is stored.
func TestPasskeyRegistrationRefusals(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	sess, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		bend func(*flowtest.SoftKey)
	}{
		{"wrong origin", func(k *flowtest.SoftKey) { k.Origin = "https://evil.example.org" }},
		{"wrong RP id", func(k *flowtest.SoftKey) { k.RPID = "evil.example.org" }},
		{"other port", func(k *flowtest.SoftKey) { k.Origin = "https://sspr.example.org:8443" }},
		{"no user presence", func(k *flowtest.SoftKey) { k.NoUP = true }},
	} {
		pc, err := tb.svc.BeginPasskey(ctx, sess, "", Meta{})
		if err != nil {
			t.Fatal(err)
		}
		k := flowtest.NewSoftKey(t)
		tc.bend(k)
		_, err = tb.svc.FinishPasskey(ctx, sess, pc.MethodID, k.MustCreate(pc.Options), Meta{})
		wantProblem(t, err, CodePasskeyFailed, tc.name)
	}
	for _, label := range []string{strings.Repeat("x", passkeyLabelMax+1), "evil\u202egnp.exe", "a\nb"} {
		_, err := tb.svc.BeginPasskey(ctx, sess, label, Meta{})
		wantProblem(t, err, CodeInvalidRequest, "label "+label)
	}
	if ms, _ := tb.st.ListMethods(ctx, "id-carol"); len(ms) != 0 {
		t.Fatalf("refused passkeys were stored: %+v", ms)
	}
	sess.AuthAt = time.Now().Add(-time.Hour)
	_, err = tb.svc.BeginPasskey(ctx, sess, "", Meta{})
	wantProblem(t, err, CodeReauthRequired, "a stale password")
}

// TestPasskeyAssertionRefusals: in a reset, an assertion is refused for
// the wrong origin, the wrong RP id, another account's credential, a
// signature counter that does not grow (a clone), no user presence and a
// replayed challenge; every refusal counts toward the account's budget,
// and the right answer does not.
func TestPasskeyAssertionRefusals(t *testing.T) {
	tb := newTestbed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "webauthn"}
		o.Limits.CodeFailuresPerAccount = 50
	})
	ctx := context.Background()
	key := flowtest.NewSoftKey(t)
	tb.addPasskey(t, "carol", key)
	ivansKey := flowtest.NewSoftKey(t)
	tb.addPasskey(t, "alice", ivansKey)

	try := func(name string, answer func(opts json.RawMessage) []byte) {
		t.Helper()
		f, id := tb.passkeyFlow(t, "carol")
		opts := tb.assertionOptions(t, f.ID, id)
		_, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, answer(opts), Meta{})
		wantProblem(t, err, CodePasskeyFailed, name)
	}
	bent := func(bend func(*flowtest.SoftKey)) func(json.RawMessage) []byte {
		return func(opts json.RawMessage) []byte {
			k := *key
			bend(&k)
			b := k.MustGet(opts)
			key.Count = k.Count
			return b
		}
	}
	try("wrong origin", bent(func(k *flowtest.SoftKey) { k.Origin = "https://evil.example.org" }))
	try("wrong RP id", bent(func(k *flowtest.SoftKey) { k.RPID = "evil.example.org" }))
	try("no user presence", bent(func(k *flowtest.SoftKey) { k.NoUP = true }))
	try("another account's credential", func(opts json.RawMessage) []byte { return ivansKey.MustGet(opts) })
	try("not JSON", func(json.RawMessage) []byte { return []byte("[1,2]") })

	// the right answer works once; its replay is refused
	f, id := tb.passkeyFlow(t, "carol")
	opts := tb.assertionOptions(t, f.ID, id)
	answer := key.MustGet(opts)
	nf, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, answer, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f2, id2 := tb.passkeyFlow(t, "carol")
	tb.assertionOptions(t, f2.ID, id2)
	_, err = tb.svc.VerifyFlowPasskey(ctx, "reset", f2.ID, id2, answer, Meta{})
	wantProblem(t, err, CodePasskeyFailed, "a replayed assertion in another flow")
	_, err = tb.svc.VerifyFlowPasskey(ctx, "reset", nf.ID, id, key.MustGet(opts), Meta{})
	wantProblem(t, err, CodePasskeyFailed, "a second proof in a proven flow")

	// a clone: the counter goes back, or does not move
	try("counter regression", bent(func(k *flowtest.SoftKey) { k.Count -= 3 }))
	try("counter unchanged", bent(func(k *flowtest.SoftKey) { k.SameCount = true }))

	// no options asked for: nothing to answer
	f3, id3 := tb.passkeyFlow(t, "carol")
	_, err = tb.svc.VerifyFlowPasskey(ctx, "reset", f3.ID, id3, answer, Meta{})
	wantProblem(t, err, CodePasskeyFailed, "an assertion without a challenge")

	n, _ := tb.st.Count(ctx, "codefail:acct:id-carol", tb.svc.o.Limits.Window, time.Now())
	if n != 10 {
		t.Fatalf("the account's budget counted %d tries, want every refused one (10; the registration and the right answer are taken back)", n)
	}
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.gate", AccountID: "id-carol"})
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Details["reason"]]++
	}
	if reasons["sign_count"] != 2 || reasons["assertion"] != 5 || reasons["no_ceremony"] != 2 || reasons["malformed"] != 1 {
		t.Fatalf("gate failure reasons: %v", reasons)
	}
}

// TestPasskeyBudget: wrong assertions spend the account's budget of wrong
// codes; over it, even the right passkey is refused, in a real flow of the
// account (one flow for every try: the start budget is not what refuses).
func TestPasskeyBudget(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	key := flowtest.NewSoftKey(t)
	tb.addPasskey(t, "carol", key)
	f, id := tb.passkeyFlow(t, "carol")
	if raw, err := tb.st.GetFlow(ctx, f.ID, time.Now()); err != nil || raw.AccountID != "id-carol" {
		t.Fatalf("carol's flow is not real: %+v %v", raw, err)
	}
	// registering the passkey was a right try: it spent nothing. One wrong
	// try in another flow spends one, so that this flow's challenges
	// (maxFlowChallenges) last to the right passkey over budget.
	limit, window := tb.svc.o.Limits.CodeFailuresPerAccount, tb.svc.o.Limits.Window
	if n, _ := tb.st.Count(ctx, "codefail:acct:id-carol", window, time.Now()); n != 0 {
		t.Fatalf("registering the passkey left %d tries counted, want 0 (a right one is taken back)", n)
	}
	g, gid := tb.passkeyFlow(t, "carol")
	tb.assertionOptions(t, g.ID, gid)
	_, err := tb.svc.VerifyFlowPasskey(ctx, "reset", g.ID, gid, []byte(`{}`), Meta{})
	wantProblem(t, err, CodePasskeyFailed, "a wrong assertion in another flow")
	spent := 1
	for i := spent; i < limit; i++ {
		tb.assertionOptions(t, f.ID, id)
		_, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, []byte(`{}`), Meta{})
		wantProblem(t, err, CodePasskeyFailed, "a wrong assertion")
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "blocked"}); len(evs) != 0 {
		t.Fatalf("blocked within the budget: %+v", evs)
	}
	if n, _ := tb.st.Count(ctx, "codefail:acct:id-carol", window, time.Now()); n != limit {
		t.Fatalf("the budget counted %d tries, want %d", n, limit)
	}
	opts := tb.assertionOptions(t, f.ID, id)
	_, err = tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, key.MustGet(opts), Meta{})
	wantProblem(t, err, CodePasskeyFailed, "the right passkey over budget")
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "blocked"})
	if len(evs) != 1 || evs[0].Outcome != "code_budget" || evs[0].AccountID != "id-carol" {
		t.Fatalf("blocked events %+v, want one code_budget for carol", evs)
	}
	if evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "reset.gate", AccountID: "id-carol"}); len(evs) != limit {
		t.Fatalf("%d gate events, want one per wrong try (%d)", len(evs), limit)
	}
	// a fresh budget (another window) lets the same passkey through
	tb.svc.d.Now = func() time.Time { return time.Now().Add(window + time.Minute) }
	f, id = tb.passkeyFlow(t, "carol")
	if _, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, key.MustGet(tb.assertionOptions(t, f.ID, id)), Meta{}); err != nil {
		t.Fatalf("the right passkey within a fresh budget: %v", err)
	}
}

// TestPasskeyCoolingOff: a passkey added moments ago cannot alone
// authorise a reset.
func TestPasskeyCoolingOff(t *testing.T) {
	tb := newTestbed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "webauthn"}
		o.CoolingOff = time.Hour
	})
	ctx := context.Background()
	key := flowtest.NewSoftKey(t)
	tb.addPasskey(t, "carol", key)
	f, id := tb.passkeyFlow(t, "carol")
	// said at the proof, not after the password is typed
	_, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, key.MustGet(tb.assertionOptions(t, f.ID, id)), Meta{})
	wantProblem(t, err, CodeMethodTooNew, "a new passkey alone")
	if asProblem(err).UsableAt.IsZero() {
		t.Fatal("no time the passkey becomes usable")
	}
	err = tb.svc.CompleteFlow(ctx, "reset", f.ID, "Brand-New-Pass-77", Meta{})
	wantProblem(t, err, CodeNotVerified, "the refused proof was not recorded")
}

// TestPasskeysCountOnce: two passkeys of one account are one method for a
// tier that requires two.
func TestPasskeysCountOnce(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	k1, k2 := flowtest.NewSoftKey(t), flowtest.NewSoftKey(t)
	sess, _ := tb.addPasskey(t, "alice", k1) // alice's tier requires 2
	pc, err := tb.svc.BeginPasskey(ctx, sess, "Backup key", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pc.Options), b64.EncodeToString(k1.ID)) {
		t.Fatalf("the registered passkey is not excluded: %s", pc.Options)
	}
	k2.Handle = nil
	if _, err := tb.svc.FinishPasskey(ctx, sess, pc.MethodID, k2.MustCreate(pc.Options), Meta{}); err != nil {
		t.Fatal(err)
	}
	f, err := tb.svc.StartFlow(ctx, "reset", "alice", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range f.Methods {
		if m.Type == MethodWebAuthn && m.ID != "" {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("offered: %+v", f.Methods)
	}
	nf, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, ids[0], k1.MustGet(tb.assertionOptions(t, f.ID, ids[0])), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.SendFlowChallenge(ctx, "reset", nf.ID, ids[1], Meta{}); err == nil {
		t.Fatal("a second passkey was asked for in a flow that has proven one")
	}
	// even if both were proven, completion counts them once
	fl, err := tb.st.GetFlow(ctx, nf.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fl.Verified = append(fl.Verified, ids[1])
	if err := tb.st.UpdateFlow(ctx, fl); err != nil {
		t.Fatal(err)
	}
	err = tb.svc.CompleteFlow(ctx, "reset", nf.ID, "Brand-New-Pass-77", Meta{})
	wantProblem(t, err, CodeNotVerified, "two passkeys for a tier requiring two methods")
}

// TestPasskeyDecoys: a name without an account gets passkey entries when
// the real ones have them, assertion options of the same shape with a
// stable credential id, and a verification that always fails.
func TestPasskeyDecoys(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	key := flowtest.NewSoftKey(t)
	tb.addPasskey(t, "carol", key)
	f, real := tb.passkeyFlow(t, "carol")
	realOpts := tb.assertionOptions(t, f.ID, real)

	// the built-in pattern offers passkeys to some unknown names
	var name, id string
	for i := 0; i < 200 && id == ""; i++ {
		n := "nobody" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		df, err := tb.svc.StartFlow(ctx, "reset", n, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range df.Methods {
			if m.Type == MethodWebAuthn {
				name, id = n, m.ID
				if m.Hint != passkeyHint {
					t.Fatalf("fake passkey hint %q", m.Hint)
				}
			}
		}
	}
	if id == "" {
		t.Fatal("no unknown name among 200 was offered a passkey")
	}
	shape := func(opts json.RawMessage) (keys []string, credID string) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(opts, &m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			keys = append(keys, k)
		}
		var o struct {
			Allow []map[string]any `json:"allowCredentials"`
		}
		_ = json.Unmarshal(opts, &o)
		if len(o.Allow) != 1 || len(o.Allow[0]) != 2 {
			t.Fatalf("allowCredentials: %s", opts)
		}
		return keys, o.Allow[0]["id"].(string)
	}
	rk, _ := shape(realOpts)
	var first string
	for range 2 {
		df, err := tb.svc.StartFlow(ctx, "reset", name, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		opts := tb.assertionOptions(t, df.ID, id)
		dk, cred := shape(opts)
		if strings.Join(sortedCopy(dk), ",") != strings.Join(sortedCopy(rk), ",") {
			t.Fatalf("fake options %v, real %v", dk, rk)
		}
		if first != "" && cred != first {
			t.Fatal("the fake credential id changes between flows")
		}
		first = cred
		_, err = tb.svc.VerifyFlowPasskey(ctx, "reset", df.ID, id, key.MustGet(opts), Meta{})
		wantProblem(t, err, CodePasskeyFailed, "a fake passkey")
	}
	if raw, _ := b64.DecodeString(first); len(raw) < 16 {
		t.Fatalf("fake credential id %q", first)
	}
	// pattern weights over {email, sms, webauthn}: 5 of the 12 weight
	// units hold a passkey (2 alone, 3 in pairs) -> about 42 %
	const names = 300
	withKey := 0
	for i := range names {
		set := fakeSet(t, tb, fmt.Sprintf("nobody-%d", i))
		if slices.ContainsFunc(set, func(m Offered) bool { return m.Type == MethodWebAuthn }) {
			withKey++
		}
	}
	if withKey < names/4 || withKey > names*6/10 {
		t.Fatalf("%d of %d fake sets hold a passkey", withKey, names)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string{}, s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

// TestPasskeySignCountRace: assertions checked against the same stored
// counter are kept at most once: the same answer sent twice at once to its
// flow, and one counter value signed for two flows at once (a clone racing
// its original), each have exactly one accepted; the stored counter is the
// winner's.
func TestPasskeySignCountRace(t *testing.T) {
	tb := newTestbed(t, func(o *Options) {
		o.Eligibility.Methods = []string{"email", "webauthn"}
		o.Limits.CodeFailuresPerAccount = 500
		o.Limits.StartsPerAccount, o.Limits.StartsPerIP, o.Limits.StartsTotal = 500, 500, 500
	})
	ctx := context.Background()
	key := flowtest.NewSoftKey(t)
	_, mv := tb.addPasskey(t, "carol", key)
	accepted := func(n int, verify func(i int) error) int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				if verify(i) == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		return ok
	}
	for round := range 5 {
		// one answer, sent 4 times at once to its flow
		f, id := tb.passkeyFlow(t, "carol")
		answer := key.MustGet(tb.assertionOptions(t, f.ID, id))
		if ok := accepted(4, func(int) error {
			_, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, answer, Meta{})
			return err
		}); ok != 1 {
			t.Fatalf("round %d: the same assertion accepted %d times at once, want 1", round, ok)
		}
		// one counter value signed for 4 flows, answered at once
		next := key.Count + 1
		flows, answers := make([]FlowView, 4), make([][]byte, 4)
		for i := range flows {
			flows[i], id = tb.passkeyFlow(t, "carol")
			key.Count = next - 1
			answers[i] = key.MustGet(tb.assertionOptions(t, flows[i].ID, id))
		}
		if ok := accepted(4, func(i int) error {
			_, err := tb.svc.VerifyFlowPasskey(ctx, "reset", flows[i].ID, id, answers[i], Meta{})
			return err
		}); ok != 1 {
			t.Fatalf("round %d: one counter value accepted in %d flows at once, want 1", round, ok)
		}
		meth, err := tb.st.GetMethod(ctx, "id-carol", mv.ID)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := parsePasskey(meth.Secret)
		if err != nil || rec.Credential.Authenticator.SignCount != next || !meth.Verified {
			t.Fatalf("round %d: stored passkey %+v %v, want counter %d", round, rec.Credential.Authenticator, err, next)
		}
	}
}

// TestPasskeyCredentialOfAnotherAccount: a credential id that another
// account registered is refused (the store finds it through the blind
// index of the record's "index" member), nothing is stored, and the owner's
// passkey still works; the index follows the record when the counter moves.
func TestPasskeyCredentialOfAnotherAccount(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	key := flowtest.NewSoftKey(t)
	_, mv := tb.addPasskey(t, "carol", key)
	meth, err := tb.st.GetMethod(ctx, "id-carol", mv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(meth.Secret, `"index":"`+b64.EncodeToString(key.ID)+`"`) {
		t.Fatalf("the stored record has no index member: %s", meth.Secret)
	}
	if n, err := tb.st.CountAccountsByAddress(ctx, MethodWebAuthn, b64.EncodeToString(key.ID)); err != nil || n != 1 {
		t.Fatalf("accounts with carol's credential id: %d %v", n, err)
	}

	sess, err := tb.svc.SignIn(ctx, "alice", tb.dir.Password("alice"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tb.svc.BeginPasskey(ctx, sess, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	thief := flowtest.NewSoftKey(t) // another key claiming carol's credential id
	thief.ID = append([]byte{}, key.ID...)
	_, err = tb.svc.FinishPasskey(ctx, sess, pc.MethodID, thief.MustCreate(pc.Options), Meta{})
	wantProblem(t, err, CodePasskeyFailed, "another account's credential id")
	if ms, _ := tb.st.ListMethods(ctx, sess.AccountID); len(ms) != 0 {
		t.Fatalf("the refused passkey was stored: %+v", ms)
	}
	evs, _ := tb.st.ListAudit(ctx, store.AuditQuery{Type: "registration.method_verified", AccountID: sess.AccountID})
	if len(evs) != 1 || evs[0].Details["reason"] != "credential_in_use" {
		t.Fatalf("audit: %+v", evs)
	}
	// alice's own new key is fine
	pc, err = tb.svc.BeginPasskey(ctx, sess, "", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.svc.FinishPasskey(ctx, sess, pc.MethodID, flowtest.NewSoftKey(t).MustCreate(pc.Options), Meta{}); err != nil {
		t.Fatal(err)
	}
	// carol's passkey still resets, and is still found by its id after
	// the counter moved
	f, id := tb.passkeyFlow(t, "carol")
	if _, err := tb.svc.VerifyFlowPasskey(ctx, "reset", f.ID, id, key.MustGet(tb.assertionOptions(t, f.ID, id)), Meta{}); err != nil {
		t.Fatal(err)
	}
	if n, err := tb.st.CountAccountsByAddress(ctx, MethodWebAuthn, b64.EncodeToString(key.ID)); err != nil || n != 1 {
		t.Fatalf("accounts with carol's credential id after use: %d %v", n, err)
	}
}
