package flow

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

func minimalOptions() Options {
	pu, _ := url.Parse("https://sspr.example.org")
	return Options{PublicURL: pu, SecretKey: []byte("0123456789abcdef0123456789abcdef-test")}
}

// config is the only source of defaults: Options left zero (as unit tests
// build them) get exactly config.Default's values, field by field, so that
// what a test runs with is what `latchkey serve` runs with by default.
// Every number, duration and string of Options, its Limits and its
// Questions is checked: a new field fails here until it takes its default
// from config (or is listed as meaningful at zero).
func TestZeroOptionsGetConfigsDefaults(t *testing.T) {
	t.Parallel()
	o := minimalOptions()
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	// settings without a key: config's constants of the same name
	fixed := map[string]any{
		"ProductName": config.ProductName, "FlowTTL": config.FlowTTL, "SessionTTL": config.SessionTTL,
		"SessionIdle": config.SessionIdle, "ReauthWindow": config.ReauthWindow, "MaxMethods": config.MaxMethods,
	}
	// zero means something of its own, not "the default"
	meaningfulZero := map[string]string{
		"Helpdesk":   "no help desk link",
		"CoolingOff": "0 turns the rule off",
	}
	// the config section each part of Options is filled from
	sections := map[string][]reflect.Value{
		"":           {reflect.ValueOf(d.Policy), reflect.ValueOf(d.Server)},
		"Limits.":    {reflect.ValueOf(d.Limits)},
		"Questions.": {reflect.ValueOf(d.Policy.Questions)},
	}
	checked := 0
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), v.Type().Field(i).Name
			full := prefix + name
			switch f.Kind() {
			case reflect.Struct:
				if full == "Limits" || full == "Questions" {
					walk(full+".", f)
				}
				continue
			case reflect.Int, reflect.Int64, reflect.String:
			default:
				continue
			}
			if _, ok := meaningfulZero[full]; ok {
				if !f.IsZero() {
					t.Errorf("%s = %v, want it left zero", full, f)
				}
				continue
			}
			checked++
			var want any
			if w, ok := fixed[full]; ok {
				want = w
			} else {
				for _, sec := range sections[prefix] {
					if cf := sec.FieldByName(name); cf.IsValid() {
						want = cf.Interface()
						break
					}
				}
			}
			if want == nil {
				t.Errorf("Options.%s has no default in config", full)
				continue
			}
			if got := f.Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("Options.%s left zero becomes %v, config's default is %v", full, got, want)
			}
		}
	}
	walk("", reflect.ValueOf(o))
	if o.Eligibility.MethodsRequired != d.Policy.MethodsRequired {
		t.Errorf("Eligibility.MethodsRequired left zero becomes %d, config's default is %d", o.Eligibility.MethodsRequired, d.Policy.MethodsRequired)
	}
	if checked < 30 {
		t.Errorf("checked %d fields: the walk missed some", checked)
	}
}

