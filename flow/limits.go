package flow

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/store"
)

// Limits are abuse budgets kept in the store (see config.Limits, whose
// keys have the same names). Zero fields take config's defaults.
type Limits struct {
	Window                 time.Duration
	StartsPerAccount       int
	StartsPerIP            int
	StartsTotal            int
	SendsPerAccount        int
	SendsPerDestination    int
	SMSPerHour             int
	SMSPerPrefixPerHour    int
	CodeFailuresPerAccount int
	SignInsPerIP           int
	BindFailures           int
	BindFailureWindow      time.Duration
	// NoticesPerAccount bounds the notices told to one account in Window
	// (see notices.go); those over it are held and told as one later.
	NoticesPerAccount int
	// IPv6Prefix is the prefix length by which IPv6 clients are one client
	// address (config.DefaultIPv6Prefix: what providers commonly give one
	// customer).
	IPv6Prefix int
	// IPv6SitePrefix is the coarser prefix with a second budget of its
	// own, SiteBudgetFactor times each per-address budget
	// (config.DefaultIPv6SitePrefix), so
	// that a holder of many IPv6Prefix networks still has one budget.
	// Equal to IPv6Prefix: no second budget.
	IPv6SitePrefix int
	// AppFailures wrong authenticator-app codes of an account in
	// AppFailureWindow (counted over the current and the previous window)
	// suspend its apps for resets and unlocks until the user signs in with
	// the password; AppFailuresNotify of them tell the user on every
	// channel, once a window.
	AppFailures       int
	AppFailuresNotify int
	AppFailureWindow  time.Duration
}

// SiteBudgetFactor: an IPv6 site (Limits.IPv6SitePrefix) may spend this
// many times a client address's budget of starts and sign-ins.
const SiteBudgetFactor = 4

// setDefaults gives the fields left zero d's values (config.Default's
// limits: the field names are the same).
func (l *Limits) setDefaults(d config.Limits) {
	orDefault(&l.Window, d.Window)
	orDefault(&l.StartsPerAccount, d.StartsPerAccount)
	orDefault(&l.StartsPerIP, d.StartsPerIP)
	orDefault(&l.StartsTotal, d.StartsTotal)
	orDefault(&l.SendsPerAccount, d.SendsPerAccount)
	orDefault(&l.SendsPerDestination, d.SendsPerDestination)
	orDefault(&l.SMSPerHour, d.SMSPerHour)
	orDefault(&l.SMSPerPrefixPerHour, d.SMSPerPrefixPerHour)
	orDefault(&l.CodeFailuresPerAccount, d.CodeFailuresPerAccount)
	orDefault(&l.SignInsPerIP, d.SignInsPerIP)
	orDefault(&l.BindFailures, d.BindFailures)
	orDefault(&l.BindFailureWindow, d.BindFailureWindow)
	orDefault(&l.NoticesPerAccount, d.NoticesPerAccount)
	orDefault(&l.IPv6Prefix, d.IPv6Prefix)
	orDefault(&l.IPv6SitePrefix, d.IPv6SitePrefix)
	orDefault(&l.AppFailures, d.AppFailures)
	orDefault(&l.AppFailuresNotify, d.AppFailuresNotify)
	orDefault(&l.AppFailureWindow, d.AppFailureWindow)
}

