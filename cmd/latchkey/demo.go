package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/demodir"
	"github.com/latchkeyhq/latchkey/notify"
)

// demo runs the whole product on this machine with nothing installed: an
// embedded LDAP directory served over the LDAP protocol on 127.0.0.1 (the
// unchanged directory package talks to it over LDAPS), a SQLite store in a
// temporary directory, and mail and SMS delivered to the demo outbox page.
// It is the same gateway `latchkey serve` runs, with a configuration made
// here and checked by the same validation (marked as the demo's).
func demo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on; loopback only (port 0 picks a free one)")
	verbose := fs.Bool("verbose", false, "print the gateway's log and audit lines")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: latchkey demo [--listen 127.0.0.1:8080] [--verbose]\n\n"+
			"Runs Latchkey with an embedded directory, a temporary store and an outbox page\n"+
			"for mail and SMS, on this machine only. Not for production. Ctrl-C removes it all.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "latchkey demo: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !loopback(host) {
		fmt.Fprintln(stderr, "latchkey demo: --listen must be a loopback address such as 127.0.0.1:8080 (the demo is for this machine only)")
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	work, err := os.MkdirTemp("", "latchkey-demo-")
	if err != nil {
		fmt.Fprintln(stderr, "latchkey demo:", err)
		return exitFail
	}
	defer os.RemoveAll(work)

	dir, err := demodir.Start(ctx, demodir.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Fprintln(stderr, "latchkey demo: starting the embedded directory:", err)
		return exitFail
	}
	defer dir.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "latchkey demo: cannot listen on %s: %v (try --listen 127.0.0.1:0)\n", *listen, err)
		return exitFail
	}
	// closed by the HTTP server; closed here when it never starts
	defer ln.Close()
	// Passkeys need a host name (their relying party id), and browsers
	// treat http://localhost as a secure context: the demo offers them
	// when it listens where localhost reaches.
	publicURL, passkeys := demoPublicURL(ln.Addr().(*net.TCPAddr))

	path, err := writeDemoConfig(work, dir, ln.Addr().String(), publicURL, passkeys, *verbose)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey demo:", err)
		return exitFail
	}
	cfg, code := loadConfig(path, stderr, config.WithDemo())
	if cfg == nil {
		return code
	}
	outbox := notify.NewOutbox(200)
	app, err := flow.NewAppSecret()
	if err != nil {
		fmt.Fprintln(stderr, "latchkey demo:", err)
		return exitFail
	}
	w := wiring{
		outbox:   outbox,
		demo:     &demoPages{Outbox: outbox, dir: dir, adminApp: app},
		listener: ln,
		// the demo's admin has an authenticator app from the start: the
		// console can be tried within a minute (its codes are on the
		// outbox page)
		seed:  func(ctx context.Context, svc *flow.Service) error { return svc.DemoSeedApp(ctx, demoAdmin, app) },
		ready: func() { printDemo(stdout, publicURL, dir, app) },
	}
	if !*verbose {
		cfg.Log.Level = "error" // the terminal shows the demo's own lines and errors
	}
	code = runGateway(ctx, cfg, stderr, w)
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "\nLatchkey demo stopped: its directory, store and outbox are removed.")
	}
	return code
}

