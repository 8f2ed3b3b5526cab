package directory

import (
	"context"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// MemberOf reports for each of groupDNs whether u is a member, nested groups
// resolved. The result has one key per input DN, as given.
func (c *Client) MemberOf(ctx context.Context, u *User, groupDNs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(groupDNs))
	if u == nil || u.DN == "" {
		return nil, newErr("groups", ErrNotFound)
	}
	if len(groupDNs) == 0 {
		return out, nil
	}
	targets := make(map[string]*ldap.DN, len(groupDNs))
	for _, g := range groupDNs {
		out[g] = false
		if dn, err := ldap.ParseDN(g); err == nil {
			targets[g] = dn
		} else {
			c.log.Warn("configured group is not a valid DN", "group", g)
		}
	}
	if c.cfg.Flavor == ActiveDirectory {
		return out, c.adMemberOf(ctx, u, targets, out)
	}
	return out, c.walkMemberOf(ctx, u, targets, out)
}

// adMemberOf asks the DC, per group, whether the user is in it at any depth
// (LDAP_MATCHING_RULE_IN_CHAIN). Primary group membership (primaryGroupID,
// e.g. Domain Users) is not a member link and is not seen.
func (c *Client) adMemberOf(ctx context.Context, u *User, targets map[string]*ldap.DN, out map[string]bool) error {
	filter := "(member:" + oidMatchingRuleInChain + ":=" + ldap.EscapeFilter(u.DN) + ")"
	for g := range targets {
		found := false
		err := c.withService(ctx, "groups", true, func(conn *ldap.Conn) error {
			res, err := conn.Search(ldap.NewSearchRequest(g, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
				int(c.cfg.Timeout/time.Second), false, filter, []string{"1.1"}, nil))
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				c.log.Warn("configured group does not exist", "group", g)
				return nil
			}
			if err != nil {
				return err
			}
			found = len(res.Entries) > 0
			return nil
		})
		if err != nil {
			return err
		}
		out[g] = found
	}
	return nil
}

// walkMemberOf resolves nesting on servers without the in-chain rule
// (OpenLDAP 2.5 has neither it nor nestgroup): a breadth-first walk up from
// the user through groups whose member attributes (member, uniqueMember) name the current
// level, with a visited set against cycles and a depth bound.
func (c *Client) walkMemberOf(ctx context.Context, u *User, targets map[string]*ldap.DN, out map[string]bool) error {
	visited := map[string]bool{normDN(u.DN): true}
	frontier := []string{u.DN}
	remaining := len(targets)
	for depth := 0; depth < c.cfg.MaxGroupDepth && len(frontier) > 0 && remaining > 0; depth++ {
		var b strings.Builder
		b.WriteString("(|")
		for _, dn := range frontier {
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
		if err != nil {
			return err
		}
		frontier = frontier[:0]
		for _, g := range groups {
			key := normDN(g)
			if visited[key] {
				continue
			}
			visited[key] = true
			frontier = append(frontier, g)
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
	}
	return nil
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
