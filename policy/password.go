package policy

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Password rule defaults, used when the corresponding Rules field is zero.
const (
	DefaultMinLength = 12
	DefaultMaxLength = 128
)

// minTokenLength is the shortest username, name part or e-mail local part
// that a password may not contain. Shorter tokens ("al", "li") would refuse
// too many good passwords; Active Directory uses the same threshold.
const minTokenLength = 3

// Violation codes returned by Rules.Check. They are stable: templates and API
// clients key their messages on them.
const (
	// CodeEmpty: the password is empty. No other violation is reported.
	CodeEmpty = "empty"
	// CodeTooShort: fewer code points than Params["min"].
	CodeTooShort = "too_short"
	// CodeTooLong: more code points than Params["max"].
	CodeTooLong = "too_long"
	// CodeContainsUsername: contains the username (or its part before "@" or
	// after "\"), or the local part of the e-mail address.
	CodeContainsUsername = "contains_username"
	// CodeContainsName: contains a part of the display name of at least three
	// characters.
	CodeContainsName = "contains_name"
	// CodeBannedWord: contains one of the configured banned words.
	CodeBannedWord = "banned_word"
	// CodeControlCharacter: contains a control character (tab, newline, NUL...).
	CodeControlCharacter = "control_character"
	// CodeInvalidEncoding: the password is not valid UTF-8. No other
	// violation is reported.
	CodeInvalidEncoding = "invalid_encoding"
)

// Requirement codes returned by Rules.Describe.
const (
	// ReqMinLength: at least Params["min"] characters.
	ReqMinLength = "min_length"
	// ReqMaxLength: at most Params["max"] characters.
	ReqMaxLength = "max_length"
	// ReqNoUsername: must not contain the username.
	ReqNoUsername = "no_username"
	// ReqNoName: must not contain parts of the user's name.
	ReqNoName = "no_name"
	// ReqNoBannedWords: must not contain any of Params["count"] banned words.
	ReqNoBannedWords = "no_banned_words"
	// ReqNoControlCharacters: must not contain control characters.
	ReqNoControlCharacters = "no_control_characters"
)

// Rules are the gateway's own password rules. Following NIST SP 800-63B there
// are no composition rules (character classes); length, personal data and a
// banned list are what is checked. The zero value is usable: zero lengths
// mean the defaults.
type Rules struct {
	// MinLength in Unicode code points after NFC normalisation; 0 means
	// DefaultMinLength.
	MinLength int
	// MaxLength in Unicode code points after NFC normalisation; 0 means
	// DefaultMaxLength.
	MaxLength int
	// BannedWords may not appear anywhere in the password, compared
	// case-insensitively (Unicode case folding after NFKC). Empty entries are
	// ignored.
	BannedWords []string
}

// Context is what is known about the user whose password is checked. Empty
// fields are not checked.
type Context struct {
	Username    string
	DisplayName string
	Email       string
}

// Violation is one reason a password is refused. Params carries the numbers
// a message needs ("min", "max"); it never carries the password or any part
// of it.
type Violation struct {
	Code   string
	Params map[string]int
}

// Requirement is one rule to show before the user types a password.
type Requirement struct {
	Code   string
	Params map[string]int
}

func (r Rules) minLength() int {
	if r.MinLength <= 0 {
		return DefaultMinLength
	}
	return r.MinLength
}

func (r Rules) maxLength() int {
	if r.MaxLength <= 0 {
		return DefaultMaxLength
	}
	return r.MaxLength
}

// Length returns the length Rules measures: Unicode code points after NFC
// normalisation.
func Length(password string) int {
	return utf8.RuneCountInString(norm.NFC.String(password))
}

