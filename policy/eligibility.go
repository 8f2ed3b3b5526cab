package policy

import "slices"

// Scopes: who may use self-service (Entra's None / Selected / All).
const (
	ScopeNone     = "none"
	ScopeSelected = "selected"
	ScopeAll      = "all"
)

// Methods a user can register and verify.
const (
	MethodEmail = "email"
	MethodSMS   = "sms"
	MethodTOTP  = "totp"
	// MethodWebAuthn is a passkey (WebAuthn); an account may hold a few,
	// which together count as one method.
	MethodWebAuthn = "webauthn"
	// MethodQuestions (security questions) can never be the only method
	// verified.
	MethodQuestions = "questions"
)

// Reasons a Decision is not eligible. They are for the audit log and the
// admin pages; users always see the same answer.
const (
	// ReasonScopeNone: self-service is off (scope none, or an unknown scope).
	ReasonScopeNone = "scope_none"
	// ReasonNotInGroup: scope is selected and the user is in none of the groups.
	ReasonNotInGroup = "not_in_group"
	// ReasonExcluded: the user is in an excluded group.
	ReasonExcluded = "excluded"
	// ReasonPrivileged: the account is privileged and privileged accounts are
	// excluded.
	ReasonPrivileged = "privileged"
	// ReasonDisabled: the account is disabled.
	ReasonDisabled = "disabled"
	// ReasonUnresolved: Subject.MemberOf has no answer for a group that could
	// make the decision stricter (an excluded, privileged or tier group). The
	// decision fails closed rather than guess.
	ReasonUnresolved = "membership_unresolved"
	// ReasonNoMethods: the matching tiers leave fewer available methods than
	// they require, so no reset could ever complete.
	ReasonNoMethods = "no_methods"
)

// Eligibility is the admin's choice of who may reset, unlock and register,
// and with how many methods. Build it from configuration; the zero value lets
// nobody in.
//
// Group DNs are compared with NormalizeDN: case-insensitively, ignoring white
// space around "," "+" and "=".
type Eligibility struct {
	// Scope is ScopeNone, ScopeSelected or ScopeAll. Anything else is treated
	// as ScopeNone.
	Scope string
	// Groups: with ScopeSelected, a user must be a (nested) member of at
	// least one.
	Groups []string
	// ExcludeGroups: members are never eligible, whatever else matches.
	ExcludeGroups []string
	// ExcludePrivileged refuses privileged accounts: Subject.Privileged
	// (AD adminCount=1), a well-known privileged SID in Subject.SIDs (see
	// PrivilegedSID), an unreadable token (Subject.TokenUnread), or
	// members of PrivilegedGroups. Configuration sets it unless the admin
	// opts in with policy.include_privileged; DefaultEligibility sets it.
	ExcludePrivileged bool
	// PrivilegedGroups are groups whose members count as privileged, in
	// addition to what the directory reports (AD adminCount=1 and the
	// account's token).
	PrivilegedGroups []string
	// MethodsRequired is how many different methods must be verified; values
	// below 1 mean 1.
	MethodsRequired int
	// Methods are the methods available to eligible users.
	Methods []string
	// Tiers are stricter rules for members of some groups.
	Tiers []Tier
}

// Tier makes the rules stricter for members of any of its groups. A tier
// can only add strictness: the effective MethodsRequired is the highest of
// the base and every matching tier, and the effective methods are those
// available in the base and in every matching tier.
type Tier struct {
	Groups []string
	// MethodsRequired; 0 keeps the base value.
	MethodsRequired int
	// Methods restricts the available methods; empty keeps them all.
	Methods []string
	// RequireOneOf: members must verify, among their methods, at least one
	// of these kinds (for example totp, webauthn). Security questions never
	// satisfy it, and with it set they do not count toward MethodsRequired
	// either. Empty requires no kind. See Decision.Remaining.
	RequireOneOf []string
}

// Subject is what the directory reported about one user.
type Subject struct {
	// MemberOf answers, for each DN from AllGroups, whether the user is a
	// member with nested groups resolved. Keys may be spelled in any way
	// NormalizeDN equates. A group with no entry is treated as unknown: the
	// decision then fails closed (see ReasonUnresolved).
	MemberOf map[string]bool
	// Privileged is the directory's own marker, e.g. AD adminCount=1.
	Privileged bool
	Disabled   bool
	// SIDs is, on Active Directory, the account's security token: its own
	// SID and the SIDs of every security group it is in at any depth, the
	// primary group included (tokenGroups). A well-known privileged SID
	// (PrivilegedSID) makes the account privileged. Nil elsewhere.
	SIDs []string
	// TokenUnread: the directory has tokens (AD) but this account's could
	// not be read. With ExcludePrivileged the decision fails closed
	// (ReasonUnresolved): whether the account is protected cannot be told.
	TokenUnread bool
}

// Decision is the outcome of Decide. MethodsRequired and Methods are set only
// when Eligible.
type Decision struct {
	Eligible bool
	Reason   string
	// By names what decided, for the audit log and `latchkey check`, never
	// for users: for a refusal the excluded group, the privileged group,
	// the privileged SID ("Domain Admins S-1-5-21-…-512"), "adminCount=1",
	// or the group whose membership is unknown; for an eligible account
	// the selected group that admitted it (empty with scope all).
	By string
	// Tiers are the indexes in Eligibility.Tiers of the tiers that apply
	// (eligible accounts only).
	Tiers           []int
	MethodsRequired int
	Methods         []string
	// RequireKinds holds one set of kinds per matching tier with
	// RequireOneOf: of each set, at least one kind must be verified, and
	// security questions do not count toward MethodsRequired. Nil when no
	// matching tier requires a kind.
	RequireKinds [][]string
}

