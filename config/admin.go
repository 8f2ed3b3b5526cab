package config

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/policy"
)

// Where the admin console's settings live, the values of admin.settings.
const (
	// AdminSettingsStore: the console edits the settings, kept in the store
	// and shared by every instance; the configuration file's values are
	// the first version only.
	AdminSettingsStore = "store"
	// AdminSettingsFile: the configuration file is the only source (for
	// admins who keep it in git); the console shows the settings read-only
	// and `latchkey serve` ignores a copy stored earlier.
	AdminSettingsFile = "file"
)

// Defaults of the admin console's sessions.
const (
	DefaultAdminSessionIdle = 15 * time.Minute
	DefaultAdminSessionTTL  = 8 * time.Hour
	// MaxAdminSessionIdle bounds admin.session_idle: a console left open
	// must not stay signed in for a working day.
	MaxAdminSessionIdle = time.Hour
)

// Admin configures the admin console (/admin, /api/v1/admin).
type Admin struct {
	// Groups: members (nested membership counted) may sign in to the
	// console, with their directory password and an authenticator app
	// registered in Latchkey. Empty: the console is off.
	Groups []string `mapstructure:"groups"`
	// Settings is AdminSettingsStore or AdminSettingsFile.
	Settings string `mapstructure:"settings"`
	// SessionIdle: an admin session ends after this long without a request.
	SessionIdle time.Duration `mapstructure:"session_idle"`
	// SessionTTL: an admin session ends this long after its sign-in.
	SessionTTL time.Duration `mapstructure:"session_ttl"`
}

// defaultAdmin is the admin section's defaults (rawDefaults).
func defaultAdmin() Admin {
	return Admin{Groups: []string{}, Settings: AdminSettingsStore, SessionIdle: DefaultAdminSessionIdle, SessionTTL: DefaultAdminSessionTTL}
}

// Notifications chooses who is told (Entra's Notifications page).
type Notifications struct {
	// Users: users are told of a reset or unlock of their account and of
	// a recovery method added or removed (on every verified channel and
	// the directory mail). Warnings of an attack (a reset left after one
	// method, wrong authenticator codes) and of a password change are
	// sent either way.
	Users bool `mapstructure:"users" json:"users"`
	// Admins: every admin (member of admin.groups) is told by mail when
	// another admin's password is reset through self-service.
	Admins bool `mapstructure:"admins" json:"admins"`
}

// Settings is what the admin console edits, with the configuration's own
// key names (its JSON is the body of GET and PUT /api/v1/admin/settings).
// It holds no secret: secrets stay in the configuration file.
type Settings struct {
	Policy        SettingsPolicy `json:"policy"`
	Notifications Notifications  `json:"notifications"`
	Server        SettingsServer `json:"server"`
}

// SettingsPolicy is the part of the policy section the console edits.
type SettingsPolicy struct {
	Scope             string   `json:"scope"`
	Groups            []string `json:"groups"`
	ExcludeGroups     []string `json:"exclude_groups"`
	IncludePrivileged bool     `json:"include_privileged"`
	PrivilegedGroups  []string `json:"privileged_groups"`
	MethodsRequired   int      `json:"methods_required"`
	Methods           []string `json:"methods"`
	Tiers             []Tier   `json:"tiers"`
	// Questions: security questions (the list, how many to register and
	// to ask, custom questions).
	Questions Questions `json:"questions"`
	// ReconfirmDays: users are asked to re-confirm their methods after
	// this many days (0 never).
	ReconfirmDays int `json:"reconfirm_days"`
}

// SettingsServer is the part of the server section the console edits (the
// Customization page).
type SettingsServer struct {
	Helpdesk     string `json:"helpdesk"`
	Organisation string `json:"organisation"`
}

// Settings returns the configuration's values of what the console edits:
// the first version of the stored settings.
func (c *Config) Settings() Settings {
	p := c.Policy
	tiers := make([]Tier, len(p.Tiers))
	for i, t := range p.Tiers {
		tiers[i] = Tier{Groups: nonNil(t.Groups), MethodsRequired: t.MethodsRequired, Methods: nonNil(t.Methods), RequireOneOf: nonNil(t.RequireOneOf)}
	}
	return Settings{
		Policy: SettingsPolicy{Scope: p.Scope, Groups: nonNil(p.Groups), ExcludeGroups: nonNil(p.ExcludeGroups),
			IncludePrivileged: p.IncludePrivileged, PrivilegedGroups: nonNil(p.PrivilegedGroups),
			MethodsRequired: p.MethodsRequired, Methods: nonNil(p.Methods), Tiers: tiers,
			Questions:     Questions{List: nonNil(p.Questions.List), AllowCustom: p.Questions.AllowCustom, Required: p.Questions.Required, Ask: p.Questions.Ask},
			ReconfirmDays: p.ReconfirmDays},
		Notifications: c.Notifications,
		Server:        SettingsServer{Helpdesk: c.Server.Helpdesk, Organisation: c.Server.Organisation},
	}
}

