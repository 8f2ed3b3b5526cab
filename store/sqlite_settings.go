package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GetSettings implements Store.
func (s *SQLite) GetSettings(ctx context.Context) (StoredSettings, error) {
	var (
		st   StoredSettings
		body string
		at   int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT version, body, updated_at, updated_by FROM settings WHERE id = 1`).
		Scan(&st.Version, &body, &at, &st.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredSettings{}, fmt.Errorf("store: get settings: %w", ErrNotFound)
	}
	if err != nil {
		return StoredSettings{}, fmt.Errorf("store: get settings: %w", err)
	}
	st.Body = []byte(body)
	st.UpdatedAt = time.UnixMicro(at).UTC()
	return st, nil
}

// SaveSettings implements Store: in one write transaction, an UPDATE of
// the row still at version prev (or, for prev 0, an INSERT of the first
// row) and the events; nothing changed is a conflict.
func (s *SQLite) SaveSettings(ctx context.Context, prev int, st StoredSettings, events []AuditEvent) (StoredSettings, error) {
	if err := checkSave(prev, st); err != nil {
		return StoredSettings{}, err
	}
	at := st.UpdatedAt.UnixMicro()
	err := s.writeTx(ctx, func(tx txn) error {
		var (
			res sql.Result
			err error
		)
		if prev == 0 {
			res, err = tx.ExecContext(ctx, `INSERT INTO settings (id, version, body, updated_at, updated_by)
				VALUES (1, 1, ?, ?, ?) ON CONFLICT DO NOTHING`, string(st.Body), at, st.UpdatedBy)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE settings SET version = ?, body = ?, updated_at = ?, updated_by = ?
				WHERE id = 1 AND version = ?`, prev+1, string(st.Body), at, st.UpdatedBy, prev)
		}
		if err != nil {
			return fmt.Errorf("store: save settings: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: save settings: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("store: save settings: %w", ErrConflict)
		}
		for _, e := range events {
			if err := appendAuditTx(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return StoredSettings{}, err
	}
	return StoredSettings{Version: prev + 1, Body: append([]byte(nil), st.Body...),
		UpdatedAt: time.UnixMicro(at).UTC(), UpdatedBy: st.UpdatedBy}, nil
}

// SettingsVersion implements Store: one read of the settings row by its
// primary key.
func (s *SQLite) SettingsVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT version FROM settings WHERE id = 1`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: settings version: %w", err)
	}
	return v, nil
}
