package demodir

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Options configure Start. The zero value serves the demo people.
type Options struct {
	// Addr is where LDAPS listens, default "127.0.0.1:0". The ldap://
	// (StartTLS) listener uses the same host and a free port.
	Addr string
	// Logger receives operations (never passwords); nil discards.
	Logger *slog.Logger

	// Seed, when not empty, is LDIF loaded instead of the demo people
	// (tests load directory/dirtest's seed this way). userPassword values
	// in it are cleartext and hashed on load. The fields below then say
	// who is who; they are ignored without Seed.
	Seed            string
	BaseDN          string // default dc=example,dc=org
	ServiceDN       string // the gateway's account: reads everything, resets passwords under policy
	ServicePassword string // reported by ServicePassword(); must match the seed
	DefaultPolicyDN string // slapd's ppolicy_default; must be an entry of the seed
	// AdminDN and AdminPassword are the rootdn (no entry needed); the
	// password is random when empty. They apply with or without Seed.
	AdminDN       string
	AdminPassword string
}

// User is a seeded demo person.
type User struct {
	Username, Password, DisplayName, Note string
	// Groups are the cn's of the groups the person is a direct member of.
	Groups []string
}

// Server is a running embedded directory.
type Server struct {
	log  *slog.Logger
	now  func() time.Time
	tls  *tls.Config
	ca   []byte
	pool *x509.CertPool

	ldaps, plain net.Listener

	baseDN, serviceDN, servicePW, adminDN, adminPW, policyDN string
	users                                                    []User

	mu      sync.Mutex // guards everything below and all entries
	entries map[string]*entry
	order   []string // ndns in insertion order, for stable results
	adminN  string
	adminH  string
	svcN    string
	polN    string
	conns   map[*conn]struct{}
	closed  bool
	doneCh  chan struct{}

	wg sync.WaitGroup
}

const (
	demoBase      = "dc=example,dc=org"
	demoService   = "cn=latchkey,ou=services,dc=example,dc=org"
	demoAdmin     = "cn=admin,dc=example,dc=org"
	demoPolicy    = "cn=default,ou=policies,dc=example,dc=org"
	demoUserFiter = "(&(objectClass=inetOrgPerson)(uid={username}))"
)

// Start seeds the directory and starts serving. The listeners close when
// Close is called (or ctx is done).
func Start(ctx context.Context, o Options) (*Server, error) {
	s := &Server{log: o.Logger, now: time.Now, entries: map[string]*entry{}, conns: map[*conn]struct{}{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "demodir")
	s.adminDN, s.adminPW = o.AdminDN, o.AdminPassword
	if s.adminDN == "" {
		s.adminDN = demoAdmin
	}
	if s.adminPW == "" {
		s.adminPW = randomPassword()
	}
	seed := o.Seed
	if seed == "" {
		s.baseDN, s.serviceDN, s.policyDN = demoBase, demoService, demoPolicy
		s.servicePW = randomPassword()
		s.users = demoUsers()
		seed = demoLDIF(s.servicePW, s.users)
	} else {
		s.baseDN, s.serviceDN, s.servicePW, s.policyDN = o.BaseDN, o.ServiceDN, o.ServicePassword, o.DefaultPolicyDN
		if s.baseDN == "" {
			s.baseDN = demoBase
		}
	}
	s.adminN, s.adminH = normDN(s.adminDN), hashPassword(s.adminPW)
	s.svcN, s.polN = normDN(s.serviceDN), normDN(s.policyDN)
	if s.adminN == "" {
		return nil, errors.New("demodir: AdminDN is not a DN")
	}
	changes, err := ParseLDIF(seed)
	if err != nil {
		return nil, fmt.Errorf("demodir: seed: %w", err)
	}
	for _, c := range changes {
		if code, msg := s.apply(c); code != ldap.LDAPResultSuccess {
			return nil, fmt.Errorf("demodir: seed: %s %s: %s (%d)", c.Type, c.DN, msg, code)
		}
	}

	if err := s.makeTLS(); err != nil {
		return nil, err
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("demodir: listen address: %w", err)
	}
	if s.ldaps, err = tls.Listen("tcp", addr, s.tls); err != nil {
		return nil, fmt.Errorf("demodir: %w", err)
	}
	if s.plain, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
		s.ldaps.Close()
		return nil, fmt.Errorf("demodir: %w", err)
	}
	for _, l := range []net.Listener{s.ldaps, s.plain} {
		s.wg.Add(1)
		go s.serve(l, l == s.ldaps)
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done():
		}
	}()
	s.log.Info("embedded directory listening", "ldaps", s.URL(), "ldap", s.StartTLSURL(), "base", s.baseDN)
	return s, nil
}

// done returns a channel closed by Close.
func (s *Server) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.doneCh == nil {
		s.doneCh = make(chan struct{})
		if s.closed {
			close(s.doneCh)
		}
	}
	return s.doneCh
}

// URL is the LDAPS URL, ldaps://127.0.0.1:PORT.
func (s *Server) URL() string { return "ldaps://" + s.ldaps.Addr().String() }

// StartTLSURL is the plain ldap:// URL; it offers StartTLS (and, like a
// default slapd, also answers in clear text).
func (s *Server) StartTLSURL() string { return "ldap://" + s.plain.Addr().String() }

// CAPEM is the PEM of the CA generated at Start that signed the server certificate.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.ca...) }

// RootCAs is a pool holding only that CA.
func (s *Server) RootCAs() *x509.CertPool { return s.pool.Clone() }

// BaseDN is the naming context.
func (s *Server) BaseDN() string { return s.baseDN }

// UserFilter is a user filter for directory.Config.
func (s *Server) UserFilter() string { return demoUserFiter }

// ServiceDN is the gateway's service account.
func (s *Server) ServiceDN() string { return s.serviceDN }

// ServicePassword is its password (random per Start for the demo seed).
func (s *Server) ServicePassword() string { return s.servicePW }

// AdminDN is the administrator (like slapd's rootdn: no policy applies to it).
func (s *Server) AdminDN() string { return s.adminDN }

// AdminPassword is the administrator's password.
func (s *Server) AdminPassword() string { return s.adminPW }

// DefaultPolicyDN is the ppolicy entry used for entries without pwdPolicySubentry.
func (s *Server) DefaultPolicyDN() string { return s.policyDN }

// GroupDN is the DN of a group under ou=groups.
func (s *Server) GroupDN(cn string) string {
	return "cn=" + ldap.EscapeDN(cn) + ",ou=groups," + s.baseDN
}

// Users are the seeded demo people in a stable order (none with Options.Seed).
func (s *Server) Users() []User {
	out := make([]User, len(s.users))
	for i, u := range s.users {
		u.Groups = append([]string(nil), u.Groups...)
		out[i] = u
	}
	return out
}

// CheckPassword reports whether a bind as uid=username with password would
// succeed now (lockout and expiry included), without counting a failure.
func (s *Server) CheckPassword(username, password string) bool {
	if password == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.order {
		e := s.entries[n]
		if !strings.EqualFold(e.first("uid"), username) || e.get("userPassword") == nil {
			continue
		}
		if !checkHash(e.first("userPassword"), password) {
			return false
		}
		pol := s.policyFor(e)
		if s.lockedLocked(e, pol) {
			return false
		}
		return !s.expiredLocked(e, pol)
	}
	return false
}

// Close stops the listeners and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.doneCh != nil {
		close(s.doneCh)
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.ldaps.Close()
	s.plain.Close()
	s.wg.Wait()
	return nil
}
