package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// checkResult is one entry of `latchkey check --json`.
type checkResult struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// runCheck runs `latchkey check --config cfg args...` and returns its
// standard output and exit code.
func runCheck(t *testing.T, cfg string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"check", "--config", cfg}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), code
}

// checkJSON runs check with --json and decodes the results.
func checkJSON(t *testing.T, cfg string, args ...string) ([]checkResult, int) {
	t.Helper()
	out, code := runCheck(t, cfg, append(args, "--json")...)
	var rs []checkResult
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("check --json printed no JSON array (%v):\n%s", err, out)
	}
	// every object has exactly the four keys
	var raw []map[string]any
	_ = json.Unmarshal([]byte(out), &raw)
	for _, r := range raw {
		if len(r) != 4 || r["check"] == nil || r["status"] == nil || r["message"] == nil || r["fix"] == nil {
			t.Fatalf("result without check/status/message/fix: %v", r)
		}
	}
	for _, r := range rs {
		if r.Status != "OK" && r.Status != "WARN" && r.Status != "FAIL" {
			t.Fatalf("status %q: %+v", r.Status, r)
		}
		if r.Status != "OK" && r.Fix == "" {
			t.Errorf("%s %s without a fix: %s", r.Status, r.Check, r.Message)
		}
	}
	return rs, code
}

func dump(rs []checkResult) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%-4s %s: %s | fix: %s\n", r.Status, r.Check, r.Message, r.Fix)
	}
	return b.String()
}

// wantResult finds a result of check with status whose message contains
// every string of msg and whose fix contains fix.
func wantResult(t *testing.T, rs []checkResult, check, status string, fix string, msg ...string) checkResult {
	t.Helper()
next:
	for _, r := range rs {
		if r.Check != check || r.Status != status || !strings.Contains(r.Fix, fix) {
			continue
		}
		for _, m := range msg {
			if !strings.Contains(r.Message, m) {
				continue next
			}
		}
		return r
	}
	t.Fatalf("no %s %s with %q and fix %q in:\n%s", status, check, msg, fix, dump(rs))
	return checkResult{}
}

