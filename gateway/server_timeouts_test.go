package gateway

import (
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/flow"
)

// The HTTP server's timeouts are the options' (server.*_timeout, set by
// cmd/latchkey), and the options left zero are config's defaults: no
// timeout is written in the gateway (the read header timeout was 5 s here
// and the read timeout 10 s in the options' own defaults, where config's
// is 15 s).
func TestHTTPServerTimeoutsAreTheOptions(t *testing.T) {
	d := config.Default().Server
	hs := newTestbed(t, nil).srv.HTTPServer("127.0.0.1:0")
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"ReadHeaderTimeout", hs.ReadHeaderTimeout, d.ReadHeaderTimeout},
		{"ReadTimeout", hs.ReadTimeout, d.ReadTimeout},
		{"WriteTimeout", hs.WriteTimeout, d.WriteTimeout},
		{"IdleTimeout", hs.IdleTimeout, d.IdleTimeout},
	} {
		if c.got != c.want {
			t.Errorf("zero options: %s %s, config's default %s", c.name, c.got, c.want)
		}
	}
	hs = newTestbed(t, func(o *flow.Options) {
		o.ReadHeaderTimeout, o.ReadTimeout, o.WriteTimeout, o.IdleTimeout = 2*time.Second, 3*time.Second, 4*time.Second, 6*time.Second
	}).srv.HTTPServer("127.0.0.1:0")
	if hs.ReadHeaderTimeout != 2*time.Second || hs.ReadTimeout != 3*time.Second || hs.WriteTimeout != 4*time.Second || hs.IdleTimeout != 6*time.Second {
		t.Errorf("set options: timeouts %s %s %s %s, want 2s 3s 4s 6s", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout)
	}
}
