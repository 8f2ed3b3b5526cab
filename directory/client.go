package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/internal/tlsdiag"
)

// ErrCertificate is returned (wrapped in ErrUnavailable's place) when no
// server could be reached because certificate verification failed.
var ErrCertificate = errors.New("directory: server certificate refused")

// Client is the go-ldap implementation of Directory.
type Client struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	svc  *pool // connections bound as the service account
	usr  *pool // connections used only for user binds
	info ServerInfo
	// policy hints control to send on AD resets, nil when unsupported
	hints ldap.Control
	// policy entries read from the directory, by DN
	policies policyCache
	// the groups each group is in (OpenLDAP walks)
	groups groupCache
	// configured groups' own entries (existence, AD objectSid)
	groupInfos groupInfoCache
	// capFindings are info.Warnings with their fixes, for Preflight
	capFindings []Finding
	// pageSize is the Lister's page size (0: DefaultPageSize); tests lower it
	pageSize int
}

var _ Directory = (*Client)(nil)

// Open validates cfg, connects, binds the service account and reads the
// RootDSE. Warnings about missing capabilities are logged and kept in Info().
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg.withDefaults(), log: logger.With("component", "directory"), now: time.Now}
	c.svc = newPool(c, true, c.cfg.PoolSize)
	c.usr = newPool(c, false, c.cfg.PoolSize)
	if err := c.discover(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Info describes the server found at startup.
func (c *Client) Info() ServerInfo { return c.info }

// Close releases all pooled connections.
func (c *Client) Close() error {
	c.svc.close()
	c.usr.close()
	return nil
}

// Ping runs a RootDSE read on a service connection.
func (c *Client) Ping(ctx context.Context) error {
	return c.withService(ctx, "ping", true, func(conn *ldap.Conn) error {
		_, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"1.1"}, nil))
		return err
	})
}

// dial connects to the first URL that answers, upgrades to TLS as
// configured and, for service connections, binds the service account.
func (c *Client) dial(ctx context.Context, bindService bool) (*ldap.Conn, string, error) {
	lastKind := ErrUnavailable
	for _, raw := range c.cfg.URLs {
		if err := ctx.Err(); err != nil {
			return nil, "", newErr("connect", ErrUnavailable)
		}
		conn, err := c.dialOne(ctx, raw)
		if err != nil {
			kind := ErrUnavailable
			if tlsdiag.IsCertError(err) {
				kind = ErrCertificate
			}
			lastKind = kind
			c.log.Warn("directory server unreachable, trying the next one", "url", raw, "error", err.Error())
			continue
		}
		if bindService {
			if err := conn.Bind(c.cfg.BindDN, c.cfg.BindPassword); err != nil {
				conn.Close()
				de := classify("service bind", err, nil)
				if errors.Is(de, ErrUnavailable) {
					lastKind = ErrUnavailable
					c.log.Warn("service bind failed, trying the next server", "url", raw, "error", de.Error())
					continue
				}
				c.log.Error("service account bind refused", "url", raw, "error", de.Error())
				return nil, "", de
			}
		}
		return conn, raw, nil
	}
	return nil, "", newErr("connect", lastKind)
}

