package flow

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

var errAlreadyProven = errors.New("method already proven in this flow")

// SendFlowChallenge asks for the proof of one of the flow's methods: for
// a passkey it returns the assertion options (nothing is sent anywhere);
// for an email or a phone it sends a code; for an app or security
// questions it does nothing. A fake method (an unknown or ineligible
// user) gets the same work and the same answer. The hold covers the read
// of the flow: a real flow and a fake one differ in size.
func (s *Service) SendFlowChallenge(ctx context.Context, kind, flowID, methodID string, m Meta) (*PasskeyCeremony, error) {
	start := time.Now()
	f, err := s.loadFlow(ctx, kind, flowID)
	if err != nil {
		return nil, err
	}
	defer func() { s.padSend.wait(ctx, start, f.AccountID != "") }()
	i := slices.IndexFunc(f.st.Offered, func(o Offered) bool { return o.ID == methodID })
	if i < 0 {
		return nil, problem(CodeInvalidRequest, nil)
	}
	meth, ok := methodKind(f.st.Offered[i].Type)
	if !ok {
		return nil, problem(CodeInvalidRequest, nil)
	}
	return meth.Challenge(ctx, &challenge{s: s, kind: kind, f: f, o: f.st.Offered[i], m: m, start: start})
}

// SendFlowCode is SendFlowChallenge for the pages, which ask a passkey
// for its options on a page of its own.
func (s *Service) SendFlowCode(ctx context.Context, kind, flowID, methodID string, m Meta) error {
	_, err := s.SendFlowChallenge(ctx, kind, flowID, methodID, m)
	return err
}

// VerifyFlowCode checks a code for one method of the flow (VerifyFlow).
func (s *Service) VerifyFlowCode(ctx context.Context, kind, flowID, methodID, code string, m Meta) (FlowView, error) {
	return s.VerifyFlow(ctx, kind, flowID, methodID, Proof{Code: code}, m)
}

// VerifyFlowAnswers checks the answers to a flow's security questions
// (VerifyFlow).
func (s *Service) VerifyFlowAnswers(ctx context.Context, kind, flowID, methodID string, answers []Answer, m Meta) (FlowView, error) {
	return s.VerifyFlow(ctx, kind, flowID, methodID, Proof{Answers: answers}, m)
}

// VerifyFlowPasskey checks an assertion for one passkey of the flow
// (VerifyFlow).
func (s *Service) VerifyFlowPasskey(ctx context.Context, kind, flowID, methodID string, credential []byte, m Meta) (FlowView, error) {
	return s.VerifyFlow(ctx, kind, flowID, methodID, Proof{Credential: credential}, m)
}

// VerifyFlow is the one way a method is proven in a reset or unlock flow:
// load the flow, find the offered method, hold (every answer leaves at
// the same time after the read, real or fake), let the method check the
// try (it spends the failure budget before the check), record a wrong
// proof, or record the proof and rotate the flow's id.
//
// The proof's shape names the kind it is for: answers are for security
// questions only, a credential for a passkey only, a code for any other
// method (a code for a passkey is checked as a code, which no passkey is
// ever sent: it is wrong).
func (s *Service) VerifyFlow(ctx context.Context, kind, flowID, methodID string, p Proof, m Meta) (FlowView, error) {
	start := time.Now()
	f, err := s.loadFlow(ctx, kind, flowID)
	if err != nil {
		return FlowView{}, err
	}
	offered := offeredOf(f)
	idx := slices.IndexFunc(offered, func(o Offered) bool { return o.ID == methodID })
	if idx < 0 {
		return FlowView{}, problem(CodeInvalidRequest, nil)
	}
	meth, ok := verifierOf(offered[idx].Type, p)
	if !ok {
		return FlowView{}, problem(CodeInvalidRequest, nil)
	}
	defer func() { s.padVerify.wait(ctx, start, f.AccountID != "") }()
	a := &attempt{s: s, kind: kind, flowID: flowID, f: &f, offered: offered, idx: idx, p: p, m: m}
	v, err := meth.Verify(ctx, a)
	switch {
	case err != nil:
		return FlowView{}, err
	case v.again:
		return s.flowView(f, offered), nil
	case !a.spent:
		// a method that checks a proof without spending the budget is a
		// bug: refuse rather than let guesses go uncounted
		return FlowView{}, problem(CodeInternal, errors.New(meth.Name()+": proof checked without spending the failure budget"))
	case !v.proven:
		details := map[string]string{"method": methodID}
		if v.reason != "" {
			details["type"], details["reason"] = offered[idx].Type, v.reason
		}
		s.record(ctx, m, kind+".gate", f.AccountID, "failed", details)
		if v.after != nil {
			v.after()
		}
		s.partialFailure(ctx, f, m)
		return FlowView{}, problem(v.fail, nil)
	}
	s.rightCodeTry(ctx, a.try)
	return s.proveMethod(ctx, a)
}

// verifierOf is the kind that checks proof p of a method of type typ, ok
// false when the proof's shape is not one the method takes.
func verifierOf(typ string, p Proof) (recoveryMethod, bool) {
	m, ok := methodKind(typ)
	switch {
	case !ok:
		return nil, false
	case p.shape() == m.ProofShape():
		return m, true
	case p.shape() == proofCode && m.ProofShape() == proofCredential:
		return emailMethod{}, true // a code for a passkey: checked as a code nobody was sent
	}
	return nil, false
}

// proofShape is what a proof is made of.
type proofShape int

const (
	proofCode proofShape = iota
	proofAnswers
	proofCredential
)

func (p Proof) shape() proofShape {
	switch {
	case p.Credential != nil:
		return proofCredential
	case p.Answers != nil:
		return proofAnswers
	}
	return proofCode
}

// proveMethod records the tried method as proven in the flow. A proven
// method gives the flow a new id: one seen or planted before (a fixed
// cookie, a shoulder-surfed URL) cannot ride the proof. A concurrent
// change of the flow is retried on the flow as it now is; a store that
// does not answer is unavailable (5xx: the flow is not lost, try later),
// and a flow gone or changed too often is expired.
func (s *Service) proveMethod(ctx context.Context, a *attempt) (FlowView, error) {
	f, o := *a.f, a.o()
	if p := s.coolingOff(ctx, a.kind, f, a.offered, a.idx, a.m); p != nil {
		return FlowView{}, p
	}
	var err error
	for attempt := 0; ; attempt++ {
		if !slices.Contains(f.Verified, o.ID) {
			f.Verified = append(f.Verified, o.ID)
		}
		next := newToken()
		err = s.rotateFlow(ctx, f, next)
		if err == nil {
			f.ID = next
			f.Version++
			break
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return FlowView{}, storeProblem(err)
		}
		if !errors.Is(err, store.ErrConflict) || attempt > 3 {
			return FlowView{}, problem(CodeFlowExpired, err)
		}
		if f, err = s.loadFlow(ctx, a.kind, a.flowID); err != nil {
			return FlowView{}, err
		}
	}
	s.record(ctx, a.m, a.kind+".gate", f.AccountID, "passed", map[string]string{"method": o.ID, "type": o.Type})
	return s.flowView(f, a.offered), nil
}
