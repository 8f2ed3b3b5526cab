package policy_test

import (
	"errors"
	"testing"

	"github.com/latchkeyhq/latchkey/policy"
)

func TestNormalizeDN(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"cn=a,dc=b", "cn=a,dc=b"},
		{"CN=IT Staff , OU=Groups,DC=Example,DC=Org", "cn=it staff,ou=groups,dc=example,dc=org"},
		{"  cn = a ,  dc = b  ", "cn=a,dc=b"},
		{"cn=a + uid=b,dc=c", "cn=a+uid=b,dc=c"},
		{`cn=Smith\, John,dc=x`, `cn=smith\, john,dc=x`},
		{`cn=trailing\ ,dc=x`, `cn=trailing\ ,dc=x`},
		{`cn=a\2C b,dc=x`, `cn=a\2c b,dc=x`},
		{"cn=two  spaces,dc=x", "cn=two  spaces,dc=x"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := policy.NormalizeDN(tt.in); got != tt.want {
			t.Errorf("NormalizeDN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if policy.NormalizeDN(`cn=a\,b,dc=x`) == policy.NormalizeDN(`cn=a,b,dc=x`) {
		t.Error("an escaped comma must not equal a separator")
	}
}

func TestCheckDN(t *testing.T) {
	t.Parallel()
	valid := []string{
		"cn=sspr-users,ou=groups,dc=example,dc=org",
		"CN=Domain Admins,CN=Users,DC=corp,DC=example,DC=com",
		"cn = a , dc = b",
		`cn=Smith\, John,dc=x`,
		`cn=a\2Cb,dc=x`,
		`cn=\#hash\ ,dc=x`,
		"cn=a+uid=b,dc=c",
		"2.5.4.3=foo,dc=x",
		"uid=#04024869,dc=x",
		"msDS-Foo=bar",
		"cn=Jürgen Müller,dc=example,dc=de",
		"cn=a=b,dc=x",
	}
	for _, dn := range valid {
		if err := policy.CheckDN(dn); err != nil {
			t.Errorf("CheckDN(%q) = %v, want nil", dn, err)
		}
	}
	invalid := []string{
		"", "   ", "example.org", "cn=a,,dc=b", "cn=a,", ",cn=a", "=a", "cn=", "cn=a,dc=",
		"1cn=a", "c_n=a", "2.5..4=a", "02.5=a", `cn=a\`, `cn=a\zz`, `cn=a;b`, `cn=a<b`, `cn="a"`,
		"cn=a+", "uid=#0", "uid=#zz", "cn=a\x00b",
	}
	for _, dn := range invalid {
		err := policy.CheckDN(dn)
		if err == nil {
			t.Errorf("CheckDN(%q) = nil, want an error", dn)
			continue
		}
		if !errors.Is(err, policy.ErrInvalidDN) {
			t.Errorf("CheckDN(%q) = %v, not ErrInvalidDN", dn, err)
		}
	}
}

func FuzzDN(f *testing.F) {
	for _, s := range []string{"cn=a,dc=b", ` CN = x\, y , DC=z `, `cn=a\`, "cn=#0a", "=,+", "cn=a\\ ,dc=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dn string) {
		n := policy.NormalizeDN(dn)
		if policy.NormalizeDN(n) != n {
			t.Fatalf("NormalizeDN not idempotent: %q -> %q -> %q", dn, n, policy.NormalizeDN(n))
		}
		if err := policy.CheckDN(dn); err != nil && !errors.Is(err, policy.ErrInvalidDN) {
			t.Fatalf("CheckDN(%q) = %v, not ErrInvalidDN", dn, err)
		}
	})
}
