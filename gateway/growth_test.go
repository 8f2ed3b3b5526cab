package gateway

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
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
	tb.srv.stats.mu.Lock()
	series, routes := len(tb.srv.stats.requests), len(tb.srv.stats.seconds)
	labels := 0
	for k := range tb.srv.stats.requests {
		labels += len(k[0]) + len(k[1]) + len(k[2])
	}
	tb.srv.stats.mu.Unlock()
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
	tb.addPasskey(t, "carol", flowtest.NewSoftKey(t))
	real, realID := tb.passkeyFlow(t, "carol")
	var fake flow.FlowView
	var fakeID string
	for i := 0; i < 200 && fakeID == ""; i++ {
		df, err := tb.svc.StartFlow(ctx, "reset", fmt.Sprintf("nobody-%d", i), flow.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range df.Methods {
			if m.Type == flow.MethodWebAuthn {
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
			pc, err := tb.svc.SendFlowChallenge(ctx, "reset", c.flow, c.meth, flow.Meta{ClientIP: "198.51.100.9"})
			if i < flow.MaxFlowChallenges {
				if err != nil || pc == nil {
					t.Fatalf("%s passkey, ask %d: %v", c.what, i+1, err)
				}
				continue
			}
			wantCode(t, err, flow.CodeTooMany)
		}
		after, err := tb.st.GetFlow(ctx, c.flow, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if writes := after.Version - before.Version; writes != flow.MaxFlowChallenges {
			t.Fatalf("%s passkey: 50 asks wrote the flow %d times, want %d", c.what, writes, flow.MaxFlowChallenges)
		}
	}
}

// TestAuditRowsFromRequestsWithoutProofAreSampled: CSRF refusals and other
// events anyone can cause without a proof are stored at most
// flow.AuditSampleRows times per kind and client address per window; the rest
// are counted into one summary row per kind and address, stored once the
// window has ended. Every event keeps its audit line (issue 17, WB-6).
func TestAuditRowsFromRequestsWithoutProofAreSampled(t *testing.T) {
	tb := newTestbed(t, nil)
	clk := flowtest.NewClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	tb.clock = clk.Now
	lines := &flowtest.SyncBuffer{}
	tb.audits.set(slog.NewJSONHandler(lines, nil))
	ctx := context.Background()
	c := newClient(t, tb)
	for _, remote := range []string{"192.0.2.1:1", "192.0.2.2:1"} {
		c.remote = remote
		for i := 0; i < 50; i++ {
			req := httptest.NewRequest("POST", "/reset", strings.NewReader("username=carol"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if w := c.do(req); w.Code != 403 {
				t.Fatalf("a form post without a token: %d", w.Code)
			}
		}
	}
	for i := 0; i < 30; i++ { // failed sign-ins are sampled too
		tb.svc.SignIn(ctx, fmt.Sprintf("nobody-%d", i), "wrong", flow.Meta{ClientIP: "192.0.2.3"})
	}
	rows := func(typ, outcome, ip string) (n int, summaries []store.AuditEvent) {
		t.Helper()
		evs, err := tb.st.ListAudit(ctx, store.AuditQuery{Type: typ, Limit: store.MaxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Outcome == outcome && e.ClientIP == ip {
				if e.Details["summary"] != "" {
					summaries = append(summaries, e)
				} else {
					n++
				}
			}
		}
		return n, summaries
	}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if n, sums := rows("blocked", "csrf", ip); n != flow.AuditSampleRows || len(sums) != 0 {
			t.Fatalf("%s: %d csrf rows and %d summaries in the window, want %d and none", ip, n, len(sums), flow.AuditSampleRows)
		}
	}
	if n, _ := rows("sign_in", "failed", "192.0.2.3"); n != flow.AuditSampleRows {
		t.Fatalf("%d failed sign-in rows, want %d", n, flow.AuditSampleRows)
	}
	if got := strings.Count(lines.String(), `"outcome":"csrf"`); got != 100 {
		t.Fatalf("%d csrf audit lines, want one per refusal (100)", got)
	}
	// the window ends: one summary per kind and address with the count
	clk.Add(time.Hour)
	tb.svc.FlushAudit(ctx)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		_, sums := rows("blocked", "csrf", ip)
		if len(sums) != 1 || sums[0].Details["count"] != "40" || sums[0].Details["since"] != "2026-12-06T10:00:00Z" {
			t.Fatalf("%s: summaries %+v, want one counting 40", ip, sums)
		}
	}
	if _, sums := rows("sign_in", "failed", "192.0.2.3"); len(sums) != 1 || sums[0].Details["count"] != "20" {
		t.Fatalf("failed sign-in summaries %+v", sums)
	}
	// a new window stores rows again, and a flush stores nothing twice
	c.remote = "192.0.2.1:1"
	req := httptest.NewRequest("POST", "/reset", strings.NewReader("username=carol"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c.do(req)
	tb.svc.FlushAudit(ctx)
	if n, sums := rows("blocked", "csrf", "192.0.2.1"); n != flow.AuditSampleRows+1 || len(sums) != 1 {
		t.Fatalf("next window: %d rows, %d summaries", n, len(sums))
	}
}

// TestJunkRequestsKeepMemoryAndStoreFlat sends 100,000 requests without a
// proof (unknown methods with long names, form posts without a token,
// starts and sign-ins past their budgets, passkey challenges past a flow's
// budget, unknown paths) from IPv4 and IPv6 clients through the real
// handler and SQLite store, over two budget windows, and checks that the
// heap after GC and the store (rows and pages) stay flat: what the first
// 10,000 requests left is, within a small margin, what 100,000 leave
// (issue 17, WB-2 and WB-6).
func TestJunkRequestsKeepMemoryAndStoreFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 requests")
	}
	tb := newTestbed(t, func(o *flow.Options) {
		o.Eligibility.Methods = []string{"email", "sms", "webauthn"}
		o.Limits.StartsPerIP, o.Limits.StartsTotal, o.Limits.SignInsPerIP = 5, 40, 5
	})
	clk := flowtest.NewClock(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	tb.clock = clk.Now
	ctx := context.Background()
	// a flow offering a fake passkey (its id is all a junk sender needs)
	var flowID, passkeyID string
	for i := 0; passkeyID == ""; i++ {
		if i == 200 {
			t.Fatal("no fake passkey among 200 unknown names")
		}
		f, err := tb.svc.StartFlow(ctx, "reset", fmt.Sprintf("nobody-%d", i), flow.Meta{ClientIP: fmt.Sprintf("10.0.%d.1", i)})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range f.Methods {
			if m.Type == flow.MethodWebAuthn {
				flowID, passkeyID = f.ID, m.ID
			}
		}
	}
	clk.Add(time.Hour) // the set-up's starts are not the junk's

	db, err := sql.Open("sqlite", "file:"+tb.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type snapshot struct {
		heap                                  uint64
		audit, flows, counters, pages, series int
	}
	snap := func() snapshot {
		var s snapshot
		for q, p := range map[string]*int{"SELECT count(*) FROM audit": &s.audit, "SELECT count(*) FROM flows": &s.flows,
			"SELECT count(*) FROM counters": &s.counters, "PRAGMA page_count": &s.pages} {
			if err := db.QueryRow(q).Scan(p); err != nil {
				t.Fatal(err)
			}
		}
		tb.srv.stats.mu.Lock()
		s.series = len(tb.srv.stats.requests)
		tb.srv.stats.mu.Unlock()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.heap = ms.HeapAlloc
		return s
	}
	clients := make([]string, 16)
	for i := range 8 {
		clients[i] = fmt.Sprintf("198.51.100.%d:4000", i+1)
		clients[8+i] = fmt.Sprintf("[2001:db8:42:%x00::%x]:4000", i, i+1) // eight /56s of one /48
	}
	long := strings.Repeat("X", 3000)
	c := newClient(t, tb)
	send := func(i int) {
		c.remote = clients[i%len(clients)]
		var req *http.Request
		switch i % 6 {
		case 0: // a method of its own, 3 KB long
			req = httptest.NewRequest("M"+long+strconv.Itoa(i), "/reset", nil)
		case 1: // a form post without a token
			req = httptest.NewRequest("POST", "/reset", strings.NewReader("username=junk"+strconv.Itoa(i)))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case 2:
			req = httptest.NewRequest("POST", "/api/v1/reset", strings.NewReader(`{"username":"junk`+strconv.Itoa(i)+`"}`))
		case 3:
			req = httptest.NewRequest("POST", "/api/v1/session", strings.NewReader(`{"username":"junk`+strconv.Itoa(i)+`","password":"wrong"}`))
		case 4:
			req = httptest.NewRequest("POST", "/api/v1/reset/send", strings.NewReader(`{"flow":"`+flowID+`","method":"`+passkeyID+`"}`))
		case 5:
			req = httptest.NewRequest("GET", "/junk/"+strconv.Itoa(i), nil)
		}
		if req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if w := c.do(req); w.Code < 200 || w.Code >= 500 {
			t.Fatalf("request %d (kind %d): %d %s", i, i%6, w.Code, w.Body)
		}
	}
	const total, warm, window = 100000, 10000, 60000
	var atWarm, beforeRoll snapshot
	for i := 0; i < total; i++ {
		send(i)
		switch i + 1 {
		case warm:
			atWarm = snap()
		case window:
			beforeRoll = snap()
			// the next window, as latchkey serve sees it: purge and flush
			clk.Add(time.Hour)
			if _, err := tb.st.Purge(ctx, clk.Now()); err != nil {
				t.Fatal(err)
			}
			tb.svc.FlushAudit(ctx)
		}
	}
	clk.Add(time.Hour)
	tb.svc.FlushAudit(ctx)
	end := snap()
	t.Logf("after %d: %+v; after %d: %+v; after %d and the last flush: %+v", warm, atWarm, window, beforeRoll, total, end)

	// within one window, 50,000 more requests stored nothing more
	if beforeRoll.audit > atWarm.audit+5 || beforeRoll.flows > atWarm.flows || beforeRoll.counters > atWarm.counters+5 {
		t.Fatalf("the store grew within a window: %+v -> %+v", atWarm, beforeRoll)
	}
	// over both windows: what bounded windows store, whatever the traffic
	// (per window at most flow.AuditSampleTotal sampled rows, two events per
	// start within starts_total, and a summary per kind and client)
	bound := 2 * (flow.AuditSampleTotal + 2*40 + 6*len(clients))
	if end.audit > bound || end.flows > 2*40+1 {
		t.Fatalf("%d audit rows and %d flows after %d junk requests, want at most %d and %d", end.audit, end.flows, total, bound, 2*40+1)
	}
	if end.pages > atWarm.pages+256 {
		t.Fatalf("the database grew from %d to %d pages", atWarm.pages, end.pages)
	}
	if end.series > atWarm.series+5 {
		t.Fatalf("metrics series grew from %d to %d", atWarm.series, end.series)
	}
	// 16,667 distinct 3 KB methods alone would hold 50 MB
	if end.heap > atWarm.heap+16<<20 {
		t.Fatalf("the heap grew from %d to %d bytes", atWarm.heap, end.heap)
	}
}