// demoPublicURL is the demo's server.public_url for its listener, and
// whether passkeys can work there: http://localhost:<port> when the
// listener is on 127.0.0.1 or ::1, else the address itself (no passkeys).
func demoPublicURL(addr *net.TCPAddr) (string, bool) {
	if addr.IP.Equal(net.IPv4(127, 0, 0, 1)) || addr.IP.Equal(net.IPv6loopback) {
		return fmt.Sprintf("http://localhost:%d", addr.Port), true
	}
	return "http://" + addr.String(), false
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// writeDemoConfig writes the demo's configuration file and secrets, all
// mode 0600 in the temporary directory, and returns the file's path.
func writeDemoConfig(work string, dir *demodir.Server, listen, publicURL string, passkeys, verbose bool) (string, error) {
	key := make([]byte, 48)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	files := map[string]string{
		"secret.key":    base64.StdEncoding.EncodeToString(key),
		"bind.password": dir.ServicePassword(),
		"ldap-ca.pem":   string(dir.CAPEM()),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	auditFile := filepath.Join(work, "audit.log")
	if verbose {
		auditFile = "" // with the log, on the terminal
	}
	yaml := strings.Join([]string{
		"server:",
		"  listen: " + q(listen),
		"  public_url: " + q(publicURL),
		"  secret_key_file: " + q(filepath.Join(work, "secret.key")),
		"directory:",
		"  type: openldap",
		"  urls: [" + q(dir.URL()) + "]",
		"  ca_file: " + q(filepath.Join(work, "ldap-ca.pem")),
		"  bind_dn: " + q(dir.ServiceDN()),
		"  bind_password_file: " + q(filepath.Join(work, "bind.password")),
		"  base_dn: " + q(dir.BaseDN()),
		"  user_filter: " + q(dir.UserFilter()),
		"  default_policy_dn: " + q(dir.DefaultPolicyDN()),
		"policy:",
		"  scope: selected",
		"  groups: [" + q(dir.GroupDN("staff")) + "]",
		"  exclude_groups: [" + q(dir.GroupDN("domain-admins")) + "]",
		"  methods_required: 1",
		"  methods: [" + demoMethods(passkeys) + "]",
		"  tiers:",
		"    - groups: [" + q(dir.GroupDN("it-staff")) + "]",
		"      methods_required: 2",
		// a method registered a minute ago may reset in the demo; the
		// production default waits a day (policy.cooling_off)
		"  cooling_off: 0s",
		// The gateway's minimum is the demo directory's pwdMinLength
		// (10): one rule, one number, on every page. (The default for
		// `latchkey serve` stays 12.)
		"  password:",
		"    min_length: 10",
		"  questions:",
		"    list:",
		"      - " + q("What was the name of your first pet?"),
		"      - " + q("In what town or city was your first job?"),
		"      - " + q("What was the name of the street you grew up on?"),
		"      - " + q("What was the first concert you went to?"),
		"admin:",
		"  groups: [" + q(dir.GroupDN("sspr-admins")) + "]",
		"email:",
		"  enabled: true",
		"sms:",
		"  enabled: true",
		"  allowed_countries: [GB, US, CA, DE, FR, NL, BE, ES, IT, IE, SE, NO, DK, FI, PL, CH, AT, AU, NZ, IN]",
		"store:",
		"  driver: sqlite",
		"  dsn: " + q("file:"+filepath.Join(work, "latchkey.db")),
		"log:",
		"  level: info",
		"  format: text",
		"  audit_file: " + q(auditFile),
	}, "\n") + "\n"
	path := filepath.Join(work, "demo.yaml")
	return path, os.WriteFile(path, []byte(yaml), 0o600)
}

// demoMethods are every method kind: passkeys only where they can work.
func demoMethods(passkeys bool) string {
	if passkeys {
		return "email, sms, totp, webauthn, questions"
	}
	return "email, sms, totp, questions"
}

// demoAdmin is the demo's admin (member of admin.groups), whose
// authenticator app the demo sets up.
const demoAdmin = "ada"

func printDemo(w io.Writer, publicURL string, dir *demodir.Server, adminApp string) {
	fmt.Fprintf(w, `
Latchkey demo: NOT FOR PRODUCTION. An embedded directory, a temporary store,
and an outbox page instead of mail and SMS, on this machine only. Everything
is removed when it stops (Ctrl-C).

  Open        %s/
  Outbox      %s/demo/outbox   (the codes "sent" by mail and SMS)

Accounts (directory %s):
`, publicURL, publicURL, dir.URL())
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, u := range dir.Users() {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", u.Username, u.Password, u.Note)
	}
	tw.Flush()
	fmt.Fprintf(w, `
Try: sign in at /register as carol, add an email address (the code is in the
outbox), then "Forgot my password" at /reset, and sign in with the new one.

Admin console: %s/admin as %s. Her authenticator app's secret is
  %s
(add it to an app, or read the current code on the outbox page).
`, publicURL, demoAdmin, adminApp)
}

// demoPages is the flow.Demo of `latchkey demo`.
type demoPages struct {
	*notify.Outbox
	dir *demodir.Server
	// adminApp is the demo admin's authenticator secret
	adminApp string
}

func (d *demoPages) Accounts() []flow.DemoAccount {
	var out []flow.DemoAccount
	for _, u := range d.dir.Users() {
		a := flow.DemoAccount{Username: u.Username, Password: u.Password, Note: u.Note}
		if u.Username == demoAdmin {
			a.AppSecret = d.adminApp
		}
		out = append(out, a)
	}
	return out
}

func (d *demoPages) Lock(ctx context.Context, username string) error {
	return d.dir.Lock(username)
}
