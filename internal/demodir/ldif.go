package demodir

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Attr is an attribute with its values, as written in LDIF.
type Attr struct {
	Name   string
	Values []string
}

// Mod is one modification of an LDIF "changetype: modify" record.
type Mod struct {
	Op string // "add", "delete" or "replace"
	Attr
}

// Change is one LDIF record: an entry to add (the default), a modify or a
// delete.
type Change struct {
	DN    string
	Type  string // "add", "modify" or "delete"
	Attrs []Attr // for add
	Mods  []Mod  // for modify
}

// ParseLDIF reads the LDIF subset used by the seeds and tests (RFC 2849):
// folded lines, comments, "attr:: base64" values, and add, modify (add,
// delete, replace with "-" separators) and delete records. URL values
// ("attr:< file") are refused.
func ParseLDIF(text string) ([]Change, error) {
	var out []Change
	var lines []string
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		c, err := parseRecord(lines)
		lines = lines[:0]
		if err != nil {
			return err
		}
		if c != nil {
			out = append(out, *c)
		}
		return nil
	}
	for _, raw := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(raw, "#"):
			continue
		case raw == "":
			if err := flush(); err != nil {
				return nil, err
			}
		case strings.HasPrefix(raw, " "):
			if len(lines) == 0 {
				return nil, fmt.Errorf("ldif: continuation line without a line to continue")
			}
			lines[len(lines)-1] += raw[1:]
		default:
			lines = append(lines, raw)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func parseLine(l string) (name, value string, err error) {
	i := strings.IndexByte(l, ':')
	if i <= 0 {
		if l == "-" {
			return "-", "", nil
		}
		return "", "", fmt.Errorf("ldif: line without a colon")
	}
	name, rest := l[:i], l[i+1:]
	switch {
	case strings.HasPrefix(rest, ":"):
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest[1:]))
		if err != nil {
			return "", "", fmt.Errorf("ldif: bad base64 value for %s", name)
		}
		return name, string(b), nil
	case strings.HasPrefix(rest, "<"):
		return "", "", fmt.Errorf("ldif: URL values are not supported (%s)", name)
	}
	return name, strings.TrimLeft(rest, " "), nil
}

func parseRecord(lines []string) (*Change, error) {
	name, dn, err := parseLine(lines[0])
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(name, "version") && len(lines) == 1 {
		return nil, nil
	}
	if !strings.EqualFold(name, "dn") {
		return nil, errors.New("ldif: the record does not start with a dn line")
	}
	c := &Change{DN: dn, Type: "add"}
	rest := lines[1:]
	if len(rest) > 0 {
		if n, v, err := parseLine(rest[0]); err == nil && strings.EqualFold(n, "changetype") {
			c.Type = strings.ToLower(v)
			rest = rest[1:]
		}
	}
	switch c.Type {
	case "add":
		for _, l := range rest {
			n, v, err := parseLine(l)
			if err != nil {
				return nil, err
			}
			c.Attrs = addValue(c.Attrs, n, v)
		}
	case "delete":
		if len(rest) > 0 {
			return nil, fmt.Errorf("ldif: delete record %s has attributes", dn)
		}
	case "modify":
		var cur *Mod
		for _, l := range rest {
			n, v, err := parseLine(l)
			if err != nil {
				return nil, err
			}
			switch {
			case n == "-":
				if cur != nil {
					c.Mods = append(c.Mods, *cur)
				}
				cur = nil
			case cur == nil:
				op := strings.ToLower(n)
				if op != "add" && op != "delete" && op != "replace" {
					return nil, fmt.Errorf("ldif: unknown modify operation %q", n)
				}
				cur = &Mod{Op: op, Attr: Attr{Name: v}}
			case !strings.EqualFold(n, cur.Name):
				return nil, fmt.Errorf("ldif: value for %s inside a %s of %s", n, cur.Op, cur.Name)
			default:
				cur.Values = append(cur.Values, v)
			}
		}
		if cur != nil {
			c.Mods = append(c.Mods, *cur)
		}
	default:
		return nil, fmt.Errorf("ldif: changetype %q is not supported", c.Type)
	}
	return c, nil
}

func addValue(attrs []Attr, name, v string) []Attr {
	for i := range attrs {
		if strings.EqualFold(attrs[i].Name, name) {
			attrs[i].Values = append(attrs[i].Values, v)
			return attrs
		}
	}
	return append(attrs, Attr{Name: name, Values: []string{v}})
}
