package policy_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/latchkeyhq/latchkey/policy"
)

const (
	users  = "cn=sspr-users,ou=groups,dc=example,dc=org"
	it     = "cn=it-staff,ou=groups,dc=example,dc=org"
	vip    = "cn=vip,ou=groups,dc=example,dc=org"
	noSSPR = "cn=no-sspr,ou=groups,dc=example,dc=org"
	admins = "cn=admins,ou=groups,dc=example,dc=org"
)

// member builds a complete MemberOf answer for e: every group in AllGroups is
// false except those listed.
func member(e policy.Eligibility, in ...string) map[string]bool {
	m := map[string]bool{}
	for _, g := range e.AllGroups() {
		m[g] = false
	}
	for _, g := range in {
		m[g] = true
	}
	return m
}

func TestDecide(t *testing.T) {
	t.Parallel()
	base := policy.Eligibility{
		Scope:             policy.ScopeSelected,
		Groups:            []string{users},
		ExcludeGroups:     []string{noSSPR},
		ExcludePrivileged: true,
		PrivilegedGroups:  []string{admins},
		MethodsRequired:   1,
		Methods:           []string{"email", "sms", "totp"},
		Tiers: []policy.Tier{
			{Groups: []string{it}, MethodsRequired: 2},
			{Groups: []string{vip}, Methods: []string{"sms", "totp", "questions"}},
		},
	}
	with := func(f func(*policy.Eligibility)) policy.Eligibility {
		e := base
		e.Tiers = slices.Clone(base.Tiers)
		f(&e)
		return e
	}
	ok := func(n int, methods ...string) policy.Decision {
		return policy.Decision{Eligible: true, MethodsRequired: n, Methods: methods}
	}
	no := func(reason string) policy.Decision { return policy.Decision{Reason: reason} }

	tests := []struct {
		name string
		e    policy.Eligibility
		in   policy.Subject
		want policy.Decision
	}{
		{"zero value lets nobody in", policy.Eligibility{}, policy.Subject{}, no("scope_none")},
		{"scope none", with(func(e *policy.Eligibility) { e.Scope = "none" }), policy.Subject{MemberOf: member(base, users)}, no("scope_none")},
		{"unknown scope fails closed", with(func(e *policy.Eligibility) { e.Scope = "All" }), policy.Subject{MemberOf: member(base, users)}, no("scope_none")},
		{"selected member", base, policy.Subject{MemberOf: member(base, users)}, ok(1, "email", "sms", "totp")},
		{"selected non-member", base, policy.Subject{MemberOf: member(base)}, no("not_in_group")},
		{"selected, membership missing", base, policy.Subject{MemberOf: map[string]bool{noSSPR: false, admins: false, it: false, vip: false}}, no("not_in_group")},
		{"all needs no group", with(func(e *policy.Eligibility) { e.Scope = "all" }), policy.Subject{MemberOf: member(base)}, ok(1, "email", "sms", "totp")},
		{"disabled", base, policy.Subject{MemberOf: member(base, users), Disabled: true}, no("disabled")},
		{"exclusion wins over inclusion", base, policy.Subject{MemberOf: member(base, users, noSSPR)}, no("excluded")},
		{"exclusion wins with scope all", with(func(e *policy.Eligibility) { e.Scope = "all" }), policy.Subject{MemberOf: member(base, noSSPR)}, no("excluded")},
		{"unknown exclusion fails closed", base, policy.Subject{MemberOf: map[string]bool{users: true}}, no("membership_unresolved")},
		{"privileged marker", base, policy.Subject{MemberOf: member(base, users), Privileged: true}, no("privileged")},
		{"privileged group", base, policy.Subject{MemberOf: member(base, users, admins)}, no("privileged")},
		{"unknown privileged group fails closed", base, policy.Subject{MemberOf: map[string]bool{users: true, noSSPR: false}}, no("membership_unresolved")},
		{"privileged opt-in", with(func(e *policy.Eligibility) { e.ExcludePrivileged = false }), policy.Subject{MemberOf: member(base, users, admins), Privileged: true}, ok(1, "email", "sms", "totp")},
		{"opt-in does not override exclusion", with(func(e *policy.Eligibility) { e.ExcludePrivileged = false }), policy.Subject{MemberOf: member(base, users, noSSPR), Privileged: true}, no("excluded")},
		{"tier raises methods", base, policy.Subject{MemberOf: member(base, users, it)}, ok(2, "email", "sms", "totp")},
		{"tier restricts methods", base, policy.Subject{MemberOf: member(base, users, vip)}, ok(1, "sms", "totp")},
		{"two tiers: strictest of both", base, policy.Subject{MemberOf: member(base, users, it, vip)}, ok(2, "sms", "totp")},
		{"tier cannot lower", with(func(e *policy.Eligibility) { e.MethodsRequired = 2; e.Tiers[0].MethodsRequired = 1 }), policy.Subject{MemberOf: member(base, users, it)}, ok(2, "email", "sms", "totp")},
		{"tier only matters for members", base, policy.Subject{MemberOf: member(base, users)}, ok(1, "email", "sms", "totp")},
		{"unknown tier fails closed", base, policy.Subject{MemberOf: map[string]bool{users: true, noSSPR: false, admins: false}}, no("membership_unresolved")},
		{"tiers leave too few methods", with(func(e *policy.Eligibility) { e.Tiers[1].Methods = []string{"sms"} }), policy.Subject{MemberOf: member(base, users, it, vip)}, no("no_methods")},
		{"zero methods required means one", with(func(e *policy.Eligibility) { e.MethodsRequired = 0 }), policy.Subject{MemberOf: member(base, users)}, ok(1, "email", "sms", "totp")},
		{"no methods at all", with(func(e *policy.Eligibility) { e.Methods = nil }), policy.Subject{MemberOf: member(base, users)}, no("no_methods")},
		{"duplicate methods counted once", with(func(e *policy.Eligibility) { e.Methods = []string{"email", "email"}; e.MethodsRequired = 2 }), policy.Subject{MemberOf: member(base, users)}, no("no_methods")},
		{"DN spelling differs", base, policy.Subject{MemberOf: map[string]bool{
			"CN=SSPR-Users, OU=Groups ,DC=Example,DC=Org": true,
			"cn = no-sspr,ou=groups,dc=example,dc=org":    false,
			"CN=Admins,OU=Groups,DC=EXAMPLE,DC=ORG":       false,
			" cn=it-staff,ou=groups,dc=example,dc=org ":   false,
			"cn=vip , ou=groups , dc=example , dc=org":    true,
		}}, ok(1, "sms", "totp")},
		{"conflicting spellings: member wins", base, policy.Subject{MemberOf: map[string]bool{
			users: true, noSSPR: false, "CN=No-SSPR,OU=Groups,DC=Example,DC=Org": true, admins: false, it: false, vip: false,
		}}, no("excluded")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.e.Decide(tt.in)
			got.By, got.Tiers = "", nil // TestDecideBy
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecideDoesNotAliasMethods(t *testing.T) {
	t.Parallel()
	e := policy.Eligibility{Scope: "all", Methods: []string{"email", "sms"}, Tiers: []policy.Tier{{Groups: []string{it}, Methods: []string{"sms"}}}}
	d := e.Decide(policy.Subject{MemberOf: map[string]bool{it: true}})
	if !slices.Equal(d.Methods, []string{"sms"}) {
		t.Fatalf("Methods = %v", d.Methods)
	}
	d.Methods[0] = "changed"
	if !slices.Equal(e.Methods, []string{"email", "sms"}) {
		t.Fatalf("Decide changed the policy: %v", e.Methods)
	}
}

func TestAllGroups(t *testing.T) {
	t.Parallel()
	e := policy.Eligibility{
		Scope:             "selected",
		Groups:            []string{users, "CN=SSPR-Users,OU=Groups,DC=Example,DC=Org"},
		ExcludeGroups:     []string{noSSPR},
		ExcludePrivileged: true,
		PrivilegedGroups:  []string{admins},
		Tiers:             []policy.Tier{{Groups: []string{it, users}}, {Groups: []string{vip}}},
	}
	tests := []struct {
		name string
		f    func(*policy.Eligibility)
		want []string
	}{
		{"selected: everything, once, first spelling", func(*policy.Eligibility) {}, []string{users, noSSPR, admins, it, vip}},
		{"all: no selected groups", func(e *policy.Eligibility) { e.Scope = "all" }, []string{noSSPR, admins, it, users, vip}},
		{"privileged included: no privileged groups", func(e *policy.Eligibility) { e.ExcludePrivileged = false }, []string{users, noSSPR, it, vip}},
		{"none: nothing", func(e *policy.Eligibility) { e.Scope = "none" }, nil},
		{"invalid scope: nothing", func(e *policy.Eligibility) { e.Scope = "" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e2 := e
			tt.f(&e2)
			if got := e2.AllGroups(); !slices.Equal(got, tt.want) {
				t.Errorf("AllGroups() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultEligibility(t *testing.T) {
	t.Parallel()
	e := policy.DefaultEligibility()
	if !e.ExcludePrivileged || e.Scope != "none" {
		t.Fatalf("DefaultEligibility() = %+v", e)
	}
	if d := e.Decide(policy.Subject{}); d.Eligible {
		t.Fatalf("default lets someone in: %+v", d)
	}
}

// TestDecideToken: on AD the account's token decides privilege: any
// well-known privileged SID in it (a primary group, a nested group, an
// operators group) refuses, an unreadable token fails closed, and an
// opt-in with include_privileged lets such accounts through.
func TestDecideToken(t *testing.T) {
	t.Parallel()
	const dom = "S-1-5-21-1004336348-1177238915-682003330"
	e := policy.Eligibility{Scope: policy.ScopeAll, ExcludePrivileged: true, MethodsRequired: 1, Methods: []string{"email"}}
	plain := []string{dom + "-1105", dom + "-513", "S-1-5-32-545"}
	tests := []struct {
		name   string
		in     policy.Subject
		reason string
		by     string
	}{
		{"ordinary token", policy.Subject{SIDs: plain}, "", ""},
		{"no token (OpenLDAP)", policy.Subject{}, "", ""},
		{"domain admins", policy.Subject{SIDs: append(plain, dom+"-512")}, "privileged", "Domain Admins " + dom + "-512"},
		{"print operators", policy.Subject{SIDs: append(plain, "S-1-5-32-550")}, "privileged", "Print Operators S-1-5-32-550"},
		{"built-in administrator account", policy.Subject{SIDs: []string{dom + "-500", dom + "-513"}}, "privileged", "Administrator (built-in account) " + dom + "-500"},
		{"enterprise admins of another domain", policy.Subject{SIDs: append(plain, "S-1-5-21-1-2-3-519")}, "privileged", "Enterprise Admins S-1-5-21-1-2-3-519"},
		{"unreadable token", policy.Subject{TokenUnread: true}, "membership_unresolved", "tokenGroups (not readable)"},
		{"adminCount", policy.Subject{SIDs: plain, Privileged: true}, "privileged", "adminCount=1"},
	}
	for _, tt := range tests {
		d := e.Decide(tt.in)
		if d.Eligible != (tt.reason == "") || d.Reason != tt.reason || d.By != tt.by {
			t.Errorf("%s: Decide() = %+v, want reason %q by %q", tt.name, d, tt.reason, tt.by)
		}
	}
	e.ExcludePrivileged = false
	if d := e.Decide(policy.Subject{SIDs: append(plain, dom+"-512"), TokenUnread: true}); !d.Eligible {
		t.Errorf("include_privileged: a Domain Admin is refused: %+v", d)
	}
}

// TestPrivilegedSID: every protected group and account by its SID, and
// look-alikes that are not.
func TestPrivilegedSID(t *testing.T) {
	t.Parallel()
	const dom = "S-1-5-21-11-22-33-"
	for _, sid := range []string{"S-1-5-32-544", "S-1-5-32-548", "S-1-5-32-549", "S-1-5-32-550", "S-1-5-32-551", "S-1-5-32-552",
		dom + "512", dom + "519", dom + "518", dom + "516", dom + "521", dom + "498", dom + "526", dom + "527", dom + "520", dom + "502", dom + "500", "s-1-5-21-11-22-33-512"} {
		if _, ok := policy.PrivilegedSID(sid); !ok {
			t.Errorf("%s is not privileged", sid)
		}
	}
	for _, sid := range []string{"S-1-5-32-545", "S-1-5-32-546", dom + "513", dom + "514", dom + "1512", "S-1-5-21-11-22-512", "S-1-5-21-11-22-33-44-512", "S-1-5-22-11-22-33-512", "", "S-1-5-32-544-1", dom + "x"} {
		if name, ok := policy.PrivilegedSID(sid); ok {
			t.Errorf("%s is privileged (%s)", sid, name)
		}
	}
}

// TestDecideBy: the decision names what decided it.
func TestDecideBy(t *testing.T) {
	t.Parallel()
	e := policy.Eligibility{Scope: policy.ScopeSelected, Groups: []string{users, it}, ExcludeGroups: []string{noSSPR},
		ExcludePrivileged: true, PrivilegedGroups: []string{admins}, MethodsRequired: 1, Methods: []string{"email", "sms"},
		Tiers: []policy.Tier{{Groups: []string{vip}, MethodsRequired: 2}, {Groups: []string{it}}}}
	tests := []struct {
		name  string
		in    map[string]bool
		by    string
		tiers []int
	}{
		{"admitted by its group, tiers listed", member(e, it, vip), it, []int{0, 1}},
		{"excluded by its group", member(e, users, noSSPR), noSSPR, nil},
		{"privileged group", member(e, users, admins), admins, nil},
		{"unknown exclusion named", map[string]bool{users: true}, noSSPR, nil},
	}
	for _, tt := range tests {
		d := e.Decide(policy.Subject{MemberOf: tt.in})
		if d.By != tt.by || !slices.Equal(d.Tiers, tt.tiers) {
			t.Errorf("%s: By %q Tiers %v, want %q %v (%+v)", tt.name, d.By, d.Tiers, tt.by, tt.tiers, d)
		}
	}
}
