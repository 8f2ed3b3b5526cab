package flow

import (
	"context"

	"github.com/latchkeyhq/latchkey/directory"
)

// An unlock is a reset that writes no password: started, offered and
// proven as a reset is (start.go, verify.go), completed by CompleteFlow
// (complete.go), whose directory write is unlockWrite.

// unlockWrite clears the lockout of u.
func (s *Service) unlockWrite(ctx context.Context, u *directory.User) error {
	return s.d.Directory.Unlock(ctx, u)
}
