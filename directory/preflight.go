package directory

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/internal/tlsdiag"
)

// CheckStatus is the outcome of one preflight check.
type CheckStatus string

// The outcomes: OK, WARN (works, but something will bite), FAIL (broken).
const (
	CheckOK   CheckStatus = "OK"
	CheckWarn CheckStatus = "WARN"
	CheckFail CheckStatus = "FAIL"
)

// Finding is one line of `latchkey check`: the check's name, what was found
// and, for WARN and FAIL, a concrete fix naming the configuration key or the
// directory right to change. Messages never hold passwords.
type Finding struct {
	Check   string
	Status  CheckStatus
	Message string
	Fix     string
}

// GroupRef is a group DN from the configuration with the key it came from
// (e.g. "policy.tiers[0].groups[1]"), so that a fix can name the key.
type GroupRef struct {
	Key string
	DN  string
}

// PreflightOptions tune Preflight.
type PreflightOptions struct {
	// Groups are the configured group DNs to look for.
	Groups []GroupRef
	// Canary is a test account's username: the user filter must find
	// exactly this one entry.
	Canary string
	// TryReset resets the canary's password to a random value with the
	// service account, proving the right to reset. The canary is an
	// account the administrator designated for this; its password is
	// unknown afterwards.
	TryReset bool
	// Logger receives the client's log lines (default: discarded).
	Logger *slog.Logger
	// Now is the clock for certificate validity (default time.Now).
	Now func() time.Time
	// CanaryChecks, when set, is called with the client once the canary
	// is found; its findings follow directory.canary. `latchkey check`
	// puts the canary's eligibility decision there.
	CanaryChecks func(ctx context.Context, d Directory, canary *User) []Finding
}

// CertExpiryWarning is how close to its expiry a server certificate gives a WARN.
const CertExpiryWarning = 30 * 24 * time.Hour

// Preflight checks what the gateway needs from the directory, each step
// separately, and says how to fix what fails: every URL reachable over TCP;
// its TLS certificate verified against CAFile (or the system roots) and the
// host name, naming the certificate's names on a mismatch; the service bind;
// the server's capabilities; the base DN; each configured group; with a
// canary, the user filter finding exactly that one user and the service
// account's right to reset it; the password policy's minimum age.
func Preflight(ctx context.Context, cfg Config, opts PreflightOptions) []Finding {
	var out []Finding
	add := func(check string, st CheckStatus, msg, fix string) {
		out = append(out, Finding{Check: check, Status: st, Message: msg, Fix: fix})
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(); err != nil {
		add("directory.config", CheckFail, err.Error(), "correct the directory section of the configuration")
		return out
	}
	cfg = cfg.withDefaults()
	// nameOnly: the certificates failed for their names only, which the
	// bind line must not call a trust problem
	sawName, sawOther := false, false
	for i, raw := range cfg.URLs {
		fs, kinds := probeURL(ctx, cfg, i, raw, opts.Now())
		out = append(out, fs...)
		failed := slices.ContainsFunc(fs, func(f Finding) bool { return f.Check == "directory.tls" && f.Status == CheckFail })
		names := len(kinds) > 0 && !slices.ContainsFunc(kinds, func(k tlsdiag.Kind) bool { return k != tlsdiag.NameMismatch })
		sawName = sawName || (failed && names)
		sawOther = sawOther || (failed && !names)
	}
	nameOnly := sawName && !sawOther

	c, err := Open(ctx, cfg, opts.Logger)
	if err != nil {
		msg, fix := bindFailure(err)
		if nameOnly && (errors.Is(err, ErrCertificate) || errors.Is(err, ErrUnavailable)) {
			msg = "no server in directory.urls could be used: the certificate is not valid for the name in directory.urls (a name problem: the CA is trusted)"
			fix = "fix the directory.tls failures above: a certificate with a subjectAltName for that name"
			if slices.ContainsFunc(out, func(f Finding) bool { return f.Check == "directory.reach" && f.Status == CheckFail }) {
				fix = "fix the directory.reach failures and the directory.tls failures above (a certificate with a subjectAltName for that name)"
			}
		}
		add("directory.bind", CheckFail, msg+"; base DN, groups, canary and reset rights were not checked", fix)
		return out
	}
	defer c.Close()
	add("directory.bind", CheckOK, fmt.Sprintf("bound as %s at %s", cfg.BindDN, c.info.URL), "")
	out = append(out, c.checkServiceAccount(ctx)...)
	out = append(out, c.capFindings...)
	if len(c.capFindings) == 0 {
		add("directory.capabilities", CheckOK, c.capabilitySummary(), "")
	}
	out = append(out, c.checkBaseDN(ctx))
	for _, g := range opts.Groups {
		out = append(out, c.checkGroup(ctx, g))
	}
	var canary *User
	if opts.Canary == "" {
		add("directory.canary", CheckWarn, "not tried: no --canary USER given, so directory.user_filter was not tried",
			"run latchkey check --canary USER with a test account's username")
	} else {
		var f Finding
		canary, f = c.checkCanary(ctx, opts.Canary)
		out = append(out, f)
		if canary != nil && opts.CanaryChecks != nil {
			out = append(out, opts.CanaryChecks(ctx, c, canary)...)
		}
	}
	out = append(out, c.checkPolicy(ctx, canary)...)
	out = append(out, c.checkResetRight(ctx, canary, opts)...)
	return out
}

func defaultPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "ldaps" {
		return "636"
	}
	return "389"
}

