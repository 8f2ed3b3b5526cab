package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
	"github.com/latchkeyhq/latchkey/store/storetest"
)

// postgresOpener returns a storetest.Opener over one database per test on
// the package's throwaway server: the first call for a t creates the
// database, later calls for the same t open it again (a new pool: another
// instance).
func postgresOpener() (storetest.Opener, func(t *testing.T) (*pgtest.Server, string)) {
	var (
		mu  sync.Mutex
		dbs = map[*testing.T]string{}
	)
	dbFor := func(t *testing.T) (*pgtest.Server, string) {
		srv := pgtest.Start(t)
		mu.Lock()
		defer mu.Unlock()
		db, ok := dbs[t]
		if !ok {
			db = srv.NewDatabase(t)
			dbs[t] = db
		}
		return srv, db
	}
	open := func(t *testing.T) store.Store {
		t.Helper()
		srv, db := dbFor(t)
		return openPostgres(t, srv.DSN(db))
	}
	return open, dbFor
}

func openPostgres(t *testing.T, dsn string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(t.Context(), dsn, testKey, store.PostgresOptions{})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresConformance(t *testing.T) {
	open, dbFor := postgresOpener()
	storetest.RunConformance(t, open, storetest.WithRawBytes(func(t *testing.T, s store.Store) []byte {
		srv, db := dbFor(t)
		return srv.DatabaseFiles(t, db)
	}))
}

// newPostgresDB starts (or reuses) the server and returns a fresh
// database's DSN.
func newPostgresDB(t *testing.T) (*pgtest.Server, string, string) {
	t.Helper()
	srv := pgtest.Start(t)
	db := srv.NewDatabase(t)
	return srv, db, srv.DSN(db)
}

// TestPostgresRedeemAcrossPools: two instances (two separate pgxpool.Pool
// handles), 50 goroutines redeeming one code with the right hash, 10
// rounds: exactly one success per round.
func TestPostgresRedeemAcrossPools(t *testing.T) {
	_, _, dsn := newPostgresDB(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	ctx, now := t.Context(), time.Now()
	const callers = 50
	for round := range 10 {
		f := store.Flow{ID: fmt.Sprintf("redeem-race-%02d-0123456789abcdef", round), Kind: store.FlowReset,
			AccountID: "acct", Required: 1, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := a.CreateFlow(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := b.IssueCode(ctx, store.Code{FlowID: f.ID, Purpose: "reset", MethodID: "m1", AccountID: "acct",
			Hash: []byte("right"), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		var ok, notFound, other atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			st := []*store.Postgres{a, b}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now)
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrNotFound):
					notFound.Add(1)
				default:
					other.Add(1)
					t.Errorf("RedeemCode: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok.Load() != 1 || notFound.Load() != callers-1 {
			t.Fatalf("round %d: %d successes, %d not found, %d other errors; want 1, %d, 0",
				round, ok.Load(), notFound.Load(), other.Load(), callers-1)
		}
	}
}

// TestPostgresBudgetAcrossPools: a budget of K hits per window, enforced as
// "allowed while Hit returns <= K", with two instances hammering it from
// 100 goroutines: exactly K are allowed and no hit is lost.
func TestPostgresBudgetAcrossPools(t *testing.T) {
	_, _, dsn := newPostgresDB(t)
	stores := []*store.Postgres{openPostgres(t, dsn), openPostgres(t, dsn)}
	ctx, now := t.Context(), time.Now()
	const (
		budget  = 25
		callers = 100
	)
	var allowed atomic.Int32
	var mu sync.Mutex
	var counts []int
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			n, err := stores[i%2].Hit(ctx, "sms:global", time.Hour, now)
			if err != nil {
				t.Errorf("Hit: %v", err)
				return
			}
			if n <= budget {
				allowed.Add(1)
			}
			mu.Lock()
			counts = append(counts, n)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if allowed.Load() != budget {
		t.Fatalf("%d hits allowed, want exactly %d", allowed.Load(), budget)
	}
	slices.Sort(counts)
	for i, n := range counts {
		if n != i+1 {
			t.Fatalf("Hit results are not 1..%d: %v", callers, counts)
		}
	}
	if n, err := stores[1].Count(ctx, "sms:global", time.Hour, now); err != nil || n != callers {
		t.Fatalf("Count = %d, %v; want %d", n, err, callers)
	}
}

// TestPostgresMigrationRace: three instances start at once on an empty
// database; all open, exactly one of them migrates, and the schema exists
// once.
func TestPostgresMigrationRace(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			srv, db, dsn := newPostgresDB(t)
			const instances = 3
			migs := make([]store.Migration, instances)
			errs := make([]error, instances)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range instances {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					s, err := store.OpenPostgres(t.Context(), dsn, testKey, store.PostgresOptions{})
					errs[i] = err
					if err == nil {
						migs[i] = s.Migration()
						s.Close()
					}
				}()
			}
			close(start)
			wg.Wait()
			migrated := 0
			for i, err := range errs {
				if err != nil {
					t.Fatalf("instance %d: %v", i, err)
				}
				want := store.PostgresSchemaVersionForTest()
				if migs[i].To != want || (migs[i].From != 0 && migs[i].From != want) {
					t.Fatalf("instance %d: %+v", i, migs[i])
				}
				if migs[i].Migrated() {
					migrated++
				}
			}
			if migrated != 1 {
				t.Fatalf("%d instances migrated, want 1: %+v", migrated, migs)
			}
			// One row per version and one key check.
			srv.Exec(t, db, `DO $$ BEGIN
				IF (SELECT count(*) FROM schema_version) <> (SELECT count(DISTINCT version) FROM schema_version)
					OR (SELECT max(version) FROM schema_version) <> `+fmt.Sprint(store.PostgresSchemaVersionForTest())+`
					OR (SELECT count(*) FROM meta WHERE name = 'key_check') <> 1
				THEN RAISE EXCEPTION 'schema applied more than once'; END IF; END $$`)
		})
	}
}

