package flow

import (
	"context"

	"github.com/latchkeyhq/latchkey/store"
)

// totpMethod is an authenticator app (totp.go): proven with the code the
// app shows. An account has one; too many wrong codes suspend it for
// resets until the user signs in (appguess.go).
type totpMethod struct{}

func (totpMethod) Name() string            { return MethodTOTP }
func (totpMethod) Available(*Service) bool { return true } // needs no sender

// Hint: the address is the seed: never shown, not even masked.
func (totpMethod) Hint(store.Method) string { return totpHint }
func (totpMethod) Strong() bool             { return true }
func (totpMethod) ProofShape() proofShape   { return proofCode }
func (totpMethod) CountsOnce() bool         { return true }

func (totpMethod) single() {}

func (totpMethod) checkEnrolment(ctx context.Context, s *Service, meth store.Method, code string) (string, bool, error) {
	res, err := s.checkTOTP(ctx, meth, code)
	if err != nil {
		return "", false, err
	}
	return res.reason(), res == totpOK, nil
}

// enrolled: the new seed is proven: the old one stops working now.
func (totpMethod) enrolled(ctx context.Context, s *Service, meth store.Method, m Meta) {
	s.revokeOtherTOTP(ctx, meth.AccountID, meth.ID, m)
}

// Challenge sends nothing: the app shows the code. Real and fake ones
// alike get the same 202 after the same padded time.
func (totpMethod) Challenge(context.Context, *challenge) (*PasskeyCeremony, error) { return nil, nil }

// Verify checks the code of a try against the app's seed (a fake app's:
// the same work, never a match) and spends the step it matches.
func (totpMethod) Verify(ctx context.Context, a *attempt) (verdict, error) {
	// a method is proven once, and a flow being completed takes no proof
	if p := a.alreadyProven(CodeInvalidCode); p != nil {
		return verdict{}, p
	}
	if p := a.open(); p != nil {
		return verdict{}, p
	}
	if p := a.spend(ctx, CodeInvalidCode); p != nil {
		return verdict{}, p
	}
	s, f, o := a.s, a.f, a.o()
	code := normalizeCode(a.p.Code)
	// too many wrong app codes suspend the account's apps (every name's
	// alike) until the user signs in: a right code is refused as a wrong
	// one
	if blocked, err := s.appBlocked(ctx, f.st.Acct); err != nil || blocked {
		if err != nil {
			return verdict{}, storeProblem(err)
		}
		s.record(ctx, a.m, "blocked", f.AccountID, "app_failures", map[string]string{"method": o.ID})
		return verdict{}, problem(CodeInvalidCode, nil)
	}
	res := totpWrong
	if o.real && f.AccountID != "" {
		if meth, ok := a.stored(ctx); ok {
			var err error
			if res, err = s.checkTOTP(ctx, meth, code); err != nil {
				return verdict{}, storeProblem(err)
			}
		}
	} else {
		s.decoyTOTP(o.ID, code)
	}
	if res != totpOK {
		v := wrong(CodeInvalidCode, res.reason())
		if res == totpWrong {
			v.after = func() { s.appFailed(ctx, *f, o.ID, a.m) }
		}
		return v, nil
	}
	return verdict{proven: true}, nil
}
