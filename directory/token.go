package directory

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Membership is what the directory knows of one account's groups.
type Membership struct {
	// MemberOf has, for each group DN asked about (keyed as given), whether
	// the account is a member at any depth. A group whose membership is
	// unknown has no key: the group does not exist (or its entry or SID
	// cannot be read), the nesting goes deeper than MaxGroupDepth
	// (OpenLDAP), or the account's token cannot be read (AD). Callers must
	// treat a missing key as "cannot tell", never as "no".
	MemberOf map[string]bool
	// SIDs is, on Active Directory, the account's security token as
	// S-1-… strings: its own objectSid and its tokenGroups (every security
	// group it is in at any depth, its primary group included). Nil on
	// OpenLDAP and when TokenUnread.
	SIDs []string
	// TokenUnread is set on Active Directory when the token could not be
	// read (the service account may not read tokenGroups, or the entry
	// has no objectSid): nothing can be said about the account's groups.
	TokenUnread bool
}

// groupInfo is what a configured group's own entry says.
type groupInfo struct {
	exists bool
	// sid is the group's objectSid (AD)
	sid string
	// security: an AD security group, which tokenGroups lists; a
	// distribution group is not in any token
	security bool
}

// groupInfoCache keeps groupInfo per group (normDN) for GroupCacheTTL.
type groupInfoCache struct {
	mu sync.Mutex
	m  map[string]cachedGroupInfo
}

type cachedGroupInfo struct {
	info groupInfo
	at   time.Time
}

// adGroupSecurityEnabled is the security bit of AD's groupType.
const adGroupSecurityEnabled = 0x80000000

// groupInfo reads a configured group's entry (kept for GroupCacheTTL). ok
// is false when nothing could be told (an error, or an entry that is
// there but unreadable); a group that does not exist is ok with exists
// false, and is not kept.
func (c *Client) groupInfo(ctx context.Context, dn string) (groupInfo, bool, error) {
	key, now := normDN(dn), c.now()
	gc := &c.groupInfos
	if c.cfg.GroupCacheTTL >= 0 {
		gc.mu.Lock()
		p, hit := gc.m[key]
		gc.mu.Unlock()
		if hit && now.Sub(p.at) < c.cfg.GroupCacheTTL && !p.at.After(now) {
			return p.info, true, nil
		}
	}
	attrs := []string{"1.1"}
	if c.cfg.Flavor == ActiveDirectory {
		attrs = []string{"objectSid", "groupType"}
	}
	var info groupInfo
	e, err := c.baseSearch(ctx, "groups", dn, attrs)
	if e != nil {
		info.exists = true
		info.sid = sidString(e.GetRawAttributeValue("objectSid"))
		gt, _ := strconv.ParseInt(e.GetAttributeValue("groupType"), 10, 64)
		info.security = gt&adGroupSecurityEnabled != 0 // groupType is a signed 32-bit value
	}
	if err != nil {
		return groupInfo{}, false, err
	}
	if !info.exists {
		c.log.Warn("configured group does not exist: membership unknown", "group", dn)
		return info, true, nil
	}
	if c.cfg.Flavor == ActiveDirectory && info.sid == "" {
		c.log.Warn("configured group has no readable objectSid: membership unknown", "group", dn)
		return info, false, nil
	}
	if c.cfg.GroupCacheTTL >= 0 {
		gc.mu.Lock()
		if gc.m == nil || len(gc.m) >= groupCacheMax {
			gc.m = map[string]cachedGroupInfo{}
		}
		gc.m[key] = cachedGroupInfo{info: info, at: now}
		gc.mu.Unlock()
	}
	return info, true, nil
}

// token is an AD account's security token as read from its entry.
type token struct {
	sids []string
	// primary is the primary group's SID (domain SID + primaryGroupID)
	primary string
}

