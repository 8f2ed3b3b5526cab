package flow

import (
	"context"
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
)

// Guessing an authenticator app's codes (six digits, three accepted at a
// time) is bounded by more than the hourly budget of wrong codes: wrong
// app codes of an account are counted over limits.app_failure_window, the
// user is told on every channel once limits.app_failures_notify of them
// have been entered (once a window, before any proof too), and
// limits.app_failures of them suspend the account's apps for resets and
// unlocks until the user signs in with the password. Unknown and
// ineligible names are counted, told nobody and suspended alike: the
// answers (a wrong code's) and the store's work are the same for every
// name, and the notice is sent apart from the answer.

// appBlockWindow is the counter window of a suspension: counted over the
// current and the previous window, it holds for a year at least unless
// the user signs in.
const appBlockWindow = 365 * 24 * time.Hour

func appFailKey(acct string) string   { return "appfail:" + acct }
func appNoticeKey(acct string) string { return "appnotice:" + acct }
func appBlockKey(acct string) string  { return "appblock:" + acct }

// twoWindows is key's count over the window holding now and the one
// before it, after one hit when hit is set: a window boundary does not
// start the count again.
func (s *Service) twoWindows(ctx context.Context, key string, window time.Duration, hit bool) (int, error) {
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	var n int
	var err error
	if hit {
		n, err = s.d.Store.Hit(ctx, key, window, now)
	} else {
		n, err = s.d.Store.Count(ctx, key, window, now)
	}
	if err != nil {
		return 0, err
	}
	prev, err := s.d.Store.Count(ctx, key, window, now.Add(-window))
	return n + prev, err
}

// appBlocked reports whether the apps of the account with counter key
// acct are suspended for resets.
func (s *Service) appBlocked(ctx context.Context, acct string) (bool, error) {
	n, err := s.twoWindows(ctx, appBlockKey(acct), appBlockWindow, false)
	return n > 0, err
}

// appFailed counts a wrong app code in flow f. At the notice threshold
// (once a window) and at the cap (once) the event is audited and the user
// told on every channel.
func (s *Service) appFailed(ctx context.Context, f liveFlow, methodID string, m Meta) {
	acct, l := f.st.Acct, s.o.Limits
	n, err := s.twoWindows(ctx, appFailKey(acct), l.AppFailureWindow, true)
	if err != nil {
		s.log.Error("counting a wrong app code failed", "request_id", m.RequestID, "error", err.Error())
		return
	}
	var outcome, event, key string
	var window time.Duration
	switch {
	case n >= l.AppFailures:
		outcome, event, key, window = "app_blocked", "app_blocked", appBlockKey(acct), appBlockWindow
	case n >= l.AppFailuresNotify:
		outcome, event, key, window = "notified", "app_guessing", appNoticeKey(acct), l.AppFailureWindow
	default:
		return
	}
	// of the wrong codes past a threshold, the first of the window tells
	if c, err := s.d.Store.Hit(context.WithoutCancel(ctx), key, window, s.now()); err != nil || c != 1 {
		if err != nil {
			s.log.Error("counting a wrong app code failed", "request_id", m.RequestID, "error", err.Error())
		}
		return
	}
	s.record(ctx, m, f.Kind+".app_failures", f.AccountID, outcome, map[string]string{"method": methodID, "count": strconv.Itoa(n)})
	if f.AccountID != "" {
		s.noticeApart(ctx, f, event, m)
	}
}

// noticeApart tells the user of flow f about event on every channel,
// after the answer: the directory read and the messages must not weigh
// on the time of an answer that does the same for names nobody is told.
func (s *Service) noticeApart(ctx context.Context, f liveFlow, event string, m Meta) {
	ctx = context.WithoutCancel(ctx)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		u, err := s.flowUser(ctx, f)
		if err != nil {
			s.log.Error("reading the user to tell failed", "request_id", m.RequestID, "event", event, "error", err.Error())
			return
		}
		s.noticeUser(ctx, u, event, "", m)
	}()
}

// appProven lifts the suspension of u's apps and forgets their wrong
// codes: the user signed in with the password. Nothing is written when
// there is nothing to forget.
func (s *Service) appProven(ctx context.Context, u *directory.User, m Meta) {
	acct := accountKey(u, "")
	blocked, err := s.appBlocked(ctx, acct)
	fails, ferr := s.twoWindows(ctx, appFailKey(acct), s.o.Limits.AppFailureWindow, false)
	if err == nil && ferr == nil && !blocked && fails == 0 {
		return
	}
	wctx := context.WithoutCancel(ctx)
	for _, key := range []string{appBlockKey(acct), appFailKey(acct), appNoticeKey(acct)} {
		s.forget(s.d.Store.Reset(wctx, key))
	}
	if blocked {
		s.record(ctx, m, "registration.app_unblocked", u.ID, "success", nil)
	}
}
