package store

import (
	"context"
	"fmt"
	"time"
)

// SeedOutstanding inserts n reset flows, each with a live code, in one
// transaction, through the same encoding as CreateFlow and IssueCode: the
// outstanding state of a busy gateway, for benchmarks (latchkey-bench's
// scaling case, the store benchmarks). The IDs are derived from i and only
// used as noise; nobody can redeem the codes.
func SeedOutstanding(ctx context.Context, s *SQLite, n int, now time.Time) error {
	return s.writeTx(ctx, func(tx txn) error {
		for i := range n {
			f := Flow{
				ID:        fmt.Sprintf("seed-flow-%012d-0123456789", i),
				Kind:      FlowReset,
				AccountID: fmt.Sprintf("acct-%d", i),
				Required:  2,
				Verified:  []string{"m1"},
				Data:      map[string]string{"username": fmt.Sprintf("user%d", i), "step": "verify"},
				CreatedAt: now,
				ExpiresAt: now.Add(time.Hour),
			}
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
