package flow

import (
	"context"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/store"
)

// An unlock is a reset that writes no password: started, offered and
// proven as a reset is (start.go, verify.go), completed by CompleteFlow
// (complete.go), whose directory write is unlockWrite.

// unlockWrite clears the lockout of u and reports whether it ended one
// (directory.Directory.Unlock).
func (s *Service) unlockWrite(ctx context.Context, u *directory.User) (bool, error) {
	return s.d.Directory.Unlock(ctx, u)
}

// FlowLocked reports, once an unlock flow's methods are all proven (the
// person has proven it is their account), whether the account is locked
// now: the page before the unlock says so (the done page follows the
// write's own answer, CompleteUnlock). Before that it is not_verified,
// whatever the name.
func (s *Service) FlowLocked(ctx context.Context, flowID string) (bool, error) {
	f, err := s.loadFlow(ctx, store.FlowUnlock, flowID)
	if err != nil {
		return false, err
	}
	if f.AccountID == "" || len(f.Verified) == 0 || flowRemaining(f, offeredOf(f)) > 0 {
		return false, problem(CodeNotVerified, nil)
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return false, err
	}
	return u.Status.Locked, nil
}
