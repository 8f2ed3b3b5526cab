package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store sqlite: schema migrated from version 0 to 2") {
		t.Fatalf("first migrate: exit %d\n%s", code, out)
	}
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store sqlite: schema version 2, up to date") {
		t.Fatalf("second migrate: exit %d\n%s", code, out)
	}
}

func TestMigratePostgres(t *testing.T) {
	srv := pgtest.Start(t)
	db := srv.NewDatabase(t)
	path := migrateConfig(t, "store:\n  driver: postgres\n  dsn: \""+srv.DSN(db)+"\"\n")
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store postgres: schema migrated from version 0 to 2") {
		t.Fatalf("first migrate: exit %d\n%s", code, out)
	}
	if code, out := runMigrate(t, path); code != exitOK || !strings.Contains(out, "store postgres: schema version 2, up to date") {
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
