package dirtest

import (
	"context"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
)

var _ directory.Lister = (*Memory)(nil)

// Users implements directory.Lister: every account, by DN order, with the
// fields a Client's Users fills (DN, ID, Username, DisplayName,
// Status.Disabled, Status.Privileged) and the others zero. fn runs
// without the directory held, so it may call the Memory.
func (m *Memory) Users(ctx context.Context, fn func(*directory.User) error) error {
	m.mu.Lock()
	if err := m.downErr("users"); err != nil {
		m.mu.Unlock()
		return err
	}
	list := make([]*directory.User, 0, len(m.users))
	for _, x := range m.users {
		u := &directory.User{DN: x.user.DN, ID: x.user.ID, Username: x.user.Username, DisplayName: x.user.DisplayName}
		u.Status.Disabled = x.user.Status.Disabled
		u.Status.Privileged = x.user.Status.Privileged
		list = append(list, u)
	}
	m.mu.Unlock()
	slices.SortFunc(list, func(a, b *directory.User) int { return strings.Compare(strings.ToLower(a.DN), strings.ToLower(b.DN)) })
	for _, u := range list {
		if ctx.Err() != nil {
			return memErr("users", directory.ErrUnavailable, "")
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

// NestedMembers implements directory.Lister: the members of groupDN at
// any depth that are not groups, as policy.NormalizeDN forms, each group
// walked once (cycles). A group that does not exist is ErrNotFound.
func (m *Memory) NestedMembers(_ context.Context, groupDN string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("groups"); err != nil {
		return nil, err
	}
	return m.nestedMembers(groupDN)
}

func (m *Memory) nestedMembers(groupDN string) (map[string]bool, error) {
	root := strings.ToLower(groupDN)
	if _, ok := m.groups[root]; !ok {
		return nil, memErr("groups", directory.ErrNotFound, "")
	}
	users := map[string]bool{}
	visited := map[string]bool{root: true}
	level := []string{root}
	for len(level) > 0 {
		var next []string
		for _, g := range level {
			for _, mem := range m.groups[g] {
				k := strings.ToLower(mem)
				if _, isGroup := m.groups[k]; !isGroup {
					users[policy.NormalizeDN(mem)] = true
				} else if !visited[k] {
					visited[k] = true
					next = append(next, k)
				}
			}
		}
		level = next
	}
	return users, nil
}

// SearchGroups implements directory.Lister: groups whose name (the value
// of the DN's first RDN) contains query case-insensitively, sorted as
// directory.SortGroups, with their nested user counts.
func (m *Memory) SearchGroups(_ context.Context, query string, limit int) ([]directory.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.downErr("groups"); err != nil {
		return nil, err
	}
	out := []directory.Group{}
	if limit <= 0 || len(query) > directory.MaxGroupQuery || !utf8.ValidString(query) || strings.ContainsFunc(query, unicode.IsControl) {
		return out, nil
	}
	q := strings.ToLower(query)
	for k, dn := range m.groupDNs {
		if _, ok := m.groups[k]; !ok {
			continue
		}
		name := groupName(dn)
		if strings.Contains(strings.ToLower(name), q) {
			out = append(out, directory.Group{DN: dn, Name: name})
		}
	}
	directory.SortGroups(out)
	if len(out) > limit {
		out = out[:limit]
	}
	for i := range out {
		members, _ := m.nestedMembers(out[i].DN)
		out[i].Members = len(members)
	}
	return out, nil
}

// groupName is the value of dn's first RDN (its cn for the seeded groups).
func groupName(dn string) string {
	if p, err := ldap.ParseDN(dn); err == nil && len(p.RDNs) > 0 && len(p.RDNs[0].Attributes) > 0 {
		return p.RDNs[0].Attributes[0].Value
	}
	return dn
}
