package policy

import "slices"

// Method kinds and what a reset must prove.
//
// Security questions are knowledge anyone close to the user may have (or
// find): they are never sufficient alone (at least one other kind must be
// verified, whatever the number required) and they never satisfy a tier's
// RequireOneOf. They only ever act as an additional factor.

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
// required kind and include something other than security questions.
func satisfiable(methods []string, kinds [][]string) bool {
	if !slices.ContainsFunc(methods, func(m string) bool { return m != MethodQuestions }) {
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

// Remaining is how many more methods must be verified, given the kind of
// each distinct method proven so far: MethodsRequired less those proven,
// and at least one more while only security questions (or nothing) are
// proven or a required kind is missing.
func (d Decision) Remaining(verified []string) int {
	n := max(d.MethodsRequired, 1) - len(verified)
	if OnlyQuestions(verified) || d.MissingKinds(verified) != nil {
		n = max(n, 1)
	}
	return max(n, 0)
}
