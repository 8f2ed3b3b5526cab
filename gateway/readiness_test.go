package gateway

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/directory"
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
	check("/readyz", 200, ok)
	check("/healthz/deps", 200, ok)

	tb.dir.SetPingError(&directory.Error{Op: "ping", Kind: directory.ErrUnavailable})
	dirDown := map[string]string{"directory": "unavailable", "store": "ok"}
	check("/readyz", 200, dirDown)
	check("/healthz/deps", 503, dirDown)
	tb.dir.SetPingError(nil)

	// the store goes away
	if err := tb.st.Close(); err != nil {
		t.Fatal(err)
	}
	storeDown := map[string]string{"directory": "ok", "store": "unavailable"}
	check("/readyz", 200, storeDown)
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
