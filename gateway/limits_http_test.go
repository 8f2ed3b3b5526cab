package gateway

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/flow"
)

func TestStartBudgetPerIPIgnoresForgedForwardedFor(t *testing.T) {
	tb := newTestbed(t, func(o *flow.Options) { o.Limits.StartsPerIP = 3 })
	c := newClient(t, tb)
	codes := map[int]int{}
	for i := 0; i < 5; i++ {
		req := httptest.NewRequest("POST", "/api/v1/reset", strings.NewReader(`{"username":"user`+string(rune('a'+i))+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "203.0.113."+string(rune('1'+i)))
		w := c.do(req)
		codes[w.Code]++
	}
	// over the address's budget: too_many (the budget names no account)
	if codes[200] != 3 || codes[429] != 2 {
		t.Fatalf("answers %v, want 3 flows and 2 too_many", codes)
	}
	evs, _ := tb.st.ListAudit(context.Background(), storeQuery("blocked"))
	if len(evs) != 2 {
		t.Fatalf("%d blocked events, want 2 (the forged header must not give each request a new address)", len(evs))
	}
	for _, e := range evs {
		if e.ClientIP != "192.0.2.10" {
			t.Fatalf("client ip %q", e.ClientIP)
		}
	}
}

// TestIPv6ClientsShareBudgetsPerPrefixAndSite: IPv6 clients are one client
// address per limits.ipv6_prefix (/56), and every /48 has a second budget
// of its own (flow.SiteBudgetFactor times the address's), spent only by
// requests within their address's budget, so a holder of a /48 does not
// get 256 (or, per /64, 65,536) budgets (issue 17, WB-5).
func TestIPv6ClientsShareBudgetsPerPrefixAndSite(t *testing.T) {
	tb := newTestbed(t, func(o *flow.Options) { o.Limits.StartsPerIP, o.Limits.SignInsPerIP = 2, 2 })
	c := newClient(t, tb)
	start := func(remote string) int {
		c.remote = "[" + remote + "]:443"
		return c.api("POST", "/api/v1/reset", `{"username":"someone"}`, nil).Code
	}
	// two /64s of one /56 share its budget of 2
	if a, b, d := start("2001:db8:7:100::1"), start("2001:db8:7:1ff::2"), start("2001:db8:7:180::3"); a != 200 || b != 200 || d != 429 {
		t.Fatalf("one /56: %d %d %d, want 200 200 429", a, b, d)
	}
	// the /48 has 2*4 = 8: three more /56s get 2 each, the fifth none
	n := 2
	for i := 2; i <= 5; i++ {
		for j := 0; j < 2; j++ {
			if code := start(fmt.Sprintf("2001:db8:7:%x00::%d", i, j+1)); code == 200 {
				n++
			} else if code != 429 {
				t.Fatalf("status %d", code)
			}
		}
	}
	if n != 2*flow.SiteBudgetFactor {
		t.Fatalf("%d starts from one /48, want %d", n, 2*flow.SiteBudgetFactor)
	}
	// another /48 is not affected
	if code := start("2001:db8:8:100::1"); code != 200 {
		t.Fatalf("another /48: %d", code)
	}
	// sign-ins: the same grouping
	signIns := 0
	for i := 0; i < 12; i++ {
		c.remote = fmt.Sprintf("[2001:db8:9:%x00::1]:443", i)
		// a name each: one name's budget of wrong passwords (3) would
		// answer 429 by itself
		if w := c.api("POST", "/api/v1/session", fmt.Sprintf(`{"username":"nobody-%d","password":"wrong"}`, i), nil); w.Code != 429 {
			signIns++
		}
	}
	if signIns != 2*flow.SiteBudgetFactor {
		t.Fatalf("%d sign-ins from one /48, want %d", signIns, 2*flow.SiteBudgetFactor)
	}
}
