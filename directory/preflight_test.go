package directory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

func preflight(t *testing.T, cfg directory.Config, opts directory.PreflightOptions) []directory.Finding {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts.Logger = testLogger(t)
	return directory.Preflight(ctx, cfg, opts)
}

func findingsText(fs []directory.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s %s: %s | fix: %s\n", f.Status, f.Check, f.Message, f.Fix)
	}
	return b.String()
}

func wantFinding(t *testing.T, fs []directory.Finding, check string, st directory.CheckStatus, fix string, msg ...string) {
	t.Helper()
next:
	for _, f := range fs {
		if f.Check != check || f.Status != st || !strings.Contains(f.Fix, fix) {
			continue
		}
		for _, m := range msg {
			if !strings.Contains(f.Message, m) {
				continue next
			}
		}
		return
	}
	t.Fatalf("no %s %s with %q and fix %q in:\n%s", st, check, msg, fix, findingsText(fs))
}

// TestPreflightOpenLDAP runs the directory preflight against a real slapd.
func TestPreflightOpenLDAP(t *testing.T) {
	srv := dirtest.StartOpenLDAP(t)
	groups := []directory.GroupRef{{Key: "policy.groups[0]", DN: srv.Group("staff")}}

	t.Run("all OK", func(t *testing.T) {
		fs := preflight(t, srv.Config(), directory.PreflightOptions{Groups: groups, Canary: "frank", TryReset: true})
		for _, f := range fs {
			if f.Status != directory.CheckOK {
				t.Fatalf("not OK:\n%s", findingsText(fs))
			}
		}
		wantFinding(t, fs, "directory.reset_right", directory.CheckOK, "", "frank", "random value")
		if err := srv.UserBind("frank", srv.Password("frank")); err == nil {
			t.Fatal("frank's password was not changed")
		}
	})

	t.Run("certificate expired", func(t *testing.T) {
		later := func() time.Time { return time.Now().Add(20 * 365 * 24 * time.Hour) }
		fs := preflight(t, srv.Config(), directory.PreflightOptions{Now: later})
		wantFinding(t, fs, "directory.tls", directory.CheckFail, "renew the directory server's certificate", "certificate expired on")
	})

	t.Run("certificate expires soon", func(t *testing.T) {
		soon := func() time.Time { return time.Now().Add(10*365*24*time.Hour - 10*24*time.Hour) }
		fs := preflight(t, srv.Config(), directory.PreflightOptions{Now: soon})
		wantFinding(t, fs, "directory.tls", directory.CheckWarn, "renew", "expires in")
	})

	t.Run("plaintext", func(t *testing.T) {
		cfg := srv.Config()
		cfg.URLs, cfg.AllowPlaintext = []string{srv.URL}, true
		fs := preflight(t, cfg, directory.PreflightOptions{})
		wantFinding(t, fs, "directory.tls", directory.CheckWarn, "directory.start_tls", "no TLS")
		wantFinding(t, fs, "directory.capabilities", directory.CheckWarn, "directory.start_tls", "not encrypted")
	})

	t.Run("not a group", func(t *testing.T) {
		fs := preflight(t, srv.Config(), directory.PreflightOptions{Groups: []directory.GroupRef{
			{Key: "policy.groups[0]", DN: srv.UserDN("alice")},
			{Key: "policy.groups[1]", DN: "not a DN"},
		}})
		wantFinding(t, fs, "directory.group", directory.CheckWarn, "correct policy.groups[0]", "is not a group", "inetOrgPerson")
		wantFinding(t, fs, "directory.group", directory.CheckFail, "correct policy.groups[1]", "not a valid DN")
	})

	t.Run("unknown canary", func(t *testing.T) {
		fs := preflight(t, srv.Config(), directory.PreflightOptions{Canary: "nobody-here", TryReset: true})
		wantFinding(t, fs, "directory.canary", directory.CheckFail, "directory.user_filter", "(uid=nobody-here)", "dc=example,dc=org")
		wantFinding(t, fs, "directory.reset_right", directory.CheckWarn, "directory.canary", "not tried")
	})

	t.Run("minimum age", func(t *testing.T) {
		srv.Modify(t, "dn: "+srv.DefaultPolicyDN+"\nchangetype: modify\nreplace: pwdMinAge\npwdMinAge: 3600\n")
		t.Cleanup(func() {
			srv.Modify(t, "dn: "+srv.DefaultPolicyDN+"\nchangetype: modify\nreplace: pwdMinAge\npwdMinAge: 0\n")
		})
		fs := preflight(t, srv.Config(), directory.PreflightOptions{})
		wantFinding(t, fs, "directory.policy", directory.CheckWarn, "pwdMinAge: 0", "minimum password age is 1h0m0s")
	})
}
