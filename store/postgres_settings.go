package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// GetSettings implements Store.
func (s *Postgres) GetSettings(ctx context.Context) (StoredSettings, error) {
	var (
		st   StoredSettings
		body string
		at   time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT version, body, updated_at, updated_by FROM settings WHERE id = 1`).
		Scan(&st.Version, &body, &at, &st.UpdatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return StoredSettings{}, fmt.Errorf("store: get settings: %w", ErrNotFound)
	}
	if err != nil {
		return StoredSettings{}, fmt.Errorf("store: get settings: %w", err)
	}
	st.Body = []byte(body)
	st.UpdatedAt = at.UTC()
	return st, nil
}

// SaveSettings implements Store: in one transaction, an UPDATE of the row
// still at version prev (a concurrent save from the same prev waits for
// the row's lock, then finds the version changed and updates nothing) or,
// for prev 0, an INSERT ... ON CONFLICT DO NOTHING of the first row, and
// the events; nothing changed is a conflict, and the transaction is rolled
// back.
func (s *Postgres) SaveSettings(ctx context.Context, prev int, st StoredSettings, events []AuditEvent) (StoredSettings, error) {
	if err := checkSave(prev, st); err != nil {
		return StoredSettings{}, err
	}
	var at time.Time
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if prev == 0 {
			err = tx.QueryRow(ctx, `INSERT INTO settings (id, version, body, updated_at, updated_by)
				VALUES (1, 1, $1, $2, $3) ON CONFLICT DO NOTHING RETURNING updated_at`,
				string(st.Body), st.UpdatedAt, st.UpdatedBy).Scan(&at)
		} else {
			err = tx.QueryRow(ctx, `UPDATE settings SET version = $1, body = $2, updated_at = $3, updated_by = $4
				WHERE id = 1 AND version = $5 RETURNING updated_at`,
				prev+1, string(st.Body), st.UpdatedAt, st.UpdatedBy, prev).Scan(&at)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: save settings: %w", ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("store: save settings: %w", err)
		}
		for _, e := range events {
			if err := appendAuditPg(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return StoredSettings{}, err
	}
	return StoredSettings{Version: prev + 1, Body: append([]byte(nil), st.Body...),
		UpdatedAt: at.UTC(), UpdatedBy: st.UpdatedBy}, nil
}

// SettingsVersion implements Store: one read of the settings row by its
// primary key.
func (s *Postgres) SettingsVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM settings WHERE id = 1`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: settings version: %w", err)
	}
	return v, nil
}
