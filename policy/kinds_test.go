package policy_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/latchkeyhq/latchkey/policy"
)

// TestTierRequiresKinds: a tier's require_one_of reaches the decision of
// its members only, one set per tier, without security questions; a tier
// whose kinds no available method has (or that leaves only questions)
// makes its members ineligible rather than stuck.
func TestTierRequiresKinds(t *testing.T) {
	t.Parallel()
	base := policy.Eligibility{
		Scope: policy.ScopeAll, MethodsRequired: 1, Methods: []string{"email", "sms", "totp", "questions"},
		Tiers: []policy.Tier{
			{Groups: []string{it}, RequireOneOf: []string{"totp", "webauthn"}},
			{Groups: []string{vip}, RequireOneOf: []string{"sms", "questions", "sms"}},
		},
	}
	tests := []struct {
		name string
		e    policy.Eligibility
		in   []string
		want [][]string
		ok   bool
	}{
		{"no tier: no kinds", base, nil, nil, true},
		{"it staff: totp or webauthn", base, []string{it}, [][]string{{"totp", "webauthn"}}, true},
		{"questions never count, duplicates once", base, []string{vip}, [][]string{{"sms"}}, true},
		{"two tiers: both sets", base, []string{it, vip}, [][]string{{"totp", "webauthn"}, {"sms"}}, true},
		{"required kind not available", policy.Eligibility{Scope: "all", Methods: []string{"email", "sms"},
			Tiers: []policy.Tier{{Groups: []string{it}, RequireOneOf: []string{"totp", "webauthn"}}}}, []string{it}, nil, false},
		{"only questions required", policy.Eligibility{Scope: "all", Methods: []string{"email", "questions"},
			Tiers: []policy.Tier{{Groups: []string{it}, RequireOneOf: []string{"questions"}}}}, []string{it}, nil, false},
		{"tier leaves only questions", policy.Eligibility{Scope: "all", Methods: []string{"email", "questions"},
			Tiers: []policy.Tier{{Groups: []string{it}, Methods: []string{"questions"}}}}, []string{it}, nil, false},
		{"two required of totp and questions: questions do not count", policy.Eligibility{Scope: "all", Methods: []string{"totp", "questions"},
			Tiers: []policy.Tier{{Groups: []string{it}, MethodsRequired: 2, RequireOneOf: []string{"totp"}}}}, []string{it}, nil, false},
		{"two required of email, totp and questions", policy.Eligibility{Scope: "all", Methods: []string{"email", "totp", "questions"},
			Tiers: []policy.Tier{{Groups: []string{it}, MethodsRequired: 2, RequireOneOf: []string{"totp"}}}}, []string{it}, [][]string{{"totp"}}, true},
		{"two required of totp and questions without a kind", policy.Eligibility{Scope: "all", Methods: []string{"totp", "questions"},
			Tiers: []policy.Tier{{Groups: []string{it}, MethodsRequired: 2}}}, []string{it}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.e.Decide(policy.Subject{MemberOf: func() map[string]bool {
				m := map[string]bool{}
				for _, g := range tt.e.AllGroups() {
					m[g] = slices.Contains(tt.in, g)
				}
				return m
			}()})
			if d.Eligible != tt.ok || !reflect.DeepEqual(d.RequireKinds, tt.want) {
				t.Fatalf("Decide() = %+v, want eligible %v with kinds %v", d, tt.ok, tt.want)
			}
			if !tt.ok && d.Reason != policy.ReasonNoMethods {
				t.Fatalf("reason %q", d.Reason)
			}
		})
	}
}

// TestRemaining: what is left to verify, given the kinds proven.
func TestRemaining(t *testing.T) {
	t.Parallel()
	one := policy.Decision{Eligible: true, MethodsRequired: 1}
	two := policy.Decision{Eligible: true, MethodsRequired: 2}
	strong := policy.Decision{Eligible: true, MethodsRequired: 2, RequireKinds: [][]string{{"totp", "webauthn"}}}
	strongOne := policy.Decision{Eligible: true, MethodsRequired: 1, RequireKinds: [][]string{{"totp"}}}
	tests := []struct {
		name     string
		d        policy.Decision
		verified []string
		want     int
		missing  []string
	}{
		{"nothing yet", one, nil, 1, nil},
		{"one email is one", one, []string{"email"}, 0, nil},
		{"questions alone are never enough", one, []string{"questions"}, 1, nil},
		{"questions with email", one, []string{"questions", "email"}, 0, nil},
		{"two: questions are a second factor", two, []string{"email", "questions"}, 0, nil},
		{"two: questions alone", two, []string{"questions"}, 1, nil},
		{"tier: email and sms refused", strong, []string{"email", "sms"}, 1, []string{"totp", "webauthn"}},
		{"tier: email and totp accepted", strong, []string{"email", "totp"}, 0, nil},
		{"tier: questions do not stand in for totp", strong, []string{"email", "questions"}, 1, []string{"totp", "webauthn"}},
		{"tier: questions never count toward the number", strong, []string{"totp", "questions"}, 1, nil},
		{"tier: totp, questions and email", strong, []string{"totp", "questions", "email"}, 0, nil},
		{"one-method tier: totp and questions", strongOne, []string{"totp", "questions"}, 0, nil},
		{"one-method tier: email is not totp", strongOne, []string{"email"}, 1, []string{"totp"}},
		{"one-method tier: totp", strongOne, []string{"totp"}, 0, nil},
		{"webauthn counts", strong, []string{"webauthn", "sms"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.d.Remaining(tt.verified); got != tt.want {
				t.Errorf("Remaining(%v) = %d, want %d", tt.verified, got, tt.want)
			}
			if got := tt.d.MissingKinds(tt.verified); !slices.Equal(got, tt.missing) {
				t.Errorf("MissingKinds(%v) = %v, want %v", tt.verified, got, tt.missing)
			}
		})
	}
	if !policy.OnlyQuestions([]string{"questions"}) || policy.OnlyQuestions([]string{"questions", "sms"}) {
		t.Error("OnlyQuestions")
	}
	if two.Counted([]string{"email", "questions"}) != 2 || strong.Counted([]string{"totp", "questions"}) != 1 {
		t.Error("Counted")
	}
}
