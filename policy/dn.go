package policy

import (
	"errors"
	"strings"
)

// NormalizeDN returns the form in which Latchkey compares group DNs: white
// space around the separators ",", "+" and "=" and at both ends removed,
// then lower-cased. Escaped characters ("\,", "\ ", "\2C") are kept as
// written, apart from case, so "CN=IT Staff , OU=Groups,DC=Example,DC=Org"
// and "cn=it staff,ou=groups,dc=example,dc=org" compare equal.
//
// It does not decode hex escapes or attribute OIDs: "cn=a\2cb" and
// "cn=a\,b" are different to it, though an LDAP server treats them as one.
// The comparison is case-insensitive because the naming attributes used for
// groups (cn, ou, dc, o) match case-insensitively in both OpenLDAP and AD.
func NormalizeDN(dn string) string {
	var b strings.Builder
	b.Grow(len(dn))
	pending := 0     // unescaped spaces seen since the last kept character
	afterSep := true // at the start, or just after a separator
	for i := 0; i < len(dn); i++ {
		c := dn[i]
		switch {
		case c == '\\' && i+1 < len(dn):
			writeSpaces(&b, pending)
			pending = 0
			b.WriteByte(c)
			i++
			b.WriteByte(dn[i])
			afterSep = false
		case c == ' ':
			if !afterSep {
				pending++
			}
		case c == ',' || c == '+' || c == '=':
			pending = 0
			b.WriteByte(c)
			afterSep = true
		default:
			writeSpaces(&b, pending)
			pending = 0
			b.WriteByte(c)
			afterSep = false
		}
	}
	return strings.ToLower(b.String())
}

func writeSpaces(b *strings.Builder, n int) {
	for range n {
		b.WriteByte(' ')
	}
}

// ErrInvalidDN is wrapped by every error CheckDN returns.
var ErrInvalidDN = errors.New("invalid DN")

// CheckDN reports whether dn is a syntactically valid distinguished name
// (RFC 4514): one or more RDNs separated by ",", each one or more
// "type=value" pairs joined by "+", where type is a name (cn, ou,
// msDS-Foo) or a dotted OID and value is non-empty with the special
// characters escaped. White space around separators is tolerated. The error
// never quotes the DN.
func CheckDN(dn string) error {
	if strings.TrimSpace(dn) == "" {
		return dnError("empty")
	}
	for rdn := range splitUnescaped(dn, ',') {
		if strings.TrimSpace(rdn) == "" {
			return dnError("empty RDN")
		}
		for ava := range splitUnescaped(rdn, '+') {
			typ, val, ok := cutUnescaped(ava, '=')
			if !ok {
				return dnError(`RDN without "="`)
			}
			if !validAttrType(strings.TrimSpace(typ)) {
				return dnError("invalid attribute type")
			}
			if err := checkDNValue(strings.TrimLeft(val, " ")); err != nil {
				return err
			}
		}
	}
	return nil
}

func dnError(msg string) error {
	return &dnErr{msg: msg}
}

type dnErr struct{ msg string }

func (e *dnErr) Error() string { return "invalid DN: " + e.msg }
func (e *dnErr) Unwrap() error { return ErrInvalidDN }

// splitUnescaped yields the parts of s between unescaped sep bytes.
func splitUnescaped(s string, sep byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		start := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case sep:
				if !yield(s[start:i]) {
					return
				}
				start = i + 1
			}
		}
		yield(s[start:])
	}
}

func cutUnescaped(s string, sep byte) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func validAttrType(t string) bool {
	if t == "" {
		return false
	}
	if isDigit(t[0]) { // numericoid: number *( "." number )
		for part := range strings.SplitSeq(t, ".") {
			if part == "" || strings.TrimFunc(part, func(r rune) bool { return r >= '0' && r <= '9' }) != "" {
				return false
			}
			if len(part) > 1 && part[0] == '0' {
				return false
			}
		}
		return true
	}
	if !isAlpha(t[0]) { // keystring: ALPHA *( ALPHA / DIGIT / "-" )
		return false
	}
	for i := 1; i < len(t); i++ {
		if !isAlpha(t[i]) && !isDigit(t[i]) && t[i] != '-' {
			return false
		}
	}
	return true
}

// checkDNValue checks an attribute value with leading spaces already removed.
// A trailing unescaped space is tolerated (it is insignificant around a
// separator), as is a "#" hex string.
func checkDNValue(v string) error {
	if strings.TrimRight(v, " ") == "" {
		return dnError("empty attribute value")
	}
	if v[0] == '#' {
		h := strings.TrimRight(v[1:], " ")
		if h == "" || len(h)%2 != 0 || strings.TrimFunc(h, isHexRune) != "" {
			return dnError("invalid hex string value")
		}
		return nil
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i+1 >= len(v) {
				return dnError("dangling escape")
			}
			n := v[i+1]
			if strings.IndexByte(` "#+,;<=>\`, n) >= 0 {
				i++
				continue
			}
			if i+2 < len(v) && isHex(n) && isHex(v[i+2]) {
				i += 2
				continue
			}
			return dnError("invalid escape")
		case '"', ';', '<', '>', 0:
			return dnError("unescaped special character in value")
		}
	}
	return nil
}

func isAlpha(c byte) bool   { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isHex(c byte) bool     { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
func isHexRune(r rune) bool { return r < 0x80 && isHex(byte(r)) } // #nosec G115 -- r < 0x80 checked first