func TestPostgresWrongKeyAndNewerSchema(t *testing.T) {
	srv, db, dsn := newPostgresDB(t)
	s := openPostgres(t, dsn)
	if m := s.Migration(); m.From != 0 || m.To != store.PostgresSchemaVersionForTest() {
		t.Fatalf("first open: %+v", m)
	}
	s.Close()
	if m := openPostgres(t, dsn).Migration(); m.Migrated() {
		t.Fatalf("second open migrated again: %+v", m)
	}
	_, err := store.OpenPostgres(t.Context(), dsn, bytes.Repeat([]byte{0x43}, 32), store.PostgresOptions{})
	if err == nil || !strings.Contains(err.Error(), "key does not match") {
		t.Fatalf("OpenPostgres with another key: %v", err)
	}
	srv.Exec(t, db, `INSERT INTO schema_version (version, applied_at) VALUES ($1, now())`, store.PostgresSchemaVersionForTest()+1)
	_, err = store.OpenPostgres(t.Context(), dsn, testKey, store.PostgresOptions{})
	if err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("OpenPostgres on a newer schema: %v", err)
	}
}

// TestPostgresUnixSocket: a keyword DSN with a socket directory as host.
func TestPostgresUnixSocket(t *testing.T) {
	srv, db, _ := newPostgresDB(t)
	s := openPostgres(t, srv.SocketDSN(db))
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestPostgresPurgeBatches: more expired rows than one batch in every
// table; Purge removes them all (and counts them), keeps live rows.
func TestPostgresPurgeBatches(t *testing.T) {
	srv, db, dsn := newPostgresDB(t)
	s := openPostgres(t, dsn)
	ctx, now := t.Context(), time.Now()
	n := store.PostgresPurgeBatch*2 + 500
	srv.Exec(t, db, `INSERT INTO flows (id_hash, kind, account_id, required, created_at, expires_at, version)
		SELECT sha256(('flow' || i)::bytea), 'reset', 'a', 1, $1::timestamptz - interval '1 hour', $1::timestamptz - interval '1 minute', 0
		FROM generate_series(1, $2::int) i`, now, n)
	srv.Exec(t, db, `INSERT INTO codes (flow_id, purpose, method_id, account_id, hash, expires_at, tries)
		SELECT sha256(('flow' || i)::bytea), 'reset', 'm1', 'a', '\x00', $1::timestamptz + interval '1 minute', 0
		FROM generate_series(1, $2::int) i`, now, n)
	srv.Exec(t, db, `INSERT INTO sessions (id_hash, account_id, username, created_at, expires_at)
		SELECT sha256(('sess' || i)::bytea), 'a', 'u', $1::timestamptz - interval '1 hour', $1::timestamptz - interval '1 second'
		FROM generate_series(1, $2::int) i`, now, n)
	srv.Exec(t, db, `INSERT INTO counters (key_hash, window_us, window_start, window_end, count)
		SELECT sha256(('ctr' || i)::bytea), 60000000, $1::bigint - 120000000, $1::bigint - 60000000, 1
		FROM generate_series(1, $2::int) i`, now.UnixMicro(), n)
	live := store.Flow{ID: "live-flow-0123456789abcdef", Kind: store.FlowReset, AccountID: "a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateFlow(ctx, live); err != nil {
		t.Fatal(err)
	}
	got, err := s.Purge(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if got != 4*n {
		t.Fatalf("Purge removed %d rows, want %d", got, 4*n)
	}
	if again, err := s.Purge(ctx, now); err != nil || again != 0 {
		t.Fatalf("second Purge: %d, %v", again, err)
	}
	if _, err := s.GetFlow(ctx, live.ID, now); err != nil {
		t.Fatalf("live flow after Purge: %v", err)
	}
}

// TestOpenPostgresTLSPolicy: a remote host needs sslmode=verify-full unless
// AllowPlaintext; the check happens before any connection is made, and the
// error never quotes the DSN's password.
func TestOpenPostgresTLSPolicy(t *testing.T) {
	t.Setenv("PGSSLMODE", "")
	t.Setenv("PGHOST", "")
	const pw = "Pw-Secret-Marker-93"
	for _, dsn := range []string{
		"postgres://latchkey:" + pw + "@db.example.org/latchkey?sslmode=disable",
		"postgres://latchkey:" + pw + "@db.example.org/latchkey", // prefer: TLS not verified
		"postgres://latchkey:" + pw + "@db.example.org/latchkey?sslmode=require",
		"postgres://latchkey:" + pw + "@db.example.org/latchkey?sslmode=verify-ca",
		"host=127.0.0.1,db.example.org user=latchkey password=" + pw + " sslmode=disable", // a remote fallback
	} {
		_, err := store.OpenPostgres(t.Context(), dsn, testKey, store.PostgresOptions{})
		if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "verify-full") {
			t.Errorf("%s: %v, want a verify-full error", strings.ReplaceAll(dsn, pw, "***"), err)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("error quotes the password: %v", err)
		}
	}
	_, err := store.OpenPostgres(t.Context(), "postgres://u:"+pw+"@db.example.org:notaport/x", testKey, store.PostgresOptions{})
	if !errors.Is(err, store.ErrInvalid) || strings.Contains(err.Error(), pw) {
		t.Errorf("unparsable DSN: %v", err)
	}
	for _, host := range []string{"127.0.0.1", "::1", "[::1]", "localhost", "/run/postgresql", "@abstract"} {
		if !store.IsLocalPostgresHost(host) {
			t.Errorf("IsLocalPostgresHost(%q) = false", host)
		}
	}
	for _, host := range []string{"db.example.org", "10.0.0.5", "localhost.example.org", ""} {
		if store.IsLocalPostgresHost(host) {
			t.Errorf("IsLocalPostgresHost(%q) = true", host)
		}
	}
}
