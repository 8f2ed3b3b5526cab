package flow

import (
	"context"
	"errors"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
)

// Change changes a password as the user (old and new). Unknown user, wrong
// old password, locked or disabled are one sign_in_failed.
func (s *Service) Change(ctx context.Context, username, oldPassword, newPassword string, m Meta) error {
	name := canonicalUsername(username)
	if badUsername(name) && name != "" {
		return problem(CodeInvalidRequest, nil)
	}
	if err := s.spendSignIn(ctx, m); err != nil {
		return err
	}
	start := time.Now()
	u, err := s.d.Directory.Lookup(ctx, name)
	if err != nil {
		if errors.Is(err, directory.ErrUnavailable) {
			return s.dirProblem(err)
		}
		s.decoyBind(ctx, name, oldPassword)
		err = s.nameAttempt(ctx, name, oldPassword, err, m)
		s.record(ctx, m, "change.completed", "", "failed", nil)
		p := bindFailure(err)
		s.padChange.wait(ctx, start, true)
		return p
	}
	// The old password is proven first, within the account's budget of
	// wrong passwords, by the user's bind that also makes the change; the
	// gateway's own rules are checked only then, so that nothing tells an
	// unknown name from a known one to someone who does not know the
	// password.
	proven, may := false, false
	err = errors.New("empty password")
	if oldPassword != "" {
		if may = s.bindAttempt(ctx, u, name, m); !may {
			err = &directory.Error{Op: "change password", Kind: directory.ErrInvalidCredentials} // over the account's budget: not tried
		}
	}
	if may {
		err = s.d.Directory.ChangePassword(ctx, u, oldPassword, newPassword, func() error {
			// the count of wrong passwords is cleared after the write
			// (with the rest of the request's store writes), or below
			// when the write is refused: not while the user's
			// connection is held
			proven = true
			if p := s.passwordRejected(ctx, newPassword, u); p != nil {
				return p
			}
			return nil
		})
	}
	if proven && err != nil {
		s.bindProven(ctx, u)
	}
	switch {
	case err == nil:
	case !proven:
		return s.changeNotProven(ctx, u, name, oldPassword != "", err, start, m)
	default:
		var p *Problem
		if errors.As(err, &p) {
			return p // the gateway's rules
		}
		s.record(ctx, m, "change.completed", u.ID, "refused", map[string]string{"reason": dirReason(err)})
		if errors.Is(err, directory.ErrPolicyRejected) || errors.Is(err, directory.ErrUnavailable) {
			return s.writeProblem(ctx, u, err)
		}
		return problem(CodeSignInFailed, err)
	}
	ctx = context.WithoutCancel(ctx)
	s.passwordWritten(ctx, m, u, passwordWrite{resetKeys: []string{bindKey(u)}, sessions: true,
		event: "change.completed", outcome: "success", notice: "password_changed"})
	return nil
}

// changeNotProven answers a change whose old password the directory did not
// accept (or that was not tried: empty, or over the account's budget),
// after the same hold as an unknown name's.
func (s *Service) changeNotProven(ctx context.Context, u *directory.User, name string, tried bool, err error, start time.Time, m Meta) error {
	if errors.Is(err, directory.ErrUnavailable) {
		return s.dirProblem(err)
	}
	spent := false
	if errors.Is(err, directory.ErrPasswordExpired) {
		s.bindProven(ctx, u) // the directory says so only to the right password, which is not "too many attempts"
	} else if tried {
		spent = s.bindSeen(ctx, name) // a refusal counts toward the typed name's budget
	}
	s.record(ctx, m, "change.completed", u.ID, "failed", map[string]string{"reason": reasonOf(err)})
	// the answer is made before the hold: whatever follows the hold is
	// the same work for every name (the refusal wrapped here after the
	// hold made a real account's answer leave ~4 µs later, finding L1)
	p := bindFailure(bindRefusal(spent, err))
	s.padChange.wait(ctx, start, true)
	return p
}
