package bench

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// TestServerCPUTime: the work of a backend whose connection stays open
// (as the gateway's pooled ones do) is counted, not only that of backends
// that exited.
func TestServerCPUTime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	srv := pgtest.StartPrivate(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	before := serverCPUTime(srv.PID())
	for range 20 {
		if _, err := conn.Exec(ctx, "SELECT count(*) FROM generate_series(1, 200000)"); err != nil {
			t.Fatal(err)
		}
	}
	after := serverCPUTime(srv.PID())
	t.Logf("PostgreSQL CPU %v -> %v", before, after)
	if after <= before {
		t.Fatalf("no CPU counted for a live backend: %v -> %v", before, after)
	}
}
