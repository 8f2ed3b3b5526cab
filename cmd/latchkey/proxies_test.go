package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WB-10: trusting X-Forwarded-For from every address (0.0.0.0/0, ::/0)
// lets any client choose the address every per-address budget counts. It
// is a configuration error (exit 2, with the key path) unless
// server.trust_any_proxy says it is meant.
func TestTrustAnyProxyRefused(t *testing.T) {
	sqlite := "store:\n  driver: sqlite\n  dsn: \"file:" + filepath.Join(t.TempDir(), "l.db") + "\"\n"
	withServer := func(extra string) string {
		path := migrateConfig(t, sqlite)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), "server:\n", "server:\n"+extra, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for i, list := range []string{`["0.0.0.0/0"]`, `["10.0.0.0/8", "::/0"]`} {
		code, out := runMigrate(t, withServer("  trusted_proxies: "+list+"\n"))
		key := []string{"server.trusted_proxies[0]", "server.trusted_proxies[1]"}[i]
		if code != exitConfig || !strings.Contains(out, key) || !strings.Contains(out, "server.trust_any_proxy") {
			t.Fatalf("trusted_proxies %s: exit %d\n%s", list, code, out)
		}
	}
	path := withServer("  trusted_proxies: [\"0.0.0.0/0\", \"::/0\"]\n  trust_any_proxy: true\n")
	if code, out := runMigrate(t, path); code != exitOK {
		t.Fatalf("with server.trust_any_proxy: exit %d\n%s", code, out)
	}
}
