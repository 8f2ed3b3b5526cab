package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/blackbox"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
)

// mailDomain is the bench users' mail domain.
const mailDomain = "bench.example.net"

// userName is the uid of bench user i.
func userName(i int) string { return fmt.Sprintf("bench%05d", i) }

// seedPassword is the password bench user i starts with.
func seedPassword(i int) string { return fmt.Sprintf("Bench-Seed-%05d-x", i) }

func userAddr(i int) string { return userName(i) + "@" + mailDomain }

// userPhone is the i-th SMS number of the outbox burst: UK numbers set
// aside for drama (07700 900000 to 900999), which reach nobody.
func userPhone(i int) string { return fmt.Sprintf("+447700900%03d", i) }

// usersLDIF is n users in nested groups: 100 users per team group
// (cn=bench-team-NNN), ten teams per department (cn=bench-dept-NN), every
// department in cn=bench-users, the group the bench policy makes eligible.
func usersLDIF(n int) string {
	var b strings.Builder
	for i := range n {
		u := userName(i)
		fmt.Fprintf(&b, "dn: uid=%s,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: %s\ncn: Bench User %d\nsn: User%d\nmail: %s\nuserPassword: %s\n\n",
			u, u, i, i, userAddr(i), seedPassword(i))
	}
	b.WriteString(dirtest.BenchGroupsLDIF(n, func(i int) string { return "uid=" + userName(i) + ",ou=people,dc=example,dc=org" }))
	return b.String()
}

