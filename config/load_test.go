package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

const fullYAML = `
server:
  listen: "0.0.0.0:8443"
  public_url: "https://sspr.example.org"
  trusted_proxies: ["10.0.0.0/8", "192.0.2.1"]
  secret_key: "` + testKey + `"
  helpdesk: "https://help.example.org"
  read_timeout: 20s
directory:
  type: activedirectory
  urls: ["ldaps://dc1.corp.example.org", "ldaps://dc2.corp.example.org:3269"]
  ca_file: /etc/ca.pem
  bind_dn: "CN=sspr,OU=Services,DC=corp,DC=example,DC=org"
  bind_password: "bind-pw"
  base_dn: "DC=corp,DC=example,DC=org"
  timeout: 3s
  pool_size: 8
policy:
  scope: selected
  groups: ["CN=SSPR Users,OU=Groups,DC=corp,DC=example,DC=org"]
  exclude_groups: ["CN=No SSPR,OU=Groups,DC=corp,DC=example,DC=org"]
  methods_required: 1
  methods: [email, sms]
  tiers:
    - groups: ["CN=IT,OU=Groups,DC=corp,DC=example,DC=org"]
      methods_required: 2
    - groups: ["CN=Field,OU=Groups,DC=corp,DC=example,DC=org"]
      methods: [sms]
  password:
    min_length: 14
    banned_words: [acme]
  code_ttl: 5m
  code_length: 6
  max_tries: 3
  cooling_off: 12h
  pad_floor: 25ms
  reconfirm_days: 90
email:
  enabled: true
sms:
  enabled: true
  provider: twilio
  allowed_countries: [GB, DE]
  twilio:
    account_sid: "AC0123456789abcdef0123456789abcdef"
    auth_token: "tw-token"
    from: "+441234567890"
smtp:
  host: smtp.example.org
  port: 465
  tls: implicit
  username: sspr
  password: smtp-pw
  from: "Reset <no-reply@example.org>"
store:
  driver: postgres
  dsn: "postgres://latchkey@db.example.org/latchkey?sslmode=verify-full"
log:
  level: debug
  format: text
`

