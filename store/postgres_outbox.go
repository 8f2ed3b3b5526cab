package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

const pgInsertOutbox = `INSERT INTO outbox
	(id, kind, channel, priority, state, body_enc, account_id, request_id, client_ip, purpose, created_at, not_before, expires_at)
	VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`

func (s *Postgres) insertOutbox(ctx context.Context, exec func(ctx context.Context, sql string, args ...any) (int64, error), m OutboxMessage) error {
	n, err := exec(ctx, pgInsertOutbox, m.ID, m.Kind, m.Channel, outboxPriority(m.Kind), s.k.sealOutboxBody(m),
		m.AccountID, m.RequestID, m.ClientIP, m.Purpose, m.CreatedAt, outboxNotBefore(m), m.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store: enqueue message: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("store: enqueue message: %w", ErrConflict)
	}
	return nil
}

// EnqueueMessage implements Store.
func (s *Postgres) EnqueueMessage(ctx context.Context, m OutboxMessage) error {
	if err := checkOutboxMessage(m); err != nil {
		return err
	}
	return s.insertOutbox(ctx, func(ctx context.Context, q string, args ...any) (int64, error) {
		tag, err := s.pool.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}, m)
}

// IssueCodeWithMessage implements Store: IssueCode's writes and the
// message in one transaction (the flow row is locked for it).
func (s *Postgres) IssueCodeWithMessage(ctx context.Context, c Code, m OutboxMessage) error {
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
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			account string
			expires time.Time
		)
		err := tx.QueryRow(ctx, `SELECT account_id, expires_at FROM flows WHERE id_hash = $1 FOR SHARE`, h).Scan(&account, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: issue code: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: issue code: %w", err)
		}
		if account != c.AccountID {
			return fmt.Errorf("%w: code account differs from its flow's", ErrInvalid)
		}
		_, err = tx.Exec(ctx, `INSERT INTO codes
			(flow_id, purpose, method_id, account_id, hash, expires_at, tries) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (flow_id, purpose, method_id) DO UPDATE SET
				account_id = excluded.account_id, hash = excluded.hash,
				expires_at = excluded.expires_at, tries = excluded.tries`,
			h, c.Purpose, c.MethodID, c.AccountID, c.Hash, c.ExpiresAt, c.Tries)
		if pgCode(err) == pgForeignKeyViolation {
			return fmt.Errorf("store: issue code: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: issue code: %w", err)
		}
		if expires.Before(m.ExpiresAt) {
			m.ExpiresAt = expires
		}
		return s.insertOutbox(ctx, func(ctx context.Context, q string, args ...any) (int64, error) {
			tag, err := tx.Exec(ctx, q, args...)
			return tag.RowsAffected(), err
		}, m)
	})
}

// ClaimMessages implements Store: the due rows are locked with FOR UPDATE
// SKIP LOCKED, so concurrent claims in any instance take different rows.
func (s *Postgres) ClaimMessages(ctx context.Context, channel string, now time.Time, lease time.Duration, limit int) ([]OutboxMessage, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `UPDATE outbox o SET lease_until = $1, attempts = o.attempts + 1
		FROM (SELECT id FROM outbox WHERE state = 'pending' AND channel = $2 AND not_before <= $3 AND lease_until <= $3
			ORDER BY priority, not_before LIMIT $4 FOR UPDATE SKIP LOCKED) c
		WHERE o.id = c.id
		RETURNING o.id, o.kind, o.channel, o.body_enc, o.account_id, o.request_id, o.client_ip, o.purpose, o.created_at, o.not_before, o.expires_at, o.attempts`,
		now.Add(lease), channel, now, limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim messages: %w", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		var (
			m   OutboxMessage
			enc []byte
		)
		if err := rows.Scan(&m.ID, &m.Kind, &m.Channel, &enc, &m.AccountID, &m.RequestID, &m.ClientIP, &m.Purpose, &m.CreatedAt, &m.NotBefore, &m.ExpiresAt, &m.Attempts); err != nil {
			return nil, fmt.Errorf("store: claim messages: %w", err)
		}
		if err := s.k.openOutboxBody(&m, enc); err != nil {
			return nil, fmt.Errorf("store: claim messages: %w", err)
		}
		m.CreatedAt, m.NotBefore, m.ExpiresAt = m.CreatedAt.UTC(), m.NotBefore.UTC(), m.ExpiresAt.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim messages: %w", err)
	}
	sortOutbox(out)
	return out, nil
}

// NextDue implements Store, in two index-bounded reads (see outboxNextFree).
func (s *Postgres) NextDue(ctx context.Context, channel string) (time.Time, error) {
	var free, leased *time.Time
	if err := s.pool.QueryRow(ctx, postgresNextFree, channel).Scan(&free); err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	bound := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if free != nil {
		bound = *free
	}
	if err := s.pool.QueryRow(ctx, postgresNextLeaseEnd, channel, bound).Scan(&leased); err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	switch {
	case leased != nil && (free == nil || leased.Before(*free)):
		return leased.UTC(), nil
	case free != nil:
		return free.UTC(), nil
	}
	return time.Time{}, nil
}

