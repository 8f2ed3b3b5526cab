package main

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

// TestProxiesCheck: latchkey check warns when the gateway listens on
// loopback only for a public URL elsewhere (a proxy on the host is in
// front) and server.trusted_proxies is empty; not when a proxy is trusted,
// when clients reach the listener directly, or when it listens on every
// interface.
func TestProxiesCheck(t *testing.T) {
	for _, c := range []struct {
		listen, public string
		proxies        []string
		want           string
	}{
		{"127.0.0.1:8080", "https://sspr.example.org", nil, statusWarn},
		{"[::1]:8080", "https://sspr.example.org", nil, statusWarn},
		{"localhost:8080", "https://sspr.example.org", nil, statusWarn},
		{"127.0.0.1:8080", "https://sspr.example.org", []string{"127.0.0.1/32"}, statusOK},
		{"127.0.0.1:8080", "http://127.0.0.1:8080", nil, statusOK},
		{":8080", "https://sspr.example.org", nil, statusOK},
		{"10.0.0.11:8080", "https://sspr.example.org", nil, statusOK},
	} {
		cfg := config.Default()
		cfg.Server.Listen, cfg.Server.PublicURL, cfg.Server.TrustedProxies = c.listen, c.public, c.proxies
		r := proxiesCheck(cfg)
		if r.Check != "server.trusted_proxies" || r.Status != c.want {
			t.Errorf("%s %s %v: %+v, want %s", c.listen, c.public, c.proxies, r, c.want)
		}
		if r.Status == statusWarn && (!strings.Contains(r.Message, "limits.starts_per_ip") || !strings.Contains(r.Fix, "server.trusted_proxies")) {
			t.Errorf("%s: %+v", c.listen, r)
		}
	}
}

// TestCoolingOffCheckNamesNewDeployment: the cooling-off warning says that
// a new deployment's users cannot reset with their new methods at first.
func TestCoolingOffCheckNamesNewDeployment(t *testing.T) {
	cfg := config.Default()
	cfg.Policy.CoolingOff = 24 * time.Hour
	r := coolingOffCheck(cfg, time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	if r.Status != statusWarn || !strings.Contains(r.Message, "until 2026-12-07 12:00 UTC") || !strings.Contains(r.Message, "new deployment") {
		t.Fatalf("%+v", r)
	}
	cfg.Policy.CoolingOff = 0
	if r := coolingOffCheck(cfg, time.Now()); r.Status != statusOK {
		t.Fatalf("%+v", r)
	}
}