// check refuses what config.Validate refuses in limits.
func (l *Limits) check(c *optionsCheck) {
	c.positive("Limits.Window", l.Window)
	c.atLeastOne("Limits.StartsPerAccount", l.StartsPerAccount)
	c.atLeastOne("Limits.StartsPerIP", l.StartsPerIP)
	c.atLeastOne("Limits.StartsTotal", l.StartsTotal)
	c.atLeastOne("Limits.SendsPerAccount", l.SendsPerAccount)
	c.atLeastOne("Limits.SendsPerDestination", l.SendsPerDestination)
	c.atLeastOne("Limits.SMSPerHour", l.SMSPerHour)
	c.atLeastOne("Limits.SMSPerPrefixPerHour", l.SMSPerPrefixPerHour)
	c.atLeastOne("Limits.CodeFailuresPerAccount", l.CodeFailuresPerAccount)
	c.atLeastOne("Limits.SignInsPerIP", l.SignInsPerIP)
	c.atLeastOne("Limits.BindFailures", l.BindFailures)
	c.positive("Limits.BindFailureWindow", l.BindFailureWindow)
	c.atLeastOne("Limits.NoticesPerAccount", l.NoticesPerAccount)
	c.within("Limits.IPv6Prefix", l.IPv6Prefix, config.MinIPv6Prefix, config.MaxIPv6Prefix)
	c.within("Limits.IPv6SitePrefix", l.IPv6SitePrefix, config.MinIPv6SitePrefix, max(l.IPv6Prefix, config.MinIPv6SitePrefix))
	c.atLeastOne("Limits.AppFailures", l.AppFailures)
	c.atLeastOne("Limits.AppFailuresNotify", l.AppFailuresNotify)
	if l.AppFailuresNotify > l.AppFailures {
		c.add("Limits.AppFailuresNotify", "must not be more than Limits.AppFailures, got %d with %d", l.AppFailuresNotify, l.AppFailures)
	}
	c.positive("Limits.AppFailureWindow", l.AppFailureWindow)
}

// addressHits are the per-address counters of one request as guards of a
// batch (store.CounterHit.Limit): the client address's own, and for an
// IPv6 client the site's (Limits.IPv6SitePrefix) with SiteBudgetFactor
// times the budget.
func (s *Service) addressHits(prefix, clientIP string, limit int) []store.CounterHit {
	w := s.o.Limits.Window
	hits := []store.CounterHit{{Key: prefix + "-ip:" + clientIP, Window: w, Limit: limit}}
	if site, ok := s.siteOf(clientIP); ok {
		hits = append(hits, store.CounterHit{Key: prefix + "-site:" + site, Window: w, Limit: limit * SiteBudgetFactor})
	}
	return hits
}

// siteOf is the IPv6 site (Limits.IPv6SitePrefix) of a client address as
// clientIP gives it ("2001:db8:1:200::/56"); false for IPv4 and when the
// site is the address itself.
func (s *Service) siteOf(clientIP string) (string, bool) {
	p, err := netip.ParsePrefix(clientIP)
	if err != nil || !p.Addr().Is6() || p.Bits() <= s.o.Limits.IPv6SitePrefix {
		return "", false
	}
	site, err := p.Addr().Prefix(s.o.Limits.IPv6SitePrefix)
	if err != nil {
		return "", false
	}
	return site.String(), true
}

// spendAddress spends the per-address budgets of a request without a
// batch (store.StartRecorder): the address's, then the site's. Over
// either, false; a store that does not answer is a Problem.
func (s *Service) spendAddress(ctx context.Context, prefix, clientIP string, limit int) (bool, *Problem) {
	for _, h := range s.addressHits(prefix, clientIP, limit) {
		if ok, p := s.spend(ctx, h.Key, h.Limit, h.Window); p != nil || !ok {
			return false, p
		}
	}
	return true, nil
}

// hit counts one event against key and reports whether it stays within
// limit. A store failure counts as over budget: limits fail closed.
func (s *Service) hit(ctx context.Context, key string, limit int, window time.Duration) bool {
	n, err := s.d.Store.Hit(context.WithoutCancel(ctx), key, window, s.now())
	if err != nil {
		s.log.Error("rate limit counter failed", "error", err.Error())
		return false
	}
	return n <= limit
}

// codeTry is one try counted toward an account's budget of wrong proofs
// (limits.code_failures_per_account): the key and the time it was counted
// at.
type codeTry struct {
	key string
	at  time.Time
}

// countCodeTry counts a try toward the account's budget of wrong proofs
// before the proof is checked, so that concurrent guesses cannot all pass
// the check; ok false when the budget is spent. A try that turns out
// right is taken back (rightCodeTry): the budget counts wrong proofs only,
// as documented, and a user who got many codes right is not refused a
// right one.
func (s *Service) countCodeTry(ctx context.Context, acct string) (codeTry, bool) {
	t := codeTry{key: codeFailKey(acct), at: s.now()}
	n, err := s.d.Store.Hit(context.WithoutCancel(ctx), t.key, s.o.Limits.Window, t.at)
	if err != nil {
		s.log.Error("rate limit counter failed", "error", err.Error())
		return t, false
	}
	return t, n <= s.o.Limits.CodeFailuresPerAccount
}

