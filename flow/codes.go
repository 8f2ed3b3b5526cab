package flow

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// Codes sent to an address (codeChannel: email, SMS): sent for a flow's
// method by its Challenge, checked by its Verify, and rendered by its
// message.

// sendFlowCode sends a code to the offered method c.o. A fake method (an
// unknown or ineligible user) gets a code issued and never sent: the work
// and the answer are the same.
func sendFlowCode(ctx context.Context, c *challenge) error {
	s, f, o, m := c.s, c.f, c.o, c.m
	if slices.Contains(f.Verified, o.ID) || s.proofClosed(f) != nil {
		return nil // nothing to send: proven already, or being completed
	}
	// A full outbox refuses every flow alike, before anything is spent
	// (decided from the queue of every instance, never from the name).
	if s.out.busy() {
		s.record(ctx, m, "blocked", f.AccountID, "outbox_busy", nil)
		return problem(CodeBusy, nil)
	}
	// Budgets first: a throttled send must not replace the live code (and
	// reset its tries). Every flow spends the account's budget, real or not.
	acctOK := s.hit(ctx, sendKey(f.st.Acct), s.o.Limits.SendsPerAccount, s.o.Limits.Window)
	var meth *store.Method
	if o.real && f.AccountID != "" {
		mt, err := s.d.Store.GetMethod(ctx, f.AccountID, o.ID)
		if err != nil {
			// removed since the flow started: nothing to send
			s.log.Info("method of a flow no longer exists", "request_id", m.RequestID)
			return nil
		}
		limit := "limits.sends_per_account"
		if acctOK {
			limit = s.sendBudget(ctx, mt)
		}
		if limit != "" {
			s.record(ctx, m, "blocked", f.AccountID, "send_budget", map[string]string{"method": o.ID, "limit": limit})
			s.demoNotSent(mt.Type, mt.Address, c.kind, limit)
			return nil // the same 202: a throttled send looks like any other
		}
		meth = &mt
	}
	code := newCode(s.o.CodeLength)
	sc := store.Code{FlowID: f.ID, Purpose: c.kind, MethodID: o.ID, AccountID: f.AccountID,
		Hash: s.k.codeHash(flowBinding(f), c.kind, o.ID, code), ExpiresAt: s.now().Add(s.o.CodeTTL)}
	// The message is written with the code, in one transaction: a real
	// one, or a decoy row (never sent) so that the store does the same
	// work for every name. It leaves once this answer has left (the send
	// time is kept in the row), so the work of sending cannot weigh on the
	// answer's time.
	at, expires := sendTime(c.start.Add(s.padSend.target())), sc.ExpiresAt
	msg := s.out.decoyRow(o.Type, m, c.kind, at, expires)
	if meth != nil {
		if j, ok := s.codeMessage(*meth, c.kind, code, m); ok {
			msg = s.out.row(j, store.OutboxCode, at, expires)
		}
	}
	if err := s.d.Store.IssueCodeWithMessage(ctx, sc, msg); err != nil {
		return storeProblem(err)
	}
	s.out.written(msg)
	// queued: code.delivered follows once the server accepted it
	s.record(ctx, m, c.kind+".code_sent", f.AccountID, "queued", map[string]string{"method": o.ID, "type": o.Type, "to": o.Hint})
	return nil
}

// verifyFlowCode checks the code of a try against the one sent for the
// flow's method (a fake method's code never counts).
func verifyFlowCode(ctx context.Context, a *attempt) (verdict, error) {
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
	err := s.d.Store.RedeemCode(ctx, f.ID, a.kind, o.ID, s.k.codeHash(flowBinding(*f), a.kind, o.ID, code), s.o.MaxTries, s.now())
	if err != nil || !o.real || f.AccountID == "" {
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrCodeMismatch) {
			return verdict{}, storeProblem(err)
		}
		return wrong(CodeInvalidCode, ""), nil
	}
	return verdict{proven: true}, nil
}

// codeMessage is the message that carries code to meth's address, for
// purpose (a flow's kind, or "register").
func (s *Service) codeMessage(meth store.Method, purpose, code string, m Meta) (job, bool) {
	ch, ok := channelOf(meth.Type)
	if !ok {
		return job{}, false
	}
	data := codeMail{Product: s.o.ProductName, Code: code, Minutes: int(s.o.CodeTTL / time.Minute), Purpose: purpose,
		URL: s.o.PublicURL.String(), Helpdesk: s.live().Helpdesk}
	j, ok := ch.message(s, meth, data, m)
	j.purpose = purpose // the audit says what the code was for
	return j, ok
}

// sendBudget spends the destination's budget and the kind's own (for SMS,
// the hourly SMS budgets): "" when the message may go, else the limits key
// of the spent budget.
func (s *Service) sendBudget(ctx context.Context, meth store.Method) string {
	if !s.hit(ctx, "dest:"+meth.Type+":"+store.NormalizeAddress(meth.Type, meth.Address), s.o.Limits.SendsPerDestination, s.o.Limits.Window) {
		return "limits.sends_per_destination"
	}
	if ch, ok := channelOf(meth.Type); ok {
		return ch.spendBudget(ctx, s, meth.Address)
	}
	return ""
}
