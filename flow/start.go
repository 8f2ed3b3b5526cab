package flow

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/store"
)

// StartFlow begins a reset or an unlock. Every username, existing or not,
// eligible or not, gets the same kind of answer after the same work: a flow
// and a list of masked methods (real ones only for an eligible account; a
// stable fake set otherwise). Nothing is sent and nothing changes on the
// account. Three steps: take the budgets (takeStartBudgets), resolve the
// name to an account, real or decoy, with the same work (resolveStart),
// build and store the answer (storeStart).
func (s *Service) StartFlow(ctx context.Context, kind, username string, m Meta) (FlowView, error) {
	if kind != store.FlowReset && kind != store.FlowUnlock {
		return FlowView{}, problem(CodeInvalidRequest, nil)
	}
	name := canonicalUsername(username)
	if badUsername(name) {
		return FlowView{}, problem(CodeInvalidRequest, nil)
	}
	if err := s.takeStartBudgets(ctx, m); err != nil {
		return FlowView{}, err
	}
	start, real := time.Now(), false
	defer func() { s.padStart.wait(ctx, start, real) }()
	acct, err := s.resolveStart(ctx, name)
	if err != nil {
		return FlowView{}, err
	}
	f, offered, err := s.storeStart(ctx, kind, name, acct, m)
	if err != nil {
		return FlowView{}, err
	}
	real = f.AccountID != ""
	return s.flowView(f, offered), nil
}

// takeStartBudgets is the first step of a start. Requests without any
// proof create a flow and counters: their total is bounded, whatever the
// number of client addresses. A client address (and an IPv6 site) over
// its own budget is refused first and does not count toward the total, so
// that one client cannot spend everyone's starts; the refusal names no
// account (the budget is the address's), so it is a visible too_many and
// nothing is stored. Over the total, every name gets the same refusal.
// The address's counters and the total are taken in one transaction (the
// total only when the address is within budget); the account's counter is
// taken with the flow (storeStart).
func (s *Service) takeStartBudgets(ctx context.Context, m Meta) error {
	lim := s.o.Limits
	guards := s.addressHits("start", m.ClientIP, lim.StartsPerIP)
	hits := append(slices.Clone(guards), store.CounterHit{Key: "start:total", Window: lim.Window})
	counts, err := s.d.Store.HitMany(context.WithoutCancel(ctx), hits, s.now())
	if err != nil {
		return storeProblem(err)
	}
	for i, g := range guards {
		if counts[i] > g.Limit {
			return s.addressOver(ctx, m, "start", i)
		}
	}
	if counts[len(guards)] > lim.StartsTotal {
		s.record(ctx, m, "blocked", "", "start_total_budget", nil)
		return problem(CodeTooMany, errors.New("total start budget spent"))
	}
	return nil
}

// startAccount is what a start resolved a name to.
type startAccount struct {
	// found is the directory entry the name found, nil for none
	found *directory.User
	// required is the number of methods to prove
	required int
	// account and dn are the account's, "" unless it is eligible and
	// has methods to offer
	account, dn string
	// outcome is the audit outcome of the start
	outcome string
	// offered are the account's methods to offer (none for a decoy)
	offered []Offered
	// kinds are the kinds the account's tiers require, types the method
	// types it may use
	kinds [][]string
	types []string
}

