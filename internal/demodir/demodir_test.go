package demodir_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/internal/demodir"
	"github.com/latchkeyhq/latchkey/policy"
)

func start(t *testing.T) *demodir.Server {
	t.Helper()
	s, err := demodir.Start(context.Background(), demodir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, s *demodir.Server) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: s.RootCAs(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func userDN(name string) string { return "uid=" + ldap.EscapeDN(name) + ",ou=people,dc=example,dc=org" }

func password(t *testing.T, s *demodir.Server, name string) string {
	t.Helper()
	for _, u := range s.Users() {
		if u.Username == name {
			return u.Password
		}
	}
	t.Fatalf("no demo user %s", name)
	return ""
}

func wantCode(t *testing.T, err error, code uint16) {
	t.Helper()
	if !ldap.IsErrorWithCode(err, code) {
		t.Fatalf("err = %v, want LDAP result %d", err, code)
	}
}

// ppErr is the ppolicy error of a bind result, or of a failed operation's
// response controls; -1 when there is none.
func ppErr(ctrls []ldap.Control, err error) int {
	var le *ldap.Error
	if errors.As(err, &le) && le.Packet != nil && len(le.Packet.Children) > 2 {
		for _, c := range le.Packet.Children[2].Children {
			if dc, derr := ldap.DecodeControl(c); derr == nil {
				ctrls = append(ctrls, dc)
			}
		}
	}
	if pp, ok := ldap.FindControl(ctrls, ldap.ControlTypeBeheraPasswordPolicy).(*ldap.ControlBeheraPasswordPolicy); ok {
		return int(pp.Error)
	}
	return -1
}

func pwModify(c *ldap.Conn, dn, oldPW, newPW string) error {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PasswdModifyRequestValue")
	if dn != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, dn, "userIdentity"))
	}
	if oldPW != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, oldPW, "oldPasswd"))
	}
	seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, newPW, "newPasswd"))
	req := ldap.NewExtendedRequest("1.3.6.1.4.1.4203.1.11.1", seq)
	req.Controls = []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}
	_, err := c.Extended(req)
	return err
}

