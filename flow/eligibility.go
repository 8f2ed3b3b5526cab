package flow

import (
	"context"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
)

// Decide reads what the directory knows of u's groups (on AD its token:
// every nesting and the primary group) and applies e. It is the one
// decision the flows and `latchkey check --canary` take. A membership the
// directory cannot tell is left unknown, so that e fails closed where an
// answer could only make it stricter.
func Decide(ctx context.Context, d directory.Directory, e policy.Eligibility, u *directory.User) (policy.Decision, error) {
	m, err := d.Membership(ctx, u, e.AllGroups())
	if err != nil {
		return policy.Decision{}, err
	}
	return e.Decide(policy.Subject{MemberOf: m.MemberOf, SIDs: m.SIDs, TokenUnread: m.TokenUnread,
		Privileged: u.Status.Privileged, Disabled: u.Status.Disabled}), nil
}
