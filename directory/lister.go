package directory

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/policy"
)

// Lister is implemented by directories that can enumerate their users and
// groups: the admin console's impact preview and group picker. It is not
// part of Directory; callers type-assert it (*Client and dirtest.Memory
// implement it).
//
// Nothing a Lister returns is an authorization answer: whether one account
// is in a group, privileged included, is Membership's (on Active Directory
// from the account's token, which counts the primary group and the
// privileged SIDs of policy.PrivilegedSID). A Lister gives the same answer
// for the accounts it sees, computed for all of them at once.
type Lister interface {
	// Users calls fn for every account the configured user filter matches
	// (with {username} as *), read in pages (the paged results control,
	// RFC 2696; DefaultPageSize entries a page). Each User has DN, ID,
	// Username, DisplayName, Status.Disabled and Status.Privileged (AD
	// adminCount=1 only) filled from the search itself, no read per user;
	// the other fields are zero. It stops at fn's first error and returns
	// it as is.
	Users(ctx context.Context, fn func(*User) error) error
	// NestedMembers returns the members of groupDN at any depth that are
	// not themselves groups (the users), as policy.NormalizeDN forms.
	//
	// On Active Directory they are the accounts of the user filter, found
	// with one paged search: the in-chain rule on memberOf
	// (LDAP_MATCHING_RULE_IN_CHAIN), or a primaryGroupID naming groupDN or
	// a group nested in it (found under the group base DN) — AD keeps the
	// primary group (Domain Users for most accounts) out of member, and a
	// plain in-chain search would miss it. On OpenLDAP it walks the member
	// attributes (Config.MemberAttributes) down through nested groups,
	// each group once (cycles), at most Config.MaxGroupDepth levels
	// (deeper members are left out, with a warning logged); a member that
	// is not a group entry under the group base DN counts as a user,
	// whether the user filter matches it or not. A groupDN that names no
	// group is ErrNotFound.
	NestedMembers(ctx context.Context, groupDN string) (map[string]bool, error)
	// SearchGroups returns up to limit groups under the group base DN
	// whose name (cn) contains query, case-insensitively, sorted by name,
	// each with the number of users in it at any depth (NestedMembers'
	// size). query "" lists every group (the first limit by name); a query
	// that cannot name a group (too long, control characters) finds none.
	SearchGroups(ctx context.Context, query string, limit int) ([]Group, error)
}

// Group is a directory group as the group picker shows it.
type Group struct {
	DN   string
	Name string
	// Members counts the users in the group at any depth (see
	// Lister.NestedMembers for what it leaves out).
	Members int
}

// DefaultPageSize is the number of entries a Lister asks for per page:
// under the default size limits of slapd (500) and AD (MaxPageSize 1000).
const DefaultPageSize = 500

// MaxGroupQuery bounds a SearchGroups query, in bytes.
const MaxGroupQuery = 256

var _ Lister = (*Client)(nil)

// pagedSearch runs req with the paged results control, the whole search
// on one connection, calling page for each page's entries. page's error
// stops the search (the server is told to drop it) and is returned as is.
// A connection lost before any entry was handed out is retried as every
// read is; after that, it is ErrUnavailable, never a second pass over
// entries already handed out.
func (c *Client) pagedSearch(ctx context.Context, op string, req *ldap.SearchRequest, page func([]*ldap.Entry) error) error {
	size := c.pageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	var pageErr error
	delivered := false
	err := c.withService(ctx, op, true, func(conn *ldap.Conn) error {
		if delivered {
			return newErr(op, ErrUnavailable)
		}
		paging := ldap.NewControlPaging(uint32(size)) // #nosec G115 -- size is a small positive int
		r := *req
		r.Controls = append(slices.Clone(req.Controls), paging)
		abandon := func() {
			if len(paging.Cookie) > 0 {
				paging.PagingSize = 0 // RFC 2696: size 0 with the cookie ends the search
				_, _ = conn.Search(&r)
			}
		}
		for {
			if ctx.Err() != nil {
				abandon()
				return newErr(op, ErrUnavailable)
			}
			res, err := conn.Search(&r)
			if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
				c.log.Error("the directory's size limit for the service account cuts a paged search short: every user cannot be listed",
					"fix", "OpenLDAP: limits dn.exact=\"<bind_dn>\" size.prtotal=unlimited; Active Directory: keep MaxPageSize at 500 or more")
			}
			if err != nil {
				return err
			}
			if len(res.Entries) > 0 {
				delivered = true
				if err := page(res.Entries); err != nil {
					pageErr = err
					if pc, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging); ok {
						paging.SetCookie(pc.Cookie)
					}
					abandon()
					return nil
				}
			}
			pc, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
			if !ok || len(pc.Cookie) == 0 {
				return nil
			}
			paging.SetCookie(pc.Cookie)
		}
	})
	if pageErr != nil {
		return pageErr
	}
	return err
}

