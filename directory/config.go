package directory

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

var attrNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// Defaults for Config fields left zero.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultDialTimeout = 5 * time.Second
	DefaultPoolSize    = 4
	// DefaultGroupCacheTTL: see Config.GroupCacheTTL.
	DefaultGroupCacheTTL = time.Minute
	DefaultGroupDepth    = 16
)

// Config is everything needed to talk to one directory. The caller (the
// config package and cmd/latchkey) fills it; New validates it.
type Config struct {
	Flavor Flavor
	// URLs are tried in order (failover): ldaps://host[:port] or ldap://host[:port].
	URLs []string
	// StartTLS upgrades ldap:// URLs. Plain ldap:// without it needs AllowPlaintext.
	StartTLS       bool
	AllowPlaintext bool
	// CAFile is a PEM bundle to verify the server with; empty means the system roots.
	CAFile string
	// RootCAs overrides CAFile (tests).
	RootCAs *x509.CertPool
	// ServerName overrides the name checked in the certificate (default: the URL host).
	ServerName string
	// InsecureSkipVerify disables certificate verification (demo only; the
	// config package refuses it elsewhere).
	InsecureSkipVerify bool

	BindDN       string
	BindPassword string
	BaseDN       string
	// UserFilter contains {username}, e.g. (&(objectClass=inetOrgPerson)(uid={username})).
	UserFilter string
	// MemberAttributes are the group attributes an OpenLDAP walk follows
	// (default member and uniqueMember).
	MemberAttributes []string
	// GroupBaseDN is where OpenLDAP group walks search (default BaseDN).
	GroupBaseDN string
	// DefaultPolicyDN is the OpenLDAP ppolicy_default entry, used for users
	// without pwdPolicySubentry (slapd does not publish it).
	DefaultPolicyDN string

	// Attribute names; empty means the flavor's default.
	UsernameAttr    string
	DisplayNameAttr string
	MailAttr        string
	MobileAttr      string

	Timeout     time.Duration // per operation
	DialTimeout time.Duration
	PoolSize    int
	// MaxGroupDepth bounds nested group walks on OpenLDAP.
	MaxGroupDepth int
	// GroupCacheTTL is how long an OpenLDAP walk reuses the groups a
	// group is a member of (never a user's own groups, which are searched
	// every time). 0 means DefaultGroupCacheTTL; negative turns the cache
	// off.
	GroupCacheTTL time.Duration
}

func (c *Config) withDefaults() Config {
	o := *c
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.PoolSize <= 0 {
		o.PoolSize = DefaultPoolSize
	}
	if o.MaxGroupDepth <= 0 {
		o.MaxGroupDepth = DefaultGroupDepth
	}
	if o.GroupCacheTTL == 0 {
		o.GroupCacheTTL = DefaultGroupCacheTTL
	}
	if len(o.MemberAttributes) == 0 {
		o.MemberAttributes = []string{"member", "uniqueMember"}
	}
	if o.GroupBaseDN == "" {
		o.GroupBaseDN = o.BaseDN
	}
	def := func(p *string, ol, ad string) {
		if *p == "" {
			if o.Flavor == ActiveDirectory {
				*p = ad
			} else {
				*p = ol
			}
		}
	}
	def(&o.UsernameAttr, "uid", "sAMAccountName")
	def(&o.DisplayNameAttr, "displayName", "displayName")
	def(&o.MailAttr, "mail", "mail")
	def(&o.MobileAttr, "mobile", "mobile")
	return o
}

// validate lists every problem with c.
func (c *Config) validate() error {
	var probs []string
	if c.Flavor != OpenLDAP && c.Flavor != ActiveDirectory {
		probs = append(probs, fmt.Sprintf("type must be %q or %q", OpenLDAP, ActiveDirectory))
	}
	if len(c.URLs) == 0 {
		probs = append(probs, "urls: at least one URL is required")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil || u.Host == "":
			probs = append(probs, fmt.Sprintf("urls[%d]: not a valid ldap:// or ldaps:// URL", i))
		case u.Scheme == "ldaps":
		case u.Scheme == "ldap":
			if !c.StartTLS && !c.AllowPlaintext {
				probs = append(probs, fmt.Sprintf("urls[%d]: ldap:// without start_tls sends passwords in clear; use ldaps://, start_tls, or set allow_plaintext", i))
			}
		default:
			probs = append(probs, fmt.Sprintf("urls[%d]: scheme must be ldaps or ldap", i))
		}
	}
	if c.BindDN == "" {
		probs = append(probs, "bind_dn is required")
	}
	if c.BindPassword == "" {
		probs = append(probs, "bind_password is required")
	}
	if c.BaseDN == "" {
		probs = append(probs, "base_dn is required")
	}
	for _, a := range c.MemberAttributes {
		if !attrNameRE.MatchString(a) {
			probs = append(probs, "member attribute names must be LDAP attribute names")
		}
	}
	if err := ValidateFilterTemplate(c.UserFilter); err != nil {
		probs = append(probs, "user_filter: "+err.Error())
	}
	if len(probs) > 0 {
		return fmt.Errorf("directory: invalid configuration: %s", strings.Join(probs, "; "))
	}
	return nil
}

func (c *Config) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if c.ServerName != "" {
		tc.ServerName = c.ServerName
	}
	if c.InsecureSkipVerify {
		tc.InsecureSkipVerify = true // #nosec G402 -- explicit demo-only opt-in, refused by config validation elsewhere
	}
	switch {
	case c.RootCAs != nil:
		tc.RootCAs = c.RootCAs
	case c.CAFile != "":
		data, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("directory: reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, caFileError(c.CAFile, data)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// caFileError says why a ca_file gave no usable certificate: the first
// certificate Go cannot parse, with the parser's reason (for instance
// "x509: negative serial number", as in about every second CA Samba
// generates for itself), or that it holds none.
func caFileError(file string, data []byte) error {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return fmt.Errorf("directory: ca_file %s holds no PEM certificate", file)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("directory: ca_file %s: its certificate cannot be read: %w", file, err)
		}
	}
}