// readToken reads u's objectSid, primaryGroupID and tokenGroups (a
// constructed attribute: only a base search returns it). ok is false when
// the token is not readable: every account has a primary group, so an
// empty tokenGroups means the service account may not read it.
func (c *Client) readToken(ctx context.Context, u *User) (token, bool, error) {
	var e *ldap.Entry
	err := c.withService(ctx, "groups", true, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest(u.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
			int(c.cfg.Timeout/time.Second), false, "(objectClass=*)", []string{"objectSid", "primaryGroupID", "tokenGroups"}, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) == 1 {
			e = res.Entries[0]
		}
		return nil
	})
	if err != nil {
		return token{}, false, err
	}
	if e == nil {
		return token{}, false, newErr("groups", ErrNotFound)
	}
	own := sidString(e.GetRawAttributeValue("objectSid"))
	groups := e.GetRawAttributeValues("tokenGroups")
	if own == "" || len(groups) == 0 {
		return token{}, false, nil
	}
	t := token{sids: []string{own}}
	for _, g := range groups {
		s := sidString(g)
		if s == "" {
			return token{}, false, nil
		}
		t.sids = append(t.sids, s)
	}
	if pg := e.GetAttributeValue("primaryGroupID"); pg != "" {
		if i := strings.LastIndexByte(own, '-'); i > 0 {
			t.primary = own[:i+1] + pg
		}
	}
	return t, true, nil
}

// adMembership answers from the account's token: a configured security
// group is a member when its objectSid is in tokenGroups, which the DC
// computes with every nesting and the primary group. A distribution group
// is in no token: it is asked with the in-chain rule, for the account and
// for its primary group (which is not a member link).
func (c *Client) adMembership(ctx context.Context, u *User, targets map[string]*ldap.DN, m *Membership) error {
	// the groups first: the same work whether the account exists or not
	infos := make(map[string]groupInfo, len(targets))
	for g := range targets {
		info, ok, err := c.groupInfo(ctx, g)
		if err != nil {
			return err
		}
		if ok && info.exists {
			infos[g] = info
		}
	}
	t, ok, err := c.readToken(ctx, u)
	if err != nil {
		return err
	}
	if !ok {
		c.log.Warn("the account's tokenGroups cannot be read: its groups are unknown (the service account needs to read tokenGroups, e.g. as a member of Windows Authorization Access Group)")
		m.TokenUnread = true
		return nil
	}
	m.SIDs = t.sids
	in := make(map[string]bool, len(t.sids))
	for _, s := range t.sids {
		in[s] = true
	}
	var primaryDN string
	for g, info := range infos {
		if info.security {
			m.MemberOf[g] = in[info.sid]
			continue
		}
		if primaryDN == "" && t.primary != "" {
			if primaryDN, err = c.dnOfSID(ctx, t.primary); err != nil {
				return err
			}
		}
		if primaryDN == "" {
			continue // unknown
		}
		filter := "(|(member:" + oidMatchingRuleInChain + ":=" + ldap.EscapeFilter(u.DN) + ")(member:" +
			oidMatchingRuleInChain + ":=" + ldap.EscapeFilter(primaryDN) + "))"
		err := c.withService(ctx, "groups", true, func(conn *ldap.Conn) error {
			res, err := conn.Search(ldap.NewSearchRequest(g, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
				int(c.cfg.Timeout/time.Second), false, filter, []string{"1.1"}, nil))
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				return nil // deleted since: unknown
			}
			if err != nil {
				return err
			}
			m.MemberOf[g] = len(res.Entries) > 0
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// dnOfSID finds the entry with objectSid sid ("" when there is none), with
// AD's <SID=…> form of a DN.
func (c *Client) dnOfSID(ctx context.Context, sid string) (string, error) {
	var dn string
	err := c.withService(ctx, "groups", true, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest("<SID="+sid+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
			int(c.cfg.Timeout/time.Second), false, "(objectClass=*)", []string{"1.1"}, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(res.Entries) == 1 {
			dn = res.Entries[0].DN
		}
		return nil
	})
	return dn, err
}

// sidString renders a binary SID (MS-DTYP 2.4.2.2) as S-1-…; "" when b is
// not one.
func sidString(b []byte) string {
	if len(b) < 8 || b[0] != 1 {
		return ""
	}
	n := int(b[1])
	if n > 15 || len(b) != 8+4*n {
		return ""
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var sb strings.Builder
	sb.WriteString("S-1-")
	sb.WriteString(strconv.FormatUint(auth, 10))
	for i := 0; i < n; i++ {
		sb.WriteByte('-')
		sb.WriteString(strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[8+4*i:])), 10))
	}
	return sb.String()
}