// probeURL checks one URL: TCP, then TLS (LDAPS handshake or StartTLS).
// kinds are the certificate's problems when verification failed.
func probeURL(ctx context.Context, cfg Config, i int, raw string, now time.Time) (fs []Finding, kinds []tlsdiag.Kind) {
	key := fmt.Sprintf("directory.urls[%d]", i)
	u, err := url.Parse(raw)
	if err != nil {
		return []Finding{{"directory.reach", CheckFail, raw + ": not a URL", "correct " + key}}, nil
	}
	addr := net.JoinHostPort(u.Hostname(), defaultPort(u))
	d := &net.Dialer{Timeout: cfg.DialTimeout}
	reach, ok := probeReach(ctx, d, raw, addr, key)
	if !ok {
		return []Finding{reach}, nil
	}

	if u.Scheme == "ldap" && !cfg.StartTLS {
		return []Finding{reach, {"directory.tls", CheckWarn, raw + ": no TLS: passwords cross the network in clear (allowed by directory.allow_plaintext)",
			fmt.Sprintf("use an ldaps:// URL in %s or set directory.start_tls: true", key)}}, nil
	}
	host := u.Hostname()
	name := host
	if cfg.ServerName != "" {
		name = cfg.ServerName
	}
	tc, err := cfg.tlsConfig(host)
	if tlsdiag.IsNegativeSerial(err) {
		return []Finding{reach, {"directory.tls", CheckFail, raw + ": " + err.Error() + ": latchkey's TLS (Go) refuses certificates with a negative serial number", negativeSerialFix(name)}}, nil
	}
	if err != nil {
		return []Finding{reach, {"directory.tls", CheckFail, raw + ": " + err.Error(), "set directory.ca_file to a readable PEM file holding the CA certificate that signed the directory's certificate"}}, nil
	}
	state, failed := probeHandshake(ctx, cfg, d, u.Scheme, raw, addr, key, name)
	if failed != nil {
		return []Finding{reach, *failed}, nil
	}
	f, kinds := judgeCertificate(cfg, state, tc.RootCAs, raw, key, name, now)
	return []Finding{reach, f}, kinds
}

// probeReach is the directory.reach finding of one URL: whether addr
// accepts TCP connections.
func probeReach(ctx context.Context, d *net.Dialer, raw, addr, key string) (Finding, bool) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Finding{"directory.reach", CheckFail, fmt.Sprintf("%s: cannot connect to %s: %s", raw, addr, netReason(err)),
			fmt.Sprintf("check the host and port in %s, that the directory server listens there, and that no firewall blocks this machine", key)}, false
	}
	conn.Close()
	return Finding{"directory.reach", CheckOK, fmt.Sprintf("%s: %s accepts TCP connections", raw, addr), ""}, true
}