// wantNo fails if a result of check has status.
func wantNo(t *testing.T, rs []checkResult, check, status string) {
	t.Helper()
	for _, r := range rs {
		if r.Check == check && r.Status == status {
			t.Fatalf("unexpected %s %s: %s\n%s", status, check, r.Message, dump(rs))
		}
	}
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func statuses(rs []checkResult) map[string]int {
	n := map[string]int{}
	for _, r := range rs {
		n[r.Status]++
	}
	return n
}

// wantFails fails unless the checks that FAIL are exactly checks (each
// may FAIL on several lines): nothing else breaks along with the piece
// broken on purpose.
func wantFails(t *testing.T, rs []checkResult, checks ...string) {
	t.Helper()
	for _, r := range rs {
		if r.Status == "FAIL" && !slices.Contains(checks, r.Check) {
			t.Fatalf("unexpected FAIL %s: %s\n%s", r.Check, r.Message, dump(rs))
		}
	}
	for _, c := range checks {
		if !slices.ContainsFunc(rs, func(r checkResult) bool { return r.Check == c && r.Status == "FAIL" }) {
			t.Fatalf("no FAIL %s in:\n%s", c, dump(rs))
		}
	}
}

// checkEnv is a correct configuration (cfg, its secrets in work) for srv,
// mail and sms.
type checkEnv struct {
	srv       *dirtest.Server
	mail      *notifytest.Mailpit
	sms       *notifytest.FakeTwilio
	work, cfg string
}

// brokenCase is one misconfiguration of issue #8's list that check must
// name with its own FAIL line and fix, on every server.
type brokenCase struct {
	name string
	// broken writes the broken configuration, a variant of e.cfg
	broken func(t *testing.T, e checkEnv) string
	args   []string
	// fails are the checks that FAIL, and no other
	fails []string
	// want asserts the lines (at least one FAIL with its fix)
	want func(t *testing.T, e checkEnv, rs []checkResult)
}

// brokenCases are run the same way against slapd and Samba AD.
var brokenCases = []brokenCase{
	{
		name: "WrongCA",
		broken: func(t *testing.T, e checkEnv) string {
			other, err := dirtest.WriteCerts(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return variant(t, e.cfg, func(c *config.Config) { c.Directory.CAFile = other.CAFile })
		},
		fails: []string{"directory.tls", "directory.bind"},
		want: func(t *testing.T, e checkEnv, rs []checkResult) {
			wantResult(t, rs, "directory.tls", "FAIL", "set directory.ca_file to the CA certificate that signed", "unknown authority", `issuer "CN=Latchkey Test CA"`)
			wantNo(t, rs, "directory.tls", "OK")
			wantResult(t, rs, "directory.bind", "FAIL", "directory.tls", "not checked")
		},
	},
	{
		name: "WrongBindPassword",
		broken: func(t *testing.T, e checkEnv) string {
			return variant(t, e.cfg, func(c *config.Config) { c.Directory.BindPasswordFile = writeSecret(t, "Not-The-Password1!") })
		},
		fails: []string{"directory.bind"},
		want: func(t *testing.T, e checkEnv, rs []checkResult) {
			wantResult(t, rs, "directory.bind", "FAIL", "directory.bind_password", "invalid credentials")
			wantResult(t, rs, "directory.tls", "OK", "")
		},
	},
	{
		// an OU that does not exist inside the naming context
		name: "WrongBaseDN",
		broken: func(t *testing.T, e checkEnv) string {
			return variant(t, e.cfg, func(c *config.Config) { c.Directory.BaseDN = "ou=nowhere," + e.srv.BaseDN })
		},
		args:  []string{"--canary", "bob"},
		fails: []string{"directory.base_dn", "directory.canary"},
		want: func(t *testing.T, e checkEnv, rs []checkResult) {
			base := "ou=nowhere," + e.srv.BaseDN
			wantResult(t, rs, "directory.base_dn", "FAIL", "set directory.base_dn to an existing entry", jq(base), "does not exist")
			wantResult(t, rs, "directory.canary", "FAIL", "directory.user_filter", "base_dn "+jq(base),
				strings.ReplaceAll(e.srv.UserFilter, "{username}", "bob"))
		},
	},
	{
		// a base DN no naming context of the server holds (AD answers
		// with a referral, which latchkey never follows)
		name: "BaseDNOutsideNamingContext",
		broken: func(t *testing.T, e checkEnv) string {
			return variant(t, e.cfg, func(c *config.Config) { c.Directory.BaseDN = "dc=elsewhere,dc=net" })
		},
		args:  []string{"--canary", "bob"},
		fails: []string{"directory.base_dn", "directory.canary"},
		want: func(t *testing.T, e checkEnv, rs []checkResult) {
			wantResult(t, rs, "directory.base_dn", "FAIL", "naming context is "+jq(e.srv.BaseDN), `"dc=elsewhere,dc=net"`)
			wantResult(t, rs, "directory.canary", "FAIL", "directory.base_dn", `"dc=elsewhere,dc=net"`)
		},
	},
	{
		name: "MissingGroup",
		broken: func(t *testing.T, e checkEnv) string {
			return variant(t, e.cfg, func(c *config.Config) { c.Policy.Groups = []string{"cn=no-such-group," + e.srv.BaseDN} })
		},
		fails: []string{"directory.group"},
		want: func(t *testing.T, e checkEnv, rs []checkResult) {
			wantResult(t, rs, "directory.group", "FAIL", "correct policy.groups[0]", "policy.groups[0]", "cn=no-such-group", "does not exist")
			wantResult(t, rs, "directory.group", "OK", "", "policy.tiers[0].groups[0]")
		},
	},
	{
		name: "SMTPDown",
		broken: func(t *testing.T, e checkEnv) string {
			return variant(t, e.cfg, func(c *config.Config) { c.SMTP.Port = freePort(t) })
		},
		fails: []string{"smtp"},
		want: func(t *testing.T, e checkEnv, rs []checkResult) {
			wantResult(t, rs, "smtp", "FAIL", "smtp.host and smtp.port", "connect failed", "connection refused")
		},
	},
	{
		name: "BadSMSCredentials",
		broken: func(t *testing.T, e checkEnv) string {
			return variant(t, e.cfg, func(c *config.Config) {
				c.SMS.Twilio.AuthTokenFile = writeSecret(t, "wrong-twilio-auth-token-000000000")
			})
		},
		fails: []string{"sms"},
		want: func(t *testing.T, e checkEnv, rs []checkResult) {
			wantResult(t, rs, "sms", "FAIL", "sms.twilio.auth_token", "refused the credentials", "401", "20003")
			if n := len(e.sms.Messages()); n != 0 {
				t.Fatalf("the SMS check sent %d messages", n)
			}
		},
	},
}

// runBrokenCases runs every brokenCase against e: exit status 1, the case's
// own FAIL lines with their fixes, no other FAIL; and the same FAIL lines,
// with "-- fix:", in the text form.
func runBrokenCases(t *testing.T, e checkEnv) {
	for _, bc := range brokenCases {
		t.Run(bc.name, func(t *testing.T) {
			c := bc.broken(t, e)
			rs, code := checkJSON(t, c, bc.args...)
			t.Logf("check %s:\n%s", strings.Join(bc.args, " "), dump(rs))
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
			}
			wantFails(t, rs, bc.fails...)
			bc.want(t, e, rs)
			out, code := runCheck(t, c, bc.args...)
			if code != 1 {
				t.Fatalf("text form: exit %d, want 1:\n%s", code, out)
			}
			for _, r := range rs {
				if r.Status != "FAIL" {
					continue
				}
				line := fmt.Sprintf("FAIL  %s", r.Check)
				if !strings.Contains(out, line) || !strings.Contains(out, r.Message+" -- fix: "+r.Fix) {
					t.Fatalf("text form lacks %q with %q:\n%s", line, r.Message+" -- fix: "+r.Fix, out)
				}
			}
		})
	}
}

// migrateStore runs latchkey migrate with the configuration at cfg.
func migrateStore(t *testing.T, cfg string) {
	t.Helper()
	if out, err := exec.Command(binary, "migrate", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("latchkey migrate: %v\n%s", err, out)
	}
}

// jq quotes s as JSON (and YAML).
func jq(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestCheckOpenLDAP(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	mail, sms := startMail(t)
	work, cfg, _ := writeConfig(t, srv, mail, sms, params{})
	// a new store: check says so and changes nothing; migrate creates it
	rs, _ := checkJSON(t, cfg)
	wantResult(t, rs, "store", "WARN", "latchkey migrate", "schema behind: run latchkey migrate")
	migrateStore(t, cfg)

	t.Run("AllOKWithCanaryAndTryReset", func(t *testing.T) {
		rs, code := checkJSON(t, cfg, "--canary", "carol", "--try-reset")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, dump(rs))
		}
		if n := statuses(rs); n["WARN"] != 0 || n["FAIL"] != 0 {
			t.Fatalf("not all OK:\n%s", dump(rs))
		}
		for _, c := range []string{"config", "directory.reach", "directory.tls", "directory.bind", "directory.capabilities",
			"directory.base_dn", "directory.canary", "directory.policy", "directory.reset_right", "store", "smtp", "sms"} {
			wantResult(t, rs, c, "OK", "")
		}
		wantResult(t, rs, "directory.tls", "OK", "", "certificate for DNS:localhost", "IP:127.0.0.1")
		for _, g := range []string{"policy.groups[0]", "policy.exclude_groups[0]", "policy.tiers[0].groups[0]"} {
			wantResult(t, rs, "directory.group", "OK", "", g)
		}
		wantResult(t, rs, "directory.reset_right", "OK", "", `"carol"`, "password was changed")
		wantResult(t, rs, "directory.service_account", "OK", "", "never expires", "no pwdMaxAge in ppolicy cn=service")
		wantResult(t, rs, "directory.service_account", "OK", "", "no lockout threshold", "cn=service")
		wantResult(t, rs, "eligibility", "OK", "", `"carol" is eligible`, `member of policy.groups[0]`)
		wantResult(t, rs, "sms", "OK", "", "accepted the credentials", "no message sent")
		// the reset happened: carol's seeded password is gone
		if err := srv.UserBind("carol", srv.Password("carol")); err == nil {
			t.Fatal("carol's old password still binds: nothing was reset")
		}
		if n := len(sms.Messages()); n != 0 {
			t.Fatalf("the SMS check sent %d messages", n)
		}
		out, _ := json.Marshal(rs)
		for _, secret := range []string{twilioToken, srv.ServicePassword} {
			if strings.Contains(string(out), secret) {
				t.Fatalf("the output holds a secret")
			}
		}
	})

	t.Run("TextWithoutCanary", func(t *testing.T) {
		out, code := runCheck(t, cfg)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "OK  ") && !strings.HasPrefix(l, "WARN") && !strings.HasPrefix(l, "FAIL") {
				t.Fatalf("line without a status: %q", l)
			}
			if !strings.HasPrefix(l, "OK") && !strings.Contains(l, " -- fix: ") {
				t.Fatalf("WARN/FAIL line without a fix: %q", l)
			}
		}
		for _, want := range []string{"WARN  directory.canary", "not tried: no --canary USER given", "-- fix: run latchkey check --canary USER",
			"WARN  directory.reset_right", "OK    directory.bind", "0 FAIL"} {
			if !strings.Contains(out, want) {
				t.Fatalf("no %q in:\n%s", want, out)
			}
		}
	})

	t.Run("StartTLS", func(t *testing.T) {
		c := variant(t, cfg, func(c *config.Config) { c.Directory.URLs, c.Directory.StartTLS = []string{srv.URL}, true })
		rs, code := checkJSON(t, c)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, dump(rs))
		}
		wantResult(t, rs, "directory.tls", "OK", "", srv.URL, "TLS 1.")
	})

	t.Run("OneURLUnreachable", func(t *testing.T) {
		dead := "ldaps://127.0.0.1:" + strconv.Itoa(freePort(t))
		c := variant(t, cfg, func(c *config.Config) { c.Directory.URLs = []string{dead, srv.LDAPSURL} })
		rs, code := checkJSON(t, c)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantResult(t, rs, "directory.reach", "FAIL", "directory.urls[0]", dead, "connection refused")
		wantResult(t, rs, "directory.reach", "OK", "", srv.LDAPSURL)
		wantResult(t, rs, "directory.bind", "OK", "", srv.LDAPSURL) // failover to the second
	})

	runBrokenCases(t, checkEnv{srv: srv, mail: mail, sms: sms, work: work, cfg: cfg})

	t.Run("AmbiguousCanary", func(t *testing.T) {
		c := variant(t, cfg, func(c *config.Config) {
			c.Directory.UserFilter = strings.ReplaceAll(c.Directory.UserFilter, "(uid={username})", "(sn={username})")
		})
		rs, code := checkJSON(t, c, "--canary", "Twin")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantResult(t, rs, "directory.canary", "FAIL", "directory.user_filter", "ambiguous", "(sn=Twin)")
	})

	t.Run("NoResetRight", func(t *testing.T) {
		c := variant(t, cfg, func(c *config.Config) {
			c.Directory.BindDN, c.Directory.BindPasswordFile = srv.ReadOnlyDN, writeSecret(t, srv.ReadOnlyPassword)
		})
		rs, code := checkJSON(t, c, "--canary", "bob", "--try-reset")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantResult(t, rs, "directory.bind", "OK", "", srv.ReadOnlyDN)
		wantResult(t, rs, "directory.canary", "OK", "", "uid=bob")
		wantFails(t, rs, "directory.reset_right")
		wantResult(t, rs, "directory.reset_right", "FAIL", "=wx", "may not reset", "insufficient access")
		if err := srv.UserBind("bob", srv.Password("bob")); err != nil {
			t.Fatalf("bob's password changed after all: %v", err)
		}
		// without --try-reset OpenLDAP offers nothing read-only: WARN, not OK
		rs, _ = checkJSON(t, c, "--canary", "bob")
		wantResult(t, rs, "directory.reset_right", "WARN", "--try-reset", "no read-only test")
	})

	t.Run("Flags", func(t *testing.T) {
		if out, code := runCheck(t, cfg, "--try-reset"); code != 2 {
			t.Fatalf("--try-reset without --canary: exit %d\n%s", code, out)
		}
		out, code := runCheck(t, cfg, "--help")
		if code != 0 {
			t.Fatalf("--help: exit %d", code)
		}
		for _, want := range []string{"-canary", "-try-reset", "-json", "changes its password", "directory.reset_right", "Exit status"} {
			if !strings.Contains(out, want) {
				t.Fatalf("--help lacks %q:\n%s", want, out)
			}
		}
		bad := variant(t, cfg, func(c *config.Config) { c.Policy.MethodsRequired = 7 })
		if out, code := runCheck(t, bad); code != 2 {
			t.Fatalf("invalid configuration: exit %d\n%s", code, out)
		}
		// --json still prints JSON: the problems as FAIL config lines, nothing else
		rs, code := checkJSON(t, bad)
		if code != 2 {
			t.Fatalf("invalid configuration with --json: exit %d\n%s", code, dump(rs))
		}
		r := wantResult(t, rs, "config", "FAIL", "correct policy.methods_required in "+bad, "invalid: policy.methods_required")
		if len(rs) != 1 {
			t.Fatalf("more than the one problem:\n%s", dump(rs))
		}
		if strings.Contains(r.Message, srv.ServicePassword) {
			t.Fatalf("the output holds a secret: %s", r.Message)
		}
		missing := filepath.Join(t.TempDir(), "missing.yaml")
		rs, code = checkJSON(t, missing)
		if code != 2 || len(rs) != 1 {
			t.Fatalf("missing configuration with --json: exit %d\n%s", code, dump(rs))
		}
		wantResult(t, rs, "config", "FAIL", "make --config name a readable YAML configuration file", "not loaded", missing)
	})
}

