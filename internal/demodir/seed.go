package demodir

import (
	"fmt"
	"strings"
)

// demoUsers are the people of the demo, in the order the demo lists them.
// No password contains its user's name: the gateway's own rules refuse a
// password that does (contains_username, contains_name), so a visitor who
// types the seeded password again at a reset would be refused by the
// gateway and never see the directory's history refusal.
func demoUsers() []User {
	// #nosec G101 -- the demo's throwaway accounts, printed by `latchkey demo` on purpose
	return []User{
		{Username: "alice", Password: "Apple-Demo-1!", DisplayName: "Alice Adams", Groups: []string{"staff"},
			Note: "eligible: member of staff"},
		{Username: "carol", Password: "Cedar-Demo-1!", DisplayName: "Carol Chen", Groups: []string{"engineering"},
			Note: "eligible through a nested group (engineering is in staff)"},
		{Username: "dave", Password: "Delta-Demo-1!", DisplayName: "Dave Diaz", Groups: []string{"it-staff"},
			Note: "two methods required (IT staff tier; it-staff is in staff)"},
		{Username: "erin", Password: "Ember-Demo-1!", DisplayName: "Erin Evans",
			Note: "not in an eligible group"},
		{Username: "root", Password: "Rocky-Demo-1!", DisplayName: "Rita Root", Groups: []string{"staff", "domain-admins"},
			Note: "privileged: excluded (domain-admins)"},
		{Username: "ada", Password: "Amber-Demo-1!", DisplayName: "Ada Admin", Groups: []string{"domain-admins", "sspr-admins"},
			Note: "admin console (/admin): member of sspr-admins; privileged, so self-service excludes her"},
	}
}

// demoTree is the demo directory's fixed part: the suffix, its
// organisational units and the password policies (default for people,
// service for the service account: never locked).
const demoTree = `dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example Org

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: ou=policies,dc=example,dc=org
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,dc=example,dc=org
objectClass: namedPolicy
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdCheckQuality: 2
pwdMinLength: 10
pwdInHistory: 5
pwdLockout: TRUE
pwdMaxFailure: 5
pwdLockoutDuration: 300
pwdFailureCountInterval: 300
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
pwdSafeModify: FALSE
pwdMaxAge: 0
pwdMinAge: 0

dn: cn=service,ou=policies,dc=example,dc=org
objectClass: namedPolicy
objectClass: pwdPolicy
cn: service
pwdAttribute: userPassword
pwdLockout: FALSE

`

// demoLDIF is the demo seed: the tree, the default password policy (min
// length 10, history 5, lockout after 5 wrong passwords for 5 minutes,
// failures counted over 5 minutes), the service account (never locked
// out), the people and the groups.
func demoLDIF(servicePassword string, users []User) string {
	var b strings.Builder
	b.WriteString(demoTree)
	fmt.Fprintf(&b, `dn: %s
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: latchkey
userPassword: %s
pwdPolicySubentry: cn=service,ou=policies,dc=example,dc=org

`, demoService, servicePassword)
	members := map[string][]string{}
	for _, u := range users {
		first, last, _ := strings.Cut(u.DisplayName, " ")
		fmt.Fprintf(&b, `dn: uid=%s,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: %s
cn: %s
sn: %s
givenName: %s
displayName: %s
mail: %s@example.org
userPassword: %s

`, u.Username, u.Username, u.DisplayName, last, first, u.DisplayName, u.Username, u.Password)
		for _, g := range u.Groups {
			members[g] = append(members[g], "uid="+u.Username+",ou=people,dc=example,dc=org")
		}
	}
	members["staff"] = append(members["staff"], "cn=engineering,ou=groups,dc=example,dc=org", "cn=it-staff,ou=groups,dc=example,dc=org")
	// Children before parents is not needed: member values are just DNs.
	for _, g := range []string{"staff", "engineering", "it-staff", "domain-admins", "sspr-admins"} {
		fmt.Fprintf(&b, "dn: cn=%s,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: %s\n", g, g)
		for _, m := range members[g] {
			fmt.Fprintf(&b, "member: %s\n", m)
		}
		b.WriteString("\n")
	}
	return b.String()
}
