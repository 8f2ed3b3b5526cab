package demodir

import (
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// attr is one attribute of an entry, its name as first written.
type attr struct {
	name string
	vals []string
}

// entry is one directory entry. rdns holds the normalized RDNs, leaf first.
type entry struct {
	dn    string
	rdns  []string
	attrs []*attr
}

func (e *entry) ndn() string { return strings.Join(e.rdns, ",") }

func (e *entry) get(name string) *attr {
	for _, a := range e.attrs {
		if strings.EqualFold(a.name, name) {
			return a
		}
	}
	return nil
}

func (e *entry) first(name string) string {
	if a := e.get(name); a != nil && len(a.vals) > 0 {
		return a.vals[0]
	}
	return ""
}

func (e *entry) values(name string) []string {
	if a := e.get(name); a != nil {
		return a.vals
	}
	return nil
}

// set replaces an attribute's values; no values removes it.
func (e *entry) set(name string, vals ...string) {
	for i, a := range e.attrs {
		if strings.EqualFold(a.name, name) {
			if len(vals) == 0 {
				e.attrs = append(e.attrs[:i], e.attrs[i+1:]...)
			} else {
				a.vals = append([]string(nil), vals...)
			}
			return
		}
	}
	if len(vals) > 0 {
		e.attrs = append(e.attrs, &attr{name: name, vals: append([]string(nil), vals...)})
	}
}

func (e *entry) clone() *entry {
	c := &entry{dn: e.dn, rdns: e.rdns, attrs: make([]*attr, len(e.attrs))}
	for i, a := range e.attrs {
		c.attrs[i] = &attr{name: a.name, vals: append([]string(nil), a.vals...)}
	}
	return c
}

// parseDN returns the normalized RDNs of dn, leaf first: attribute types
// and values lower-cased, values re-escaped (RFC 4514), multi-valued RDNs
// sorted, so that two spellings of one DN compare equal.
func parseDN(dn string) ([]string, error) {
	if strings.TrimSpace(dn) == "" {
		return nil, nil
	}
	p, err := ldap.ParseDN(dn)
	if err != nil {
		return nil, fmt.Errorf("invalid DN")
	}
	out := make([]string, 0, len(p.RDNs))
	for _, r := range p.RDNs {
		parts := make([]string, 0, len(r.Attributes))
		for _, a := range r.Attributes {
			parts = append(parts, strings.ToLower(a.Type)+"="+ldap.EscapeDN(strings.ToLower(a.Value)))
		}
		sortStrings(parts)
		out = append(out, strings.Join(parts, "+"))
	}
	return out, nil
}

// normDN is parseDN joined, or "" when dn does not parse.
func normDN(dn string) string {
	r, err := parseDN(dn)
	if err != nil {
		return ""
	}
	return strings.Join(r, ",")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// isSuffix reports whether base (normalized RDNs) is rdns or one of its ancestors.
func isSuffix(rdns, base []string) bool {
	if len(base) > len(rdns) {
		return false
	}
	off := len(rdns) - len(base)
	for i := range base {
		if rdns[off+i] != base[i] {
			return false
		}
	}
	return true
}

// dnValued names the attributes whose values are DNs and compare as such.
var dnValued = map[string]bool{"member": true, "uniquemember": true, "pwdpolicysubentry": true, "memberof": true,
	"owner": true, "seealso": true, "manager": true, "entrydn": true}

// operational attributes are only returned when asked for by name or "+".
var operational = map[string]bool{"entryuuid": true, "entrydn": true, "pwdchangedtime": true, "pwdaccountlockedtime": true,
	"pwdfailuretime": true, "pwdreset": true, "pwdpolicysubentry": true, "memberof": true, "createtimestamp": true,
	"modifytimestamp": true, "structuralobjectclass": true, "subschemasubentry": true, "supportedextension": true,
	"supportedcontrol": true, "supportedldapversion": true, "namingcontexts": true, "vendorname": true,
	"vendorversion": true, "supportedfeatures": true}

// hidden attributes are never returned to anyone.
var hidden = map[string]bool{"userpassword": true, "pwdhistory": true}

// valueEqual compares two values of attribute name by its matching rule:
// DNs by their normal form, everything else case-insensitively.
func valueEqual(name, a, b string) bool {
	if dnValued[strings.ToLower(name)] {
		na, nb := normDN(a), normDN(b)
		if na != "" && nb != "" {
			return na == nb
		}
	}
	return strings.EqualFold(a, b)
}

func containsValue(name string, vals []string, v string) bool {
	for _, x := range vals {
		if valueEqual(name, x, v) {
			return true
		}
	}
	return false
}
