package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "LATCHKEY"

// maxSecretFileSize bounds a *_file secret.
const maxSecretFileSize = 64 << 10

// Option changes how Load works.
type Option func(*options)

type options struct {
	lookupEnv func(string) (string, bool)
	demo      bool
}

// WithLookupEnv replaces os.LookupEnv, for tests.
func WithLookupEnv(f func(key string) (string, bool)) Option {
	return func(o *options) { o.lookupEnv = f }
}

// WithDemo marks the configuration as the demo's (Config.Demo).
func WithDemo() Option {
	return func(o *options) { o.demo = true }
}

// Load reads the YAML file at path (no file when path is empty), applies
// LATCHKEY_* environment overrides over the defaults and the file, and reads
// every *_file secret. It does not call Validate.
//
// The environment is read key by key (LATCHKEY_ + the key path upper-cased,
// "." replaced by "_"), through os.LookupEnv or WithLookupEnv, and set over
// the file; empty variables are ignored. A *_file secret whose section is
// off (sms.enabled false, email.enabled false, the other SMS provider) is not
// read.
//
// Problems with the content (unknown keys, wrong types, bad environment
// values, unreadable secret files, a secret given twice) are all returned
// together as a *ValidationError with their key paths. A file that cannot be
// read or parsed as YAML is a plain error. Any error means the configuration
// is unusable.
func Load(path string, opts ...Option) (*Config, error) {
	o := options{lookupEnv: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}

	v := viper.New()
	v.SetConfigType("yaml")
	fields := schema()
	for _, f := range fields {
		// A default for every key, so that every key is known to viper
		// (spf13/viper#761) and reaches Unmarshal.
		v.SetDefault(f.key, f.def)
	}
	fileMode, err := readFile(v, path)
	if err != nil {
		return nil, err
	}
	problems := setEnv(v, fields, o.lookupEnv)

	cfg := &Config{}
	err = v.UnmarshalExact(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(durationHook, wholeNumberHook, scalarToSliceHook)
	})
	if err != nil {
		problems = append(problems, decodeProblems(err, fields)...)
	}
	cfg.Demo = o.demo
	problems = append(problems, cfg.readSecrets(fileMode)...)
	cfg.fillDerived()

	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return cfg, nil
}

// readFile reads the YAML file at path into v (nothing when path is
// empty) and returns its permission bits.
func readFile(v *viper.Viper, path string) (os.FileMode, error) {
	if path == "" {
		return 0, nil
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the configuration file the operator named
	if err != nil {
		return 0, fmt.Errorf("config: %w", err)
	}
	var fileMode os.FileMode
	if fi, err := os.Stat(path); err == nil {
		fileMode = fi.Mode().Perm()
	}
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return 0, fmt.Errorf("config: %s: %w", path, parseError(err))
	}
	return fileMode, nil
}

// setEnv applies the environment overrides. viper's AutomaticEnv cannot
// take a lookup function, so each known key is looked up here and set
// explicitly. A value that does not parse is a problem with its key.
func setEnv(v *viper.Viper, fields []field, lookupEnv func(string) (string, bool)) []Problem {
	var problems []Problem
	for _, f := range fields {
		name := envName(f.key)
		raw, ok := lookupEnv(name)
		if !ok || raw == "" {
			continue
		}
		val, err := parseEnv(f, raw)
		if err != nil {
			problems = append(problems, Problem{Key: f.key, Message: name + ": " + err.Error()})
			continue
		}
		v.Set(f.key, val)
	}
	return problems
}

// readSecrets fills every secret set by its *_file companion (of a
// section switched on), and warns about a secret inline in a
// world-readable file (fileMode).
func (c *Config) readSecrets(fileMode os.FileMode) []Problem {
	var problems []Problem
	for _, s := range c.secrets() {
		if *s.value != "" && fileMode&0o004 != 0 {
			c.Warnings = append(c.Warnings, Problem{Key: s.key,
				Message: fmt.Sprintf("secret is inline in a world-readable config file; use %s_file or chmod o-r the file", s.key)})
		}
		if *s.file == "" {
			continue
		}
		if *s.value != "" {
			problems = append(problems, Problem{Key: s.key + "_file",
				Message: fmt.Sprintf("set either %s or %s_file, not both", s.key, s.key)})
			continue
		}
		if !s.used {
			continue
		}
		secret, warn, err := readSecretFile(*s.file)
		if err != nil {
			problems = append(problems, Problem{Key: s.key + "_file", Message: err.Error()})
			continue
		}
		if warn != "" {
			c.Warnings = append(c.Warnings, Problem{Key: s.key + "_file", Message: warn})
		}
		*s.value = secret
	}
	return problems
}

