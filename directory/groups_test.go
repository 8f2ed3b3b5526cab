package directory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestGroupCache: on OpenLDAP (slapd and the embedded directory), a
// change to group nesting reaches a walk within GroupCacheTTL and not
// before, a change to a user's own groups at once, and with the cache off
// every change at once.
func TestGroupCache(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *dirtest.Server{
		"OpenLDAP": func(t testing.TB) *dirtest.Server { return dirtest.StartOpenLDAP(t) },
		"Embedded": func(t testing.TB) *dirtest.Server { return dirtest.StartEmbedded(t) },
	} {
		t.Run(name, func(t *testing.T) { groupCache(t, start(t)) })
	}
}

// clock is a settable clock for the client's caches.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func groupCache(t *testing.T, srv *dirtest.Server) {
	ctx := context.Background()
	staff, eng, us := srv.Group("staff"), srv.Group("engineering"), srv.Group("unique-staff")
	carolDN := srv.UserDN("carol")

	cfg := srv.Config()
	cfg.GroupCacheTTL = time.Minute
	cached := open(t, cfg)
	clk := &clock{t: time.Now()}
	directory.SetClock(cached, clk.now)
	cfg.GroupCacheTTL = -1
	uncached := open(t, cfg)

	in := func(d *directory.Client, group string) bool {
		t.Helper()
		got, err := d.MemberOf(ctx, lookup(t, d, "carol"), []string{group})
		if err != nil {
			t.Fatalf("MemberOf: %v", err)
		}
		return got[group]
	}
	// warm: carol -> engineering -> staff -> unique-staff
	for _, d := range []*directory.Client{cached, uncached} {
		if !in(d, us) || !in(d, staff) {
			t.Fatal("carol is not in staff and unique-staff through engineering")
		}
	}

	// an administrator takes engineering out of staff
	srv.Modify(t, "dn: "+staff+"\nchangetype: modify\ndelete: member\nmember: "+eng+"\n")
	if in(uncached, staff) {
		t.Error("without the cache, carol is still in staff after engineering left it")
	}
	if !in(cached, staff) {
		t.Error("with the cache, the nesting changed before group_cache_ttl passed")
	}
	clk.add(59 * time.Second)
	if !in(cached, staff) {
		t.Error("the cached nesting was dropped before group_cache_ttl")
	}
	clk.add(2 * time.Second)
	if in(cached, staff) || in(cached, us) {
		t.Error("carol is still in staff one group_cache_ttl after engineering left it")
	}

	// engineering back in staff: the cache still says "not in" until it
	// expires (the change works both ways alike)
	srv.Modify(t, "dn: "+staff+"\nchangetype: modify\nadd: member\nmember: "+eng+"\n")
	clk.add(61 * time.Second)
	if !in(cached, staff) {
		t.Fatal("engineering back in staff was not seen after group_cache_ttl")
	}

	// a user's own groups are never cached: carol out of engineering is
	// seen at once, with a warm cache
	srv.Modify(t, "dn: "+eng+"\nchangetype: modify\ndelete: member\nmember: "+carolDN+"\n")
	t.Cleanup(func() {
		srv.Modify(t, "dn: "+eng+"\nchangetype: modify\nadd: member\nmember: "+carolDN+"\n")
	})
	if in(cached, staff) || in(cached, eng) {
		t.Error("carol left engineering, and the cached walk still puts her in it or in staff")
	}
}

// TestGroupUnknown: on OpenLDAP a configured group that does not exist and
// a group beyond the nesting bound have no answer (unknown, so that an
// exclusion fails closed), while a group within the bound does.
func TestGroupUnknown(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *dirtest.Server{
		"OpenLDAP": func(t testing.TB) *dirtest.Server { return dirtest.StartOpenLDAP(t) },
		"Embedded": func(t testing.TB) *dirtest.Server { return dirtest.StartEmbedded(t) },
	} {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			ctx := context.Background()
			staff, eng := srv.Group("staff"), srv.Group("engineering")
			gone := "cn=deleted-group,ou=groups," + srv.BaseDN
			cfg := srv.Config()
			cfg.MaxGroupDepth = 1 // carol -> engineering, and no further
			d := open(t, cfg)
			got, err := d.MemberOf(ctx, lookup(t, d, "carol"), []string{staff, eng, gone})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got[staff]; ok || !got[eng] {
				t.Errorf("depth bound 1: staff known %v, engineering %v (%v)", ok, got[eng], got)
			}
			if _, ok := got[gone]; ok {
				t.Errorf("a missing group has an answer: %v", got)
			}
			// within the bound, staff is known; erin is in neither, known
			cfg.MaxGroupDepth = 0
			d = open(t, cfg)
			got, err = d.MemberOf(ctx, lookup(t, d, "carol"), []string{staff})
			if err != nil || !got[staff] {
				t.Errorf("default bound: carol in staff = %v (%v)", got, err)
			}
			got, err = d.MemberOf(ctx, lookup(t, d, "erin"), []string{staff, gone})
			if in, ok := got[staff]; err != nil || !ok || in {
				t.Errorf("erin in staff = %v, known %v (%v)", in, ok, err)
			}
			if _, ok := got[gone]; ok {
				t.Errorf("a missing group has an answer for erin: %v", got)
			}
		})
	}
}
