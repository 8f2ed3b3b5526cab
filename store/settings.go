package store

import (
	"fmt"
	"unicode/utf8"
)

// checkSave checks SaveSettings' arguments.
func checkSave(prev int, s StoredSettings) error {
	switch {
	case prev < 0:
		return fmt.Errorf("%w: save settings: negative version", ErrInvalid)
	case len(s.Body) == 0:
		return fmt.Errorf("%w: save settings: empty body", ErrInvalid)
	case !utf8.Valid(s.Body):
		return fmt.Errorf("%w: save settings: body not UTF-8", ErrInvalid)
	}
	return nil
}

// prefixEnd returns the least string greater, in byte order, than every
// string that starts with prefix (ok false when there is none: prefix is
// empty or all U+10FFFF). So the strings with the prefix are exactly those
// in [prefix, end): the last rune that can grow is incremented and what
// follows it dropped. A valid UTF-8 end is what PostgreSQL text needs, and
// UTF-8's byte order is its rune order. ErrInvalid if prefix is not UTF-8.
func prefixEnd(prefix string) (end string, ok bool, err error) {
	if !utf8.ValidString(prefix) {
		return "", false, fmt.Errorf("%w: list audit: type prefix not UTF-8", ErrInvalid)
	}
	for prefix != "" {
		r, n := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-n]
		switch r {
		case utf8.MaxRune:
			continue
		case 0xD7FF: // the surrogates are not runes
			r = 0xE000
		default:
			r++
		}
		return prefix + string(r), true, nil
	}
	return "", false, nil
}
