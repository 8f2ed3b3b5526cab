package demodir

import (
	"errors"
	"strconv"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// Filter choices (RFC 4511 4.5.1).
const (
	filterAnd        = 0
	filterOr         = 1
	filterNot        = 2
	filterEquality   = 3
	filterSubstrings = 4
	filterGreater    = 5
	filterLess       = 6
	filterPresent    = 7
	filterApprox     = 8
	filterExtensible = 9
)

var errFilter = errors.New("malformed filter")

// getter returns the values of an attribute of the entry being tested.
type getter func(name string) []string

// match evaluates a BER-encoded filter. Values arrive unescaped on the
// wire, so "*", "(" and "\" in an equality assertion are plain characters.
// Undefined (unknown choices, extensible matches) counts as false, as does
// anything on userPassword.
func match(f *ber.Packet, get getter) (bool, error) {
	if f == nil || f.ClassType != ber.ClassContext {
		return false, errFilter
	}
	switch f.Tag {
	case filterAnd:
		for _, c := range f.Children {
			ok, err := match(c, get)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case filterOr:
		for _, c := range f.Children {
			ok, err := match(c, get)
			if err != nil {
				return false, err
			}
			if ok {
				return true, nil
			}
		}
		return false, nil
	case filterNot:
		if len(f.Children) != 1 {
			return false, errFilter
		}
		ok, err := match(f.Children[0], get)
		return !ok && err == nil, err
	case filterPresent:
		name := attrType(f.Data.String())
		if hidden[strings.ToLower(name)] {
			return false, nil
		}
		return len(get(name)) > 0, nil
	case filterEquality, filterApprox, filterGreater, filterLess:
		return matchValue(f, get)
	case filterSubstrings:
		if len(f.Children) != 2 {
			return false, errFilter
		}
		name := attrType(str(f.Children[0]))
		if hidden[strings.ToLower(name)] {
			return false, nil
		}
		for _, v := range get(name) {
			if substrings(strings.ToLower(v), f.Children[1].Children) {
				return true, nil
			}
		}
		return false, nil
	case filterExtensible:
		return false, nil
	}
	return false, errFilter
}

// matchValue is match for an equality, approximate, greater-or-equal or
// less-or-equal filter.
func matchValue(f *ber.Packet, get getter) (bool, error) {
	if len(f.Children) != 2 {
		return false, errFilter
	}
	name := attrType(str(f.Children[0]))
	want := str(f.Children[1])
	if hidden[strings.ToLower(name)] {
		return false, nil
	}
	for _, v := range get(name) {
		switch f.Tag {
		case filterGreater:
			if compare(v, want) >= 0 {
				return true, nil
			}
		case filterLess:
			if compare(v, want) <= 0 {
				return true, nil
			}
		default:
			if valueEqual(name, v, want) {
				return true, nil
			}
		}
	}
	return false, nil
}

func substrings(v string, parts []*ber.Packet) bool {
	for i, p := range parts {
		s := strings.ToLower(str(p))
		switch p.Tag {
		case 0: // initial
			if i != 0 || !strings.HasPrefix(v, s) {
				return false
			}
			v = v[len(s):]
		case 1: // any
			j := strings.Index(v, s)
			if j < 0 {
				return false
			}
			v = v[j+len(s):]
		case 2: // final
			if i != len(parts)-1 || !strings.HasSuffix(v, s) {
				return false
			}
			v = ""
		default:
			return false
		}
	}
	return true
}

// compare orders integers numerically and anything else case-insensitively.
func compare(a, b string) int {
	if x, err := strconv.ParseInt(a, 10, 64); err == nil {
		if y, err := strconv.ParseInt(b, 10, 64); err == nil {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

// attrType drops attribute options ("cn;lang-en" is cn).
func attrType(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		return s[:i]
	}
	return s
}

// str is the content of a primitive packet.
func str(p *ber.Packet) string {
	if p == nil || p.Data == nil {
		return ""
	}
	return p.Data.String()
}