// probeHandshake makes a TLS handshake with the server (LDAPS, else
// StartTLS) without verifying it, and returns what the server presented,
// or the directory.tls finding of a handshake that failed.
func probeHandshake(ctx context.Context, cfg Config, d *net.Dialer, scheme, raw, addr, key, name string) (tls.ConnectionState, *Finding) {
	probe := &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: true} // #nosec G402 -- the chain is verified by judgeCertificate (tlsdiag.Verify), to say why it fails; nothing is sent on this connection
	fail := func(f Finding) (tls.ConnectionState, *Finding) { return tls.ConnectionState{}, &f }
	if scheme == "ldaps" {
		tctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.Timeout)
		defer cancel()
		td := &tls.Dialer{NetDialer: d, Config: probe}
		c, err := td.DialContext(tctx, "tcp", addr)
		if tlsdiag.IsNegativeSerial(err) {
			return fail(negativeSerialFinding(raw, name))
		}
		if err != nil {
			return fail(Finding{"directory.tls", CheckFail, fmt.Sprintf("%s: TLS handshake failed: %v", raw, err),
				fmt.Sprintf("check that %s speaks LDAPS (TLS from the first byte, usually port 636); for a plain LDAP port use ldap:// with directory.start_tls: true", addr)})
		}
		state := c.(*tls.Conn).ConnectionState()
		c.Close()
		return state, nil
	}
	lc, err := ldap.DialURL(raw, ldap.DialWithDialer(d))
	if err != nil {
		return fail(Finding{"directory.tls", CheckFail, fmt.Sprintf("%s: LDAP connection failed: %s", raw, netReason(err)), "check " + key})
	}
	defer lc.Close()
	lc.SetTimeout(cfg.Timeout)
	err = lc.StartTLS(probe)
	if tlsdiag.IsNegativeSerial(err) {
		return fail(negativeSerialFinding(raw, name))
	}
	if err != nil {
		return fail(Finding{"directory.tls", CheckFail, fmt.Sprintf("%s: StartTLS failed: %s", raw, ldapReason(err)),
			"configure a TLS certificate on the directory server (slapd: TLSCertificateFile/olcTLSCertificateFile), or use an ldaps:// URL in " + key})
	}
	state, _ := lc.TLSConnectionState()
	return state, nil
}

// judgeCertificate is the directory.tls finding of what the server
// presented: verified against roots for name at now, with the kinds of
// what is wrong.
func judgeCertificate(cfg Config, state tls.ConnectionState, roots *x509.CertPool, raw, key, name string, now time.Time) (Finding, []tlsdiag.Kind) {
	if len(state.PeerCertificates) == 0 {
		return Finding{"directory.tls", CheckFail, raw + ": the server presented no certificate", "configure a server certificate on the directory server"}, nil
	}
	leaf := state.PeerCertificates[0]
	probs := tlsdiag.Verify(state.PeerCertificates, roots, name, now)
	if len(probs) > 0 {
		var kinds []tlsdiag.Kind
		var msgs, fixes []string
		for _, p := range probs {
			kinds = append(kinds, p.Kind)
			msgs = append(msgs, p.Message)
			fixes = append(fixes, tlsFix(p, cfg, key, name, leaf))
		}
		st := CheckFail
		if cfg.InsecureSkipVerify {
			st = CheckWarn
			msgs = append(msgs, "ignored because directory.insecure_skip_verify is set (demo only)")
		}
		return Finding{"directory.tls", st, raw + ": " + strings.Join(msgs, "; "), strings.Join(fixes, " ")}, kinds
	}
	ok := fmt.Sprintf("%s: %s, certificate for %s issued by %q, valid until %s", raw, tls.VersionName(state.Version),
		strings.Join(tlsdiag.Names(leaf), ", "), leaf.Issuer.String(), leaf.NotAfter.UTC().Format("2006-01-02"))
	if cfg.InsecureSkipVerify {
		return Finding{"directory.tls", CheckWarn, ok + "; but directory.insecure_skip_verify turns verification off",
			"remove directory.insecure_skip_verify (allowed in the demo only)"}, nil
	}
	if left := leaf.NotAfter.Sub(now); left < CertExpiryWarning {
		return Finding{"directory.tls", CheckWarn, fmt.Sprintf("%s; it expires in %d days", ok, int(left.Hours()/24)),
			"renew the directory server's certificate before " + leaf.NotAfter.UTC().Format("2006-01-02")}, nil
	}
	return Finding{"directory.tls", CheckOK, ok, ""}, nil
}