// TestCheckCertificateNames runs check against slapds whose certificates
// lack the name the gateway connects to.
func TestCheckCertificateNames(t *testing.T) {
	parallel(t)
	mail, sms := startMail(t)
	t.Run("OtherName", func(t *testing.T) {
		srv := dirtest.StartOpenLDAP(t, dirtest.WithCertNames("ldap.example.org"))
		_, cfg, _ := writeConfig(t, srv, mail, sms, params{})
		rs, code := checkJSON(t, cfg)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantFails(t, rs, "directory.tls", "directory.bind")
		wantResult(t, rs, "directory.tls", "FAIL", "change the host in directory.urls[0] to a name the certificate holds (DNS:ldap.example.org)",
			"valid for DNS:ldap.example.org, not 127.0.0.1 (the IP address connected to)")
		for _, r := range rs {
			if r.Check == "directory.tls" && strings.Contains(r.Message, "unknown authority") {
				t.Fatalf("the right CA reported as unknown: %s", r.Message)
			}
		}
	})
	t.Run("NoSAN", func(t *testing.T) {
		srv := dirtest.StartOpenLDAP(t, dirtest.WithCertNames())
		_, cfg, _ := writeConfig(t, srv, mail, sms, params{})
		rs, code := checkJSON(t, cfg)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantFails(t, rs, "directory.tls", "directory.bind")
		wantResult(t, rs, "directory.tls", "FAIL", "subjectAltName for 127.0.0.1", "certificate has no SAN", `CN="localhost"`)
		wantResult(t, rs, "directory.bind", "FAIL", "a subjectAltName for that name", "a name problem: the CA is trusted")
		// StartTLS is inspected the same way
		c := variant(t, cfg, func(c *config.Config) { c.Directory.URLs, c.Directory.StartTLS = []string{srv.URL}, true })
		rs, _ = checkJSON(t, c)
		wantResult(t, rs, "directory.tls", "FAIL", "subjectAltName", srv.URL, "certificate has no SAN")
	})
}