func TestRootDSEAndAnonymous(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)",
		[]string{"supportedExtension", "supportedControl", "namingContexts", "vendorName"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("RootDSE: %v", err)
	}
	e := res.Entries[0]
	for attr, want := range map[string]string{"supportedExtension": "1.3.6.1.4.1.4203.1.11.1", "supportedControl": "1.3.6.1.4.1.42.2.27.8.5.1",
		"namingContexts": "dc=example,dc=org"} {
		if !strings.Contains(strings.Join(e.GetAttributeValues(attr), " "), want) {
			t.Errorf("%s = %v, want %s", attr, e.GetAttributeValues(attr), want)
		}
	}
	// Anonymous sees nothing below the RootDSE.
	res, err = c.Search(ldap.NewSearchRequest(s.BaseDN(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(uid=*)", nil, nil))
	if err == nil && len(res.Entries) > 0 {
		t.Fatalf("anonymous search found %d entries", len(res.Entries))
	}
	// An unauthenticated bind (DN, no password) is refused, not anonymous.
	wantCode(t, c.UnauthenticatedBind(userDN("alice")), ldap.LDAPResultUnwillingToPerform)
}

func TestBindsAndAccess(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	if err := c.Bind(userDN("alice"), password(t, s, "alice")); err != nil {
		t.Fatal(err)
	}
	// a user reads only its own entry
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"uid"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("uid") != "alice" {
		t.Fatalf("alice's search: %v %v", err, res)
	}
	wantCode(t, c.Bind(userDN("alice"), "wrong-password"), ldap.LDAPResultInvalidCredentials)
	wantCode(t, c.Bind(userDN("nobody"), "whatever1!"), ldap.LDAPResultInvalidCredentials)
	// the service account reads everything but never a password
	if err := c.Bind(s.ServiceDN(), s.ServicePassword()); err != nil {
		t.Fatal(err)
	}
	res, err = c.Search(ldap.NewSearchRequest(s.BaseDN(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)",
		[]string{"*", "+"}, nil))
	if err != nil || len(res.Entries) != len(s.Users()) {
		t.Fatalf("service search: %v, %d entries", err, len(res.Entries))
	}
	for _, e := range res.Entries {
		if e.GetAttributeValue("entryUUID") == "" || e.GetAttributeValue("mail") == "" {
			t.Errorf("%s lacks entryUUID or mail", e.DN)
		}
		if len(e.GetAttributeValues("userPassword")) > 0 || len(e.GetAttributeValues("pwdHistory")) > 0 {
			t.Errorf("%s shows a password", e.DN)
		}
	}
	// ...and may not write other attributes
	m := ldap.NewModifyRequest(userDN("erin"), nil)
	m.Replace("mail", []string{"x@example.org"})
	wantCode(t, c.Modify(m), ldap.LDAPResultInsufficientAccessRights)
	// StartTLS on the ldap:// port
	p, err := ldap.DialURL(s.StartTLSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.StartTLS(&tls.Config{RootCAs: s.RootCAs(), ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Bind(userDN("carol"), password(t, s, "carol")); err != nil {
		t.Fatal(err)
	}
}

func TestLockout(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	pw := password(t, s, "erin")
	for i := 0; i < 5; i++ {
		wantCode(t, c.Bind(userDN("erin"), "Wrong-Guess-1!"), ldap.LDAPResultInvalidCredentials)
	}
	res, err := c.SimpleBind(ldap.NewSimpleBindRequest(userDN("erin"), pw, []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}))
	wantCode(t, err, ldap.LDAPResultInvalidCredentials)
	var ctrls []ldap.Control
	if res != nil {
		ctrls = res.Controls
	}
	if pp := ppErr(ctrls, err); pp != 1 {
		t.Fatalf("ppolicy error %d, want accountLocked (1)", pp)
	}
	if s.CheckPassword("erin", pw) {
		t.Fatal("CheckPassword true for a locked account")
	}
	// the service account sees the lock and clears it
	if err := c.Bind(s.ServiceDN(), s.ServicePassword()); err != nil {
		t.Fatal(err)
	}
	r, err := c.Search(ldap.NewSearchRequest(userDN("erin"), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(pwdAccountLockedTime=*)", []string{"pwdAccountLockedTime"}, nil))
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("locked entry not found: %v", err)
	}
	m := ldap.NewModifyRequest(userDN("erin"), nil)
	m.Delete("pwdAccountLockedTime", nil)
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(userDN("erin"), pw); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	// four wrong passwords and a right one: the count starts again
	for i := 0; i < 4; i++ {
		c.Bind(userDN("erin"), "Wrong-Guess-2!")
	}
	if err := c.Bind(userDN("erin"), pw); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		c.Bind(userDN("erin"), "Wrong-Guess-3!")
	}
	if !s.CheckPassword("erin", pw) {
		t.Fatal("locked before the fifth failure in a row")
	}
}

func TestPasswordModifyPolicy(t *testing.T) {
	s := start(t)
	svc := dial(t, s)
	if err := svc.Bind(s.ServiceDN(), s.ServicePassword()); err != nil {
		t.Fatal(err)
	}
	dn := userDN("dave")
	err := pwModify(svc, dn, "", "Sh0rt-ish") // 9 characters, pwdMinLength 10
	wantCode(t, err, ldap.LDAPResultConstraintViolation)
	if pp := ppErr(nil, err); pp != 6 {
		t.Fatalf("short: ppolicy error %d, want passwordTooShort (6)", pp)
	}
	err = pwModify(svc, dn, "", password(t, s, "dave"))
	wantCode(t, err, ldap.LDAPResultConstraintViolation)
	if pp := ppErr(nil, err); pp != 8 {
		t.Fatalf("same: ppolicy error %d, want passwordInHistory (8)", pp)
	}
	// after seven resets the current password and the five before it are
	// refused (pwdInHistory 5), the first one is allowed again
	pws := []string{"Dave-Hist-1!", "Dave-Hist-2!", "Dave-Hist-3!", "Dave-Hist-4!", "Dave-Hist-5!", "Dave-Hist-6!", "Dave-Hist-7!"}
	for _, p := range pws {
		if err := pwModify(svc, dn, "", p); err != nil {
			t.Fatalf("reset to %s: %v", p, err)
		}
	}
	for _, p := range pws[1:] {
		if pp := ppErr(nil, pwModify(svc, dn, "", p)); pp != 8 {
			t.Fatalf("%s: ppolicy error %d, want 8", p, pp)
		}
	}
	if err := pwModify(svc, dn, "", pws[0]); err != nil {
		t.Fatalf("a password older than the history: %v", err)
	}
	if !s.CheckPassword("dave", pws[0]) || s.CheckPassword("dave", pws[6]) {
		t.Fatal("the reset did not take")
	}
	// a user changes only its own password, with the right old one
	u := dial(t, s)
	if err := u.Bind(userDN("carol"), password(t, s, "carol")); err != nil {
		t.Fatal(err)
	}
	wantCode(t, pwModify(u, dn, "", "Carol-Took-1!"), ldap.LDAPResultInsufficientAccessRights)
	wantCode(t, pwModify(u, userDN("carol"), "Not-Her-Pass1!", "Carol-New-1!"), ldap.LDAPResultUnwillingToPerform)
	if err := pwModify(u, userDN("carol"), password(t, s, "carol"), "Carol-New-1!"); err != nil {
		t.Fatal(err)
	}
	if !s.CheckPassword("carol", "Carol-New-1!") {
		t.Fatal("change did not take")
	}
	// the administrator (rootdn) is not held to the policy
	a := dial(t, s)
	if err := a.Bind(s.AdminDN(), s.AdminPassword()); err != nil {
		t.Fatal(err)
	}
	if err := pwModify(a, dn, "", "short"); err != nil {
		t.Fatalf("admin reset: %v", err)
	}
}

func TestFilters(t *testing.T) {
	s, err := demodir.Start(context.Background(), demodir.Options{Seed: `dn: dc=example,dc=org
objectClass: dcObject
dc: example

dn: uid=d*v(e)\5C,dc=example,dc=org
objectClass: inetOrgPerson
uid: d*v(e)\
sn: Special

dn: uid=dave,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
sn: Diaz
employeeNumber: 42

dn: uid=jos\C3\A9,dc=example,dc=org
objectClass: inetOrgPerson
uid:: am9zw6k=
sn: Nunez
`, AdminPassword: "Admin-Pass-1!"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := dial(t, s)
	if err := c.Bind(s.AdminDN(), "Admin-Pass-1!"); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"(uid=" + ldap.EscapeFilter(`d*v(e)\`) + ")": {`d*v(e)\`},
		"(uid=d*)":     {`d*v(e)\`, "dave"},
		"(uid=d\\2a*)": {`d*v(e)\`},
		"(uid=DAVE)":   {"dave"},
		"(uid=" + ldap.EscapeFilter("JOSÉ") + ")": {"josé"},
		"(uid=*v*)": {`d*v(e)\`, "dave"},
		"(uid=d*e)": {"dave"},
		"(&(objectClass=inetOrgPerson)(!(sn=Diaz)))": {`d*v(e)\`, "josé"},
		"(|(sn=nunez)(employeeNumber=42))":           {"dave", "josé"},
		"(employeeNumber>=40)":                       {"dave"},
		"(employeeNumber<=40)":                       {},
		"(employeeNumber=*)":                         {"dave"},
		"(userPassword=*)":                           {},
		"(uid=dav)":                                  {},
		"(uid=alice)(uid=*)":                         nil, // not a filter: refused client-side
	}
	for f, want := range cases {
		res, err := c.Search(ldap.NewSearchRequest(s.BaseDN(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, f, []string{"uid"}, nil))
		if want == nil {
			if err == nil {
				t.Errorf("%s: accepted", f)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var got []string
		for _, e := range res.Entries {
			got = append(got, e.GetAttributeValue("uid"))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	// size limit
	_, err = c.Search(ldap.NewSearchRequest(s.BaseDN(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false, "(uid=*)", []string{"1.1"}, nil))
	wantCode(t, err, ldap.LDAPResultSizeLimitExceeded)
}

func TestNestedGroupsSeed(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	if err := c.Bind(s.ServiceDN(), s.ServicePassword()); err != nil {
		t.Fatal(err)
	}
	groupsOf := func(dn string) []string {
		res, err := c.Search(ldap.NewSearchRequest(s.BaseDN(), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(member="+ldap.EscapeFilter(dn)+")", []string{"cn"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range res.Entries {
			out = append(out, e.GetAttributeValue("cn"))
		}
		return out
	}
	for _, u := range s.Users() {
		if got := strings.Join(groupsOf(userDN(u.Username)), ","); got != strings.Join(u.Groups, ",") {
			t.Errorf("%s in %q, want %q", u.Username, got, u.Groups)
		}
		if !s.CheckPassword(u.Username, u.Password) || u.Note == "" || u.DisplayName == "" {
			t.Errorf("%+v", u)
		}
	}
	if got := strings.Join(groupsOf(strings.ToUpper(s.GroupDN("engineering"))), ","); got != "staff" {
		t.Fatalf("engineering in %q", got)
	}
}

func TestConcurrentAndClose(t *testing.T) {
	s := start(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ldap.DialURL(s.URL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: s.RootCAs(), ServerName: "localhost"}))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			errs <- c.Bind(userDN("alice"), password(t, s, "alice"))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ldap.DialURL(s.URL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: s.RootCAs(), ServerName: "localhost"})); err == nil {
		t.Fatal("still listening after Close")
	}
}

func TestParseLDIF(t *testing.T) {
	ch, err := demodir.ParseLDIF("# c\ndn: cn=a,dc=x\nobjectClass: top\ndescription: long\n  line\ncn:: w6k=\n\ndn: cn=a,dc=x\nchangetype: modify\nadd: member\nmember: cn=b\nmember: cn=c\n-\ndelete: cn\n\ndn: cn=a,dc=x\nchangetype: delete\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 3 || ch[0].Attrs[1].Values[0] != "long line" || ch[0].Attrs[2].Values[0] != "é" ||
		len(ch[1].Mods) != 2 || len(ch[1].Mods[0].Values) != 2 || ch[1].Mods[1].Op != "delete" || ch[2].Type != "delete" {
		t.Fatalf("%+v", ch)
	}
	if _, err := demodir.ParseLDIF("dn: cn=a\nchangetype: modrdn\n"); err == nil {
		t.Fatal("modrdn accepted")
	}
}

// A reset clears every lock, the administrative one too, as slapd does.
func TestResetClearsAdministrativeLock(t *testing.T) {
	s := start(t)
	a := dial(t, s)
	if err := a.Bind(s.AdminDN(), s.AdminPassword()); err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest(userDN("erin"), nil)
	m.Add("pwdAccountLockedTime", []string{"000001010000Z"})
	if err := a.Modify(m); err != nil {
		t.Fatal(err)
	}
	if s.CheckPassword("erin", password(t, s, "erin")) {
		t.Fatal("administratively locked erin can bind")
	}
	svc := dial(t, s)
	if err := svc.Bind(s.ServiceDN(), s.ServicePassword()); err != nil {
		t.Fatal(err)
	}
	if err := pwModify(svc, userDN("erin"), "", "Erin-Reset-1!"); err != nil {
		t.Fatal(err)
	}
	if !s.CheckPassword("erin", "Erin-Reset-1!") {
		t.Fatal("still locked after a reset")
	}
}

// The demo's seeded passwords pass the gateway's own rules as `latchkey
// demo` configures them (minimum 8, the user's names refused), so that a
// visitor who types one again at a reset reaches the directory's history
// check instead of the gateway's username rule.
func TestSeedPasswordsPassGatewayRules(t *testing.T) {
	s := start(t)
	rules := policy.Rules{MinLength: 8}
	for _, u := range s.Users() {
		c := policy.Context{Username: u.Username, DisplayName: u.DisplayName, Email: u.Username + "@example.org"}
		if v := rules.Check(u.Password, c); v != nil {
			t.Errorf("%s's seeded password breaks the gateway's rules: %v", u.Username, v)
		}
	}
}
