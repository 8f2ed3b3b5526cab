// Package bench is latchkey-bench: it seeds a throwaway slapd with many
// users in nested groups, starts the real latchkey binary against it with
// mail to mailpit and SMS to the fake Twilio, drives the HTTP API at
// several concurrencies, runs the raw go-ldap sequences (the ceiling) in
// the same run, checks that the passwords really changed and that the
// messages arrived, and reports throughput, latency, CPU and memory.
//
// It lives in internal/ and is built as cmd/latchkey-bench because it
// reuses the test servers of directory/dirtest and notify/notifytest: the
// latchkey binary shipped to users carries none of them.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/blackbox"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// Options configure a run.
type Options struct {
	Users       int           // bench users in the directory (10,000)
	Duration    time.Duration // per scenario and concurrency
	MaxOps      int           // per scenario and concurrency
	Concurrency []int         // 1, 8, 32
	Reps        int           // repetitions of the whole sequence
	EnumSamples int           // reset starts per kind for the enumeration check (negative: none)
	Outstanding int           // flows and codes in the scaling case's store (negative: none)
	Smoke       bool          // seconds-long; correctness only
	Binary      string        // latchkey binary ("" builds one)
	CPUProfile  string        // prefix of gateway CPU profiles ("" for none)
	PadFloor    time.Duration // policy.pad_floor of the bench gateway (0: default)
	PoolSize    int           // directory.pool_size of the bench gateway (0: default)
	// OutboxMaxPending is outbox.max_pending of the gateways (0: the
	// default): a small one makes code sends answer busy under load.
	OutboxMaxPending int
	// Store is the gateways' store.driver: "sqlite" (the default, a file
	// per gateway) or "postgres" (a throwaway server of store/pgtest, a
	// database per store).
	Store string
	// Instances is the number of gateways sharing the store (1; more needs
	// postgres); each request goes to the next one in turn.
	Instances int
	// Only names the scenarios to run (change, reset, start, register,
	// page; empty: all). The ceilings run with their scenario, and the
	// checks that need a skipped scenario are left out.
	Only []string
	Log  io.Writer
}

// Scenarios are the names Options.Only accepts.
var Scenarios = []string{"change", "reset", "start", "register", "page", "sends", "preview"}

func (o *Options) runs(name string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, name) }

// Defaults fills unset fields: the full run, or the smoke run.
func (o *Options) Defaults() {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Smoke {
		def(&o.Users, 200)
		defD(&o.Duration, 400*time.Millisecond)
		def(&o.MaxOps, 15)
		def(&o.EnumSamples, 20)
		def(&o.Outstanding, 1000)
		if o.Concurrency == nil {
			o.Concurrency = []int{1, 8}
		}
	}
	def(&o.Users, 10000)
	defD(&o.Duration, 5*time.Second)
	def(&o.MaxOps, 20000)
	def(&o.Reps, 1)
	def(&o.Instances, 1)
	if o.Store == "" {
		o.Store = "sqlite"
	}
	if o.EnumSamples == 0 { // negative: none
		o.EnumSamples = 400
	}
	if o.Outstanding == 0 { // negative: no scaling case
		o.Outstanding = 100000
	}
	if o.Concurrency == nil {
		o.Concurrency = []int{1, 8, 32}
	}
}

func def(p *int, v int) {
	if *p <= 0 {
		*p = v
	}
}

func defD(p *time.Duration, v time.Duration) {
	if *p <= 0 {
		*p = v
	}
}

// check refuses options that cannot run.
func (o *Options) check() error {
	switch o.Store {
	case "sqlite":
		if o.Instances > 1 {
			return fmt.Errorf("bench: %d instances need --store postgres (a SQLite store serves one process)", o.Instances)
		}
	case "postgres":
	default:
		return fmt.Errorf("bench: store %q is not sqlite or postgres", o.Store)
	}
	return nil
}

// Report is what a run measured and checked.
type Report struct {
	Started   time.Time `json:"started"`
	Smoke     bool      `json:"smoke"`
	Users     int       `json:"users"`
	Store     string    `json:"store"`
	Instances int       `json:"instances"`
	// PostgresVersion is the server's server_version with --store postgres.
	PostgresVersion string      `json:"postgres_version,omitempty"`
	SeedSeconds     float64     `json:"seed_seconds"`
	Cores           int         `json:"cores"`
	LoadBefore      string      `json:"load_avg_before"`
	LoadAfter       string      `json:"load_avg_after"`
	Rows            []Row       `json:"rows"`
	Enumeration     Enumeration `json:"enumeration"`
	Scaling         *Scaling    `json:"scaling,omitempty"`
	// PeakRSSKiB is the largest VmHWM of the gateways, InstancesRSSKiB
	// each one's (with more than one instance).
	PeakRSSKiB      int      `json:"gateway_peak_rss_kib"`
	InstancesRSSKiB []int    `json:"instances_peak_rss_kib,omitempty"`
	Checks          Checks   `json:"checks"`
	Profiles        []string `json:"profiles,omitempty"`
	// Sends is the outbox's delivery rate per channel ("sends").
	Sends []SendRate `json:"sends,omitempty"`
}

// Scaling compares an empty store with one holding Outstanding flows and
// codes, with the same requests alternating between two gateways.
type Scaling struct {
	Outstanding int                `json:"outstanding"`
	EmptyP50ms  map[string]float64 `json:"empty_p50_ms"`
	SeededP50ms map[string]float64 `json:"seeded_p50_ms"`
	Ratio       map[string]float64 `json:"ratio"`
	Flows       int                `json:"flows"`
}

