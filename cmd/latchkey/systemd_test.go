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
func unitForTest(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "latchkey")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "latchkey.service")
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

func readUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The unit's Environment= lines name configuration keys that exist and
// point every secret at a credential the unit loads.
func TestSystemdUnitCredentialsReachTheConfiguration(t *testing.T) {
	creds := t.TempDir()
	env := map[string]string{}
	loaded := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(readUnit(t)))
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
		v, ok := env[k]
		return v, ok
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cfg.Server.SecretKey, "secret-key") || !strings.HasSuffix(cfg.Directory.BindPassword, "ldap-bind") ||
		!strings.HasSuffix(cfg.SMTP.Password, "smtp-password") {
		t.Fatal("a secret did not come from its credential file")
	}
}