// Check returns every rule the password breaks, in a fixed order (length,
// control characters, username, name, banned words), or nil when it is
// acceptable. It is a pure function and safe for concurrent use.
func (r Rules) Check(password string, c Context) []Violation {
	if password == "" {
		return []Violation{{Code: CodeEmpty}}
	}
	if !utf8.ValidString(password) {
		return []Violation{{Code: CodeInvalidEncoding}}
	}
	var out []Violation
	nfc := norm.NFC.String(password)
	n := utf8.RuneCountInString(nfc)
	if minLen := r.minLength(); n < minLen {
		out = append(out, Violation{Code: CodeTooShort, Params: map[string]int{"min": minLen}})
	}
	if maxLen := r.maxLength(); n > maxLen {
		out = append(out, Violation{Code: CodeTooLong, Params: map[string]int{"max": maxLen}})
	}
	if strings.IndexFunc(nfc, unicode.IsControl) >= 0 {
		out = append(out, Violation{Code: CodeControlCharacter})
	}

	folded := fold(password)
	if containsAny(folded, usernameTokens(c)) {
		out = append(out, Violation{Code: CodeContainsUsername})
	}
	if containsAny(folded, nameTokens(c.DisplayName)) {
		out = append(out, Violation{Code: CodeContainsName})
	}
	for _, w := range r.BannedWords {
		if w = fold(w); w != "" && strings.Contains(folded, w) {
			out = append(out, Violation{Code: CodeBannedWord})
			break
		}
	}
	return out
}

// Describe lists the rules in the order Check reports them, so a page can
// show them before the user types.
func (r Rules) Describe() []Requirement {
	out := []Requirement{
		{Code: ReqMinLength, Params: map[string]int{"min": r.minLength()}},
		{Code: ReqMaxLength, Params: map[string]int{"max": r.maxLength()}},
		{Code: ReqNoControlCharacters},
		{Code: ReqNoUsername},
		{Code: ReqNoName},
	}
	banned := 0
	for _, w := range r.BannedWords {
		if fold(w) != "" {
			banned++
		}
	}
	if banned > 0 {
		out = append(out, Requirement{Code: ReqNoBannedWords, Params: map[string]int{"count": banned}})
	}
	return out
}

// fold makes s comparable case-insensitively: NFKC (so that full-width and
// other compatibility forms match their plain letters), then Unicode case
// folding, then NFC again because folding can denormalise.
func fold(s string) string {
	return norm.NFC.String(cases.Fold().String(norm.NFKC.String(s)))
}

func containsAny(folded string, tokens []string) bool {
	for _, t := range tokens {
		if strings.Contains(folded, t) {
			return true
		}
	}
	return false
}

// usernameTokens returns the folded forms of the username, its part before
// "@" (UPN) or after "\" (DOMAIN\user), and the e-mail local part, keeping
// those of at least minTokenLength code points.
func usernameTokens(c Context) []string {
	var raw []string
	if u := strings.TrimSpace(c.Username); u != "" {
		raw = append(raw, u)
		if i := strings.LastIndexByte(u, '\\'); i >= 0 {
			u = u[i+1:]
			raw = append(raw, u)
		}
		if i := strings.LastIndexByte(u, '@'); i >= 0 {
			raw = append(raw, u[:i])
		}
	}
	if e := strings.TrimSpace(c.Email); e != "" {
		if i := strings.LastIndexByte(e, '@'); i >= 0 {
			e = e[:i]
		}
		raw = append(raw, e)
	}
	return foldTokens(raw)
}

// nameTokens splits a display name on the delimiters Active Directory uses
// for the same check (commas, periods, dashes, underscores, number signs and
// white space) and keeps the folded parts of at least minTokenLength code
// points.
func nameTokens(displayName string) []string {
	parts := strings.FieldsFunc(displayName, func(r rune) bool {
		switch r {
		case ',', '.', '-', '_', '#', '\u2010', '\u2011', '\u2013', '\u2014':
			return true
		}
		return unicode.IsSpace(r)
	})
	return foldTokens(parts)
}

func foldTokens(raw []string) []string {
	out := make([]string, 0, len(raw))
	for _, t := range raw {
		t = fold(strings.TrimSpace(t))
		if utf8.RuneCountInString(t) >= minTokenLength {
			out = append(out, t)
		}
	}
	return out
}
