package directory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// uacDontExpirePassword is userAccountControl's DONT_EXPIRE_PASSWORD bit.
const uacDontExpirePassword = 0x10000

// ServiceExpiryWarning: a service account password that expires at all
// gets a WARN; within this much time the message says it is near.
const ServiceExpiryWarning = 30 * 24 * time.Hour

// serviceAccount is what the directory says about the service account's
// own password: when it expires and whether a lockout threshold applies.
type serviceAccount struct {
	name string // sAMAccountName or cn, for the fix's commands
	// expires is zero when the password never expires; neverWhy then
	// says why (DONT_EXPIRE_PASSWORD, a maximum age of 0).
	expires  time.Time
	neverWhy string
	// unstarted: a maximum age applies but the clock has not started
	// (OpenLDAP without pwdChangedTime): it starts at the next change
	unstarted bool
	maxAge    time.Duration
	policy    PasswordPolicy
	known     bool // the policy could be read
}

// checkServiceAccount reads the service account's entry (directory.bind_dn)
// and its effective password policy, and warns when its password expires
// (the gateway stops on that day) or a lockout threshold applies to it (a
// mistyped bind password on one instance, or anyone guessing, locks it and
// stops every instance). Nothing is written.
func (c *Client) checkServiceAccount(ctx context.Context) []Finding {
	const check = "directory.service_account"
	sa, err := c.readServiceAccount(ctx)
	if err != nil {
		return []Finding{{check, CheckWarn, fmt.Sprintf("the service account's own entry %q could not be read (%v): its password expiry and lockout were not checked", c.cfg.BindDN, err),
			"give directory.bind_dn read access to its own entry (userAccountControl, pwdLastSet and msDS-ResultantPSO on AD; pwdPolicySubentry and pwdChangedTime on OpenLDAP)"}}
	}
	if !sa.known {
		return []Finding{{check, CheckWarn, fmt.Sprintf("the password policy of the service account %q could not be read: its password expiry and lockout were not checked", c.cfg.BindDN),
			c.serviceFix(sa.name)}}
	}
	var out []Finding
	src := policySource(sa.policy.Source)
	switch {
	case sa.unstarted:
		out = append(out, Finding{check, CheckWarn, fmt.Sprintf("the service account's password has a maximum age of %s (%s): it has no pwdChangedTime yet, so it expires %s after its next change, and from then on every bind fails and the gateway stops resetting",
			days(sa.maxAge), src, days(sa.maxAge)), c.serviceFix(sa.name)})
	case sa.expires.IsZero():
		out = append(out, Finding{check, CheckOK, fmt.Sprintf("the service account's password never expires (%s)", sa.neverWhy), ""})
	default:
		left := sa.expires.Sub(c.now())
		when := fmt.Sprintf("on %s, in %d days", sa.expires.UTC().Format("2006-01-02"), int(left.Hours()/24))
		if left <= 0 {
			when = fmt.Sprintf("since %s", sa.expires.UTC().Format("2006-01-02"))
		}
		out = append(out, Finding{check, CheckWarn, fmt.Sprintf("the service account's password expires %s (maximum password age %s, %s): from then on every bind fails and the gateway stops resetting",
			when, days(sa.maxAge), src), c.serviceFix(sa.name)})
	}
	if sa.policy.LockoutThreshold > 0 {
		out = append(out, Finding{check, CheckWarn, fmt.Sprintf("the service account is subject to a lockout threshold of %d failed binds (%s): an instance started with a wrong bind password, or anyone guessing it, locks it out and stops the gateway",
			sa.policy.LockoutThreshold, src), c.serviceFix(sa.name)})
	} else {
		out = append(out, Finding{check, CheckOK, fmt.Sprintf("no lockout threshold applies to the service account (%s)", src), ""})
	}
	return out
}

func policySource(s string) string {
	switch {
	case s == "domain":
		return "the domain's policy"
	case strings.HasPrefix(s, "pso:"):
		return "fine-grained policy " + strings.TrimPrefix(s, "pso:")
	case strings.HasPrefix(s, "ppolicy:"):
		return "ppolicy " + strings.TrimPrefix(s, "ppolicy:")
	}
	return s
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.String()
}

// serviceFix says how to exempt the service account from expiry and
// lockout: a fine-grained password policy (PSO) on AD, given for Samba and
// for Windows; a pwdPolicy entry on OpenLDAP.
func (c *Client) serviceFix(name string) string {
	if name == "" {
		name = "SERVICE-ACCOUNT"
	}
	if c.cfg.Flavor == ActiveDirectory {
		return fmt.Sprintf("exempt the service account with a fine-grained password policy (PSO) of its own -- "+
			"Samba: samba-tool domain passwordsettings pso create latchkey-service 1 --account-lockout-threshold=0 --max-pwd-age=0 --min-pwd-age=0 "+
			"&& samba-tool domain passwordsettings pso apply latchkey-service %s; "+
			"Windows: New-ADFineGrainedPasswordPolicy -Name latchkey-service -Precedence 1 -LockoutThreshold 0 -MaxPasswordAge 0 -MinPasswordAge 0 "+
			"-ComplexityEnabled $true -MinPasswordLength 20 -PasswordHistoryCount 0 -ReversibleEncryptionEnabled $false; "+
			"Add-ADFineGrainedPasswordPolicySubject latchkey-service -Subjects %s "+
			"(the service account must also read its own msDS-ResultantPSO; see docs/active-directory.md)", name, name)
	}
	return fmt.Sprintf("give %s a policy of its own: an entry with objectClass pwdPolicy, pwdAttribute: userPassword, pwdLockout: FALSE and pwdMaxAge: 0, named in the service account's pwdPolicySubentry", c.cfg.BindDN)
}

