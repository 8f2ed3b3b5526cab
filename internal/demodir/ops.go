package demodir

import (
	"crypto/tls"
	"strings"
	"time"
	"unicode/utf8"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// ---- bind ----

func (c *conn) bind(id int64, op *ber.Packet, wantPP bool) {
	// A bind, even a failed one, starts from anonymous (RFC 4511 4.2.1).
	c.role, c.bound, c.mustChange = roleAnonymous, "", false
	if len(op.Children) < 3 {
		c.result(id, appBindResponse, ldap.LDAPResultProtocolError, "decoding error")
		return
	}
	if v, _ := intOf(op.Children[0]); v != 3 {
		c.result(id, appBindResponse, ldap.LDAPResultProtocolError, "requested protocol version not allowed")
		return
	}
	name, auth := str(op.Children[1]), op.Children[2]
	if auth.ClassType != ber.ClassContext || auth.Tag != 0 {
		c.result(id, appBindResponse, ldap.LDAPResultAuthMethodNotSupported, "only simple binds are supported")
		return
	}
	code, diag, pp := c.s.authenticate(c, name, str(auth))
	c.s.log.Debug("bind", "dn", name, "result", code, "ppolicy", pp, "role", c.role.String())
	if wantPP && name != "" {
		c.result(id, appBindResponse, code, diag, ppolicyControl(pp))
		return
	}
	c.result(id, appBindResponse, code, diag)
}

// authenticate checks a simple bind like slapd with slapo-ppolicy and
// sets c's identity when it succeeds.
func (s *Server) authenticate(c *conn, name, pw string) (code int, diag string, pp int) {
	pp = ppNone
	switch {
	case name == "" && pw == "":
		return ldap.LDAPResultSuccess, "", pp // anonymous
	case pw == "":
		return ldap.LDAPResultUnwillingToPerform, "unauthenticated bind (DN with no password) disallowed", pp
	case name == "":
		return ldap.LDAPResultInvalidCredentials, "", pp
	}
	ndn := normDN(name)
	if ndn == "" {
		return ldap.LDAPResultInvalidDNSyntax, "invalid DN", pp
	}
	if ndn == s.adminN {
		if !checkHash(s.adminH, pw) {
			return ldap.LDAPResultInvalidCredentials, "", pp
		}
		c.role, c.bound = roleAdmin, ndn
		return ldap.LDAPResultSuccess, "", pp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[ndn]
	if e == nil || e.first("userPassword") == "" {
		return ldap.LDAPResultInvalidCredentials, "", pp
	}
	pol := s.policyFor(e)
	if s.lockedLocked(e, pol) {
		return ldap.LDAPResultInvalidCredentials, "", ppAccountLocked
	}
	if !checkHash(e.first("userPassword"), pw) {
		s.failLocked(e, pol)
		return ldap.LDAPResultInvalidCredentials, "", pp
	}
	e.set("pwdFailureTime")
	if s.expiredLocked(e, pol) {
		return ldap.LDAPResultInvalidCredentials, "", ppPasswordExpired
	}
	c.role, c.bound = roleUser, ndn
	if ndn == s.svcN {
		c.role = roleService
	}
	if strings.EqualFold(e.first("pwdReset"), "TRUE") {
		c.mustChange = true
		return ldap.LDAPResultSuccess, "", ppChangeAfterReset
	}
	return ldap.LDAPResultSuccess, "", pp
}

// policyFor is the ppolicy entry governing e: its pwdPolicySubentry, else
// the default policy; without either, no checks and no lockout.
func (s *Server) policyFor(e *entry) policy {
	n := s.polN
	if dn := e.first("pwdPolicySubentry"); dn != "" {
		n = normDN(dn)
	}
	if pe := s.entries[n]; pe != nil && n != "" {
		return policyFrom(pe)
	}
	return policy{allowUserChange: true}
}

// lockedLocked reports whether e is locked out; a lockout whose duration
// has run out is removed, as slapd does at the next bind.
func (s *Server) lockedLocked(e *entry, pol policy) bool {
	v := e.first("pwdAccountLockedTime")
	if v == "" {
		return false
	}
	if v == adminLocked {
		return true
	}
	t, ok := parseTime(v)
	if ok && pol.lockoutDuration > 0 && !s.now().Before(t.Add(pol.lockoutDuration)) {
		e.set("pwdAccountLockedTime")
		e.set("pwdFailureTime")
		return false
	}
	return true
}

func (s *Server) expiredLocked(e *entry, pol policy) bool {
	if pol.maxAge <= 0 {
		return false
	}
	t, ok := parseTime(e.first("pwdChangedTime"))
	return ok && s.now().After(t.Add(pol.maxAge))
}

// failLocked records a wrong password and locks e at pwdMaxFailure.
func (s *Server) failLocked(e *entry, pol policy) {
	if !pol.lockout {
		return
	}
	now := s.now()
	var keep []string
	for _, v := range e.values("pwdFailureTime") {
		if t, ok := parseTime(v); ok && (pol.failureInterval == 0 || now.Before(t.Add(pol.failureInterval))) {
			keep = append(keep, v)
		}
	}
	// Microseconds keep the values of this multi-valued attribute distinct.
	keep = append(keep, now.UTC().Format("20060102150405.000000Z"))
	e.set("pwdFailureTime", keep...)
	if pol.maxFailure > 0 && len(keep) >= pol.maxFailure {
		e.set("pwdAccountLockedTime", formatTime(now))
		s.log.Info("account locked out after too many wrong passwords", "dn", e.dn)
	}
}

// ---- search ----

func (c *conn) canRead(e *entry) bool {
	switch c.role {
	case roleAdmin, roleService:
		return true
	case roleUser:
		return e.ndn() == c.bound
	}
	return false
}

func (c *conn) search(id int64, op *ber.Packet) {
	ch := op.Children
	if len(ch) < 8 {
		c.result(id, appSearchDone, ldap.LDAPResultProtocolError, "decoding error")
		return
	}
	if c.mustChange {
		c.result(id, appSearchDone, ldap.LDAPResultInsufficientAccessRights, restrictedOperation)
		return
	}
	base := str(ch[0])
	scope, _ := intOf(ch[1])
	size, _ := intOf(ch[3])
	typesOnly, _ := ch[5].Value.(bool)
	filter := ch[6]
	var attrs []string
	for _, a := range ch[7].Children {
		attrs = append(attrs, str(a))
	}
	if base == "" && scope == ldap.ScopeBaseObject {
		dse := c.s.rootDSE()
		ok, err := match(filter, dse.values)
		if err != nil {
			c.result(id, appSearchDone, ldap.LDAPResultProtocolError, "bad search filter")
			return
		}
		if ok {
			_ = c.send(id, entryPacket(dse, attrs, typesOnly, dse.values)) // a broken connection fails the next read too
		}
		c.result(id, appSearchDone, ldap.LDAPResultSuccess, "")
		return
	}
	rdns, err := parseDN(base)
	if err != nil {
		c.result(id, appSearchDone, ldap.LDAPResultInvalidDNSyntax, "invalid DN")
		return
	}
	out, code := c.searchTree(rdns, scope, size, filter, attrs, typesOnly)
	if code == ldap.LDAPResultNoSuchObject {
		c.result(id, appSearchDone, code, "")
		return
	}
	for _, p := range out {
		if c.send(id, p) != nil {
			return
		}
	}
	c.result(id, appSearchDone, code, "")
}

// getter adds the virtual attributes entryDN and memberOf (the memberof
// overlay's view of direct groupOfNames membership). Call with s.mu held.
// searchTree finds the entries at or below the base rdns, within scope,
// that the connection may read and that match filter, at most size (0: no
// limit): the entries to send and the search's result code
// (noSuchObject for a base that is missing or, on a base search,
// unreadable).
func (c *conn) searchTree(rdns []string, scope, size int64, filter *ber.Packet, attrs []string, typesOnly bool) ([]*ber.Packet, int) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	// Like slapd, a base the caller may not read hides only itself (and
	// its existence on a base search); readable entries below it are found.
	b := s.entries[strings.Join(rdns, ",")]
	if b == nil || (scope == ldap.ScopeBaseObject && !c.canRead(b)) {
		return nil, ldap.LDAPResultNoSuchObject
	}
	var out []*ber.Packet
	for _, n := range s.order {
		e := s.entries[n]
		if !isSuffix(e.rdns, rdns) {
			continue
		}
		depth := len(e.rdns) - len(rdns)
		switch {
		case scope == ldap.ScopeBaseObject && depth != 0,
			scope == ldap.ScopeSingleLevel && depth != 1,
			scope == 3 && depth == 0: // subordinate subtree
			continue
		}
		if !c.canRead(e) {
			continue
		}
		get := s.getter(e)
		ok, err := match(filter, get)
		if err != nil {
			return nil, ldap.LDAPResultProtocolError
		}
		if !ok {
			continue
		}
		if size > 0 && int64(len(out)) >= size {
			return out, ldap.LDAPResultSizeLimitExceeded
		}
		out = append(out, entryPacket(e, attrs, typesOnly, get))
	}
	return out, ldap.LDAPResultSuccess
}

func (s *Server) getter(e *entry) getter {
	return func(name string) []string {
		switch strings.ToLower(name) {
		case "entrydn":
			return []string{e.dn}
		case "memberof":
			var out []string
			self := e.ndn()
			for _, n := range s.order {
				g := s.entries[n]
				for _, m := range g.values("member") {
					if normDN(m) == self {
						out = append(out, g.dn)
						break
					}
				}
			}
			return out
		}
		return e.values(name)
	}
}

// entryPacket builds a SearchResultEntry with the attributes asked for:
// user attributes for none or "*", operational ones by name or "+", none
// for "1.1"; userPassword and pwdHistory never.
func entryPacket(e *entry, attrs []string, typesOnly bool, get getter) *ber.Packet {
	all, op := len(attrs) == 0, false
	names := map[string]bool{}
	for _, a := range attrs {
		switch a {
		case "*":
			all = true
		case "+":
			op = true
		case "1.1":
		default:
			names[strings.ToLower(attrType(a))] = true
		}
	}
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchEntry, nil, "SearchResultEntry")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, e.dn, "objectName"))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	add := func(name string, vals []string) {
		if len(vals) == 0 {
			return
		}
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PartialAttribute")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		if !typesOnly {
			for _, v := range vals {
				set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "value"))
			}
		}
		a.AppendChild(set)
		list.AppendChild(a)
	}
	for _, a := range e.attrs {
		ln := strings.ToLower(a.name)
		switch {
		case hidden[ln]:
		case operational[ln]:
			if op || names[ln] {
				add(a.name, a.vals)
			}
		case all || names[ln]:
			add(a.name, a.vals)
		}
	}
	if e.dn != "" {
		if op || names["entrydn"] {
			add("entryDN", get("entryDN"))
		}
		if op || names["memberof"] {
			add("memberOf", get("memberOf"))
		}
	}
	p.AppendChild(list)
	return p
}

