package directory_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/policy"
)

// listUsers collects what Users hands out, by normalized DN, failing on a
// DN handed out twice.
// membersAgree checks that NestedMembers of g names exactly the accounts
// of all that Membership (on AD the token) says are in g, and returns it.
func membersAgree(t *testing.T, l directory.Lister, d directory.Directory, all map[string]*directory.User, g string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	members, err := l.NestedMembers(ctx, g)
	if err != nil {
		t.Fatalf("NestedMembers(%s): %v", g, err)
	}
	for dn, u := range all {
		m, err := d.Membership(ctx, u, []string{g})
		if err != nil {
			t.Fatalf("Membership(%s): %v", u.DN, err)
		}
		if in, ok := m.MemberOf[g]; !ok || in != members[dn] {
			t.Errorf("%s in %s: NestedMembers says %v, Membership %v (known %v)", u.DN, g, members[dn], in, ok)
		}
	}
	return members
}

func listUsers(t *testing.T, l directory.Lister) map[string]*directory.User {
	t.Helper()
	out := map[string]*directory.User{}
	err := l.Users(context.Background(), func(u *directory.User) error {
		k := policy.NormalizeDN(u.DN)
		if out[k] != nil {
			t.Errorf("Users handed out %s twice", u.DN)
		}
		out[k] = u
		return nil
	})
	if err != nil {
		t.Fatalf("Users: %v", err)
	}
	return out
}

func dnSet(dns ...string) map[string]bool {
	m := map[string]bool{}
	for _, dn := range dns {
		m[policy.NormalizeDN(dn)] = true
	}
	return m
}