func negativeSerialFinding(raw, name string) Finding {
	return Finding{"directory.tls", CheckFail,
		raw + ": the server's certificate has a negative serial number, which latchkey's TLS (Go) refuses to read (x509: negative serial number), whatever the CA",
		negativeSerialFix(name)}
}

func negativeSerialFix(name string) string {
	return fmt.Sprintf("give the directory server a certificate with a positive serial number and a subjectAltName for %s, from a CA whose certificate has a positive serial number too, and set directory.ca_file to that CA (Samba's self-generated certificates often have negative serial numbers and never a subjectAltName: set \"tls certfile\", \"tls keyfile\" and \"tls cafile\" in smb.conf).", name)
}

func tlsFix(p tlsdiag.Problem, cfg Config, key, name string, leaf *x509.Certificate) string {
	switch p.Kind {
	case tlsdiag.UnknownAuthority:
		if cfg.CAFile != "" {
			return fmt.Sprintf("set directory.ca_file to the CA certificate that signed the server's certificate (issuer %q); %s does not hold it.", leaf.Issuer.String(), cfg.CAFile)
		}
		return fmt.Sprintf("set directory.ca_file to the PEM file of the CA that signed the server's certificate (issuer %q); the system roots do not include it.", leaf.Issuer.String())
	case tlsdiag.NameMismatch:
		names := tlsdiag.Names(leaf)
		if len(names) == 0 {
			return fmt.Sprintf("the certificate's name is the problem, not its CA: give the directory server a certificate with a subjectAltName for %s. "+
				"Samba's self-generated certificate has none: make a CA and a server certificate with openssl (subjectAltName=DNS:<dc name>,IP:<address>), "+
				"set \"tls keyfile\", \"tls certfile\" and \"tls cafile\" in smb.conf to them, restart samba, and set directory.ca_file to the new CA "+
				"(docs/active-directory.md has the commands).", name)
		}
		return fmt.Sprintf("change the host in %s to a name the certificate holds (%s), or reissue the server certificate with a subjectAltName for %s.", key, strings.Join(names, ", "), name)
	case tlsdiag.Expired:
		return "renew the directory server's certificate."
	case tlsdiag.NotYetValid:
		return "check the clocks of this machine and the directory server."
	}
	return "check the directory server's certificate and directory.ca_file."
}

func netReason(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// ldapReason is the result code name of an LDAP error, without server text.
func ldapReason(err error) string {
	var le *ldap.Error
	if errors.As(err, &le) {
		if le.ResultCode == ldap.ErrorNetwork {
			return "network error"
		}
		return fmt.Sprintf("%s (ldap %d)", ldap.LDAPResultCodeMap[le.ResultCode], le.ResultCode)
	}
	return err.Error()
}

func bindFailure(err error) (msg, fix string) {
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		return "service bind refused: invalid credentials (" + err.Error() + ")",
			"set directory.bind_dn to the service account's DN and directory.bind_password (or bind_password_file) to its password"
	case errors.Is(err, ErrAccountLocked):
		return "service bind refused: the service account is locked out",
			"unlock the service account named in directory.bind_dn and exempt it from lockout (OpenLDAP: a pwdPolicy with pwdLockout: FALSE; AD: a PSO)"
	case errors.Is(err, ErrAccountDisabled), errors.Is(err, ErrPasswordExpired), errors.Is(err, ErrPasswordMustChange):
		return "service bind refused: " + err.Error(),
			"enable the service account named in directory.bind_dn and give it a password that does not expire, then update directory.bind_password"
	case errors.Is(err, ErrCertificate):
		return "no server in directory.urls could be used: its certificate was refused", "fix the directory.tls failures above"
	case errors.Is(err, ErrUnavailable):
		return "no server in directory.urls could be used", "fix the directory.reach and directory.tls failures above"
	case errors.Is(err, ErrInsecure):
		return "the server refuses to bind without TLS", "use ldaps:// in directory.urls or set directory.start_tls: true"
	}
	return "service bind failed: " + err.Error(), "check directory.bind_dn and directory.bind_password"
}

