package flow

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkeyhq/latchkey/store"
)

func testCeremony(t *testing.T, challenge string) (webauthn.SessionData, string) {
	t.Helper()
	sd := webauthn.SessionData{Challenge: challenge, RelyingPartyID: "sspr.example", UserID: []byte("user-1"),
		AllowedCredentialIDs: [][]byte{[]byte("cred-1")}, Expires: time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC),
		UserVerification: "preferred"}
	b, err := json.Marshal(sd)
	if err != nil {
		t.Fatal(err)
	}
	return sd, string(b)
}

// A state written and read back is the same state.
func TestFlowStateRoundTrip(t *testing.T) {
	sd, _ := testCeremony(t, "c1")
	before := "2026-01-02T03:04:05.123456789Z"
	st := flowState{
		Offered: []Offered{{ID: "m1", Type: "email", Hint: "a•••@e•••.com", real: true}, {ID: "m2", Type: MethodQuestions, Hint: questionsHint}},
		DN:      "uid=carol,ou=people,dc=example,dc=org", Acct: "acct:42", Bind: "bind-secret",
		Kinds: [][]string{{MethodTOTP, MethodWebAuthn}}, Types: []string{"email", MethodTOTP, MethodWebAuthn, MethodQuestions},
		Questions:       map[string][]Question{"m2": {{ID: "q1", Text: "First pet?"}, {ID: "q2", Text: "Street?"}}},
		PartialFailures: 2, Writing: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), PasswordSetBefore: &before,
		Recorded: "yes", Challenges: 3, Ceremonies: map[string]webauthn.SessionData{"m3": sd},
		other: map[string]string{"future_key": "kept"},
	}
	data, err := st.data(store.FlowReset)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeFlowState(data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Writing.Equal(st.Writing) {
		t.Fatalf("writing %v, want %v", got.Writing, st.Writing)
	}
	got.Writing = st.Writing
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, st)
	}

	// a registration flow of a passkey
	reg := flowState{Method: "m9", Registration: &sd, Label: "YubiKey"}
	data, err = reg.data(store.FlowRegister)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{keyLabel, keyMethod, keyPasskey}; !reflect.DeepEqual(sortedKeys(data), want) {
		t.Fatalf("registration keys %v, want %v", sortedKeys(data), want)
	}
	if got, err := decodeFlowState(data); err != nil || !reflect.DeepEqual(got, reg) {
		t.Fatalf("registration round trip: %+v, %v", got, err)
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// Flows written by the versions before the typed state (the maps below
// are what they stored, key by key) decode, and are written back with
// the same keys and values: instances of both versions share flows.
func TestFlowStateReadsOldFlows(t *testing.T) {
	sd, sdJSON := testCeremony(t, "old-challenge")
	cases := []struct {
		name string
		kind string
		data map[string]string
		want flowState
	}{{
		name: "decoy reset, just started",
		kind: store.FlowReset,
		data: map[string]string{"offered": `[{"i":"0a1b","t":"email","h":"j•••@g•••.com"},{"i":"2c3d","t":"sms","h":"+1 •••• ••42"}]`,
			"dn": "", "acct": "name:nobody", "bind": "b1"},
		want: flowState{Offered: []Offered{{ID: "0a1b", Type: "email", Hint: "j•••@g•••.com"}, {ID: "2c3d", Type: "sms", Hint: "+1 •••• ••42"}},
			Acct: "name:nobody", Bind: "b1"},
	}, {
		name: "real unlock with tiers, questions, passkey ceremony, partial failures",
		kind: store.FlowUnlock,
		data: map[string]string{"offered": `[{"i":"m1","t":"email","h":"c•••@h•••.example","r":true},{"i":"m2","t":"questions","h":"Security questions","r":true},{"i":"m3","t":"webauthn","h":"Passkey","r":true}]`,
			"dn": "uid=carol,dc=example", "acct": "acct:7", "bind": "b2",
			"kinds": `[["totp","webauthn"]]`, "types": `["email","webauthn","questions"]`,
			"questions":    `{"m2":[{"id":"q1","text":"First pet?"}]}`,
			"partial_fail": "3", "challenges": "2", "pk:m3": sdJSON},
		want: flowState{Offered: []Offered{{ID: "m1", Type: "email", Hint: "c•••@h•••.example", real: true},
			{ID: "m2", Type: "questions", Hint: "Security questions", real: true}, {ID: "m3", Type: "webauthn", Hint: "Passkey", real: true}},
			DN: "uid=carol,dc=example", Acct: "acct:7", Bind: "b2", Kinds: [][]string{{"totp", "webauthn"}},
			Types: []string{"email", "webauthn", "questions"}, Questions: map[string][]Question{"m2": {{ID: "q1", Text: "First pet?"}}},
			PartialFailures: 3, Challenges: 2, Ceremonies: map[string]webauthn.SessionData{"m3": sd}},
	}, {
		name: "reset claimed by a completion, from before the binding",
		kind: store.FlowReset,
		data: map[string]string{"offered": `[{"i":"m1","t":"totp","h":"Authenticator app","r":true}]`, "dn": "cn=x", "acct": "acct:8",
			"writing": "2026-03-04T05:06:07.000000008Z", "pw_set_before": ""},
		want: flowState{Offered: []Offered{{ID: "m1", Type: "totp", Hint: "Authenticator app", real: true}}, DN: "cn=x", Acct: "acct:8",
			Writing: time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC), PasswordSetBefore: new(string)},
	}, {
		name: "recorded by a version that marked flows",
		kind: store.FlowReset,
		data: map[string]string{"offered": `[]`, "dn": "", "acct": "acct:9", "recorded": "1"},
		want: flowState{Offered: []Offered{}, Acct: "acct:9", Recorded: "1"},
	}, {
		name: "registration of a code method",
		kind: store.FlowRegister,
		data: map[string]string{"method": "m4"},
		want: flowState{Method: "m4"},
	}, {
		name: "registration of a passkey",
		kind: store.FlowRegister,
		data: map[string]string{"method": "m5", "passkey": sdJSON, "label": "Laptop"},
		want: flowState{Method: "m5", Registration: &sd, Label: "Laptop"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeFlowState(c.data)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Writing.Equal(c.want.Writing) {
				t.Fatalf("writing %v, want %v", got.Writing, c.want.Writing)
			}
			got.Writing = c.want.Writing
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("decoded:\n got %+v\nwant %+v", got, c.want)
			}
			back, err := got.data(c.kind)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(back, c.data) {
				t.Fatalf("written back:\n got %v\nwant %v", back, c.data)
			}
		})
	}
}

// A value that does not decode is an error naming its key, never read as
// if the key were missing (as the map's readers did).
func TestFlowStateDecodeErrors(t *testing.T) {
	for key, bad := range map[string]string{"offered": "[{", "kinds": `{"a":1}`, "types": "[1]", "questions": "[]x",
		"partial_fail": "two", "challenges": "", "writing": "yesterday", "passkey": "{", "pk:m1": "null!"} {
		_, err := decodeFlowState(map[string]string{"acct": "acct:1", key: bad})
		if err == nil || !strings.Contains(err.Error(), `"`+key+`"`) {
			t.Errorf("%s=%q: error %v, want one naming the key", key, bad, err)
		}
	}
}

// A flow whose state does not decode is answered internal (and logged),
// not flow_expired or a flow read as empty.
func TestUnreadableFlowIsInternal(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := t.Context()
	f, err := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	if err != nil {
		t.Fatal(err)
	}
	row, err := tb.st.GetFlow(ctx, f.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	row.Data["offered"] = "[{"
	if err := tb.st.UpdateFlow(ctx, row); err != nil {
		t.Fatal(err)
	}
	_, err = tb.svc.Flow(ctx, "reset", f.ID)
	wantCode(t, err, CodeInternal)
}
