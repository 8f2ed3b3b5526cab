package directory

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

func TestBuildFilterEscapesOnce(t *testing.T) {
	const tpl = "(&(objectClass=inetOrgPerson)(uid={username}))"
	cases := map[string]string{
		"alice":        "(&(objectClass=inetOrgPerson)(uid=alice))",
		"*":            `(&(objectClass=inetOrgPerson)(uid=\2a))`,
		"a(b":          `(&(objectClass=inetOrgPerson)(uid=a\28b))`,
		`\`:            `(&(objectClass=inetOrgPerson)(uid=\5c))`,
		`d*v(e)\`:      `(&(objectClass=inetOrgPerson)(uid=d\2av\28e\29\5c))`,
		"josé":         `(&(objectClass=inetOrgPerson)(uid=jos\c3\a9))`,
		"x)(uid=*":     `(&(objectClass=inetOrgPerson)(uid=x\29\28uid=\2a))`,
		`\2a`:          `(&(objectClass=inetOrgPerson)(uid=\5c2a))`,
		"ALICE@corp.x": "(&(objectClass=inetOrgPerson)(uid=ALICE@corp.x))",
	}
	for in, want := range cases {
		got, err := BuildFilter(tpl, in)
		if err != nil || got != want {
			t.Errorf("BuildFilter(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// every placeholder is replaced, each escaped once
	got, err := BuildFilter("(|(uid={username})(mail={username}))", "a*")
	if err != nil || got != `(|(uid=a\2a)(mail=a\2a))` {
		t.Fatalf("two placeholders: %q %v", got, err)
	}
}

func TestBuildFilterRefusesWhatNamesNoOne(t *testing.T) {
	for _, in := range []string{"", "alice\x00", "a\nb", "a\rb", "\x7f", "\u0085x", "\xff", strings.Repeat("x", maxUsernameBytes+1)} {
		_, err := BuildFilter("(uid={username})", in)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("BuildFilter(%q) err = %v, want ErrNotFound", in, err)
		}
	}
}

func TestValidateFilterTemplate(t *testing.T) {
	for tpl, ok := range map[string]bool{
		"(uid={username})": true,
		"(&(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={username})))": true,
		"uid={username}":     false,
		"(uid=alice)":        false,
		"(&(uid={username})": false,
		"":                   false,
	} {
		if err := ValidateFilterTemplate(tpl); (err == nil) != ok {
			t.Errorf("ValidateFilterTemplate(%q) = %v", tpl, err)
		}
	}
}

// FuzzBuildFilter: whatever the input, the filter compiles, keeps the
// template's structure (one equality on uid whose value decodes back to
// the input) and never lets a metacharacter through unescaped.
func FuzzBuildFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", "a(b", `\`, "josé", "\x00", "x)(|(uid=*", `\2a`, "))((", "ü*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := BuildFilter("(uid={username})", in)
		if err != nil {
			if !plausibleName(in) {
				return
			}
			t.Fatalf("BuildFilter(%q): %v", in, err)
		}
		pkt, err := ldap.CompileFilter(got)
		if err != nil {
			t.Fatalf("%q does not compile: %v", got, err)
		}
		back, err := ldap.DecompileFilter(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if back != got {
			// decompile re-escapes; the structure must be one equality
			if !strings.HasPrefix(back, "(uid=") || strings.Count(back, "(") != 1 {
				t.Fatalf("structure changed: %q -> %q", got, back)
			}
		}
		if pkt.Tag != ldap.FilterEqualityMatch {
			t.Fatalf("not an equality match: tag %d for %q", pkt.Tag, got)
		}
		if v := pkt.Children[1].Data.String(); v != in {
			t.Fatalf("value round trip: %q -> %q", in, v)
		}
	})
}
