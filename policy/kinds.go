package policy

import "slices"

// Method kinds and what a reset must prove.
//
// Security questions are knowledge anyone close to the user may have (or
// find): they are never sufficient alone (at least one other kind must be
// verified, whatever the number required), they never satisfy a tier's
// RequireOneOf, and in a tier with RequireOneOf (one that requires strong
// methods) they do not count toward MethodsRequired at all. Elsewhere they
// only ever act as an additional factor.

// kindWebAuthn (passkeys) may be named in RequireOneOf before the method
// itself is available.
const kindWebAuthn = "webauthn"

// RequirableKinds are the kinds a tier's RequireOneOf may name.
var RequirableKinds = []string{MethodEmail, MethodSMS, MethodTOTP, kindWebAuthn}

// strongKinds is a tier's RequireOneOf without security questions, once
// each: questions never count for a required kind.
func strongKinds(in []string) []string {
	out := []string{}
	for _, k := range in {
		if k != MethodQuestions && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// satisfiable reports whether the methods available can meet every
// required kind, include something other than security questions, and
// number at least required without the questions where a kind is
// required (they do not count there).
func satisfiable(methods []string, required int, kinds [][]string) bool {
	if !slices.ContainsFunc(methods, func(m string) bool { return m != MethodQuestions }) {
		return false
	}
	if countable(methods, kinds) < required {
		return false
	}
	for _, set := range kinds {
		if !slices.ContainsFunc(set, func(k string) bool { return slices.Contains(methods, k) }) {
			return false
		}
	}
	return true
}

// MissingKinds returns the first set of RequireKinds of which no kind was
// verified (nil when every set is met). verified holds the kind of each
// method proven.
func (d Decision) MissingKinds(verified []string) []string {
	for _, set := range d.RequireKinds {
		if !slices.ContainsFunc(set, func(k string) bool { return k != MethodQuestions && slices.Contains(verified, k) }) {
			return set
		}
	}
	return nil
}

// OnlyQuestions reports whether verified (the kind of each method proven)
// holds security questions and nothing else: never enough on its own.
func OnlyQuestions(verified []string) bool {
	return !slices.ContainsFunc(verified, func(k string) bool { return k != MethodQuestions })
}

// countable is how many of kinds (of methods proven, or available) count
// toward a number of methods required: all of them, but security questions
// none where a tier requires a kind (kinds not empty).
func countable(kinds []string, required [][]string) int {
	if len(required) == 0 {
		return len(kinds)
	}
	n := 0
	for _, k := range kinds {
		if k != MethodQuestions {
			n++
		}
	}
	return n
}

// Counted is how many of verified (the kind of each distinct method
// proven) count toward MethodsRequired: every one, except security
// questions when the decision requires kinds (RequireKinds): a tier that
// requires strong methods never counts questions.
func (d Decision) Counted(verified []string) int { return countable(verified, d.RequireKinds) }

// Remaining is how many more methods must be verified, given the kind of
// each distinct method proven so far: MethodsRequired less those counted
// (Counted), and at least one more while only security questions (or
// nothing) are proven or a required kind is missing.
func (d Decision) Remaining(verified []string) int {
	n := max(d.MethodsRequired, 1) - d.Counted(verified)
	if OnlyQuestions(verified) || d.MissingKinds(verified) != nil {
		n = max(n, 1)
	}
	return max(n, 0)
}