func (s *Server) rootDSE() *entry {
	return &entry{attrs: []*attr{
		{name: "objectClass", vals: []string{"top", "OpenLDAProotDSE"}},
		{name: "namingContexts", vals: []string{s.baseDN}},
		{name: "supportedLDAPVersion", vals: []string{"3"}},
		{name: "supportedExtension", vals: []string{oidStartTLS, oidPasswordModify, oidWhoAmI}},
		{name: "supportedControl", vals: []string{oidPPolicy, oidManageDsaIT}},
		{name: "vendorName", vals: []string{"Latchkey"}},
		{name: "vendorVersion", vals: []string{"embedded demo directory"}},
	}}
}

// ---- modify, add, delete ----

func (c *conn) modify(id int64, op *ber.Packet) {
	ch := op.Children
	if len(ch) < 2 {
		c.result(id, appModifyResponse, ldap.LDAPResultProtocolError, "decoding error")
		return
	}
	if c.mustChange {
		c.result(id, appModifyResponse, ldap.LDAPResultInsufficientAccessRights, restrictedOperation)
		return
	}
	var mods []Mod
	for _, chg := range ch[1].Children {
		if len(chg.Children) < 2 || len(chg.Children[1].Children) < 2 {
			c.result(id, appModifyResponse, ldap.LDAPResultProtocolError, "decoding error")
			return
		}
		n, _ := intOf(chg.Children[0])
		opName := map[int64]string{0: "add", 1: "delete", 2: "replace"}[n]
		if opName == "" {
			c.result(id, appModifyResponse, ldap.LDAPResultUnwillingToPerform, "modify operation not supported")
			return
		}
		m := Mod{Op: opName, Attr: Attr{Name: str(chg.Children[1].Children[0])}}
		for _, v := range chg.Children[1].Children[1].Children {
			m.Values = append(m.Values, str(v))
		}
		mods = append(mods, m)
	}
	dn := str(ch[0])
	code, diag := c.s.modifyEntry(c.role, c.bound, dn, mods)
	c.s.log.Debug("modify", "dn", dn, "result", code, "role", c.role.String())
	c.result(id, appModifyResponse, code, diag)
}