// rightCodeTry takes back a try counted by countCodeTry that was right.
// A store that fails here leaves the try counted (logged): the budget
// errs on the side of refusing.
func (s *Service) rightCodeTry(ctx context.Context, t codeTry) {
	if t.key == "" {
		return
	}
	if err := s.d.Store.Unhit(context.WithoutCancel(ctx), t.key, s.o.Limits.Window, t.at); err != nil {
		s.log.Error("rate limit counter failed", "error", err.Error())
	}
}

// spend is hit for the first budget a request spends. A store that does
// not answer is a clear 503 unavailable, before anything is looked up or
// sent: not a too_many the user would take for a limit.
func (s *Service) spend(ctx context.Context, key string, limit int, window time.Duration) (bool, *Problem) {
	n, err := s.d.Store.Hit(context.WithoutCancel(ctx), key, window, s.now())
	if err != nil {
		return false, storeProblem(err)
	}
	return n <= limit, nil
}

// storeProblem is the answer when the store failed: the service is
// unavailable (503), and whatever was in flight is still there to retry.
func storeProblem(err error) *Problem {
	return problem(CodeUnavailable, fmt.Errorf("store: %w", err))
}

// The per-account budget counters, by the account's counter key
// (accountKey): starts, code sends, wrong proofs. Unblock forgets them
// (blocked.go).
func startKey(acct string) string    { return "start:" + acct }
func sendKey(acct string) string     { return "send:" + acct }
func codeFailKey(acct string) string { return "codefail:" + acct }

// accountKey is the counter key of an account: its directory id when
// known, else the canonical name (so unknown names are throttled alike).
func accountKey(u *directory.User, name string) string {
	if u != nil && u.ID != "" {
		return "acct:" + u.ID
	}
	return "name:" + strings.ToLower(name)
}

// bindRules are how many wrong passwords the gateway may forward for u and
// over how long it counts them: the configured budget, kept below the
// directory's lockout threshold, counted for at least as long as the
// directory remembers failures (a year when it never forgets them).
func (s *Service) bindRules(ctx context.Context, u *directory.User) (budget int, window time.Duration) {
	budget, window = s.o.Limits.BindFailures, s.o.Limits.BindFailureWindow
	if p, err := s.d.Directory.EffectivePolicy(ctx, u); err == nil && p.LockoutThreshold > 0 {
		budget = min(budget, p.LockoutThreshold-1)
		switch {
		case p.FailuresNeverExpire:
			window = 365 * 24 * time.Hour
		case p.FailureWindow > window:
			window = p.FailureWindow
		}
	}
	return max(budget, 0), window
}

// verifyPassword binds as u, the account typed as name, within the
// account's budget of wrong passwords. The attempt is counted before the
// bind (so concurrent requests cannot all pass the check), over the current
// and the previous window (so a window boundary does not refill the
// budget), and the account's count is cleared when the password is right,
// as the directory clears its own. Over budget it does not ask the
// directory. A refusal counts toward the typed name's shared budget
// (bindSeen); once that is spent it is errBindBudget: too_many.
func (s *Service) verifyPassword(ctx context.Context, u *directory.User, name, password string, m Meta) error {
	if password == "" {
		return &directory.Error{Op: "verify password", Kind: directory.ErrInvalidCredentials}
	}
	if !s.bindAttempt(ctx, u, name, m) {
		return bindRefusal(s.bindSeen(ctx, name), &directory.Error{Op: "verify password", Kind: directory.ErrInvalidCredentials})
	}
	err := s.d.Directory.VerifyPassword(ctx, u, password)
	if err == nil || errorsIsAny(err, directory.ErrPasswordMustChange, directory.ErrPasswordExpired) {
		s.bindProven(ctx, u)
		s.appProven(ctx, u, m) // a suspended authenticator app works again
		return err
	}
	if errors.Is(err, directory.ErrUnavailable) {
		return err
	}
	return bindRefusal(s.bindSeen(ctx, name), err)
}

