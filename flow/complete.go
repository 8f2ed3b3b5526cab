package flow

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// CompleteFlow finishes a verified flow: a reset writes the new password
// as the service account (policy enforced by the directory, reset.go); an
// unlock clears the lockout (unlock.go). Eligibility and the proofs are
// checked again first.
func (s *Service) CompleteFlow(ctx context.Context, kind, flowID, password string, m Meta) error {
	_, err := s.completeFlow(ctx, kind, flowID, password, m)
	return err
}

// CompleteUnlock is CompleteFlow for an unlock flow, and reports whether
// the unlock ended a lock (directory.Directory.Unlock's answer at the
// write): the page and the API say "unlocked" only then.
func (s *Service) CompleteUnlock(ctx context.Context, flowID string, m Meta) (unlocked bool, err error) {
	return s.completeFlow(ctx, store.FlowUnlock, flowID, "", m)
}

func (s *Service) completeFlow(ctx context.Context, kind, flowID, password string, m Meta) (unlocked bool, err error) {
	f, err := s.loadFlow(ctx, kind, flowID)
	if err != nil {
		return false, err
	}
	if f.AccountID == "" || len(f.Verified) < f.Required {
		s.record(ctx, m, kind+".completed", f.AccountID, "not_verified", nil)
		return false, problem(CodeNotVerified, nil)
	}
	if p := s.anyProofOldEnough(ctx, f, m); p != nil {
		return false, p
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return false, err
	}
	dec, err := s.decide(ctx, u)
	if err != nil {
		return false, s.dirProblem(err)
	}
	if !dec.Eligible {
		s.record(ctx, m, kind+".completed", u.ID, "not_eligible", map[string]string{"reason": dec.Reason})
		return false, problem(CodeNotEligible, errors.New(dec.Reason))
	}
	if p := s.proofsCount(ctx, f, u, dec, m); p != nil {
		return false, p
	}
	writing := s.writing(f)
	if kind == store.FlowReset {
		if p := s.resetReady(ctx, f, u, password, m); p != nil {
			return false, p
		}
	}
	// Claim the flow: of concurrent completions exactly one proceeds to
	// the directory write.
	if writing {
		return false, problem(CodeFlowExpired, errors.New("flow is being completed"))
	}
	return s.claimAndWrite(ctx, f, u, password, m)
}

// anyProofOldEnough refuses (method_too_new) a flow none of whose proven
// methods was verified a cooling-off ago; security questions are never
// what makes a proof old enough.
func (s *Service) anyProofOldEnough(ctx context.Context, f liveFlow, m Meta) *Problem {
	if s.o.CoolingOff <= 0 {
		return nil
	}
	for _, id := range f.Verified {
		if meth, err := s.d.Store.GetMethod(ctx, f.AccountID, id); err == nil && s.now().Sub(meth.VerifiedAt) >= s.o.CoolingOff && strongKind(meth.Type) {
			return nil
		}
	}
	s.record(ctx, m, f.Kind+".completed", f.AccountID, "method_too_new", nil)
	return problem(CodeMethodTooNew, nil)
}

// proofsCount checks that the proofs still satisfy today's policy: enough
// distinct methods for the user's current tier, each still registered,
// verified and allowed. An authenticator app counts once, however many
// were proven, and so do the passkeys of an account. Two addresses of one
// mailbox count once (countKey). A method verified in the cooling-off
// before the password was last changed, anywhere, counts no more: it may
// be an attacker's, added with the password the user has since replaced
// (staleMethod).
func (s *Service) proofsCount(ctx context.Context, f liveFlow, u *directory.User, dec policy.Decision, m Meta) *Problem {
	kind := f.Kind
	allowed, once := s.methodsAvailable(dec.Methods), map[string]bool{}
	var kinds []string
	old := s.o.CoolingOff <= 0
	for _, id := range f.Verified {
		if meth, err := s.d.Store.GetMethod(ctx, f.AccountID, id); err == nil && meth.Verified && slices.Contains(allowed, meth.Type) &&
			!s.staleMethod(meth, u) {
			key := countKey(meth)
			if once[key] {
				continue
			}
			once[key] = true
			kinds = append(kinds, meth.Type)
			old = old || (strongKind(meth.Type) && s.now().Sub(meth.VerifiedAt) >= s.o.CoolingOff)
		}
	}
	// security questions do not count in a tier requiring a kind
	if dec.Counted(kinds) < max(f.Required, dec.MethodsRequired) {
		s.record(ctx, m, kind+".completed", u.ID, "not_verified", nil)
		return problem(CodeNotVerified, nil)
	}
	if !old {
		s.record(ctx, m, kind+".completed", u.ID, "method_too_new", nil)
		return problem(CodeMethodTooNew, nil)
	}
	// security questions alone, or no method of a kind a tier requires
	if p := kindsProblem(dec, kinds); p != nil {
		s.record(ctx, m, kind+".completed", u.ID, p.Code, nil)
		return p
	}
	return nil
}