// modifyEntry applies mods atomically with the rights of (actor, bound):
// the administrator may change anything; the service account only the
// lockout and must-change attributes; a user only its own userPassword,
// under its password policy.
func (s *Server) modifyEntry(actor role, bound, dn string, mods []Mod) (int, string) {
	ndn := normDN(dn)
	if ndn == "" {
		return ldap.LDAPResultInvalidDNSyntax, "invalid DN"
	}
	if actor == roleAnonymous {
		return ldap.LDAPResultInsufficientAccessRights, "modifications require authentication"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[ndn]
	if e == nil {
		return ldap.LDAPResultNoSuchObject, ""
	}
	w := e.clone()
	for _, m := range mods {
		ln := strings.ToLower(attrType(m.Name))
		switch actor {
		case roleService:
			if ln != "pwdaccountlockedtime" && ln != "pwdreset" {
				return ldap.LDAPResultInsufficientAccessRights, "no write access to " + m.Name
			}
		case roleUser:
			if ndn != bound || ln != "userpassword" {
				return ldap.LDAPResultInsufficientAccessRights, "no write access to " + m.Name
			}
		}
		if ln == "userpassword" {
			if actor != roleAdmin {
				// A user's own change: the old value may be deleted (it must
				// be right); the new one goes through the policy.
				switch {
				case m.Op == "delete" && len(m.Values) == 1:
					if !checkHash(w.first("userPassword"), m.Values[0]) {
						return ldap.LDAPResultNoSuchAttribute, ""
					}
				case (m.Op == "add" || m.Op == "replace") && len(m.Values) == 1:
					if code, diag, _ := s.setPasswordLocked(w, m.Values[0], actor, true); code != ldap.LDAPResultSuccess {
						return code, diag
					}
				default:
					return ldap.LDAPResultUnwillingToPerform, "exactly one new password is required"
				}
				continue
			}
			if m.Op == "delete" {
				w.set(m.Name)
				continue
			}
			hashed := make([]string, len(m.Values))
			for i, v := range m.Values {
				hashed[i] = hashPassword(v)
			}
			m.Values = hashed
			w.set("pwdChangedTime", formatTime(s.now()))
			m.Op = "replace" // one password: hashes never compare equal anyway
		}
		if code, diag := applyMod(w, m); code != ldap.LDAPResultSuccess {
			return code, diag
		}
	}
	if e.first("pwdAccountLockedTime") != "" && w.first("pwdAccountLockedTime") == "" {
		w.set("pwdFailureTime") // unlocking also forgets the failures (slapo-ppolicy)
	}
	s.entries[ndn] = w
	return ldap.LDAPResultSuccess, ""
}

func applyMod(w *entry, m Mod) (int, string) {
	cur := w.values(m.Name)
	switch m.Op {
	case "add":
		if len(m.Values) == 0 {
			return ldap.LDAPResultProtocolError, "no values to add"
		}
		next := append([]string(nil), cur...)
		for _, v := range m.Values {
			if containsValue(m.Name, next, v) {
				return ldap.LDAPResultAttributeOrValueExists, "value already exists"
			}
			next = append(next, v)
		}
		w.set(m.Name, next...)
	case "delete":
		if len(cur) == 0 {
			return ldap.LDAPResultNoSuchAttribute, ""
		}
		if len(m.Values) == 0 {
			w.set(m.Name)
			return ldap.LDAPResultSuccess, ""
		}
		next := append([]string(nil), cur...)
		for _, v := range m.Values {
			i := -1
			for j, x := range next {
				if valueEqual(m.Name, x, v) {
					i = j
					break
				}
			}
			if i < 0 {
				return ldap.LDAPResultNoSuchAttribute, ""
			}
			next = append(next[:i], next[i+1:]...)
		}
		w.set(m.Name, next...)
	case "replace":
		w.set(m.Name, m.Values...)
	default:
		return ldap.LDAPResultUnwillingToPerform, "modify operation not supported"
	}
	return ldap.LDAPResultSuccess, ""
}

func (c *conn) add(id int64, op *ber.Packet) {
	ch := op.Children
	if len(ch) < 2 {
		c.result(id, appAddResponse, ldap.LDAPResultProtocolError, "decoding error")
		return
	}
	if c.role != roleAdmin || c.mustChange {
		c.result(id, appAddResponse, ldap.LDAPResultInsufficientAccessRights, "no write access to parent")
		return
	}
	var attrs []Attr
	for _, a := range ch[1].Children {
		if len(a.Children) < 2 {
			c.result(id, appAddResponse, ldap.LDAPResultProtocolError, "decoding error")
			return
		}
		at := Attr{Name: str(a.Children[0])}
		for _, v := range a.Children[1].Children {
			at.Values = append(at.Values, str(v))
		}
		attrs = append(attrs, at)
	}
	code, diag := c.s.addEntry(str(ch[0]), attrs)
	c.result(id, appAddResponse, code, diag)
}

// addEntry adds an entry (as the administrator): cleartext userPassword
// values are hashed, entryUUID and pwdChangedTime filled in.
func (s *Server) addEntry(dn string, attrs []Attr) (int, string) {
	rdns, err := parseDN(dn)
	if err != nil || len(rdns) == 0 {
		return ldap.LDAPResultInvalidDNSyntax, "invalid DN"
	}
	baseRDNs, _ := parseDN(s.baseDN)
	if !isSuffix(rdns, baseRDNs) {
		return ldap.LDAPResultNoSuchObject, "not under the naming context"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ndn := strings.Join(rdns, ",")
	if s.entries[ndn] != nil {
		return ldap.LDAPResultEntryAlreadyExists, ""
	}
	if len(rdns) > len(baseRDNs) && s.entries[strings.Join(rdns[1:], ",")] == nil {
		return ldap.LDAPResultNoSuchObject, "parent does not exist"
	}
	e := &entry{dn: dn, rdns: rdns}
	for _, a := range attrs {
		vals := a.Values
		if strings.EqualFold(a.Name, "userPassword") {
			vals = make([]string, len(a.Values))
			for i, v := range a.Values {
				vals[i] = hashPassword(v)
			}
			e.set("pwdChangedTime", formatTime(s.now()))
		}
		next := append(e.values(a.Name), vals...)
		e.set(a.Name, next...)
	}
	if e.first("entryUUID") == "" {
		e.set("entryUUID", randomUUID())
	}
	s.entries[ndn] = e
	s.order = append(s.order, ndn)
	return ldap.LDAPResultSuccess, ""
}

func (c *conn) del(id int64, op *ber.Packet) {
	if c.role != roleAdmin || c.mustChange {
		c.result(id, appDelResponse, ldap.LDAPResultInsufficientAccessRights, "no write access to parent")
		return
	}
	code, diag := c.s.deleteEntry(str(op))
	c.result(id, appDelResponse, code, diag)
}

func (s *Server) deleteEntry(dn string) (int, string) {
	rdns, err := parseDN(dn)
	if err != nil {
		return ldap.LDAPResultInvalidDNSyntax, "invalid DN"
	}
	ndn := strings.Join(rdns, ",")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[ndn] == nil {
		return ldap.LDAPResultNoSuchObject, ""
	}
	for _, n := range s.order {
		if e := s.entries[n]; len(e.rdns) == len(rdns)+1 && isSuffix(e.rdns, rdns) {
			return ldap.LDAPResultNotAllowedOnNonLeaf, "subordinate objects must be deleted first"
		}
	}
	delete(s.entries, ndn)
	for i, n := range s.order {
		if n == ndn {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	return ldap.LDAPResultSuccess, ""
}

// apply runs one LDIF change as the administrator (the seed).
func (s *Server) apply(c Change) (int, string) {
	switch c.Type {
	case "add":
		return s.addEntry(c.DN, c.Attrs)
	case "modify":
		return s.modifyEntry(roleAdmin, s.adminN, c.DN, c.Mods)
	case "delete":
		return s.deleteEntry(c.DN)
	}
	return ldap.LDAPResultUnwillingToPerform, "unsupported change type"
}

// ---- extended operations ----

func extResponse(code int, diag, name string, value *string) *ber.Packet {
	p := ldapResult(appExtResponse, code, diag)
	if name != "" {
		p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, name, "responseName"))
	}
	if value != nil {
		p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 11, *value, "responseValue"))
	}
	return p
}

