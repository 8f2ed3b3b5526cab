package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/templates"
)

// TestStaticFiles: /static/ serves its files only (no folder listing),
// compressed when the client takes gzip, revalidated by ETag (a 304 with
// no body when unchanged), and /favicon.ico is a quiet 204, not a 404 in
// every browser's console. Before, /static/ listed its folder, style.css
// was sent uncompressed and uncached, and /favicon.ico was 404.
func TestStaticFiles(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	want, err := templates.FS.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}

	w := c.get("/static/style.css")
	etag := w.Header().Get("ETag")
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), want) || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), w.Body.Len())
	}
	if etag == "" || w.Header().Get("Cache-Control") != "no-cache" || w.Header().Get("Content-Encoding") != "" {
		t.Fatalf("style.css headers: %v", w.Header())
	}

	req := httptest.NewRequest("GET", "/static/style.css", nil)
	req.Header.Set("Accept-Encoding", "br, gzip")
	w = c.do(req)
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Vary") != "Accept-Encoding" || w.Body.Len() >= len(want) {
		t.Fatalf("style.css with gzip: %d %v, %d bytes of %d", w.Code, w.Header(), w.Body.Len(), len(want))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the gzipped style.css does not decompress to the file: %v", err)
	}
	req = httptest.NewRequest("GET", "/static/style.css", nil)
	req.Header.Set("Accept-Encoding", "gzip;q=0")
	if w = c.do(req); w.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip sent to a client that refused it (q=0)")
	}

	req = httptest.NewRequest("GET", "/static/style.css", nil)
	req.Header.Set("If-None-Match", etag)
	if w = c.do(req); w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
		t.Fatalf("revalidation with the ETag: %d, %d bytes", w.Code, w.Body.Len())
	}
	req = httptest.NewRequest("GET", "/static/style.css", nil)
	req.Header.Set("If-None-Match", `"another"`)
	if w = c.do(req); w.Code != 200 {
		t.Fatalf("revalidation with another ETag: %d", w.Code)
	}

	for _, p := range []string{"/static/", "/static", "/static/missing.css", "/static/../static/style.css", "/static/%2e%2e/embed.go", "/static//style.css"} {
		w := c.get(p)
		if w.Code == 200 && !bytes.Equal(w.Body.Bytes(), want) || strings.Contains(w.Body.String(), "webauthn.js") {
			t.Fatalf("%s: %d, a listing or another file:\n%s", p, w.Code, w.Body.String())
		}
		if p != "/static/../static/style.css" && w.Code != 404 {
			t.Fatalf("%s: %d, want 404", p, w.Code)
		}
	}

	w = c.get("/favicon.ico")
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 || !strings.Contains(w.Header().Get("Cache-Control"), "max-age") {
		t.Fatalf("/favicon.ico: %d %v", w.Code, w.Header())
	}
}