// ldapConn dials the server over LDAPS, verifying the test CA.
func ldapConn(srv *dirtest.Server) (*ldap.Conn, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	return ldap.DialURL(srv.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
}

// entryUUIDs maps the bench users' uids to their entryUUID (the gateway's
// account id), read as the service account in one paged search.
func entryUUIDs(srv *dirtest.Server) (map[string]string, error) {
	c, err := ldapConn(srv)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Bind(srv.AdminDN, srv.AdminPassword); err != nil {
		return nil, err
	}
	res, err := c.SearchWithPaging(ldap.NewSearchRequest("ou=people,"+srv.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=bench*)", []string{"uid", "entryUUID"}, nil), 1000)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(res.Entries))
	for _, e := range res.Entries {
		out[e.GetAttributeValue("uid")] = e.GetAttributeValue("entryUUID")
	}
	return out, nil
}

// gateway is one running latchkey serve process.
type gateway struct {
	base  string
	work  string
	proc  *blackbox.Process
	pprof string // base URL of net/http/pprof in a bench build, or ""
}

func (g *gateway) pid() int { return g.proc.Cmd.Process.Pid }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// gatewayConfig writes a bench configuration (blackbox.Config with budgets
// raised to the directory's size, the bench users' group eligible, the
// store st, warnings only in the log) with the secret key key into work
// and returns its path and the port.
func gatewayConfig(work, key string, st config.Store, srv *dirtest.Server, mail *notifytest.Mailpit, sms *notifytest.FakeTwilio, padFloor time.Duration, poolSize, outboxMaxPending int) (cfgPath string, port int, err error) {
	port, err = freePort()
	if err != nil {
		return "", 0, err
	}
	c, err := blackbox.Config(work, port, key, blackbox.Servers{Dir: srv, Mail: mail, SMS: sms})
	if err != nil {
		return "", 0, err
	}
	if poolSize > 0 {
		c.Directory.PoolSize = poolSize
	}
	c.Policy.Groups = []string{"cn=bench-users,ou=groups," + srv.BaseDN}
	// every bench user may sign in to the admin console (with an
	// authenticator app, which only the bench's admin has: preview.go)
	c.Admin.Groups = c.Policy.Groups
	c.Policy.PadFloor = padFloor
	c.Limits.StartsPerAccount = 1000000
	c.Limits.StartsPerIP = 10000000
	c.Limits.StartsTotal = 10000000
	c.Limits.SignInsPerIP = 10000000
	c.Limits.SendsPerAccount = 1000000
	c.Limits.SendsPerDestination = 1000000
	c.Limits.CodeFailuresPerAccount = 1000000
	c.Limits.SMSPerHour = 1000000
	c.Limits.SMSPerPrefixPerHour = 1000000
	c.Limits.BindFailures = 1000000
	if outboxMaxPending > 0 {
		c.Outbox.MaxPending = outboxMaxPending
	}
	c.Store = st
	// the bench's PostgreSQL gateways migrate at start (several at once:
	// serialized) and stop without a drain
	c.Store.Migrate = config.MigrateOnStart
	c.Server.ShutdownDelay = 0
	c.Log.Level = "warn"
	cfgPath = filepath.Join(work, "latchkey.yaml")
	return cfgPath, port, blackbox.WriteConfig(cfgPath, c)
}

// sqliteStore is the store section and opener of a SQLite file in work.
func sqliteStore(work string) (config.Store, storeOpener) {
	st := blackbox.SQLiteStore(filepath.Join(work, "latchkey.db"))
	return st, func(ctx context.Context, key []byte) (store.Store, error) { return store.OpenSQLite(ctx, st.DSN, key) }
}

// postgresStore is the store section and opener of database dsn
// (loopback: no TLS needed, no allow_plaintext).
func postgresStore(dsn string) (config.Store, storeOpener) {
	return blackbox.PostgresStore(dsn, false), func(ctx context.Context, key []byte) (store.Store, error) {
		return store.OpenPostgres(ctx, dsn, key, store.PostgresOptions{})
	}
}

// serverVersion is a PostgreSQL server's server_version.
func serverVersion(dsn string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	err = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// storeOpener opens a gateway's store with its key.
type storeOpener func(ctx context.Context, key []byte) (store.Store, error)

// seedStore opens the gateways' store before they start (creating its
// schema) and registers a verified email method for each of accounts (uid
// -> entryUUID), a verified SMS method for those in phones (uid -> number)
// and, when outstanding > 0, that many live flows with codes.
func seedStore(ctx context.Context, open storeOpener, key string, accounts, phones map[string]string, outstanding int, extra ...store.Method) error {
	st, err := open(ctx, []byte(key))
	if err != nil {
		return err
	}
	defer st.Close()
	at := time.Now().Add(-24 * time.Hour)
	for uid, id := range accounts {
		b := make([]byte, 11)
		_, _ = rand.Read(b)
		ms := []store.Method{{ID: hex.EncodeToString(b), AccountID: id, Type: store.MethodEmail, Address: uid + "@" + mailDomain, CreatedAt: at}}
		if phone, ok := phones[uid]; ok {
			_, _ = rand.Read(b)
			ms = append(ms, store.Method{ID: hex.EncodeToString(b), AccountID: id, Type: store.MethodSMS, Address: phone, CreatedAt: at})
		}
		for _, m := range ms {
			if err := st.AddMethod(ctx, m); err != nil {
				return err
			}
			if err := st.VerifyMethod(ctx, id, m.ID, at); err != nil {
				return err
			}
		}
	}
	for _, m := range extra {
		if err := st.AddMethod(ctx, m); err != nil {
			return err
		}
		if err := st.VerifyMethod(ctx, m.AccountID, m.ID, at); err != nil {
			return err
		}
	}
	if outstanding > 0 {
		return store.SeedOutstanding(ctx, st, outstanding, time.Now())
	}
	return nil
}

// startGateway runs binary serve with cfgPath (blackbox.Launch; the bench
// logs warnings only, so it waits on /readyz alone) and stops it when t
// ends.
func startGateway(t testing.TB, binary, work, cfgPath string, port int, withPprof bool) (*gateway, error) {
	g := &gateway{base: "http://127.0.0.1:" + strconv.Itoa(port), work: work}
	var environ []string
	if withPprof {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		g.pprof = "http://127.0.0.1:" + strconv.Itoa(pp)
		environ = append(environ, "LATCHKEY_PPROF_LISTEN=127.0.0.1:"+strconv.Itoa(pp))
	}
	p, err := blackbox.Launch(binary, cfgPath, filepath.Join(work, "latchkey.log"), g.base, environ, false)
	if err != nil {
		return nil, err
	}
	g.proc = p
	t.Cleanup(func() { p.Stop() })
	return g, nil
}

// ---------------------------------------------------------------- /proc

// cpuTime is utime+stime of a process.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// fields after the command name in parentheses
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTicks
}

// serverCPUTime is utime+stime of process pid and of its live children,
// plus pid's cutime+cstime (the children that exited and were reaped): a
// PostgreSQL server's CPU, the postmaster and its backends (each backend
// calls setsid, so a process group would miss them).
func serverCPUTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := strconv.Itoa(pid)
	var ticks int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 15 {
			continue
		}
		last := 0
		switch {
		case e.Name() == parent:
			last = 14 // utime, stime, cutime, cstime
		case f[1] == parent: // ppid
			last = 12 // utime, stime
		}
		for k := 11; k <= last; k++ {
			v, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += v
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// peakRSS is VmHWM of a process in KiB (0 if unknown).
func peakRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// profile fetches a CPU profile (kind "profile") or an execution trace
// (kind "trace") of seconds from a bench-built gateway.
func (g *gateway) profile(kind string, seconds int, path string) error {
	if g.pprof == "" {
		return nil
	}
	res, err := http.Get(g.pprof + "/debug/pprof/" + kind + "?seconds=" + url.QueryEscape(strconv.Itoa(seconds)))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path) // #nosec G304 -- a path the operator gave
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

func numCPU() int { return runtime.NumCPU() }
