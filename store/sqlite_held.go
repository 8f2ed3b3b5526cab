package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AddMethodWithin implements Store. The count and the insert share one
// write transaction: SQLite's single writer (and BEGIN IMMEDIATE across
// processes) serializes them.
func (s *SQLite) AddMethodWithin(ctx context.Context, m Method, limit int) error {
	if err := checkLimit(limit); err != nil {
		return err
	}
	enc, idx, err := s.k.sealMethod(m)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, func(tx txn) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM methods WHERE account_id = ?`, m.AccountID).Scan(&n); err != nil {
			return fmt.Errorf("store: add method: %w", err)
		}
		if n >= limit {
			return fmt.Errorf("store: add method: %w", ErrLimit)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO methods
			(account_id, id, type, address_enc, address_idx, verified, created_at, verified_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			m.AccountID, m.ID, m.Type, enc, idx, m.Verified, m.CreatedAt.UnixMicro(), dbTime(m.VerifiedAt))
		if err != nil {
			return fmt.Errorf("store: add method: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: add method: %w", ErrConflict)
		}
		return nil
	})
}

// HoldNotice implements Store.
func (s *SQLite) HoldNotice(ctx context.Context, n HeldNotice) error {
	if err := checkHeldNotice(n); err != nil {
		return err
	}
	return s.writeTx(ctx, func(tx txn) error {
		var (
			events        string
			enc           []byte
			smsOnly       bool
			heldAt, dueAt int64
		)
		err := tx.QueryRowContext(ctx, `SELECT events, data_enc, sms_only, held_at, due_at FROM held_notices WHERE account_id = ?`,
			n.AccountID).Scan(&events, &enc, &smsOnly, &heldAt, &dueAt)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: hold notice: %w", err)
		default:
			old := HeldNotice{AccountID: n.AccountID, SMSOnly: smsOnly, HeldAt: time.UnixMicro(heldAt), DueAt: time.UnixMicro(dueAt)}
			if err := json.Unmarshal([]byte(events), &old.Events); err != nil {
				return fmt.Errorf("store: hold notice: %w", err)
			}
			if err := s.k.openHeldData(&old, enc); err != nil {
				return fmt.Errorf("store: hold notice: %w", err)
			}
			n = mergeHeld(old, n)
		}
		ev, err := json.Marshal(n.Events)
		if err != nil {
			return fmt.Errorf("store: hold notice: %w", err)
		}
		data, err := s.k.sealHeldData(n)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO held_notices (account_id, events, data_enc, sms_only, held_at, due_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET events = excluded.events, data_enc = excluded.data_enc,
				sms_only = excluded.sms_only, held_at = excluded.held_at, due_at = excluded.due_at`,
			n.AccountID, string(ev), data, n.SMSOnly, n.HeldAt.UnixMicro(), n.DueAt.UnixMicro()); err != nil {
			return fmt.Errorf("store: hold notice: %w", err)
		}
		return nil
	})
}

// TakeDueNotices implements Store.
func (s *SQLite) TakeDueNotices(ctx context.Context, now time.Time, limit int) ([]HeldNotice, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var out []HeldNotice
	err := s.writeTx(ctx, func(t txn) error {
		out = out[:0]
		rows, err := t.tx.QueryContext(ctx, `DELETE FROM held_notices WHERE account_id IN
			(SELECT account_id FROM held_notices WHERE due_at <= ? ORDER BY due_at, account_id LIMIT ?)
			RETURNING account_id, events, data_enc, sms_only, held_at, due_at`, now.UnixMicro(), limit)
		if err != nil {
			return fmt.Errorf("store: take due notices: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				n             HeldNotice
				events        string
				enc           []byte
				heldAt, dueAt int64
			)
			if err := rows.Scan(&n.AccountID, &events, &enc, &n.SMSOnly, &heldAt, &dueAt); err != nil {
				return fmt.Errorf("store: take due notices: %w", err)
			}
			if err := json.Unmarshal([]byte(events), &n.Events); err != nil {
				return fmt.Errorf("store: take due notices: %w", err)
			}
			if err := s.k.openHeldData(&n, enc); err != nil {
				return fmt.Errorf("store: take due notices: %w", err)
			}
			n.HeldAt, n.DueAt = time.UnixMicro(heldAt).UTC(), time.UnixMicro(dueAt).UTC()
			out = append(out, n)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	sortHeld(out)
	return out, nil
}