// claimAndWrite claims flow f, makes its directory write (resetWrite,
// unlockWrite) and records it; a refused write releases the claim.
// unlocked is an unlock's report that it ended a lock.
func (s *Service) claimAndWrite(ctx context.Context, f liveFlow, u *directory.User, password string, m Meta) (unlocked bool, err error) {
	kind := f.Kind
	f.st.Writing = s.now()
	// what the directory says of the password before the write, in the
	// directory's own clock, kept with the claim (see passwordMoved)
	if kind == store.FlowReset {
		before := formatPasswordSet(u.Status.PasswordChanged)
		f.st.PasswordSetBefore = &before
	}
	if err := s.updateFlow(ctx, f); err != nil {
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return false, storeProblem(err)
		}
		return false, problem(CodeFlowExpired, err)
	}
	f.Version++
	if kind == store.FlowReset {
		err = s.resetWrite(ctx, u, password)
	} else {
		unlocked, err = s.unlockWrite(ctx, u)
	}
	if err != nil {
		f.st.Writing = time.Time{}
		if !directory.MayHaveApplied(err) {
			// refused: nothing was written, no later check is needed
			f.st.PasswordSetBefore = nil
		}
		if uerr := s.updateFlow(context.WithoutCancel(ctx), f); uerr != nil {
			s.log.Error("releasing a flow failed", "request_id", m.RequestID, "error", uerr.Error())
		}
		s.record(ctx, m, kind+".completed", u.ID, "refused", map[string]string{"reason": dirReason(err)})
		return false, s.writeProblem(ctx, u, err)
	}
	s.recordWrite(ctx, m, u, f, kind, "success", unlocked)
	return unlocked, nil
}

// staleMethod reports whether meth was verified within the cooling-off
// before the directory's last change of u's password (security notes:
// methods added before a password change). The change may have been made
// anywhere (Windows, another tool, this gateway): the method was added
// with a password that has since been replaced, possibly by the user
// taking their account back. Such a method never counts again; the user
// removes it and adds it anew.
func (s *Service) staleMethod(meth store.Method, u *directory.User) bool {
	changed := u.Status.PasswordChanged
	if s.o.CoolingOff <= 0 || changed.IsZero() || meth.VerifiedAt.IsZero() {
		return false
	}
	return !meth.VerifiedAt.After(changed) && changed.Sub(meth.VerifiedAt) < s.o.CoolingOff
}

// recordWrite records the directory write of flow f once: of the
// completions that get here for one flow (the writer, and a retry that
// found the password already moved) exactly one goes on, and that one
// ends every open flow and session of the account, audits with outcome
// and tells the user. The claim is a counter of its own, keyed by the
// flow's binding secret, not the flow row: whatever happened to the flow
// during the write (updated, rotated, expired, deleted), the write is
// recorded. unlocked is an unlock's report that it ended a lock.
func (s *Service) recordWrite(ctx context.Context, m Meta, u *directory.User, f liveFlow, kind, outcome string, unlocked bool) {
	if f.st.Recorded != "" {
		return // recorded by a version that marked the flow
	}
	ctx = context.WithoutCancel(ctx)
	if n, err := s.d.Store.Hit(ctx, "recorded:"+flowBinding(f), recordedWindow, recordedAt(f)); err != nil {
		// the store is in trouble: record all the same, as far as it goes
		s.log.Error("claiming the record of a write failed", "request_id", m.RequestID, "error", err.Error())
	} else if n > 1 {
		return // another completion recorded it
	}
	event := "unlocked"
	switch {
	case kind == store.FlowReset:
		event = "password_reset"
	case !unlocked:
		// told all the same (someone proved the methods), in words
		// that do not say "unlocked": the directory said, at the
		// write, that there was no lock to end
		event = "unlock_not_locked"
	}
	// the directory forgets its count of wrong passwords at a reset (with
	// its unlock) and at an unlock of a locked account, on OpenLDAP and AD
	// alike (directory's conformance test "failures forgotten after a
	// reset and an unlock"): the gateway forgets its own then too, or the
	// new password would meet the spent budget at the next sign-in. An
	// unlock of an account that is not locked changes nothing on OpenLDAP,
	// so the count stays, kept below the directory's threshold. Whether the
	// unlock ended a lock is the directory's answer at the write, not the
	// status read when the completion began: an unlock elsewhere in between
	// followed by new wrong passwords leaves a count the directory keeps.
	var resetKeys []string
	if kind == store.FlowReset && s.o.UnlockOnReset || event == "unlocked" {
		resetKeys = []string{bindKey(u)}
	}
	s.passwordWritten(ctx, m, u, passwordWrite{resetKeys: resetKeys, sessions: kind == store.FlowReset,
		event: kind + ".completed", outcome: outcome, notice: event})
	if kind == store.FlowReset {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.noticeAdmins(ctx, u, m)
		}()
	}
}

// recordedWindow is the counter window of the "recorded" claim: every
// completion of a flow counts in the window that holds recordedAt, which
// ends a day or more after the flow began, long after the flow and any
// write of it.
const recordedWindow = 48 * time.Hour

// recordedAt is the time every claim to record f is counted at: fixed
// for the flow (its creation time never changes), so that its claims
// meet in one window.
func recordedAt(f liveFlow) time.Time { return f.CreatedAt.Add(recordedWindow / 2) }

// writing reports whether a completion's claim on f is live: its
// directory write may be under way.
func (s *Service) writing(f liveFlow) bool {
	return !f.st.Writing.IsZero() && s.now().Sub(f.st.Writing) < writeLease
}

// proofClosed is why flow f takes no more proofs or challenges, or nil:
// a completion is writing the password (its claim is live). A proof or a
// challenge then could only change a flow whose password is being
// written. Only a real, proven flow is ever claimed (a decoy never is),
// so the refusal tells nothing of the name. A flow whose proofs already
// add up still takes more: the completion may refuse one of them (too
// new, or of a kind that does not count) and ask for another.
func (s *Service) proofClosed(f liveFlow) *Problem {
	if s.writing(f) {
		return problem(CodeFlowExpired, errors.New("flow is being completed"))
	}
	return nil
}

// writeLease is how long a completion's claim on its flow holds off
// another completion: longer than any directory write may take.
const writeLease = time.Minute
