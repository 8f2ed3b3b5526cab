package gateway

import (
	"context"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
)

// Limits are abuse budgets kept in the store (see config.Limits). Zero
// fields take the defaults below.
type Limits struct {
	Window                 time.Duration
	StartsPerAccount       int
	StartsPerIP            int
	SendsPerAccount        int
	SendsPerDestination    int
	SMSPerHour             int
	CodeFailuresPerAccount int
	SignInsPerIP           int
	BindFailures           int
	BindFailureWindow      time.Duration
}

func (l *Limits) setDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	if l.Window <= 0 {
		l.Window = time.Hour
	}
	if l.BindFailureWindow <= 0 {
		l.BindFailureWindow = time.Hour
	}
	def(&l.StartsPerAccount, 10)
	def(&l.StartsPerIP, 60)
	def(&l.SendsPerAccount, 10)
	def(&l.SendsPerDestination, 5)
	def(&l.SMSPerHour, 200)
	def(&l.CodeFailuresPerAccount, 10)
	def(&l.SignInsPerIP, 60)
	def(&l.BindFailures, 3)
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

func (s *Service) count(ctx context.Context, key string, window time.Duration) int {
	n, err := s.d.Store.Count(ctx, key, window, s.now())
	if err != nil {
		s.log.Error("rate limit counter failed", "error", err.Error())
		return 1 << 30
	}
	return n
}

// accountKey is the counter key of an account: its directory id when
// known, else the canonical name (so unknown names are throttled alike).
func accountKey(u *directory.User, name string) string {
	if u != nil && u.ID != "" {
		return "acct:" + u.ID
	}
	return "name:" + strings.ToLower(name)
}

// bindBudget is how many wrong passwords the gateway may forward for u: the
// configured budget, kept below the directory's lockout threshold.
func (s *Service) bindBudget(ctx context.Context, u *directory.User) int {
	n := s.o.Limits.BindFailures
	if p, err := s.d.Directory.EffectivePolicy(ctx, u); err == nil && p.LockoutThreshold > 0 && p.LockoutThreshold-1 < n {
		n = p.LockoutThreshold - 1
	}
	return max(n, 0)
}

// verifyPassword binds as u unless the account's budget of wrong
// passwords is spent (then it answers as for a wrong password without
// asking the directory), and counts a wrong one.
func (s *Service) verifyPassword(ctx context.Context, u *directory.User, password string, m Meta) error {
	key := "bindfail:" + u.ID
	if password == "" {
		return &directory.Error{Op: "verify password", Kind: directory.ErrInvalidCredentials}
	}
	if s.count(ctx, key, s.o.Limits.BindFailureWindow) >= s.bindBudget(ctx, u) {
		s.record(ctx, m, "blocked", u.ID, "bind_budget", nil)
		return &directory.Error{Op: "verify password", Kind: directory.ErrInvalidCredentials}
	}
	err := s.d.Directory.VerifyPassword(ctx, u, password)
	if err != nil && !errorsIsAny(err, directory.ErrUnavailable, directory.ErrPasswordMustChange, directory.ErrPasswordExpired) {
		s.hit(ctx, key, 1<<30, s.o.Limits.BindFailureWindow)
	}
	return err
}
