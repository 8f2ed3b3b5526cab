package directory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// listerLDIF is n users in nested groups, the shape internal/bench seeds
// (100 users per cn=bench-team-NNN, ten teams per cn=bench-dept-NN, every
// department in cn=bench-users), without passwords (hashing them is most
// of a seed's time and a listing never reads them). Every 100th user is
// disabled (the ppolicy administrative lock).
func listerLDIF(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "dn: uid=bench%05d,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: bench%05d\ncn: Bench User %d\nsn: User%d\ndisplayName: Bench User %d\n",
			i, i, i, i, i)
		if i%100 == 0 {
			b.WriteString("pwdAccountLockedTime: 000001010000Z\n")
		}
		b.WriteString("\n")
	}
	b.WriteString(dirtest.BenchGroupsLDIF(n, func(i int) string { return fmt.Sprintf("uid=bench%05d,ou=people,dc=example,dc=org", i) }))
	return b.String()
}

// BenchmarkListerOpenLDAP measures what the admin console's impact preview
// reads from slapd holding 10,000 users (plus the seeded ones) in nested
// groups: every user in pages (Users), and the users of the group that
// holds them all, three levels down (NestedMembers); and the group
// picker's search (SearchGroups). The target for the preview is
// 10,000 users in 2 s on the 2-core machine.
//
//	go test -run '^$' -bench BenchmarkListerOpenLDAP -benchtime 5x ./directory/
func BenchmarkListerOpenLDAP(b *testing.B) {
	const n = 10000
	seedStart := time.Now()
	srv := dirtest.StartOpenLDAP(b, dirtest.WithLDIF(listerLDIF(n)))
	b.Logf("seeded %d users in %s", n, time.Since(seedStart).Round(time.Millisecond))
	ctx := context.Background()
	c, err := directory.Open(ctx, srv.Config(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	all := srv.Group("bench-users")

	b.Run("Users+NestedMembers", func(b *testing.B) {
		for b.Loop() {
			users, disabled := 0, 0
			err := c.Users(ctx, func(u *directory.User) error {
				users++
				if u.Status.Disabled {
					disabled++
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			members, err := c.NestedMembers(ctx, all)
			if err != nil {
				b.Fatal(err)
			}
			if users < n || disabled < n/100 || len(members) != n {
				b.Fatalf("Users %d (%d disabled), NestedMembers %d; want at least %d (%d disabled), %d", users, disabled, len(members), n, n/100, n)
			}
		}
	})
	b.Run("Users", func(b *testing.B) {
		for b.Loop() {
			if err := c.Users(ctx, func(*directory.User) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("NestedMembers", func(b *testing.B) {
		for b.Loop() {
			if m, err := c.NestedMembers(ctx, all); err != nil || len(m) != n {
				b.Fatalf("NestedMembers = %d, %v", len(m), err)
			}
		}
	})
	b.Run("SearchGroups", func(b *testing.B) {
		for b.Loop() {
			gs, err := c.SearchGroups(ctx, "bench-dept", 20)
			if err != nil {
				b.Fatal(err)
			}
			if len(gs) != 10 || gs[0].Members != 1000 {
				b.Fatalf("SearchGroups = %d groups, first %+v", len(gs), gs[0])
			}
		}
	})
}
