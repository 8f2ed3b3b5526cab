package config_test

import (
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

// TestShutdownDelayDefault: server.shutdown_delay defaults to the probe's
// time to notice a drain plus a margin with a shared store (several
// instances behind a load balancer), to 0 with SQLite (one instance); a
// value that is set, 0s included, is kept.
func TestShutdownDelayDefault(t *testing.T) {
	if config.DefaultShutdownDelay != 15*time.Second {
		t.Fatalf("DefaultShutdownDelay = %v", config.DefaultShutdownDelay)
	}
	if d := config.Default().Server.ShutdownDelay; d != 0 {
		t.Errorf("Default() (sqlite): %v, want 0", d)
	}
	for _, c := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{map[string]string{}, 0},
		{map[string]string{"LATCHKEY_STORE_DRIVER": "postgres"}, config.DefaultShutdownDelay},
		{map[string]string{"LATCHKEY_STORE_DRIVER": "postgres", "LATCHKEY_SERVER_SHUTDOWN_DELAY": "0s"}, 0},
		{map[string]string{"LATCHKEY_STORE_DRIVER": "postgres", "LATCHKEY_SERVER_SHUTDOWN_DELAY": "30s"}, 30 * time.Second},
		{map[string]string{"LATCHKEY_SERVER_SHUTDOWN_DELAY": "2s"}, 2 * time.Second},
	} {
		cfg, err := config.Load("", config.WithLookupEnv(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }))
		if err != nil {
			t.Fatalf("%v: %v", c.env, err)
		}
		if cfg.Server.ShutdownDelay != c.want {
			t.Errorf("%v: shutdown_delay %v, want %v", c.env, cfg.Server.ShutdownDelay, c.want)
		}
	}
}

// TestDefaultFor: the defaults derived from the store driver.
func TestDefaultFor(t *testing.T) {
	pg := config.DefaultFor(config.StorePostgres)
	if pg.Store.Driver != config.StorePostgres || pg.Server.ShutdownDelay != config.DefaultShutdownDelay || pg.Store.Migrate != config.MigrateManual || pg.Store.DSN != "" {
		t.Fatalf("postgres: %+v %+v", pg.Server, pg.Store)
	}
	sq, def := config.DefaultFor(config.StoreSQLite), config.Default()
	if sq.Server.ShutdownDelay != def.Server.ShutdownDelay || sq.Store != def.Store || sq.Store.Migrate != config.MigrateOnStart || sq.Server.ShutdownDelay != 0 {
		t.Fatalf("sqlite: %+v %+v, Default: %+v", sq.Server, sq.Store, def.Store)
	}
}
