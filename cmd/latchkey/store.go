package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/store"
)

// storeOpenTimeout bounds opening the store: connecting, and waiting for
// another instance's migration (an advisory lock with PostgreSQL).
const storeOpenTimeout = 60 * time.Second

// migrater is what both store implementations report after opening.
type migrater interface {
	Migration() store.Migration
}

// openStore opens the store cfg.Store names (serve, check and migrate share
// it), applying pending schema migrations.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	key := []byte(cfg.Server.SecretKey)
	switch cfg.Store.Driver {
	case config.StorePostgres:
		s, err := store.OpenPostgres(ctx, cfg.Store.DSN, key, store.PostgresOptions{AllowPlaintext: cfg.Store.AllowPlaintext})
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		s, err := store.OpenSQLite(ctx, cfg.Store.DSN, key)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// migrate is `latchkey migrate`: open the store (which applies pending
// migrations), print the schema version, close.
func migrate(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) int {
	st, err := openStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey: migrate:", err)
		return exitFail
	}
	defer st.Close()
	m := st.(migrater).Migration()
	if m.Migrated() {
		fmt.Fprintf(stdout, "store %s: schema migrated from version %d to %d\n", cfg.Store.Driver, m.From, m.To)
	} else {
		fmt.Fprintf(stdout, "store %s: schema version %d, up to date\n", cfg.Store.Driver, m.To)
	}
	return exitOK
}
