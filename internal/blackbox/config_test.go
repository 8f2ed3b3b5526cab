package blackbox

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// servers are stand-ins: Config reads their addresses, nothing runs.
func servers(flavor directory.Flavor) Servers {
	srv := &dirtest.Server{Flavor: flavor, LDAPSURL: "ldaps://127.0.0.1:6360", CAFile: "/tmp/ca.pem",
		BaseDN: "dc=example,dc=org", UserFilter: "(&(objectClass=inetOrgPerson)(uid={username}))",
		ServiceDN: "cn=sspr,dc=example,dc=org", ServicePassword: "service-secret", DefaultPolicyDN: "cn=default,ou=policies,dc=example,dc=org"}
	if flavor == directory.ActiveDirectory {
		srv.BaseDN, srv.UserFilter, srv.DefaultPolicyDN = "DC=example,DC=test", "(&(objectCategory=person)(objectClass=user)(sAMAccountName={username}))", ""
	}
	return Servers{Dir: srv, Mail: &notifytest.Mailpit{SMTPHost: "127.0.0.1", SMTPPort: 2525}, SMS: &notifytest.FakeTwilio{URL: "http://127.0.0.1:9999"}}
}

// roundTrip writes c and loads the file back with config.Load: what it
// loads must be c, with the secrets read from their files.
func roundTrip(t *testing.T, c *config.Config) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "latchkey.yaml")
	if err := WriteConfig(path, c); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(path, config.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("%v\n%s", err, b)
	}
	want := *c
	read := func(p string) string {
		if p == "" {
			return ""
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want.Server.SecretKey = read(c.Server.SecretKeyFile)
	want.Directory.BindPassword = read(c.Directory.BindPasswordFile)
	want.SMS.Twilio.AuthToken = read(c.SMS.Twilio.AuthTokenFile)
	if !reflect.DeepEqual(norm(*got), norm(want)) {
		b, _ := os.ReadFile(path)
		t.Fatalf("loaded\n%+v\nwant\n%+v\nfile:\n%s", *got, want, b)
	}
	return got
}

// norm makes every empty list nil (Load and Default disagree on which).
func norm(c config.Config) config.Config {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			if v.Len() == 0 {
				v.Set(reflect.Zero(v.Type()))
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(&c).Elem())
	return c
}

func TestConfigRoundTrip(t *testing.T) {
	for _, flavor := range []directory.Flavor{directory.OpenLDAP, directory.ActiveDirectory} {
		t.Run(string(flavor), func(t *testing.T) {
			work := t.TempDir()
			c, err := Config(work, 4321, "", servers(flavor))
			if err != nil {
				t.Fatal(err)
			}
			got := roundTrip(t, c)
			// the key fields, named once more
			if got.Server.Listen != "127.0.0.1:4321" || got.Server.PublicURL != "http://127.0.0.1:4321" || len(got.Server.SecretKey) != 64 ||
				got.Directory.Type != string(flavor) || got.Directory.BindPassword != "service-secret" || got.Directory.Timeout != 10*time.Second ||
				got.Policy.Scope != "selected" || got.Policy.CoolingOff != 0 || got.Policy.CodeTTL != 10*time.Minute ||
				!reflect.DeepEqual(got.Policy.Methods, []string{"email", "sms"}) || got.SMTP.Port != 2525 || got.SMTP.TLS != "none" ||
				got.SMS.Twilio.AuthToken != TwilioToken || got.SMS.Twilio.BaseURL != "http://127.0.0.1:9999" ||
				got.Store.DSN != "file:"+filepath.Join(work, "latchkey.db") || got.Log.Level != "debug" {
				t.Fatalf("%+v", got)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConfigVariants: what the suites change (store, directory, policy
// tiers, limits, server keys, fragments) survives the round trip.
func TestConfigVariants(t *testing.T) {
	c, err := Config(t.TempDir(), 4321, "fixed-key-0123456789-0123456789-0123456789", servers(directory.OpenLDAP))
	if err != nil {
		t.Fatal(err)
	}
	c.Store = PostgresStore("postgres://u:p@127.0.0.1:5432/db?sslmode=disable", true)
	c.Directory.URLs = []string{"ldap://127.0.0.1:1", "ldap://127.0.0.1:2"}
	c.Directory.AllowPlaintext = true
	c.Directory.Timeout = 2 * time.Second
	c.Directory.PoolSize = 16
	c.Server.Helpdesk = "mailto:helpdesk@example.org"
	c.Policy.Methods = []string{"email", "sms", "totp", "questions"}
	c.Policy.Tiers = []config.Tier{{Groups: []string{"cn=sspr-admins,ou=groups,dc=example,dc=org"}, MethodsRequired: 2}}
	c.Policy.PadFloor = 20 * time.Millisecond
	c.Limits.StartsPerAccount = 1000000
	c.Limits.BindFailures = 0 // a zero over a default that is not
	for _, f := range []struct {
		dst  any
		yaml string
	}{
		{c, "limits:\n  starts_per_account: 3\n  sends_per_account: 4\n"},
		{c, "policy:\n  questions:\n    list: [\"a?\", \"b?\", \"c?\"]\n    required: 3\n    ask: 2\n"},
		{&c.Policy.Tiers[0], "      require_one_of: [totp, webauthn]\n"},
		{&c.Server, "  read_header_timeout: 2s\n  shutdown_delay: 1s\n"},
	} {
		if err := Merge(f.dst, f.yaml); err != nil {
			t.Fatal(err)
		}
	}
	got := roundTrip(t, c)
	if got.Limits.StartsPerAccount != 3 || got.Limits.SendsPerAccount != 4 || got.Limits.BindFailures != 0 ||
		got.Server.ReadHeaderTimeout != 2*time.Second || got.Server.ShutdownDelay != time.Second ||
		!reflect.DeepEqual(got.Policy.Tiers[0].RequireOneOf, []string{"totp", "webauthn"}) || got.Policy.Tiers[0].MethodsRequired != 2 ||
		got.Policy.Questions.Ask != 2 || len(got.Policy.Questions.List) != 3 ||
		got.Store.Driver != "postgres" || !got.Store.AllowPlaintext || got.Server.SecretKey != "fixed-key-0123456789-0123456789-0123456789" {
		t.Fatalf("%+v", got)
	}
}

func TestMergeRefusesUnknownKeys(t *testing.T) {
	c := config.Default()
	for _, y := range []string{"limits:\n  no_such_budget: 1\n", "server:\n  read_header_timeout: [1]\n"} {
		if err := Merge(c, y); err == nil {
			t.Errorf("%q: no error", y)
		}
	}
}

// TestMarshalOnlyChanges: the file holds what differs from the defaults.
func TestMarshalOnlyChanges(t *testing.T) {
	c := config.Default()
	b, err := MarshalConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(b)); s != "{}" {
		t.Fatalf("defaults written as %q", s)
	}
	c.Policy.CoolingOff = 0
	b, _ = MarshalConfig(c)
	if s := strings.TrimSpace(string(b)); s != "policy:\n  cooling_off: \"0s\"" {
		t.Fatalf("got %q", s)
	}
}

// TestConfigRoundTripPostgresDerived: a PostgreSQL configuration keeps
// what it sets of the keys Load derives from the store driver
// (server.shutdown_delay, store.migrate), the zero drain included, and
// gets the driver's defaults where it sets nothing else.
func TestConfigRoundTripPostgresDerived(t *testing.T) {
	c, err := Config(t.TempDir(), 4321, "", servers(directory.OpenLDAP))
	if err != nil {
		t.Fatal(err)
	}
	c.Store = PostgresStore("postgres://latchkey@127.0.0.1:5432/latchkey?sslmode=disable", false)
	c.Server.ShutdownDelay = 0
	got := roundTrip(t, c)
	if got.Server.ShutdownDelay != 0 || got.Store.Migrate != config.MigrateManual || got.Store.Driver != config.StorePostgres {
		t.Fatalf("%+v %+v", got.Server, got.Store)
	}
	c.Server.ShutdownDelay = config.DefaultShutdownDelay
	c.Store.Migrate = config.MigrateOnStart
	if got := roundTrip(t, c); got.Server.ShutdownDelay != config.DefaultShutdownDelay || got.Store.Migrate != config.MigrateOnStart {
		t.Fatalf("%+v %+v", got.Server, got.Store)
	}
}
