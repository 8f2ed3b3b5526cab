package dirtest

import (
	"fmt"
	"strings"
)

// BenchGroupsLDIF is the nested groups of n bench users, the shape
// latchkey-bench seeds and the directory's listing benchmark reads: 100
// users per team group (cn=bench-team-NNN), ten teams per department
// (cn=bench-dept-NN), every department in cn=bench-users. userDN names
// user i.
func BenchGroupsLDIF(n int, userDN func(i int) string) string {
	var b strings.Builder
	teams := (n + 99) / 100
	depts := (teams + 9) / 10
	for t := range teams {
		fmt.Fprintf(&b, "dn: cn=bench-team-%03d,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: bench-team-%03d\n", t, t)
		for i := t * 100; i < min(n, (t+1)*100); i++ {
			fmt.Fprintf(&b, "member: %s\n", userDN(i))
		}
		b.WriteString("\n")
	}
	for d := range depts {
		fmt.Fprintf(&b, "dn: cn=bench-dept-%02d,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: bench-dept-%02d\n", d, d)
		for t := d * 10; t < min(teams, (d+1)*10); t++ {
			fmt.Fprintf(&b, "member: cn=bench-team-%03d,ou=groups,dc=example,dc=org\n", t)
		}
		b.WriteString("\n")
	}
	b.WriteString("dn: cn=bench-users,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: bench-users\n")
	for d := range depts {
		fmt.Fprintf(&b, "member: cn=bench-dept-%02d,ou=groups,dc=example,dc=org\n", d)
	}
	b.WriteString("\n")
	return b.String()
}