// TestCheckReferral: a base DN and a group outside the server's naming
// context, answered with a referral (as Windows AD does for another
// domain's DNs, and slapd with a "referral" directive; Samba 4.17 answers
// "no such object" instead, see BaseDNOutsideNamingContext), each get a
// FAIL that says so and how to fix it, and nothing connects to the server
// the referral names.
func TestCheckReferral(t *testing.T) {
	parallel(t)
	trap := dirtest.StartTrap(t)
	srv := dirtest.StartOpenLDAP(t, dirtest.WithReferral(trap.URL))
	mail, sms := startMail(t)
	_, cfg, _ := writeConfig(t, srv, mail, sms, params{})
	const elsewhere = "dc=elsewhere,dc=net"
	c := variant(t, cfg, func(c *config.Config) {
		c.Directory.BaseDN, c.Policy.Groups = elsewhere, []string{"cn=staff," + elsewhere}
	})
	rs, code := checkJSON(t, c, "--canary", "bob")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
	}
	wantFails(t, rs, "directory.base_dn", "directory.group", "directory.canary")
	nc := `(its naming context is "dc=example,dc=org")`
	wantResult(t, rs, "directory.base_dn", "FAIL", `set directory.base_dn to the entry above the users inside the server's naming context ("dc=example,dc=org")`,
		`"dc=elsewhere,dc=net" is not held by the server`, nc, "answered with a referral, which latchkey never follows")
	wantResult(t, rs, "directory.group", "FAIL", `correct policy.groups[0] to the DN of a group inside the server's naming context ("dc=example,dc=org")`,
		`policy.groups[0]: "cn=staff,dc=elsewhere,dc=net" is not held by the server`, nc, "referral")
	wantResult(t, rs, "directory.canary", "FAIL", "set directory.base_dn", `base_dn "dc=elsewhere,dc=net"`, `"bob"`, nc, "referral")
	for _, r := range rs {
		if strings.Contains(r.Message, "unavailable") {
			t.Fatalf("a referral reported as an unavailable server: %+v", r)
		}
	}
	if n := trap.Dialed(); n != 0 {
		t.Fatalf("%d connections to the referred server", n)
	}
}