// allUsersFilter is the configured user filter with * for {username}:
// every account it can find. Nothing from input enters it.
func (c *Client) allUsersFilter(op string) (string, error) {
	f := strings.ReplaceAll(c.cfg.UserFilter, Placeholder, "*")
	if _, err := ldap.CompileFilter(f); err != nil {
		c.log.Error("user filter with * for {username} does not compile: cannot list users")
		return "", newErr(op, ErrFailed)
	}
	return f, nil
}

// Users implements Lister.
func (c *Client) Users(ctx context.Context, fn func(*User) error) error {
	filter, err := c.allUsersFilter("users")
	if err != nil {
		return err
	}
	attrs := []string{c.cfg.UsernameAttr, c.cfg.DisplayNameAttr, "cn"}
	if c.cfg.Flavor == ActiveDirectory {
		attrs = append(attrs, "objectGUID", "userAccountControl", "adminCount")
	} else {
		attrs = append(attrs, "entryUUID", "pwdAccountLockedTime")
	}
	req := ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(c.cfg.Timeout/time.Second), false, filter, attrs, nil)
	return c.pagedSearch(ctx, "users", req, func(entries []*ldap.Entry) error {
		for _, e := range entries {
			u, err := c.listedUser(e)
			if err != nil {
				return err
			}
			if err := fn(u); err != nil {
				return err
			}
		}
		return nil
	})
}

// listedUser is what Users reads of an entry.
func (c *Client) listedUser(e *ldap.Entry) (*User, error) {
	u := &User{
		DN:          e.DN,
		Username:    e.GetEqualFoldAttributeValue(c.cfg.UsernameAttr),
		DisplayName: e.GetEqualFoldAttributeValue(c.cfg.DisplayNameAttr),
	}
	if u.DisplayName == "" {
		u.DisplayName = e.GetEqualFoldAttributeValue("cn")
	}
	if c.cfg.Flavor == ActiveDirectory {
		u.ID = formatGUID(e.GetEqualFoldRawAttributeValue("objectGUID"))
		uac := atoi(e.GetEqualFoldAttributeValue("userAccountControl"))
		u.Status.Disabled = uac&uacAccountDisable != 0
		u.Status.Privileged = e.GetEqualFoldAttributeValue("adminCount") == "1"
	} else {
		u.ID = e.GetEqualFoldAttributeValue("entryUUID")
		u.Status.Disabled = e.GetEqualFoldAttributeValue("pwdAccountLockedTime") == openldapAdminLocked
	}
	if u.ID == "" {
		// as Lookup: without a stable id nothing can be keyed
		c.log.Error("directory entry has no stable identifier (entryUUID/objectGUID not readable)")
		return nil, newErr("users", ErrInsufficientRights)
	}
	return u, nil
}

// groupClassFilter matches group entries: AD's group; on OpenLDAP the
// static group classes and anything holding a member attribute.
func (c *Client) groupClassFilter() string {
	if c.cfg.Flavor == ActiveDirectory {
		return "(objectClass=group)"
	}
	var b strings.Builder
	b.WriteString("(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=groupOfMembers)")
	for _, a := range c.cfg.MemberAttributes {
		b.WriteString("(" + a + "=*)")
	}
	b.WriteString(")")
	return b.String()
}

