package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// migrateConfig writes a configuration that validates (nothing in it is
// contacted except the store) with the given store section.
func migrateConfig(t *testing.T, storeSection string) string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(key, []byte("q8Zr2LmX7vKp4TnW9sYc3HbJ6fGd1QaE5uRo0iNy"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`server:
  public_url: "https://sspr.example.org"
  secret_key_file: %q
directory:
  type: openldap
  urls: ["ldaps://ldap.example.org"]
  bind_dn: "cn=sspr,dc=example,dc=org"
  bind_password: "pw"
  base_dn: "dc=example,dc=org"
policy:
  scope: all
  methods: [email]
email:
  enabled: true
smtp:
  host: smtp.example.org
  from: "Reset <no-reply@example.org>"
%s`, key, storeSection)
	path := filepath.Join(dir, "latchkey.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runMigrate(t *testing.T, path string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run([]string{"migrate", "--config", path}, &out, &out)
	return code, out.String()
}

func TestMigrateSQLite(t *testing.T) {
	db := filepath.Join(t.TempDir(), "l.db")
	path := migrateConfig(t, "store:\n  driver: sqlite\n  dsn: \"file:"+db+"\"\n")
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store sqlite: schema migrated from version 0 to "+strconv.Itoa(store.SchemaVersion())) {
		t.Fatalf("first migrate: exit %d\n%s", code, out)
	}
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store sqlite: schema version "+strconv.Itoa(store.SchemaVersion())+", up to date") {
		t.Fatalf("second migrate: exit %d\n%s", code, out)
	}
}

func TestMigratePostgres(t *testing.T) {
	srv := pgtest.Start(t)
	db := srv.NewDatabase(t)
	path := migrateConfig(t, "store:\n  driver: postgres\n  dsn: \""+srv.DSN(db)+"\"\n")
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store postgres: schema migrated from version 0 to "+strconv.Itoa(store.SchemaVersion())) {
		t.Fatalf("first migrate: exit %d\n%s", code, out)
	}
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store postgres: schema version "+strconv.Itoa(store.SchemaVersion())+", up to date") {
		t.Fatalf("second migrate: exit %d\n%s", code, out)
	}
	// A database nobody listens for: exit 1, no password in the output.
	bad := migrateConfig(t, "store:\n  driver: postgres\n  dsn: \"postgres://latchkey:Pw-Marker-7@127.0.0.1:1/none?sslmode=disable&connect_timeout=5\"\n")
	if code, out := runMigrate(t, bad); code != exitFail || strings.Contains(out, "Pw-Marker-7") {
		t.Fatalf("migrate without a server: exit %d\n%s", code, out)
	}
}

func TestMigrateBadConfig(t *testing.T) {
	path := migrateConfig(t, "store:\n  driver: postgres\n  dsn: \"postgres://latchkey:Pw-Marker-7@db.example.org/latchkey?sslmode=disable\"\n")
	code, out := runMigrate(t, path)
	if code != exitConfig || !strings.Contains(out, "store.dsn: sslmode=disable to db.example.org") || strings.Contains(out, "Pw-Marker-7") {
		t.Fatalf("migrate with a plaintext remote DSN: exit %d\n%s", code, out)
	}
	if code, out := runMigrate(t, filepath.Join(t.TempDir(), "missing.yaml")); code != exitConfig {
		t.Fatalf("migrate with a missing file: exit %d\n%s", code, out)
	}
}

// TestCheckChangesNoSchema: `latchkey check` on an empty store reports
// "schema behind: run latchkey migrate" and creates nothing (SQLite: no
// file; PostgreSQL: no table); a WARN where serve migrates at start
// (sqlite), a FAIL where only `latchkey migrate` does (postgres). After
// migrate it is OK. Before, check created the schema.
func TestCheckChangesNoSchema(t *testing.T) {
	ctx := t.Context()
	t.Run("sqlite", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "l.db")
		path := migrateConfig(t, "store:\n  driver: sqlite\n  dsn: \"file:"+db+"\"\n")
		cfg := loadValid(t, path)
		status, msg, _ := checkStore(ctx, cfg)
		if status != statusWarn || !strings.Contains(msg, "schema behind: run latchkey migrate") {
			t.Fatalf("check on no database: %s %s", status, msg)
		}
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("check created the database file: %v", err)
		}
		if code, out := runMigrate(t, path); code != exitOK {
			t.Fatalf("migrate: %d %s", code, out)
		}
		if status, msg, _ := checkStore(ctx, cfg); status != statusOK {
			t.Fatalf("check after migrate: %s %s", status, msg)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		srv := pgtest.Start(t)
		db := srv.NewDatabase(t)
		path := migrateConfig(t, "store:\n  driver: postgres\n  dsn: \""+srv.DSN(db)+"\"\n")
		cfg := loadValid(t, path)
		status, msg, _ := checkStore(ctx, cfg)
		if status != statusFail || !strings.Contains(msg, "schema behind: run latchkey migrate") {
			t.Fatalf("check on an empty database: %s %s", status, msg)
		}
		srv.Exec(t, db, `DO $$ BEGIN IF (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public') <> 0 THEN RAISE EXCEPTION 'latchkey check changed the database'; END IF; END $$`)
		if code, out := runMigrate(t, path); code != exitOK {
			t.Fatalf("migrate: %d %s", code, out)
		}
		if status, msg, _ := checkStore(ctx, cfg); status != statusOK {
			t.Fatalf("check after migrate: %s %s", status, msg)
		}
	})
}

