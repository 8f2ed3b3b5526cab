package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/config"
)

const adExamplePath = "../config.activedirectory.example.yaml"

// TestActiveDirectoryExampleFile: config.activedirectory.example.yaml, the
// configuration docs/active-directory.md builds, loads and validates as
// an activedirectory configuration with the AD user filter, excluded
// privileged accounts and a cooling-off period; and docs/active-directory.md
// shows it as it is.
func TestActiveDirectoryExampleFile(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(adExamplePath, env(exampleEnv(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, p := cfg.Directory, cfg.Policy
	if d.Type != config.DirectoryActiveDirectory || !strings.Contains(d.UserFilter, "sAMAccountName={username}") ||
		!strings.HasPrefix(d.BindDN, "CN=svc-latchkey,") || d.BindPassword != "bind-pw" || len(d.URLs) != 2 {
		t.Errorf("directory = %+v", d)
	}
	if p.Scope != "selected" || p.IncludePrivileged || p.CoolingOff == 0 || len(p.Groups) != 1 || len(p.ExcludeGroups) != 1 {
		t.Errorf("policy = %+v", p)
	}
	file, err := os.ReadFile(adExamplePath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/active-directory.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(file)+"```\n") {
		t.Error("docs/active-directory.md does not show config.activedirectory.example.yaml as it is (in a yaml block)")
	}
}
