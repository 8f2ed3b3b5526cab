package directory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestFailoverToReplica: directory.urls lists a syncrepl provider, then
// its consumer. With the provider down, reads go to the consumer and a
// password write fails as ErrUnavailable, with nothing written; once the
// provider is back the same write goes to it (not to the pooled replica
// connections) and reaches the replica by replication.
func TestFailoverToReplica(t *testing.T) {
	prov := dirtest.StartOpenLDAP(t, dirtest.AsProvider())
	repl := dirtest.StartReplica(t, prov)
	cfg := prov.Config()
	cfg.URLs = []string{prov.LDAPSURL, repl.LDAPSURL}
	cfg.Timeout = 5 * time.Second
	d := open(t, cfg)
	ctx := context.Background()
	u, err := d.Lookup(ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}

	prov.Stop(t)
	u2, err := d.Lookup(ctx, "erin")
	if err != nil || u2.DN != u.DN {
		t.Fatalf("lookup with the provider down: %v", err)
	}
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("ping with the provider down: %v", err)
	}
	err = d.SetPassword(ctx, u, "Erin-Failover-1!", directory.SetOptions{})
	if !errors.Is(err, directory.ErrUnavailable) {
		t.Fatalf("a write with the provider down: %v, want ErrUnavailable", err)
	}
	if err := repl.UserBind("erin", repl.Password("erin")); err != nil {
		t.Fatalf("the old password no longer binds on the replica: %v", err)
	}

	prov.Restart(t)
	if err := d.SetPassword(ctx, u, "Erin-Failover-1!", directory.SetOptions{}); err != nil {
		t.Fatalf("the write once the provider is back: %v", err)
	}
	if err := prov.UserBind("erin", "Erin-Failover-1!"); err != nil {
		t.Fatalf("new password on the provider: %v", err)
	}
	if err := repl.WaitReplicated(prov, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := repl.UserBind("erin", "Erin-Failover-1!"); err != nil {
		t.Fatalf("new password on the replica: %v", err)
	}
}