// Checks are the correctness results: a failure here fails the run.
type Checks struct {
	PasswordsChanged  int `json:"passwords_changed"`
	PasswordsVerified int `json:"passwords_verified_by_bind"`
	CodesRequested    int `json:"codes_requested"`
	CodesReceived     int `json:"codes_received"`
	// CodesBusy counts the code sends answered 503 busy (the outbox was
	// full): every code asked for either arrived or was answered busy.
	CodesBusy int `json:"codes_busy"`
	// CodeMailsPerSecond is the code mails that reached the mail server
	// per second of the full reset scenario's runs (the outbox's rate).
	CodeMailsPerSecond float64        `json:"code_mails_per_second,omitempty"`
	ResetsCompleted    int            `json:"resets_completed"`
	MessagesReceived   int            `json:"messages_received"`
	MessagesBySubject  map[string]int `json:"messages_by_subject"`
	SMSReceived        int            `json:"sms_received"`
	Failures           []string       `json:"failures,omitempty"`
}

// ErrCorrectness is returned (wrapped) when a check failed.
var ErrCorrectness = errors.New("bench: correctness check failed")

// run is the state of one bench run.
type run struct {
	o        Options
	t        testing.TB
	srv      *dirtest.Server
	mail     *notifytest.Mailpit
	sms      *notifytest.FakeTwilio
	pg       *pgtest.Server // with --store postgres
	dbs      int            // databases made on pg
	mb       *blackbox.Collector
	gws      []*gateway       // the instances sharing the store
	gw       *gateway         // the first: profiled
	api      *blackbox.Client // round robin over gws
	pw       []string         // current password per user index
	rep      *Report
	codes    atomic.Int64 // codes asked for by email (202 answers)
	smsCodes atomic.Int64 // and by SMS (the outbox burst)
	busy     atomic.Int64 // code sends answered 503 busy
	// mails taken by fullReset, and the time it ran (the outbox's rate)
	resetMails, resetWall atomic.Int64
	done                  atomic.Int64 // resets completed
	// user ranges
	chg, rawChg, rawAdm, rst, reg, snd [2]int
	regNext                            atomic.Int64
	phones                             map[string]string // snd users' SMS numbers
	// admin is the admin console's bench admin (preview.go)
	admin *adminApp
}

// Run performs the bench. t provides the servers' lifetimes (a test's T,
// or a CommandTB).
func Run(t testing.TB, o Options) (*Report, error) {
	o.Defaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	r := &run{o: o, t: t, rep: &Report{Started: time.Now().UTC(), Smoke: o.Smoke, Users: o.Users, Store: o.Store, Instances: o.Instances,
		LoadBefore: loadAvg(), Cores: numCPU()}}
	return r.rep, r.run()
}

func (r *run) logf(format string, args ...any) { fmt.Fprintf(r.o.Log, format+"\n", args...) }

func (r *run) run() error {
	o := r.o
	bin, resetAccounts, err := r.startServers()
	if err != nil {
		return err
	}
	p, pd, err := r.startGateways(bin, resetAccounts)
	if err != nil {
		return err
	}
	lim := limits{dur: o.Duration, max: o.MaxOps}
	r.scenarios(p, pd, lim)
	if o.runs("sends") && r.snd[1] > r.snd[0] {
		r.sendBursts()
	}
	if o.runs("preview") {
		r.preview(p)
	}
	if o.EnumSamples > 0 {
		r.logf("enumeration check (%d samples per kind)...", o.EnumSamples)
		r.rep.Enumeration = r.enumeration(o.EnumSamples)
	}
	for _, g := range r.gws {
		kib := peakRSS(g.pid())
		r.rep.PeakRSSKiB = max(r.rep.PeakRSSKiB, kib)
		if len(r.gws) > 1 {
			r.rep.InstancesRSSKiB = append(r.rep.InstancesRSSKiB, kib)
		}
	}

	if o.Outstanding > 0 && o.runs("reset") {
		r.logf("scaling case: %d outstanding flows and codes...", o.Outstanding)
		if err := r.scaling(bin, resetAccounts, lim); err != nil {
			return err
		}
	}
	r.checks()
	r.rep.LoadAfter = loadAvg()
	if len(r.rep.Checks.Failures) > 0 {
		return fmt.Errorf("%w: %s", ErrCorrectness, strings.Join(r.rep.Checks.Failures, "; "))
	}
	return nil
}

