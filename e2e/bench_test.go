package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// Benchmarks against the real binary and a real slapd on loopback:
//
//	go test -run '^$' -bench . -benchtime 2000x ./e2e/
//
// BenchmarkRawChange is the ceiling: the same directory work done straight
// with go-ldap on persistent connections (search as the service account,
// bind as the user, Password Modify). Compare ops/s within one run.

func benchEnv(b *testing.B) (*env, *dirtest.Server) {
	srv := dirtest.StartOpenLDAP(b)
	mail, sms := startMail(b)
	e := startGateway(b, srv, mail, sms, params{Limits: highLimits + "  bind_failures: 100000\n"})
	b.Cleanup(func() { b.Logf("gateway peak RSS: %s", peakRSS(e.cmd.Process.Pid)) })
	return e, srv
}

// peakRSS is VmHWM of a process (Linux).
func peakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// BenchmarkResetStart starts resets for a registered user (the real path)
// and for a name that does not exist (held to the real path's time).
func BenchmarkResetStart(b *testing.B) {
	e, _ := benchEnv(b)
	e.register("carol", "carol.bench@example.net", "")
	for _, name := range []string{"carol", "no-such-user"} {
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r := e.api("POST", "/api/v1/reset", "", map[string]string{"username": name}); r.Status != 200 {
						b.Errorf("status %d", r.Status)
						return
					}
				}
			})
		})
	}
}

// benchUsers change their passwords in the change benchmarks, one
// goroutine each (changes of one account are serial by nature: old -> new).
var benchUsers = []string{"alice", "bob", "carol", "erin", "frank", "grace", "twin1", "twin2"}

// passwords holds the current password of each bench user of one
// directory: a benchmark function runs several times (growing b.N).
type passwords map[string]string

func newPasswords(srv *dirtest.Server) passwords {
	p := passwords{}
	for _, u := range benchUsers {
		p[u] = srv.Password(u)
	}
	return p
}

// changeLoop runs b.N password changes spread over c users at once; change
// does one (user, old, new) change.
func changeLoop(b *testing.B, pw passwords, c int, change func(w int, user, old, next string) error) {
	var n, done atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	b.ResetTimer()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			user := benchUsers[w]
			mu.Lock()
			cur := pw[user]
			mu.Unlock()
			defer func() { mu.Lock(); pw[user] = cur; mu.Unlock() }()
			for done.Add(1) <= int64(b.N) {
				next := fmt.Sprintf("Bench-Passw0rd-%d-%d-x", time.Now().UnixNano(), n.Add(1))
				if err := change(w, user, cur, next); err != nil {
					b.Error(err)
					return
				}
				cur = next
			}
		}(w)
	}
	wg.Wait()
}

// BenchmarkChange changes passwords through the gateway's API at
// concurrency 1 and 8 (8 accounts).
func BenchmarkChange(b *testing.B) {
	e, srv := benchEnv(b)
	pw := newPasswords(srv)
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			changeLoop(b, pw, c, func(_ int, user, old, next string) error {
				if r := e.api("POST", "/api/v1/change", "", map[string]string{"username": user, "old_password": old, "new_password": next}); r.Status != 200 {
					return fmt.Errorf("change %s: %d %s", user, r.Status, r.Body)
				}
				return nil
			})
		})
	}
}

// BenchmarkRawChange is the ceiling: the same directory work straight with
// go-ldap on persistent connections (one service and one user connection
// per worker): search as the service account, bind as the user, Password
// Modify with old and new.
func BenchmarkRawChange(b *testing.B) {
	srv := dirtest.StartOpenLDAP(b)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	dial := func() *ldap.Conn {
		c, err := ldap.DialURL(srv.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	pw := newPasswords(srv)
	for _, c := range []int{1, 8} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			svc, usr := make([]*ldap.Conn, c), make([]*ldap.Conn, c)
			for w := range c {
				svc[w], usr[w] = dial(), dial()
				defer svc[w].Close()
				defer usr[w].Close()
				if err := svc[w].Bind(srv.ServiceDN, srv.ServicePassword); err != nil {
					b.Fatal(err)
				}
			}
			changeLoop(b, pw, c, func(w int, user, old, next string) error {
				res, err := svc[w].Search(ldap.NewSearchRequest(srv.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
					"(&(objectClass=inetOrgPerson)(uid="+ldap.EscapeFilter(user)+"))", []string{"entryUUID"}, nil))
				if err != nil || len(res.Entries) != 1 {
					return fmt.Errorf("search %s: %v", user, err)
				}
				dn := res.Entries[0].DN
				if err := usr[w].Bind(dn, old); err != nil {
					return err
				}
				_, err = usr[w].PasswordModify(ldap.NewPasswordModifyRequest(dn, old, next))
				return err
			})
		})
	}
}

// BenchmarkPage fetches the reset page (a GET, nothing stored).
func BenchmarkPage(b *testing.B) {
	e, _ := benchEnv(b)
	b.SetParallelism(4) // 8 clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := httpClient.Get(e.base + "/reset")
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}
