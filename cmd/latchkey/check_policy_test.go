package main

import (
	"slices"
	"testing"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
)

// check names groups by their configuration key (config.Policy.GroupDNs).
func TestCheckNamesGroupsByKey(t *testing.T) {
	cfg := config.Default()
	cfg.Policy.Groups = []string{"cn=staff,dc=example,dc=org"}
	cfg.Policy.ExcludeGroups = []string{"CN=No SSPR,DC=example,DC=org"}
	cfg.Policy.Tiers = []config.Tier{{Groups: []string{"cn=it,dc=example,dc=org"}}}
	cfg.Admin.Groups = []string{"cn=sspr-admins,dc=example,dc=org"}
	if got, want := groupKey(cfg, "cn=no sspr,dc=example,dc=org"), `policy.exclude_groups[0] "cn=no sspr,dc=example,dc=org"`; got != want {
		t.Errorf("groupKey = %s, want %s", got, want)
	}
	if got, want := groupKey(cfg, "cn=other,dc=example,dc=org"), `"cn=other,dc=example,dc=org"`; got != want {
		t.Errorf("groupKey = %s, want %s", got, want)
	}
	want := []directory.GroupRef{{Key: "policy.groups[0]", DN: "cn=staff,dc=example,dc=org"},
		{Key: "policy.exclude_groups[0]", DN: "CN=No SSPR,DC=example,DC=org"}, {Key: "policy.tiers[0].groups[0]", DN: "cn=it,dc=example,dc=org"},
		{Key: "admin.groups[0]", DN: "cn=sspr-admins,dc=example,dc=org"}}
	if got := configuredGroups(cfg); !slices.Equal(got, want) {
		t.Errorf("configuredGroups = %v, want %v", got, want)
	}
}
