package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/policy"
)

// eligibilityChecks is check's directory.PreflightOptions.CanaryChecks:
// the canary's eligibility, decided by flow.Decide exactly as the
// gateway decides it, with what decided it named by its configuration key.
func eligibilityChecks(cfg *config.Config) func(context.Context, directory.Directory, *directory.User) []directory.Finding {
	return func(ctx context.Context, d directory.Directory, u *directory.User) []directory.Finding {
		const check = "eligibility"
		dec, err := flow.Decide(ctx, d, cfg.Eligibility(), u)
		if err != nil {
			return []directory.Finding{{Check: check, Status: directory.CheckFail,
				Message: fmt.Sprintf("the eligibility of %q could not be decided: reading its groups failed: %v", u.Username, err),
				Fix:     "check that directory.bind_dn may read the canary's groups (tokenGroups on AD, the groups' member attribute on OpenLDAP)"}}
		}
		return []directory.Finding{describeDecision(cfg, u.Username, dec)}
	}
}

// groupKey names a group DN by its configuration key, e.g.
// `policy.exclude_groups[0] "CN=No SSPR,…"`.
func groupKey(cfg *config.Config, dn string) string {
	if key := cfg.Policy.GroupKey(dn); key != "" {
		return fmt.Sprintf("%s %q", key, dn)
	}
	return fmt.Sprintf("%q", dn)
}

// describeDecision is the eligibility line: OK when the canary may use
// self-service (with the group that admitted it and the tiers that apply),
// WARN when not, naming what refused it and the fix.
func describeDecision(cfg *config.Config, name string, d policy.Decision) directory.Finding {
	f := directory.Finding{Check: "eligibility", Status: directory.CheckWarn}
	who := fmt.Sprintf("%q", name)
	if d.Eligible {
		f.Status = directory.CheckOK
		by := "policy.scope is all"
		if d.By != "" {
			by = "member of " + groupKey(cfg, d.By)
		}
		var tiers []string
		for _, i := range d.Tiers {
			tiers = append(tiers, fmt.Sprintf("policy.tiers[%d]", i))
		}
		tier := "no tier applies"
		if len(tiers) > 0 {
			tier = strings.Join(tiers, ", ") + " applies"
		}
		f.Message = fmt.Sprintf("%s is eligible (%s; %s): %d method(s) of %s required", who, by, tier, d.MethodsRequired, strings.Join(d.Methods, ", "))
		return f
	}
	switch d.Reason {
	case policy.ReasonScopeNone:
		f.Message = who + " is not eligible: policy.scope is none, so nobody may use self-service"
		f.Fix = "set policy.scope to selected (with policy.groups) or all"
	case policy.ReasonDisabled:
		f.Message = who + " is not eligible: the account is disabled"
		f.Fix = "enable the canary, or choose an enabled test account"
	case policy.ReasonExcluded:
		f.Message = fmt.Sprintf("%s is not eligible: excluded as a member of %s", who, groupKey(cfg, d.By))
		f.Fix = "take the canary out of that group (nested groups and the primary group count), or choose a canary outside policy.exclude_groups"
	case policy.ReasonPrivileged:
		by := d.By
		if !strings.HasPrefix(by, "S-") && !strings.Contains(by, " S-1-") && by != "adminCount=1" {
			by = groupKey(cfg, by)
		}
		f.Message = fmt.Sprintf("%s is not eligible: privileged (%s); privileged accounts never use self-service unless policy.include_privileged is set", who, by)
		f.Fix = "test with an ordinary account: a protected account's password should be reset by an administrator, not by proofs a mailbox or phone can give"
	case policy.ReasonNotInGroup:
		var gs []string
		for i := range cfg.Policy.Groups {
			gs = append(gs, fmt.Sprintf("policy.groups[%d]", i))
		}
		f.Message = fmt.Sprintf("%s is not eligible: not a member of any of %s", who, strings.Join(gs, ", "))
		f.Fix = "add the canary (or a group it is in) to one of policy.groups, or correct policy.groups"
	case policy.ReasonUnresolved:
		f.Message = fmt.Sprintf("%s is not eligible: its membership of %s cannot be told, so the decision fails closed", who, groupKey(cfg, d.By))
		f.Fix = "make sure every configured group exists (see directory.group above) and that directory.bind_dn may read the canary's groups (on AD: tokenGroups, e.g. through Windows Authorization Access Group)"
	case policy.ReasonNoMethods:
		f.Message = who + " is not eligible: the tiers that apply to it leave fewer available methods than they require"
		f.Fix = "enable more methods (policy.methods, email.enabled, sms.enabled) or lower the tiers' methods_required"
	default:
		f.Message = fmt.Sprintf("%s is not eligible (%s %s)", who, d.Reason, d.By)
		f.Fix = "see the policy section"
	}
	return f
}

// coolingOffCheck says up front what policy.cooling_off does to an
// administrator's first register-then-reset test.
func coolingOffCheck(cfg *config.Config, now time.Time) checkResult {
	c := cfg.Policy.CoolingOff
	if c <= 0 {
		return checkResult{Check: "policy.cooling_off", Status: statusOK,
			Message: "0s: a method registered now may authorise a reset at once (no cooling-off period)"}
	}
	d := shortDuration(c)
	return checkResult{Check: "policy.cooling_off", Status: statusWarn,
		Message: fmt.Sprintf("%s: a method registered now cannot alone authorise a reset until %s; a first test that registers and then resets is refused with method_too_new until then, and so is every reset of a new deployment's users for their first %s",
			d, now.Add(c).UTC().Format("2006-01-02 15:04 MST"), d),
		Fix: fmt.Sprintf("register the test account's methods %s before testing a reset, or set policy.cooling_off: 0s for the trial and back to %s before users register", d, d)}
}

// proxiesCheck warns when the gateway listens on loopback only for a public
// URL elsewhere (a reverse proxy on the host is in front of it) and no
// trusted proxy is set: every client then has the proxy's address, and the
// per-address budgets (limits.starts_per_ip, limits.sign_ins_per_ip) stop
// everyone at once, silently (a start answers as usual and sends nothing).
func proxiesCheck(cfg *config.Config) checkResult {
	const check = "server.trusted_proxies"
	if n := len(cfg.Server.TrustedProxies); n > 0 {
		return checkResult{Check: check, Status: statusOK,
			Message: fmt.Sprintf("X-Forwarded-For is believed from %d proxy address range(s) only", n)}
	}
	host, _, err := net.SplitHostPort(cfg.Server.Listen)
	pu, perr := url.Parse(cfg.Server.PublicURL)
	if err != nil || perr != nil || !loopbackHost(host) || loopbackHost(pu.Hostname()) {
		return checkResult{Check: check, Status: statusOK,
			Message: "none: clients connect directly, each with its own address"}
	}
	return checkResult{Check: check, Status: statusWarn,
		Message: fmt.Sprintf("none, and server.listen %s is loopback only while server.public_url is %s: a proxy on this host is in front, so every request comes from its address and the per-address budgets (limits.starts_per_ip, limits.sign_ins_per_ip) count all accounts as one client and stop them at once, silently",
			cfg.Server.Listen, pu.Host),
		Fix: "set server.trusted_proxies to the proxy's address (e.g. [\"127.0.0.1/32\"]) so that X-Forwarded-For gives each client's address"}
}

// loopbackHost: empty (every interface) is not loopback.
func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// shortDuration is d as configured: 24h, not 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