func (c *Client) capabilitySummary() string {
	var parts []string
	if c.info.Vendor != "" {
		parts = append(parts, c.info.Vendor)
	}
	if c.info.IsAD {
		parts = append(parts, "Active Directory")
	}
	if c.info.PasswordModify {
		parts = append(parts, "Password Modify extended operation")
	}
	if c.info.PPolicyControl {
		parts = append(parts, "password policy control")
	}
	if c.info.PolicyHintsOID != "" {
		parts = append(parts, "policy hints control "+c.info.PolicyHintsOID)
	}
	return "the server offers what " + string(c.cfg.Flavor) + " resets need: " + strings.Join(parts, ", ")
}

// baseSearch reads one entry by DN; nil entry and nil error mean it does not
// exist (or the service account cannot see it).
func (c *Client) baseSearch(ctx context.Context, op, dn string, attrs []string) (*ldap.Entry, error) {
	var entry *ldap.Entry
	err := c.withService(ctx, op, true, func(conn *ldap.Conn) error {
		res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
			int(c.cfg.Timeout/time.Second), false, "(objectClass=*)", attrs, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(res.Entries) == 1 {
			entry = res.Entries[0]
		}
		return nil
	})
	return entry, err
}

func (c *Client) checkBaseDN(ctx context.Context) Finding {
	const check = "directory.base_dn"
	if _, err := ldap.ParseDN(c.cfg.BaseDN); err != nil {
		return Finding{check, CheckFail, fmt.Sprintf("%q is not a valid DN", c.cfg.BaseDN), "correct directory.base_dn"}
	}
	e, err := c.baseSearch(ctx, "base dn", c.cfg.BaseDN, []string{"1.1"})
	if isReferral(err) {
		return Finding{check, CheckFail, fmt.Sprintf("%q is not held by the server%s: it answered with a referral, which latchkey never follows", c.cfg.BaseDN, c.contextHint()),
			"set directory.base_dn to the entry above the users inside the server's naming context (" + c.contextName() + "), or point directory.urls at a directory server that holds " + c.cfg.BaseDN}
	}
	if err != nil {
		return Finding{check, CheckFail, fmt.Sprintf("reading %q: %v", c.cfg.BaseDN, err), "check directory.base_dn and that directory.bind_dn may read it"}
	}
	if e == nil {
		hint := ""
		if c.info.NamingContext != "" {
			hint = fmt.Sprintf(" (the server's naming context is %q)", c.info.NamingContext)
		}
		return Finding{check, CheckFail, fmt.Sprintf("%q does not exist or the service account cannot read it", c.cfg.BaseDN),
			"set directory.base_dn to an existing entry above the users" + hint + ", and give directory.bind_dn read access to it"}
	}
	return Finding{check, CheckOK, fmt.Sprintf("%q exists", c.cfg.BaseDN), ""}
}

// isReferral reports whether the server answered err's operation with a
// referral: the DN is outside what it holds (AD and slapd with a
// "referral" directive answer so for DNs outside their naming contexts).
func isReferral(err error) bool {
	var de *Error
	return errors.As(err, &de) && de.Sub == subReferral
}

// contextHint is " (its naming context is "X")" when the RootDSE named one.
func (c *Client) contextHint() string {
	if c.info.NamingContext == "" {
		return ""
	}
	return fmt.Sprintf(" (its naming context is %q)", c.info.NamingContext)
}

