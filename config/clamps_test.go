package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

// Every value the gateway used to replace silently (its Options, Limits
// and QuestionOptions defaults, the padder's bounds, baseRequired; flow
// now refuses them too, naming the field: flow.TestOptionsOutOfRangeAreRefused)
// is a Validate problem at its key path that names the value given, so
// `latchkey check` and start refuse it (exit 2) instead of running with
// another value. The bounds themselves validate.
func TestValidateRefusesWhatTheGatewayWouldClamp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*config.Config)
		key  string // "" when the value is valid
		msg  string
	}{
		// gateway: CodeLength outside 6-8 became 6
		{"code_length 5", func(c *config.Config) { c.Policy.CodeLength = 5 }, "policy.code_length", "must be 6-8 digits, got 5"},
		{"code_length 9", func(c *config.Config) { c.Policy.CodeLength = 9 }, "policy.code_length", "must be 6-8 digits, got 9"},
		{"code_length 0", func(c *config.Config) { c.Policy.CodeLength = 0 }, "policy.code_length", "got 0"},
		{"code_length 6", func(c *config.Config) { c.Policy.CodeLength = 6 }, "", ""},
		{"code_length 8", func(c *config.Config) { c.Policy.CodeLength = 8 }, "", ""},
		// CodeTTL not in (0, 10m] became 10m
		{"code_ttl 0", func(c *config.Config) { c.Policy.CodeTTL = 0 }, "policy.code_ttl", "at most 10m0s, got 0s"},
		{"code_ttl 11m", func(c *config.Config) { c.Policy.CodeTTL = 11 * time.Minute }, "policy.code_ttl", "got 11m0s"},
		{"code_ttl 10m", func(c *config.Config) { c.Policy.CodeTTL = 10 * time.Minute }, "", ""},
		{"code_ttl 1s", func(c *config.Config) { c.Policy.CodeTTL = time.Second }, "", ""},
		// MaxTries not in 1-5 became 5
		{"max_tries 0", func(c *config.Config) { c.Policy.MaxTries = 0 }, "policy.max_tries", "must be 1-5, got 0"},
		{"max_tries 6", func(c *config.Config) { c.Policy.MaxTries = 6 }, "policy.max_tries", "must be 1-5, got 6"},
		{"max_tries 1", func(c *config.Config) { c.Policy.MaxTries = 1 }, "", ""},
		// baseRequired: methods_required 0 counted as 1
		{"methods_required 0", func(c *config.Config) { c.Policy.MethodsRequired = 0 }, "policy.methods_required", "must be 1 or 2, got 0"},
		// the padder held at most 500ms and never less than 0
		{"pad_floor -1ms", func(c *config.Config) { c.Policy.PadFloor = -time.Millisecond }, "policy.pad_floor", "to 500ms, got -1ms"},
		{"pad_floor 501ms", func(c *config.Config) { c.Policy.PadFloor = 501 * time.Millisecond }, "policy.pad_floor", "got 501ms"},
		{"pad_floor 500ms", func(c *config.Config) { c.Policy.PadFloor = 500 * time.Millisecond }, "", ""},
		{"pad_floor 0", func(c *config.Config) { c.Policy.PadFloor = 0 }, "", ""},
		// QuestionOptions: Required 0 became 3, Ask outside 1..Required became min(2, Required)
		{"questions.required 0", func(c *config.Config) { c.Policy.Questions.Required = 0 }, "policy.questions.required", "must be 1-10, got 0"},
		{"questions.ask 0", func(c *config.Config) { c.Policy.Questions.Ask = 0 }, "policy.questions.ask", "must be 1 to policy.questions.required (3), got 0"},
		{"questions.ask above required", func(c *config.Config) { c.Policy.Questions.Ask = 4 }, "policy.questions.ask", "got 4"},
		{"questions.ask = required", func(c *config.Config) { c.Policy.Questions.Ask = 3 }, "", ""},
		// Options: timeouts of 0 or less became 10s, 30s, 60s
		{"read_timeout 0", func(c *config.Config) { c.Server.ReadTimeout = 0 }, "server.read_timeout", "must be a positive duration, got 0s"},
		{"write_timeout -1s", func(c *config.Config) { c.Server.WriteTimeout = -time.Second }, "server.write_timeout", "got -1s"},
		{"idle_timeout 0", func(c *config.Config) { c.Server.IdleTimeout = 0 }, "server.idle_timeout", "got 0s"},
		{"read_header_timeout 0", func(c *config.Config) { c.Server.ReadHeaderTimeout = 0 }, "server.read_header_timeout", "got 0s"},
		// Limits: windows of 0 or less became 1h, 1h, 24h
		{"window 0", func(c *config.Config) { c.Limits.Window = 0 }, "limits.window", "got 0s"},
		{"bind_failure_window 0", func(c *config.Config) { c.Limits.BindFailureWindow = 0 }, "limits.bind_failure_window", "got 0s"},
		{"app_failure_window -1h", func(c *config.Config) { c.Limits.AppFailureWindow = -time.Hour }, "limits.app_failure_window", "got -1h0m0s"},
		// Limits: budgets of 0 or less became their defaults
		{"starts_per_account 0", func(c *config.Config) { c.Limits.StartsPerAccount = 0 }, "limits.starts_per_account", "must be at least 1, got 0"},
		{"starts_per_ip -1", func(c *config.Config) { c.Limits.StartsPerIP = -1 }, "limits.starts_per_ip", "must be at least 1, got -1"},
		{"starts_total 0", func(c *config.Config) { c.Limits.StartsTotal = 0 }, "limits.starts_total", "got 0"},
		{"sends_per_account 0", func(c *config.Config) { c.Limits.SendsPerAccount = 0 }, "limits.sends_per_account", "got 0"},
		{"sends_per_destination 0", func(c *config.Config) { c.Limits.SendsPerDestination = 0 }, "limits.sends_per_destination", "got 0"},
		{"sms_per_hour 0", func(c *config.Config) { c.Limits.SMSPerHour = 0 }, "limits.sms_per_hour", "got 0"},
		{"sms_per_prefix_per_hour 0", func(c *config.Config) { c.Limits.SMSPerPrefixPerHour = 0 }, "limits.sms_per_prefix_per_hour", "got 0"},
		{"code_failures_per_account 0", func(c *config.Config) { c.Limits.CodeFailuresPerAccount = 0 }, "limits.code_failures_per_account", "must be at least 1, got 0"},
		{"sign_ins_per_ip 0", func(c *config.Config) { c.Limits.SignInsPerIP = 0 }, "limits.sign_ins_per_ip", "got 0"},
		{"bind_failures 0", func(c *config.Config) { c.Limits.BindFailures = 0 }, "limits.bind_failures", "got 0"},
		{"notices_per_account 0", func(c *config.Config) { c.Limits.NoticesPerAccount = 0 }, "limits.notices_per_account", "got 0"},
		{"app_failures 0", func(c *config.Config) { c.Limits.AppFailures = 0 }, "limits.app_failures", "got 0"},
		{"app_failures_notify 0", func(c *config.Config) { c.Limits.AppFailuresNotify = 0 }, "limits.app_failures_notify", "got 0"},
		{"budgets of 1", func(c *config.Config) {
			l := &c.Limits
			l.StartsPerAccount, l.StartsPerIP, l.StartsTotal, l.SendsPerAccount, l.SendsPerDestination = 1, 1, 1, 1, 1
			l.SMSPerHour, l.SMSPerPrefixPerHour, l.CodeFailuresPerAccount, l.SignInsPerIP, l.BindFailures = 1, 1, 1, 1, 1
			l.NoticesPerAccount, l.AppFailures, l.AppFailuresNotify = 1, 1, 1
		}, "", ""},
		// AppFailuresNotify above AppFailures became AppFailures
		{"app_failures_notify above app_failures", func(c *config.Config) { c.Limits.AppFailures, c.Limits.AppFailuresNotify = 4, 5 },
			"limits.app_failures_notify", "got 5 with limits.app_failures 4"},
		// IPv6Prefix outside 1-128 became 56 (config: 32-64)
		{"ipv6_prefix 0", func(c *config.Config) { c.Limits.IPv6Prefix = 0 }, "limits.ipv6_prefix", "must be 32-64, got 0"},
		{"ipv6_prefix 129", func(c *config.Config) { c.Limits.IPv6Prefix = 129 }, "limits.ipv6_prefix", "got 129"},
		{"ipv6_prefix 32", func(c *config.Config) { c.Limits.IPv6Prefix, c.Limits.IPv6SitePrefix = 32, 32 }, "", ""},
		// IPv6SitePrefix outside 1..IPv6Prefix became min(48, IPv6Prefix) (config: 16 up)
		{"ipv6_site_prefix 0", func(c *config.Config) { c.Limits.IPv6SitePrefix = 0 }, "limits.ipv6_site_prefix", "must be 16 up to limits.ipv6_prefix (56), got 0"},
		{"ipv6_site_prefix 57", func(c *config.Config) { c.Limits.IPv6SitePrefix = 57 }, "limits.ipv6_site_prefix", "got 57"},
		{"ipv6_site_prefix 16", func(c *config.Config) { c.Limits.IPv6SitePrefix = 16 }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			c.Policy.Methods = append(c.Policy.Methods, "questions")
			c.Policy.Questions.List = []string{"First question?", "Second question?", "Third question?", "Fourth question?"}
			tt.mod(c)
			err := c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			ps := problems(t, err)
			if !hasProblem(ps, tt.key, tt.msg) {
				t.Errorf("want %s: ...%s..., got %v", tt.key, tt.msg, ps)
			}
		})
	}
}

