package blackbox

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/policy"
)

// The credentials and sender the SMS server of the suites (StartTwilio)
// accepts, and that Config configures.
const (
	TwilioSID   = "AC0123456789abcdef0123456789abcdef"
	TwilioToken = "blackbox-twilio-auth-token-0123456789" // #nosec G101 -- the local fake Twilio's test token
	TwilioFrom  = "+15005550006"
)

// StartTwilio starts the Twilio contract server with the credentials
// Config writes.
func StartTwilio(t testing.TB) *notifytest.FakeTwilio {
	return notifytest.StartTwilio(t, notifytest.TwilioCredentials(TwilioSID, TwilioToken), notifytest.TwilioSenders(TwilioFrom))
}

// Servers are what a gateway's configuration points at.
type Servers struct {
	Dir  *dirtest.Server
	Mail *notifytest.Mailpit
	SMS  *notifytest.FakeTwilio
}

// Config is the configuration every black-box gateway starts from, for
// a gateway listening on 127.0.0.1:port: the directory srv.Dir over LDAPS
// as its service account, mail to srv.Mail (no TLS), SMS to srv.SMS,
// policy scope selected (staff eligible, cycle-a excluded), methods email
// and sms, one method required, codes for 10 minutes, no cooling-off,
// passwords of at least 8 characters, a SQLite store in work, JSON logs
// at debug level with the audit in work/audit.log. Its secrets are files
// it writes into work: secretKey ("": 48 random bytes in base64) is the
// server.secret_key as written.
//
// Change the fields the test needs (they are config's own types), then
// WriteConfig.
func Config(work string, port int, secretKey string, s Servers) (*config.Config, error) {
	var err error
	write := func(name, content string) string {
		p := filepath.Join(work, name)
		if werr := os.WriteFile(p, []byte(content), 0o600); werr != nil && err == nil {
			err = werr
		}
		return p
	}
	if secretKey == "" {
		secretKey = NewSecretKey()
	}
	srv := s.Dir
	c := config.Default()
	c.Server.Listen = "127.0.0.1:" + strconv.Itoa(port)
	c.Server.PublicURL = "http://127.0.0.1:" + strconv.Itoa(port)
	c.Server.SecretKeyFile = write("secret.key", secretKey)
	c.Directory.Type = string(srv.Flavor)
	c.Directory.URLs = []string{srv.LDAPSURL}
	c.Directory.CAFile = srv.CAFile
	c.Directory.BindDN = srv.ServiceDN
	c.Directory.BindPasswordFile = write("bind.pw", srv.ServicePassword)
	c.Directory.BaseDN = srv.BaseDN
	c.Directory.UserFilter = srv.UserFilter
	c.Directory.DefaultPolicyDN = srv.DefaultPolicyDN
	c.Directory.Timeout = 10 * time.Second
	c.Policy.Scope = policy.ScopeSelected
	c.Policy.Groups = []string{srv.Group("staff")}
	c.Policy.ExcludeGroups = []string{srv.Group("cycle-a")}
	c.Policy.MethodsRequired = 1
	c.Policy.Methods = []string{policy.MethodEmail, policy.MethodSMS}
	c.Policy.Password.MinLength = 8
	c.Policy.CodeTTL = 10 * time.Minute
	c.Policy.CoolingOff = 0
	c.Email.Enabled = true
	c.SMS.Enabled = true
	c.SMS.Provider = config.SMSTwilio
	c.SMS.AllowedCountries = []string{"GB", "US"}
	c.SMS.Twilio = config.Twilio{AccountSID: TwilioSID, AuthTokenFile: write("twilio.token", TwilioToken), From: TwilioFrom, BaseURL: s.SMS.URL}
	c.SMTP.Host = s.Mail.SMTPHost
	c.SMTP.Port = s.Mail.SMTPPort
	c.SMTP.TLS = config.SMTPTLSNone
	c.SMTP.From = "Latchkey <latchkey@example.org>"
	c.Store = SQLiteStore(filepath.Join(work, "latchkey.db"))
	c.Log.Level = "debug"
	c.Log.Format = "json"
	c.Log.AuditFile = filepath.Join(work, "audit.log")
	return c, err
}