// contextName is the naming context quoted, or a pointer to the RootDSE.
func (c *Client) contextName() string {
	if c.info.NamingContext == "" {
		return "namingContexts in the RootDSE"
	}
	return strconv.Quote(c.info.NamingContext)
}

var groupClasses = []string{"group", "groupofnames", "groupofuniquenames", "groupofurls", "posixgroup"}

func (c *Client) checkGroup(ctx context.Context, g GroupRef) Finding {
	const check = "directory.group"
	if _, err := ldap.ParseDN(g.DN); err != nil || strings.TrimSpace(g.DN) == "" {
		return Finding{check, CheckFail, fmt.Sprintf("%s: %q is not a valid DN", g.Key, g.DN), "correct " + g.Key + " to the full DN of a group"}
	}
	e, err := c.baseSearch(ctx, "group", g.DN, []string{"objectClass"})
	if isReferral(err) {
		return Finding{check, CheckFail, fmt.Sprintf("%s: %q is not held by the server%s: it answered with a referral, which latchkey never follows", g.Key, g.DN, c.contextHint()),
			fmt.Sprintf("correct %s to the DN of a group inside the server's naming context (%s): groups are read on the servers in directory.urls only", g.Key, c.contextName())}
	}
	if err != nil {
		return Finding{check, CheckFail, fmt.Sprintf("%s: reading %q: %v", g.Key, g.DN, err), "check " + g.Key}
	}
	if e == nil {
		return Finding{check, CheckFail, fmt.Sprintf("%s: %q does not exist (or the service account cannot read it)", g.Key, g.DN),
			fmt.Sprintf("correct %s to the DN of an existing group, or create the group; a missing group matches nobody", g.Key)}
	}
	for _, oc := range e.GetAttributeValues("objectClass") {
		if slices.Contains(groupClasses, strings.ToLower(oc)) {
			return Finding{check, CheckOK, fmt.Sprintf("%s: %q exists (%s)", g.Key, g.DN, oc), ""}
		}
	}
	return Finding{check, CheckWarn, fmt.Sprintf("%s: %q exists but is not a group (objectClass %s)", g.Key, g.DN, strings.Join(e.GetAttributeValues("objectClass"), ", ")),
		fmt.Sprintf("correct %s to the DN of a group (groupOfNames, groupOfUniqueNames or an AD group)", g.Key)}
}

func (c *Client) checkCanary(ctx context.Context, name string) (*User, Finding) {
	const check = "directory.canary"
	filter, _ := BuildFilter(c.cfg.UserFilter, name)
	u, err := c.Lookup(ctx, name)
	switch {
	case err == nil:
		return u, Finding{check, CheckOK, fmt.Sprintf("user_filter found exactly one entry for %q: %s", name, u.DN), ""}
	case errors.Is(err, ErrNotFound):
		return nil, Finding{check, CheckFail, fmt.Sprintf("no entry under base_dn %q matches user_filter %s for %q", c.cfg.BaseDN, filter, name),
			"check that directory.base_dn contains the users and that directory.user_filter matches their login name (or that --canary names an existing account)"}
	case errors.Is(err, ErrAmbiguous):
		return nil, Finding{check, CheckFail, fmt.Sprintf("ambiguous: several entries under base_dn %q match user_filter %s for %q", c.cfg.BaseDN, filter, name),
			"make directory.user_filter match a unique attribute (e.g. uid or sAMAccountName, with the object class of people) or narrow directory.base_dn, so that every username names one account"}
	case isReferral(err):
		return nil, Finding{check, CheckFail, fmt.Sprintf("searching base_dn %q for %q: base_dn is not held by the server%s: it answered with a referral, which latchkey never follows", c.cfg.BaseDN, name, c.contextHint()),
			"set directory.base_dn to the entry above the users inside the server's naming context (" + c.contextName() + "); see directory.base_dn"}
	case errors.Is(err, ErrInsufficientRights):
		return nil, Finding{check, CheckFail, fmt.Sprintf("found %q but the service account cannot read its stable identifier (entryUUID / objectGUID)", name),
			"give directory.bind_dn read access to entryUUID (OpenLDAP) or objectGUID (AD) on the users"}
	}
	return nil, Finding{check, CheckFail, fmt.Sprintf("looking up %q: %v", name, err), "check directory.base_dn and directory.user_filter"}
}

