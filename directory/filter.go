package directory

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// Placeholder is replaced by the escaped username in the configured filter.
const Placeholder = "{username}"

// maxUsernameBytes bounds what may be searched for; longer input names no one.
const maxUsernameBytes = 256

// BuildFilter puts username into template at every {username}, escaped once
// (RFC 4515). It is the only place a user-supplied value enters a filter.
// It returns ErrNotFound for input that cannot name an account (empty,
// invalid UTF-8, too long, control characters) and an error when the
// template itself is invalid.
//
// Control characters are refused rather than escaped: Samba compares values
// as C strings, so an escaped NUL (alice\00) truncates the value and
// "alice\x00anything" would find alice, one more spelling of an account.
func BuildFilter(template, username string) (string, error) {
	if !plausibleName(username) {
		return "", newErr("lookup", ErrNotFound)
	}
	if !strings.Contains(template, Placeholder) {
		return "", fmt.Errorf("directory: user filter has no %s placeholder", Placeholder)
	}
	f := strings.ReplaceAll(template, Placeholder, ldap.EscapeFilter(username))
	if _, err := ldap.CompileFilter(f); err != nil {
		return "", fmt.Errorf("directory: user filter does not compile")
	}
	return f, nil
}

// ValidateFilterTemplate checks a configured user filter: parenthesised, at
// least one placeholder, and it compiles once a value is substituted.
func ValidateFilterTemplate(template string) error {
	t := strings.TrimSpace(template)
	if !strings.HasPrefix(t, "(") || !strings.HasSuffix(t, ")") {
		return fmt.Errorf("filter must be enclosed in parentheses")
	}
	if !strings.Contains(t, Placeholder) {
		return fmt.Errorf("filter must contain %s", Placeholder)
	}
	if _, err := ldap.CompileFilter(strings.ReplaceAll(t, Placeholder, "x")); err != nil {
		return fmt.Errorf("filter does not compile")
	}
	return nil
}

func plausibleName(s string) bool {
	if s == "" || len(s) > maxUsernameBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
