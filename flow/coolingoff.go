package flow

import (
	"context"
	"slices"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// coolingOff says the cooling-off up front. It is asked once offered[idx]
// is proven on a real account's flow, before the proof is recorded, so
// that a flow that cannot finish says so at the proof and never after the
// new password is typed. It refuses (method_too_new, with the time the
// proofs become usable) when no way to finish the flow goes through a
// method verified at least CoolingOff ago: the methods proven so far, this
// one included, are all too new, and either they are enough to finish or
// no method left to prove is old enough. Security questions never make a
// flow old enough. Before a proof nothing is said: the answer would tell
// anyone who types a name about the account's methods.
//
// The refused proof is not recorded, so the flow stays open for another
// method; CompleteFlow checks the same rule again.
func (s *Service) coolingOff(ctx context.Context, kind string, f liveFlow, offered []Offered, idx int, m Meta) *Problem {
	if s.o.CoolingOff <= 0 || f.AccountID == "" {
		return nil
	}
	methods, err := s.d.Store.ListMethods(ctx, f.AccountID)
	if err != nil {
		return storeProblem(err)
	}
	now := s.now()
	byID := make(map[string]store.Method, len(methods))
	for _, meth := range methods {
		byID[meth.ID] = meth
	}
	// ready is when a method can make the flow old enough (zero: never)
	ready := func(id string) time.Time {
		meth, ok := byID[id]
		if !ok || !meth.Verified || !strongKind(meth.Type) {
			return time.Time{}
		}
		return meth.VerifiedAt.Add(s.o.CoolingOff)
	}
	old := func(id string) bool { r := ready(id); return !r.IsZero() && !now.Before(r) }
	proven := append(slices.Clone(f.Verified), offered[idx].ID)
	if slices.ContainsFunc(proven, old) {
		return nil
	}
	after := f
	after.Verified = proven
	var candidates []string
	if flowRemaining(after, offered) == 0 {
		candidates = proven
	} else {
		for _, o := range offered {
			if o.real && !slices.Contains(proven, o.ID) && old(o.ID) {
				return nil // a method old enough is left to prove
			}
			if o.real {
				candidates = append(candidates, o.ID)
			}
		}
	}
	var at time.Time
	for _, id := range candidates {
		if r := ready(id); !r.IsZero() && (at.IsZero() || r.Before(at)) {
			at = r
		}
	}
	details := map[string]string{"method": offered[idx].ID, "type": offered[idx].Type}
	if !at.IsZero() {
		details["usable_at"] = at.UTC().Format(time.RFC3339)
	}
	s.record(ctx, m, kind+".gate", f.AccountID, "method_too_new", details)
	p := problem(CodeMethodTooNew, nil)
	if !at.IsZero() {
		// to the next whole second: not a moment before it is true
		p.UsableAt = at.UTC().Add(time.Second - 1).Truncate(time.Second)
	}
	return p
}