// The two reads of NextDue.
var (
	postgresNextFree     = outboxNextFree("$1")
	postgresNextLeaseEnd = `SELECT MIN(lease_until) FROM outbox WHERE state = 'pending' AND channel = $1 AND priority IN ` +
		outboxPriorityList + ` AND not_before < $2 AND lease_until > not_before`
)

// FinishMessage implements Store.
func (s *Postgres) FinishMessage(ctx context.Context, id, state string, now time.Time, audit ...AuditEvent) error {
	if err := checkFinishState(state); err != nil {
		return err
	}
	if len(audit) == 0 {
		return finishMessagePg(ctx, s.pool, id, state, now)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := finishMessagePg(ctx, tx, id, state, now); err != nil {
			return err
		}
		for _, e := range audit {
			if err := appendAuditPg(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func finishMessagePg(ctx context.Context, q pgQuerier, id, state string, now time.Time) error {
	tag, err := q.Exec(ctx, `UPDATE outbox SET state = $1, body_enc = NULL, done_at = $2, lease_until = '-infinity'
		WHERE id = $3 AND state = 'pending'`, state, now, id)
	if err != nil {
		return fmt.Errorf("store: finish message: %w", err)
	}
	if tag.RowsAffected() == 0 {
		var n int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE id = $1`, id).Scan(&n); err != nil {
			return fmt.Errorf("store: finish message: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("store: finish message: %w", ErrNotFound)
		}
	}
	return nil
}

// RetryMessage implements Store.
func (s *Postgres) RetryMessage(ctx context.Context, id string, notBefore time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE outbox SET not_before = $1, lease_until = '-infinity' WHERE id = $2 AND state = 'pending'`,
		notBefore, id)
	if err != nil {
		return fmt.Errorf("store: retry message: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: retry message: %w", ErrNotFound)
	}
	return nil
}

// ExpediteRetries implements Store.
func (s *Postgres) ExpediteRetries(ctx context.Context, channel string, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE outbox SET not_before = $1
		WHERE state = 'pending' AND channel = $2 AND attempts > 0 AND lease_until <= $1 AND not_before > $1`, now, channel)
	if err != nil {
		return 0, fmt.Errorf("store: expedite retries: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// OutboxStats implements Store.
func (s *Postgres) OutboxStats(ctx context.Context, since time.Time) (OutboxStats, error) {
	var (
		st            OutboxStats
		oldest, first *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE state = 'pending' AND kind = 'code'),
		(SELECT count(*) FROM outbox WHERE state = 'pending' AND kind = 'notice'),
		(SELECT MIN(not_before) FROM outbox WHERE state = 'pending' AND kind = 'code'),
		(SELECT count(*) FROM outbox WHERE state = 'sent' AND done_at >= $1),
		(SELECT MIN(done_at) FROM outbox WHERE state = 'sent' AND done_at >= $1)`, since).
		Scan(&st.PendingCodes, &st.PendingNotices, &oldest, &st.Sent, &first)
	if err != nil {
		return OutboxStats{}, fmt.Errorf("store: outbox stats: %w", err)
	}
	if oldest != nil {
		st.OldestCode = oldest.UTC()
	}
	if first != nil {
		st.FirstSent = first.UTC()
	}
	return st, nil
}

// AfterPasswordWrite implements PasswordWriteRecorder: one transaction.
func (s *Postgres) AfterPasswordWrite(ctx context.Context, accountID string, resetKeys []string, sessions bool, e AuditEvent, msgs ...OutboxMessage) error {
	if err := notEmpty("account id", accountID); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := checkOutboxMessage(m); err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, k := range resetKeys {
			if _, err := tx.Exec(ctx, `DELETE FROM counters WHERE key_hash = $1`, s.k.counterKey(k)); err != nil {
				return fmt.Errorf("store: reset: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM flows WHERE account_id = $1`, accountID); err != nil {
			return fmt.Errorf("store: delete flows for account: %w", err)
		}
		if sessions {
			if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE account_id = $1`, accountID); err != nil {
				return fmt.Errorf("store: delete sessions for account: %w", err)
			}
		}
		if err := appendAuditPg(ctx, tx, e); err != nil {
			return err
		}
		exec := func(ctx context.Context, q string, args ...any) (int64, error) {
			tag, err := tx.Exec(ctx, q, args...)
			return tag.RowsAffected(), err
		}
		for _, m := range msgs {
			if err := s.insertOutbox(ctx, exec, m); err != nil {
				return err
			}
		}
		return nil
	})
}
