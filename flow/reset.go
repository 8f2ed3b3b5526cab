package flow

import (
	"context"
	"errors"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// PasswordRules is what the password page shows before the user types.
type PasswordRules struct {
	Local     []Violation `json:"local"`
	Directory []string    `json:"directory"`
}

// FlowPasswordRules describes the rules for the flow's account, once the
// methods are verified.
func (s *Service) FlowPasswordRules(ctx context.Context, flowID string) (PasswordRules, error) {
	f, err := s.loadFlow(ctx, store.FlowReset, flowID)
	if err != nil {
		return PasswordRules{}, err
	}
	if f.AccountID == "" || len(f.Verified) == 0 || flowRemaining(f, offeredOf(f)) > 0 {
		return PasswordRules{}, problem(CodeNotVerified, nil)
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return PasswordRules{}, err
	}
	return s.passwordRules(ctx, u), nil
}

func (s *Service) passwordRules(ctx context.Context, u *directory.User) PasswordRules {
	var r PasswordRules
	for _, req := range s.o.Password.Describe() {
		r.Local = append(r.Local, Violation{Code: req.Code, Message: requirementText(req.Code, req.Params)})
	}
	if u != nil {
		if p, err := s.d.Directory.EffectivePolicy(ctx, u); err == nil && p.Known {
			r.Directory = directoryRuleTexts(p)
		}
	}
	return r
}

// passwordMoved reports whether the password of u was set after an
// earlier completion of f read its last-set time: "pw_set_before", kept
// with the claim and still there when that completion's outcome is
// unknown. Both times are the directory's (pwdChangedTime on OpenLDAP,
// pwdLastSet on Active Directory), so the clocks of gateway and directory
// never meet. A directory that keeps no such time (OpenLDAP without
// ppolicy) cannot tell, and the flow writes again.
func passwordMoved(f liveFlow, u *directory.User) bool {
	before := f.st.PasswordSetBefore
	if before == nil || u.Status.PasswordChanged.IsZero() {
		return false
	}
	return formatPasswordSet(u.Status.PasswordChanged) != *before
}

func formatPasswordSet(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func dirReason(err error) string {
	if r := directory.ReasonOf(err); r != directory.ReasonNone {
		return string(r)
	}
	return reasonOf(err)
}

func (s *Service) writeProblem(err error) *Problem {
	switch {
	case errors.Is(err, directory.ErrPolicyRejected):
		p := problem(CodePasswordRejected, err)
		r := directory.ReasonOf(err)
		p.Violations = []Violation{{Code: "directory_" + string(r), Message: directoryReasonText(r)}}
		return p
	case errors.Is(err, directory.ErrAccountDisabled):
		return problem(CodeNotEligible, err)
	case errors.Is(err, directory.ErrUnavailable):
		return problem(CodeUnavailable, err)
	default:
		s.log.Error("directory refused a write", "error", err.Error())
		return problem(CodeInternal, err)
	}
}

// resetReady is what a reset checks before it claims its flow. An
// earlier completion of this flow whose outcome is unknown (its directory
// write timed out, or its instance stopped between the write and
// recording it) may have set the password already. The directory says so:
// the time the password was last set has moved since that completion read
// it. Then the flow is done and nothing is written a second time. Else
// the new password must pass the gateway's own rules.
func (s *Service) resetReady(ctx context.Context, f liveFlow, u *directory.User, password string, m Meta) *Problem {
	if passwordMoved(f, u) {
		// the earlier completion may never record it (it is gone, or its
		// answer was lost): whichever gets there first does
		s.recordWrite(ctx, m, u, f, f.Kind, "already_written")
		return problem(CodeAlreadyCompleted, errors.New("an earlier completion set the password"))
	}
	return s.passwordRejected(password, u)
}

// passwordRejected checks a new password against the gateway's rules.
func (s *Service) passwordRejected(password string, u *directory.User) *Problem {
	vs := s.o.Password.Check(password, policy.Context{Username: u.Username, DisplayName: u.DisplayName, Email: u.Mail})
	if len(vs) == 0 {
		return nil
	}
	p := problem(CodePasswordRejected, nil)
	for _, v := range vs {
		p.Violations = append(p.Violations, Violation{Code: v.Code, Message: violationText(v.Code, v.Params)})
	}
	return p
}

// resetWrite sets the new password as the service account.
func (s *Service) resetWrite(ctx context.Context, u *directory.User, password string) error {
	return s.d.Directory.SetPassword(ctx, u, password, directory.SetOptions{Unlock: s.o.UnlockOnReset})
}
