package directory

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Membership reads what the directory knows of u's groups: for each of
// groupDNs whether u is a member at any depth, and on Active Directory the
// account's security token. See the Membership type for what is unknown.
func (c *Client) Membership(ctx context.Context, u *User, groupDNs []string) (Membership, error) {
	m := Membership{MemberOf: make(map[string]bool, len(groupDNs))}
	if u == nil || u.DN == "" {
		return Membership{}, newErr("groups", ErrNotFound)
	}
	targets := make(map[string]*ldap.DN, len(groupDNs))
	for _, g := range groupDNs {
		if dn, err := ldap.ParseDN(g); err == nil {
			targets[g] = dn
		} else {
			// never a member of something that is not a group: unknown
			c.log.Warn("configured group is not a valid DN", "group", g)
		}
	}
	if c.cfg.Flavor == ActiveDirectory {
		return m, c.adMembership(ctx, u, targets, &m)
	}
	if len(targets) == 0 {
		return m, nil
	}
	return m, c.walkMemberOf(ctx, u, targets, m.MemberOf)
}

// MemberOf is Membership's answer for the groups alone: a group whose
// membership is unknown has no key.
func (c *Client) MemberOf(ctx context.Context, u *User, groupDNs []string) (map[string]bool, error) {
	m, err := c.Membership(ctx, u, groupDNs)
	return m.MemberOf, err
}

// walkMemberOf resolves nesting on servers without the in-chain rule
// (OpenLDAP 2.5 has neither it nor nestgroup): a breadth-first walk up from
// the user through groups whose member attributes (member, uniqueMember)
// name the current level, with a visited set against cycles and a depth
// bound.
//
// The user's own groups are searched every time. The groups a group is in
// change rarely and are the same for every user of a department: they are
// kept for GroupCacheTTL (see groupCache), so that a warm walk costs one
// search whatever the depth.
func (c *Client) walkMemberOf(ctx context.Context, u *User, targets map[string]*ldap.DN, out map[string]bool) error {
	for name := range targets {
		out[name] = false
	}
	visited := map[string]bool{normDN(u.DN): true}
	remaining := len(targets)
	frontier, err := c.groupsWithMembers(ctx, []string{u.DN})
	if err != nil {
		return err
	}
	for depth := 0; len(frontier) > 0 && remaining > 0; depth++ {
		var level, keys []string
		for _, g := range frontier {
			key := normDN(g)
			if visited[key] {
				continue
			}
			visited[key] = true
			level, keys = append(level, g), append(keys, key)
			gdn, err := ldap.ParseDN(g)
			if err != nil {
				continue
			}
			for name, t := range targets {
				if !out[name] && t.EqualFold(gdn) {
					out[name] = true
					remaining--
				}
			}
		}
		if remaining == 0 || len(level) == 0 {
			break
		}
		if frontier, err = c.parentGroups(ctx, level, keys); err != nil {
			return err
		}
		if depth+1 >= c.cfg.MaxGroupDepth && slices.ContainsFunc(frontier, func(g string) bool { return !visited[normDN(g)] }) {
			// the nesting goes deeper than the bound: whether the user is
			// in the groups not found yet is unknown, not "no"
			c.log.Warn("group nesting deeper than the bound; membership unknown", "depth", c.cfg.MaxGroupDepth)
			for name := range targets {
				if !out[name] {
					delete(out, name)
				}
			}
			return nil
		}
	}
	// a configured group that does not exist is unknown, not "no"
	for name := range targets {
		if in, ok := out[name]; ok && !in {
			exists, err := c.groupExists(ctx, name)
			if err != nil {
				return err
			}
			if !exists {
				delete(out, name)
			}
		}
	}
	return nil
}

// groupExists reports whether a group entry exists at dn; an answer is
// kept for GroupCacheTTL.
func (c *Client) groupExists(ctx context.Context, dn string) (bool, error) {
	info, ok, err := c.groupInfo(ctx, dn)
	return ok && info.exists, err
}

// groupsWithMembers returns the groups whose member attributes name any of
// dns, in one search.
func (c *Client) groupsWithMembers(ctx context.Context, dns []string) ([]string, error) {
	var b strings.Builder
	b.WriteString("(|")
	for _, dn := range dns {
		v := ldap.EscapeFilter(dn)
		for _, a := range c.cfg.MemberAttributes {
			b.WriteString("(" + a + "=" + v + ")")
		}
	}
	b.WriteString(")")
	var groups []string
	err := c.withService(ctx, "groups", true, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest(c.cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
			int(c.cfg.Timeout/time.Second), false, b.String(), []string{"1.1"}, nil))
		if err != nil {
			return err
		}
		groups = groups[:0]
		for _, e := range res.Entries {
			groups = append(groups, e.DN)
		}
		return nil
	})
	return groups, err
}

// groupCacheMaxMisses is how many groups of one level a walk looks up one
// by one (and then keeps); a level with more unknown groups is searched in
// one request, as without the cache, and nothing of it is kept.
const groupCacheMaxMisses = 8

// groupCacheMax bounds the cached groups; when full, the cache starts over.
const groupCacheMax = 10000

// groupCache holds, per group (normDN), the groups it is a member of, read
// at a time. An administrator's change to group nesting reaches a walk
// within Config.GroupCacheTTL; a user's own memberships are never cached.
type groupCache struct {
	mu sync.Mutex
	m  map[string]cachedParents
}

type cachedParents struct {
	parents []string
	at      time.Time
}

// parentGroups returns the groups that any of groups is a member of; keys
// are the groups' normDN forms.
func (c *Client) parentGroups(ctx context.Context, groups, keys []string) ([]string, error) {
	if c.cfg.GroupCacheTTL < 0 {
		return c.groupsWithMembers(ctx, groups)
	}
	now := c.now()
	var parents, missing, missingKeys []string
	gc := &c.groups
	gc.mu.Lock()
	for i, g := range groups {
		if p, ok := gc.m[keys[i]]; ok && now.Sub(p.at) < c.cfg.GroupCacheTTL && !p.at.After(now) {
			parents = append(parents, p.parents...)
		} else {
			missing, missingKeys = append(missing, g), append(missingKeys, keys[i])
		}
	}
	gc.mu.Unlock()
	if len(missing) > groupCacheMaxMisses {
		more, err := c.groupsWithMembers(ctx, missing)
		return append(parents, more...), err
	}
	for i, g := range missing {
		ps, err := c.groupsWithMembers(ctx, []string{g})
		if err != nil {
			return nil, err
		}
		gc.mu.Lock()
		if gc.m == nil || len(gc.m) >= groupCacheMax {
			gc.m = map[string]cachedParents{}
		}
		gc.m[missingKeys[i]] = cachedParents{parents: ps, at: now}
		gc.mu.Unlock()
		parents = append(parents, ps...)
	}
	return parents, nil
}

// normDN is a map key for a DN: parsed and lower-cased where possible.
func normDN(s string) string {
	dn, err := ldap.ParseDN(s)
	if err != nil {
		return strings.ToLower(s)
	}
	parts := make([]string, 0, len(dn.RDNs))
	for _, r := range dn.RDNs {
		for _, a := range r.Attributes {
			parts = append(parts, strings.ToLower(a.Type)+"="+strings.ToLower(a.Value))
		}
	}
	return strings.Join(parts, ",")
}
