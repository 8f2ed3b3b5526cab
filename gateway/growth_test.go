package gateway

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestMetricsKeepNoClientChosenLabels: methods and paths anyone sends do
// not become metric labels. Every method outside the fixed set is refused
// with 405 before anything runs, and the counters keep only known methods
// and registered routes, however many distinct ones arrive (issue 17, WB-2:
// the method string, up to 16 KiB, was a label that was never pruned).
func TestMetricsKeepNoClientChosenLabels(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	long := strings.Repeat("A", 4000)
	for i := 0; i < 300; i++ {
		w := c.do(httptest.NewRequest(fmt.Sprintf("M%s%d", long, i), "/reset", nil))
		if w.Code != 405 {
			t.Fatalf("method %d: %d, want 405", i, w.Code)
		}
		if w.Header().Get("X-Request-Id") == "" || w.Header().Get("Content-Security-Policy") == "" {
			t.Fatalf("a refused method lost the headers every answer carries: %v", w.Header())
		}
		c.get(fmt.Sprintf("/no-such-page-%d", i))
		c.do(httptest.NewRequest("DELETE", fmt.Sprintf("/api/v1/nothing/%d", i), nil))
	}
	for _, m := range []string{"OPTIONS", "TRACE", "CONNECT", "get", "PROPFIND"} {
		if w := c.do(httptest.NewRequest(m, "/api/v1/reset", nil)); w.Code != 405 {
			t.Fatalf("%s: %d, want 405", m, w.Code)
		}
	}
	tb.svc.stats.mu.Lock()
	series, routes := len(tb.svc.stats.requests), len(tb.svc.stats.seconds)
	labels := 0
	for k := range tb.svc.stats.requests {
		labels += len(k[0]) + len(k[1]) + len(k[2])
	}
	tb.svc.stats.mu.Unlock()
	if series > 5 || routes > 3 || labels > 200 {
		t.Fatalf("%d request series (%d bytes of labels) and %d route series after 900 junk requests, want a handful", series, labels, routes)
	}
	body := c.get("/metrics").Body.String()
	if strings.Contains(body, long[:100]) || strings.Contains(body, "no-such-page") || strings.Contains(body, "/nothing/") || len(body) > 4000 {
		t.Fatalf("client-chosen labels in /metrics (%d bytes)", len(body))
	}
}

// TestPasskeyChallengesBudgetedPerFlow: asking for passkey assertion
// options writes the flow and needs no proof, so a flow has a budget of
// asks, the same for a real passkey and a fake one; past it the answer is
// too_many and nothing is written (issue 17, WB-6).
func TestPasskeyChallengesBudgetedPerFlow(t *testing.T) {
	tb := passkeyBed(t)
	ctx := context.Background()
	tb.addPasskey(t, "carol", newSoftKey(t))
	real, realID := tb.passkeyFlow(t, "carol")
	var fake FlowView
	var fakeID string
	for i := 0; i < 200 && fakeID == ""; i++ {
		df, err := tb.svc.StartFlow(ctx, "reset", fmt.Sprintf("nobody-%d", i), Meta{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range df.Methods {
			if m.Type == MethodWebAuthn {
				fake, fakeID = df, m.ID
			}
		}
	}
	if fakeID == "" {
		t.Fatal("no unknown name among 200 was offered a passkey")
	}
	for _, c := range []struct {
		what       string
		flow, meth string
	}{{"real", real.ID, realID}, {"fake", fake.ID, fakeID}} {
		before, err := tb.st.GetFlow(ctx, c.flow, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			pc, err := tb.svc.SendFlowChallenge(ctx, "reset", c.flow, c.meth, Meta{ClientIP: "198.51.100.9"})
			if i < maxFlowChallenges {
				if err != nil || pc == nil {
					t.Fatalf("%s passkey, ask %d: %v", c.what, i+1, err)
				}
				continue
			}
			wantCode(t, err, CodeTooMany)
		}
		after, err := tb.st.GetFlow(ctx, c.flow, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if writes := after.Version - before.Version; writes != maxFlowChallenges {
			t.Fatalf("%s passkey: 50 asks wrote the flow %d times, want %d", c.what, writes, maxFlowChallenges)
		}
	}
}
