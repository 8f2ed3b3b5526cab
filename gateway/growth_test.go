package gateway

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
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
