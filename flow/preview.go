package flow

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// The impact preview: before an admin saves, how many users gain or lose
// the ability to reset with the change, computed from the directory (one
// paged listing of the users and one of each group's nested members) and
// the store (every verified method, in one read).

// previewSample is how many names each side of a preview lists.
const previewSample = 20

// Coverage is who could reset under one version of the settings.
type Coverage struct {
	// Eligible: self-service covers them.
	Eligible int `json:"eligible"`
	// Ready: eligible and registered with enough methods to reset now.
	Ready int `json:"ready"`
}

// Change is the users a change moves in or out, with a sample of names.
type Change struct {
	Count  int      `json:"count"`
	Sample []string `json:"sample"`
}

// Preview is the impact of a change of settings.
type Preview struct {
	// Users is how many accounts the directory listed.
	Users  int      `json:"users"`
	Before Coverage `json:"before"`
	After  Coverage `json:"after"`
	// GainEligible, LoseEligible: users the change brings in or leaves out.
	GainEligible Change `json:"gain_eligible"`
	LoseEligible Change `json:"lose_eligible"`
	// GainReady, LoseReady: users who can reset now and could not before
	// (or could before and cannot after: for example a second method
	// required, or a method no longer offered, leaves them short).
	GainReady Change `json:"gain_ready"`
	LoseReady Change `json:"lose_ready"`
	// Unresolved counts users whose decision failed closed after the
	// change (a group of the settings that the directory does not have).
	Unresolved int `json:"unresolved"`
	// Millis is how long the preview took.
	Millis int64 `json:"millis"`
}

// wellKnownPrivileged are where Active Directory keeps its protected
// groups by default (under the naming context): on AD the preview counts
// their nested members as privileged, as the account's token would (a
// renamed or moved group is not found; Explain reads the token itself).
var wellKnownPrivileged = []string{
	"CN=Domain Admins,CN=Users", "CN=Enterprise Admins,CN=Users", "CN=Schema Admins,CN=Users",
	"CN=Group Policy Creator Owners,CN=Users", "CN=Key Admins,CN=Users", "CN=Enterprise Key Admins,CN=Users",
	"CN=Domain Controllers,CN=Users", "CN=Read-only Domain Controllers,CN=Users",
	"CN=Administrators,CN=Builtin", "CN=Account Operators,CN=Builtin", "CN=Server Operators,CN=Builtin",
	"CN=Print Operators,CN=Builtin", "CN=Backup Operators,CN=Builtin", "CN=Replicator,CN=Builtin",
}

// PreviewSettings computes what saving set would change, against the
// settings in force. set is checked as a save would check it.
func (s *Service) PreviewSettings(ctx context.Context, sess store.Session, set config.Settings, m Meta) (Preview, error) {
	start := time.Now()
	base := s.o.Admin.Config
	if base == nil {
		return Preview{}, problem(CodeReadOnly, errors.New("no configuration to check settings against"))
	}
	lister, ok := s.d.Directory.(directory.Lister)
	if !ok {
		return Preview{}, problem(CodeInternal, errors.New("the directory cannot list its users"))
	}
	set = cloneSettings(set)
	normalizeSettings(&set)
	if err := base.ValidateSettings(set); err != nil {
		return Preview{}, settingsProblem(err)
	}
	before, after := s.eligibility(), base.WithSettings(set).Eligibility()
	members, privileged, err := s.previewGroups(ctx, lister, before, after)
	if err != nil {
		return Preview{}, err
	}
	verified, err := s.verifiedKinds(ctx)
	if err != nil {
		return Preview{}, err
	}
	var p Preview
	for _, c := range []*Change{&p.GainEligible, &p.LoseEligible, &p.GainReady, &p.LoseReady} {
		c.Sample = []string{}
	}
	err = lister.Users(ctx, func(u *directory.User) error {
		p.Users++
		subj := policy.Subject{MemberOf: map[string]bool{}, Privileged: u.Status.Privileged || privileged[policy.NormalizeDN(u.DN)],
			Disabled: u.Status.Disabled}
		dn := policy.NormalizeDN(u.DN)
		for g, set := range members {
			subj.MemberOf[g] = set[dn]
		}
		db, da := before.Decide(subj), after.Decide(subj)
		kinds := verified[u.ID]
		rb, ra := s.ready(db, kinds), s.ready(da, kinds)
		p.tally(u.Username, db.Eligible, da.Eligible, rb, ra)
		if da.Reason == policy.ReasonUnresolved {
			p.Unresolved++
		}
		return nil
	})
	if err != nil {
		return Preview{}, s.dirProblem(err)
	}
	p.Millis = time.Since(start).Milliseconds()
	s.record(ctx, m, "admin.preview", sess.AccountID, "success", map[string]string{"users": strconv.Itoa(p.Users)})
	return p, nil
}

