package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

const sqliteInsertOutbox = `INSERT INTO outbox
	(id, kind, channel, priority, state, body_enc, account_id, request_id, client_ip, purpose, created_at, not_before, expires_at)
	VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// The two reads of NextDue (see outboxNextFree in outbox.go).
var (
	sqliteNextFree     = outboxNextFree("?1")
	sqliteNextLeaseEnd = `SELECT MIN(lease_until) FROM outbox WHERE state = 'pending' AND channel = ?1 AND priority IN ` +
		outboxPriorityList + ` AND not_before < ?2 AND lease_until > not_before`
)

func (s *SQLite) insertOutbox(ctx context.Context, tx txn, m OutboxMessage) error {
	res, err := tx.ExecContext(ctx, sqliteInsertOutbox, m.ID, m.Kind, m.Channel, outboxPriority(m.Kind), s.k.sealOutboxBody(m),
		m.AccountID, m.RequestID, m.ClientIP, m.Purpose, m.CreatedAt.UnixMicro(), outboxNotBefore(m).UnixMicro(), m.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("store: enqueue message: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: enqueue message: %w", ErrConflict)
	}
	return nil
}

// EnqueueMessage implements Store.
func (s *SQLite) EnqueueMessage(ctx context.Context, m OutboxMessage) error {
	if err := checkOutboxMessage(m); err != nil {
		return err
	}
	return s.writeTx(ctx, func(tx txn) error { return s.insertOutbox(ctx, tx, m) })
}

// IssueCodeWithMessage implements Store: IssueCode's writes and the
// message in one write transaction.
func (s *SQLite) IssueCodeWithMessage(ctx context.Context, c Code, m OutboxMessage) error {
	if len(c.Hash) == 0 {
		return fmt.Errorf("%w: empty code hash", ErrInvalid)
	}
	if err := notEmpty("code purpose or method id", c.Purpose, c.MethodID); err != nil {
		return err
	}
	if err := checkOutboxMessage(m); err != nil {
		return err
	}
	h := hashID(c.FlowID)
	return s.writeTx(ctx, func(tx txn) error {
		var (
			account string
			expires int64
		)
		err := tx.QueryRowContext(ctx, `SELECT account_id, expires_at FROM flows WHERE key = ? AND id_hash = ?`, idKey(h), h).
			Scan(&account, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: issue code: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: issue code: %w", err)
		}
		if account != c.AccountID {
			return fmt.Errorf("%w: code account differs from its flow's", ErrInvalid)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO codes
			(flow_key, purpose, method_id, account_id, hash, expires_at, tries) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (flow_key, purpose, method_id) DO UPDATE SET
				account_id = excluded.account_id, hash = excluded.hash,
				expires_at = excluded.expires_at, tries = excluded.tries`,
			idKey(h), c.Purpose, c.MethodID, c.AccountID, c.Hash, c.ExpiresAt.UnixMicro(), c.Tries); err != nil {
			return fmt.Errorf("store: issue code: %w", err)
		}
		if fe := time.UnixMicro(expires); fe.Before(m.ExpiresAt) {
			m.ExpiresAt = fe
		}
		return s.insertOutbox(ctx, tx, m)
	})
}