func (c *conn) extended(id int64, op *ber.Packet, wantPP bool) bool {
	if len(op.Children) < 1 {
		return c.send(id, extResponse(ldap.LDAPResultProtocolError, "decoding error", "", nil)) == nil
	}
	name := str(op.Children[0])
	var value *ber.Packet
	if len(op.Children) > 1 && op.Children[1].Tag == 1 {
		value = op.Children[1]
	}
	switch name {
	case oidStartTLS:
		if c.tls {
			return c.send(id, extResponse(ldap.LDAPResultOperationsError, "TLS already started", oidStartTLS, nil)) == nil
		}
		if err := c.send(id, extResponse(ldap.LDAPResultSuccess, "", oidStartTLS, nil)); err != nil {
			return false
		}
		tc := tls.Server(c.nc, c.s.tls)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second)) // else the handshake fails
		if err := tc.Handshake(); err != nil {
			c.s.log.Debug("StartTLS handshake failed", "error", err.Error())
			return false
		}
		_ = tc.SetDeadline(time.Time{})
		c.s.mu.Lock()
		c.nc = tc
		c.s.mu.Unlock()
		c.tls = true
	case oidWhoAmI:
		v := ""
		if c.bound != "" {
			v = "dn:" + c.bound
		}
		return c.send(id, extResponse(ldap.LDAPResultSuccess, "", "", &v)) == nil
	case oidPasswordModify:
		code, diag, pp := c.passwordModify(value)
		var ctrls []*ber.Packet
		if wantPP && pp != ppNone {
			ctrls = append(ctrls, ppolicyControl(pp))
		}
		return c.send(id, extResponse(code, diag, "", nil), ctrls...) == nil
	default:
		return c.send(id, extResponse(ldap.LDAPResultProtocolError, "unsupported extended operation", "", nil)) == nil
	}
	return true
}