// errBindBudget marks a password refusal once the budget of wrong
// passwords every name shares is spent: the answer is too_many ("Too
// many attempts"), for a real account and an unknown name alike, even for
// the right password of an account whose own budget is spent (it was not
// tried).
var errBindBudget = errors.New("the budget of wrong passwords is spent")

func bindRefusal(spent bool, err error) error {
	if spent {
		return fmt.Errorf("%w: %w", errBindBudget, err)
	}
	return err
}

// bindFailure is the answer to a password refusal err: too_many once the
// shared budget is spent, else sign_in_failed.
func bindFailure(err error) *Problem {
	if errors.Is(err, errBindBudget) {
		return problem(CodeTooMany, err)
	}
	return problem(CodeSignInFailed, err)
}

// bindAttempt counts one password attempt for the account u, typed as
// name, and reports whether it may go to the directory: within the
// account's own budget, kept below its lockout threshold, over at least
// the window the directory remembers failures. For a name that is no
// account (u nil) it keeps a count of the same shape over the shared
// window (the same store work) and reports false. This count never shows
// in an answer: what shows is bindSeen's, so an account whose budget was
// spent under other spellings answers sign_in_failed, as a name that is no
// account does, until the typed name's own count is spent.
func (s *Service) bindAttempt(ctx context.Context, u *directory.User, name string, m Meta) (may bool) {
	budget, _ := s.bindRules(ctx, &directory.User{})
	window := s.o.Limits.BindFailureWindow
	key, account := "bindfail:name:"+strings.ToLower(name), ""
	if u != nil {
		budget, window = s.bindRules(ctx, u)
		key, account = bindKey(u), u.ID
	}
	n, err := s.hitTwoWindows(context.WithoutCancel(ctx), key, window)
	if err != nil {
		s.log.Error("rate limit counter failed", "error", err.Error())
		if u != nil {
			s.record(ctx, m, "blocked", account, "bind_budget", nil)
		}
		return false
	}
	if u == nil {
		return false
	}
	if n > budget {
		s.record(ctx, m, "blocked", account, "bind_budget", nil)
		return false
	}
	return true
}

// bindSeen counts one refused password typed as name and reports whether
// the typed name's budget is spent: the budget of the directory's default
// policy, over limits' bind_failure_window, the same for every name, real
// or not, counted by the typed spelling, and not cleared by a right
// password. A too_many therefore tells nothing about the account: not
// that another spelling reaches an account, not that the account has a
// policy of its own, not that its owner signed in since.
func (s *Service) bindSeen(ctx context.Context, name string) (spent bool) {
	common, _ := s.bindRules(ctx, &directory.User{})
	n, err := s.hitTwoWindows(context.WithoutCancel(ctx), "bindseen:"+strings.ToLower(name), s.o.Limits.BindFailureWindow)
	if err != nil {
		s.log.Error("rate limit counter failed", "error", err.Error())
		return false
	}
	return n > common
}

// hitTwoWindows counts one more for key and returns the count of the
// current window and the previous one together.
func (s *Service) hitTwoWindows(ctx context.Context, key string, window time.Duration) (int, error) {
	n, err := s.d.Store.Hit(ctx, key, window, s.now())
	if err != nil {
		return 0, err
	}
	prev, err := s.d.Store.Count(ctx, key, window, s.now().Add(-window))
	return n + prev, err
}

// bindProven clears u's count of wrong passwords, as the directory clears
// its own after a right one.
func (s *Service) bindProven(ctx context.Context, u *directory.User) {
	s.forget(s.d.Store.Reset(context.WithoutCancel(ctx), bindKey(u)))
}

func bindKey(u *directory.User) string { return "bindfail:" + u.ID }

// addressOver records a request of kind ("start") refused because its
// client address (guard 0) or its IPv6 site (guard 1) spent its budget,
// and is the refusal: too_many, which names no account.
func (s *Service) addressOver(ctx context.Context, m Meta, kind string, guard int) *Problem {
	scope := "ip"
	if guard > 0 {
		scope = "site"
	}
	s.record(ctx, m, "blocked", "", kind+"_"+scope+"_budget", nil)
	return problem(CodeTooMany, fmt.Errorf("%s budget of the client %s spent", kind, scope))
}