// TestServeRefusesSchema: with store.migrate manual (the postgres
// default) serve refuses an empty database ("run latchkey migrate") and
// changes nothing; any serve refuses a schema newer than it knows.
func TestServeRefusesSchema(t *testing.T) {
	srv := pgtest.Start(t)
	db := srv.NewDatabase(t)
	path := migrateConfig(t, "store:\n  driver: postgres\n  dsn: \""+srv.DSN(db)+"\"\n")
	var out bytes.Buffer
	if code := run([]string{"serve", "--config", path}, &out, &out); code == exitOK || !strings.Contains(out.String(), "schema behind: run latchkey migrate") {
		t.Fatalf("serve on an empty database: exit %d\n%s", code, out.String())
	}
	srv.Exec(t, db, `DO $$ BEGIN IF to_regclass('schema_version') IS NOT NULL THEN RAISE EXCEPTION 'serve migrated'; END IF; END $$`)

	sq := filepath.Join(t.TempDir(), "l.db")
	spath := migrateConfig(t, "store:\n  driver: sqlite\n  dsn: \"file:"+sq+"\"\n")
	if code, out := runMigrate(t, spath); code != exitOK {
		t.Fatalf("migrate: %d %s", code, out)
	}
	raw, err := sql.Open("sqlite", "file:"+sq+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`, store.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"serve", "--config", spath}, &out, &out); code == exitOK || !strings.Contains(out.String(), "newer than this build") {
		t.Fatalf("serve on a newer schema: exit %d\n%s", code, out.String())
	}
}

func loadValid(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCheckShowsTheOutbox: `latchkey check` prints the messages waiting
// in the store (every instance's), OK while the oldest code is younger
// than outbox.degraded_after, WARN once it is older; on both stores.
func TestCheckShowsTheOutbox(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			ctx := t.Context()
			var path string
			if driver == "sqlite" {
				path = migrateConfig(t, "store:\n  driver: sqlite\n  dsn: \"file:"+filepath.Join(t.TempDir(), "l.db")+"\"\n")
			} else {
				srv := pgtest.Start(t)
				path = migrateConfig(t, "store:\n  driver: postgres\n  dsn: \""+srv.DSN(srv.NewDatabase(t))+"\"\n")
			}
			if code, out := runMigrate(t, path); code != exitOK {
				t.Fatalf("migrate: %d %s", code, out)
			}
			cfg := loadValid(t, path)
			if status, msg, _ := checkOutbox(ctx, cfg); status != statusOK || !strings.Contains(msg, "0 codes and 0 notices waiting") {
				t.Fatalf("empty outbox: %s %s", status, msg)
			}
			st, err := openStore(ctx, cfg, false)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for i, kind := range []string{store.OutboxCode, store.OutboxCode, store.OutboxNotice} {
				if err := st.EnqueueMessage(ctx, store.OutboxMessage{ID: fmt.Sprint("m", i), Kind: kind, Channel: store.MethodEmail,
					Body: []byte("b"), CreatedAt: now, NotBefore: now.Add(-time.Duration(i+1) * 10 * time.Minute), ExpiresAt: now.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			cfg.Outbox.DegradedAfter = time.Hour
			status, msg, _ := checkOutbox(ctx, cfg)
			if status != statusOK || !strings.Contains(msg, "2 codes and 1 notices waiting to be sent, the oldest code due for 20m0s") {
				t.Fatalf("outbox with 3 messages: %s %s", status, msg)
			}
			cfg.Outbox.DegradedAfter = 5 * time.Minute
			if status, msg, _ := checkOutbox(ctx, cfg); status != statusWarn {
				t.Fatalf("outbox with a code due for 20 minutes, degraded_after 5m: %s %s", status, msg)
			}
		})
	}
}
