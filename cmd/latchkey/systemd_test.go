package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/config"
)

const unitFile = repoRoot + "/deploy/systemd/latchkey.service"

// pgUnitFile is the template unit for PostgreSQL, one instance per port.
const pgUnitFile = repoRoot + "/deploy/systemd/latchkey@.service"

// unitVars are the Environment= lines that are not secrets: per instance
// settings of the template unit.
var unitVars = map[string]bool{"LATCHKEY_SERVER_LISTEN": true, "LATCHKEY_LOG_AUDIT_FILE": true}

// needSystemdAnalyze skips without systemd-analyze, except under CI.
func needSystemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing (Debian package systemd); CI must check the unit")
		}
		t.Skip("systemd-analyze not installed")
	}
	return p
}

// unitForTest is the unit with its binary path pointed at a file that
// exists here (systemd-analyze checks that ExecStart's program exists).
func unitForTest(t *testing.T) string { return unitFileForTest(t, unitFile, "latchkey.service") }

// unitFileForTest is unitForTest for the unit at path, written as name.
func unitFileForTest(t *testing.T, path, name string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "latchkey")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, bytes.ReplaceAll(data, []byte("/usr/local/bin/latchkey"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSystemdUnitIsValidAndHardened(t *testing.T) {
	sa := needSystemdAnalyze(t)
	unit := unitForTest(t)
	// verify prints every unknown key or bad value but exits 0: any output fails
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// the exposure score of the unit as written: 1.4 when this was written;
	// anything above 2.0 means a hardening line was lost
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=latchkey", "LoadCredential="} {
		if !strings.Contains(readUnit(t), want) {
			t.Fatalf("the unit lacks %s", want)
		}
	}
}

func readUnit(t *testing.T) string { return readUnitFile(t, unitFile) }

func readUnitFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The unit's Environment= lines name configuration keys that exist and
// point every secret at a credential the unit loads.
func TestSystemdUnitCredentialsReachTheConfiguration(t *testing.T) {
	cfg := unitConfig(t, readUnit(t), nil)
	if !strings.HasSuffix(cfg.Server.SecretKey, "secret-key") || !strings.HasSuffix(cfg.Directory.BindPassword, "ldap-bind") ||
		!strings.HasSuffix(cfg.SMTP.Password, "smtp-password") {
		t.Fatal("a secret did not come from its credential file")
	}
}

// TestSystemdPostgresUnit: the template unit for PostgreSQL passes
// systemd-analyze verify (as instance latchkey@8081) with the same
// exposure bound as latchkey.service, hands the store DSN over as a
// credential, and gives each instance its own listen address and audit
// file from the instance name.
func TestSystemdPostgresUnit(t *testing.T) {
	unit := readUnitFile(t, pgUnitFile)
	cfg := unitConfig(t, unit, map[string]string{"LATCHKEY_STORE_DRIVER": "postgres"})
	if !strings.HasSuffix(cfg.Store.DSN, "store-dsn") || !strings.HasSuffix(cfg.Server.SecretKey, "secret-key") ||
		!strings.HasSuffix(cfg.Directory.BindPassword, "ldap-bind") || !strings.HasSuffix(cfg.SMTP.Password, "smtp-password") {
		t.Fatal("a secret (the store DSN included) did not come from its credential file")
	}
	if cfg.Server.Listen != "127.0.0.1:%i" || cfg.Log.AuditFile != "/var/log/latchkey/audit-%i.jsonl" || cfg.Store.Migrate != config.MigrateManual {
		t.Fatalf("per instance: listen %q, audit file %q, migrate %q", cfg.Server.Listen, cfg.Log.AuditFile, cfg.Store.Migrate)
	}
	if strings.Contains(unit, "StateDirectory") {
		t.Error("the PostgreSQL unit keeps no local state")
	}
	sa := needSystemdAnalyze(t)
	dir := filepath.Dir(unitFileForTest(t, pgUnitFile, "latchkey@.service"))
	// verify an instance of the template: link it under its instance name
	inst := filepath.Join(dir, "latchkey@8081.service")
	if err := os.Symlink(filepath.Join(dir, "latchkey@.service"), inst); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", inst).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=20", inst).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
}

// unitConfig loads deploy/latchkey.yaml with the unit's Environment= lines
// (and extra) as the environment, every credential the unit loads written
// where systemd would put it; it fails unless every secret variable is
// read from a credential the unit loads.
func unitConfig(t *testing.T, unit string, extra map[string]string) *config.Config {
	t.Helper()
	creds := t.TempDir()
	env := map[string]string{}
	vars := map[string]string{}
	loaded := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "LoadCredential="); ok {
			name, _, _ = strings.Cut(name, ":")
			loaded[name] = true
			// a credential as systemd would place it
			if err := os.WriteFile(filepath.Join(creds, name), []byte("Zq8c1Lr0w9Xv2Nb7Mt4Ks6Jd3Hf5Gp0Qa-"+name), 0o400); err != nil {
				t.Fatal(err)
			}
		}
		if kv, ok := strings.CutPrefix(line, "Environment="); ok {
			k, v, _ := strings.Cut(kv, "=")
			if unitVars[k] {
				vars[k] = v
				continue
			}
			name, isCred := strings.CutPrefix(v, "%d/")
			if !isCred {
				t.Fatalf("%s is not read from a credential: %s", k, v)
			}
			env[k] = filepath.Join(creds, name)
		}
	}
	if len(env) == 0 || len(loaded) != len(env) {
		t.Fatalf("%d credentials loaded, %d pointed at", len(loaded), len(env))
	}
	for k, v := range env {
		if !loaded[filepath.Base(v)] {
			t.Fatalf("%s points at a credential the unit does not load", k)
		}
	}
	cfg, err := config.Load(repoRoot+"/deploy/latchkey.yaml", config.WithLookupEnv(func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		if v, ok := vars[k]; ok {
			return v, true
		}
		v, ok := extra[k]
		return v, ok
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
