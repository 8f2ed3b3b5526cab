package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
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
// it), applying pending schema migrations when migrate is set and changing
// nothing otherwise (then a schema older than the store's
// MinSchemaVersion, or none, is store.ErrSchemaBehind).
func openStore(ctx context.Context, cfg *config.Config, migrate bool) (store.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
	defer cancel()
	key := []byte(cfg.Server.SecretKey)
	switch cfg.Store.Driver {
	case config.StorePostgres:
		s, err := store.OpenPostgres(ctx, cfg.Store.DSN, key, store.PostgresOptions{AllowPlaintext: cfg.Store.AllowPlaintext, NoMigrate: !migrate})
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		s, err := store.OpenSQLiteWith(ctx, cfg.Store.DSN, key, store.SQLiteOptions{NoMigrate: !migrate})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// checkStore is `latchkey check`'s store line: it opens the store without
// changing it and says whether its schema is current.
func checkStore(ctx context.Context, cfg *config.Config) (status, message, fix string) {
	st, err := openStore(ctx, cfg, false)
	onStart := cfg.Store.Migrate == config.MigrateOnStart
	// the store's own words, without the sentinel's text said first
	why := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprint(err), "store: "), ": "+store.ErrSchemaBehind.Error())
	switch {
	case errors.Is(err, store.ErrSchemaBehind) && onStart:
		return statusWarn, "schema behind: run latchkey migrate (" + why + ")",
			"latchkey serve applies it when it starts (store.migrate: on_start), or run latchkey migrate"
	case errors.Is(err, store.ErrSchemaBehind):
		return statusFail, "schema behind: run latchkey migrate (" + why + ")",
			"run latchkey migrate --config FILE: latchkey serve does not migrate (store.migrate: manual)"
	case errors.Is(err, store.ErrSchemaNewer):
		return statusFail, err.Error(), "run a Latchkey version that knows this schema"
	case err != nil:
		return statusFail, fmt.Sprintf("opening the %s store: %v", cfg.Store.Driver, err), "check store.dsn: the file's directory must exist and be writable by latchkey"
	}
	defer st.Close()
	if err := st.Ping(ctx); err != nil {
		return statusFail, "the store does not answer: " + err.Error(), "check store.dsn"
	}
	if m := st.(migrater).Migration(); m.Behind() {
		return statusWarn, fmt.Sprintf("schema behind: run latchkey migrate (version %d, this build: %d; it serves on %d meanwhile)", m.To, store.SchemaVersion(), m.To),
			"run latchkey migrate --config FILE once every instance runs this version"
	}
	return statusOK, fmt.Sprintf("%s store opens, schema version %d", cfg.Store.Driver, store.SchemaVersion()), ""
}

// checkOutbox is `latchkey check`'s outbox line: the messages waiting in
// the store (every instance's), how long the oldest code has been due, and
// how many were sent in the last minute. WARN while the oldest code has
// waited longer than outbox.degraded_after.
func checkOutbox(ctx context.Context, cfg *config.Config) (status, message, fix string) {
	st, err := openStore(ctx, cfg, false)
	if err != nil {
		return statusWarn, "the outbox cannot be read: " + err.Error(), "see the store line"
	}
	defer st.Close()
	now := time.Now()
	q, err := st.OutboxStats(ctx, now.Add(-time.Minute))
	if err != nil {
		return statusWarn, "the outbox cannot be read (schema behind?): " + err.Error(), "run latchkey migrate"
	}
	var oldest time.Duration
	if !q.OldestCode.IsZero() && now.After(q.OldestCode) {
		oldest = now.Sub(q.OldestCode).Round(time.Second)
	}
	message = fmt.Sprintf("%d codes and %d notices waiting to be sent, the oldest code due for %s; %d sent in the last minute",
		q.PendingCodes, q.PendingNotices, oldest, q.Sent)
	if oldest > cfg.Outbox.DegradedAfter {
		return statusWarn, message, "codes are not leaving: check the SMTP server and the SMS provider (the smtp and sms lines), and that an instance runs"
	}
	return statusOK, message, ""
}

// migrate is `latchkey migrate`: open the store (which applies pending
// migrations), print the schema version, close.
func migrate(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) int {
	st, err := openStore(ctx, cfg, true)
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