// NewSecretKey is a fresh server.secret_key: 48 random bytes in base64.
func NewSecretKey() string {
	raw := make([]byte, 48)
	_, _ = rand.Read(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

// SQLiteStore is the store section of a SQLite database at path.
func SQLiteStore(path string) config.Store {
	return config.Store{Driver: config.StoreSQLite, DSN: "file:" + path, Migrate: config.Default().Store.Migrate}
}

// PostgresStore is the store section of the PostgreSQL database dsn;
// allowPlaintext sets store.allow_plaintext.
func PostgresStore(dsn string, allowPlaintext bool) config.Store {
	return config.Store{Driver: config.StorePostgres, DSN: dsn, AllowPlaintext: allowPlaintext,
		Migrate: config.DefaultFor(config.StorePostgres).Store.Migrate}
}

// Merge decodes a YAML fragment onto dst, a pointer to a config type
// (*config.Config for a whole file, or one of its sections): the keys the
// fragment has replace dst's, the others stay. Keys are config's
// (mapstructure tags); durations are written with their unit ("2s"); an
// unknown key is an error. It is the escape hatch for a test that states
// part of its configuration as YAML; prefer setting the fields.
func Merge(dst any, fragment string) error {
	var raw any
	if err := yaml.Unmarshal([]byte(fragment), &raw); err != nil {
		return fmt.Errorf("blackbox: YAML fragment: %w", err)
	}
	if raw == nil {
		return nil
	}
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:      dst,
		ErrorUnused: true,
		DecodeHook:  mapstructure.StringToTimeDurationHookFunc(),
	})
	if err != nil {
		return err
	}
	if err := d.Decode(raw); err != nil {
		return fmt.Errorf("blackbox: YAML fragment: %w", err)
	}
	return nil
}

// WriteConfig writes c to path as the YAML file config.Load reads: every
// key whose value differs from config.Default's (config.DefaultFor c's
// store driver, for the keys derived from it), under the key names of
// config's mapstructure tags.
func WriteConfig(path string, c *config.Config) error {
	b, err := MarshalConfig(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// MarshalConfig is the YAML WriteConfig writes.
func MarshalConfig(c *config.Config) ([]byte, error) {
	// the defaults Load derives for c's store driver (shutdown_delay,
	// migrate), but the driver itself against the default driver
	def := config.DefaultFor(c.Store.Driver)
	def.Store.Driver = config.Default().Store.Driver
	n := encode(reflect.ValueOf(*c), reflect.ValueOf(*def), true)
	if n == nil {
		n = &yaml.Node{Kind: yaml.MappingNode}
	}
	var sb strings.Builder
	enc := yaml.NewEncoder(&sb)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(sb.String()), nil
}

var durationType = reflect.TypeFor[time.Duration]()

// encode is v as a YAML node, or nil when it equals def (the default;
// with diff false, when it is the zero value: a list element's fields).
func encode(v, def reflect.Value, diff bool) *yaml.Node {
	if diff && same(v, def) {
		return nil
	}
	if !diff && v.IsZero() {
		return nil
	}
	switch {
	case v.Type() == durationType:
		return scalar(time.Duration(v.Int()).String(), "!!str")
	case v.Kind() == reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
		for i := range t.NumField() {
			tag := t.Field(i).Tag.Get("mapstructure")
			if tag == "" || tag == "-" {
				continue
			}
			var d reflect.Value
			if diff {
				d = def.Field(i)
			}
			if c := encode(v.Field(i), d, diff); c != nil {
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: tag}, c)
			}
		}
		if len(m.Content) == 0 && diff {
			return nil
		}
		return m
	case v.Kind() == reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			e := v.Index(i)
			if e.Kind() == reflect.Struct {
				s.Style = 0
				n := encode(e, reflect.Value{}, false)
				if n == nil {
					n = &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
				}
				s.Content = append(s.Content, n)
				continue
			}
			s.Content = append(s.Content, scalar(e.String(), "!!str"))
		}
		return s
	case v.Kind() == reflect.String:
		return scalar(v.String(), "!!str")
	case v.Kind() == reflect.Bool:
		return scalar(strconv.FormatBool(v.Bool()), "!!bool")
	case v.Kind() == reflect.Int:
		return scalar(strconv.FormatInt(v.Int(), 10), "!!int")
	}
	panic(fmt.Sprintf("blackbox: no YAML for a %s", v.Type()))
}

// same reports whether v equals def, an empty list equal to none.
func same(v, def reflect.Value) bool {
	if v.Kind() == reflect.Slice && v.Len() == 0 && def.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(v.Interface(), def.Interface())
}

func scalar(s, tag string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: s, Tag: tag}
	if tag == "!!str" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}
