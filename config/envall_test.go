package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

// fieldByPath finds the Config field for a key path through mapstructure tags.
func fieldByPath(t *testing.T, c *config.Config, path string) reflect.Value {
	t.Helper()
	v := reflect.ValueOf(c).Elem()
	for part := range strings.SplitSeq(path, ".") {
		found := false
		for i := range v.NumField() {
			if v.Type().Field(i).Tag.Get("mapstructure") == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			t.Fatalf("no field for %s", path)
		}
	}
	return v
}

// TestEnvReachesEveryKey sets each key from the environment alone (no file)
// and checks that the value arrives in Config.
func TestEnvReachesEveryKey(t *testing.T) {
	t.Parallel()
	paths := map[string]bool{}
	for _, k := range config.Keys() {
		paths[k.Path] = true
	}
	for _, k := range config.Keys() {
		t.Run(k.Path, func(t *testing.T) {
			t.Parallel()
			typ := fieldByPath(t, config.Default(), k.Path).Type()
			var raw string
			var want any
			switch {
			case typ == reflect.TypeFor[time.Duration]():
				raw, want = "1h2m3s", time.Hour+2*time.Minute+3*time.Second
			case typ.Kind() == reflect.Bool:
				raw, want = "true", true
			case typ.Kind() == reflect.Int:
				raw, want = "4242", 4242
			case typ.Kind() == reflect.String:
				raw, want = "from-env-"+k.Env, "from-env-"+k.Env
			case typ == reflect.TypeFor[[]string]():
				raw, want = `["x","y"]`, []string{"x", "y"}
			case typ == reflect.TypeFor[[]config.Tier]():
				raw, want = `[{"groups":["cn=t,dc=x"],"methods_required":2,"methods":["sms"]}]`,
					[]config.Tier{{Groups: []string{"cn=t,dc=x"}, MethodsRequired: 2, Methods: []string{"sms"}}}
			default:
				t.Fatalf("no test value for %s (%s)", k.Path, typ)
			}
			if secret, ok := strings.CutSuffix(k.Path, "_file"); ok && paths[secret] {
				// A *_file key is read as a file; check it is at least
				// reached (the error names the key).
				_, err := config.Load("", env(map[string]string{k.Env: "/nonexistent/" + k.Env, "LATCHKEY_EMAIL_ENABLED": "true", "LATCHKEY_SMS_ENABLED": "true",
					"LATCHKEY_SMS_PROVIDER": map[bool]string{true: "webhook", false: "twilio"}[strings.HasPrefix(k.Path, "sms.webhook")]}))
				if !hasProblem(problems(t, err), k.Path, "no such file") {
					t.Errorf("%s not reached: %v", k.Env, err)
				}
				return
			}
			cfg, err := config.Load("", env(map[string]string{k.Env: raw}))
			if err != nil {
				t.Fatal(err)
			}
			if got := fieldByPath(t, cfg, k.Path).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s=%s gave %#v, want %#v", k.Env, raw, got, want)
			}
		})
	}
}