func TestLoadYAML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "latchkey.yaml", fullYAML, 0o600)
	cfg, err := config.Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.listen", cfg.Server.Listen, "0.0.0.0:8443"},
		{"server.trusted_proxies", cfg.Server.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.1"}},
		{"server.read_timeout", cfg.Server.ReadTimeout, 20 * time.Second},
		{"server.write_timeout default", cfg.Server.WriteTimeout, 30 * time.Second},
		{"directory.type", cfg.Directory.Type, "activedirectory"},
		{"directory.urls", cfg.Directory.URLs, []string{"ldaps://dc1.corp.example.org", "ldaps://dc2.corp.example.org:3269"}},
		{"directory.user_filter derived from type", cfg.Directory.UserFilter, config.DefaultUserFilter("activedirectory")},
		{"directory.timeout", cfg.Directory.Timeout, 3 * time.Second},
		{"directory.pool_size", cfg.Directory.PoolSize, 8},
		{"policy.tiers", cfg.Policy.Tiers, []config.Tier{
			{Groups: []string{"CN=IT,OU=Groups,DC=corp,DC=example,DC=org"}, MethodsRequired: 2},
			{Groups: []string{"CN=Field,OU=Groups,DC=corp,DC=example,DC=org"}, Methods: []string{"sms"}},
		}},
		{"policy.password.min_length", cfg.Policy.Password.MinLength, 14},
		{"policy.password.max_length default", cfg.Policy.Password.MaxLength, 128},
		{"policy.code_ttl", cfg.Policy.CodeTTL, 5 * time.Minute},
		{"policy.cooling_off", cfg.Policy.CoolingOff, 12 * time.Hour},
		{"policy.pad_floor", cfg.Policy.PadFloor, 25 * time.Millisecond},
		{"sms.twilio.account_sid", cfg.SMS.Twilio.AccountSID, "AC0123456789abcdef0123456789abcdef"},
		{"sms.twilio.base_url default", cfg.SMS.Twilio.BaseURL, "https://api.twilio.com"},
		{"smtp.port", cfg.SMTP.Port, 465},
		{"store.dsn", cfg.Store.DSN, "postgres://latchkey@db.example.org/latchkey?sslmode=verify-full"},
		{"log.format", cfg.Log.Format, "text"},
		{"demo off", cfg.Demo, false},
		{"no warnings", len(cfg.Warnings), 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := config.Default(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(\"\") = %+v\nwant Default() = %+v", cfg, want)
	}
	if cfg.Store.DSN != config.DefaultDSN || cfg.Directory.UserFilter != config.DefaultUserFilter("openldap") {
		t.Errorf("derived defaults not applied: %+v", cfg)
	}
	e := cfg.Policy.Eligibility()
	if e.Scope != "none" || !e.ExcludePrivileged {
		t.Errorf("default eligibility %+v must let nobody in and exclude privileged accounts", e)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	var all []string
	for _, k := range config.Keys() {
		if other, dup := seen[k.Env]; dup {
			t.Errorf("%s and %s share the variable %s", other, k.Path, k.Env)
		}
		seen[k.Env] = k.Path
		all = append(all, k.Path)
	}
	for _, want := range []string{"server.secret_key_file", "directory.bind_password_file", "sms.twilio.account_sid",
		"sms.twilio.auth_token_file", "sms.webhook.secret_file", "smtp.password_file", "store.dsn_file", "policy.tiers",
		"policy.password.banned_words", "log.audit_file", "policy.include_privileged"} {
		if !slices.Contains(all, want) {
			t.Errorf("key %s missing from Keys()", want)
		}
	}
	if seen["LATCHKEY_SMS_TWILIO_ACCOUNT_SID"] != "sms.twilio.account_sid" {
		t.Errorf("nested env name wrong: %v", seen)
	}
	for _, k := range []string{"demo", "warnings"} {
		if slices.Contains(all, k) {
			t.Errorf("%s must not be a configuration key", k)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	base := `
server:
  listen: "127.0.0.1:9000"
  trusted_proxies: ["10.0.0.0/8"]
policy:
  groups: ["cn=from-file,dc=example,dc=org"]
sms:
  twilio:
    account_sid: "ACfromfile"
`
	tests := []struct {
		name string
		env  map[string]string
		get  func(*config.Config) any
		want any
	}{
		{"string wins over file", map[string]string{"LATCHKEY_SERVER_LISTEN": ":8443"},
			func(c *config.Config) any { return c.Server.Listen }, ":8443"},
		{"key absent from file", map[string]string{"LATCHKEY_SERVER_PUBLIC_URL": "https://x.example.org"},
			func(c *config.Config) any { return c.Server.PublicURL }, "https://x.example.org"},
		{"nested section", map[string]string{"LATCHKEY_SMS_TWILIO_ACCOUNT_SID": "ACfromenv"},
			func(c *config.Config) any { return c.SMS.Twilio.AccountSID }, "ACfromenv"},
		{"nested, absent from file", map[string]string{"LATCHKEY_SMS_WEBHOOK_URL": "https://hook.example.org"},
			func(c *config.Config) any { return c.SMS.Webhook.URL }, "https://hook.example.org"},
		{"three levels", map[string]string{"LATCHKEY_POLICY_PASSWORD_MIN_LENGTH": "16"},
			func(c *config.Config) any { return c.Policy.Password.MinLength }, 16},
		{"bool", map[string]string{"LATCHKEY_EMAIL_ENABLED": "false"},
			func(c *config.Config) any { return c.Email.Enabled }, false},
		{"duration", map[string]string{"LATCHKEY_DIRECTORY_TIMEOUT": "750ms"},
			func(c *config.Config) any { return c.Directory.Timeout }, 750 * time.Millisecond},
		{"comma list", map[string]string{"LATCHKEY_SMS_ALLOWED_COUNTRIES": "GB, DE,FR"},
			func(c *config.Config) any { return c.SMS.AllowedCountries }, []string{"GB", "DE", "FR"}},
		{"comma list replaces file list", map[string]string{"LATCHKEY_SERVER_TRUSTED_PROXIES": "192.0.2.0/24,::1"},
			func(c *config.Config) any { return c.Server.TrustedProxies }, []string{"192.0.2.0/24", "::1"}},
		{"JSON list", map[string]string{"LATCHKEY_DIRECTORY_URLS": `["ldaps://a.example.org", "ldaps://b.example.org"]`},
			func(c *config.Config) any { return c.Directory.URLs }, []string{"ldaps://a.example.org", "ldaps://b.example.org"}},
		{"DN list split on semicolons, escapes kept", map[string]string{"LATCHKEY_POLICY_GROUPS": `cn=a,ou=g,dc=example,dc=org; cn=b\;c,ou=g,dc=example,dc=org`},
			func(c *config.Config) any { return c.Policy.Groups }, []string{"cn=a,ou=g,dc=example,dc=org", `cn=b\;c,ou=g,dc=example,dc=org`}},
		{"DN list as JSON", map[string]string{"LATCHKEY_POLICY_EXCLUDE_GROUPS": `["cn=x,dc=example,dc=org","cn=y,dc=example,dc=org"]`},
			func(c *config.Config) any { return c.Policy.ExcludeGroups }, []string{"cn=x,dc=example,dc=org", "cn=y,dc=example,dc=org"}},
		{"single DN stays whole", map[string]string{"LATCHKEY_POLICY_PRIVILEGED_GROUPS": "cn=admins,ou=groups,dc=example,dc=org"},
			func(c *config.Config) any { return c.Policy.PrivilegedGroups }, []string{"cn=admins,ou=groups,dc=example,dc=org"}},
		{"tiers as JSON", map[string]string{"LATCHKEY_POLICY_TIERS": `[{"groups":["cn=it,dc=example,dc=org"],"methods_required":2}]`},
			func(c *config.Config) any { return c.Policy.Tiers }, []config.Tier{{Groups: []string{"cn=it,dc=example,dc=org"}, MethodsRequired: 2}}},
		{"empty value ignored", map[string]string{"LATCHKEY_SERVER_LISTEN": ""},
			func(c *config.Config) any { return c.Server.Listen }, "127.0.0.1:9000"},
		{"unrelated variables ignored", map[string]string{"LATCHKEY_NOPE": "x", "LATCHKEY_SERVER": "x"},
			func(c *config.Config) any { return c.Server.Listen }, "127.0.0.1:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, t.TempDir(), "c.yaml", base, 0o600)
			cfg, err := config.Load(path, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEnvWithoutFile(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", env(map[string]string{"LATCHKEY_SMS_TWILIO_FROM": "+15551234567", "LATCHKEY_LOG_LEVEL": "warn"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMS.Twilio.From != "+15551234567" || cfg.Log.Level != "warn" {
		t.Errorf("env not applied without a file: %+v %+v", cfg.SMS.Twilio, cfg.Log)
	}
}

func TestEnvBadValues(t *testing.T) {
	t.Parallel()
	const marker = "S3CR3T-MARKER"
	_, err := config.Load("", env(map[string]string{
		"LATCHKEY_SMTP_PORT":              "25" + marker,
		"LATCHKEY_EMAIL_ENABLED":          "maybe" + marker,
		"LATCHKEY_DIRECTORY_TIMEOUT":      "5" + marker,
		"LATCHKEY_DIRECTORY_URLS":         `["unterminated` + marker,
		"LATCHKEY_POLICY_TIERS":           "not json " + marker,
		"LATCHKEY_POLICY_METHODS":         "email",
		"LATCHKEY_POLICY_CODE_LENGTH":     "8",
		"LATCHKEY_SERVER_TRUSTED_PROXIES": "",
	}))
	ps := problems(t, err)
	want := map[string]string{
		"email.enabled":     "LATCHKEY_EMAIL_ENABLED: not a boolean",
		"directory.urls":    "LATCHKEY_DIRECTORY_URLS: not a JSON array",
		"directory.timeout": "LATCHKEY_DIRECTORY_TIMEOUT: not a duration",
		"policy.tiers":      "LATCHKEY_POLICY_TIERS: not a JSON array",
		"smtp.port":         "LATCHKEY_SMTP_PORT: not a whole number",
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d: %v", len(ps), len(want), ps)
	}
	for k, msg := range want {
		if !hasProblem(ps, k, msg) {
			t.Errorf("missing problem %s: %s in %v", k, msg, ps)
		}
	}
	if strings.Contains(err.Error(), marker) {
		t.Errorf("error quotes the value: %v", err)
	}
}

func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	yaml := `
serverr:
  listen: ":1"
server:
  listen: ":8080"
  publicurl: "https://x"
directory:
  bind_passwd_file: /x
policy:
  tiers:
    - groups: ["cn=a,dc=b"]
      method_required: 2
sms:
  twilio:
    auth_tokn: x
demo: true
`
	path := writeFile(t, t.TempDir(), "c.yaml", yaml, 0o600)
	_, err := config.Load(path, env(nil))
	ps := problems(t, err)
	got := keys(ps)
	slices.Sort(got)
	want := []string{"demo", "directory.bind_passwd_file", "policy.tiers[0].method_required", "server.publicurl", "serverr", "sms.twilio.auth_tokn"}
	if !slices.Equal(got, want) {
		t.Errorf("unknown keys = %q, want %q", got, want)
	}
	for _, p := range ps {
		if p.Message != "unknown key" {
			t.Errorf("%s: message %q", p.Key, p.Message)
		}
	}
}

func TestTypeErrors(t *testing.T) {
	t.Parallel()
	const marker = "S3CR3T-MARKER"
	yaml := `
server:
  read_timeout: 30
  idle_timeout: "soon"
directory:
  bind_password: ["` + marker + `"]
  pool_size: "four"
  start_tls: "yes"
  urls: "ldaps://single.example.org"
policy:
  groups: "cn=one,ou=groups,dc=example,dc=org"
smtp:
  port: 58.7
`
	path := writeFile(t, t.TempDir(), "c.yaml", yaml, 0o600)
	cfg, err := config.Load(path, env(nil))
	if cfg != nil {
		t.Errorf("Load returned a config with an error")
	}
	ps := problems(t, err)
	want := map[string]string{
		"server.read_timeout":     "must be a duration with a unit",
		"server.idle_timeout":     "must be a duration with a unit",
		"directory.bind_password": "must be a string",
		"directory.pool_size":     "must be a whole number",
		"directory.start_tls":     "must be true or false",
		"smtp.port":               "must be a whole number",
	}
	for k, msg := range want {
		if !hasProblem(ps, k, msg) {
			t.Errorf("missing problem %s: %s in %v", k, msg, ps)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d: %v", len(ps), len(want), ps)
	}
	if strings.Contains(err.Error(), marker) {
		t.Errorf("error quotes a secret: %v", err)
	}
}

func TestScalarWhereListExpected(t *testing.T) {
	t.Parallel()
	// A single DN must not be cut at its commas (viper's default hook would).
	yaml := `
directory:
  urls: "ldaps://single.example.org"
policy:
  groups: "cn=one,ou=groups,dc=example,dc=org"
`
	path := writeFile(t, t.TempDir(), "c.yaml", yaml, 0o600)
	cfg, err := config.Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Policy.Groups, []string{"cn=one,ou=groups,dc=example,dc=org"}) ||
		!slices.Equal(cfg.Directory.URLs, []string{"ldaps://single.example.org"}) {
		t.Errorf("groups = %q, urls = %q", cfg.Policy.Groups, cfg.Directory.URLs)
	}
}

func TestSectionNotAMapping(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "c.yaml", "server: 5\npolicy:\n  tiers: [5]\n", 0o600)
	_, err := config.Load(path, env(nil))
	ps := problems(t, err)
	if !hasProblem(ps, "server", "mapping") || !hasProblem(ps, "policy.tiers[0]", "mapping") || len(ps) != 2 {
		t.Errorf("problems = %v", ps)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := config.Load(filepath.Join(dir, "missing.yaml"), env(nil)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	bad := writeFile(t, dir, "bad.yaml", "server:\n  listen: [\n", 0o600)
	_, err := config.Load(bad, env(nil))
	var ve *config.ValidationError
	if err == nil || errors.As(err, &ve) || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("YAML syntax error: %v", err)
	}
	dup := writeFile(t, dir, "dup.yaml", "log:\n  level: info\n  level: debug\n", 0o600)
	if _, err := config.Load(dup, env(nil)); err == nil {
		t.Error("duplicate key accepted")
	}
}

func TestSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		warn    bool
	}{
		{"trailing newline trimmed", "zq-secret\n", 0o600, "zq-secret", false},
		{"only one newline trimmed", "zq-secret\n\n", 0o600, "zq-secret\n", false},
		{"CRLF trimmed", "zq-secret\r\n", 0o600, "zq-secret", false},
		{"no newline", "zq-secret", 0o640, "zq-secret", false},
		{"inner spaces kept", " zq secret ", 0o400, " zq secret ", false},
		{"world-readable warns", "zq-secret\n", 0o644, "zq-secret", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, dir, "secret"+string(rune('a'+i)), tt.content, tt.mode)
			cfg, err := config.Load("", env(map[string]string{"LATCHKEY_DIRECTORY_BIND_PASSWORD_FILE": p}))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Directory.BindPassword != tt.want {
				t.Errorf("bind_password = %q, want %q", cfg.Directory.BindPassword, tt.want)
			}
			if cfg.Directory.BindPasswordFile != p {
				t.Errorf("bind_password_file = %q, want the path", cfg.Directory.BindPasswordFile)
			}
			gotWarn := slices.ContainsFunc(cfg.Warnings, func(w config.Problem) bool {
				return w.Key == "directory.bind_password_file" && strings.Contains(w.Message, "readable by every user")
			})
			if gotWarn != tt.warn {
				t.Errorf("warnings = %v, want warning %v", cfg.Warnings, tt.warn)
			}
			for _, w := range cfg.Warnings {
				if strings.Contains(w.Message, "zq") {
					t.Errorf("warning quotes the secret: %v", w)
				}
			}
		})
	}
}

func TestEverySecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := func(name, content string) string { return writeFile(t, dir, name, content+"\n", 0o600) }
	e := map[string]string{
		"LATCHKEY_SERVER_SECRET_KEY_FILE":       f("key", testKey),
		"LATCHKEY_DIRECTORY_BIND_PASSWORD_FILE": f("bind", "bind-pw"),
		"LATCHKEY_SMS_ENABLED":                  "true",
		"LATCHKEY_SMS_TWILIO_AUTH_TOKEN_FILE":   f("tw", "tw-token"),
		"LATCHKEY_SMTP_PASSWORD_FILE":           f("smtp", "smtp-pw"),
		"LATCHKEY_STORE_DSN_FILE":               f("dsn", "postgres://u:p@db/x"),
	}
	cfg, err := config.Load("", env(e))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{cfg.Server.SecretKey, cfg.Directory.BindPassword, cfg.SMS.Twilio.AuthToken, cfg.SMTP.Password, cfg.Store.DSN}
	want := []string{testKey, "bind-pw", "tw-token", "smtp-pw", "postgres://u:p@db/x"}
	if !slices.Equal(got, want) {
		t.Errorf("secrets = %q, want %q", got, want)
	}

	e["LATCHKEY_SMS_PROVIDER"] = "webhook"
	e["LATCHKEY_SMS_WEBHOOK_SECRET_FILE"] = f("hook", "hook-secret")
	cfg, err = config.Load("", env(e))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMS.Webhook.Secret != "hook-secret" {
		t.Errorf("webhook secret = %q", cfg.SMS.Webhook.Secret)
	}
}

func TestSecretFileProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty", "\n", 0o600)
	yaml := `
server:
  secret_key: "` + testKey + `"
  secret_key_file: /some/where
directory:
  bind_password_file: ` + filepath.Join(dir, "missing") + `
smtp:
  password_file: ` + empty + `
store:
  dsn_file: ` + dir + `
sms:
  enabled: false
  twilio:
    auth_token_file: /not/read/while/sms/is/off
`
	path := writeFile(t, dir, "c.yaml", yaml, 0o600)
	_, err := config.Load(path, env(nil))
	ps := problems(t, err)
	want := map[string]string{
		"server.secret_key_file":       "set either server.secret_key or server.secret_key_file, not both",
		"directory.bind_password_file": "no such file",
		"smtp.password_file":           "is empty",
		"store.dsn_file":               "not a regular file",
	}
	for k, msg := range want {
		if !hasProblem(ps, k, msg) {
			t.Errorf("missing problem %s: %s in %v", k, msg, ps)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d: %v", len(ps), len(want), ps)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Error("error quotes the secret key")
	}
}

func TestInlineSecretInWorldReadableFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "c.yaml", "directory:\n  bind_password: hunter2hunter2\n", 0o644)
	cfg, err := config.Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Key != "directory.bind_password" || strings.Contains(cfg.Warnings[0].Message, "hunter2") {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
}

func TestWithDemo(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", env(nil), config.WithDemo())
	if err != nil || !cfg.Demo {
		t.Fatalf("Demo = %v, err %v", cfg != nil && cfg.Demo, err)
	}
}
