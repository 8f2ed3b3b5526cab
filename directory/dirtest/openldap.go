package dirtest

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
)

//go:embed testdata/slapd.conf.in
var slapdConf string

//go:embed testdata/openldap-seed.ldif
var openldapSeed string

// Option tunes a test slapd.
type Option func(*options)

type options struct {
	referral string
	// certNames, when set, are the only DNS names of the server certificate
	certNames    []string
	certNamesSet bool
	// provider loads syncprov: the server can be replicated (StartReplica)
	provider bool
	// consumer, when set, makes the server a syncrepl consumer of this
	// provider instead of a seeded server of its own
	consumer *Server
	// extra is LDIF added after the seed, in the same ldapadd connection
	extra string
}

// WithReferral makes slapd answer every operation outside its naming
// context with a referral to url (slapd's global "referral" directive).
func WithReferral(url string) Option { return func(o *options) { o.referral = url } }

// WithCertNames gives slapd a server certificate valid for exactly these DNS
// names and no IP address (the test CA still signs it; Server.CAFile
// verifies it). With no names the certificate has no subject alternative
// name, only CN=localhost. Admin, UserBind and Modify, which connect to
// 127.0.0.1 over LDAPS, do not work on such a server.
func WithCertNames(dns ...string) Option {
	return func(o *options) { o.certNames, o.certNamesSet = dns, true }
}

// WithLDIF adds these entries after the seeded ones, in the same ldapadd
// run (one connection): how the bench loads 10,000 users in seconds.
func WithLDIF(ldif string) Option { return func(o *options) { o.extra = ldif } }

// AsProvider loads the syncprov overlay, so that StartReplica can start a
// consumer replicating from the server.
func AsProvider() Option { return func(o *options) { o.provider = true } }

