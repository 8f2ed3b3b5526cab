package flow

import (
	"context"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// Re-confirmation (policy.reconfirm_days; Entra's "number of days before
// users are asked to re-confirm their authentication information"): a
// user who signs in to the registration pages and whose methods were last
// verified, or last confirmed, longer ago than that is asked to check
// them; "they are still right" is audited (registration.reconfirmed) and
// is the new date. 0 never asks.

// ReconfirmDue reports whether the signed-in user is asked to re-confirm
// their methods now, and since when the last confirmation dates. False
// when re-confirmation is off or nothing verified is registered.
func (s *Service) ReconfirmDue(ctx context.Context, sess store.Session) (bool, time.Time, error) {
	days := s.live().ReconfirmDays
	if days <= 0 {
		return false, time.Time{}, nil
	}
	ms, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return false, time.Time{}, storeProblem(err)
	}
	var last time.Time
	for _, m := range ms {
		if m.Verified && m.VerifiedAt.After(last) {
			last = m.VerifiedAt
		}
	}
	if last.IsZero() {
		return false, time.Time{}, nil
	}
	evs, err := s.d.Store.ListAudit(ctx, store.AuditQuery{AccountID: sess.AccountID, Type: "registration.reconfirmed", Limit: 1})
	if err != nil {
		return false, time.Time{}, storeProblem(err)
	}
	if len(evs) == 1 && evs[0].Time.After(last) {
		last = evs[0].Time
	}
	return s.now().Sub(last) > time.Duration(days)*24*time.Hour, last, nil
}

// Reconfirm records that the signed-in user checked their methods and
// they are still right.
func (s *Service) Reconfirm(ctx context.Context, sess store.Session, m Meta) error {
	if p := s.needsReauth(sess); p != nil {
		return p
	}
	// only when asked: nothing to record otherwise (and no audit rows at
	// will)
	if due, _, err := s.ReconfirmDue(ctx, sess); err != nil || !due {
		return err
	}
	ev := s.auditEvent(m, "registration.reconfirmed", sess.AccountID, "success", nil)
	if err := s.d.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		return storeProblem(err)
	}
	return nil
}