// testLister is the conformance suite's part for directory.Lister: the
// same answers on slapd, Samba AD, the embedded directory and Memory.
func testLister(t *testing.T, srv *dirtest.Server, d directory.Directory) {
	ctx := context.Background()
	l, ok := d.(directory.Lister)
	if !ok {
		t.Fatalf("%T does not implement directory.Lister", d)
	}
	isAD := srv.Flavor == directory.ActiveDirectory
	client, _ := d.(*directory.Client)
	seeded := append(append([]string(nil), dirtest.People...), srv.SpecialUser, srv.UnicodeUser)
	if isAD {
		seeded = append(seeded, "Administrator")
	}

	t.Run("users", func(t *testing.T) {
		all := listUsers(t, l)
		for _, name := range seeded {
			want := lookup(t, d, name)
			got := all[policy.NormalizeDN(want.DN)]
			if got == nil {
				t.Errorf("Users did not hand out %s (%s)", name, want.DN)
				continue
			}
			if got.ID != want.ID || got.Username != want.Username || got.DisplayName != want.DisplayName ||
				got.Status.Disabled != want.Status.Disabled || got.Status.Privileged != want.Status.Privileged {
				t.Errorf("Users gave %s as %+v, Lookup as %+v", name, *got, *want)
			}
			if got.Mail != "" || got.Status.Locked || !got.Status.PasswordChanged.IsZero() {
				t.Errorf("Users filled more than it says for %s: %+v", name, *got)
			}
		}
		if ivan := all[policy.NormalizeDN(srv.UserDN("ivan"))]; ivan == nil || !ivan.Status.Disabled {
			t.Errorf("ivan (disabled) listed as %+v", ivan)
		}
		if alice := all[policy.NormalizeDN(srv.UserDN("alice"))]; alice == nil || alice.Status.Disabled {
			t.Errorf("alice listed as %+v", alice)
		}
		if isAD {
			// the account Samba provisions with adminCount=1, as Lookup reads it
			if a := all[policy.NormalizeDN(srv.AdminDN)]; a == nil || !a.Status.Privileged {
				t.Errorf("Administrator listed as %+v, want Privileged (adminCount=1)", a)
			}
		}

		// fn's error stops the listing and comes back as is
		stop := errors.New("enough")
		if client != nil {
			directory.SetPageSize(client, 2)
			defer directory.SetPageSize(client, 0)
		}
		calls := 0
		err := l.Users(ctx, func(*directory.User) error {
			calls++
			if calls == 3 {
				return stop
			}
			return nil
		})
		if err != stop || calls != 3 {
			t.Fatalf("Users with fn failing at the 3rd user: err %v after %d calls, want %v after 3", err, calls, stop)
		}
		// the connection whose search was dropped still serves
		if again := listUsers(t, l); len(again) != len(all) {
			t.Fatalf("after a stopped listing Users gave %d users, before %d", len(again), len(all))
		}
	})

	t.Run("users in small pages", func(t *testing.T) {
		if client == nil {
			t.Skip("paging is LDAP's")
		}
		want := listUsers(t, l)
		for _, size := range []int{1, 2, 3, 7} {
			c := open(t, srv.Config())
			directory.SetPageSize(c, size)
			got := listUsers(t, c)
			if len(want) <= size {
				t.Fatalf("only %d users: pages of %d are not several", len(want), size)
			}
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
				t.Fatalf("pages of %d: %d users, want the %d of one default page", size, len(got), len(want))
			}
		}
	})

	t.Run("nested members", func(t *testing.T) {
		u := srv.UserDN
		cases := map[string]map[string]bool{
			"staff":       dnSet(u("alice"), u("bob"), u("carol")),
			"engineering": dnSet(u("bob"), u("carol")),
			"sspr-admins": dnSet(u("alice")),
			"cycle-a":     dnSet(u("judy")),
			"cycle-b":     dnSet(u("judy")),
		}
		if !isAD {
			cases["unique-staff"] = dnSet(u("alice"), u("bob"), u("carol")) // uniqueMember -> staff -> engineering
		}
		for name, want := range cases {
			got, err := l.NestedMembers(ctx, srv.Group(name))
			if err != nil {
				t.Fatalf("NestedMembers(%s): %v", name, err)
			}
			if !maps.Equal(got, want) {
				t.Errorf("NestedMembers(%s) = %v, want %v", name, got, want)
			}
		}
		// DNs are compared case-insensitively
		if got, err := l.NestedMembers(ctx, strings.ToUpper(srv.Group("engineering"))); err != nil || len(got) != 2 {
			t.Errorf("NestedMembers(upper-case engineering) = %v, %v", got, err)
		}
		staff := srv.Group("staff")
		missing := strings.Replace(strings.Replace(staff, "staff", "nosuchgroup", 1), "Staff", "NoSuchGroup", 1)
		for _, g := range []string{missing, u("alice"), "not a DN", ""} {
			got, err := l.NestedMembers(ctx, g)
			wantErr(t, err, directory.ErrNotFound)
			if got != nil {
				t.Errorf("NestedMembers(%q) = %v with the error", g, got)
			}
		}
	})

	t.Run("agrees with Membership", func(t *testing.T) {
		groups := []string{srv.Group("staff"), srv.Group("engineering"), srv.Group("sspr-admins"), srv.Group("cycle-a"), srv.Group("cycle-b")}
		if !isAD {
			groups = append(groups, srv.Group("unique-staff"))
		}
		all := listUsers(t, l)
		for _, g := range groups {
			membersAgree(t, l, d, all, g)
		}
	})

	t.Run("nesting bound", func(t *testing.T) {
		if client == nil || isAD {
			t.Skip("the walk's bound is OpenLDAP's (AD resolves nesting itself)")
		}
		cfg := srv.Config()
		cfg.MaxGroupDepth = 1
		c := open(t, cfg)
		got, err := c.NestedMembers(ctx, srv.Group("staff"))
		if err != nil {
			t.Fatal(err)
		}
		if want := dnSet(srv.UserDN("alice")); !maps.Equal(got, want) {
			t.Fatalf("staff with depth 1 = %v, want only its direct user %v", got, want)
		}
	})

	t.Run("search groups", func(t *testing.T) {
		name := func(n string) string {
			if isAD {
				return map[string]string{"staff": "Staff", "unique-staff": "", "cycle-a": "Cycle-A", "cycle-b": "Cycle-B"}[n]
			}
			return n
		}
		want := []directory.Group{{DN: srv.Group("staff"), Name: name("staff"), Members: 3}}
		if !isAD {
			want = append(want, directory.Group{DN: srv.Group("unique-staff"), Name: "unique-staff", Members: 3})
		}
		checkGroups(t, l, "STAF", 10, want)
		checkGroups(t, l, "cycle-", 10, []directory.Group{
			{DN: srv.Group("cycle-a"), Name: name("cycle-a"), Members: 1},
			{DN: srv.Group("cycle-b"), Name: name("cycle-b"), Members: 1}})
		checkGroups(t, l, "cycle-", 1, []directory.Group{{DN: srv.Group("cycle-a"), Name: name("cycle-a"), Members: 1}})
		// filter metacharacters are a name's characters, escaped once: no
		// match and no error
		for _, q := range []string{"*)(", "*", `staff\`, "staff)(cn=*", "\x00", strings.Repeat("a", 300)} {
			checkGroups(t, l, q, 10, nil)
		}
		checkGroups(t, l, "staff", 0, nil)
		// "" lists groups by name, the first limit of them
		every, err := l.SearchGroups(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(every) < 5 || !slices.IsSortedFunc(every, func(a, b directory.Group) int {
			return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		}) {
			t.Fatalf("SearchGroups(\"\") = %v", every)
		}
		checkGroups(t, l, "", 2, every[:2])
	})
}

// checkGroups checks SearchGroups(query, limit) against want (DNs compared
// normalized).
func checkGroups(t *testing.T, l directory.Lister, query string, limit int, want []directory.Group) {
	t.Helper()
	got, err := l.SearchGroups(context.Background(), query, limit)
	if err != nil {
		t.Fatalf("SearchGroups(%q, %d): %v", query, limit, err)
	}
	norm := func(gs []directory.Group) []directory.Group {
		out := []directory.Group{}
		for _, g := range gs {
			g.DN = policy.NormalizeDN(g.DN)
			out = append(out, g)
		}
		return out
	}
	if !slices.Equal(norm(got), norm(want)) {
		t.Errorf("SearchGroups(%q, %d) = %+v, want %+v", query, limit, got, want)
	}
}

// TestListerManyUsersOpenLDAP: 1,200 users more than the seed, so that
// Users at its default page size goes over several pages and past slapd's
// default size limit for a paged search's total (500, which the test
// slapd lifts for the service account, as a production slapd needs too);
// the bench's nested groups are walked three levels down.
func TestListerManyUsersOpenLDAP(t *testing.T) {
	const n = 1200
	srv := dirtest.StartOpenLDAP(t, dirtest.WithLDIF(listerLDIF(n)))
	c := open(t, srv.Config())
	ctx := context.Background()
	all := listUsers(t, c)
	bench, disabled := 0, 0
	for _, u := range all {
		if strings.HasPrefix(u.Username, "bench") {
			bench++
			if u.Status.Disabled {
				disabled++
			}
		}
	}
	if bench != n || disabled != n/100 {
		t.Fatalf("Users listed %d bench users, %d disabled; want %d, %d", bench, disabled, n, n/100)
	}
	members, err := c.NestedMembers(ctx, srv.Group("bench-users"))
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != n {
		t.Fatalf("NestedMembers(bench-users) = %d users, want %d", len(members), n)
	}
	for dn := range members {
		if all[dn] == nil {
			t.Fatalf("NestedMembers gave %s, which Users did not", dn)
		}
	}
	gs, err := c.SearchGroups(ctx, "bench-dept", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].Name != "bench-dept-00" || gs[0].Members != 1000 || gs[1].Members != 200 {
		t.Fatalf("SearchGroups(bench-dept) = %+v", gs)
	}
}

// TestUsersNotRepeatedAfterFailover: the server dies in the middle of a
// listing, after some users were handed out. Reads are retried on the
// next server, but a listing is not started over there (fn would see
// the first users twice): it is ErrUnavailable, and fn saw each user once.
func TestUsersNotRepeatedAfterFailover(t *testing.T) {
	prov := dirtest.StartOpenLDAP(t, dirtest.AsProvider())
	repl := dirtest.StartReplica(t, prov)
	cfg := prov.Config()
	cfg.URLs = []string{prov.LDAPSURL, repl.LDAPSURL}
	c := open(t, cfg)
	directory.SetPageSize(c, 2)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := dirtest.Connected(portOf(t, prov.LDAPSURL)); err != nil || !ok {
		t.Fatalf("the client is not connected to the provider (%v)", err)
	}
	seen := map[string]int{}
	err := c.Users(ctx, func(u *directory.User) error {
		seen[u.DN]++
		if len(seen) == 3 && seen[u.DN] == 1 {
			prov.Stop(t) // between the second page and the third
		}
		return nil
	})
	wantErr(t, err, directory.ErrUnavailable)
	for dn, k := range seen {
		if k != 1 {
			t.Errorf("fn saw %s %d times", dn, k)
		}
	}
	if len(seen) < 3 {
		t.Fatalf("fn saw %d users", len(seen))
	}
	// the next listing runs on the replica, whole
	if got := listUsers(t, c); len(got) <= 3 {
		t.Fatalf("Users on the replica: %d users", len(got))
	}
}

// TestADNestedMembersPrimaryGroup, on a real Samba AD DC: an account whose
// primary group is Engineering (primaryGroupID, no member link) is one of
// Engineering's and Staff's users (Engineering is nested in Staff), and
// Domain Users, which no member link names, holds every account. For every
// account Users lists, NestedMembers agrees with Membership (the token).
func TestADNestedMembersPrimaryGroup(t *testing.T) {
	srv := dirtest.StartSamba(t)
	ctx := context.Background()
	d := open(t, srv.Config())
	eng, staff := srv.Group("engineering"), srv.Group("staff")
	domainUsers := "CN=Domain Users,CN=Users," + srv.BaseDN
	pg := srv.AddADUser(t, "ls-pgeng")
	srv.SetPrimaryGroup(t, pg, eng)

	all := listUsers(t, d)
	for _, g := range []string{eng, staff, srv.Group("sspr-admins"), srv.Group("cycle-b"), domainUsers} {
		members := membersAgree(t, d, d, all, g)
		if g != domainUsers && !members[policy.NormalizeDN(pg)] && g != srv.Group("sspr-admins") && g != srv.Group("cycle-b") {
			t.Errorf("NestedMembers(%s) leaves out ls-pgeng, whose primary group is Engineering", g)
		}
	}
	gs, err := d.SearchGroups(ctx, "domain users", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].Members < len(dirtest.People) {
		t.Fatalf("SearchGroups(domain users) = %+v, want Domain Users with every account", gs)
	}
}
