package flow

import (
	"context"
	"errors"
	"slices"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// flowBinding is what a flow's codes are bound to: a secret fixed for the
// flow's life (its id changes when a method is proven; live codes must
// survive that). Flows from before the binding existed use their id.
func flowBinding(f liveFlow) string {
	if b := f.st.Bind; b != "" {
		return b
	}
	return f.ID
}

func toJSON(o []Offered) []offeredJSON {
	out := make([]offeredJSON, len(o))
	for i, m := range o {
		out[i] = offeredJSON{ID: m.ID, Type: m.Type, Hint: m.Hint, Real: m.real}
	}
	return out
}

// flowView is what a flow shows: its methods in kindOrder, whoever asks.
// Until a method is proven it shows the policy's base number of methods
// required, whatever the account's tier: a stricter tier (administrators,
// IT staff) would otherwise tell anyone who types a name that the account
// exists and what it is. The true number shows from the first proof on (as
// remaining methods).
func (s *Service) flowView(f liveFlow, offered []Offered) FlowView {
	required := f.Required
	if len(f.Verified) == 0 {
		required = s.baseRequired()
	}
	// one order for every list, real or fake: see kindOrder
	methods := slices.Clone(offered)
	sortKinds(methods, func(o Offered) string { return o.Type })
	v := FlowView{ID: f.ID, Kind: f.Kind, Required: required, Methods: methods, Verified: append([]string{}, f.Verified...), Username: f.st.Name}
	v.Remaining = max(required-len(f.Verified), 0)
	if len(f.Verified) > 0 {
		v.Remaining = flowRemaining(f, offered)
		v.Needs = kindsMissing(f, offered)
		// A method is proven: the account is real and its owner may know
		// its tier and its methods. The fake methods that padded the list
		// to the tier's number before the proof go; what is left is what
		// the account registered, and whether it can ever finish.
		v.Methods = slices.DeleteFunc(v.Methods, func(o Offered) bool { return !o.real })
		v.CannotFinish = v.Remaining > 0 && !canFinish(f, v.Methods)
	}
	return v
}

// canFinish reports whether proving every real method offered would
// complete the flow's tier (its number of different methods and the kinds
// it requires).
func canFinish(f liveFlow, methods []Offered) bool {
	var kinds []string
	for _, o := range methods {
		if countsOnce(o.Type) && slices.Contains(kinds, o.Type) {
			continue
		}
		kinds = append(kinds, o.Type)
	}
	return policy.Decision{MethodsRequired: f.Required, RequireKinds: flowKinds(f)}.Remaining(kinds) == 0
}

// flowRemaining is how many more methods a flow of a real account needs
// (FlowView.Remaining once a method is proven): security questions count
// as the account's tiers let them (policy.Decision.Remaining).
func flowRemaining(f liveFlow, offered []Offered) int {
	return max(f.Required-len(f.Verified), kindsRemaining(f, offered))
}

// baseRequired is the policy's base number of methods (at least 1:
// Options.check).
func (s *Service) baseRequired() int { return s.eligibility().MethodsRequired }

// offeredOf is the methods flow f offers, a copy the caller may change.
func offeredOf(f liveFlow) []Offered { return slices.Clone(f.st.Offered) }

func (s *Service) loadFlow(ctx context.Context, kind, id string) (liveFlow, error) {
	if len(id) < store.MinSecretIDLen || len(id) > 128 {
		return liveFlow{}, problem(CodeFlowExpired, nil)
	}
	f, err := s.d.Store.GetFlow(ctx, id, s.now())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		// the store does not answer: the flow is not lost, try later
		return liveFlow{}, storeProblem(err)
	}
	if err != nil || f.Kind != kind {
		return liveFlow{}, problem(CodeFlowExpired, err)
	}
	return s.readFlow(f)
}

// readFlow decodes the state of the stored flow f; a state that does not
// decode is an internal error, logged.
func (s *Service) readFlow(f store.Flow) (liveFlow, error) {
	lf, err := readFlow(f)
	if err != nil {
		s.log.Error("a flow's state does not decode", "error", err.Error())
		return liveFlow{}, problem(CodeInternal, err)
	}
	return lf, nil
}

// Flow returns the current state of a flow.
func (s *Service) Flow(ctx context.Context, kind, id string) (FlowView, error) {
	f, err := s.loadFlow(ctx, kind, id)
	if err != nil {
		return FlowView{}, err
	}
	return s.flowView(f, offeredOf(f)), nil
}

// partialNoticeAfter is the number of wrong codes, after a first method was
// proven in the flow, at which the user is told (security notes H2).
const partialNoticeAfter = 3

// partialFailure counts a wrong code in a flow where one method is already
// proven and more are needed: someone holds one of the user's methods and
// not the other. At partialNoticeAfter such failures the user is told, once
// per flow, on every channel.
func (s *Service) partialFailure(ctx context.Context, f liveFlow, m Meta) {
	if f.AccountID == "" || len(f.Verified) == 0 || flowRemaining(f, offeredOf(f)) == 0 {
		return
	}
	f.st.PartialFailures++
	n := f.st.PartialFailures
	ctx = context.WithoutCancel(ctx)
	if err := s.updateFlow(ctx, f); err != nil {
		return // a concurrent try updated the flow: it counts instead
	}
	if n != partialNoticeAfter {
		return
	}
	s.record(ctx, m, f.Kind+".partial_failure", f.AccountID, "notified", nil)
	if u, err := s.flowUser(ctx, f); err == nil {
		s.noticeUser(ctx, u, "partial_failure", "", m)
	}
}

func (s *Service) flowUser(ctx context.Context, f liveFlow) (*directory.User, error) {
	u, err := s.d.Directory.Refresh(ctx, &directory.User{DN: f.st.DN})
	if err != nil {
		if errors.Is(err, directory.ErrUnavailable) {
			return nil, s.dirProblem(err)
		}
		return nil, problem(CodeFlowExpired, err)
	}
	if u.ID != f.AccountID {
		return nil, problem(CodeFlowExpired, errors.New("account changed during the flow"))
	}
	return u, nil
}