func TestCheckActiveDirectory(t *testing.T) {
	parallel(t)
	srv := dirtest.StartSamba(t)
	mail, sms := startMail(t)
	work, cfg, _ := writeConfig(t, srv, mail, sms, params{})
	migrateStore(t, cfg)

	t.Run("OKButNoPolicyHints", func(t *testing.T) {
		rs, code := checkJSON(t, cfg, "--canary", "carol", "--try-reset")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, dump(rs))
		}
		// Samba 4.17 lacks the policy hints control: the only WARN
		wantResult(t, rs, "directory.capabilities", "WARN", "policy hints control", "policy hints control", "skip password history")
		for _, r := range rs {
			if r.Status != "OK" && r.Check != "directory.capabilities" {
				t.Fatalf("not OK: %+v\n%s", r, dump(rs))
			}
		}
		wantResult(t, rs, "directory.reset_right", "OK", "", `"carol"`, "password was changed")
		wantResult(t, rs, "directory.policy", "OK", "", "domain", "no minimum age")
		// the fixture exempts the service account with a PSO, as the docs say
		wantResult(t, rs, "directory.service_account", "OK", "", "never expires", "maximum password age 0", "CN=sspr-service")
		wantResult(t, rs, "directory.service_account", "OK", "", "no lockout threshold", "CN=sspr-service")
		wantResult(t, rs, "eligibility", "OK", "", `"carol" is eligible`, `member of policy.groups[0] "`+srv.Group("staff")+`"`, "no tier applies")
		wantResult(t, rs, "policy.cooling_off", "OK", "", "0s")
		if err := srv.UserBind("carol", srv.Password("carol")); err == nil {
			t.Fatal("carol's old password still binds: nothing was reset")
		}
	})

	t.Run("ReadOnlyRightsCheck", func(t *testing.T) {
		rs, _ := checkJSON(t, cfg, "--canary", "bob")
		wantResult(t, rs, "directory.reset_right", "WARN", "--try-reset", "lockoutTime and pwdLastSet", "allowedAttributesEffective")
	})

	t.Run("NoResetRight", func(t *testing.T) {
		c := variant(t, cfg, func(c *config.Config) {
			c.Directory.BindDN, c.Directory.BindPasswordFile = srv.ReadOnlyDN, writeSecret(t, srv.ReadOnlyPassword)
		})
		rs, code := checkJSON(t, c, "--canary", "erin")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantFails(t, rs, "directory.reset_right")
		wantResult(t, rs, "directory.reset_right", "FAIL", "Reset Password", "may not write lockoutTime, pwdLastSet")
		rs, code = checkJSON(t, c, "--canary", "erin", "--try-reset")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantFails(t, rs, "directory.reset_right")
		wantResult(t, rs, "directory.reset_right", "FAIL", "delegate to "+srv.ReadOnlyDN, "may not reset", "insufficient access")
		if err := srv.UserBind("erin", srv.Password("erin")); err != nil {
			t.Fatalf("erin's password changed after all: %v", err)
		}
	})

	runBrokenCases(t, checkEnv{srv: srv, mail: mail, sms: sms, work: work, cfg: cfg})

	t.Run("Eligibility", func(t *testing.T) {
		pg := srv.AddADUser(t, "chk-pg-admin", srv.Group("staff"))
		srv.SetPrimaryGroup(t, pg, "CN=Domain Admins,CN=Users,"+srv.BaseDN)
		srv.AddADUser(t, "chk-printop", srv.Group("staff"), "CN=Print Operators,CN=Builtin,"+srv.BaseDN)
		srv.AddADUser(t, "chk-excluded", srv.Group("staff"), srv.Group("cycle-a"))
		for _, tc := range []struct {
			canary, status, fix string
			msg                 []string
		}{
			{"alice", "OK", "", []string{`"alice" is eligible`, `member of policy.groups[0] "` + srv.Group("staff") + `"`, "policy.tiers[0] applies", "2 method(s) of email, sms"}},
			{"chk-excluded", "WARN", "take the canary out of that group", []string{`"chk-excluded" is not eligible`, `excluded as a member of policy.exclude_groups[0] "` + srv.Group("cycle-a") + `"`}},
			{"chk-pg-admin", "WARN", "test with an ordinary account", []string{"not eligible: privileged (Domain Admins S-1-5-21-", "-512)", "policy.include_privileged"}},
			{"chk-printop", "WARN", "test with an ordinary account", []string{"not eligible: privileged (Print Operators S-1-5-32-550)"}},
			{"erin", "WARN", "add the canary (or a group it is in) to one of policy.groups", []string{`"erin" is not eligible: not a member of any of policy.groups[0]`}},
		} {
			rs, code := checkJSON(t, cfg, "--canary", tc.canary)
			if code != 0 {
				t.Fatalf("%s: exit %d (a WARN must not change it):\n%s", tc.canary, code, dump(rs))
			}
			wantResult(t, rs, "eligibility", tc.status, tc.fix, tc.msg...)
			out, code := runCheck(t, cfg, "--canary", tc.canary)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("%-4s  eligibility ", tc.status)) {
				t.Fatalf("%s: text form, exit %d:\n%s", tc.canary, code, out)
			}
		}
	})

	t.Run("ExpiringServiceAccount", func(t *testing.T) {
		// bob as the service account: no PSO, so the domain's policy
		// (lockout threshold 3) applies, and a maximum age of 42 days
		srv.Modify(t, "dn: "+srv.BaseDN+"\nchangetype: modify\nreplace: maxPwdAge\nmaxPwdAge: -36288000000000\n")
		t.Cleanup(func() {
			srv.Modify(t, "dn: "+srv.BaseDN+"\nchangetype: modify\nreplace: maxPwdAge\nmaxPwdAge: -9223372036854775808\n")
		})
		c := variant(t, cfg, func(c *config.Config) {
			c.Directory.BindDN, c.Directory.BindPasswordFile = srv.ReadOnlyDN, writeSecret(t, srv.ReadOnlyPassword)
		})
		rs, code := checkJSON(t, c)
		if code != 0 {
			t.Fatalf("exit %d (a WARN must not change it):\n%s", code, dump(rs))
		}
		for _, fix := range []string{
			"samba-tool domain passwordsettings pso create latchkey-service 1 --account-lockout-threshold=0 --max-pwd-age=0",
			"samba-tool domain passwordsettings pso apply latchkey-service bob",
			"New-ADFineGrainedPasswordPolicy -Name latchkey-service -Precedence 1 -LockoutThreshold 0 -MaxPasswordAge 0",
			"Add-ADFineGrainedPasswordPolicySubject latchkey-service -Subjects bob",
		} {
			wantResult(t, rs, "directory.service_account", "WARN", fix, "password expires on ", "maximum password age 42 days, the domain's policy", "every bind fails")
			wantResult(t, rs, "directory.service_account", "WARN", fix, "lockout threshold of 3 failed binds (the domain's policy)")
		}
		out, _ := runCheck(t, c)
		if !strings.Contains(out, "WARN  directory.service_account") {
			t.Fatalf("text form:\n%s", out)
		}
	})

	t.Run("CoolingOff", func(t *testing.T) {
		c := variant(t, cfg, func(c *config.Config) { c.Policy.CoolingOff = 24 * time.Hour })
		rs, code := checkJSON(t, c)
		if code != 0 {
			t.Fatalf("exit %d (a WARN must not change it):\n%s", code, dump(rs))
		}
		wantResult(t, rs, "policy.cooling_off", "WARN", "set policy.cooling_off: 0s for the trial",
			"24h: a method registered now cannot alone authorise a reset until ", "method_too_new")
	})

	t.Run("MinPwdAge", func(t *testing.T) {
		// one day, in AD's negative 100 ns units
		srv.Modify(t, "dn: "+srv.BaseDN+"\nchangetype: modify\nreplace: minPwdAge\nminPwdAge: -864000000000\n")
		rs, code := checkJSON(t, cfg)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, dump(rs))
		}
		wantResult(t, rs, "directory.policy", "WARN", "--min-pwd-age=0", "minimum password age is 24h0m0s", "cannot reset again")
	})
}

