package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// settingsPoll is how often an instance reads the stored settings'
// version: a change saved on another instance is in force here within it
// (and the 5 s).
const settingsPoll = 2 * time.Second

// live is what the admin console can change while the gateway runs: the
// settings in force and what the flows read from them.
type live struct {
	// Version of the stored settings in force; 0: the configuration file's.
	Version   int
	UpdatedAt time.Time
	UpdatedBy string
	Settings  config.Settings
	// Eligibility is Settings' policy as the flows apply it.
	Eligibility   policy.Eligibility
	Notifications config.Notifications
	Questions     QuestionOptions
	// ReconfirmDays: policy.reconfirm_days (reconfirm.go); 0 never asks
	ReconfirmDays int
	Helpdesk      string
	Organisation  string
}

// SettingsView is the settings in force with where they come from, as GET
// /api/v1/admin/settings answers.
type SettingsView struct {
	// Version is the stored version (0: none saved yet, the
	// configuration file's values); a save names it.
	Version   int       `json:"version"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// UpdatedBy is the account id of the admin who saved it.
	UpdatedBy string `json:"updated_by,omitempty"`
	// Source is "store" or "file" (admin.settings).
	Source string `json:"source"`
	// ReadOnly: admin.settings is file, the console cannot save.
	ReadOnly bool            `json:"read_only"`
	Settings config.Settings `json:"settings"`
	// Methods are the methods whose sender is configured: the only ones a
	// save may list.
	Methods []string `json:"methods_available"`
}

// SettingsConflict is the refusal of a save based on an old version: the
// settings now in force and the keys at which they differ from the save.
type SettingsConflict struct {
	Current SettingsView `json:"current"`
	// Changed are the key paths at which the settings in force differ
	// from the ones the save sent.
	Changed []string `json:"changed"`
}

func (c *SettingsConflict) Error() string {
	return fmt.Sprintf("settings: version %d is in force", c.Current.Version)
}

// initLive sets the settings in force at start: the stored copy when the
// console keeps its settings in the store and one was saved, else the
// configuration's.
func (s *Service) initLive(ctx context.Context) error {
	base := s.o.Admin.Config
	// Options built by hand (tests) tell users, as the configuration's
	// default does
	first := &live{Eligibility: s.o.Eligibility, Helpdesk: s.o.Helpdesk, Organisation: s.o.Organisation,
		Notifications: config.Notifications{Users: true}, Questions: s.o.Questions}
	if base != nil {
		first.Settings, first.Notifications, first.ReconfirmDays = base.Settings(), base.Notifications, base.Policy.ReconfirmDays
	}
	s.settings.Store(first)
	if !s.settingsFromStore() {
		return nil
	}
	st, err := s.d.Store.GetSettings(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the admin console's settings: %w", err)
	}
	return s.applyStored(st)
}

// settingsFromStore reports whether the settings in force come from the
// store: the console is on and admin.settings is store.
func (s *Service) settingsFromStore() bool {
	a := s.o.Admin
	return a.Config != nil && len(a.Groups) > 0 && a.Settings != config.AdminSettingsFile
}

// applyStored puts stored settings in force, once they pass the checks a
// configuration file would (a copy saved by a build with other rules, or
// for a sender this instance lacks, is refused and the settings in force
// are kept).
func (s *Service) applyStored(st store.StoredSettings) error {
	var set config.Settings
	dec := json.NewDecoder(strings.NewReader(string(st.Body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		return fmt.Errorf("stored settings version %d: %w", st.Version, err)
	}
	if err := s.o.Admin.Config.ValidateSettings(set); err != nil {
		return fmt.Errorf("stored settings version %d: %w", st.Version, err)
	}
	s.setLive(s.liveFrom(set, st.Version, st.UpdatedAt, st.UpdatedBy))
	return nil
}

// setLive puts l in force unless a newer version already is (a poll that
// read version N must not undo a save of N+1 made here meanwhile).
func (s *Service) setLive(l *live) {
	for {
		cur := s.settings.Load()
		if cur != nil && cur.Version >= l.Version {
			return
		}
		if s.settings.CompareAndSwap(cur, l) {
			return
		}
	}
}

func (s *Service) liveFrom(set config.Settings, version int, at time.Time, by string) *live {
	cfg := s.o.Admin.Config.WithSettings(set)
	q := cfg.Policy.Questions
	return &live{Version: version, UpdatedAt: at, UpdatedBy: by, Settings: set, Eligibility: cfg.Eligibility(),
		Notifications: set.Notifications, Helpdesk: set.Server.Helpdesk, Organisation: set.Server.Organisation,
		Questions:     QuestionOptions{List: q.List, AllowCustom: q.AllowCustom, Required: q.Required, Ask: q.Ask},
		ReconfirmDays: set.Policy.ReconfirmDays}
}

// live is the settings in force.
func (s *Service) live() *live { return s.settings.Load() }

// eligibility is the policy in force.
func (s *Service) eligibility() policy.Eligibility { return s.live().Eligibility }

// Customization is the helpdesk link and organisation name in force, for
// every page.
func (s *Service) Customization() (helpdesk, organisation string) {
	l := s.live()
	return l.Helpdesk, l.Organisation
}

// watchSettings reads the stored version every settingsPoll and puts a
// newer one in force, until stop is closed.
func (s *Service) watchSettings(stop <-chan struct{}) {
	t := time.NewTicker(settingsPoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.refreshSettings(context.Background())
		}
	}
}

// refreshSettings puts the stored settings in force if their version is
// not the one in force.
func (s *Service) refreshSettings(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, settingsPoll)
	defer cancel()
	v, err := s.d.Store.SettingsVersion(ctx)
	if err != nil {
		s.log.Warn("reading the settings' version failed", "error", err.Error())
		return
	}
	if v == s.live().Version {
		return
	}
	st, err := s.d.Store.GetSettings(ctx)
	if err != nil {
		s.log.Warn("reading the settings failed", "error", err.Error())
		return
	}
	if err := s.applyStored(st); err != nil {
		s.log.Error("stored settings not applied; the settings in force are kept", "error", err.Error())
		return
	}
	s.log.Info("settings applied", "version", st.Version, "updated_by", st.UpdatedBy)
}

// Settings is the settings in force, for the console.
func (s *Service) Settings() SettingsView {
	l := s.live()
	src := config.AdminSettingsStore
	if s.o.Admin.Settings == config.AdminSettingsFile {
		src = config.AdminSettingsFile
	}
	var avail []string
	if base := s.o.Admin.Config; base != nil {
		avail = base.AvailableSenders()
	}
	return SettingsView{Version: l.Version, UpdatedAt: l.UpdatedAt, UpdatedBy: l.UpdatedBy, Source: src,
		ReadOnly: !s.settingsFromStore(), Settings: l.Settings, Methods: avail}
}

// SaveSettings stores set as the version after prev and puts it in force
// here (the other instances within settingsPoll). A prev that is not the
// stored version is refused with a *SettingsConflict inside a conflict
// problem; settings a configuration file could not hold are refused with
// the problems at their keys (invalid_settings).
func (s *Service) SaveSettings(ctx context.Context, sess store.Session, prev int, set config.Settings, m Meta) (SettingsView, error) {
	if !s.settingsFromStore() {
		return SettingsView{}, problem(CodeReadOnly, nil)
	}
	set = cloneSettings(set)
	normalizeSettings(&set)
	if err := s.o.Admin.Config.ValidateSettings(set); err != nil {
		return SettingsView{}, settingsProblem(err)
	}
	body, err := json.Marshal(set)
	if err != nil {
		return SettingsView{}, problem(CodeInternal, err)
	}
	before := s.live()
	if prev != before.Version {
		// read what is stored: this instance may not have seen it yet
		s.refreshSettings(ctx)
		before = s.live()
	}
	changed := settingsDiff(before.Settings, set)
	details := map[string]string{"version": strconv.Itoa(prev + 1), "changed": strings.Join(changed, ",")}
	details["before"], details["after"] = flatJSON(before.Settings, changed), flatJSON(set, changed)
	ev := s.newAuditEvent(m, "admin.settings_changed", sess.AccountID, "success", details)
	saved, err := s.d.Store.SaveSettings(ctx, prev, store.StoredSettings{Body: body, UpdatedAt: s.now(), UpdatedBy: sess.AccountID},
		[]store.AuditEvent{ev})
	if errors.Is(err, store.ErrConflict) {
		s.refreshSettings(ctx)
		cur := s.Settings()
		s.record(ctx, m, "admin.settings_changed", sess.AccountID, "conflict", map[string]string{"version": strconv.Itoa(prev)})
		return SettingsView{}, &Problem{Code: CodeConflict, Status: 409, Err: &SettingsConflict{Current: cur, Changed: settingsDiff(cur.Settings, set)}}
	}
	if err != nil {
		return SettingsView{}, storeProblem(err)
	}
	s.logAudit(ev)
	s.setLive(s.liveFrom(set, saved.Version, saved.UpdatedAt, saved.UpdatedBy))
	return s.Settings(), nil
}

// cloneSettings is a deep copy of set: callers build settings from the
// ones in force, whose lists the flows keep reading.
func cloneSettings(set config.Settings) config.Settings {
	out := set
	p := &out.Policy
	p.Groups, p.ExcludeGroups, p.PrivilegedGroups, p.Methods = slices.Clone(p.Groups), slices.Clone(p.ExcludeGroups),
		slices.Clone(p.PrivilegedGroups), slices.Clone(p.Methods)
	p.Questions.List = slices.Clone(p.Questions.List)
	p.Tiers = slices.Clone(p.Tiers)
	for i := range p.Tiers {
		t := &p.Tiers[i]
		t.Groups, t.Methods, t.RequireOneOf = slices.Clone(t.Groups), slices.Clone(t.Methods), slices.Clone(t.RequireOneOf)
	}
	return out
}

// normalizeSettings gives nil lists their empty value and trims the
// strings, so that a save compares and reads back as it is shown.
func normalizeSettings(set *config.Settings) {
	p := &set.Policy
	for _, l := range []*[]string{&p.Groups, &p.ExcludeGroups, &p.PrivilegedGroups, &p.Methods} {
		*l = trimList(*l)
	}
	if p.Tiers == nil {
		p.Tiers = []config.Tier{}
	}
	p.Questions.List = trimList(p.Questions.List)
	for i := range p.Tiers {
		t := &p.Tiers[i]
		t.Groups, t.Methods, t.RequireOneOf = trimList(t.Groups), trimList(t.Methods), trimList(t.RequireOneOf)
	}
	p.Scope = strings.TrimSpace(p.Scope)
	set.Server.Helpdesk = strings.TrimSpace(set.Server.Helpdesk)
	set.Server.Organisation = strings.TrimSpace(set.Server.Organisation)
}

func trimList(in []string) []string {
	out := []string{}
	for _, v := range in {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// settingsDiff lists the key paths at which a and b differ.
func settingsDiff(a, b config.Settings) []string {
	fa, fb := a.Flat(), b.Flat()
	var out []string
	for _, k := range config.SettingsKeys() {
		if fa[k] != fb[k] {
			out = append(out, k)
		}
	}
	return out
}

// flatJSON is the values of set at keys, as one JSON object (for the
// audit's before and after).
func flatJSON(set config.Settings, keys []string) string {
	f := set.Flat()
	m := make(map[string]json.RawMessage, len(keys))
	for _, k := range keys {
		m[k] = json.RawMessage(f[k])
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// settingsProblem is invalid_settings with each problem at its key.
func settingsProblem(err error) *Problem {
	p := problem(CodeInvalidSettings, err)
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		for _, pr := range ve.Problems {
			p.Violations = append(p.Violations, Violation{Code: pr.Key, Message: pr.Message})
		}
	}
	slices.SortStableFunc(p.Violations, func(a, b Violation) int { return strings.Compare(a.Code, b.Code) })
	return p
}