// startServers splits the users among the scenarios, starts PostgreSQL
// (when asked), slapd seeded with the users, mailpit and the SMS server,
// and builds the gateway binary unless one was given. It returns the
// binary and the reset scenario's accounts (name to entryUUID).
func (r *run) startServers() (bin string, resetAccounts map[string]string, err error) {
	o := r.o
	n := o.Users
	fifth := n / 5
	r.chg, r.rawChg, r.rawAdm, r.rst, r.reg = [2]int{0, fifth}, [2]int{fifth, 2 * fifth}, [2]int{2 * fifth, 3 * fifth}, [2]int{3 * fifth, 4 * fifth}, [2]int{4 * fifth, n}
	// the outbox burst's users: the end of the reset range, with an SMS
	// number as well as their email
	k := min(sendBurstMax, fifth/4)
	r.snd = [2]int{r.rst[1] - k, r.rst[1]}
	r.rst[1] -= k
	r.phones = map[string]string{}
	for i := r.snd[0]; i < r.snd[1]; i++ {
		r.phones[userName(i)] = userPhone(i - r.snd[0])
	}
	r.pw = make([]string, n)
	for i := range n {
		r.pw[i] = seedPassword(i)
	}

	if o.Store == "postgres" {
		// first: without PostgreSQL a test skips (fails under CI) at once
		r.pg = pgtest.StartPrivate(r.t)
		v, err := serverVersion(r.pg.DSN("postgres"))
		if err != nil {
			return "", nil, fmt.Errorf("PostgreSQL: %w", err)
		}
		r.rep.PostgresVersion = v
		r.logf("PostgreSQL %s ready (pid %d)", v, r.pg.PID())
	}
	bin = o.Binary
	if bin == "" {
		if bin, err = buildBinary(r.t.TempDir(), o.CPUProfile != ""); err != nil {
			return "", nil, err
		}
	}
	r.logf("seeding slapd with %d users in nested groups...", n)
	t0 := time.Now()
	r.srv = dirtest.StartOpenLDAP(r.t, dirtest.WithLDIF(usersLDIF(n)))
	r.rep.SeedSeconds = time.Since(t0).Seconds()
	r.logf("slapd ready in %.1f s (pid %d)", r.rep.SeedSeconds, r.srv.PID())
	r.mail = notifytest.StartMailpit(r.t, notifytest.MailpitArgs("--max", "0"))
	r.sms = blackbox.StartTwilio(r.t)
	r.mb = blackbox.NewCollector(r.mail)
	r.t.Cleanup(r.mb.Close)

	ids, err := entryUUIDs(r.srv)
	if err != nil {
		return "", nil, fmt.Errorf("reading entryUUIDs: %w", err)
	}
	resetAccounts = map[string]string{}
	for i := r.rst[0]; i < r.snd[1]; i++ { // the burst's users too
		resetAccounts[userName(i)] = ids[userName(i)]
	}
	return bin, resetAccounts, nil
}

// startGateways starts o.Instances gateways and the API client that sends
// each request to the next in turn. It returns the processes whose CPU
// the gateway scenarios count (p) and the raw directory scenarios (pd).
func (r *run) startGateways(bin string, resetAccounts map[string]string) (p, pd pids, err error) {
	gws, err := r.newGateways(bin, resetAccounts, 0, r.o.Instances, r.o.CPUProfile != "")
	if err != nil {
		return p, pd, err
	}
	r.gws, r.gw = gws, gws[0]
	p = pids{slapd: r.srv.PID()}
	var bases []string
	for _, g := range gws {
		bases = append(bases, g.base)
		p.gateways = append(p.gateways, g.pid())
	}
	r.api = blackbox.NewClient(bases...)
	if r.pg != nil {
		p.store = r.pg.PID()
	}
	return p, pids{slapd: r.srv.PID()}, nil
}

// scenarios measures each scenario asked for at each concurrency, o.Reps
// times over.
func (r *run) scenarios(p, pd pids, lim limits) {
	o := r.o
	for rep := 0; rep < o.Reps; rep++ {
		for _, c := range o.Concurrency {
			r.logf("rep %d, c=%d", rep+1, c)
			if o.runs("change") {
				raw := r.add(measure("raw change (ceiling)", c, pd, func(rec *recorder) { r.rawChange(rec, c, lim) }))
				r.ratio(r.add(r.profiled("change", c, func() Row {
					return measure("change", c, p, func(rec *recorder) { r.change(rec, c, lim) })
				})), raw)
			}
			if o.runs("reset") {
				adm := r.add(measure("raw admin reset (ceiling)", c, pd, func(rec *recorder) { r.rawAdminReset(rec, c, lim) }))
				r.ratio(r.add(r.profiled("reset", c, func() Row {
					return measure("full reset (flows)", c, p, func(rec *recorder) { r.fullReset(rec, c, lim, []*blackbox.Client{r.api}, nil) })
				})), adm)
			}
			if o.runs("start") {
				r.add(r.profiled("start", c, func() Row {
					return measure("reset start", c, p, func(rec *recorder) { r.resetStart(rec, c, lim) })
				}))
			}
			if o.runs("register") {
				r.add(r.profiled("register", c, func() Row {
					return measure("register method", c, p, func(rec *recorder) { r.register(rec, c, lim) })
				}))
			}
			if o.runs("page") {
				r.add(measure("GET /reset page", c, p, func(rec *recorder) { r.page(rec, c, lim) }))
			}
		}
	}
}

func (r *run) add(row Row) *Row {
	r.logf("  %-28s c=%-3d %6d ops %8.1f/s p50 %7.2f ms p99 %7.2f ms errors %d %s", row.Scenario, row.Concurrency, row.Ops, row.OpsPerSec, row.P50ms, row.P99ms, row.Errors, row.FirstErr)
	if row.Errors > 0 {
		r.rep.Checks.Failures = append(r.rep.Checks.Failures, fmt.Sprintf("%s c=%d: %d errors, first: %s", row.Scenario, row.Concurrency, row.Errors, row.FirstErr))
	}
	r.rep.Rows = append(r.rep.Rows, row)
	return &r.rep.Rows[len(r.rep.Rows)-1]
}