// passwordModify is RFC 3062 as slapd does it, ppolicy included.
func (c *conn) passwordModify(value *ber.Packet) (code int, diag string, pp int) {
	pp = ppNone
	if c.role == roleAnonymous {
		return ldap.LDAPResultUnwillingToPerform, "only authenticated users may change passwords", pp
	}
	var target, oldPW, newPW string
	if value != nil {
		seq, err := ber.DecodePacketErr(value.Data.Bytes())
		if err != nil {
			return ldap.LDAPResultProtocolError, "decoding error", pp
		}
		for _, f := range seq.Children {
			switch f.Tag {
			case 0:
				target = str(f)
			case 1:
				oldPW = str(f)
			case 2:
				newPW = str(f)
			}
		}
	}
	tn := c.bound
	if target != "" {
		if tn = normDN(target); tn == "" {
			return ldap.LDAPResultInvalidDNSyntax, "invalid DN", pp
		}
	}
	self := tn == c.bound
	s := c.s
	defer func() {
		s.log.Debug("password modify", "dn", target, "self", self, "result", code, "ppolicy", pp, "role", c.role.String())
	}()
	if c.mustChange && !self {
		return ldap.LDAPResultInsufficientAccessRights, restrictedOperation, pp
	}
	if newPW == "" {
		return ldap.LDAPResultUnwillingToPerform, "password generation is not supported", pp
	}
	if tn == s.adminN {
		return ldap.LDAPResultUnwillingToPerform, "the administrator's password cannot be changed", pp
	}
	if c.role == roleUser && !self {
		return ldap.LDAPResultInsufficientAccessRights, "no write access to userPassword", pp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[tn]
	if e == nil {
		return ldap.LDAPResultNoSuchObject, "", pp
	}
	if oldPW != "" && !checkHash(e.first("userPassword"), oldPW) {
		return ldap.LDAPResultUnwillingToPerform, "unwilling to verify old password", pp
	}
	w := e.clone()
	code, diag, pp = s.setPasswordLocked(w, newPW, c.role, self)
	if code == ldap.LDAPResultSuccess {
		s.entries[tn] = w
		if self {
			c.mustChange = false
		}
	}
	return code, diag, pp
}

// setPasswordLocked sets e's password after the checks of its ppolicy
// (skipped for the administrator, like slapd's rootdn) and keeps the
// ppolicy state: history, pwdChangedTime, failures, lockout, pwdReset.
// Like slapd 2.5 (checked against dirtest's slapd), any successful change
// removes pwdAccountLockedTime, the administrative lock 000001010000Z
// ("disabled") included: callers that must not enable a disabled account
// have to check before they reset.
func (s *Server) setPasswordLocked(e *entry, newPW string, actor role, self bool) (int, string, int) {
	pol := s.policyFor(e)
	now := s.now()
	if actor != roleAdmin {
		if self && !pol.allowUserChange {
			return ldap.LDAPResultInsufficientAccessRights, "User alteration of password is not allowed", ppModNotAllowed
		}
		if self && pol.minAge > 0 {
			if t, ok := parseTime(e.first("pwdChangedTime")); ok && now.Before(t.Add(pol.minAge)) {
				return ldap.LDAPResultConstraintViolation, "Password is too young to change", ppTooYoung
			}
		}
		if pol.checkQuality > 0 && utf8.RuneCountInString(newPW) < pol.minLength {
			return ldap.LDAPResultConstraintViolation, "Password fails quality checking policy", ppTooShort
		}
		if pol.inHistory > 0 {
			if checkHash(e.first("userPassword"), newPW) {
				return ldap.LDAPResultConstraintViolation, "Password is not being changed from existing value", ppInHistory
			}
			for _, h := range e.values("pwdHistory") {
				if checkHash(h, newPW) {
					return ldap.LDAPResultConstraintViolation, "Password is in history of old passwords", ppInHistory
				}
			}
		}
	}
	var hist []string
	if pol.inHistory > 0 {
		hist = append(hist, e.values("pwdHistory")...)
		if old := e.first("userPassword"); old != "" {
			hist = append(hist, old)
		}
		if len(hist) > pol.inHistory {
			hist = hist[len(hist)-pol.inHistory:]
		}
	}
	e.set("pwdHistory", hist...)
	e.set("userPassword", hashPassword(newPW))
	e.set("pwdChangedTime", formatTime(now))
	e.set("pwdFailureTime")
	e.set("pwdAccountLockedTime")
	if actor == roleAdmin && !self && pol.mustChange {
		e.set("pwdReset", "TRUE")
	} else {
		e.set("pwdReset")
	}
	return ldap.LDAPResultSuccess, "", ppNone
}
