package config_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/latchkeyhq/latchkey/config"
)

func TestAvailableMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		methods    []string
		email, sms bool
		want       []string
	}{
		{"the default", []string{"email"}, true, false, []string{"email"}},
		{"email off", []string{"email", "totp"}, false, false, []string{"totp"}},
		{"sms off", []string{"sms", "email"}, true, false, []string{"email"}},
		{"sms on, order kept", []string{"sms", "email"}, true, true, []string{"sms", "email"}},
		{"no sender needed", []string{"totp", "webauthn", "questions"}, false, false, []string{"totp", "webauthn", "questions"}},
		{"unknown left out", []string{"pigeon", "email"}, true, false, []string{"email"}},
		{"none", nil, true, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config.Default()
			c.Policy.Methods = tt.methods
			c.Email.Enabled, c.SMS.Enabled = tt.email, tt.sms
			if got := c.AvailableMethods(); !slices.Equal(got, tt.want) {
				t.Errorf("AvailableMethods() = %v, want %v", got, tt.want)
			}
			e := c.Eligibility()
			if !slices.Equal(e.Methods, tt.want) {
				t.Errorf("Eligibility().Methods = %v, want %v", e.Methods, tt.want)
			}
			// the rest is Policy.Eligibility's
			p := c.Policy.Eligibility()
			if e.Scope != p.Scope || e.ExcludePrivileged != p.ExcludePrivileged || e.MethodsRequired != p.MethodsRequired {
				t.Errorf("Eligibility() = %+v, Policy.Eligibility() = %+v", e, p)
			}
		})
	}
}

// For a configuration that passes Validate, the available methods are
// policy.methods as written: Validate refuses email and sms without their
// section.
func TestAvailableMethodsOfAValidConfiguration(t *testing.T) {
	t.Parallel()
	c := valid()
	c.Policy.Methods = []string{"sms", "email", "totp", "questions"}
	c.Policy.Questions.List = []string{"Question one?", "Question two?", "Question three?"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.AvailableMethods(); !slices.Equal(got, c.Policy.Methods) {
		t.Errorf("AvailableMethods() = %v, want %v", got, c.Policy.Methods)
	}
}

func TestUnlockOnReset(t *testing.T) {
	t.Parallel()
	if !config.Default().Policy.UnlockOnReset() {
		t.Error("a reset does not unlock")
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{[]string{"192.0.2.7", "2001:db8::1"}, []string{"192.0.2.7/32", "2001:db8::1/128"}},
		{[]string{"proxy.local", "127.0.0.1/32"}, []string{"127.0.0.1/32"}}, // Validate refuses the name
	}
	for _, tt := range tests {
		s := config.Server{TrustedProxies: tt.in}
		var got []string
		for _, p := range s.TrustedProxyPrefixes() {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("TrustedProxyPrefixes(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if p := (config.Server{TrustedProxies: []string{"192.0.2.7"}}).TrustedProxyPrefixes(); !p[0].Contains(netip.MustParseAddr("192.0.2.7")) || p[0].Contains(netip.MustParseAddr("192.0.2.8")) {
		t.Errorf("a single address is not its own prefix: %v", p)
	}
}

func TestPolicyGroupDNs(t *testing.T) {
	t.Parallel()
	p := config.Policy{
		Groups:           []string{"cn=a,dc=x", "cn=b,dc=x"},
		ExcludeGroups:    []string{"cn=c,dc=x"},
		PrivilegedGroups: []string{"cn=d,dc=x"},
		Tiers:            []config.Tier{{Groups: []string{"cn=e,dc=x"}}, {Groups: []string{"cn=f,dc=x", "cn=a,dc=x"}}},
	}
	want := []config.GroupDN{
		{Key: "policy.groups[0]", DN: "cn=a,dc=x"}, {Key: "policy.groups[1]", DN: "cn=b,dc=x"},
		{Key: "policy.exclude_groups[0]", DN: "cn=c,dc=x"}, {Key: "policy.privileged_groups[0]", DN: "cn=d,dc=x"},
		{Key: "policy.tiers[0].groups[0]", DN: "cn=e,dc=x"},
		{Key: "policy.tiers[1].groups[0]", DN: "cn=f,dc=x"}, {Key: "policy.tiers[1].groups[1]", DN: "cn=a,dc=x"},
	}
	if got := p.GroupDNs(); !slices.Equal(got, want) {
		t.Errorf("GroupDNs() = %v, want %v", got, want)
	}
	for dn, key := range map[string]string{
		"CN=A, DC=X": "policy.groups[0]", // the first, compared as DNs
		"cn=f,dc=x":  "policy.tiers[1].groups[0]",
		"cn=z,dc=x":  "",
	} {
		if got := p.GroupKey(dn); got != key {
			t.Errorf("GroupKey(%q) = %q, want %q", dn, got, key)
		}
	}
}