// ratio relates a gateway row to its ceiling row (pointers into Rows may
// move when Rows grows, so the ceiling is copied first).
func (r *run) ratio(row *Row, ceiling *Row) {
	_ = row
	c := *ceiling
	last := &r.rep.Rows[len(r.rep.Rows)-1]
	last.Ceiling = c.Scenario
	if c.OpsPerSec > 0 {
		last.Ratio = last.OpsPerSec / c.OpsPerSec
	}
}

// profiled runs fn, taking a CPU profile of the gateway during it at c=8,
// and an execution trace at c=1 (where the time goes while it waits: go
// tool trace -pprof=net|sync|syscall|sched), when asked to.
func (r *run) profiled(name string, c int, fn func() Row) Row {
	if r.o.CPUProfile == "" || (c != 8 && c != 1) || r.gw.pprof == "" {
		return fn()
	}
	kind, ext := "profile", "pprof"
	if c == 1 {
		kind, ext = "trace", "trace"
	}
	path := fmt.Sprintf("%s-%s-c%d.%s", r.o.CPUProfile, name, c, ext)
	secs := max(1, int(r.o.Duration/time.Second)-1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.gw.profile(kind, secs, path); err != nil {
			r.logf("profile %s: %v", path, err)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	row := fn()
	wg.Wait()
	r.rep.Profiles = append(r.rep.Profiles, path)
	return row
}

// newGateways makes a store (a SQLite file, or a new database on the
// PostgreSQL server), seeds it, and starts n gateways on it with the same
// secret key; the first one with pprof when asked.
func (r *run) newGateways(bin string, accounts map[string]string, outstanding, n int, pprof bool) ([]*gateway, error) {
	work := r.t.TempDir()
	key := blackbox.NewSecretKey()
	var st config.Store
	var open storeOpener
	if r.pg != nil {
		r.dbs++
		db := fmt.Sprintf("bench_%d", r.dbs)
		r.pg.Exec(r.t, "postgres", "CREATE DATABASE "+db) // gone with the server
		st, open = postgresStore(r.pg.DSN(db))
	} else {
		st, open = sqliteStore(work)
	}
	var extra []store.Method
	if r.o.runs("preview") {
		if r.admin == nil {
			a, err := r.newAdminApp(accounts)
			if err != nil {
				return nil, err
			}
			r.admin = a
		}
		extra = append(extra, r.admin.method(time.Now().Add(-24*time.Hour)))
	}
	if err := seedStore(context.Background(), open, key, accounts, r.phones, outstanding, extra...); err != nil {
		return nil, fmt.Errorf("seeding the store: %w", err)
	}
	var gws []*gateway
	for i := range n {
		if i > 0 {
			work = r.t.TempDir()
		}
		cfg, port, err := gatewayConfig(work, key, st, r.srv, r.mail, r.sms, r.o.PadFloor, r.o.PoolSize, r.o.OutboxMaxPending)
		if err != nil {
			return nil, err
		}
		g, err := startGateway(r.t, bin, work, cfg, port, pprof && i == 0)
		if err != nil {
			return nil, err
		}
		gws = append(gws, g)
	}
	return gws, nil
}

func buildBinary(dir string, pprof bool) (string, error) {
	bin := filepath.Join(dir, "latchkey")
	args := []string{"build", "-o", bin}
	if pprof {
		args = append(args, "-tags", "latchkey_pprof")
	}
	args = append(args, "github.com/latchkeyhq/latchkey/cmd/latchkey")
	out, err := exec.Command("go", args...).CombinedOutput() // #nosec G204 -- fixed arguments and a temp path
	if err != nil {
		return "", fmt.Errorf("building latchkey: %v\n%s", err, out)
	}
	return bin, nil
}

func newPassword(tag string) string {
	// letters only: digits could repeat a bench user's number, which the
	// gateway's rules refuse as part of the name
	const letters = "ghjkmnpqrstvwxyzGHJKMNPQRSTVWXYZ"
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "Lk-" + tag + "-" + string(b) + "-Pw9"
}

// ---------------------------------------------------------------- the ceiling

// rawConns are one service and one user connection per worker.
func (r *run) rawConns(c int) (svc, usr []*ldap.Conn, closeAll func(), err error) {
	closeAll = func() {
		for _, x := range append(svc, usr...) {
			if x != nil {
				x.Close()
			}
		}
	}
	for range c {
		s, err := ldapConn(r.srv)
		if err != nil {
			return svc, usr, closeAll, err
		}
		svc = append(svc, s)
		if err := s.Bind(r.srv.ServiceDN, r.srv.ServicePassword); err != nil {
			return svc, usr, closeAll, err
		}
		u, err := ldapConn(r.srv)
		if err != nil {
			return svc, usr, closeAll, err
		}
		usr = append(usr, u)
	}
	return svc, usr, closeAll, nil
}

func (r *run) searchUser(conn *ldap.Conn, name string) (string, error) {
	res, err := conn.Search(ldap.NewSearchRequest(r.srv.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
		"(&(objectClass=inetOrgPerson)(uid="+ldap.EscapeFilter(name)+"))", []string{"entryUUID", "pwdAccountLockedTime", "pwdPolicySubentry"}, nil))
	if err != nil {
		return "", err
	}
	if len(res.Entries) != 1 {
		return "", fmt.Errorf("search %s: %d entries", name, len(res.Entries))
	}
	return res.Entries[0].DN, nil
}

// rawChange: service search + user bind + Password Modify (old and new).
func (r *run) rawChange(rec *recorder, c int, l limits) {
	svc, usr, closeAll, err := r.rawConns(c)
	defer closeAll()
	if err != nil {
		rec.fail(err)
		return
	}
	own := newOwned(r.rawChg[0], r.rawChg[1], c)
	closedLoop(rec, c, l, func(w, _ int) error {
		u := own.take(w)
		dn, err := r.searchUser(svc[w], userName(u))
		if err != nil {
			return err
		}
		if err := usr[w].Bind(dn, r.pw[u]); err != nil {
			return err
		}
		next := newPassword("raw")
		if _, err := usr[w].PasswordModify(ldap.NewPasswordModifyRequest(dn, r.pw[u], next)); err != nil {
			return err
		}
		r.pw[u] = next
		return nil
	})
}

// rawAdminReset: service search + nested group check (the gateway's walk
// up member links) + Password Modify by the service account.
func (r *run) rawAdminReset(rec *recorder, c int, l limits) {
	svc, _, closeAll, err := r.rawConns(c)
	defer closeAll()
	if err != nil {
		rec.fail(err)
		return
	}
	own := newOwned(r.rawAdm[0], r.rawAdm[1], c)
	target := strings.ToLower("cn=bench-users,ou=groups," + r.srv.BaseDN)
	closedLoop(rec, c, l, func(w, _ int) error {
		u := own.take(w)
		conn := svc[w]
		dn, err := r.searchUser(conn, userName(u))
		if err != nil {
			return err
		}
		found, frontier := false, []string{dn}
		for depth := 0; depth < 10 && len(frontier) > 0; depth++ {
			var b strings.Builder
			b.WriteString("(|")
			for _, f := range frontier {
				v := ldap.EscapeFilter(f)
				b.WriteString("(member=" + v + ")(uniqueMember=" + v + ")")
			}
			b.WriteString(")")
			res, err := conn.Search(ldap.NewSearchRequest("ou=groups,"+r.srv.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
				b.String(), []string{"1.1"}, nil))
			if err != nil {
				return err
			}
			frontier = frontier[:0]
			for _, e := range res.Entries {
				if strings.ToLower(e.DN) == target {
					found = true
				}
				frontier = append(frontier, e.DN)
			}
		}
		if !found {
			return fmt.Errorf("%s not in bench-users", dn)
		}
		next := newPassword("adm")
		if _, err := conn.PasswordModify(ldap.NewPasswordModifyRequest(dn, "", next)); err != nil {
			return err
		}
		r.pw[u] = next
		return nil
	})
}

// ---------------------------------------------------------------- through the gateway

func (r *run) change(rec *recorder, c int, l limits) {
	own := newOwned(r.chg[0], r.chg[1], c)
	closedLoop(rec, c, l, func(w, _ int) error {
		u := own.take(w)
		next := newPassword("chg")
		if _, err := r.api.Must(200, "POST", "/api/v1/change", "", map[string]string{"username": userName(u), "old_password": r.pw[u], "new_password": next}); err != nil {
			return err
		}
		r.pw[u] = next
		return nil
	})
}

func (r *run) resetStart(rec *recorder, c int, l limits) {
	closedLoop(rec, c, l, func(_, i int) error {
		u := r.rst[0] + i%(r.rst[1]-r.rst[0])
		_, err := r.api.Must(200, "POST", "/api/v1/reset", "", map[string]string{"username": userName(u)})
		return err
	})
}

func (r *run) page(rec *recorder, c int, l limits) {
	closedLoop(rec, c, l, func(_, _ int) error {
		status, err := r.api.Get("/reset")
		if err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("GET /reset: %d", status)
		}
		return nil
	})
}

// register: sign in, add an email method (a code is mailed), read the code
// from mailpit, verify it. The latency is that of the three requests; the
// wait for the mail is not counted.
func (r *run) register(rec *recorder, c int, l limits) {
	closedLoop(rec, c, l, func(_, _ int) error {
		i := int(r.regNext.Add(1)) - 1
		if i >= r.reg[1]-r.reg[0] {
			return errUsedUp // the row ends early, with fewer ops
		}
		u := r.reg[0] + i
		var took time.Duration
		t0 := time.Now()
		a, err := r.api.Must(200, "POST", "/api/v1/session", "", map[string]string{"username": userName(u), "password": r.pw[u]})
		if err != nil {
			return err
		}
		token := a.Str("token")
		addr := fmt.Sprintf("reg-%s@%s", userName(u), mailDomain)
		t1 := time.Now()
		a, err = r.api.Do("POST", "/api/v1/methods", token, map[string]string{"type": "email", "address": addr})
		switch {
		case err != nil:
			return err
		case a.Status == 503 && a.ErrCode() == "busy":
			r.busy.Add(1) // the outbox is full: no code
			return nil
		case a.Status != 201:
			return fmt.Errorf("add method: %s", a)
		}
		rec.step("add method", time.Since(t1))
		took += time.Since(t0)
		r.codes.Add(1)
		code, err := r.mb.Wait(addr, 20*time.Second)
		if err != nil {
			return err
		}
		t2 := time.Now()
		a, err = r.api.Must(200, "POST", "/api/v1/methods/"+a.Str("id")+"/verify", token, map[string]string{"code": code})
		if err != nil {
			return err
		}
		if a.JSON["verified"] != true {
			return fmt.Errorf("method not verified: %.200s", a.Body)
		}
		took += time.Since(t2)
		// closedLoop records the wall time; keep the request time apart
		rec.step("requests", took)
		return nil
	})
}

type pendingFlow struct {
	user   int
	id     string
	method string
	cl     *blackbox.Client
	tag    string
	t0     time.Time
	spent  time.Duration
}

// fullReset runs whole self-service resets (start, send, read the code from
// mailpit, verify, complete) with c clients, each keeping several flows in
// progress so that the wait for the mail (the outbox's jitter, up to half a
// second) does not idle it: c is the number of requests in flight. The
// latency of a flow is the time of its four requests; "wall" is from start
// to complete. With several clients the flows alternate between them (the
// scaling case); tags names them in the step latencies.
func (r *run) fullReset(rec *recorder, c int, l limits, clients []*blackbox.Client, tags []string) {
	t0 := time.Now()
	defer func() { r.resetWall.Add(int64(time.Since(t0))) }()
	share := (r.rst[1] - r.rst[0]) / c
	maxPending := max(1, min(64, share/2))
	own := newOwned(r.rst[0], r.rst[1], c)
	var started atomic.Int64
	deadline := time.Now().Add(l.dur)
	var wg sync.WaitGroup
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pending []*pendingFlow
			busy := map[int]bool{}
			seq := 0
			for {
				progressed := false
				for k, f := range pending {
					code, ok := r.mb.Take(userAddr(f.user))
					if !ok {
						continue
					}
					pending = append(pending[:k], pending[k+1:]...)
					delete(busy, f.user)
					r.resetMails.Add(1)
					if err := r.finishFlow(rec, f, code); err != nil {
						rec.fail(err)
					}
					progressed = true
					break
				}
				if progressed {
					continue
				}
				if time.Now().Before(deadline) && len(pending) < maxPending && int(started.Add(1)) <= l.max {
					u := own.take(w)
					for busy[u] {
						u = own.take(w)
					}
					cl, tag := clients[seq%len(clients)], ""
					if tags != nil {
						tag = tags[seq%len(clients)] + ":"
					}
					seq++
					f, err := r.startFlow(rec, cl, tag, u)
					if errors.Is(err, errBusy) {
						time.Sleep(20 * time.Millisecond) // as a user told to wait would
						continue
					}
					if err != nil {
						rec.fail(err)
						continue
					}
					busy[u] = true
					pending = append(pending, f)
					continue
				}
				if len(pending) == 0 {
					return
				}
				if time.Since(deadline) > 20*time.Second {
					for _, f := range pending {
						rec.fail(fmt.Errorf("no code for %s within 20 s", userAddr(f.user)))
					}
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// errBusy: a code send was answered 503 busy (counted in Checks.CodesBusy).
var errBusy = errors.New("bench: the outbox is busy")

func (r *run) startFlow(rec *recorder, cl *blackbox.Client, tag string, u int) (*pendingFlow, error) {
	t0 := time.Now()
	a, err := cl.Must(200, "POST", "/api/v1/reset", "", map[string]string{"username": userName(u)})
	if err != nil {
		return nil, err
	}
	d1 := time.Since(t0)
	rec.step(tag+"start", d1)
	ms, _ := a.JSON["methods"].([]any)
	if len(ms) != 1 {
		return nil, fmt.Errorf("reset start %s: %d methods: %.200s", userName(u), len(ms), a.Body)
	}
	m, _ := ms[0].(map[string]any)
	mid, _ := m["id"].(string)
	f := &pendingFlow{user: u, id: a.Str("flow"), method: mid, cl: cl, tag: tag, t0: t0}
	t1 := time.Now()
	if err := r.sendCode(cl, f.id, mid); err != nil {
		return nil, err
	}
	d2 := time.Since(t1)
	rec.step(tag+"send", d2)
	r.codes.Add(1)
	f.spent = d1 + d2
	return f, nil
}

// sendCode asks flow's code by method: nil on 202, errBusy (counted) when
// the outbox is full and the answer says to try again later.
func (r *run) sendCode(cl *blackbox.Client, flow, method string) error {
	sa, err := cl.Do("POST", "/api/v1/reset/send", "", map[string]string{"flow": flow, "method": method})
	switch {
	case err != nil:
		return err
	case sa.Status == 503 && sa.ErrCode() == "busy":
		// the outbox is full: told to try again in a minute, no code
		if sa.Header.Get("Retry-After") == "" {
			return fmt.Errorf("busy answer without Retry-After: %s", sa)
		}
		r.busy.Add(1)
		return errBusy
	case sa.Status != 202:
		return fmt.Errorf("reset send: %s", sa)
	}
	return nil
}

func (r *run) finishFlow(rec *recorder, f *pendingFlow, code string) error {
	t0 := time.Now()
	a, err := f.cl.Must(200, "POST", "/api/v1/reset/verify", "", map[string]string{"flow": f.id, "method": f.method, "code": code})
	if err != nil {
		return err
	}
	d1 := time.Since(t0)
	rec.step(f.tag+"verify", d1)
	next := a.Str("flow")
	if next == "" {
		return fmt.Errorf("verify: no flow: %.200s", a.Body)
	}
	pw := newPassword("rst")
	t1 := time.Now()
	if _, err := f.cl.Must(200, "POST", "/api/v1/reset/complete", "", map[string]string{"flow": next, "password": pw}); err != nil {
		return err
	}
	d2 := time.Since(t1)
	rec.step(f.tag+"complete", d2)
	r.pw[f.user] = pw
	r.done.Add(1)
	rec.step("wall", time.Since(f.t0))
	rec.add(f.spent + d1 + d2)
	return nil
}

// enumeration interleaves reset starts for registered users and unknown
// names at c=1, in a shuffled order.
func (r *run) enumeration(n int) Enumeration {
	const warmup = 20
	var real, fake []time.Duration
	order := shuffled(2*(n+warmup), 1)
	for k, o := range order {
		isReal := o%2 == 0
		name := fmt.Sprintf("nobody%05d", o)
		if isReal {
			name = userName(r.rst[0] + o%(r.rst[1]-r.rst[0]))
		}
		t0 := time.Now()
		_, err := r.api.Must(200, "POST", "/api/v1/reset", "", map[string]string{"username": name})
		d := time.Since(t0)
		if err != nil {
			r.rep.Checks.Failures = append(r.rep.Checks.Failures, "enumeration: "+err.Error())
			break
		}
		if k < 2*warmup {
			continue
		}
		if isReal {
			real = append(real, d)
		} else {
			fake = append(fake, d)
		}
	}
	e := enumeration(real, fake)
	r.logf("  existing p50 %.2f ms, unknown p50 %.2f ms, |Δp50| %.3f ms, held-out classifier %.1f %%", e.ExistingP50, e.UnknownP50, e.AbsDeltaP50, 100*e.HeldOut)
	return e
}

// scaling starts two more gateways on the same directory, one with an
// empty store and one with Outstanding flows and codes, and runs full
// resets alternating between them (the same load on both).
func (r *run) scaling(bin string, accounts map[string]string, l limits) error {
	empty, err := r.newGateways(bin, accounts, 0, 1, false)
	if err != nil {
		return err
	}
	seeded, err := r.newGateways(bin, accounts, r.o.Outstanding, 1, false)
	if err != nil {
		return err
	}
	c := 4
	if r.o.Smoke {
		c = 2
	}
	row := measure("scaling", c, pids{}, func(rec *recorder) {
		r.fullReset(rec, c, limits{dur: 2 * l.dur, max: l.max}, []*blackbox.Client{blackbox.NewClient(empty[0].base), blackbox.NewClient(seeded[0].base)}, []string{"empty", "seeded"})
	})
	if row.Errors > 0 {
		r.rep.Checks.Failures = append(r.rep.Checks.Failures, "scaling: "+row.FirstErr)
	}
	s := &Scaling{Outstanding: r.o.Outstanding, EmptyP50ms: map[string]float64{}, SeededP50ms: map[string]float64{}, Ratio: map[string]float64{}, Flows: row.Ops}
	for _, step := range []string{"start", "send", "verify", "complete"} {
		a, b := row.StepsP50["empty:"+step], row.StepsP50["seeded:"+step]
		s.EmptyP50ms[step], s.SeededP50ms[step] = a, b
		if a > 0 {
			s.Ratio[step] = b / a
		}
	}
	r.rep.Scaling = s
	r.logf("  %d flows; p50 empty/seeded: start %.2f/%.2f verify %.2f/%.2f ms", row.Ops, s.EmptyP50ms["start"], s.SeededP50ms["start"], s.EmptyP50ms["verify"], s.SeededP50ms["verify"])
	return nil
}

// checks binds as a sample of users whose password changed, and waits for
// the mail server to have every code asked for.
func (r *run) checks() {
	ch := &r.rep.Checks
	var changed []int
	for i, p := range r.pw {
		if p != seedPassword(i) {
			changed = append(changed, i)
		}
	}
	ch.PasswordsChanged = len(changed)
	step := max(1, len(changed)/50)
	for k := 0; k < len(changed); k += step {
		u := changed[k]
		if err := r.srv.UserBind(userName(u), r.pw[u]); err != nil {
			ch.Failures = append(ch.Failures, fmt.Sprintf("bind as %s with its new password: %v", userName(u), err))
			continue
		}
		if err := r.srv.UserBind(userName(u), seedPassword(u)); err == nil {
			ch.Failures = append(ch.Failures, fmt.Sprintf("%s still accepts its old password", userName(u)))
		}
		ch.PasswordsVerified++
	}
	if ch.PasswordsChanged == 0 && (r.o.runs("change") || r.o.runs("reset")) {
		ch.Failures = append(ch.Failures, "no password changed")
	}
	mailAsked, smsAsked := int(r.codes.Load()), int(r.smsCodes.Load())
	ch.CodesRequested = mailAsked + smsAsked
	ch.CodesBusy = int(r.busy.Load())
	if w := time.Duration(r.resetWall.Load()); w > 0 {
		ch.CodeMailsPerSecond = float64(r.resetMails.Load()) / w.Seconds()
	}
	ch.ResetsCompleted = int(r.done.Load())
	// notices of completed resets are sent in the background: wait until
	// the count stops growing
	var total int
	var subj map[string]int
	last, stable := -1, 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && stable < 10; {
		time.Sleep(100 * time.Millisecond)
		total, subj = r.mb.Snapshot()
		if total == last {
			stable++
		} else {
			stable, last = 0, total
		}
	}
	ch.MessagesReceived, ch.MessagesBySubject = total, subj // mail only
	for s, n := range subj {
		if strings.Contains(s, "verification code") {
			ch.CodesReceived += n
		}
	}
	mailCodes, smsCodes := ch.CodesReceived, 0
	sms := r.sms.Messages()
	ch.SMSReceived = len(sms)
	for _, m := range sms {
		if strings.Contains(m.Body, blackbox.CodeSMS) {
			smsCodes++
		}
	}
	ch.CodesReceived += smsCodes
	// each channel on its own: a duplicate of one must not hide a loss of
	// the other
	if mailCodes != mailAsked {
		ch.Failures = append(ch.Failures, fmt.Sprintf("%d codes asked for by email, %d code mails received", mailAsked, mailCodes))
	}
	if smsCodes != smsAsked {
		ch.Failures = append(ch.Failures, fmt.Sprintf("%d codes asked for by SMS, %d code SMS received", smsAsked, smsCodes))
	}
	if total+ch.SMSReceived < ch.CodesReceived+ch.ResetsCompleted {
		ch.Failures = append(ch.Failures, fmt.Sprintf("%d messages received (%d SMS), fewer than %d codes + %d reset notices", total+ch.SMSReceived, ch.SMSReceived, ch.CodesReceived, ch.ResetsCompleted))
	}
	if ch.ResetsCompleted == 0 && r.o.runs("reset") {
		ch.Failures = append(ch.Failures, "no reset completed")
	}
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// WriteTable prints the report for people.
func (rep *Report) WriteTable(w io.Writer) {
	st := rep.Store
	if rep.PostgresVersion != "" {
		st += " " + rep.PostgresVersion
	}
	fmt.Fprintf(w, "latchkey-bench %s: %d users, store %s, %d gateway instance(s), %d cores, load average before %s, after %s\n\n",
		rep.Started.Format(time.RFC3339), rep.Users, st, rep.Instances, rep.Cores, rep.LoadBefore, rep.LoadAfter)
	pg := rep.Store == "postgres"
	if pg {
		fmt.Fprintf(w, "| scenario | c | ops | ops/s | p50 ms | p99 ms | gateway CPU ms/op | slapd CPU ms/op | PostgreSQL CPU ms/op | vs ceiling |\n|---|---|---|---|---|---|---|---|---|---|\n")
	} else {
		fmt.Fprintf(w, "| scenario | c | ops | ops/s | p50 ms | p99 ms | gateway CPU ms/op | slapd CPU ms/op | vs ceiling |\n|---|---|---|---|---|---|---|---|---|\n")
	}
	for _, row := range rep.Rows {
		ratio := ""
		if row.Ceiling != "" {
			ratio = fmt.Sprintf("%.0f %%", 100*row.Ratio)
		}
		storeCol := ""
		if pg {
			storeCol = " " + fmtMs(row.StoreCPUms) + " |"
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.2f | %.2f | %s | %s |%s %s |\n", row.Scenario, row.Concurrency, row.Ops, row.OpsPerSec, row.P50ms, row.P99ms,
			fmtMs(row.GatewayCPUms), fmtMs(row.SlapdCPUms), storeCol, ratio)
	}
	e := rep.Enumeration
	fmt.Fprintf(w, "\nenumeration (reset start, c=1, %d each): existing p50 %.2f ms p99 %.2f, unknown p50 %.2f ms p99 %.2f, |Δp50| %.3f ms, held-out classifier %.1f %%\n",
		e.Samples, e.ExistingP50, e.ExistingP99, e.UnknownP50, e.UnknownP99, e.AbsDeltaP50, 100*e.HeldOut)
	if s := rep.Scaling; s != nil {
		fmt.Fprintf(w, "scaling (%d outstanding flows+codes vs empty store, %d flows alternating): p50 ms empty/seeded: start %.2f/%.2f (x%.2f), verify %.2f/%.2f (x%.2f)\n",
			s.Outstanding, s.Flows, s.EmptyP50ms["start"], s.SeededP50ms["start"], s.Ratio["start"], s.EmptyP50ms["verify"], s.SeededP50ms["verify"], s.Ratio["verify"])
	}
	each := ""
	if len(rep.InstancesRSSKiB) > 0 {
		each = fmt.Sprintf(" (the largest of %d instances:", len(rep.InstancesRSSKiB))
		for _, k := range rep.InstancesRSSKiB {
			each += fmt.Sprintf(" %.1f", float64(k)/1024)
		}
		each += ")"
	}
	fmt.Fprintf(w, "gateway peak RSS (VmHWM): %.1f MiB%s\n", float64(rep.PeakRSSKiB)/1024, each)
	for _, s := range rep.Sends {
		fmt.Fprintf(w, "outbox burst by %s: %d codes asked at once (%d answered busy), %d delivered in %.2f s: %.1f messages/s\n",
			s.Channel, s.Asked, s.Busy, s.Received, s.Seconds, s.PerSecond)
	}
	c := rep.Checks
	fmt.Fprintf(w, "checks: %d passwords changed, %d verified by bind; %d codes asked, %d received, %d answered busy; %d resets completed; %d messages (%d SMS); %.1f code mails/s in the full resets\n",
		c.PasswordsChanged, c.PasswordsVerified, c.CodesRequested, c.CodesReceived, c.CodesBusy, c.ResetsCompleted, c.MessagesReceived, c.SMSReceived, c.CodeMailsPerSecond)
	for _, f := range c.Failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
}
