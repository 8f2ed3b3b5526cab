package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgMethodsLockClass is the first key of the transaction-scoped advisory
// lock AddMethodWithin takes on an account (the second is a hash of the
// account id). Two-key advisory locks never meet one-key ones such as
// pgMigrationLock.
const pgMethodsLockClass int32 = 0x6c6b_6d31 // "lkm1"

// AddMethodWithin implements Store. A transaction-scoped advisory lock on
// the account serializes the count and the insert across instances (a
// row lock cannot: there is no row yet to lock).
func (s *Postgres) AddMethodWithin(ctx context.Context, m Method, limit int) error {
	if err := checkLimit(limit); err != nil {
		return err
	}
	enc, idx, err := s.k.sealMethod(m)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, pgMethodsLockClass, m.AccountID); err != nil {
			return fmt.Errorf("store: add method: %w", err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM methods WHERE account_id = $1`, m.AccountID).Scan(&n); err != nil {
			return fmt.Errorf("store: add method: %w", err)
		}
		if n >= limit {
			return fmt.Errorf("store: add method: %w", ErrLimit)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO methods
			(account_id, id, type, address_enc, address_idx, verified, created_at, verified_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			m.AccountID, m.ID, m.Type, enc, idx, m.Verified, m.CreatedAt, pgTime(m.VerifiedAt))
		if err != nil {
			return fmt.Errorf("store: add method: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("store: add method: %w", ErrConflict)
		}
		return nil
	})
}

// HoldNotice implements Store: the account's row is created if missing,
// then locked (SELECT ... FOR UPDATE) for the merge.
func (s *Postgres) HoldNotice(ctx context.Context, n HeldNotice) error {
	if err := checkHeldNotice(n); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		old := HeldNotice{AccountID: n.AccountID}
		var enc []byte
		err := tx.QueryRow(ctx, `SELECT events, data_enc, sms_only, held_at, due_at FROM held_notices
			WHERE account_id = $1 FOR UPDATE`, n.AccountID).Scan(&old.Events, &enc, &old.SMSOnly, &old.HeldAt, &old.DueAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			data, err := s.k.sealHeldData(n)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO held_notices (account_id, events, data_enc, sms_only, held_at, due_at)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, n.AccountID, n.Events, data, n.SMSOnly, n.HeldAt, n.DueAt)
			if err != nil {
				return fmt.Errorf("store: hold notice: %w", err)
			}
			if tag.RowsAffected() == 1 {
				return nil
			}
			// another instance created it meanwhile: merge into theirs
			if err := tx.QueryRow(ctx, `SELECT events, data_enc, sms_only, held_at, due_at FROM held_notices
				WHERE account_id = $1 FOR UPDATE`, n.AccountID).Scan(&old.Events, &enc, &old.SMSOnly, &old.HeldAt, &old.DueAt); err != nil {
				return fmt.Errorf("store: hold notice: %w", err)
			}
		case err != nil:
			return fmt.Errorf("store: hold notice: %w", err)
		}
		if err := s.k.openHeldData(&old, enc); err != nil {
			return fmt.Errorf("store: hold notice: %w", err)
		}
		n = mergeHeld(old, n)
		data, err := s.k.sealHeldData(n)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE held_notices SET events = $2, data_enc = $3, sms_only = $4, held_at = $5, due_at = $6
			WHERE account_id = $1`, n.AccountID, n.Events, data, n.SMSOnly, n.HeldAt, n.DueAt); err != nil {
			return fmt.Errorf("store: hold notice: %w", err)
		}
		return nil
	})
}

// TakeDueNotices implements Store: one DELETE ... RETURNING over rows
// locked with SKIP LOCKED, so that concurrent takers share them out.
func (s *Postgres) TakeDueNotices(ctx context.Context, now time.Time, limit int) ([]HeldNotice, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM held_notices WHERE account_id IN
		(SELECT account_id FROM held_notices WHERE due_at <= $1 ORDER BY due_at, account_id LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING account_id, events, data_enc, sms_only, held_at, due_at`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("store: take due notices: %w", err)
	}
	defer rows.Close()
	var out []HeldNotice
	for rows.Next() {
		var (
			n   HeldNotice
			enc []byte
		)
		if err := rows.Scan(&n.AccountID, &n.Events, &enc, &n.SMSOnly, &n.HeldAt, &n.DueAt); err != nil {
			return nil, fmt.Errorf("store: take due notices: %w", err)
		}
		if err := s.k.openHeldData(&n, enc); err != nil {
			return nil, fmt.Errorf("store: take due notices: %w", err)
		}
		n.HeldAt, n.DueAt = n.HeldAt.UTC(), n.DueAt.UTC()
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: take due notices: %w", err)
	}
	sortHeld(out)
	return out, nil
}
