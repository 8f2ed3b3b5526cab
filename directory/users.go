package directory

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// AD userAccountControl and msDS-User-Account-Control-Computed bits.
const (
	uacAccountDisable   = 0x2
	uacLockout          = 0x10
	uacPasswordExpired  = 0x800000
	adNeverFiletime     = int64(0x7FFFFFFFFFFFFFFF)
	openldapAdminLocked = "000001010000Z" // ppolicy: locked until an administrator unlocks
)

func (c *Client) userAttributes() []string {
	a := []string{c.cfg.UsernameAttr, c.cfg.DisplayNameAttr, "cn", c.cfg.MailAttr, c.cfg.MobileAttr}
	if c.cfg.Flavor == ActiveDirectory {
		return append(a, "objectGUID", "userPrincipalName", "userAccountControl", "lockoutTime", "pwdLastSet",
			"adminCount", "msDS-User-Account-Control-Computed", "msDS-UserPasswordExpiryTimeComputed", "msDS-ResultantPSO")
	}
	return append(a, "entryUUID", "pwdAccountLockedTime", "pwdReset", "pwdChangedTime", "pwdPolicySubentry")
}

// Lookup finds exactly one user by the configured filter.
func (c *Client) Lookup(ctx context.Context, username string) (*User, error) {
	filter, err := BuildFilter(c.cfg.UserFilter, username)
	if err != nil {
		if de, ok := err.(*Error); ok {
			return nil, de
		}
		return nil, newErr("lookup", ErrFailed)
	}
	return c.searchOne(ctx, "lookup", c.cfg.BaseDN, ldap.ScopeWholeSubtree, filter)
}

// Refresh re-reads u by DN.
func (c *Client) Refresh(ctx context.Context, u *User) (*User, error) {
	if u == nil || u.DN == "" {
		return nil, newErr("refresh", ErrNotFound)
	}
	return c.searchOne(ctx, "refresh", u.DN, ldap.ScopeBaseObject, "(objectClass=*)")
}

func (c *Client) searchOne(ctx context.Context, op, base string, scope int, filter string) (*User, error) {
	var entries []*ldap.Entry
	err := c.withService(ctx, op, true, func(conn *ldap.Conn) error {
		req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 2, int(c.cfg.Timeout/time.Second), false,
			filter, c.userAttributes(), nil)
		res, err := conn.Search(req)
		if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return err
		}
		if res != nil {
			entries = res.Entries
		}
		if err != nil && len(entries) < 2 {
			entries = append(entries, nil, nil) // size limit hit: more than one
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch len(entries) {
	case 0:
		return nil, newErr(op, ErrNotFound)
	case 1:
		return c.userFromEntry(ctx, entries[0])
	default:
		return nil, newErr(op, ErrAmbiguous)
	}
}

func (c *Client) userFromEntry(ctx context.Context, e *ldap.Entry) (*User, error) {
	u := &User{
		DN:          e.DN,
		Username:    e.GetAttributeValue(c.cfg.UsernameAttr),
		DisplayName: e.GetAttributeValue(c.cfg.DisplayNameAttr),
		Mail:        e.GetAttributeValue(c.cfg.MailAttr),
		Mobile:      e.GetAttributeValue(c.cfg.MobileAttr),
	}
	if u.DisplayName == "" {
		u.DisplayName = e.GetAttributeValue("cn")
	}
	if c.cfg.Flavor == ActiveDirectory {
		c.adStatus(u, e)
	} else {
		c.openldapStatus(ctx, u, e)
	}
	if u.ID == "" {
		// Without a stable id, per-account limits and enrollment would be
		// keyed by something spoofable: refuse.
		c.log.Error("directory entry has no stable identifier (entryUUID/objectGUID not readable)")
		return nil, newErr("lookup", ErrInsufficientRights)
	}
	return u, nil
}

func (c *Client) adStatus(u *User, e *ldap.Entry) {
	u.ID = formatGUID(e.GetRawAttributeValue("objectGUID"))
	u.UPN = e.GetAttributeValue("userPrincipalName")
	u.PolicyDN = e.GetAttributeValue("msDS-ResultantPSO")
	uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	computed, hasComputed := int64(0), false
	if v := e.GetAttributeValue("msDS-User-Account-Control-Computed"); v != "" {
		computed, _ = strconv.ParseInt(v, 10, 64)
		hasComputed = true
	}
	lockout, _ := strconv.ParseInt(e.GetAttributeValue("lockoutTime"), 10, 64)
	pwdLastSet := e.GetAttributeValue("pwdLastSet")
	u.Status.Disabled = uac&uacAccountDisable != 0
	if hasComputed {
		u.Status.Locked = computed&uacLockout != 0
		u.Status.MustChange = computed&uacPasswordExpired != 0 && pwdLastSet == "0"
	} else {
		u.Status.Locked = lockout > 0
	}
	if pwdLastSet == "0" {
		u.Status.MustChange = true
	}
	u.Status.Privileged = e.GetAttributeValue("adminCount") == "1"
	if n, err := strconv.ParseInt(pwdLastSet, 10, 64); err == nil && n > 0 {
		u.Status.PasswordChanged = filetime(n)
	}
	if n, err := strconv.ParseInt(e.GetAttributeValue("msDS-UserPasswordExpiryTimeComputed"), 10, 64); err == nil && n > 0 && n != adNeverFiletime {
		u.Status.PasswordExpires = filetime(n)
	}
}

func (c *Client) openldapStatus(ctx context.Context, u *User, e *ldap.Entry) {
	u.ID = e.GetAttributeValue("entryUUID")
	u.PolicyDN = e.GetAttributeValue("pwdPolicySubentry")
	locked := e.GetAttributeValue("pwdAccountLockedTime")
	u.Status.MustChange = e.GetAttributeValue("pwdReset") == "TRUE"
	if t, err := ber.ParseGeneralizedTime([]byte(e.GetAttributeValue("pwdChangedTime"))); err == nil {
		u.Status.PasswordChanged = t
	}
	if locked == openldapAdminLocked {
		u.Status.Disabled = true
		u.Status.Locked = true
		return
	}
	if locked == "" && u.Status.PasswordChanged.IsZero() {
		return
	}
	pol, _ := c.openldapPolicy(ctx, u)
	if locked != "" {
		u.Status.Locked = true
		if t, err := ber.ParseGeneralizedTime([]byte(locked)); err == nil && pol.lockoutDuration > 0 && c.now().After(t.Add(pol.lockoutDuration)) {
			u.Status.Locked = false // ppolicy's lockout has run out
		}
	}
	if pol.MaxAge > 0 && !u.Status.PasswordChanged.IsZero() {
		u.Status.PasswordExpires = u.Status.PasswordChanged.Add(pol.MaxAge)
	}
}

// formatGUID renders an objectGUID in its usual string form.
func formatGUID(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b[0:4]),
		binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// filetime converts a Windows FILETIME (100 ns since 1601) to time.Time.
func filetime(n int64) time.Time {
	const epochDiff = 116444736000000000 // 1601 to 1970 in 100 ns
	return time.Unix(0, (n-epochDiff)*100).UTC()
}
