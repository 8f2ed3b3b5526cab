package flow

import (
	"context"
	"slices"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// recoveryMethod is one kind of recovery method: how it is named, offered,
// shown, counted, asked for and proven in a reset or unlock flow. There is
// one type per kind, in a file of its own (method_email.go, method_sms.go,
// method_totp.go, method_passkey.go, method_questions.go), and one registry
// (recoveryMethods). Adding a kind is a new file and a line in the registry
// (and, for the web face, its row in gateway/kinds.go, webKinds).
//
// A method's answers must be the same for a real and a fake method (an
// unknown or ineligible name's): the same work, the same answer, the same
// audit event; attempt.stored tells them apart where it must.
type recoveryMethod interface {
	// Name is the method type, as stored (store.Method.Type), configured
	// (eligibility methods) and shown in the API.
	Name() string
	// Available reports whether the gateway can offer the kind: a sender
	// configured, a relying party, an admin list of questions.
	Available(s *Service) bool
	// Hint is how a registered method of the kind is shown in a flow
	// (masked, or a fixed text when it has no address to show).
	Hint(m store.Method) string
	// Strong reports whether a proof of the kind can stand on its own:
	// counts alone, and makes a flow old enough for the cooling-off.
	// Security questions are the one weak kind.
	Strong() bool
	// CountsOnce reports whether every method of the kind of one account
	// together counts as one proof (authenticator apps, passkeys).
	CountsOnce() bool
	// Challenge starts the proof of an offered method in a flow: sends a
	// code, or answers passkey assertion options, or does nothing (the
	// app shows the code; the questions are asked by FlowQuestions).
	Challenge(ctx context.Context, c *challenge) (*PasskeyCeremony, error)
	// ProofShape is what a proof of the kind is made of: a code, answers
	// or a passkey's assertion (verifierOf).
	ProofShape() proofShape
	// Verify checks the proof of a try. It runs its own checks of the try
	// first (a.alreadyProven, a.open), must spend the failure budget (a.spend)
	// before it checks a proof, and answers the verdict; VerifyFlow
	// records the outcome.
	Verify(ctx context.Context, a *attempt) (verdict, error)
}

// recoveryMethods is the registry of kinds, in kindOrder: the one order in
// which every list of offered methods is shown (see kindOrder).
var recoveryMethods = []recoveryMethod{emailMethod{}, smsMethod{}, totpMethod{}, passkeyMethod{}, questionsMethod{}}

// MethodTypes are the types of every kind in the registry, in its order.
func MethodTypes() []string {
	out := make([]string, 0, len(recoveryMethods))
	for _, m := range recoveryMethods {
		out = append(out, m.Name())
	}
	return out
}

// methodKind is the kind named typ.
func methodKind(typ string) (recoveryMethod, bool) {
	i := slices.IndexFunc(recoveryMethods, func(m recoveryMethod) bool { return m.Name() == typ })
	if i < 0 {
		return nil, false
	}
	return recoveryMethods[i], true
}

// strongKind reports whether typ is a kind that stands on its own (an
// unknown kind does not).
func strongKind(typ string) bool {
	m, ok := methodKind(typ)
	return ok && m.Strong()
}

// countsOnce reports whether every method of this type together counts as
// one proof.
func countsOnce(typ string) bool {
	m, ok := methodKind(typ)
	return ok && m.CountsOnce()
}

// countKey is what two proven methods share when they count as one
// toward methods_required: every app of an account, every passkey, two
// addresses of one mailbox (mailboxKey); else each counts.
func countKey(meth store.Method) string {
	if countsOnce(meth.Type) {
		return meth.Type
	}
	if ch, ok := channelOf(meth.Type); ok {
		return ch.countKey(meth)
	}
	return meth.Type + ":" + meth.ID
}

// selfCoded is a kind whose enrolment is proven with a code it makes
// itself (an authenticator app), not one sent to it.
type selfCoded interface {
	// checkEnrolment checks the first code of the new method meth; reason
	// says why a wrong one is wrong.
	checkEnrolment(ctx context.Context, s *Service, meth store.Method, code string) (reason string, ok bool, err error)
	// enrolled is run once meth is verified.
	enrolled(ctx context.Context, s *Service, meth store.Method, m Meta)
}

// single is a kind an account has at most one of (an app, a set of
// questions): a fake set never shows two.
type single interface{ single() }

func singleKind(typ string) bool {
	k, _ := methodKind(typ)
	_, ok := k.(single)
	return ok
}

// codeChannel is a kind whose codes are sent to an address the user typed
// (email, SMS): registered with a code, budgeted per destination, and
// drawn for fake methods from the hints of real ones (decoys.go).
type codeChannel interface {
	recoveryMethod
	// normalize checks a typed address and returns it as stored.
	normalize(s *Service, in string) (string, *Problem)
	// spendBudget spends the budgets of the kind for one message to addr
	// beyond the destination's own (sendBudget). It answers "" when the
	// message may go, else the limits key of the budget that is spent.
	spendBudget(ctx context.Context, s *Service, addr string) string
	// countKey is what two proven methods of the kind share when they
	// count as one toward methods_required.
	countKey(meth store.Method) string
	// message is the message that carries code to meth's address.
	message(s *Service, meth store.Method, data codeMail, m Meta) (job, bool)
	// learn counts the hint of a registered method into the tallies fake
	// hints are drawn from.
	learn(h string, emails, phones *tally[string])
	// decoyHint draws the hint of fake method n of name key; u draws a
	// number in [0, 1) from its parts.
	decoyHint(s *Service, dm *decoyModel, u func(...string) float64, key, n string) string
}

// channelOf is the kind named typ if it sends codes to an address.
func channelOf(typ string) (codeChannel, bool) {
	m, _ := methodKind(typ)
	c, ok := m.(codeChannel)
	return c, ok
}

// Proof is what a try offers: a code, the answers to security questions,
// or a passkey's assertion (one of them).
type Proof struct {
	Code       string
	Answers    []Answer
	Credential []byte
}

// challenge is one ask for a proof in a flow (SendFlowChallenge).
type challenge struct {
	s     *Service
	kind  string
	f     liveFlow
	o     Offered
	m     Meta
	start time.Time
}

// attempt is one try to prove an offered method in a flow (verifyFlow).
type attempt struct {
	s       *Service
	kind    string
	flowID  string
	f       *liveFlow
	offered []Offered
	idx     int
	p       Proof
	m       Meta
	// spent is set once the try counted toward the failure budget, try
	// is that count (taken back when the proof is right)
	spent bool
	try   codeTry
}

// o is the method tried.
func (a *attempt) o() Offered { return a.offered[a.idx] }

// verdict is what a method's check of a try says.
type verdict struct {
	// proven: the proof is right; record it
	proven bool
	// again: the method is proven in this flow already; answer the flow
	// as it is
	again bool
	// fail is the problem code of a wrong proof, reason why (in the
	// audit event; "" names only the method)
	fail, reason string
	// after runs once a wrong proof is recorded
	after func()
}

// wrong is the verdict of a wrong proof.
func wrong(code, reason string) verdict { return verdict{fail: code, reason: reason} }

// alreadyProven refuses a try of a method the flow has proven already
// with code.
func (a *attempt) alreadyProven(code string) *Problem {
	if slices.Contains(a.f.Verified, a.o().ID) {
		return problem(code, errAlreadyProven)
	}
	return nil
}

// open refuses a try on a flow that takes no more proofs (proofClosed).
func (a *attempt) open() *Problem { return a.s.proofClosed(*a.f) }

// spend counts the try toward the account's budget of wrong proofs
// before the proof is checked (countCodeTry), so that concurrent guesses
// cannot all pass the check; VerifyFlow takes a right one back. Over the
// budget the try is refused as a wrong one, with code.
func (a *attempt) spend(ctx context.Context, code string) *Problem {
	a.spent = true
	try, ok := a.s.countCodeTry(ctx, a.f.st.Acct)
	a.try = try
	if !ok {
		a.s.record(ctx, a.m, "blocked", a.f.AccountID, "code_budget", nil)
		return problem(code, nil)
	}
	return nil
}

// stored is the registered method behind the offered one, ok false for a
// fake one, one offered over budget, or one removed, unverified or
// replaced since the flow began.
func (a *attempt) stored(ctx context.Context) (store.Method, bool) {
	o := a.o()
	if !o.real || a.f.AccountID == "" {
		return store.Method{}, false
	}
	meth, err := a.s.d.Store.GetMethod(ctx, a.f.AccountID, o.ID)
	if err != nil || !meth.Verified || meth.Type != o.Type {
		return store.Method{}, false
	}
	return meth, true
}