func (p *Preview) tally(name string, eb, ea, rb, ra bool) {
	if eb {
		p.Before.Eligible++
	}
	if ea {
		p.After.Eligible++
	}
	if rb {
		p.Before.Ready++
	}
	if ra {
		p.After.Ready++
	}
	add := func(c *Change, yes bool) {
		if !yes {
			return
		}
		c.Count++
		if len(c.Sample) < previewSample {
			c.Sample = append(c.Sample, name)
		}
	}
	add(&p.GainEligible, ea && !eb)
	add(&p.LoseEligible, eb && !ea)
	add(&p.GainReady, ra && !rb)
	add(&p.LoseReady, rb && !ra)
}

// ready reports whether an account with verified methods of these kinds
// could reset under decision d: eligible, and with what d offers (the
// methods available that have a sender) enough to leave nothing
// remaining, as a reset's completion requires.
func (s *Service) ready(d policy.Decision, kinds []string) bool {
	if !d.Eligible {
		return false
	}
	offered := s.methodsAvailable(d.Methods)
	usable := slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return !slices.Contains(offered, k) })
	return d.Remaining(usable) == 0
}

// previewGroups reads the nested members of every group either version
// of the settings names (a group the directory does not have is left
// without an answer: the decision fails closed, as it would at a reset)
// and, on Active Directory, the privileged accounts of the well-known
// protected groups.
func (s *Service) previewGroups(ctx context.Context, l directory.Lister, before, after policy.Eligibility) (map[string]map[string]bool, map[string]bool, error) {
	members := map[string]map[string]bool{}
	for _, g := range append(before.AllGroups(), after.AllGroups()...) {
		k := policy.NormalizeDN(g)
		if _, ok := members[k]; ok {
			continue
		}
		set, err := l.NestedMembers(ctx, g)
		switch {
		case errors.Is(err, directory.ErrNotFound):
			continue
		case err != nil:
			return nil, nil, s.dirProblem(err)
		}
		members[k] = set
	}
	privileged := map[string]bool{}
	info := s.d.Directory.Info()
	if (info.IsAD || info.Flavor == directory.ActiveDirectory) && info.NamingContext != "" && (before.ExcludePrivileged || after.ExcludePrivileged) {
		for _, g := range wellKnownPrivileged {
			set, err := l.NestedMembers(ctx, g+","+info.NamingContext)
			switch {
			case errors.Is(err, directory.ErrNotFound):
				continue
			case err != nil:
				return nil, nil, s.dirProblem(err)
			}
			for dn := range set {
				privileged[dn] = true
			}
		}
	}
	return members, privileged, nil
}

// verifiedKinds reads every verified method of every account, in one
// store read, as the kinds that count toward MethodsRequired (two
// addresses of one mailbox, or two apps, count once).
func (s *Service) verifiedKinds(ctx context.Context) (map[string][]string, error) {
	ms, err := s.d.Store.SampleMethods(ctx, math.MaxInt32, s.now().Add(time.Second))
	if err != nil {
		return nil, storeProblem(err)
	}
	out := map[string][]string{}
	seen := map[string]bool{}
	for _, m := range ms {
		k := m.AccountID + "\x00" + countKey(m)
		if !m.Verified || seen[k] {
			continue
		}
		seen[k] = true
		out[m.AccountID] = append(out[m.AccountID], m.Type)
	}
	return out, nil
}

// GroupView is a directory group as the group picker shows it.
type GroupView struct {
	DN   string `json:"dn"`
	Name string `json:"name"`
	// Members counts the users in it at any depth.
	Members int `json:"members"`
}

// maxGroupResults bounds a group search.
const maxGroupResults = 50

// SearchGroups finds directory groups whose name contains query, with
// their member counts (nested included), for the group picker.
func (s *Service) SearchGroups(ctx context.Context, sess store.Session, query string) ([]GroupView, error) {
	lister, ok := s.d.Directory.(directory.Lister)
	if !ok {
		return nil, problem(CodeInternal, errors.New("the directory cannot list its groups"))
	}
	gs, err := lister.SearchGroups(ctx, query, maxGroupResults)
	if err != nil {
		return nil, s.dirProblem(err)
	}
	out := make([]GroupView, 0, len(gs))
	for _, g := range gs {
		out = append(out, GroupView{DN: g.DN, Name: g.Name, Members: g.Members})
	}
	return out, nil
}