// DefaultEligibility is the configuration default: nobody is eligible
// (scope none), privileged accounts are excluded, one e-mail code is enough.
func DefaultEligibility() Eligibility {
	return Eligibility{
		Scope:             ScopeNone,
		ExcludePrivileged: true,
		MethodsRequired:   1,
		Methods:           []string{MethodEmail},
	}
}

// AllGroups lists, once each and in their configured spelling, the group DNs
// whose membership Decide needs: the selected groups (scope selected only),
// the excluded groups, the privileged groups (when excluded) and the tiers'
// groups. With scope none it is empty, as no membership matters.
func (e Eligibility) AllGroups() []string {
	if !validScope(e.Scope) || e.Scope == ScopeNone {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(dns []string) {
		for _, dn := range dns {
			k := NormalizeDN(dn)
			if k == "" || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, dn)
		}
	}
	if e.Scope == ScopeSelected {
		add(e.Groups)
	}
	add(e.ExcludeGroups)
	if e.ExcludePrivileged {
		add(e.PrivilegedGroups)
	}
	for _, t := range e.Tiers {
		add(t.Groups)
	}
	return out
}

func validScope(s string) bool {
	return s == ScopeNone || s == ScopeSelected || s == ScopeAll
}

// membership answers "is the user in any of these groups": yes, no, or
// unknown when no group matched and at least one had no answer.
type membership int

const (
	memberNo membership = iota
	memberYes
	memberUnknown
)

type memberSet map[string]bool

func newMemberSet(m map[string]bool) memberSet {
	s := make(memberSet, len(m))
	for dn, in := range m {
		k := NormalizeDN(dn)
		s[k] = s[k] || in
	}
	return s
}

// anyOf also returns the group that answered: the first one the user is
// in, else the first one with no answer.
func (s memberSet) anyOf(dns []string) (membership, string) {
	res, by := memberNo, ""
	for _, dn := range dns {
		in, ok := s[NormalizeDN(dn)]
		switch {
		case in:
			return memberYes, dn
		case !ok && res == memberNo:
			res, by = memberUnknown, dn
		}
	}
	return res, by
}

// Decide applies the policy to one user. The checks run in a fixed order,
// and the first that refuses gives the reason: scope, disabled, excluded
// groups, privileged, selected groups, then tiers. Exclusion therefore
// always wins over inclusion, and unknown membership of a group that could
// only make things stricter refuses (ReasonUnresolved).
func (e Eligibility) Decide(in Subject) Decision {
	if !validScope(e.Scope) || e.Scope == ScopeNone {
		return Decision{Reason: ReasonScopeNone}
	}
	if in.Disabled {
		return Decision{Reason: ReasonDisabled}
	}
	m := newMemberSet(in.MemberOf)
	switch r, by := m.anyOf(e.ExcludeGroups); r {
	case memberYes:
		return Decision{Reason: ReasonExcluded, By: by}
	case memberUnknown:
		return Decision{Reason: ReasonUnresolved, By: by}
	}
	if e.ExcludePrivileged {
		if in.Privileged {
			return Decision{Reason: ReasonPrivileged, By: "adminCount=1"}
		}
		for _, sid := range in.SIDs {
			if name, ok := PrivilegedSID(sid); ok {
				return Decision{Reason: ReasonPrivileged, By: name + " " + sid}
			}
		}
		if in.TokenUnread {
			return Decision{Reason: ReasonUnresolved, By: "tokenGroups (not readable)"}
		}
		switch r, by := m.anyOf(e.PrivilegedGroups); r {
		case memberYes:
			return Decision{Reason: ReasonPrivileged, By: by}
		case memberUnknown:
			return Decision{Reason: ReasonUnresolved, By: by}
		}
	}
	var admittedBy string
	if e.Scope == ScopeSelected {
		r, by := m.anyOf(e.Groups)
		if r != memberYes {
			return Decision{Reason: ReasonNotInGroup}
		}
		admittedBy = by
	}

	required := max(e.MethodsRequired, 1)
	methods := dedupe(e.Methods)
	var kinds [][]string
	var tiers []int
	for i, t := range e.Tiers {
		switch r, by := m.anyOf(t.Groups); r {
		case memberNo:
			continue
		case memberUnknown:
			return Decision{Reason: ReasonUnresolved, By: by}
		}
		tiers = append(tiers, i)
		required = max(required, t.MethodsRequired)
		if len(t.Methods) > 0 {
			methods = slices.DeleteFunc(methods, func(x string) bool { return !slices.Contains(t.Methods, x) })
		}
		if k := strongKinds(t.RequireOneOf); len(t.RequireOneOf) > 0 {
			kinds = append(kinds, k)
		}
	}
	if len(methods) < required || !satisfiable(methods, required, kinds) {
		return Decision{Reason: ReasonNoMethods}
	}
	return Decision{Eligible: true, By: admittedBy, Tiers: tiers, MethodsRequired: required, Methods: methods, RequireKinds: kinds}
}

// dedupe returns a new slice with the first occurrence of each element, in order.
func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
