package docs_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkeyhq/latchkey/internal/webauthntest"
)

// liveQuestions are the admin's security questions of the live gateway.
var liveQuestions = []string{
	"What was the name of your first pet?",
	"In what town or city was your first job?",
	"What was the name of the street you grew up on?",
	"What was the first concert you went to?",
}

// liveAnswers answer liveQuestions by text.
var liveAnswers = map[string]string{
	liveQuestions[0]: "Saffron Teapot",
	liveQuestions[1]: "Quartz Meadow",
	liveQuestions[2]: "Velvet Otter",
	liveQuestions[3]: "Cobalt Lantern",
}

// totpCode is an authenticator app's code for secret at t.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawJSON is a JSON value of an answer, marshalled again.
func rawJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMethodKindsLive registers a method of every kind (email, sms, totp,
// webauthn, questions) over the API and resets and unlocks with them, so
// that every kind's answers (a passkey's 201 {id, options} and 202
// {options}, the questions, passkey_failed, ...) are checked against
// openapi.yaml by l.do like every other answer.
func TestMethodKindsLive(t *testing.T) {
	l := newLive(t)
	tok := l.register(t) // email
	kinds := map[string]string{}

	// sms
	a := l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "sms", "address": "+44 7700 900123"}, "")
	if a.status != 201 {
		t.Fatalf("add sms: %d %s", a.status, a.raw)
	}
	kinds["sms"] = a.obj()["id"].(string)
	if a := l.do("POST", "/api/v1/methods/"+kinds["sms"]+"/verify", tok, map[string]string{"code": l.mail.smsCode(t, "+447700900123", 1)}, ""); a.status != 200 {
		t.Fatalf("verify sms: %d %s", a.status, a.raw)
	}

	// an authenticator app: the seed once, verified with its code
	a = l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "totp"}, "")
	if a.status != 201 || a.obj()["secret"] == nil || a.obj()["qr_png"] == nil || a.obj()["otpauth_url"] == nil {
		t.Fatalf("add totp: %d %s", a.status, a.raw)
	}
	kinds["totp"] = a.obj()["id"].(string)
	secret := a.obj()["secret"].(string)
	if a := l.do("POST", "/api/v1/methods/"+kinds["totp"]+"/verify", tok, map[string]string{"code": totpCode(t, secret, time.Now())}, ""); a.status != 200 || a.obj()["type"] != "totp" {
		t.Fatalf("verify totp: %d %s", a.status, a.raw)
	}

	// a passkey: 201 {id, options}, a refused attestation, then a good one
	key, err := webauthntest.New("https://sspr.example.org")
	if err != nil {
		t.Fatal(err)
	}
	a = l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "webauthn", "label": "Work laptop"}, "")
	if a.status != 201 || a.obj()["options"] == nil {
		t.Fatalf("add webauthn: %d %s", a.status, a.raw)
	}
	kinds["webauthn"] = a.obj()["id"].(string)
	options := rawJSON(t, a.obj()["options"])
	liar := *key
	liar.Origin = "https://evil.example"
	bad, err := liar.Create(options)
	if err != nil {
		t.Fatal(err)
	}
	if a := l.do("POST", "/api/v1/methods/"+kinds["webauthn"]+"/verify", tok, map[string]json.RawMessage{"credential": bad}, ""); a.status != 422 || a.errCode() != "passkey_failed" {
		t.Fatalf("an attestation from another origin: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "webauthn"}, "")
	if a.status != 201 {
		t.Fatalf("add webauthn again: %d %s", a.status, a.raw)
	}
	kinds["webauthn"] = a.obj()["id"].(string)
	cred, err := key.Create(rawJSON(t, a.obj()["options"]))
	if err != nil {
		t.Fatal(err)
	}
	if a := l.do("POST", "/api/v1/methods/"+kinds["webauthn"]+"/verify", tok, map[string]json.RawMessage{"credential": cred}, ""); a.status != 200 || a.obj()["type"] != "webauthn" || a.obj()["verified"] != true {
		t.Fatalf("verify webauthn: %d %s", a.status, a.raw)
	}

	// security questions: the choices, then three answers
	a = l.do("GET", "/api/v1/questions", tok, nil, "")
	if a.status != 200 {
		t.Fatalf("questions: %d %s", a.status, a.raw)
	}
	var settings struct {
		Questions []struct{ ID, Text string }
	}
	_ = json.Unmarshal(a.raw, &settings)
	var answers []map[string]string
	for _, q := range settings.Questions[:3] {
		answers = append(answers, map[string]string{"question": q.ID, "answer": liveAnswers[q.Text]})
	}
	a = l.do("POST", "/api/v1/methods", tok, map[string]any{"type": "questions", "answers": answers}, "")
	if a.status != 201 {
		t.Fatalf("add questions: %d %s", a.status, a.raw)
	}
	kinds["questions"] = a.obj()["id"].(string)

	a = l.do("GET", "/api/v1/methods", tok, nil, "")
	var listed []string
	for _, m := range a.body.([]any) {
		listed = append(listed, m.(map[string]any)["type"].(string))
	}
	slices.Sort(listed)
	if !slices.Equal(listed, []string{"email", "questions", "sms", "totp", "webauthn"}) {
		t.Fatalf("methods: %s", a.raw)
	}

	// a reset with the passkey and the questions
	a = l.do("POST", "/api/v1/reset", "", map[string]string{"username": "carol"}, "")
	flow := a.obj()["flow"].(string)
	if n := len(a.obj()["methods"].([]any)); a.status != 200 || n != 5 {
		t.Fatalf("reset offers %s", a.raw)
	}
	for _, typ := range []string{"sms", "totp", "questions"} {
		// nothing to send to an app or questions: 202 without a body
		if a := l.do("POST", "/api/v1/reset/send", "", map[string]string{"flow": flow, "method": kinds[typ]}, ""); a.status != 202 {
			t.Fatalf("send to %s: %d %s", typ, a.status, a.raw)
		}
	}
	if a := l.do("POST", "/api/v1/reset/questions", "", map[string]string{"flow": flow, "method": kinds["questions"]}, ""); a.status != 409 || a.errCode() != "not_verified" {
		t.Fatalf("questions before a proof: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/reset/questions", "", map[string]string{"flow": flow, "method": kinds["totp"]}, ""); a.status != 400 {
		t.Fatalf("questions of an app: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/reset/send", "", map[string]string{"flow": flow, "method": kinds["webauthn"]}, "")
	if a.status != 202 || a.obj()["options"] == nil {
		t.Fatalf("send to the passkey: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/reset/verify", "", map[string]any{"flow": flow, "method": kinds["webauthn"], "credential": map[string]any{}}, ""); a.status != 422 || a.errCode() != "passkey_failed" {
		t.Fatalf("an empty assertion: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/reset/send", "", map[string]string{"flow": flow, "method": kinds["webauthn"]}, "")
	assertion, err := key.Get(rawJSON(t, a.obj()["options"]))
	if err != nil {
		t.Fatal(err)
	}
	a = l.do("POST", "/api/v1/reset/verify", "", map[string]any{"flow": flow, "method": kinds["webauthn"], "credential": json.RawMessage(assertion)}, "")
	if a.status != 200 || a.obj()["remaining"] != 0.0 {
		t.Fatalf("verify the passkey: %d %s", a.status, a.raw)
	}
	flow = a.obj()["flow"].(string)
	a = l.do("POST", "/api/v1/reset/questions", "", map[string]string{"flow": flow, "method": kinds["questions"]}, "")
	if a.status != 200 {
		t.Fatalf("questions: %d %s", a.status, a.raw)
	}
	var asked struct {
		Questions []struct{ ID, Text string }
	}
	_ = json.Unmarshal(a.raw, &asked)
	reply := func(wrong bool) []map[string]string {
		var out []map[string]string
		for i, q := range asked.Questions {
			ans := liveAnswers[q.Text]
			if wrong && i == 0 {
				ans = "Not The Answer"
			}
			out = append(out, map[string]string{"question": q.ID, "answer": ans})
		}
		return out
	}
	if a := l.do("POST", "/api/v1/reset/verify", "", map[string]any{"flow": flow, "method": kinds["questions"], "answers": reply(true)}, ""); a.status != 422 || a.errCode() != "wrong_answers" {
		t.Fatalf("wrong answers: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/reset/verify", "", map[string]any{"flow": flow, "method": kinds["questions"], "answers": reply(false)}, "")
	if v, _ := a.obj()["verified"].([]any); a.status != 200 || len(v) != 2 {
		t.Fatalf("right answers: %d %s", a.status, a.raw)
	}
	flow = a.obj()["flow"].(string)
	if a := l.do("POST", "/api/v1/reset/policy", "", map[string]string{"flow": flow}, ""); a.status != 200 {
		t.Fatalf("policy: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/reset/complete", "", map[string]string{"flow": flow, "password": newPassword}, ""); a.status != 200 {
		t.Fatalf("complete: %d %s", a.status, a.raw)
	}

	// an unlock with the app (the next step's code: each code once)
	a = l.do("POST", "/api/v1/unlock", "", map[string]string{"username": "carol"}, "")
	flow = a.obj()["flow"].(string)
	if a := l.do("POST", "/api/v1/unlock/send", "", map[string]string{"flow": flow, "method": kinds["webauthn"]}, ""); a.status != 202 || a.obj()["options"] == nil {
		t.Fatalf("unlock: send to the passkey: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/unlock/verify", "", map[string]string{"flow": flow, "method": kinds["totp"], "code": totpCode(t, secret, time.Now().Add(30*time.Second))}, "")
	if a.status != 200 {
		t.Fatalf("unlock: verify the app: %d %s", a.status, a.raw)
	}
	flow = a.obj()["flow"].(string)
	if a := l.do("POST", "/api/v1/unlock/questions", "", map[string]string{"flow": flow, "method": kinds["questions"]}, ""); a.status != 200 {
		t.Fatalf("unlock: questions: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/unlock/complete", "", map[string]string{"flow": flow}, ""); a.status != 200 {
		t.Fatalf("unlock: %d %s", a.status, a.raw)
	}

	// made-up methods of every kind answer the same shapes
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < 5; i++ {
		a := l.do("POST", "/api/v1/reset", "", map[string]string{"username": "nobody-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}, "")
		flow := a.obj()["flow"].(string)
		for _, m := range a.obj()["methods"].([]any) {
			m := m.(map[string]any)
			typ, id := m["type"].(string), m["id"].(string)
			seen[typ] = true
			s := l.do("POST", "/api/v1/reset/send", "", map[string]string{"flow": flow, "method": id}, "")
			if s.status != 202 || (typ == "webauthn") != (s.obj()["options"] != nil) {
				t.Fatalf("send to a made-up %s: %d %s", typ, s.status, s.raw)
			}
		}
	}
	if len(seen) != 5 {
		t.Errorf("made-up kinds seen: %v", seen)
	}
}
