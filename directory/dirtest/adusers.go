package dirtest

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory"
)

// AddADUser creates an enabled user name in OU=People of a Samba DC, with
// Password(name) and mail name@example.test, member of groups (DNs). The
// user is removed at cleanup.
func (s *Server) AddADUser(t testing.TB, name string, groups ...string) string {
	t.Helper()
	if s.Flavor != directory.ActiveDirectory {
		t.Fatal("dirtest: AddADUser is for Active Directory")
	}
	dn := s.UserDN(name)
	pw := []byte{}
	for _, r := range utf16.Encode([]rune(`"` + s.Password(name) + `"`)) {
		pw = binary.LittleEndian.AppendUint16(pw, r)
	}
	s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\nmail: %s@example.test\n"+
		"givenName: %s\nsn: Test\nunicodePwd:: %s\nuserAccountControl: 512\n",
		dn, name, name, name, base64.StdEncoding.EncodeToString(pw)))
	t.Cleanup(func() { s.Modify(t, "dn: "+dn+"\nchangetype: delete\n") })
	for _, g := range groups {
		s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n", g, dn))
	}
	return dn
}

// SetPrimaryGroup makes group (a DN) the primary group of user (a DN), as
// AD stores it: primaryGroupID is the group's RID and the group's member
// attribute does not name the user.
func (s *Server) SetPrimaryGroup(t testing.TB, user, group string) {
	t.Helper()
	conn := s.Admin(t)
	res, err := conn.Search(ldap.NewSearchRequest(group, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"objectSid", "member"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("dirtest: reading %s: %v", group, err)
	}
	sid := res.Entries[0].GetRawAttributeValue("objectSid")
	if len(sid) < 12 {
		t.Fatalf("dirtest: %s has no objectSid", group)
	}
	rid := binary.LittleEndian.Uint32(sid[len(sid)-4:])
	isMember := false
	for _, m := range res.Entries[0].GetAttributeValues("member") {
		if strings.EqualFold(m, user) {
			isMember = true
		}
	}
	if !isMember {
		s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n", group, user))
	}
	s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: primaryGroupID\nprimaryGroupID: %d\n", user, rid))
	res, err = conn.Search(ldap.NewSearchRequest(group, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"member"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("dirtest: reading %s: %v", group, err)
	}
	for _, m := range res.Entries[0].GetAttributeValues("member") {
		if strings.EqualFold(m, user) {
			s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n", group, user))
		}
	}
}
