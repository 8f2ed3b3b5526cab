// Package pgtest starts a throwaway PostgreSQL server for tests: one server
// per test binary (package), started on first use, with a fresh database
// per test.
//
// The server is the Debian postgresql package's (binaries in
// /usr/lib/postgresql/<version>/bin, or LATCHKEY_PG_BIN): initdb into a
// temporary directory, then postgres listening on 127.0.0.1 at a free port
// and on a Unix socket in that directory, with fsync off. PostgreSQL
// refuses to run as root, so under root both run as the "postgres" system
// user the package creates, in a directory it owns.
//
// When the binaries are missing the tests skip, unless the CI environment
// variable is set: then they fail, so that a real-server suite never
// silently skips in CI.
//
// The test binary's TestMain must stop the server after the tests:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pgtest.Stop()
//		os.Exit(code)
//	}
//
// If the test binary dies, the server gets SIGINT (a parent-death signal)
// and shuts down; only its temporary directory is left behind.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/testport"

	"github.com/jackc/pgx/v5"
)

// BinEnv names a directory holding initdb and postgres, overriding the
// search in /usr/lib/postgresql.
const BinEnv = "LATCHKEY_PG_BIN"

// Server is a running throwaway PostgreSQL server.
type Server struct {
	// Dir is the temporary directory: the data directory is Dir/data and
	// the Unix socket lives in Dir.
	Dir string
	// Port is the TCP port on 127.0.0.1 (and the socket's number).
	Port int
	// User is the superuser tests connect as (no password; trust auth).
	User string

	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
	// for StopServer and StartAgain
	bin  string
	cred *syscall.Credential
}

// StartPrivate starts a server of t's own, not the package's shared one,
// stopped and removed when t ends: for tests that stop it on purpose
// (StopServer, StartAgain). It skips or fails like Start.
func StartPrivate(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		skipOrFail(t, err.Error())
	}
	s, err := start(bin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		s.stop()
	})
	return s
}

// StopServer shuts the server down (fast shutdown: open connections are
// cut) and waits until it has exited; its data stays. Private servers only.
func (s *Server) StopServer(t testing.TB) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if s == shared {
		t.Fatal("pgtest: StopServer on the shared server; use StartPrivate")
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// StartAgain starts a stopped server on the same port with the same data
// and waits until it accepts connections.
func (s *Server) StartAgain(t testing.TB) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	var err error
	for range 20 {
		var n *Server
		n, err = launchOn(s.bin, s.Dir, filepath.Join(s.Dir, "data"), s.User, s.cred, s.Port)
		if err == nil {
			s.cmd, s.log, s.done = n.cmd, n.log, n.done
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("pgtest: restarting the server: %v", err)
}

var (
	mu      sync.Mutex
	shared  *Server
	failed  error // a start that failed is not retried
	skipped string
)

// Start returns the package's server, starting it on first use. It skips
// t when PostgreSQL is not installed (fails under CI).
func Start(t testing.TB) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		return shared
	}
	if skipped != "" {
		skipOrFail(t, skipped)
	}
	if failed != nil {
		t.Fatalf("pgtest: %v", failed)
	}
	bin, err := findBin()
	if err != nil {
		skipped = err.Error()
		skipOrFail(t, skipped)
	}
	s, err := start(bin)
	if err != nil {
		failed = err
		t.Fatalf("pgtest: %v", err)
	}
	shared = s
	return s
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("pgtest: %s (CI is set: a real-server suite must not skip; run scripts/deps.sh)", why)
	}
	t.Skipf("pgtest: %s (install postgresql, see scripts/deps.sh)", why)
}

// Stop stops the package's server, if one was started, and removes its
// directory. Call it from TestMain after m.Run.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		shared.stop()
		shared = nil
	}
}

func findBin() (string, error) {
	if d := os.Getenv(BinEnv); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("%s=%s has no postgres binary", BinEnv, d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// The highest version first (numeric: 15 before 9.6).
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[j])), 64)
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d, nil
			}
		}
	}
	return "", errors.New("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
}

