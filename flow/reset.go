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
// Local and Directory are the two sources as they are; Effective is the
// one list a page shows: the stricter length of the two in one line,
// then the gateway's other rules, then the directory's other rules.
type PasswordRules struct {
	Local     []Violation `json:"local"`
	Directory []string    `json:"directory"`
	Effective []Violation `json:"effective"`
	// MinLength is the effective minimum: the larger of the gateway's and
	// the directory's (when its policy is known).
	MinLength int `json:"min_length"`
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

// passwordRules are the rules for u; for nil (a page that does not know
// the user yet, the same for every name) the directory's default policy:
// a user without a policy of its own (OpenLDAP directory.default_policy_dn,
// the Active Directory domain's policy).
func (s *Service) passwordRules(ctx context.Context, u *directory.User) PasswordRules {
	var r PasswordRules
	dp, known := s.directoryPolicy(ctx, u)
	r.MinLength = s.effectiveMinLength(dp, known)
	for _, req := range s.o.Password.Describe() {
		r.Local = append(r.Local, Violation{Code: req.Code, Message: requirementText(req.Code, req.Params)})
		if req.Code == policy.ReqMinLength {
			req.Params = map[string]int{"min": r.MinLength}
		}
		r.Effective = append(r.Effective, Violation{Code: req.Code, Message: requirementText(req.Code, req.Params)})
	}
	if known {
		r.Directory = directoryRuleTexts(dp)
		r.Effective = append(r.Effective, directoryRules(dp)...)
	}
	return r
}

// directoryPolicy is the directory's policy for u (nil: the default one),
// and whether it is known.
func (s *Service) directoryPolicy(ctx context.Context, u *directory.User) (directory.PasswordPolicy, bool) {
	if u == nil {
		u = &directory.User{}
	}
	p, err := s.d.Directory.EffectivePolicy(ctx, u)
	if err != nil || !p.Known {
		return directory.PasswordPolicy{}, false
	}
	return p, true
}

// effectiveMinLength is the stricter of the gateway's minimum and the
// directory's.
func (s *Service) effectiveMinLength(p directory.PasswordPolicy, known bool) int {
	n := s.o.Password.MinLength
	if n <= 0 {
		n = policy.DefaultMinLength
	}
	if known && p.MinLength > n {
		n = p.MinLength
	}
	return n
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

// writeProblem is the answer to a write the directory refused for u. A
// password too short for it names its minimum when the policy is known.
func (s *Service) writeProblem(ctx context.Context, u *directory.User, err error) *Problem {
	switch {
	case errors.Is(err, directory.ErrPolicyRejected):
		p := problem(CodePasswordRejected, err)
		r := directory.ReasonOf(err)
		msg := directoryReasonText(r)
		if r == directory.ReasonTooShort {
			if dp, known := s.directoryPolicy(ctx, u); known && dp.MinLength > 0 {
				msg = directoryTooShortText(s.effectiveMinLength(dp, known))
			}
		}
		p.Violations = []Violation{{Code: "directory_" + string(r), Message: msg}}
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
		s.recordWrite(ctx, m, u, f, f.Kind, "already_written", false)
		return problem(CodeAlreadyCompleted, errors.New("an earlier completion set the password"))
	}
	return s.passwordRejected(ctx, password, u)
}

// passwordRejected checks a new password against the gateway's rules. The
// gateway decides by its own minimum and leaves the directory's to the
// directory (authoritative: its refusal keeps its own code), but a length
// message always names the effective minimum, the one the page lists.
func (s *Service) passwordRejected(ctx context.Context, password string, u *directory.User) *Problem {
	vs := s.o.Password.Check(password, policy.Context{Username: u.Username, DisplayName: u.DisplayName, Email: u.Mail})
	if len(vs) == 0 {
		return nil
	}
	p := problem(CodePasswordRejected, nil)
	for _, v := range vs {
		if v.Code == policy.CodeTooShort {
			v.Params = map[string]int{"min": s.effectiveMinLength(s.directoryPolicy(ctx, u))}
		}
		p.Violations = append(p.Violations, Violation{Code: v.Code, Message: violationText(v.Code, v.Params)})
	}
	return p
}

// resetWrite sets the new password as the service account.
func (s *Service) resetWrite(ctx context.Context, u *directory.User, password string) error {
	return s.d.Directory.SetPassword(ctx, u, password, directory.SetOptions{Unlock: s.o.UnlockOnReset})
}