func (c *Client) dialOne(ctx context.Context, raw string) (*ldap.Conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	tc, err := c.cfg.tlsConfig(host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: c.cfg.DialTimeout}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d.Timeout {
		d.Deadline = dl
	}
	conn, err := ldap.DialURL(raw, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(c.cfg.Timeout)
	if u.Scheme == "ldap" && c.cfg.StartTLS {
		if err := conn.StartTLS(tc); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// isConnError reports whether err means the connection is unusable.
func isConnError(err error) bool {
	if err == nil {
		return false
	}
	if ldap.IsErrorWithCode(err, ldap.ErrorNetwork) {
		return true
	}
	var ne net.Error
	// a server that closes the connection cleanly (slapd stopping, an idle
	// timeout) leaves the request waiting on it with the reader's io.EOF
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || isReaderError(err)
}

// isReaderError reports go-ldap's error for a request whose connection's
// reader stopped while it waited: v3.4.15 flattens the reader's error into
// text (conn.go: "unable to read LDAP response packet: %s"), so neither
// io.EOF nor ErrorNetwork can be found in it. Seen when a server dies with
// a request in flight (TestReadRetriedWhenServerDiesMidRequest).
func isReaderError(err error) bool {
	var le *ldap.Error
	if errors.As(err, &le) {
		return false
	}
	return strings.HasPrefix(err.Error(), "unable to read LDAP response packet")
}

// deadConn reports whether err, returned by a request on conn, means the
// connection is gone: a connection error, or any error that is not the
// server's own answer once the connection is closing (whatever text go-ldap
// gave it). A server answer (an LDAP result code) is never a dead connection,
// even if the server hung up right after sending it.
func deadConn(conn *ldap.Conn, err error) bool {
	if err == nil {
		return false
	}
	if isConnError(err) {
		return true
	}
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork {
		return false
	}
	return conn != nil && conn.IsClosing()
}

// withService runs f on a pooled service connection. A read (idempotent) is
// retried once on a fresh connection (and so the next URL) when the pooled one
// turned out to be dead; a write never is, so it cannot be applied twice.
// The one exception is a write a read-only replica refused (the pool
// failed over to it while the first server was down): it was not applied,
// so it is tried once more on a freshly dialled connection, which goes to
// the first server that answers in directory.urls order.
func (c *Client) withService(ctx context.Context, op string, idempotent bool, f func(*ldap.Conn) error) error {
	fresh := false
	for attempt := 0; ; attempt++ {
		var conn *ldap.Conn
		var err error
		if fresh {
			conn, err = c.svc.dialFresh(ctx)
		} else {
			conn, err = c.svc.get(ctx)
		}
		if err != nil {
			return err
		}
		err = f(conn)
		if deadConn(conn, err) {
			c.svc.put(conn, false)
			if idempotent && attempt == 0 {
				continue
			}
			// a write is never retried: it may have been applied
			return &Error{Op: op, Kind: ErrUnavailable}
		}
		if err != nil {
			de := classify(op, err, nil)
			if de.Sub == subReplica || de.Sub == subReferral {
				// this connection goes to a replica: drop it, so that the
				// pool fails back to the first server once it is up
				c.svc.put(conn, false)
				if !idempotent && attempt == 0 {
					fresh = true
					continue
				}
				return de
			}
			c.svc.put(conn, true)
			return de
		}
		c.svc.put(conn, true)
		return nil
	}
}

// withUserConn runs f on a connection reserved for user binds. f binds;
// afterwards the connection goes back to the user pool, never to the
// service pool, so a service operation can never run with a user's identity.
func (c *Client) withUserConn(ctx context.Context, f func(*ldap.Conn) error) error {
	conn, err := c.usr.get(ctx)
	if err != nil {
		return err
	}
	err = f(conn)
	// A connection whose bind failed is anonymous, which is fine for the
	// next user bind; a broken one is dropped.
	c.usr.put(conn, !deadConn(conn, err) && !conn.IsClosing())
	return err
}

func (c *Client) discover(ctx context.Context) error {
	c.svc.slots <- struct{}{} // the discovery connection joins the service pool
	conn, urlUsed, err := c.dial(ctx, true)
	if err != nil {
		<-c.svc.slots
		return err
	}
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, int(c.cfg.Timeout/time.Second), false,
		"(objectClass=*)", []string{"supportedControl", "supportedExtension", "supportedCapabilities",
			"vendorName", "vendorVersion", "defaultNamingContext", "namingContexts"}, nil))
	if err != nil || len(res.Entries) != 1 {
		c.svc.discard(conn)
		if err == nil {
			return newErr("discover", ErrFailed)
		}
		return classify("discover", err, nil)
	}
	c.svc.put(conn, true)
	e := res.Entries[0]
	info := ServerInfo{
		Flavor:            c.cfg.Flavor,
		URL:               urlUsed,
		Vendor:            e.GetAttributeValue("vendorName"),
		NamingContext:     e.GetAttributeValue("defaultNamingContext"),
		SupportedControls: e.GetAttributeValues("supportedControl"),
		IsAD:              slices.Contains(e.GetAttributeValues("supportedCapabilities"), oidADCapability),
		PasswordModify:    slices.Contains(e.GetAttributeValues("supportedExtension"), oidPasswordModify),
	}
	if info.NamingContext == "" {
		info.NamingContext = e.GetAttributeValue("namingContexts")
	}
	info.PPolicyControl = slices.Contains(info.SupportedControls, oidPPolicy)
	switch {
	case slices.Contains(info.SupportedControls, oidPolicyHints):
		info.PolicyHintsOID = oidPolicyHints
	case slices.Contains(info.SupportedControls, oidPolicyHintsDeprec):
		info.PolicyHintsOID = oidPolicyHintsDeprec
	}
	warn := func(msg, fix string) {
		info.Warnings = append(info.Warnings, msg)
		c.capFindings = append(c.capFindings, Finding{Check: "directory.capabilities", Status: CheckWarn, Message: msg, Fix: fix})
	}
	switch c.cfg.Flavor {
	case OpenLDAP:
		if info.IsAD {
			warn("the server is Active Directory but directory.type is openldap",
				"set directory.type: activedirectory")
		}
		if !info.PasswordModify {
			warn("the server does not advertise the Password Modify extended operation (RFC 3062): resets and changes will fail",
				"point directory.urls at an OpenLDAP server (slapd offers the operation built in), or set directory.type to what the server is")
		}
		if !info.PPolicyControl {
			warn("the server does not advertise the password policy control: lockout, must-change and policy reasons cannot be detected",
				"load the ppolicy overlay on the users' database (moduleload ppolicy; overlay ppolicy; ppolicy_default <policy DN>)")
		}
	case ActiveDirectory:
		if !info.IsAD {
			warn("directory.type is activedirectory but the server does not announce Active Directory capabilities",
				"set directory.type: openldap, or point directory.urls at a domain controller")
		}
		if info.PolicyHintsOID == "" {
			warn("the domain controller does not support the policy hints control: resets by the service account skip password history and minimum age (Samba 4.17 behaves this way)",
				"use domain controllers that offer the policy hints control 1.2.840.113556.1.4.2239 (Windows Server 2012 or later, 2008 R2 with KB2386717); until then, users may reset to a password in their history (changes as the user still check it)")
		} else {
			c.hints = policyHints(info.PolicyHintsOID)
		}
	}
	if u, _ := url.Parse(urlUsed); u != nil && u.Scheme == "ldap" && !c.cfg.StartTLS {
		warn("the connection to the directory is not encrypted (plain ldap:// allowed by configuration)",
			"use ldaps:// URLs in directory.urls or set directory.start_tls: true, and remove directory.allow_plaintext")
	}
	for _, w := range info.Warnings {
		c.log.Warn("directory capability", "warning", w)
	}
	c.log.Info("directory connected", "url", urlUsed, "flavor", string(c.cfg.Flavor), "vendor", info.Vendor,
		"password_modify", info.PasswordModify, "ppolicy", info.PPolicyControl, "policy_hints", info.PolicyHintsOID)
	c.info = info
	return nil
}

// pool is a bounded set of connections of one kind.
type pool struct {
	c       *Client
	service bool
	idle    chan *ldap.Conn
	slots   chan struct{}
	done    chan struct{}
}

func newPool(c *Client, service bool, size int) *pool {
	return &pool{c: c, service: service, idle: make(chan *ldap.Conn, size), slots: make(chan struct{}, size), done: make(chan struct{})}
}

func (p *pool) get(ctx context.Context) (*ldap.Conn, error) {
	for {
		select {
		case conn := <-p.idle:
			if conn.IsClosing() {
				p.discard(conn)
				continue
			}
			return conn, nil
		default:
		}
		select {
		case conn := <-p.idle:
			if conn.IsClosing() {
				p.discard(conn)
				continue
			}
			return conn, nil
		case p.slots <- struct{}{}:
			conn, _, err := p.c.dial(ctx, p.service)
			if err != nil {
				<-p.slots
				return nil, err
			}
			return conn, nil
		case <-ctx.Done():
			return nil, newErr("connect", ErrUnavailable)
		case <-p.done:
			return nil, newErr("connect", ErrUnavailable)
		}
	}
}

// dialFresh takes a slot for a new connection, bypassing the idle ones.
func (p *pool) dialFresh(ctx context.Context) (*ldap.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, newErr("connect", ErrUnavailable)
	case <-p.done:
		return nil, newErr("connect", ErrUnavailable)
	}
	conn, _, err := p.c.dial(ctx, p.service)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return conn, nil
}

func (p *pool) put(conn *ldap.Conn, healthy bool) {
	if !healthy || conn.IsClosing() {
		p.discard(conn)
		return
	}
	select {
	case <-p.done:
		p.discard(conn)
	case p.idle <- conn:
	default:
		p.discard(conn)
	}
}

func (p *pool) discard(conn *ldap.Conn) {
	conn.Close()
	select {
	case <-p.slots:
	default:
	}
}

func (p *pool) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	for {
		select {
		case conn := <-p.idle:
			p.discard(conn)
		default:
			return
		}
	}
}

// String avoids printing configuration (and the bind password) by accident.
func (c *Client) String() string { return fmt.Sprintf("directory.Client(%s)", c.cfg.Flavor) }