// WithSettings returns a copy of c with s in place of what the console
// edits; c is not changed.
func (c *Config) WithSettings(s Settings) *Config {
	out := *c
	p := &out.Policy
	p.Scope, p.Groups, p.ExcludeGroups = s.Policy.Scope, clone(s.Policy.Groups), clone(s.Policy.ExcludeGroups)
	p.IncludePrivileged, p.PrivilegedGroups = s.Policy.IncludePrivileged, clone(s.Policy.PrivilegedGroups)
	p.MethodsRequired, p.Methods = s.Policy.MethodsRequired, clone(s.Policy.Methods)
	q := s.Policy.Questions
	p.Questions = Questions{List: clone(q.List), AllowCustom: q.AllowCustom, Required: q.Required, Ask: q.Ask}
	p.ReconfirmDays = s.Policy.ReconfirmDays
	p.Tiers = make([]Tier, len(s.Policy.Tiers))
	for i, t := range s.Policy.Tiers {
		p.Tiers[i] = Tier{Groups: clone(t.Groups), MethodsRequired: t.MethodsRequired, Methods: clone(t.Methods), RequireOneOf: clone(t.RequireOneOf)}
	}
	out.Notifications = s.Notifications
	out.Server.Helpdesk, out.Server.Organisation = s.Server.Helpdesk, s.Server.Organisation
	return &out
}

// settingsKeys are the key paths Settings holds: a problem at one of them
// (or under it) is the settings' own.
var settingsKeys = []string{"policy.scope", "policy.groups", "policy.exclude_groups", "policy.include_privileged",
	"policy.privileged_groups", "policy.methods_required", "policy.methods", "policy.tiers", "policy.questions", "policy.reconfirm_days",
	"notifications.users", "notifications.admins", "server.helpdesk", "server.organisation"}

// ValidateSettings checks s as Validate would check a configuration file
// holding it in place of c's values: the same rules and messages, with the
// key paths of the settings (a method whose sender is not configured is
// refused, as in the file). It returns a *ValidationError or nil.
func (c *Config) ValidateSettings(s Settings) error {
	err := c.WithSettings(s).Validate()
	if err == nil {
		return nil
	}
	ve, ok := err.(*ValidationError)
	if !ok {
		return err
	}
	var mine []Problem
	for _, p := range ve.Problems {
		if slices.ContainsFunc(settingsKeys, func(k string) bool {
			return p.Key == k || strings.HasPrefix(p.Key, k+".") || strings.HasPrefix(p.Key, k+"[")
		}) {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		// the rest of the configuration is not the settings' to fix, and
		// was valid when the gateway started
		return nil
	}
	return &ValidationError{Problems: mine}
}

// validateAdmin checks the admin section and server.organisation.
func (c *Config) validateAdmin(ch *checker) {
	a := c.Admin
	ch.dns("admin.groups", a.Groups)
	ch.oneOf("admin.settings", a.Settings, AdminSettingsStore, AdminSettingsFile)
	if a.SessionIdle <= 0 || a.SessionIdle > MaxAdminSessionIdle {
		ch.add("admin.session_idle", "must be a positive duration of at most %s, got %s", MaxAdminSessionIdle, a.SessionIdle)
	}
	if a.SessionTTL < a.SessionIdle || a.SessionTTL > 24*time.Hour {
		ch.add("admin.session_ttl", "must be between admin.session_idle and 24h, got %s", a.SessionTTL)
	}
	if o := c.Server.Organisation; len(o) > 100 || strings.ContainsFunc(o, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		ch.add("server.organisation", "must be at most 100 characters, without control characters")
	}
}

// nonNil is s, or an empty slice for nil (so that JSON shows [] not null).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SettingsKeys are the key paths of Settings, in the order pages show them.
func SettingsKeys() []string { return slices.Clone(settingsKeys) }

// Flat is s by key path (SettingsKeys), each value as JSON: what the audit
// shows before and after a save, and what a conflict compares.
func (s Settings) Flat() map[string]string {
	p := s.Policy
	vals := []any{p.Scope, nonNil(p.Groups), nonNil(p.ExcludeGroups), p.IncludePrivileged, nonNil(p.PrivilegedGroups),
		p.MethodsRequired, nonNil(p.Methods), tiersOrEmpty(p.Tiers),
		Questions{List: nonNil(p.Questions.List), AllowCustom: p.Questions.AllowCustom, Required: p.Questions.Required, Ask: p.Questions.Ask},
		p.ReconfirmDays, s.Notifications.Users, s.Notifications.Admins,
		s.Server.Helpdesk, s.Server.Organisation}
	out := make(map[string]string, len(settingsKeys))
	for i, k := range settingsKeys {
		b, _ := json.Marshal(vals[i])
		out[k] = string(b)
	}
	return out
}

func tiersOrEmpty(t []Tier) []Tier {
	out := make([]Tier, len(t))
	for i, x := range t {
		out[i] = Tier{Groups: nonNil(x.Groups), MethodsRequired: x.MethodsRequired, Methods: nonNil(x.Methods), RequireOneOf: nonNil(x.RequireOneOf)}
	}
	return out
}

// AvailableSenders are the methods policy.methods may list with this
// configuration: email and sms only with their section enabled, webauthn
// only with a host name in server.public_url, questions only with a list
// of questions or custom questions allowed.
func (c *Config) AvailableSenders() []string {
	var out []string
	for _, m := range knownMethods {
		switch {
		case m == policy.MethodEmail && !c.Email.Enabled,
			m == policy.MethodSMS && !c.SMS.Enabled,
			m == policy.MethodWebAuthn && !passkeyHost(c.Server.PublicURL):
			continue
		}
		out = append(out, m)
	}
	return out
}

// KnownMethods are the methods policy.methods may name.
func KnownMethods() []string { return slices.Clone(knownMethods) }
