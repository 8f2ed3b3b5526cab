package directory

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// policyCacheTTL bounds how long a policy entry read from the directory is reused.
const policyCacheTTL = 5 * time.Minute

type cachedPolicy struct {
	PasswordPolicy
	lockoutDuration time.Duration
	at              time.Time
}

type policyCache struct {
	mu sync.Mutex
	m  map[string]cachedPolicy
}

// EffectivePolicy returns the directory's password policy for u: on OpenLDAP
// the entry named by pwdPolicySubentry (or Config.DefaultPolicyDN); on AD the
// resultant PSO when there is one and it can be read, else the domain policy.
func (c *Client) EffectivePolicy(ctx context.Context, u *User) (PasswordPolicy, error) {
	if u == nil {
		return PasswordPolicy{}, newErr("policy", ErrNotFound)
	}
	if c.cfg.Flavor == ActiveDirectory {
		return c.adPolicy(ctx, u)
	}
	p, err := c.openldapPolicy(ctx, u)
	return p.PasswordPolicy, err
}

func (c *Client) readPolicy(ctx context.Context, dn string, attrs []string, parse func(*ldap.Entry) cachedPolicy) (cachedPolicy, error) {
	pc := &c.policies
	pc.mu.Lock()
	if p, ok := pc.m[dn]; ok && c.now().Sub(p.at) < policyCacheTTL {
		pc.mu.Unlock()
		return p, nil
	}
	pc.mu.Unlock()
	var entry *ldap.Entry
	err := c.withService(ctx, "policy", true, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, int(c.cfg.Timeout/time.Second), false,
			"(objectClass=*)", attrs, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) == 1 {
			entry = res.Entries[0]
		}
		return nil
	})
	if err != nil {
		return cachedPolicy{}, err
	}
	if entry == nil {
		return cachedPolicy{}, newErr("policy", ErrNotFound)
	}
	p := parse(entry)
	p.Known = true
	p.at = c.now()
	pc.mu.Lock()
	if pc.m == nil {
		pc.m = map[string]cachedPolicy{}
	}
	pc.m[dn] = p
	pc.mu.Unlock()
	return p, nil
}

func (c *Client) openldapPolicy(ctx context.Context, u *User) (cachedPolicy, error) {
	dn := u.PolicyDN
	if dn == "" {
		dn = c.cfg.DefaultPolicyDN
	}
	if dn == "" {
		return cachedPolicy{}, nil
	}
	return c.readPolicy(ctx, dn, []string{"pwdMinLength", "pwdInHistory", "pwdCheckQuality", "pwdMinAge", "pwdMaxAge",
		"pwdLockout", "pwdMaxFailure", "pwdLockoutDuration", "pwdFailureCountInterval"}, func(e *ldap.Entry) cachedPolicy {
		p := cachedPolicy{PasswordPolicy: PasswordPolicy{
			Source:        "ppolicy:" + e.DN,
			MinLength:     atoi(e.GetAttributeValue("pwdMinLength")),
			HistoryLength: atoi(e.GetAttributeValue("pwdInHistory")),
			CheckQuality:  atoi(e.GetAttributeValue("pwdCheckQuality")),
			MinAge:        time.Duration(atoi(e.GetAttributeValue("pwdMinAge"))) * time.Second,
			MaxAge:        time.Duration(atoi(e.GetAttributeValue("pwdMaxAge"))) * time.Second,
		}}
		if e.GetAttributeValue("pwdLockout") == "TRUE" {
			p.LockoutThreshold = atoi(e.GetAttributeValue("pwdMaxFailure"))
			p.lockoutDuration = time.Duration(atoi(e.GetAttributeValue("pwdLockoutDuration"))) * time.Second
			p.FailureWindow = time.Duration(atoi(e.GetAttributeValue("pwdFailureCountInterval"))) * time.Second
			p.FailuresNeverExpire = p.FailureWindow == 0
		}
		if p.CheckQuality == 0 {
			p.MinLength = 0 // slapd enforces pwdMinLength only with pwdCheckQuality 1 or 2
		}
		return p
	})
}

func (c *Client) adPolicy(ctx context.Context, u *User) (PasswordPolicy, error) {
	if u.PolicyDN != "" {
		p, err := c.readPolicy(ctx, u.PolicyDN, []string{"msDS-MinimumPasswordLength", "msDS-PasswordHistoryLength",
			"msDS-PasswordComplexityEnabled", "msDS-MinimumPasswordAge", "msDS-MaximumPasswordAge", "msDS-LockoutThreshold", "msDS-LockoutObservationWindow"},
			func(e *ldap.Entry) cachedPolicy {
				return cachedPolicy{PasswordPolicy: PasswordPolicy{
					Source:              "pso:" + e.DN,
					MinLength:           atoi(e.GetAttributeValue("msDS-MinimumPasswordLength")),
					HistoryLength:       atoi(e.GetAttributeValue("msDS-PasswordHistoryLength")),
					Complexity:          e.GetAttributeValue("msDS-PasswordComplexityEnabled") == "TRUE",
					MinAge:              adInterval(e.GetAttributeValue("msDS-MinimumPasswordAge")),
					MaxAge:              adInterval(e.GetAttributeValue("msDS-MaximumPasswordAge")),
					LockoutThreshold:    atoi(e.GetAttributeValue("msDS-LockoutThreshold")),
					FailureWindow:       adInterval(e.GetAttributeValue("msDS-LockoutObservationWindow")),
					FailuresNeverExpire: adInterval(e.GetAttributeValue("msDS-LockoutObservationWindow")) == 0,
				}}
			})
		if err == nil {
			return p.PasswordPolicy, nil
		}
		c.log.Warn("fine-grained password policy not readable, showing the domain policy", "error", err.Error())
	}
	base := c.info.NamingContext
	if base == "" {
		base = c.cfg.BaseDN
	}
	p, err := c.readPolicy(ctx, base, []string{"minPwdLength", "pwdHistoryLength", "pwdProperties", "minPwdAge", "maxPwdAge", "lockoutThreshold", "lockOutObservationWindow"},
		func(e *ldap.Entry) cachedPolicy {
			return cachedPolicy{PasswordPolicy: PasswordPolicy{
				Source:              "domain",
				MinLength:           atoi(e.GetAttributeValue("minPwdLength")),
				HistoryLength:       atoi(e.GetAttributeValue("pwdHistoryLength")),
				Complexity:          atoi(e.GetAttributeValue("pwdProperties"))&1 != 0,
				MinAge:              adInterval(e.GetAttributeValue("minPwdAge")),
				MaxAge:              adInterval(e.GetAttributeValue("maxPwdAge")),
				LockoutThreshold:    atoi(e.GetAttributeValue("lockoutThreshold")),
				FailureWindow:       adInterval(e.GetAttributeValue("lockOutObservationWindow")),
				FailuresNeverExpire: adInterval(e.GetAttributeValue("lockOutObservationWindow")) == 0,
			}}
		})
	return p.PasswordPolicy, err
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// adInterval converts AD's negative 100 ns intervals; "never" is 0.
func adInterval(s string) time.Duration {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == math.MinInt64 || n == 0 {
		return 0
	}
	if n < 0 {
		n = -n
	}
	return time.Duration(n) * 100
}