// checkPolicy warns about a minimum password age: a user who reset cannot
// reset or change again within it.
func (c *Client) checkPolicy(ctx context.Context, canary *User) []Finding {
	const check = "directory.policy"
	u := canary
	if u == nil {
		if c.cfg.Flavor == OpenLDAP && c.cfg.DefaultPolicyDN == "" {
			return nil
		}
		u = &User{}
	}
	p, err := c.EffectivePolicy(ctx, u)
	if err != nil || !p.Known {
		who := "the domain"
		if c.cfg.Flavor == OpenLDAP {
			who = "directory.default_policy_dn"
		}
		return []Finding{{check, CheckWarn, "the password policy could not be read, so users are not shown it before typing",
			"give directory.bind_dn read access to the policy of " + who}}
	}
	if p.MinAge > 0 {
		fix := "set the domain's minimum password age to 0 (Group Policy: Default Domain Policy > Password Policy > Minimum password age; Samba: samba-tool domain passwordsettings set --min-pwd-age=0)"
		switch {
		case strings.HasPrefix(p.Source, "pso:"):
			fix = fmt.Sprintf("set msDS-MinimumPasswordAge to 0 on the fine-grained policy %s", strings.TrimPrefix(p.Source, "pso:"))
		case strings.HasPrefix(p.Source, "ppolicy:"):
			fix = fmt.Sprintf("set pwdMinAge: 0 on the policy entry %s (the service account is not a password administrator, so the minimum age applies to its resets)", strings.TrimPrefix(p.Source, "ppolicy:"))
		}
		return []Finding{{check, CheckWarn, fmt.Sprintf("minimum password age is %s (%s): a user who just reset cannot reset again, and a reset followed by a change within that time is refused", p.MinAge, p.Source), fix}}
	}
	return []Finding{{check, CheckOK, fmt.Sprintf("%s: minimum length %d, history %d, no minimum age", p.Source, p.MinLength, p.HistoryLength), ""}}
}

func (c *Client) rightsFix() string {
	if c.cfg.Flavor == ActiveDirectory {
		return fmt.Sprintf("delegate to %s, on the OU of the users (inherited by user objects): the extended right Reset Password, and Write lockoutTime and Write pwdLastSet (Windows: dsacls \"OU=…\" /I:S /G \"DOMAIN\\account:CA;Reset Password;user\" \"DOMAIN\\account:RPWP;lockoutTime;user\" \"DOMAIN\\account:RPWP;pwdLastSet;user\"; Samba: samba-tool dsacl set --sddl with the schema GUIDs, as docs/active-directory.md step 5 shows)", c.cfg.BindDN)
	}
	return fmt.Sprintf("grant %s write and auth (=wx, not manage) on userPassword of the users, e.g. `access to attrs=userPassword by dn.exact=\"%s\" =wx`, and write on pwdAccountLockedTime and pwdReset", c.cfg.BindDN, c.cfg.BindDN)
}

func (c *Client) checkResetRight(ctx context.Context, canary *User, opts PreflightOptions) []Finding {
	const check = "directory.reset_right"
	tryHint := "run latchkey check --canary USER --try-reset with a test account (its password is changed to a random value)"
	switch {
	case opts.Canary == "":
		return []Finding{{check, CheckWarn, "not tried: no --canary USER given", tryHint}}
	case canary == nil:
		return []Finding{{check, CheckWarn, "not tried: the canary was not found", "fix the directory.canary failure above"}}
	case opts.TryReset:
		return []Finding{c.tryReset(ctx, canary)}
	case c.cfg.Flavor == ActiveDirectory:
		return []Finding{c.adEffectiveRights(ctx, canary, tryHint)}
	}
	return []Finding{{check, CheckWarn, "not tried: OpenLDAP has no read-only test of write access to userPassword", "add --try-reset to change the canary's password and prove it"}}
}

