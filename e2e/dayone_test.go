package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// mdBlock is one fenced block of a Markdown file: its info string and body.
type mdBlock struct {
	info, body string
}

// fencedBlocks returns the ``` blocks of a Markdown text in order.
func fencedBlocks(md string) []mdBlock {
	var out []mdBlock
	var cur *mdBlock
	for _, l := range strings.Split(md, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &mdBlock{info: strings.TrimSpace(strings.TrimPrefix(l, "```"))}
		case cur != nil && l == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += l + "\n"
		}
	}
	return out
}

// statusLines are the "STATUS  check" pairs and the summary of check's
// text output, in order: what the doc's outputs must match (messages
// hold dates, paths and SIDs that differ from run to run).
func statusLines(out string) []string {
	var pairs []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && (f[0] == "OK" || f[0] == "WARN" || f[0] == "FAIL"):
			pairs = append(pairs, f[0]+" "+f[1])
		case strings.Contains(l, " checks: "):
			pairs = append(pairs, l)
		}
	}
	return pairs
}

var shellVar = regexp.MustCompile(`(?m)^([A-Z_]+)=`)

// TestActiveDirectoryDayOne follows docs/active-directory.md on a Samba
// AD DC whose domain policy is Samba's default (maximum password age 42
// days, a minimum age of a day) plus a lockout threshold: every "# Samba"
// sh block of the doc runs, in order, with the doc's names mapped to the
// test DC (its domain DN, temporary directories for /etc/latchkey and
// /etc/samba/tls, the DC restarted where the doc restarts it); every
// `latchkey check` the doc shows runs with config.activedirectory.example.yaml
// (mapped the same way) and prints the doc's OK / WARN / FAIL lines; and the
// doc's first reset works: the canary registers an email, resets with it
// (cooling_off 0s, as the doc says for a trial), binds with the new
// password, and the old one is refused at once (old password allowed
// period = 0).
func TestActiveDirectoryDayOne(t *testing.T) {
	parallel(t)
	need := func(p string) {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found", p)
			}
			t.Skipf("%s not found", p)
		}
	}
	need("openssl")
	srv := dirtest.StartSamba(t)
	mail, sms := startMail(t)
	// Samba's default domain policy, and a lockout threshold (3)
	srv.Modify(t, "dn: "+srv.BaseDN+"\nchangetype: modify\nreplace: maxPwdAge\nmaxPwdAge: -36288000000000\n-\n"+
		"replace: minPwdAge\nminPwdAge: -864000000000\n")

	md, err := os.ReadFile("../docs/active-directory.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../config.activedirectory.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	etc := filepath.Join(work, "etc-latchkey")
	tlsDir := filepath.Join(work, "samba-tls")
	conf := filepath.Join(srv.Dir, "etc", "smb.conf")
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// samba-tool on this DC: its smb.conf is not in /etc/samba
	shim := "#!/bin/sh\nexec " + mustLook(t, "samba-tool") + " \"$@\" -s " + strconv.Quote(conf) + "\n"
	if err := os.WriteFile(filepath.Join(bin, "samba-tool"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	mapDoc := strings.NewReplacer(
		"DC=corp,DC=example,DC=test", srv.BaseDN,
		"/etc/samba/smb.conf", conf,
		"/etc/samba/tls", tlsDir,
		"/etc/latchkey", etc,
		"DC_IP=10.0.0.10", "DC_IP="+srv.Host(),
	)

	// the example configuration, on this DC, mail server and machine
	port := freePort(t)
	secret := make([]byte, 48)
	rand.Read(secret)
	if err := os.MkdirAll(etc, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "secret.key"), []byte(base64.StdEncoding.EncodeToString(secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mapDoc.Replace(string(example))
	smtpAt := strings.Index(cfg, "\nsmtp:\n")
	storeAt := strings.Index(cfg, "\nstore:\n")
	if smtpAt < 0 || storeAt < smtpAt {
		t.Fatal("config.activedirectory.example.yaml: no smtp section before store")
	}
	cfg = cfg[:smtpAt] + fmt.Sprintf("\nsmtp:\n  host: %q\n  port: %d\n  tls: none\n  from: \"Latchkey <latchkey@example.test>\"\n", mail.SMTPHost, mail.SMTPPort) + cfg[storeAt:]
	for _, r := range [][2]string{
		{`urls: ["ldaps://dc1.corp.example.test", "ldaps://dc2.corp.example.test"]`, `urls: ["ldaps://` + srv.Host() + `"]`},
		{`listen: "127.0.0.1:8080"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, port)},
		{`public_url: "https://sspr.corp.example.test"`, fmt.Sprintf(`public_url: "http://127.0.0.1:%d"`, port)},
		{`"file:/var/lib/latchkey/latchkey.db"`, strconv.Quote("file:" + filepath.Join(work, "latchkey.db"))},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("config.activedirectory.example.yaml has no %s", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	cfgPath := filepath.Join(work, "latchkey.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// run the doc
	vars := filepath.Join(work, "vars.sh")
	os.WriteFile(vars, nil, 0o600)
	run := func(script string) {
		t.Helper()
		names := shellVar.FindAllStringSubmatch(script, -1)
		var dump strings.Builder
		for _, n := range names {
			fmt.Fprintf(&dump, "printf '%%s=%%q\\n' %s \"${%s}\" >> %q\n", n[1], n[1], vars)
		}
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", ". "+strconv.Quote(vars)+"\n"+script+"\n"+dump.String())
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		cmd.Dir = work
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("the doc's commands failed: %v\n%s\n--- output:\n%s", err, script, out.String())
		}
	}
	ran, checks := 0, 0
	for _, b := range fencedBlocks(string(md)) {
		switch {
		case b.info == "sh" && strings.HasPrefix(b.body, "# Samba"):
			script := mapDoc.Replace(b.body)
			if before, after, ok := strings.Cut(script, "systemctl restart samba-ad-dc\n"); ok {
				run(before)
				srv.RestartSamba(t, filepath.Join(tlsDir, "ca.crt"))
				script = after
			}
			run(script)
			ran++
		case b.info == "text" && strings.HasPrefix(b.body, "$ latchkey check") && ran > 0:
			first, want, _ := strings.Cut(b.body, "\n")
			args := strings.Fields(first)[3:] // after "$ latchkey check"
			for i := range args {
				if args[i] == "/etc/latchkey/latchkey.yaml" {
					args[i] = cfgPath
				}
			}
			out, code := runCheck(t, args[1], args[2:]...)
			checks++
			t.Logf("after %d Samba blocks, %s:\n%s", ran, first, out)
			if got, w := statusLines(out), statusLines(want); strings.Join(got, "\n") != strings.Join(w, "\n") {
				t.Errorf("check #%d (%s): the doc shows\n%s\nbut it printed\n%s", checks, first, strings.Join(w, "\n"), out)
			}
			if code != 0 && !strings.Contains(want, "FAIL  ") {
				t.Errorf("check #%d exit %d", checks, code)
			}
		}
	}
	if ran < 6 || checks < 3 {
		t.Fatalf("ran %d Samba blocks and %d checks of the doc", ran, checks)
	}
	if t.Failed() {
		return
	}

	// the first reset (doc step 9), with cooling_off 0s for the trial
	trial := strings.Replace(cfg, "cooling_off: 24h", "cooling_off: 0s", 1)
	if err := os.WriteFile(cfgPath, []byte(trial), 0o600); err != nil {
		t.Fatal(err)
	}
	old := srv.Password("canary")
	run("samba-tool user setpassword canary --newpassword=" + strconv.Quote(old))
	e := &env{t: t, dir: srv, mail: mail, sms: sms, base: fmt.Sprintf("http://127.0.0.1:%d", port), work: work, cfgPath: cfgPath,
		log: filepath.Join(work, "latchkey.log"), audit: filepath.Join(work, "audit.log")}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			b, _ := os.ReadFile(e.log)
			t.Logf("gateway log:\n%s", tail(string(b), 6000))
		}
	})
	e.launch()
	addr := "canary.home@example.net"
	emailID := registeredEmail(t, e, "canary", addr)
	f, _ := e.startReset("canary")
	if r := e.verifyByEmail(&f, emailID, addr); r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
	const newPW = "Day-One-Reset-Pass-42"
	if r := e.complete(f, newPW); r.Status != 200 {
		t.Fatalf("complete: %d %s", r.Status, r.Body)
	}
	if err := srv.UserBind("canary", newPW); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	if err := srv.UserBind("canary", old); err == nil {
		t.Fatal("the previous password still binds: old password allowed period is not 0")
	}
}

func mustLook(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
