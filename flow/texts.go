package flow

import (
	"fmt"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
)

// User-facing texts for password rules and refusals. Keyed by stable codes
// so that translations can follow.

func requirementText(code string, p map[string]int) string {
	switch code {
	case policy.ReqMinLength:
		return fmt.Sprintf("At least %d characters. A few unrelated words make a strong, memorable password.", p["min"])
	case policy.ReqMaxLength:
		return fmt.Sprintf("At most %d characters.", p["max"])
	case policy.ReqNoUsername:
		return "Must not contain your username."
	case policy.ReqNoName:
		return "Must not contain your name."
	case policy.ReqNoBannedWords:
		return "Must not contain common or banned words (such as the company name)."
	case policy.ReqNoControlCharacters:
		return "No invisible control characters."
	}
	return code
}

func violationText(code string, p map[string]int) string {
	switch code {
	case policy.CodeEmpty:
		return "Enter a new password."
	case policy.CodeTooShort:
		return fmt.Sprintf("Use at least %d characters.", p["min"])
	case policy.CodeTooLong:
		return fmt.Sprintf("Use at most %d characters.", p["max"])
	case policy.CodeContainsUsername:
		return "The password must not contain your username."
	case policy.CodeContainsName:
		return "The password must not contain your name."
	case policy.CodeBannedWord:
		return "The password contains a common or banned word."
	case policy.CodeControlCharacter, policy.CodeInvalidEncoding:
		return "The password contains characters that cannot be used."
	}
	return "The password does not meet the password policy."
}

func directoryReasonText(r directory.Reason) string {
	switch r {
	case directory.ReasonTooShort:
		return "The directory requires a longer password."
	case directory.ReasonInHistory:
		return "You have used this password before. Choose one you have not used recently."
	case directory.ReasonNotComplex:
		return "The directory requires a more complex password: mix upper and lower case letters, digits and symbols, and do not use your account name."
	case directory.ReasonTooYoung:
		return "The password was changed too recently to change it again now. Try later or contact the helpdesk."
	case directory.ReasonNotAllowed:
		return "The directory does not allow this password to be changed here. Contact the helpdesk."
	}
	return "The directory refused this password because of its password policy."
}

// directoryTooShortText is the directory's too-short refusal when its
// minimum (merged with the gateway's) is known.
func directoryTooShortText(min int) string {
	return fmt.Sprintf("The directory requires at least %d characters.", min)
}

// directoryRules are the directory's rules other than its minimum length
// (merged into the gateway's length line), for the one list a page shows.
func directoryRules(p directory.PasswordPolicy) []Violation {
	var out []Violation
	if p.Complexity {
		out = append(out, Violation{Code: "directory_complexity", Message: "It must contain three of: upper case letters, lower case letters, digits, symbols; and not your account name."})
	}
	if p.HistoryLength > 0 {
		out = append(out, Violation{Code: "directory_history", Message: fmt.Sprintf("It must differ from your last %d passwords.", p.HistoryLength)})
	}
	if p.MinAge > 0 {
		out = append(out, Violation{Code: "directory_min_age", Message: fmt.Sprintf("It cannot be changed again for %s.", p.MinAge.Round(time.Minute))})
	}
	return out
}

func directoryRuleTexts(p directory.PasswordPolicy) []string {
	var out []string
	if p.MinLength > 0 {
		out = append(out, fmt.Sprintf("The directory requires at least %d characters.", p.MinLength))
	}
	if p.Complexity {
		out = append(out, "It must contain three of: upper case letters, lower case letters, digits, symbols; and not your account name.")
	}
	if p.HistoryLength > 0 {
		out = append(out, fmt.Sprintf("It must differ from your last %d passwords.", p.HistoryLength))
	}
	if p.MinAge > 0 {
		out = append(out, fmt.Sprintf("It cannot be changed again for %s.", p.MinAge.Round(time.Minute)))
	}
	return out
}