// runAs is who runs initdb and postgres: nil for the current user, the
// postgres system user when running as root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New(`running as root and there is no "postgres" user to run the server as`)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, errors.New(`cannot parse the "postgres" user's ids`)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func start(bin string) (*Server, error) {
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir(): its parent directories are private to the current
	// user, and the server may run as another one.
	dir, err := os.MkdirTemp("", "latchkey-pgtest-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	const superuser = "latchkey"
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = serverEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// A free port can be taken between the check and the server's bind by
	// someone else's test: try a few.
	var lastErr error
	for range 5 {
		s, err := launch(bin, dir, data, superuser, cred)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func serverEnv() []string {
	// No PG* variables from the developer's shell, a C locale.
	env := []string{"LC_ALL=C", "LANG=C"}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

func launch(bin, dir, data, superuser string, cred *syscall.Credential) (*Server, error) {
	port, err := testport.Free()
	if err != nil {
		return nil, err
	}
	return launchOn(bin, dir, data, superuser, cred, port)
}

func launchOn(bin, dir, data, superuser string, cred *syscall.Credential, port int) (*Server, error) {
	s := &Server{Dir: dir, Port: port, User: superuser, log: &bytes.Buffer{}, done: make(chan struct{}),
		bin: bin, cred: cred}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-F", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	s.cmd.Dir = dir
	s.cmd.Env = serverEnv()
	s.cmd.Stdout, s.cmd.Stderr = syncWriter{s.log}, syncWriter{s.log}
	// SIGINT is PostgreSQL's fast shutdown; sent by the kernel if the
	// thread that started the server (locked below) goes away.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the starting OS thread exits: keep this one
		// while the server runs. Unlock before returning: a goroutine that
		// ends locked takes its OS thread down with it, and that thread may
		// earlier have started other servers of the test (slapd, mailpit)
		// whose Pdeathsig would then kill them.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("postgres exited during start:\n%s", s.logText())
		case <-ctx.Done():
			s.stop()
			return nil, fmt.Errorf("postgres did not accept connections within a minute:\n%s", s.logText())
		case <-time.After(100 * time.Millisecond):
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.DSN("postgres"))
		ccancel()
		if err == nil {
			conn.Close(context.Background())
			return s, nil
		}
	}
}

var logMu sync.Mutex

type syncWriter struct{ b *bytes.Buffer }

func (w syncWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.Write(p)
}

func (s *Server) logText() string {
	logMu.Lock()
	defer logMu.Unlock()
	return s.log.String()
}

func (s *Server) stop() {
	if s.cmd.Process != nil {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
	}
	os.RemoveAll(s.Dir)
}

// PID is the process id of the server's postmaster, or 0 if it has
// exited. Its backends are its children (latchkey-bench sums their CPU
// from /proc).
func (s *Server) PID() int {
	mu.Lock() // StartAgain replaces cmd and done
	defer mu.Unlock()
	select {
	case <-s.done:
		return 0
	default:
	}
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// DSN returns a connection string for database db over TCP on 127.0.0.1
// (loopback: no TLS needed).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", s.User, s.Port, db)
}

// SocketDSN returns a connection string for database db over the server's
// Unix socket.
func (s *Server) SocketDSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.Dir, s.Port, s.User, db)
}

// NewDatabase creates an empty database for t and returns its name; it is
// dropped when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	s.admin(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { s.admin(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return name
}

// Exec runs sql as the superuser in database db.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", strings.Fields(sql)[0], err)
	}
}

func (s *Server) admin(t testing.TB, sql string) { t.Helper(); s.Exec(t, "postgres", sql) }

// DatabaseFiles returns the bytes PostgreSQL keeps on disk for database db
// after a CHECKPOINT: the database's own files and the write-ahead log
// (shared by every database of the server). For "nothing in plaintext at
// rest" tests.
func (s *Server) DatabaseFiles(t testing.TB, db string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	var oid uint32
	if err := conn.QueryRow(ctx, `SELECT oid FROM pg_database WHERE datname = current_database()`).Scan(&oid); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := conn.Exec(ctx, `CHECKPOINT`); err != nil {
		t.Fatalf("pgtest: CHECKPOINT: %v", err)
	}
	var all []byte
	for _, root := range []string{
		filepath.Join(s.Dir, "data", "base", strconv.FormatUint(uint64(oid), 10)),
		filepath.Join(s.Dir, "data", "pg_wal"),
	} {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p) // #nosec G304 -- files of the test server's data directory
			if err != nil {
				return err
			}
			all = append(all, b...)
			return nil
		})
		if err != nil {
			t.Fatalf("pgtest: reading %s: %v", root, err)
		}
	}
	return all
}
