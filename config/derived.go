package config

import (
	"fmt"
	"net/netip"

	"github.com/latchkeyhq/latchkey/policy"
)

// Values derived from several keys. They are the rules of how keys combine,
// kept here so that cmd/latchkey only copies values from a validated
// Config into the packages it wires.

// AvailableMethods are the methods of policy.methods, in their order, that
// can be offered: email only with email.enabled, sms only with sms.enabled;
// an authenticator app (totp), a passkey (webauthn) and security questions
// need no sender. Validate refuses email and sms without their section, so
// for a validated configuration this is policy.methods.
func (c *Config) AvailableMethods() []string {
	var out []string
	for _, m := range c.Policy.Methods {
		switch m {
		case policy.MethodEmail:
			if !c.Email.Enabled {
				continue
			}
		case policy.MethodSMS:
			if !c.SMS.Enabled {
				continue
			}
		case policy.MethodTOTP, policy.MethodWebAuthn, policy.MethodQuestions:
		default:
			continue // unknown: Validate refuses it
		}
		out = append(out, m)
	}
	return out
}

// Eligibility is Policy.Eligibility with the methods that can be offered
// (AvailableMethods): what the gateway decides with, and what `latchkey
// check` decides the canary's eligibility with. On Active Directory,
// protected accounts are told by their token (policy.PrivilegedSID) on top
// of policy.privileged_groups: nothing is added here.
func (c *Config) Eligibility() policy.Eligibility {
	e := c.Policy.Eligibility()
	e.Methods = c.AvailableMethods()
	return e
}

// UnlockOnReset reports whether a reset also clears the account's lockout.
// It has no key: the proofs that authorise a reset are those an unlock
// needs, so a reset always unlocks (as Entra's does).
func (p Policy) UnlockOnReset() bool { return true }

// TrustedProxyPrefixes is server.trusted_proxies as prefixes: a CIDR as
// written, a single address as its own /32 or /128. Entries that are
// neither are left out (Validate refuses them).
func (s Server) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s.TrustedProxies {
		if pre, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pre)
		} else if a, err := netip.ParseAddr(p); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// GroupDN is one group DN of the policy section with the key path that
// names it ("policy.tiers[0].groups[1]").
type GroupDN struct {
	Key string
	DN  string
}

// GroupDNs lists every group DN of the policy section with its key path,
// in file order: policy.groups, exclude_groups, privileged_groups, then
// each tier's groups.
func (p Policy) GroupDNs() []GroupDN {
	var out []GroupDN
	add := func(key string, dns []string) {
		for i, dn := range dns {
			out = append(out, GroupDN{Key: fmt.Sprintf("%s[%d]", key, i), DN: dn})
		}
	}
	add("policy.groups", p.Groups)
	add("policy.exclude_groups", p.ExcludeGroups)
	add("policy.privileged_groups", p.PrivilegedGroups)
	for i, t := range p.Tiers {
		add(fmt.Sprintf("policy.tiers[%d].groups", i), t.Groups)
	}
	return out
}

// GroupKey is the key path of the first group of the policy section that
// is dn (compared as policy.NormalizeDN does), or "" when none is.
func (p Policy) GroupKey(dn string) string {
	n := policy.NormalizeDN(dn)
	for _, g := range p.GroupDNs() {
		if policy.NormalizeDN(g.DN) == n {
			return g.Key
		}
	}
	return ""
}