// StartOpenLDAP starts a seeded slapd on free loopback ports (ldap:// with
// StartTLS, and ldaps://) in a temporary directory, stopped at cleanup.
// It takes about 0.2 s.
func StartOpenLDAP(t testing.TB, opts ...Option) *Server {
	t.Helper()
	need(t, "slapd", "slaptest", "ldapadd")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s, stop, err := runOpenLDAP(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

// StartReplica starts a second slapd that replicates provider's naming
// context with syncrepl (refreshAndPersist, binding to the provider's
// ldap:// URL as its rootdn, retrying every second), and waits until the
// seeded entries have arrived. provider must have been started with
// AsProvider. The replica is read-only: a write to it is refused with
// "shadow context; no update referral" (53). It serves the provider's
// certificate, so the provider's CAFile verifies both. Stopped at cleanup.
func StartReplica(t testing.TB, provider *Server) *Server {
	t.Helper()
	need(t, "slapd", "slaptest", "ldapadd")
	if provider.proc == nil || !provider.proc.provider {
		t.Fatal("dirtest: StartReplica needs a provider started with dirtest.AsProvider()")
	}
	s, stop, err := runOpenLDAP(t.TempDir(), options{consumer: provider})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	// the last seeded entry has arrived: the refresh is complete
	if err := s.WaitReplicated(provider, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// WaitReplicated waits until the replica s holds the same contextCSN as
// provider: every change made on the provider so far has arrived.
func (s *Server) WaitReplicated(provider *Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		want, err1 := provider.contextCSN()
		got, err2 := s.contextCSN()
		if err1 == nil && err2 == nil && want != "" && got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dirtest: replica not in sync after %s: provider contextCSN %q (%v), replica %q (%v)", timeout, want, err1, got, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) contextCSN() (string, error) {
	cmd := exec.Command("ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", s.URL, "-D", s.AdminDN, "-w", s.AdminPassword,
		"-s", "base", "-b", s.BaseDN, "contextCSN")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	var csns []string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "contextCSN: "); ok {
			csns = append(csns, strings.TrimSpace(v))
		}
	}
	return strings.Join(csns, ","), nil
}

// PID is the process id of the slapd (0 when not a slapd this package
// started), for CPU accounting from /proc.
func (s *Server) PID() int {
	if s.proc == nil {
		return 0
	}
	s.proc.mu.Lock()
	defer s.proc.mu.Unlock()
	if s.proc.cmd == nil || s.proc.cmd.Process == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// RunOpenLDAP is StartOpenLDAP outside tests (the dev environment): it runs
// a seeded slapd with its files in dir until stop is called.
func RunOpenLDAP(dir string) (s *Server, stop func(), err error) {
	return runOpenLDAP(dir, options{})
}

// slapdProc is a slapd a test owns: it can be stopped and started again on
// the same ports with the same data (Stop, Restart).
type slapdProc struct {
	conf, dir string
	urls      string
	provider  bool
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	logf      *os.File
}

func (p *slapdProc) start() error {
	logf, err := os.OpenFile(filepath.Join(p.dir, "slapd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// -d 0: stay in the foreground, so the caller owns the process.
	cmd := exec.Command("slapd", "-d", "0", "-f", p.conf, "-h", p.urls)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("dirtest: starting slapd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited, p.logf = cmd, exited, logf
	p.mu.Unlock()
	return nil
}

// kill stops slapd with SIGKILL (throwaway data: no clean shutdown needed;
// mdb is crash-safe) and waits for it to exit.
func (p *slapdProc) kill() {
	p.mu.Lock()
	cmd, exited, logf := p.cmd, p.exited, p.logf
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
	logf.Close()
}

// Stop stops the server (SIGKILL: like a crash or a pulled cable) and
// waits until it has exited. Restart brings it back. OpenLDAP only.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.proc == nil {
		t.Fatal("dirtest: Stop works on a slapd started by StartOpenLDAP or StartReplica")
	}
	s.proc.kill()
}

// Restart starts a stopped server again on the same ports with the same
// data, and waits until it answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.proc == nil {
		t.Fatal("dirtest: Restart works on a slapd started by StartOpenLDAP or StartReplica")
	}
	s.proc.kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.proc.start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		exited := s.proc.exited
		go func() {
			select {
			case <-exited:
				cancel()
			case <-ctx.Done():
			}
		}()
		err = waitLDAP(ctx, s.URL, s.CAPEM)
		cancel()
		if err == nil {
			return
		}
		// the old listener's port may linger for a moment: try again
		s.proc.kill()
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
	t.Fatalf("dirtest: slapd did not restart: %v\n%s", err, tailString(string(log), 4000))
}

func copyCerts(from, to string) (*Certs, error) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"ca.crt", "server.crt", "server.key"} {
		b, err := os.ReadFile(filepath.Join(from, name)) // #nosec G304 -- the test provider's own files
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	pem, err := os.ReadFile(filepath.Join(to, "ca.crt")) // #nosec G304 -- written just above
	if err != nil {
		return nil, err
	}
	return &Certs{Dir: to, CAFile: filepath.Join(to, "ca.crt"), CAPEM: pem}, nil
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// consumerConf turns the provider's configuration into a read-only
// syncrepl consumer's: no refint (it would write), a syncrepl stanza, and
// the same schema, ACLs and password policy (so binds behave alike).
func consumerConf(text string, provider *Server) string {
	text = strings.Replace(text, "overlay refint\nrefint_attributes member\n", "", 1)
	// memberOf arrives with the replicated entries (attrs="*,+"); the
	// overlay stays loaded for its schema only
	text = strings.Replace(text, "overlay memberof\n", "# memberof: replicated, not computed\n#overlay memberof\n", 1)
	for _, k := range []string{"memberof-group-oc", "memberof-member-ad", "memberof-memberof-ad", "memberof-refint"} {
		text = strings.Replace(text, "\n"+k+" ", "\n#"+k+" ", 1)
	}
	sync := fmt.Sprintf(`
syncrepl rid=001
  provider=%s
  type=refreshAndPersist
  retry="1 +"
  searchbase=%q
  scope=sub
  attrs="*,+"
  schemachecking=off
  bindmethod=simple
  binddn=%q
  credentials=%s
`, provider.URL, provider.BaseDN, provider.AdminDN, provider.AdminPassword)
	return strings.Replace(text, "\nindex objectClass eq\n", sync+"\nindex objectClass eq\nindex entryCSN eq\n", 1)
}

func runOpenLDAP(dir string, o options) (s *Server, stop func(), err error) {
	var certs *Certs
	if o.consumer != nil {
		// the provider's certificate (valid for 127.0.0.1): one CA file
		// verifies both servers
		certs, err = copyCerts(filepath.Join(o.consumer.Dir, "certs"), filepath.Join(dir, "certs"))
	} else if o.certNamesSet {
		certs, err = WriteCertsFor(filepath.Join(dir, "certs"), o.certNames...)
	} else {
		certs, err = WriteCerts(filepath.Join(dir, "certs"))
	}
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "slapd.conf")
	text := strings.ReplaceAll(slapdConf, "@DIR@", dir)
	if o.referral != "" {
		text = strings.Replace(text, "\nmodulepath ", "\nreferral "+o.referral+"\n\nmodulepath ", 1)
	}
	if o.provider || o.consumer != nil {
		text = strings.Replace(text, "\nmoduleload ppolicy\n", "\nmoduleload ppolicy\nmoduleload syncprov\n", 1)
	}
	if o.provider {
		text = strings.Replace(text, "\nindex objectClass eq\n", "\nindex objectClass eq\nindex entryCSN eq\n", 1)
		text += "\noverlay syncprov\nsyncprov-checkpoint 100 1\n"
	}
	if o.consumer != nil {
		text = consumerConf(text, o.consumer)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, nil, err
	}
	if out, err := exec.Command("slaptest", "-Q", "-u", "-f", conf).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("dirtest: slaptest: %v\n%s", err, out)
	}
	s = &Server{
		Flavor: directory.OpenLDAP, Dir: dir, CAFile: certs.CAFile, CAPEM: certs.CAPEM,
		BaseDN:           "dc=example,dc=org",
		UserFilter:       "(&(objectClass=inetOrgPerson)(uid={username}))",
		ServiceDN:        "cn=sspr,ou=services,dc=example,dc=org",
		ServicePassword:  "ssprpw-Secret1",
		AdminDN:          "cn=admin,dc=example,dc=org",
		AdminPassword:    "adminpw",
		ReadOnlyDN:       "cn=sspr-readonly,ou=services,dc=example,dc=org",
		ReadOnlyPassword: "ssprpw-Secret1",
		DefaultPolicyDN:  "cn=default,ou=policies,dc=example,dc=org",
		SpecialUser:      `d*v(e)\`,
		UnicodeUser:      "josé",
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		p1, err1 := freePort()
		p2, err2 := freePort()
		if err1 != nil || err2 != nil || p1 == p2 {
			continue
		}
		s.URL = "ldap://127.0.0.1:" + strconv.Itoa(p1)
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(p2)
		p := &slapdProc{conf: conf, dir: dir, urls: s.URL + "/ " + s.LDAPSURL + "/", provider: o.provider}
		if err := p.start(); err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		exited := p.exited
		go func() {
			select {
			case <-exited:
				cancel()
			case <-ctx.Done():
			}
		}()
		lastErr = waitLDAP(ctx, s.URL, certs.CAPEM)
		cancel()
		if lastErr != nil {
			p.kill()
			continue // most likely a port taken in between: try others
		}
		s.proc = p
		stop = p.kill
		if o.consumer != nil {
			return s, stop, nil // the entries come from the provider
		}
		seed := exec.Command("ldapadd", "-x", "-H", s.URL, "-D", s.AdminDN, "-w", s.AdminPassword)
		seed.Stdin = strings.NewReader(openldapSeed)
		if o.extra != "" {
			seed.Stdin = strings.NewReader(openldapSeed + "\n" + o.extra)
		}
		if out, err := seed.CombinedOutput(); err != nil {
			stop()
			return nil, nil, fmt.Errorf("dirtest: seeding slapd: %v\n%s", err, out)
		}
		return s, stop, nil
	}
	log, _ := os.ReadFile(filepath.Join(dir, "slapd.log"))
	return nil, nil, fmt.Errorf("dirtest: slapd did not start: %v\n%s", lastErr, log)
}

// Freeze stops the server's process with SIGSTOP: it keeps its connections
// open and answers nothing, so a request sent now stays in flight until Stop
// kills the process (SIGKILL ends a stopped process too). OpenLDAP only.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if s.proc == nil {
		t.Fatal("dirtest: Freeze works on a slapd started by StartOpenLDAP or StartReplica")
	}
	s.proc.mu.Lock()
	cmd := s.proc.cmd
	s.proc.mu.Unlock()
	if cmd == nil {
		t.Fatal("dirtest: Freeze on a stopped server")
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// SIGSTOP stops each thread when it is next scheduled: on a busy
	// machine slapd could still take and answer a request sent after
	// Signal returned (a CI run saw a write "in flight" succeed). Wait,
	// bounded, until every thread shows as stopped.
	for deadline := time.Now().Add(5 * time.Second); !threadsStopped(cmd.Process.Pid) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// threadsStopped reports whether every thread of process pid is stopped
// (or gone), from /proc; true where /proc cannot be read.
func threadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		// the state follows the command name, which is in parentheses
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			continue
		}
		if !strings.ContainsRune("TtZX", rune(b[i+2])) {
			return false
		}
	}
	return true
}

// Thaw resumes a server stopped by Freeze (SIGCONT).
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	s.proc.mu.Lock()
	cmd := s.proc.cmd
	s.proc.mu.Unlock()
	if cmd != nil {
		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
}

// Unread reports how many bytes the server's sockets on port have received
// and not yet read (the receive queues in /proc/net/tcp): while the server is
// frozen, more than zero means a request has reached it and waits.
func Unread(port int) (int, error) {
	total := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 5 {
				continue
			}
			local := fields[1]
			i := strings.LastIndexByte(local, ':')
			p, err := strconv.ParseUint(local[i+1:], 16, 32)
			if err != nil || int(p) != port {
				continue
			}
			q := fields[4] // tx_queue:rx_queue
			j := strings.IndexByte(q, ':')
			rx, err := strconv.ParseUint(q[j+1:], 16, 32)
			if err != nil {
				continue
			}
			total += int(rx)
		}
	}
	return total, nil
}

// Connected reports whether this process has an established TCP
// connection to 127.0.0.1:port (from /proc/net/tcp and the socket inodes
// of /proc/self/fd): which server a client's pooled connection went to.
func Connected(port int) (bool, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false, err
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "01" { // 01: ESTABLISHED
			continue
		}
		i := strings.LastIndexByte(f[2], ':')
		p, err := strconv.ParseUint(f[2][i+1:], 16, 32)
		if err == nil && int(p) == port && mine[f[9]] {
			return true, nil
		}
	}
	return false, nil
}
