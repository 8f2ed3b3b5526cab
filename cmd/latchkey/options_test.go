package main

import (
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/policy"
)

// The configuration is the only source of defaults: from a minimal file,
// every setting of the gateway's options that has a default is set by
// gatewayOptions from config (its keys' defaults, its fixed settings, its
// derived values). (flow fills zero fields with config's defaults too,
// flow.TestZeroOptionsGetConfigsDefaults; here every field is set.)
func TestGatewayOptionsComeFromConfig(t *testing.T) {
	path := migrateConfig(t, "store:\n  driver: sqlite\n  dsn: \"file:"+filepath.Join(t.TempDir(), "l.db")+"\"\n")
	cfg, err := loadConfigErr(path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o, err := gatewayOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// every number and duration the gateway would default when zero is
	// set; PadFloor and CoolingOff are meaningful at 0 and come from
	// their keys
	mayBeZero := map[string]bool{"PadFloor": true, "CoolingOff": true}
	var zero []string
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), prefix+v.Type().Field(i).Name
			switch f.Kind() {
			case reflect.Struct:
				if f.Type().PkgPath() != "github.com/latchkeyhq/latchkey/flow" {
					continue // policy's rules, checked below
				}
				walk(name+".", f)
			case reflect.Int, reflect.Int64:
				if f.IsZero() && !mayBeZero[name] {
					zero = append(zero, name)
				}
			}
		}
	}
	walk("", reflect.ValueOf(o))
	if o.ProductName == "" {
		zero = append(zero, "ProductName")
	}
	if len(zero) > 0 {
		t.Errorf("left to the gateway's defaults: %v", zero)
	}

	// the values are config's, as they ran before: 8 digits, a 15 s read
	// timeout, the fixed settings docs/api.md and docs/security.md state
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"CodeLength", o.CodeLength, 8},
		{"CodeTTL", o.CodeTTL, 10 * time.Minute},
		{"MaxTries", o.MaxTries, 5},
		{"FlowTTL", o.FlowTTL, 15 * time.Minute},
		{"SessionTTL", o.SessionTTL, 30 * time.Minute},
		{"SessionIdle", o.SessionIdle, 10 * time.Minute},
		{"ReauthWindow", o.ReauthWindow, 10 * time.Minute},
		{"MaxMethods", o.MaxMethods, 5},
		{"ProductName", o.ProductName, "Latchkey"},
		{"CoolingOff", o.CoolingOff, 24 * time.Hour},
		{"UnlockOnReset", o.UnlockOnReset, true},
		{"ReadHeaderTimeout", o.ReadHeaderTimeout, 5 * time.Second},
		{"ReadTimeout", o.ReadTimeout, 15 * time.Second},
		{"WriteTimeout", o.WriteTimeout, 30 * time.Second},
		{"IdleTimeout", o.IdleTimeout, 60 * time.Second},
		{"Questions.Required", o.Questions.Required, 3},
		{"Questions.Ask", o.Questions.Ask, 2},
		{"Password.MinLength", o.Password.MinLength, 12},
		{"Password.MaxLength", o.Password.MaxLength, 128},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// every budget is copied from the key of the same name
	gl, cl := reflect.ValueOf(o.Limits), reflect.ValueOf(cfg.Limits)
	for i := range gl.NumField() {
		name := gl.Type().Field(i).Name
		cf := cl.FieldByName(name)
		if !cf.IsValid() {
			t.Errorf("flow.Limits.%s has no key in config.Limits", name)
			continue
		}
		if !reflect.DeepEqual(gl.Field(i).Interface(), cf.Interface()) {
			t.Errorf("Limits.%s = %v, config has %v", name, gl.Field(i), cf)
		}
	}
	if e := o.Eligibility; e.Scope != policy.ScopeAll || !e.ExcludePrivileged || !slices.Equal(e.Methods, []string{policy.MethodEmail}) {
		t.Errorf("Eligibility = %+v", e)
	}
}

// What is available and how trusted proxies read is config's rule
// (config.AvailableMethods, TrustedProxyPrefixes): gatewayOptions and
// check's eligibility line use the same.
func TestGatewayOptionsUseConfigsDerivedValues(t *testing.T) {
	cfg := config.Default()
	cfg.Server.PublicURL = "https://sspr.example.org"
	cfg.Server.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::1"}
	cfg.Policy.Methods = []string{"sms", "totp", "email", "questions"}
	cfg.Email.Enabled = false
	o, err := gatewayOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := cfg.AvailableMethods(); !slices.Equal(o.Eligibility.Methods, want) || !slices.Equal(want, []string{"totp", "questions"}) {
		t.Errorf("methods %v, config.AvailableMethods %v", o.Eligibility.Methods, want)
	}
	if want := cfg.Server.TrustedProxyPrefixes(); !slices.Equal(o.TrustedProxies, want) || len(want) != 3 {
		t.Errorf("trusted proxies %v, config %v", o.TrustedProxies, want)
	}
}