// secretRef ties a secret to its *_file companion.
type secretRef struct {
	key         string
	value, file *string
	// used is false when the secret's section is switched off; its file is
	// then not read, so an example path for a disabled feature is harmless.
	used bool
}

func (c *Config) secrets() []secretRef {
	sms := c.SMS.Enabled
	return []secretRef{
		{"server.secret_key", &c.Server.SecretKey, &c.Server.SecretKeyFile, true},
		{"directory.bind_password", &c.Directory.BindPassword, &c.Directory.BindPasswordFile, true},
		{"sms.twilio.auth_token", &c.SMS.Twilio.AuthToken, &c.SMS.Twilio.AuthTokenFile, sms && c.SMS.Provider == SMSTwilio},
		{"sms.webhook.secret", &c.SMS.Webhook.Secret, &c.SMS.Webhook.SecretFile, sms && c.SMS.Provider == SMSWebhook},
		{"smtp.password", &c.SMTP.Password, &c.SMTP.PasswordFile, c.Email.Enabled},
		{"store.dsn", &c.Store.DSN, &c.Store.DSNFile, true},
	}
}

// readSecretFile returns the file's content without one trailing newline
// ("\n" or "\r\n"), and a warning when the file is readable by everyone.
// Errors name the path, never the content.
func readSecretFile(path string) (secret, warning string, err error) {
	f, err := os.Open(path) // #nosec G304 -- a *_file path from the operator's configuration
	if err != nil {
		return "", "", fmt.Errorf("cannot read secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", fmt.Errorf("cannot read secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("secret file %s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", "", fmt.Errorf("cannot read secret file %s: %w", path, err)
	}
	if len(data) > maxSecretFileSize {
		return "", "", fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretFileSize)
	}
	s := string(data)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return "", "", fmt.Errorf("secret file %s is empty", path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		warning = fmt.Sprintf("secret file %s is readable by every user; chmod o-r it", path)
	}
	return s, warning, nil
}

// field is one leaf key of the schema.
type field struct {
	key string
	typ reflect.Type
	def any
	// sep splits a plain (non-JSON) environment value into a list.
	sep string
}

var durationType = reflect.TypeFor[time.Duration]()

// schema lists every leaf key of Config with its type and default, in the
// order of the struct fields. Slices (including policy.tiers) are leaves.
func schema() []field {
	var out []field
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("mapstructure")
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			fv := v.Field(i)
			if sf.Type.Kind() == reflect.Struct {
				walk(key, fv)
				continue
			}
			f := field{key: key, typ: sf.Type, def: fv.Interface(), sep: ","}
			if strings.HasSuffix(tag, "groups") || key == "policy.questions.list" {
				f.sep = ";"
			}
			out = append(out, f)
		}
	}
	walk("", reflect.ValueOf(rawDefaults()).Elem())
	return out
}

// Key is one configuration key and the environment variable that overrides
// it.
type Key struct {
	Path string // "sms.twilio.account_sid"
	Env  string // "LATCHKEY_SMS_TWILIO_ACCOUNT_SID"
}

// Keys lists every configuration key Load knows, in file order. Lists
// (including policy.tiers) are single keys.
func Keys() []Key {
	var out []Key
	for _, f := range schema() {
		out = append(out, Key{Path: f.key, Env: envName(f.key)})
	}
	return out
}