// Problems come in file order, the limits' too (they were listed in the
// random order of a map).
func TestValidateLimitsInFileOrder(t *testing.T) {
	t.Parallel()
	c := valid()
	c.Limits = config.Limits{IPv6Prefix: 56, IPv6SitePrefix: 48}
	var got []string
	for _, k := range keys(problems(t, c.Validate())) {
		if len(k) > 7 && k[:7] == "limits." {
			got = append(got, k)
		}
	}
	want := []string{"limits.window", "limits.starts_per_account", "limits.starts_per_ip", "limits.starts_total",
		"limits.sends_per_account", "limits.sends_per_destination", "limits.sms_per_hour", "limits.sms_per_prefix_per_hour",
		"limits.code_failures_per_account", "limits.sign_ins_per_ip", "limits.bind_failures", "limits.bind_failure_window",
		"limits.notices_per_account", "limits.app_failures", "limits.app_failures_notify", "limits.app_failure_window"}
	if !slices.Equal(got, want) {
		t.Errorf("limits problems in the order\n%v\nwant the file's\n%v", got, want)
	}
	// and that is the order of config.example.yaml's keys
	var file []string
	for _, k := range config.Keys() {
		if len(k.Path) > 7 && k.Path[:7] == "limits." && !slices.Contains([]string{"limits.ipv6_prefix", "limits.ipv6_site_prefix"}, k.Path) {
			file = append(file, k.Path)
		}
	}
	if !slices.Equal(file, want) {
		t.Errorf("config.Keys() lists the limits as\n%v\nwant\n%v", file, want)
	}
}
