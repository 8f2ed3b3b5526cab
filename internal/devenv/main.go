// Command devenv runs Latchkey against a local, throwaway directory for
// trying it out: a seeded OpenLDAP slapd, mailpit for mail, a loopback
// receiver for SMS (the webhook provider), and `latchkey serve`. Every
// message the gateway sends is printed here, so codes can be read off the
// terminal. Everything listens on 127.0.0.1 and is removed on Ctrl-C.
//
//	go run ./internal/devenv            (or ./scripts/dev.sh)
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "gateway listen address (loopback)")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

func run(listen string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "latchkey-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	srv, stopLDAP, err := dirtest.RunOpenLDAP(filepath.Join(work, "slapd"))
	if err != nil {
		return err
	}
	defer stopLDAP()
	for _, u := range []string{"alice", "bob", "carol"} {
		fmt.Printf("user %-6s password %s\n", u, srv.Password(u))
	}

	smtpPort, apiPort := port(), port()
	mp, err := mailpitPath()
	if err != nil {
		return err
	}
	mcmd := exec.CommandContext(ctx, mp, "-l", "127.0.0.1:"+strconv.Itoa(apiPort), "-s", "127.0.0.1:"+strconv.Itoa(smtpPort),
		"--disable-version-check", "--smtp-disable-rdns", "-q")
	mcmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := mcmd.Start(); err != nil {
		return err
	}
	defer mcmd.Process.Kill()
	go printMail(ctx, "http://127.0.0.1:"+strconv.Itoa(apiPort))

	smsURL, smsSecret := smsReceiver(ctx)

	cfgPath := writeConfig(work, listen, srv, smsURL, smsSecret, smtpPort)

	bin := filepath.Join(work, "latchkey")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/latchkey").CombinedOutput(); err != nil {
		return fmt.Errorf("building latchkey: %v\n%s", err, out)
	}
	fmt.Printf("\nLatchkey: http://%s  (alice and carol are eligible; alice needs two methods)\nconfig:   %s\n\n", listen, cfgPath)
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// writeConfig writes the gateway's configuration and the secrets it names
// into work, and returns the configuration's path.
func writeConfig(work, listen string, srv *dirtest.Server, smsURL, smsSecret string, smtpPort int) string {
	key := make([]byte, 48)
	rand.Read(key)
	write := func(name, content string) string {
		p := filepath.Join(work, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	cfg := fmt.Sprintf(`server:
  listen: %q
  public_url: "http://%s"
  secret_key_file: %q
  helpdesk: "mailto:helpdesk@example.org"
directory:
  type: openldap
  urls: [%q]
  ca_file: %q
  bind_dn: %q
  bind_password_file: %q
  base_dn: %q
  default_policy_dn: %q
policy:
  scope: selected
  groups: ["cn=staff,ou=groups,dc=example,dc=org"]
  methods_required: 1
  methods: [email, sms]
  tiers:
    - groups: ["cn=sspr-admins,ou=groups,dc=example,dc=org"]
      methods_required: 2
  cooling_off: 0s
email: { enabled: true }
sms:
  enabled: true
  provider: webhook
  allowed_countries: [GB, US, DE, FR]
  webhook: { url: %q, secret_file: %q }
smtp: { host: 127.0.0.1, port: %d, tls: none, from: "Latchkey <latchkey@example.org>" }
store: { driver: sqlite, dsn: "file:%s" }
log: { level: info, format: text, audit_file: %q }
`, listen, listen, write("secret.key", base64.StdEncoding.EncodeToString(key)), srv.LDAPSURL, srv.CAFile, srv.ServiceDN,
		write("bind.pw", srv.ServicePassword), srv.BaseDN, srv.DefaultPolicyDN, smsURL, write("sms.secret", smsSecret), smtpPort,
		filepath.Join(work, "latchkey.db"), filepath.Join(work, "audit.log"))
	return write("latchkey.yaml", cfg)
}

func port() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mailpitPath() (string, error) {
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p, nil
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(string(trim(out)), "bin", "mailpit")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("mailpit not found: go install github.com/axllent/mailpit@v1.27.11")
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// printMail prints every message that reaches mailpit.
func printMail(ctx context.Context, api string) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		time.Sleep(300 * time.Millisecond)
		var list struct {
			Messages []struct{ ID string } `json:"messages"`
		}
		if getJSON(api+"/api/v1/messages", &list) != nil {
			continue
		}
		for i := len(list.Messages) - 1; i >= 0; i-- {
			id := list.Messages[i].ID
			if seen[id] {
				continue
			}
			seen[id] = true
			var m struct {
				Subject, Text string
				To            []struct{ Address string }
			}
			if getJSON(api+"/api/v1/message/"+id, &m) == nil && len(m.To) > 0 {
				fmt.Printf("\n--- mail to %s: %s\n%s---\n", m.To[0].Address, m.Subject, m.Text)
			}
		}
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// smsReceiver prints every SMS the gateway posts to its webhook.
func smsReceiver(ctx context.Context) (url, secret string) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = base64.RawURLEncoding.EncodeToString(b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		var m struct{ To, Body string }
		json.Unmarshal(body, &m)
		fmt.Printf("\n--- sms to %s: %s\n", m.To, m.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l)
	go func() { <-ctx.Done(); hs.Close() }()
	return "http://" + l.Addr().String() + "/sms", secret
}