// TestCheckActiveDirectoryGeneratedCert runs check against a Samba DC that
// serves the certificate Samba generated itself (no subjectAltName), with
// Samba's own CA in directory.ca_file, over LDAPS and StartTLS. Samba gives
// half of such certificates (and their CA) a negative serial number, which
// Go cannot read at all; both kinds are tried, each on a DC of its own.
func TestCheckActiveDirectoryGeneratedCert(t *testing.T) {
	parallel(t)
	mail, sms := startMail(t)
	const smbFix = `(Samba's self-generated certificates often have negative serial numbers and never a subjectAltName: set "tls certfile", "tls keyfile" and "tls cafile" in smb.conf)`
	// {addr} is the DC's address (its Samba slot's)
	negFix := "give the directory server a certificate with a positive serial number and a subjectAltName for {addr}, from a CA whose certificate has a positive serial number too, and set directory.ca_file to that CA " + smbFix
	type variantCase struct {
		name    string
		otherCA bool // directory.ca_file: another CA instead of Samba's
		fix     string
		msg     []string
	}
	for _, serial := range []struct {
		name     string
		negative bool
		cases    []variantCase
	}{
		{"PositiveSerial", false, []variantCase{
			// Samba's CA verifies the chain: the one problem is the name
			{"SambaCA", false, `the certificate's name is the problem, not its CA: give the directory server a certificate with a subjectAltName for {addr}. ` +
				`Samba's self-generated certificate has none: make a CA and a server certificate with openssl (subjectAltName=DNS:<dc name>,IP:<address>), ` +
				`set "tls keyfile", "tls certfile" and "tls cafile" in smb.conf to them, restart samba, and set directory.ca_file to the new CA (docs/active-directory.md has the commands).`,
				[]string{"certificate has no SAN", `only CN="DC1.example.test"`, "not valid for {addr}"}},
		}},
		{"NegativeSerial", true, []variantCase{
			// Samba's CA has the negative serial too: ca_file cannot be read
			{"SambaCA", false, negFix, []string{"ca_file", "its certificate cannot be read: x509: negative serial number", "refuses certificates with a negative serial number"}},
			// another CA: the server's certificate cannot be read
			{"OtherCA", true, negFix, []string{"the server's certificate has a negative serial number", "refuses to read", "whatever the CA"}},
		}},
	} {
		t.Run(serial.name, func(t *testing.T) {
			srv := dirtest.StartSambaGeneratedCert(t, serial.negative)
			_, cfg, _ := writeConfig(t, srv, mail, sms, params{})
			other, err := dirtest.WriteCerts(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, vc := range serial.cases {
				for _, tc := range []struct {
					name, url string
					startTLS  bool
				}{
					{"LDAPS", srv.LDAPSURL, false},
					{"StartTLS", srv.URL, true},
				} {
					t.Run(vc.name+"/"+tc.name, func(t *testing.T) {
						ca := srv.CAFile
						if vc.otherCA {
							ca = other.CAFile
						}
						c := variant(t, cfg, func(c *config.Config) {
							c.Directory.URLs, c.Directory.StartTLS, c.Directory.CAFile = []string{tc.url}, tc.startTLS, ca
						})
						rs, code := checkJSON(t, c)
						if code != 1 {
							t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
						}
						wantFails(t, rs, "directory.tls", "directory.bind")
						addr := func(s string) string { return strings.ReplaceAll(s, "{addr}", srv.Host()) }
						var msg []string
						for _, m := range vc.msg {
							msg = append(msg, addr(m))
						}
						wantResult(t, rs, "directory.tls", "FAIL", addr(vc.fix), append([]string{tc.url}, msg...)...)
						for _, r := range rs {
							if r.Check == "directory.tls" && strings.Contains(r.Message, "unknown authority") {
								t.Fatalf("reported as an unknown authority: %s", r.Message)
							}
						}
						wantResult(t, rs, "directory.bind", "FAIL", "directory.tls", "not checked")
						if !serial.negative {
							// the CA is trusted: the bind line names the name
							wantResult(t, rs, "directory.bind", "FAIL", "a subjectAltName for that name", "not valid for the name in directory.urls", "a name problem")
						}
						for _, r := range rs {
							if r.Check == "directory.bind" && !serial.negative && strings.Contains(r.Message, "trust") && !strings.Contains(r.Message, "the CA is trusted") {
								t.Fatalf("a name problem called a trust problem: %s", r.Message)
							}
						}
					})
				}
			}
		})
	}
}

// TestCheckSMTPStartTLSAuth runs check against a mailpit that requires
// STARTTLS and AUTH (PLAIN/LOGIN): OK with the right password, a FAIL at
// the auth stage with its fix with a wrong one, and never the password in
// the output.
func TestCheckSMTPStartTLSAuth(t *testing.T) {
	parallel(t)
	const user, pass = "latchkey", "Smtp-Auth-Pass-5e7a"
	srv := dirtest.StartOpenLDAP(t)
	mail := notifytest.StartMailpit(t, notifytest.MailpitSTARTTLS(), notifytest.MailpitAuth(user, pass))
	sms := notifytest.StartTwilio(t, notifytest.TwilioCredentials(twilioSID, twilioToken), notifytest.TwilioSenders(twilioFrom))
	_, cfg, _ := writeConfig(t, srv, mail, sms, params{})
	smtp := func(password string) string {
		return variant(t, cfg, func(c *config.Config) {
			c.SMTP.TLS, c.SMTP.CAFile = config.SMTPTLSStartTLS, mail.Cert.CertFile
			c.SMTP.Username, c.SMTP.PasswordFile = user, writeSecret(t, password)
		})
	}
	t.Run("OK", func(t *testing.T) {
		rs, code := checkJSON(t, smtp(pass))
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, dump(rs))
		}
		wantResult(t, rs, "smtp", "OK", "", fmt.Sprintf("127.0.0.1:%d: STARTTLS, certificate verified, AUTH as %s accepted; nothing sent", mail.SMTPPort, user))
	})
	t.Run("WrongPassword", func(t *testing.T) {
		c := smtp("Not-The-Smtp-Password-1")
		rs, code := checkJSON(t, c)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, dump(rs))
		}
		wantFails(t, rs, "smtp")
		wantResult(t, rs, "smtp", "FAIL", "check smtp.username and smtp.password (or smtp.password_file)", "auth failed", "535")
		out, _ := runCheck(t, c)
		if strings.Contains(out, "Not-The-Smtp-Password-1") || strings.Contains(dump(rs), "Not-The-Smtp-Password-1") {
			t.Fatalf("the output holds the SMTP password:\n%s", out)
		}
	})
}