// readGroup reads the group entry at dn with attrs; nil when there is no
// such entry or it is not a group.
func (c *Client) readGroup(ctx context.Context, dn string, attrs []string) (*ldap.Entry, error) {
	var entry *ldap.Entry
	err := c.withService(ctx, "groups", true, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
			int(c.cfg.Timeout/time.Second), false, c.groupClassFilter(), attrs, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
		if err != nil {
			return err
		}
		entry = nil
		if len(res.Entries) == 1 {
			entry = res.Entries[0]
		}
		return nil
	})
	return entry, err
}

// NestedMembers implements Lister.
func (c *Client) NestedMembers(ctx context.Context, groupDN string) (map[string]bool, error) {
	if _, err := ldap.ParseDN(groupDN); err != nil || strings.TrimSpace(groupDN) == "" {
		return nil, newErr("groups", ErrNotFound)
	}
	if c.cfg.Flavor == ActiveDirectory {
		return c.adNestedMembers(ctx, groupDN)
	}
	groups, err := c.groupSet(ctx)
	if err != nil {
		return nil, err
	}
	return c.walkMembers(ctx, groupDN, groups)
}

// adNestedMembers is one paged search of the user filter: the accounts
// the in-chain rule puts in the group (member links at any depth), and
// those whose primary group (primaryGroupID, which is no member link) is
// the group or a group nested in it, as their token has it.
func (c *Client) adNestedMembers(ctx context.Context, groupDN string) (map[string]bool, error) {
	g, err := c.readGroup(ctx, groupDN, []string{"objectSid"})
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, newErr("groups", ErrNotFound)
	}
	users, err := c.allUsersFilter("groups")
	if err != nil {
		return nil, err
	}
	inChain := "(memberOf:" + oidMatchingRuleInChain + ":=" + ldap.EscapeFilter(g.DN) + ")"
	rids, err := c.adPrimaryRIDs(ctx, g, inChain)
	if err != nil {
		return nil, err
	}
	var f strings.Builder
	f.WriteString("(&" + users + "(|" + inChain)
	for _, rid := range rids {
		f.WriteString("(primaryGroupID=" + rid + ")")
	}
	f.WriteString("))")
	out := map[string]bool{}
	req := ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(c.cfg.Timeout/time.Second), false, f.String(), []string{"1.1"}, nil)
	err = c.pagedSearch(ctx, "groups", req, func(entries []*ldap.Entry) error {
		for _, e := range entries {
			out[policy.NormalizeDN(e.DN)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// adPrimaryRIDs returns the RIDs of g and of the groups nested in it
// (under the group base DN) that can be an account's primary group: the
// domain's own groups (S-1-5-21-…), not the built-in ones.
func (c *Client) adPrimaryRIDs(ctx context.Context, g *ldap.Entry, inChain string) ([]string, error) {
	var rids []string
	seen := map[string]bool{}
	add := func(e *ldap.Entry) {
		sid := sidString(e.GetEqualFoldRawAttributeValue("objectSid"))
		if !strings.HasPrefix(sid, "S-1-5-21-") {
			return
		}
		if rid := sid[strings.LastIndexByte(sid, '-')+1:]; !seen[rid] {
			seen[rid] = true
			rids = append(rids, rid)
		}
	}
	add(g)
	req := ldap.NewSearchRequest(c.cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(c.cfg.Timeout/time.Second), false, "(&(objectClass=group)"+inChain+")", []string{"objectSid"}, nil)
	err := c.pagedSearch(ctx, "groups", req, func(entries []*ldap.Entry) error {
		for _, e := range entries {
			add(e)
		}
		return nil
	})
	return rids, err
}

// groupSet is every group entry under the group base DN (normDN forms), so
// that a walk tells the groups among a group's members from the users.
func (c *Client) groupSet(ctx context.Context) (map[string]bool, error) {
	set := map[string]bool{}
	req := ldap.NewSearchRequest(c.cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(c.cfg.Timeout/time.Second), false, c.groupClassFilter(), []string{"1.1"}, nil)
	err := c.pagedSearch(ctx, "groups", req, func(entries []*ldap.Entry) error {
		for _, e := range entries {
			set[normDN(e.DN)] = true
		}
		return nil
	})
	return set, err
}

// walkMembers goes down from groupDN through the member attributes,
// breadth first: members that are groups (in groups) are read once each
// (a visited set against cycles), at most MaxGroupDepth levels deep; the
// other members are the users.
func (c *Client) walkMembers(ctx context.Context, groupDN string, groups map[string]bool) (map[string]bool, error) {
	root, err := c.readGroup(ctx, groupDN, c.cfg.MemberAttributes)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, newErr("groups", ErrNotFound)
	}
	users := map[string]bool{}
	visited := map[string]bool{normDN(root.DN): true}
	level := []*ldap.Entry{root}
	for depth := 0; len(level) > 0; depth++ {
		var next []string
		for _, g := range level {
			for _, a := range c.cfg.MemberAttributes {
				for _, m := range g.GetEqualFoldAttributeValues(a) {
					k := normDN(m)
					if !groups[k] {
						users[policy.NormalizeDN(m)] = true
						continue
					}
					if !visited[k] {
						visited[k] = true
						next = append(next, m)
					}
				}
			}
		}
		if len(next) == 0 {
			break
		}
		if depth+1 >= c.cfg.MaxGroupDepth {
			c.log.Warn("group nesting deeper than the bound; deeper members left out", "depth", c.cfg.MaxGroupDepth)
			break
		}
		level = level[:0:0]
		for _, dn := range next {
			e, err := c.readGroup(ctx, dn, c.cfg.MemberAttributes)
			if err != nil {
				return nil, err
			}
			if e != nil { // deleted since the group set was read
				level = append(level, e)
			}
		}
	}
	return users, nil
}

// plausibleQuery reports whether q can be part of a group name: printable
// UTF-8 of bounded length (Samba compares values as C strings, so an
// escaped NUL would cut the value short).
func plausibleQuery(q string) bool {
	if len(q) > MaxGroupQuery || !utf8.ValidString(q) {
		return false
	}
	return !strings.ContainsFunc(q, unicode.IsControl)
}

// SearchGroups implements Lister.
func (c *Client) SearchGroups(ctx context.Context, query string, limit int) ([]Group, error) {
	if limit <= 0 || !plausibleQuery(query) {
		return []Group{}, nil
	}
	name := "(cn=*)"
	if query != "" {
		name = "(cn=*" + ldap.EscapeFilter(query) + "*)"
	}
	var found []Group
	req := ldap.NewSearchRequest(c.cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(c.cfg.Timeout/time.Second), false, "(&"+c.groupClassFilter()+name+")", []string{"cn"}, nil)
	err := c.pagedSearch(ctx, "groups", req, func(entries []*ldap.Entry) error {
		for _, e := range entries {
			found = append(found, Group{DN: e.DN, Name: e.GetEqualFoldAttributeValue("cn")})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	SortGroups(found)
	if len(found) > limit {
		found = found[:limit]
	}
	var groups map[string]bool
	if c.cfg.Flavor != ActiveDirectory && len(found) > 0 {
		if groups, err = c.groupSet(ctx); err != nil {
			return nil, err
		}
	}
	for i := range found {
		var members map[string]bool
		if c.cfg.Flavor == ActiveDirectory {
			members, err = c.adNestedMembers(ctx, found[i].DN)
		} else {
			members, err = c.walkMembers(ctx, found[i].DN, groups)
		}
		if errors.Is(err, ErrNotFound) {
			continue // deleted since: counted as empty
		}
		if err != nil {
			return nil, err
		}
		found[i].Members = len(members)
	}
	return found, nil
}

// SortGroups orders groups as SearchGroups returns them: by name,
// case-insensitively, then by DN.
func SortGroups(gs []Group) {
	slices.SortFunc(gs, func(a, b Group) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(policy.NormalizeDN(a.DN), policy.NormalizeDN(b.DN))
	})
}