func (c *Client) readServiceAccount(ctx context.Context) (serviceAccount, error) {
	var sa serviceAccount
	attrs := []string{"cn", "uid", "pwdPolicySubentry", "pwdChangedTime"}
	if c.cfg.Flavor == ActiveDirectory {
		attrs = []string{"sAMAccountName", "userAccountControl", "pwdLastSet", "msDS-ResultantPSO", "msDS-UserPasswordExpiryTimeComputed"}
	}
	e, err := c.baseSearch(ctx, "service account", c.cfg.BindDN, attrs)
	if err != nil {
		return sa, err
	}
	if e == nil {
		return sa, fmt.Errorf("no such entry visible to it")
	}
	if c.cfg.Flavor == ActiveDirectory {
		return c.adServiceAccount(ctx, e)
	}
	return c.openldapServiceAccount(ctx, e)
}

// adServiceAccount: the password never expires with DONT_EXPIRE_PASSWORD or
// a maximum age of 0 in the effective policy (the resultant PSO, else the
// domain's); otherwise it expires maxAge after pwdLastSet (the DC's own
// msDS-UserPasswordExpiryTimeComputed wins when it is readable).
func (c *Client) adServiceAccount(ctx context.Context, e *ldap.Entry) (serviceAccount, error) {
	sa := serviceAccount{name: e.GetAttributeValue("sAMAccountName")}
	p, err := c.EffectivePolicy(ctx, &User{DN: e.DN, PolicyDN: e.GetAttributeValue("msDS-ResultantPSO")})
	if err != nil || !p.Known {
		return sa, nil
	}
	sa.policy, sa.known, sa.maxAge = p, true, p.MaxAge
	uac, _ := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	switch {
	case uac&uacDontExpirePassword != 0:
		sa.neverWhy = "userAccountControl has DONT_EXPIRE_PASSWORD"
		return sa, nil
	case p.MaxAge == 0:
		sa.neverWhy = "maximum password age 0 in " + policySource(p.Source)
		return sa, nil
	}
	if n, err := strconv.ParseInt(e.GetAttributeValue("pwdLastSet"), 10, 64); err == nil && n > 0 {
		sa.expires = filetime(n).Add(p.MaxAge)
	}
	if n, err := strconv.ParseInt(e.GetAttributeValue("msDS-UserPasswordExpiryTimeComputed"), 10, 64); err == nil && n > 0 {
		if n == adNeverFiletime {
			sa.expires, sa.neverWhy = time.Time{}, "msDS-UserPasswordExpiryTimeComputed says never"
			return sa, nil
		}
		sa.expires = filetime(n)
	}
	if sa.expires.IsZero() {
		sa.expires = c.now() // pwdLastSet 0: it must change now
	}
	return sa, nil
}

// openldapServiceAccount: ppolicy applies pwdMaxAge from pwdChangedTime and
// locks after pwdMaxFailure when pwdLockout is TRUE.
func (c *Client) openldapServiceAccount(ctx context.Context, e *ldap.Entry) (serviceAccount, error) {
	sa := serviceAccount{name: e.GetAttributeValue("cn")}
	if sa.name == "" {
		sa.name = e.GetAttributeValue("uid")
	}
	u := &User{DN: e.DN, PolicyDN: e.GetAttributeValue("pwdPolicySubentry")}
	if u.PolicyDN == "" && c.cfg.DefaultPolicyDN == "" {
		// slapd's ppolicy_default is not published: nothing to read
		sa.known, sa.neverWhy = true, "no pwdPolicySubentry and no directory.default_policy_dn, so no ppolicy is known to apply"
		sa.policy = PasswordPolicy{Known: true, Source: "no policy known"}
		return sa, nil
	}
	p, err := c.openldapPolicy(ctx, u)
	if err != nil || !p.Known {
		return sa, nil
	}
	sa.policy, sa.known, sa.maxAge = p.PasswordPolicy, true, p.MaxAge
	if p.MaxAge == 0 {
		sa.neverWhy = "no pwdMaxAge in " + policySource(p.Source)
		return sa, nil
	}
	changed, err := ber.ParseGeneralizedTime([]byte(e.GetAttributeValue("pwdChangedTime")))
	if err != nil {
		sa.unstarted = true
		return sa, nil
	}
	sa.expires = changed.Add(p.MaxAge)
	return sa, nil
}
