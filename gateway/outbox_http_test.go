package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// stallOutbox writes n codes that wait an hour, and waits until the
// service sees the queue busy (or, with busy false, reads the n codes).
func stallOutbox(t *testing.T, tb *testbed, n int, busy bool) {
	t.Helper()
	now := time.Now()
	for i := range n {
		// due in an hour: waiting, as behind a stalled mail server
		m := store.OutboxMessage{ID: fmt.Sprintf("stalled-%d-%d", now.UnixNano(), i), Kind: store.OutboxCode,
			Channel: store.MethodEmail, Body: []byte("{}"), CreatedAt: now, NotBefore: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)}
		if err := tb.st.EnqueueMessage(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		q := tb.svc.Queue()
		if q.Busy == busy && q.PendingCodes >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue state %+v, want busy %v", q, busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBusyOutboxAnswersEveryNameAlike: with the outbox over max_pending, a
// code asked for a real name and for an unknown one gets the same 503
// "busy" with Retry-After: 60 from the API, and the page says so; no code
// is written to the outbox.
func TestBusyOutboxAnswersEveryNameAlike(t *testing.T) {
	tb := newTestbed(t, func(o *flow.Options) { o.Outbox.MaxPending = 2 })
	tb.enroll(t, "carol", "carol@home.example")
	sentBefore := len(tb.rec.Emails())
	stallOutbox(t, tb, 2, true)
	c := newClient(t, tb)
	answers := map[string]string{}
	for _, name := range []string{"carol", "nobody-here"} {
		w := c.api("POST", "/api/v1/reset", `{"username":"`+name+`"}`, nil)
		var f struct {
			Flow    string
			Methods []struct{ ID string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &f); err != nil || w.Code != 200 || len(f.Methods) == 0 {
			t.Fatalf("%s: start %d %s", name, w.Code, w.Body)
		}
		w = c.api("POST", "/api/v1/reset/send", `{"flow":"`+f.Flow+`","method":"`+f.Methods[0].ID+`"}`, nil)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "60" || !strings.Contains(w.Body.String(), `"code":"busy"`) {
			t.Fatalf("%s: send with the outbox busy: %d %v %s", name, w.Code, w.Header(), w.Body)
		}
		answers[name] = regexp.MustCompile(`"request_id":"[^"]*"`).ReplaceAllString(w.Body.String(), "")
	}
	if answers["carol"] != answers["nobody-here"] {
		t.Fatalf("busy answers differ by name:\n%s\n%s", answers["carol"], answers["nobody-here"])
	}
	b := newClient(t, tb)
	b.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	page := b.get("/reset/methods").Body.String()
	mid := regexp.MustCompile(`name="method" value="([0-9a-f]{22})"`).FindStringSubmatch(page)[1]
	w := b.post("/reset/methods", "/reset/send", url.Values{"method": {mid}}, nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "60" ||
		!strings.Contains(w.Body.String(), "We are sending many codes right now: try again in a minute") {
		t.Fatalf("page with the outbox busy: %d %v %s", w.Code, w.Header(), w.Body)
	}
	// nothing was written: no code can leave
	st, err := tb.st.OutboxStats(t.Context(), time.Now())
	if err != nil || st.PendingCodes != 2 || len(tb.rec.Emails()) != sentBefore {
		t.Fatalf("outbox after busy answers: %+v %v, %d sent", st, err, len(tb.rec.Emails())-sentBefore)
	}
}

// TestOutboxMetricsAndReadiness: /metrics shows the queue and what was
// sent by channel; /readyz stays 200 and says the outbox is degraded
// while the oldest pending code has waited longer than
// outbox.degraded_after (here one held by a worker elsewhere).
func TestOutboxMetricsAndReadiness(t *testing.T) {
	tb := newTestbed(t, func(o *flow.Options) { o.Outbox.DegradedAfter = time.Second })
	tb.enroll(t, "carol", "carol@home.example") // a code and a notice, sent
	c := newClient(t, tb)
	if w := c.get("/readyz"); w.Code != 200 || !strings.Contains(w.Body.String(), `"outbox":"ok"`) {
		t.Fatalf("readyz: %d %s", w.Code, w.Body)
	}
	now := time.Now()
	m := store.OutboxMessage{ID: "held-elsewhere", Kind: store.OutboxCode, Channel: store.MethodEmail, Body: []byte("{}"),
		CreatedAt: now.Add(-10 * time.Second), NotBefore: now.Add(-10 * time.Second), ExpiresAt: now.Add(time.Hour)}
	if err := tb.st.EnqueueMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	// a worker of another instance holds it (and hangs)
	if got, err := tb.st.ClaimMessages(t.Context(), store.MethodEmail, now, time.Hour, 1); err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("claim: %+v %v", got, err)
	}
	for deadline := time.Now().Add(10 * time.Second); !tb.svc.QueueDegraded(); {
		if time.Now().After(deadline) {
			t.Fatalf("not degraded: %+v", tb.svc.Queue())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w := c.get("/readyz"); w.Code != 200 || !strings.Contains(w.Body.String(), `"outbox":"degraded"`) {
		t.Fatalf("readyz with an old pending code: %d %s", w.Code, w.Body)
	}
	body := c.get("/metrics").Body.String()
	for _, want := range []string{
		`latchkey_outbox_pending{kind="code"} 1`,
		`latchkey_outbox_pending{kind="notice"} 0`,
		`latchkey_outbox_messages_total{channel="email",outcome="sent"} 2`,
		`latchkey_outbox_messages_total{channel="email",outcome="expired"} 0`,
		`latchkey_outbox_busy 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s in\n%s", want, body)
		}
	}
	if !regexp.MustCompile(`latchkey_outbox_oldest_code_seconds (1[0-9]|[2-9][0-9])`).MatchString(body) {
		t.Errorf("oldest code age missing or under 10 s:\n%s", body)
	}
}

// TestBusyOutboxRefusesANewMethodBeforeStoringIt: adding an address while
// the outbox is busy answers 503 busy and stores no method (no
// unverified leftover, no budget spent); once it is not busy the same
// address is added and its code sent.
func TestBusyOutboxRefusesANewMethodBeforeStoringIt(t *testing.T) {
	tb := newTestbed(t, func(o *flow.Options) { o.Outbox.MaxPending = 1 })
	sess, err := tb.svc.SignIn(t.Context(), "carol", tb.dir.Password("carol"), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	stallOutbox(t, tb, 1, true)
	if _, err := tb.svc.AddMethod(t.Context(), sess, "email", "carol@home.example", flow.Meta{}); flow.AsProblem(err).Code != flow.CodeBusy {
		t.Fatalf("add while busy: %v", err)
	}
	if ms, err := tb.st.ListMethods(t.Context(), sess.AccountID); err != nil || len(ms) != 0 {
		t.Fatalf("methods stored while busy: %+v %v", ms, err)
	}
}
