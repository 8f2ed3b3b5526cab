package config

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/latchkeyhq/latchkey/policy"
)

// Questions configures security questions (policy.questions). They are a
// method only when policy.methods lists "questions", and never sufficient
// alone.
type Questions struct {
	// List is the admin's questions users choose from.
	List []string `mapstructure:"list" json:"list"`
	// AllowCustom lets users write questions of their own too.
	AllowCustom bool `mapstructure:"allow_custom" json:"allow_custom"`
	// Required is how many questions a user answers to register.
	Required int `mapstructure:"required" json:"required"`
	// Ask is how many of them a reset asks.
	Ask int `mapstructure:"ask" json:"ask"`
}

// Limits of policy.questions.
const (
	DefaultQuestionsRequired = 3
	DefaultQuestionsAsked    = 2
	MaxQuestionsRequired     = 10
	MaxQuestionLength        = 200 // characters
)

func (c *Config) validateQuestions(ch *checker) {
	q := c.Policy.Questions
	enabled := slices.Contains(c.Policy.Methods, policy.MethodQuestions)
	okNumbers := true
	if q.Required < 1 || q.Required > MaxQuestionsRequired {
		ch.add("policy.questions.required", "must be 1-%d, got %d", MaxQuestionsRequired, q.Required)
		okNumbers = false
	}
	if q.Ask < 1 || (okNumbers && q.Ask > q.Required) {
		ch.add("policy.questions.ask", "must be 1 to policy.questions.required (%d), got %d", q.Required, q.Ask)
	}
	seen := map[string]bool{}
	for i, text := range q.List {
		key := fmt.Sprintf("policy.questions.list[%d]", i)
		t := strings.TrimSpace(text)
		n := strings.ToLower(cases.Fold().String(norm.NFKC.String(strings.Join(strings.Fields(t), " "))))
		switch {
		case t == "":
			ch.add(key, "must not be empty")
		case utf8.RuneCountInString(t) > MaxQuestionLength:
			ch.add(key, "must be at most %d characters", MaxQuestionLength)
		case seen[n]:
			ch.add(key, "is listed twice")
		}
		seen[n] = true
	}
	if enabled && okNumbers && len(q.List) < q.Required {
		ch.add("policy.questions.list", "needs at least %d questions (policy.questions.required) when policy.methods lists questions", q.Required)
	}
	for i, t := range c.Policy.Tiers {
		available := c.Policy.Methods
		if len(t.Methods) > 0 {
			available = t.Methods
		}
		met := false
		for j, k := range t.RequireOneOf {
			key := fmt.Sprintf("policy.tiers[%d].require_one_of[%d]", i, j)
			switch {
			case k == policy.MethodQuestions:
				ch.add(key, "security questions never count as a required kind")
			case !slices.Contains(policy.RequirableKinds, k):
				ch.add(key, "must be one of %s (got %q)", strings.Join(policy.RequirableKinds, ", "), truncate(k))
			case slices.Contains(available, k):
				met = true
			}
		}
		if len(t.RequireOneOf) > 0 && !met {
			ch.add(fmt.Sprintf("policy.tiers[%d].require_one_of", i), "none of these kinds is among the tier's methods: its members could never reset")
		}
	}
}