// ClaimMessages implements Store: one UPDATE ... RETURNING in the single
// write transaction.
func (s *SQLite) ClaimMessages(ctx context.Context, channel string, now time.Time, lease time.Duration, limit int) ([]OutboxMessage, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	var out []OutboxMessage
	err := s.writeTx(ctx, func(t txn) error {
		out = out[:0]
		rows, err := t.tx.QueryContext(ctx, `UPDATE outbox SET lease_until = ?1, attempts = attempts + 1
			WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND channel = ?2 AND not_before <= ?3 AND lease_until <= ?3
				ORDER BY priority, not_before LIMIT ?4)
			RETURNING id, kind, channel, body_enc, account_id, request_id, client_ip, purpose, created_at, not_before, expires_at, attempts`,
			now.Add(lease).UnixMicro(), channel, now.UnixMicro(), limit)
		if err != nil {
			return fmt.Errorf("store: claim messages: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				m                    OutboxMessage
				enc                  []byte
				created, nb, expires int64
			)
			if err := rows.Scan(&m.ID, &m.Kind, &m.Channel, &enc, &m.AccountID, &m.RequestID, &m.ClientIP, &m.Purpose, &created, &nb, &expires, &m.Attempts); err != nil {
				return fmt.Errorf("store: claim messages: %w", err)
			}
			if err := s.k.openOutboxBody(&m, enc); err != nil {
				return fmt.Errorf("store: claim messages: %w", err)
			}
			m.CreatedAt, m.NotBefore, m.ExpiresAt = time.UnixMicro(created).UTC(), time.UnixMicro(nb).UTC(), time.UnixMicro(expires).UTC()
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	sortOutbox(out)
	return out, nil
}

// NextDue implements Store, in two index-bounded reads (outboxNextFree)
// rather than one pass over every pending message: under a backlog of
// thousands that pass, read on every wake of the dispatcher as it then
// was, had become most of the gateway's CPU.
func (s *SQLite) NextDue(ctx context.Context, channel string) (time.Time, error) {
	var free, leased sql.NullInt64
	if err := s.r.QueryRowContext(ctx, sqliteNextFree, channel).Scan(&free); err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	bound := int64(math.MaxInt64)
	if free.Valid {
		bound = free.Int64
	}
	if err := s.r.QueryRowContext(ctx, sqliteNextLeaseEnd, channel, bound).Scan(&leased); err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	switch {
	case leased.Valid && (!free.Valid || leased.Int64 < free.Int64):
		return time.UnixMicro(leased.Int64).UTC(), nil
	case free.Valid:
		return time.UnixMicro(free.Int64).UTC(), nil
	}
	return time.Time{}, nil
}

// FinishMessage implements Store.
func (s *SQLite) FinishMessage(ctx context.Context, id, state string, now time.Time, audit ...AuditEvent) error {
	if err := checkFinishState(state); err != nil {
		return err
	}
	return s.writeTx(ctx, func(tx txn) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT state FROM outbox WHERE id = ?`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: finish message: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: finish message: %w", err)
		}
		if cur == OutboxPending {
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = ?, body_enc = NULL, done_at = ?, lease_until = 0 WHERE id = ?`,
				state, now.UnixMicro(), id); err != nil {
				return fmt.Errorf("store: finish message: %w", err)
			}
		}
		for _, e := range audit {
			if err := appendAuditTx(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// RetryMessage implements Store.
func (s *SQLite) RetryMessage(ctx context.Context, id string, notBefore time.Time) error {
	return s.writeTx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET not_before = ?, lease_until = 0 WHERE id = ? AND state = 'pending'`,
			notBefore.UnixMicro(), id)
		if err != nil {
			return fmt.Errorf("store: retry message: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: retry message: %w", ErrNotFound)
		}
		return nil
	})
}

// ExpediteRetries implements Store.
func (s *SQLite) ExpediteRetries(ctx context.Context, channel string, now time.Time) (int, error) {
	var n int64
	err := s.writeTx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET not_before = ?1
			WHERE state = 'pending' AND channel = ?2 AND attempts > 0 AND lease_until <= ?1 AND not_before > ?1`, now.UnixMicro(), channel)
		if err != nil {
			return fmt.Errorf("store: expedite retries: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// OutboxStats implements Store.
func (s *SQLite) OutboxStats(ctx context.Context, since time.Time) (OutboxStats, error) {
	var (
		st            OutboxStats
		oldest, first sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE state = 'pending' AND kind = 'code'),
		(SELECT count(*) FROM outbox WHERE state = 'pending' AND kind = 'notice'),
		(SELECT MIN(not_before) FROM outbox WHERE state = 'pending' AND kind = 'code'),
		(SELECT count(*) FROM outbox WHERE state = 'sent' AND done_at >= ?1),
		(SELECT MIN(done_at) FROM outbox WHERE state = 'sent' AND done_at >= ?1)`, since.UnixMicro()).
		Scan(&st.PendingCodes, &st.PendingNotices, &oldest, &st.Sent, &first)
	if err != nil {
		return OutboxStats{}, fmt.Errorf("store: outbox stats: %w", err)
	}
	if oldest.Valid {
		st.OldestCode = time.UnixMicro(oldest.Int64).UTC()
	}
	if first.Valid {
		st.FirstSent = time.UnixMicro(first.Int64).UTC()
	}
	return st, nil
}
