package flow

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/store"
)

// questionsMethod is a set of security questions (questions.go): asked
// only once another method is proven in the flow (FlowQuestions), never
// enough alone, and never what makes a flow old enough.
type questionsMethod struct{}

func (questionsMethod) Name() string              { return MethodQuestions }
func (questionsMethod) Available(s *Service) bool { return s.questionsEnabled() }

// Hint: the address holds the questions and hashes.
func (questionsMethod) Hint(store.Method) string { return questionsHint }
func (questionsMethod) Strong() bool             { return false }
func (questionsMethod) ProofShape() proofShape   { return proofAnswers }
func (questionsMethod) CountsOnce() bool         { return false }

func (questionsMethod) single() {}

// Challenge sends nothing: the questions are shown by FlowQuestions. Real
// and fake ones alike get the same 202 after the same padded time.
func (questionsMethod) Challenge(context.Context, *challenge) (*PasskeyCeremony, error) {
	return nil, nil
}

// Verify checks the answers to the flow's questions: every asked question
// answered once, every answer right. One try spends one unit of the
// account's budget of wrong codes, before the check.
func (questionsMethod) Verify(ctx context.Context, a *attempt) (verdict, error) {
	s, f, o := a.s, a.f, a.o()
	asked, proven := s.questionsOf(*f, a.offered, o.ID)
	if !proven {
		return verdict{}, problem(CodeNotVerified, errNotAfterProof)
	}
	if slices.Contains(f.Verified, o.ID) {
		return verdict{again: true}, nil
	}
	if p := a.open(); p != nil {
		return verdict{}, p
	}
	// the shape is checked before anything is spent or hashed
	given := map[string]string{}
	for _, an := range a.p.Answers {
		if _, dup := given[an.Question]; dup || utf8.RuneCountInString(an.Answer) > 4*MaxAnswerLength ||
			!slices.ContainsFunc(asked, func(q Question) bool { return q.ID == an.Question }) {
			return verdict{}, problem(CodeInvalidRequest, errors.New("answers do not match the questions asked"))
		}
		given[an.Question] = an.Answer
	}
	if len(given) != len(asked) || len(asked) == 0 {
		return verdict{}, problem(CodeInvalidRequest, errors.New("answers do not match the questions asked"))
	}
	if p := a.spend(ctx, CodeWrongAnswers); p != nil {
		return verdict{}, p
	}
	var set storedQuestions
	if meth, ok := a.stored(ctx); ok {
		var stored storedQuestions
		if err := json.Unmarshal([]byte(meth.Secret), &stored); err != nil {
			// checked as a fake set: the answers are wrong
			s.log.Error("a security questions method does not decode", "request_id", a.m.RequestID, "method", o.ID)
		} else {
			set = stored
		}
	}
	if !s.answersMatch(set, asked, given, o.ID) {
		return wrong(CodeWrongAnswers, "wrong_answers"), nil
	}
	if _, err := s.d.Store.Hit(context.WithoutCancel(ctx), questionsOKKey(f.AccountID, o.ID), questionsRotation, s.now()); err != nil {
		s.log.Error("counting a correct answer failed", "request_id", a.m.RequestID, "error", err.Error())
	}
	return verdict{proven: true}, nil
}