// A value out of range is refused by the constructor, naming the field,
// rather than replaced by another (config.Validate names the key for a
// configuration; Options are built by hand only in tests).
func TestOptionsOutOfRangeAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		field string
		mod   func(*Options)
	}{
		{"CodeLength", func(o *Options) { o.CodeLength = 5 }},
		{"CodeLength", func(o *Options) { o.CodeLength = 9 }},
		{"CodeTTL", func(o *Options) { o.CodeTTL = 11 * time.Minute }},
		{"CodeTTL", func(o *Options) { o.CodeTTL = -time.Second }},
		{"MaxTries", func(o *Options) { o.MaxTries = 6 }},
		{"MaxTries", func(o *Options) { o.MaxTries = -1 }},
		{"FlowTTL", func(o *Options) { o.FlowTTL = -time.Second }},
		{"SessionTTL", func(o *Options) { o.SessionTTL = -time.Second }},
		{"SessionIdle", func(o *Options) { o.SessionIdle = -time.Second }},
		{"ReauthWindow", func(o *Options) { o.ReauthWindow = -time.Second }},
		{"CoolingOff", func(o *Options) { o.CoolingOff = -time.Second }},
		{"MaxMethods", func(o *Options) { o.MaxMethods = -1 }},
		{"PadFloor", func(o *Options) { o.PadFloor = -time.Millisecond }},
		{"PadFloor", func(o *Options) { o.PadFloor = config.MaxPadFloor + time.Millisecond }},
		{"Eligibility.MethodsRequired", func(o *Options) { o.Eligibility.MethodsRequired = -1 }},
		{"Eligibility.MethodsRequired", func(o *Options) { o.Eligibility.MethodsRequired = 3 }},
		{"ReadTimeout", func(o *Options) { o.ReadTimeout = -time.Second }},
		{"WriteTimeout", func(o *Options) { o.WriteTimeout = -time.Second }},
		{"IdleTimeout", func(o *Options) { o.IdleTimeout = -time.Second }},
		{"Limits.Window", func(o *Options) { o.Limits.Window = -time.Second }},
		{"Limits.BindFailureWindow", func(o *Options) { o.Limits.BindFailureWindow = -time.Second }},
		{"Limits.AppFailureWindow", func(o *Options) { o.Limits.AppFailureWindow = -time.Second }},
		{"Limits.StartsPerAccount", func(o *Options) { o.Limits.StartsPerAccount = -1 }},
		{"Limits.StartsPerIP", func(o *Options) { o.Limits.StartsPerIP = -1 }},
		{"Limits.StartsTotal", func(o *Options) { o.Limits.StartsTotal = -1 }},
		{"Limits.SendsPerAccount", func(o *Options) { o.Limits.SendsPerAccount = -1 }},
		{"Limits.SendsPerDestination", func(o *Options) { o.Limits.SendsPerDestination = -1 }},
		{"Limits.SMSPerHour", func(o *Options) { o.Limits.SMSPerHour = -1 }},
		{"Limits.SMSPerPrefixPerHour", func(o *Options) { o.Limits.SMSPerPrefixPerHour = -1 }},
		{"Limits.CodeFailuresPerAccount", func(o *Options) { o.Limits.CodeFailuresPerAccount = -1 }},
		{"Limits.SignInsPerIP", func(o *Options) { o.Limits.SignInsPerIP = -1 }},
		{"Limits.BindFailures", func(o *Options) { o.Limits.BindFailures = -1 }},
		{"Limits.NoticesPerAccount", func(o *Options) { o.Limits.NoticesPerAccount = -1 }},
		{"Limits.AppFailures", func(o *Options) { o.Limits.AppFailures = -1 }},
		{"Limits.AppFailuresNotify", func(o *Options) { o.Limits.AppFailuresNotify = -1 }},
		{"Limits.AppFailuresNotify", func(o *Options) { o.Limits.AppFailures, o.Limits.AppFailuresNotify = 4, 5 }},
		{"Limits.IPv6Prefix", func(o *Options) { o.Limits.IPv6Prefix = 129 }},
		{"Limits.IPv6Prefix", func(o *Options) { o.Limits.IPv6Prefix = config.MaxIPv6Prefix + 1 }},
		{"Limits.IPv6SitePrefix", func(o *Options) { o.Limits.IPv6SitePrefix = config.DefaultIPv6Prefix + 1 }},
		{"Limits.IPv6SitePrefix", func(o *Options) { o.Limits.IPv6SitePrefix = -1 }},
		{"Questions.Required", func(o *Options) { o.Questions.Required = config.MaxQuestionsRequired + 1 }},
		{"Questions.Ask", func(o *Options) { o.Questions.Required, o.Questions.Ask = 3, 4 }},
		{"Questions.Ask", func(o *Options) { o.Questions.Ask = -1 }},
	}
	for _, tt := range tests {
		o := minimalOptions()
		tt.mod(&o)
		err := o.setDefaults()
		if err == nil {
			t.Errorf("%s: accepted", tt.field)
			continue
		}
		if !strings.Contains(err.Error(), "Options."+tt.field+" ") {
			t.Errorf("%s: the error does not name the field: %v", tt.field, err)
		}
	}
	// the bounds themselves are accepted
	o := minimalOptions()
	o.CodeLength, o.CodeTTL, o.MaxTries, o.PadFloor = config.MinCodeLength, config.MaxCodeTTL, config.MaxMaxTries, config.MaxPadFloor
	o.Eligibility.MethodsRequired = config.MaxMethodsRequired
	o.Limits.IPv6Prefix, o.Limits.IPv6SitePrefix = config.MinIPv6Prefix, config.MinIPv6SitePrefix
	o.Limits.AppFailures, o.Limits.AppFailuresNotify = 1, 1
	o.Questions.Required, o.Questions.Ask = 1, 1
	if err := o.setDefaults(); err != nil {
		t.Errorf("bounds refused: %v", err)
	}
}