// resolveStart is the second step of a start: the name's account and
// what it may offer, with the same work for a name that is no account (a
// group check and a store read).
func (s *Service) resolveStart(ctx context.Context, name string) (startAccount, error) {
	// counts for fake methods are taken once a day, by whichever request
	// comes first: any name's, not only an unknown one's
	s.decoyModel(ctx)
	a := startAccount{required: s.baseRequired(), outcome: "unknown"}
	u, err := s.d.Directory.Lookup(ctx, name)
	switch {
	case err == nil:
		a.found = u
		dec, derr := s.decide(ctx, u)
		if derr != nil {
			return a, s.dirProblem(derr)
		}
		methods, serr := s.d.Store.ListMethods(ctx, u.ID)
		if serr != nil {
			return a, storeProblem(serr)
		}
		a.outcome = "not_eligible:" + dec.Reason
		if !dec.Eligible {
			return a, nil
		}
		a.outcome, a.required = "eligible", dec.MethodsRequired
		allowed := s.methodsAvailable(dec.Methods)
		for _, meth := range methods {
			if meth.Verified && slices.Contains(allowed, meth.Type) {
				a.offered = append(a.offered, Offered{ID: meth.ID, Type: meth.Type, Hint: hint(meth), real: true})
			}
		}
		a.offered, a.kinds, a.types = withoutLoneQuestions(a.offered), dec.RequireKinds, allowed
		if len(a.offered) > 0 {
			a.account, a.dn = u.ID, u.DN
		} else {
			a.outcome = "no_methods"
		}
	case errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrAmbiguous):
		// the same work as for a real account: a group check and a store read
		_, _ = s.d.Directory.Membership(ctx, &directory.User{DN: "cn=latchkey-decoy-" + hex.EncodeToString(mac(s.k.decoy, name)[:6])}, s.eligibility().AllGroups())
		_, _ = s.d.Store.ListMethods(ctx, "decoy-"+hex.EncodeToString(mac(s.k.decoy, name)[:8]))
	default:
		return a, s.dirProblem(err)
	}
	return a, nil
}

// startAnswer is a start's flow, what it offers and its audit events.
type startAnswer struct {
	f       liveFlow
	row     store.Flow
	offered []Offered
	events  []store.AuditEvent
}

// storeStart is the last step of a start: the answer within the account's
// budget and the one over it are both made, then one transaction counts
// the account's start and stores the flow and events of the one that
// applies.
func (s *Service) storeStart(ctx context.Context, kind, name string, a startAccount, m Meta) (liveFlow, []Offered, error) {
	now := s.now()
	blocked, err := s.startAnswer(ctx, kind, name, a, false, now, m)
	if err != nil {
		return liveFlow{}, nil, err
	}
	within, err := s.startAnswer(ctx, kind, name, a, true, now, m)
	if err != nil {
		return liveFlow{}, nil, err
	}
	var res startAnswer
	_, err = s.d.Store.HitCreateFlow(context.WithoutCancel(ctx), store.CounterHit{Key: startKey(accountKey(a.found, name)), Window: s.o.Limits.Window}, now,
		func(n int) (store.Flow, []store.AuditEvent) {
			res = blocked
			if n <= s.o.Limits.StartsPerAccount {
				res = within
			}
			return res.row, res.events
		})
	if err != nil {
		return liveFlow{}, nil, storeProblem(err)
	}
	for _, ev := range res.events {
		s.logAudit(ev)
	}
	return res.f, res.offered, nil
}

// startAnswer is the answer of a start within the account's budget (ok)
// or over it.
func (s *Service) startAnswer(ctx context.Context, kind, name string, a startAccount, ok bool, now time.Time, m Meta) (startAnswer, error) {
	offered, account, dn, outcome := slices.Clone(a.offered), a.account, a.dn, a.outcome
	var events []store.AuditEvent
	if !ok {
		// Over budget: the same answer as otherwise (the same hints, so
		// that asking again shows no change), but nothing can be sent.
		for i := range offered {
			offered[i].real = false
		}
		events = append(events, s.newAuditEvent(m, "blocked", account, "start_budget", nil))
		account, dn, outcome = "", "", "blocked"
	}
	if len(offered) == 0 || len(offered) < a.required {
		offered = append(offered, s.decoys(ctx, name, offered, a.required)...)
	}
	lf := liveFlow{Flow: store.Flow{ID: newToken(), Kind: kind, AccountID: account, Required: a.required, CreatedAt: now, ExpiresAt: now.Add(s.o.FlowTTL)},
		st: flowState{Offered: offered, DN: dn, Acct: accountKey(a.found, name), Bind: newToken(), Name: name}}
	s.flowExtras(ctx, &lf.st, name, account, a.kinds, a.types)
	row, err := lf.row()
	if err != nil {
		return startAnswer{}, problem(CodeInternal, err)
	}
	events = append(events, s.newAuditEvent(m, kind+".started", account, outcome, nil))
	return startAnswer{f: lf, row: row, offered: offered, events: events}, nil
}