func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// parseEnv converts an environment value to the key's type. Errors never
// quote the value.
func parseEnv(f field, raw string) (any, error) {
	switch {
	case f.typ == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return nil, errors.New("not a duration (use a unit: 30s, 5m, 24h)")
		}
		return d, nil
	case f.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return nil, errors.New("not a boolean (true or false)")
		}
		return b, nil
	case f.typ.Kind() == reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return nil, errors.New("not a whole number")
		}
		return n, nil
	case f.typ.Kind() == reflect.String:
		return raw, nil
	case f.typ.Kind() == reflect.Slice && f.typ.Elem().Kind() == reflect.String:
		if strings.HasPrefix(strings.TrimSpace(raw), "[") {
			var list []string
			if err := json.Unmarshal([]byte(raw), &list); err != nil {
				return nil, errors.New("not a JSON array of strings")
			}
			return list, nil
		}
		return splitList(raw, f.sep[0]), nil
	case f.typ.Kind() == reflect.Slice:
		var list []any
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			return nil, errors.New("not a JSON array")
		}
		return list, nil
	}
	return nil, fmt.Errorf("cannot be set from the environment")
}

// splitList splits on unescaped sep bytes, trimming spaces and dropping empty
// items. A backslash escapes the next byte and is kept (DNs keep their
// escapes).
func splitList(s string, sep byte) []string {
	out := []string{}
	start := 0
	add := func(item string) {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			add(s[start:i])
			start = i + 1
		}
	}
	add(s[start:])
	return out
}

// durationHook accepts "30s"-style strings for durations and refuses bare
// numbers, which would silently mean nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		d, err := time.ParseDuration(strings.TrimSpace(data.(string)))
		if err != nil {
			return nil, errors.New("must be a duration with a unit, e.g. 30s, 5m, 24h")
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return nil, errors.New("must be a duration with a unit, e.g. 30s, 5m, 24h")
	}
	return data, nil
}

// wholeNumberHook refuses fractions where an integer is expected (mapstructure
// would truncate 58.7 to 58).
func wholeNumberHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int || to == durationType {
		return data, nil
	}
	if from.Kind() == reflect.Float64 || from.Kind() == reflect.Float32 {
		f := reflect.ValueOf(data).Float()
		if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
			return nil, errors.New("must be a whole number")
		}
		return int(f), nil
	}
	return data, nil
}

// scalarToSliceHook turns a single string where a list is expected into a
// one-element list. Unlike viper's default it never splits on commas, which
// would cut a DN into pieces.
func scalarToSliceHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() == reflect.String && to.Kind() == reflect.Slice && to.Elem().Kind() == reflect.String {
		if data.(string) == "" {
			return []string{}, nil
		}
		return []string{data.(string)}, nil
	}
	return data, nil
}

// decodeProblems turns mapstructure's joined errors into key-path problems.
// mapstructure's messages do not quote values.
func decodeProblems(err error, fields []field) []Problem {
	types := map[string]reflect.Type{}
	for _, f := range fields {
		types[f.key] = f.typ
	}
	var out []Problem
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		de, ok := err.(*mapstructure.DecodeError)
		if !ok {
			if u := errors.Unwrap(err); u != nil {
				walk(u) // viper's "decoding failed due to..." wrapper
				return
			}
			out = append(out, Problem{Message: err.Error()})
			return
		}
		inner := de.Unwrap()
		switch inner.(type) {
		case interface{ Unwrap() []error }, *mapstructure.DecodeError:
			walk(inner)
			return
		}
		msg := inner.Error()
		if rest, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			parent := de.Name()
			if parent == reflect.TypeFor[Config]().String() {
				parent = "" // mapstructure >= v2.5 names the root by its type
			}
			for k := range strings.SplitSeq(rest, ", ") {
				out = append(out, Problem{Key: joinKey(parent, k), Message: "unknown key"})
			}
			return
		}
		if strings.HasPrefix(msg, "expected a map") {
			msg = "must be a mapping of keys to values"
		}
		if t, ok := types[de.Name()]; ok {
			msg = "must be " + describeType(t)
			if t == durationType {
				msg = "must be a duration with a unit, e.g. 30s, 5m, 24h"
			}
		}
		out = append(out, Problem{Key: de.Name(), Message: msg})
	}
	walk(err)
	return out
}

func joinKey(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string (quote it)"
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "a whole number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list of mappings"
	case reflect.Struct:
		return "a mapping"
	}
	return "a " + t.String()
}

// parseError unwraps viper's file-parse error to the YAML parser's message,
// which gives a line number and no values.
func parseError(err error) error {
	var pe viper.ConfigParseError
	if errors.As(err, &pe) {
		if u := pe.Unwrap(); u != nil {
			return u
		}
	}
	return err
}
