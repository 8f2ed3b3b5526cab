package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
)

// TestReadinessThroughOutages: /readyz is "this instance can serve". A
// directory or store outage (shared by every instance) shows in its body
// and in /healthz/deps, not in its status; users meanwhile get Latchkey's
// own 503 "unavailable" with Retry-After, as JSON and as a page. Only a
// drain makes /readyz 503.
func TestReadinessThroughOutages(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	state := func(w *httptest.ResponseRecorder) map[string]string {
		t.Helper()
		var m map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%d %s: %v", w.Code, w.Body, err)
		}
		return m
	}
	check := func(path string, status int, want map[string]string) {
		t.Helper()
		w := c.get(path)
		got := state(w)
		if w.Code != status || len(got) != len(want) {
			t.Fatalf("%s: %d %s, want %d %v", path, w.Code, w.Body, status, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %d %s, want %d %v", path, w.Code, w.Body, status, want)
			}
		}
	}
	ok := map[string]string{"directory": "ok", "store": "ok"}
	check("/readyz", 200, map[string]string{"directory": "ok", "store": "ok", "outbox": "ok"})
	check("/healthz/deps", 200, ok)

	tb.dir.SetPingError(&directory.Error{Op: "ping", Kind: directory.ErrUnavailable})
	dirDown := map[string]string{"directory": "unavailable", "store": "ok"}
	check("/readyz", 200, map[string]string{"directory": "unavailable", "store": "ok", "outbox": "ok"})
	check("/healthz/deps", 503, dirDown)
	tb.dir.SetPingError(nil)

	// the store goes away
	if err := tb.st.Close(); err != nil {
		t.Fatal(err)
	}
	storeDown := map[string]string{"directory": "ok", "store": "unavailable"}
	check("/readyz", 200, map[string]string{"directory": "ok", "store": "unavailable", "outbox": "ok"})
	check("/healthz/deps", 503, storeDown)
	w := c.api("POST", "/api/v1/reset", `{"username":"alice"}`, nil)
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"code":"unavailable"`) || w.Header().Get("Retry-After") != "10" {
		t.Fatalf("API with the store down: %d %v %s", w.Code, w.Header(), w.Body)
	}
	w = c.post("/reset", "/reset", url.Values{"username": {"alice"}}, nil)
	if w.Code != 503 || !strings.Contains(w.Header().Get("Content-Type"), "text/html") ||
		!strings.Contains(w.Body.String(), "temporarily unavailable") || w.Header().Get("Retry-After") != "10" {
		t.Fatalf("page with the store down: %d %v %s", w.Code, w.Header(), w.Body)
	}

	tb.srv.Drain()
	check("/readyz", 503, map[string]string{"directory": "ok", "store": "unavailable", "shutdown": "draining"})
	check("/healthz/deps", 503, storeDown)
}

// TestProxyHeaderWithoutTrustedProxies: a request carrying X-Forwarded-For
// while server.trusted_proxies is empty logs one warning (every client
// behind that proxy would share its budgets); later ones log nothing more,
// and with a trusted proxy set nothing is logged.
func TestProxyHeaderWithoutTrustedProxies(t *testing.T) {
	count := func(tb *testbed, logs *flowtest.SyncBuffer, hdr map[string]string, n int) int {
		c := newClient(t, tb)
		for range n {
			if w := c.api("GET", "/healthz", "", hdr); w.Code != 200 {
				t.Fatalf("healthz: %d", w.Code)
			}
		}
		return strings.Count(logs.String(), "server.trusted_proxies is empty")
	}
	bed := func(tweak func(*flow.Options)) (*testbed, *flowtest.SyncBuffer) {
		tb := newTestbed(t, tweak)
		logs := &flowtest.SyncBuffer{}
		tb.logs.set(slog.NewJSONHandler(logs, nil))
		return tb, logs
	}
	tb, logs := bed(nil)
	if n := count(tb, logs, nil, 3); n != 0 {
		t.Fatalf("%d warnings without a proxy header", n)
	}
	if n := count(tb, logs, map[string]string{"X-Forwarded-For": "198.51.100.7"}, 5); n != 1 {
		t.Fatalf("%d warnings for 5 requests through a proxy, want 1:\n%s", n, logs.String())
	}
	tb, logs = bed(func(o *flow.Options) { o.TrustedProxies = []netip.Prefix{mustPrefix("192.0.2.10/32")} })
	if n := count(tb, logs, map[string]string{"X-Forwarded-For": "198.51.100.7"}, 3); n != 0 {
		t.Fatalf("%d warnings with the proxy trusted", n)
	}
}

// TestDrainClosesEachConnection: before and during the drain a client's
// connection is kept for its next request; once the listener has closed
// (CloseConnections) every answer says "Connection: close" and the server
// closes the connection after it, so that a proxy (deploy/nginx) never
// sends a request on a kept connection the server is closing.
// OpenConnections follows the connections.
func TestDrainClosesEachConnection(t *testing.T) {
	tb := newTestbed(t, nil)
	ts := serveHTTP(t, tb)
	var conns atomic.Int32
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	t.Cleanup(client.CloseIdleConnections)
	// get answers the status and whether the answer closed its connection
	// (it said "Connection: close")
	get := func() (int, bool) {
		t.Helper()
		r, err := client.Get(ts.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode, r.Close
	}
	for range 2 {
		if status, closed := get(); closed || status != 200 {
			t.Fatalf("before the drain: status %d, closed %v", status, closed)
		}
	}
	tb.srv.Drain()
	if status, closed := get(); closed || status != 200 {
		t.Fatalf("while draining: status %d, closed %v", status, closed)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("before the listener closed: %d connections for 3 requests, want 1 kept", n)
	}
	if n := tb.srv.OpenConnections(); n != 1 {
		t.Fatalf("OpenConnections %d with one kept connection", n)
	}
	tb.srv.CloseConnections()
	for range 3 {
		if status, closed := get(); !closed || status != 200 {
			t.Fatalf("closing: status %d, closed %v", status, closed)
		}
	}
	// the first answer came on the kept connection and closed it; each
	// later one had its own
	if n := conns.Load(); n != 3 {
		t.Fatalf("closing: %d connections in all, want 3 (1 kept, then 1 per request after the first)", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tb.srv.OpenConnections() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("OpenConnections %d after every connection was closed", tb.srv.OpenConnections())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAnswerAfterCloseConnectionsClosesItsConnection: a request begun
// before CloseConnections and answered after it (a password change held in
// the directory's write) closes its connection too; deciding when the
// request came would leave that connection kept, idle, for the server to
// close under the client's next request.
func TestAnswerAfterCloseConnectionsClosesItsConnection(t *testing.T) {
	tb := newTestbed(t, nil)
	ts := serveHTTP(t, tb)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tb.dir.SetDuringWrite(func() {
		once.Do(func() { close(entered) })
		<-release
	})
	type answer struct {
		status int
		closed bool
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		body := fmt.Sprintf(`{"username":"carol","old_password":%q,"new_password":"A-New-Long-Password-42"}`, tb.dir.Password("carol"))
		r, err := http.Post(ts.URL+"/api/v1/change", "application/json", strings.NewReader(body))
		if err != nil {
			done <- answer{err: err}
			return
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		done <- answer{status: r.StatusCode, closed: r.Close}
	}()
	select {
	case <-entered:
	case a := <-done:
		t.Fatalf("the change answered before its write was held: %+v", a)
	case <-time.After(10 * time.Second):
		t.Fatal("the change never reached the directory's write")
	}
	tb.srv.CloseConnections()
	close(release)
	a := <-done
	if a.err != nil || a.status >= 300 || !a.closed {
		t.Fatalf("change answered after CloseConnections: status %d, closed %v, %v", a.status, a.closed, a.err)
	}
}

// serveHTTP serves tb's gateway on a loopback port with the http.Server
// `latchkey serve` uses (HTTPServer: its timeouts and connection count).
func serveHTTP(t *testing.T, tb *testbed) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = tb.srv.HTTPServer("")
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}