// TestCheckServiceAccountOpenLDAP: on slapd, check reads the service
// account's own ppolicy: OK while its policy (cn=service) neither expires
// nor locks it; a WARN for each, with the pwdPolicy fix, once that policy
// gets a pwdMaxAge and a lockout; and the canary's eligibility line for an
// excluded member (judy, in policy.exclude_groups).
func TestCheckServiceAccountOpenLDAP(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	mail, sms := startMail(t)
	_, cfg, _ := writeConfig(t, srv, mail, sms, params{})
	rs, code := checkJSON(t, cfg, "--canary", "judy")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, dump(rs))
	}
	wantResult(t, rs, "directory.service_account", "OK", "", "never expires")
	wantResult(t, rs, "directory.service_account", "OK", "", "no lockout threshold")
	wantResult(t, rs, "eligibility", "WARN", "take the canary out of that group", `"judy" is not eligible`,
		`excluded as a member of policy.exclude_groups[0] "`+srv.Group("cycle-a")+`"`)

	srv.Modify(t, "dn: cn=service,ou=policies,"+srv.BaseDN+"\nchangetype: modify\nreplace: pwdMaxAge\npwdMaxAge: 3628800\n-\n"+
		"replace: pwdLockout\npwdLockout: TRUE\n-\nreplace: pwdMaxFailure\npwdMaxFailure: 4\n")
	rs, code = checkJSON(t, cfg)
	if code != 0 {
		t.Fatalf("exit %d (a WARN must not change it):\n%s", code, dump(rs))
	}
	fix := "pwdLockout: FALSE and pwdMaxAge: 0, named in the service account's pwdPolicySubentry"
	wantResult(t, rs, "directory.service_account", "WARN", fix, "maximum age of 42 days (ppolicy cn=service", "expires 42 days after its next change")
	wantResult(t, rs, "directory.service_account", "WARN", fix, "lockout threshold of 4 failed binds (ppolicy cn=service")
}