func (c *Client) tryReset(ctx context.Context, u *User) Finding {
	const check = "directory.reset_right"
	pw, err := randomPassword(u.Username)
	if err != nil {
		return Finding{check, CheckFail, "generating a password: " + err.Error(), "retry"}
	}
	err = c.SetPassword(ctx, u, pw, SetOptions{Unlock: true})
	switch {
	case err == nil:
		return Finding{check, CheckOK, fmt.Sprintf("reset the canary %q (%s) with the service account: its password was changed to a random value nobody knows", u.Username, u.DN), ""}
	case errors.Is(err, ErrInsufficientRights):
		return Finding{check, CheckFail, fmt.Sprintf("the service account may not reset %q: %v", u.Username, err), c.rightsFix()}
	case errors.Is(err, ErrPolicyRejected):
		fix := "check the password policy that applies to the canary"
		if ReasonOf(err) == ReasonTooYoung {
			fix = "wait for the minimum password age to pass, and see directory.policy"
		}
		return Finding{check, CheckWarn, fmt.Sprintf("inconclusive: the directory refused the random password for %q (%s); the password was not changed", u.Username, ReasonOf(err)), fix}
	case errors.Is(err, ErrInsecure):
		return Finding{check, CheckFail, "the directory refuses password writes without TLS", "use ldaps:// in directory.urls or set directory.start_tls: true"}
	}
	return Finding{check, CheckFail, fmt.Sprintf("resetting %q failed: %v", u.Username, err), c.rightsFix()}
}

// adEffectiveRights reads allowedAttributesEffective on the canary: the
// attributes the service account may write. Reset Password is an extended
// right no attribute shows, but lockoutTime and pwdLastSet are delegated with it.
func (c *Client) adEffectiveRights(ctx context.Context, u *User, tryHint string) Finding {
	const check = "directory.reset_right"
	e, err := c.baseSearch(ctx, "rights", u.DN, []string{"allowedAttributesEffective"})
	if err != nil || e == nil {
		return Finding{check, CheckWarn, "not tried, and allowedAttributesEffective could not be read", tryHint}
	}
	attrs := e.GetAttributeValues("allowedAttributesEffective")
	has := func(a string) bool {
		return slices.ContainsFunc(attrs, func(s string) bool { return strings.EqualFold(s, a) })
	}
	var missing []string
	for _, a := range []string{"lockoutTime", "pwdLastSet"} {
		if !has(a) {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return Finding{check, CheckFail, fmt.Sprintf("the service account may not write %s on %q (allowedAttributesEffective): unlocking fails, and Reset Password is most likely not delegated either", strings.Join(missing, ", "), u.Username), c.rightsFix()}
	}
	if has("unicodePwd") {
		return Finding{check, CheckOK, fmt.Sprintf("the service account may write unicodePwd, lockoutTime and pwdLastSet on %q (allowedAttributesEffective; not tried)", u.Username), ""}
	}
	return Finding{check, CheckWarn, fmt.Sprintf("the service account may write lockoutTime and pwdLastSet on %q (allowedAttributesEffective), but Reset Password is an extended right no attribute shows: not tried", u.Username), "add --try-reset to change the canary's password and prove it"}
}

// randomPassword is 24 characters from four classes, each present, not
// containing the account name (AD complexity).
func randomPassword(username string) (string, error) {
	classes := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "-_.!#%+="}
	all := strings.Join(classes, "")
	pick := func(set string) (byte, error) {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, err
		}
		return set[n.Int64()], nil
	}
	for {
		b := make([]byte, 24)
		for i := range b {
			set := all
			if i < len(classes) {
				set = classes[i]
			}
			ch, err := pick(set)
			if err != nil {
				return "", err
			}
			b[i] = ch
		}
		// shuffle so the class-guaranteed characters are not always first
		for i := len(b) - 1; i > 0; i-- {
			n, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
			if err != nil {
				return "", err
			}
			j := n.Int64()
			b[i], b[j] = b[j], b[i]
		}
		pw := string(b)
		if len(username) < 3 || !strings.Contains(strings.ToLower(pw), strings.ToLower(username)) {
			return pw, nil
		}
	}
}
