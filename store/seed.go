package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SeedOutstanding inserts n reset flows, each with a live code, in one
// transaction, through the same encoding as CreateFlow and IssueCode: the
// outstanding state of a busy gateway, for benchmarks (latchkey-bench's
// scaling case, the store benchmarks). The IDs are derived from i and only
// used as noise; nobody can redeem the codes. s is a *SQLite or a
// *Postgres.
func SeedOutstanding(ctx context.Context, s Store, n int, now time.Time) error {
	switch st := s.(type) {
	case *SQLite:
		return seedSQLite(ctx, st, n, now)
	case *Postgres:
		return seedPostgres(ctx, st, n, now)
	default:
		return fmt.Errorf("%w: SeedOutstanding on a %T", ErrInvalid, s)
	}
}

// seedFlow is outstanding flow i.
func seedFlow(i int, now time.Time) Flow {
	return Flow{
		ID:        fmt.Sprintf("seed-flow-%012d-0123456789", i),
		Kind:      FlowReset,
		AccountID: fmt.Sprintf("acct-%d", i),
		Required:  2,
		Verified:  []string{"m1"},
		Data:      map[string]string{"username": fmt.Sprintf("user%d", i), "step": "verify"},
		CreatedAt: now,
		ExpiresAt: now.Add(time.Hour),
	}
}

func seedSQLite(ctx context.Context, s *SQLite, n int, now time.Time) error {
	return s.writeTx(ctx, func(tx txn) error {
		for i := range n {
			f := seedFlow(i, now)
			if err := s.insertFlow(ctx, tx, f); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO codes
				(flow_key, purpose, method_id, account_id, hash, expires_at, tries) VALUES (?, ?, ?, ?, ?, ?, 0)`,
				idKey(hashID(f.ID)), "reset", "m2", f.AccountID, hashID("code"), now.Add(10*time.Minute).UnixMicro()); err != nil {
				return err
			}
		}
		return nil
	})
}

// seedPostgres sends the inserts in batches of 500 flows (one round trip
// each) within one transaction.
func seedPostgres(ctx context.Context, s *Postgres, n int, now time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const per = 500
		for lo := 0; lo < n; lo += per {
			b := &pgx.Batch{}
			for i := lo; i < min(n, lo+per); i++ {
				f := seedFlow(i, now)
				h := hashID(f.ID)
				data, err := s.sealFlowData(h, f)
				if err != nil {
					return err
				}
				b.Queue(`INSERT INTO flows
					(id_hash, kind, account_id, required, verified, data_enc, created_at, expires_at, version)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
					h, f.Kind, f.AccountID, f.Required, pgVerified(f.Verified), data, f.CreatedAt, f.ExpiresAt, f.Version)
				b.Queue(`INSERT INTO codes
					(flow_id, purpose, method_id, account_id, hash, expires_at, tries) VALUES ($1, $2, $3, $4, $5, $6, 0)`,
					h, "reset", "m2", f.AccountID, hashID("code"), now.Add(10*time.Minute))
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return fmt.Errorf("store: seed: %w", err)
			}
		}
		return nil
	})
}
