package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/policy"
)

// Problem is one thing wrong with the configuration. Key is the path of the
// offending key as written in the file ("directory.urls[1]",
// "policy.tiers[0].groups"); Message says what is wrong and never quotes a
// secret.
type Problem struct {
	Key     string
	Message string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// ValidationError lists every problem found, in file order.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("invalid configuration: 1 problem")
	} else {
		fmt.Fprintf(&b, "invalid configuration: %d problems", len(e.Problems))
	}
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Limits checked by Validate.
const (
	MinSecretKeyBytes    = 32
	MinPasswordMinLength = 8 // NIST SP 800-63B's floor
	MaxPasswordMaxLength = 1024
	MaxCodeTTL           = 10 * time.Minute
	MinCodeLength        = 6
	MaxCodeLength        = 8
	MaxMaxTries          = 5
	// MaxMethodsRequired bounds policy.methods_required (and a tier's).
	MaxMethodsRequired    = 2
	MaxReconfirmDays      = 730
	MaxPoolSize           = 100
	MaxGroupCacheTTL      = time.Hour
	MinWebhookSecretBytes = 16
	// limits.ipv6_prefix: a customer's network is /32 to /64.
	MinIPv6Prefix = 32
	MaxIPv6Prefix = 64
	// MinIPv6SitePrefix bounds limits.ipv6_site_prefix from below (and
	// limits.ipv6_prefix from above).
	MinIPv6SitePrefix = 16
	// MaxSenders bounds smtp.connections and sms.concurrency.
	MaxSenders = 64
	// MaxOutboxWait bounds outbox.max_wait.
	MaxOutboxWait = time.Hour
)

type checker struct{ problems []Problem }

func (c *checker) add(key, format string, args ...any) {
	c.problems = append(c.problems, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) required(key, value string) bool {
	if strings.TrimSpace(value) == "" {
		c.add(key, "required")
		return false
	}
	return true
}

func (c *checker) oneOf(key, value string, allowed ...string) bool {
	if slices.Contains(allowed, value) {
		return true
	}
	if value == "" {
		c.add(key, "required: one of %s", strings.Join(allowed, ", "))
	} else {
		c.add(key, "must be one of %s (got %q)", strings.Join(allowed, ", "), truncate(value))
	}
	return false
}

func (c *checker) positive(key string, d time.Duration) {
	if d <= 0 {
		c.add(key, "must be a positive duration, got %s", d)
	}
}

// atLeastOne is for counts and budgets: 0 or less is a problem.
func (c *checker) atLeastOne(key string, v int) {
	if v < 1 {
		c.add(key, "must be at least 1, got %d", v)
	}
}

func (c *checker) dn(key, dn string) {
	if err := policy.CheckDN(dn); err != nil {
		c.add(key, "%v", err)
	}
}

func (c *checker) dns(key string, list []string) {
	for i, dn := range list {
		c.dn(fmt.Sprintf("%s[%d]", key, i), dn)
	}
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	return string([]rune(s)[:40]) + "…"
}

// Validate checks the whole configuration and returns a *ValidationError
// listing every problem with its key path, or nil. It reads no files and
// opens no sockets: CA files and reachability are for `latchkey check`.
func (c *Config) Validate() error {
	if c == nil {
		return &ValidationError{Problems: []Problem{{Message: "no configuration"}}}
	}
	var ch checker
	c.validateServer(&ch)
	c.validateDirectory(&ch)
	c.validatePolicy(&ch)
	c.validateQuestions(&ch)
	c.validateEmail(&ch)
	c.validateSMS(&ch)
	c.validateStore(&ch)
	c.validateLog(&ch)
	c.validateLimits(&ch)
	c.validateOutbox(&ch)
	c.validateAdmin(&ch)
	if len(ch.problems) > 0 {
		return &ValidationError{Problems: ch.problems}
	}
	return nil
}

func (c *Config) validateServer(ch *checker) {
	s := c.Server
	if ch.required("server.listen", s.Listen) {
		host, port, err := net.SplitHostPort(s.Listen)
		if err != nil {
			ch.add("server.listen", "must be host:port, e.g. 127.0.0.1:8080 or :8443")
		} else {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				ch.add("server.listen", "port must be 1-65535")
			}
			if c.Demo && !isLoopback(host) {
				ch.add("server.listen", "the demo listens on a loopback address only")
			}
		}
	}
	if ch.required("server.public_url", s.PublicURL) {
		checkHTTPURL(ch, "server.public_url", s.PublicURL, true)
	}
	for i, p := range s.TrustedProxies {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			if pfx.Bits() == 0 && !s.TrustAnyProxy {
				ch.add(fmt.Sprintf("server.trusted_proxies[%d]", i),
					"%s trusts X-Forwarded-For from every client, so anyone can pick the address every per-address budget counts; list the proxies' addresses (or set server.trust_any_proxy: true if no client can reach the listener except through the proxy)", p)
			}
			continue
		}
		if _, err := netip.ParseAddr(p); err == nil {
			continue
		}
		ch.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "must be a CIDR (10.0.0.0/8) or an IP address")
	}
	switch {
	case s.SecretKey == "":
		ch.add("server.secret_key", "required: set server.secret_key_file to a file of at least %d random bytes (openssl rand -base64 48)", MinSecretKeyBytes)
	case len(s.SecretKey) < MinSecretKeyBytes:
		ch.add("server.secret_key", "must be at least %d bytes", MinSecretKeyBytes)
	case weakSecret(s.SecretKey):
		ch.add("server.secret_key", "looks like a placeholder, not random bytes; generate one with openssl rand -base64 48")
	}
	if s.Helpdesk != "" {
		checkHelpdesk(ch, s.Helpdesk)
	}
	ch.positive("server.read_header_timeout", s.ReadHeaderTimeout)
	ch.positive("server.read_timeout", s.ReadTimeout)
	ch.positive("server.write_timeout", s.WriteTimeout)
	ch.positive("server.idle_timeout", s.IdleTimeout)
	if s.ShutdownDelay < 0 || s.ShutdownDelay > time.Minute {
		ch.add("server.shutdown_delay", "must be between 0s and 1m, got %s", s.ShutdownDelay)
	}
}

// checkHTTPURL requires an absolute https URL without user info, query or
// fragment; http is accepted for loopback hosts.
func checkHTTPURL(ch *checker, key, raw string, base bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		ch.add(key, "must be an absolute URL such as https://sspr.example.org")
		return
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			ch.add(key, "must use https (http is allowed only for loopback hosts)")
		}
	default:
		ch.add(key, "scheme must be https")
	}
	if u.User != nil {
		ch.add(key, "must not contain user info")
	}
	if base && (u.RawQuery != "" || u.Fragment != "" || u.ForceQuery) {
		ch.add(key, "must not have a query or fragment")
	}
}

func checkHelpdesk(ch *checker, raw string) {
	const key = "server.helpdesk"
	if addr, ok := strings.CutPrefix(raw, "mailto:"); ok {
		if i := strings.IndexByte(addr, '?'); i >= 0 {
			addr = addr[:i]
		}
		if a, err := mail.ParseAddress(addr); err != nil || a.Name != "" {
			ch.add(key, "mailto: must be followed by one e-mail address")
		}
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		ch.add(key, "must be an http(s) URL or a mailto: link")
	}
}

// weakSecret catches placeholders and keys that are clearly not random.
func weakSecret(s string) bool {
	lower := strings.ToLower(s)
	for _, w := range []string{"changeme", "change-me", "change_me", "change me", "secret", "password",
		"example", "default", "latchkey", "replace", "placeholder", "insecure", "12345678", "abcdefgh", "qwerty"} {
		if strings.Contains(lower, w) {
			return true
		}
	}
	distinct := map[byte]bool{}
	for i := 0; i < len(s); i++ {
		distinct[s[i]] = true
	}
	return len(distinct) < 8
}

func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

func (c *Config) validateDirectory(ch *checker) {
	d := c.Directory
	ch.oneOf("directory.type", d.Type, DirectoryOpenLDAP, DirectoryActiveDirectory)
	if len(d.URLs) == 0 {
		ch.add("directory.urls", "required: at least one ldaps:// or ldap:// URL")
	}
	for i, raw := range d.URLs {
		key := fmt.Sprintf("directory.urls[%d]", i)
		u, err := url.Parse(raw)
		if err != nil {
			ch.add(key, "not a URL")
			continue
		}
		switch u.Scheme {
		case "ldaps":
			if d.StartTLS {
				ch.add(key, "directory.start_tls applies to ldap:// URLs; use ldaps:// or start_tls, not both")
			}
		case "ldap":
			if !d.StartTLS {
				switch {
				case d.Type == DirectoryActiveDirectory:
					ch.add(key, "Active Directory accepts password writes only over TLS: use ldaps:// or set directory.start_tls: true")
				case !d.AllowPlaintext:
					ch.add(key, "ldap:// without directory.start_tls sends passwords in clear: use ldaps://, set directory.start_tls: true, or set directory.allow_plaintext: true")
				}
			}
		default:
			ch.add(key, "scheme must be ldaps or ldap")
			continue
		}
		if u.Hostname() == "" {
			ch.add(key, "host is required")
		}
		if u.User != nil {
			ch.add(key, "must not contain user info; use directory.bind_dn and bind_password_file")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			ch.add(key, "must be only scheme://host[:port]")
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				ch.add(key, "port must be 1-65535")
			}
		}
	}
	if d.InsecureSkipVerify && !c.Demo {
		ch.add("directory.insecure_skip_verify", "allowed only in the demo; set directory.ca_file to the CA that signed the directory's certificate instead")
	}
	if ch.required("directory.bind_dn", d.BindDN) {
		ch.dn("directory.bind_dn", d.BindDN)
	}
	if d.BindPassword == "" {
		ch.add("directory.bind_password", "required: set directory.bind_password_file")
	}
	if ch.required("directory.base_dn", d.BaseDN) {
		ch.dn("directory.base_dn", d.BaseDN)
	}
	if ch.required("directory.user_filter", d.UserFilter) {
		checkUserFilter(ch, d.UserFilter)
	}
	if d.Type == DirectoryOpenLDAP {
		ch.oneOf("directory.group_member_attribute", d.GroupMemberAttribute, "member", "uniqueMember")
		if d.DefaultPolicyDN != "" {
			ch.dn("directory.default_policy_dn", d.DefaultPolicyDN)
		}
	}
	ch.positive("directory.timeout", d.Timeout)
	if d.PoolSize < 1 || d.PoolSize > MaxPoolSize {
		ch.add("directory.pool_size", "must be 1-%d, got %d", MaxPoolSize, d.PoolSize)
	}
	if d.GroupCacheTTL < 0 || d.GroupCacheTTL > MaxGroupCacheTTL {
		ch.add("directory.group_cache_ttl", "must be between 0 (off) and %s, got %s", MaxGroupCacheTTL, d.GroupCacheTTL)
	}
}

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

// checkUserFilter requires at least one {username} (each is replaced by the
// same escaped value, e.g. (|(uid={username})(mail={username}))), no other placeholder, and
// a parenthesised filter with balanced parentheses.
func checkUserFilter(ch *checker, f string) {
	const key = "directory.user_filter"
	if n := strings.Count(f, "{username}"); n < 1 {
		ch.add(key, "must contain {username}")
	}
	for _, p := range placeholderRE.FindAllString(f, -1) {
		if p != "{username}" {
			ch.add(key, "unknown placeholder %s; only {username} is replaced", truncate(p))
		}
	}
	t := strings.TrimSpace(f)
	if !strings.HasPrefix(t, "(") || !strings.HasSuffix(t, ")") {
		ch.add(key, "must be enclosed in parentheses, e.g. (uid={username})")
		return
	}
	depth := 0
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 && i != len(t)-1 {
				ch.add(key, "must be one filter: parentheses close before the end")
				return
			}
			if depth < 0 {
				ch.add(key, "has unbalanced parentheses")
				return
			}
		}
	}
	if depth != 0 {
		ch.add(key, "has unbalanced parentheses")
	}
}

var knownMethods = []string{policy.MethodEmail, policy.MethodSMS, policy.MethodTOTP, policy.MethodWebAuthn, policy.MethodQuestions}

// passkeyHost reports whether public_url's host can be a WebAuthn relying
// party id: a domain name (an IP address cannot be one; "localhost" can).
func passkeyHost(publicURL string) bool {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" {
		return false
	}
	_, err = netip.ParseAddr(u.Hostname())
	return err != nil
}

// validatePolicy checks policy: who (scope and groups), the methods and
// how many, the tiers, the password rules and the codes.
func (c *Config) validatePolicy(ch *checker) {
	c.validateScope(ch)
	methods, baseOK := c.validateMethods(ch)
	c.validateTiers(ch, methods, baseOK)
	c.validatePasswordRules(ch)
	c.validatePolicyNumbers(ch)
}

// validateScope checks policy.scope and its group lists.
func (c *Config) validateScope(ch *checker) {
	p := c.Policy
	ch.oneOf("policy.scope", p.Scope, policy.ScopeNone, policy.ScopeSelected, policy.ScopeAll)
	if p.Scope == policy.ScopeSelected && len(p.Groups) == 0 {
		ch.add("policy.groups", "required with scope selected: at least one group DN")
	}
	ch.dns("policy.groups", p.Groups)
	ch.dns("policy.exclude_groups", p.ExcludeGroups)
	ch.dns("policy.privileged_groups", p.PrivilegedGroups)
}

// validateMethods checks policy.methods and policy.methods_required; it
// returns the methods that are valid (each once) and whether
// methods_required is.
func (c *Config) validateMethods(ch *checker) (methods []string, baseOK bool) {
	p := c.Policy
	if len(p.Methods) == 0 && p.Scope != policy.ScopeNone {
		ch.add("policy.methods", "required: at least one of %s", strings.Join(knownMethods, ", "))
	}
	for i, m := range p.Methods {
		key := fmt.Sprintf("policy.methods[%d]", i)
		switch {
		case !slices.Contains(knownMethods, m):
			ch.add(key, "must be one of %s (got %q)", strings.Join(knownMethods, ", "), truncate(m))
			continue
		case slices.Contains(methods, m):
			ch.add(key, "%s is listed twice", m)
			continue
		case m == policy.MethodEmail && !c.Email.Enabled:
			ch.add(key, "email needs email.enabled: true")
		case m == policy.MethodSMS && !c.SMS.Enabled:
			ch.add(key, "sms needs sms.enabled: true")
		case m == policy.MethodWebAuthn && !passkeyHost(c.Server.PublicURL):
			ch.add(key, "webauthn needs server.public_url with a host name (the passkeys' relying party id), not an IP address")
		}
		methods = append(methods, m)
	}
	if len(methods) > 0 && !slices.ContainsFunc(methods, func(m string) bool { return m != policy.MethodQuestions }) {
		ch.add("policy.methods", "security questions can never be the only method: add email, sms, totp or webauthn")
	}
	baseOK = p.MethodsRequired >= 1 && p.MethodsRequired <= MaxMethodsRequired
	if !baseOK {
		ch.add("policy.methods_required", "must be 1 or %d, got %d", MaxMethodsRequired, p.MethodsRequired)
	} else if len(p.Methods) > 0 && p.MethodsRequired > len(methods) {
		ch.add("policy.methods_required", "is %d but policy.methods offers only %d", p.MethodsRequired, len(methods))
	}
	return methods, baseOK
}

// validateTiers checks policy.tiers against the valid methods (and
// methods_required when baseOK).
func (c *Config) validateTiers(ch *checker, methods []string, baseOK bool) {
	p := c.Policy
	for i, t := range p.Tiers {
		key := fmt.Sprintf("policy.tiers[%d]", i)
		if len(t.Groups) == 0 {
			ch.add(key+".groups", "required: at least one group DN")
		}
		ch.dns(key+".groups", t.Groups)
		if t.MethodsRequired < 0 || t.MethodsRequired > MaxMethodsRequired {
			ch.add(key+".methods_required", "must be 1 or %d (0 or absent keeps policy.methods_required), got %d", MaxMethodsRequired, t.MethodsRequired)
			continue
		}
		left := methods
		if len(t.Methods) > 0 {
			left = nil
			for j, m := range t.Methods {
				if !slices.Contains(methods, m) {
					ch.add(fmt.Sprintf("%s.methods[%d]", key, j), "must be one of policy.methods (got %q)", truncate(m))
				} else if !slices.Contains(left, m) {
					left = append(left, m)
				}
			}
		}
		need := max(p.MethodsRequired, t.MethodsRequired)
		if baseOK && len(methods) > 0 && len(left) < need {
			ch.add(key, "requires %d methods but leaves only %d available", need, len(left))
		} else if n := len(slices.DeleteFunc(slices.Clone(left), func(m string) bool { return m == policy.MethodQuestions })); baseOK && len(t.RequireOneOf) > 0 && len(methods) > 0 && n < need {
			// with require_one_of, security questions do not count
			ch.add(key, "requires %d methods but leaves only %d available that count (security questions never count in a tier with require_one_of)", need, n)
		}
	}
}

// validatePasswordRules checks policy.password.
func (c *Config) validatePasswordRules(ch *checker) {
	pw := c.Policy.Password
	if pw.MinLength < MinPasswordMinLength {
		ch.add("policy.password.min_length", "must be at least %d, got %d", MinPasswordMinLength, pw.MinLength)
	}
	if pw.MaxLength < pw.MinLength || pw.MaxLength > MaxPasswordMaxLength {
		ch.add("policy.password.max_length", "must be between policy.password.min_length and %d, got %d", MaxPasswordMaxLength, pw.MaxLength)
	}
	for i, w := range pw.BannedWords {
		if strings.TrimSpace(w) == "" {
			ch.add(fmt.Sprintf("policy.password.banned_words[%d]", i), "must not be empty")
		}
	}
}

// validatePolicyNumbers checks the codes' and the flows' numbers: code
// lifetime, length and tries, cooling-off, padding, re-confirmation.
func (c *Config) validatePolicyNumbers(ch *checker) {
	p := c.Policy
	if p.CodeTTL <= 0 || p.CodeTTL > MaxCodeTTL {
		ch.add("policy.code_ttl", "must be a positive duration of at most %s, got %s", MaxCodeTTL, p.CodeTTL)
	}
	if p.CodeLength < MinCodeLength || p.CodeLength > MaxCodeLength {
		ch.add("policy.code_length", "must be %d-%d digits, got %d", MinCodeLength, MaxCodeLength, p.CodeLength)
	}
	if p.MaxTries < 1 || p.MaxTries > MaxMaxTries {
		ch.add("policy.max_tries", "must be 1-%d, got %d", MaxMaxTries, p.MaxTries)
	}
	if p.CoolingOff < 0 {
		ch.add("policy.cooling_off", "must not be negative (0 turns the cooling-off period off), got %s", p.CoolingOff)
	}
	if p.PadFloor < 0 || p.PadFloor > MaxPadFloor {
		ch.add("policy.pad_floor", "must be 0 (pad to the real path's p95 alone) to %s, got %s", MaxPadFloor, p.PadFloor)
	}
	if p.ReconfirmDays < 0 || p.ReconfirmDays > MaxReconfirmDays {
		ch.add("policy.reconfirm_days", "must be 0 (never) to %d, got %d", MaxReconfirmDays, p.ReconfirmDays)
	}
}

func (c *Config) validateOutbox(ch *checker) {
	o := c.Outbox
	if o.MaxWait < time.Second || o.MaxWait > MaxOutboxWait {
		ch.add("outbox.max_wait", "must be 1s to %s, got %s", MaxOutboxWait, o.MaxWait)
	}
	if o.MaxPending < 1 {
		ch.add("outbox.max_pending", "must be at least 1, got %d", o.MaxPending)
	}
	ch.positive("outbox.degraded_after", o.DegradedAfter)
}

func (c *Config) validateEmail(ch *checker) {
	// the demo delivers to its outbox page, never to an SMTP server
	if !c.Email.Enabled || c.Demo {
		return
	}
	s := c.SMTP
	hostOK := true
	if strings.TrimSpace(s.Host) == "" {
		ch.add("smtp.host", "required when email.enabled is true")
		hostOK = false
	}
	if s.Port < 0 || s.Port > 65535 {
		ch.add("smtp.port", "must be 1-65535 (or 0 for the TLS mode's default)")
	}
	if ch.oneOf("smtp.tls", s.TLS, SMTPTLSMandatory, SMTPTLSStartTLS, SMTPTLSImplicit, SMTPTLSNone) &&
		s.TLS == SMTPTLSNone && hostOK && !isLoopback(s.Host) && !s.AllowPlaintext {
		ch.add("smtp.tls", "none sends mail and credentials in clear; set smtp.allow_plaintext: true to accept that (not needed for a loopback host)")
	}
	if s.Username != "" && s.Password == "" {
		ch.add("smtp.password", "required with smtp.username: set smtp.password_file")
	}
	if s.Username == "" && s.Password != "" {
		ch.add("smtp.username", "required when a password is set")
	}
	if strings.TrimSpace(s.From) == "" {
		ch.add("smtp.from", "required when email.enabled is true")
	} else if _, err := mail.ParseAddress(s.From); err != nil {
		ch.add("smtp.from", "must be one address, e.g. Latchkey <no-reply@example.org>")
	}
	ch.positive("smtp.timeout", s.Timeout)
	if s.Connections < 1 || s.Connections > MaxSenders {
		ch.add("smtp.connections", "must be 1-%d, got %d", MaxSenders, s.Connections)
	}
}

var (
	twilioAccountRE = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	twilioServiceRE = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	e164RE          = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)
	alphaSenderRE   = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
)

func (c *Config) validateSMS(ch *checker) {
	s := c.SMS
	if !s.Enabled {
		return
	}
	if s.Concurrency < 1 || s.Concurrency > MaxSenders {
		ch.add("sms.concurrency", "must be 1-%d, got %d", MaxSenders, s.Concurrency)
	}
	if len(s.AllowedCountries) == 0 {
		ch.add("sms.allowed_countries", "required when sms.enabled is true: the ISO 3166-1 codes (GB, DE) numbers may belong to")
	}
	for i, cc := range s.AllowedCountries {
		key := fmt.Sprintf("sms.allowed_countries[%d]", i)
		switch {
		case cc == "UK":
			ch.add(key, "the ISO 3166-1 code for the United Kingdom is GB")
		case !validCountry(cc):
			ch.add(key, "must be an upper-case ISO 3166-1 alpha-2 code such as GB or DE (got %q)", truncate(cc))
		}
	}
	if c.Demo {
		return // the demo delivers to its outbox page, never to a provider
	}
	if !ch.oneOf("sms.provider", s.Provider, SMSTwilio, SMSWebhook) {
		return
	}
	switch s.Provider {
	case SMSTwilio:
		t := s.Twilio
		if ch.required("sms.twilio.account_sid", t.AccountSID) && !twilioAccountRE.MatchString(t.AccountSID) {
			ch.add("sms.twilio.account_sid", "must be AC followed by 32 hex digits")
		}
		if t.AuthToken == "" {
			ch.add("sms.twilio.auth_token", "required: set sms.twilio.auth_token_file")
		}
		if t.From == "" && t.MessagingServiceSID == "" {
			ch.add("sms.twilio.from", "required: an E.164 number (+441234567890) or sender ID, or set sms.twilio.messaging_service_sid")
		}
		if t.From != "" && !e164RE.MatchString(t.From) && (!alphaSenderRE.MatchString(t.From) || !strings.ContainsFunc(t.From, isLetter)) {
			ch.add("sms.twilio.from", "must be an E.164 number (+441234567890) or an alphanumeric sender ID of up to 11 characters (quote numbers in YAML)")
		}
		if t.MessagingServiceSID != "" && !twilioServiceRE.MatchString(t.MessagingServiceSID) {
			ch.add("sms.twilio.messaging_service_sid", "must be MG followed by 32 hex digits")
		}
		if ch.required("sms.twilio.base_url", t.BaseURL) {
			checkHTTPURL(ch, "sms.twilio.base_url", t.BaseURL, true)
		}
	case SMSWebhook:
		w := s.Webhook
		if ch.required("sms.webhook.url", w.URL) {
			checkHTTPURL(ch, "sms.webhook.url", w.URL, false)
		}
		switch {
		case w.Secret == "":
			ch.add("sms.webhook.secret", "required: set sms.webhook.secret_file")
		case len(w.Secret) < MinWebhookSecretBytes:
			ch.add("sms.webhook.secret", "must be at least %d bytes", MinWebhookSecretBytes)
		}
	}
}

func isLetter(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }

func (c *Config) validateStore(ch *checker) {
	s := c.Store
	ch.oneOf("store.driver", s.Driver, StoreSQLite, StorePostgres)
	ch.oneOf("store.migrate", s.Migrate, MigrateOnStart, MigrateManual)
	key := "store.dsn"
	if s.DSNFile != "" {
		key = "store.dsn_file"
	}
	if strings.TrimSpace(s.DSN) == "" {
		ch.add("store.dsn", "required")
		return
	}
	switch s.Driver {
	case StoreSQLite:
		if isPostgresURL(s.DSN) {
			ch.add(key, "is a PostgreSQL DSN but store.driver is sqlite: set store.driver: postgres")
		}
	case StorePostgres:
		checkPostgresDSN(ch, key, s.DSN, s.AllowPlaintext)
	}
}

func (c *Config) validateLog(ch *checker) {
	ch.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	ch.oneOf("log.format", c.Log.Format, "json", "text")
	if c.Log.AuditRetention < MinAuditRetention {
		ch.add("log.audit_retention", "must be at least %s (a duration such as 9600h), got %s", MinAuditRetention, c.Log.AuditRetention)
	}
}

func (c *Config) validateLimits(ch *checker) {
	l := c.Limits
	// in the order of the file (config.example.yaml)
	ch.positive("limits.window", l.Window)
	ch.atLeastOne("limits.starts_per_account", l.StartsPerAccount)
	ch.atLeastOne("limits.starts_per_ip", l.StartsPerIP)
	ch.atLeastOne("limits.starts_total", l.StartsTotal)
	ch.atLeastOne("limits.sends_per_account", l.SendsPerAccount)
	ch.atLeastOne("limits.sends_per_destination", l.SendsPerDestination)
	ch.atLeastOne("limits.sms_per_hour", l.SMSPerHour)
	ch.atLeastOne("limits.sms_per_prefix_per_hour", l.SMSPerPrefixPerHour)
	ch.atLeastOne("limits.code_failures_per_account", l.CodeFailuresPerAccount)
	ch.atLeastOne("limits.sign_ins_per_ip", l.SignInsPerIP)
	ch.atLeastOne("limits.bind_failures", l.BindFailures)
	ch.positive("limits.bind_failure_window", l.BindFailureWindow)
	ch.atLeastOne("limits.notices_per_account", l.NoticesPerAccount)
	if l.IPv6Prefix < MinIPv6Prefix || l.IPv6Prefix > MaxIPv6Prefix {
		ch.add("limits.ipv6_prefix", "must be %d-%d, got %d", MinIPv6Prefix, MaxIPv6Prefix, l.IPv6Prefix)
	} else if l.IPv6SitePrefix < MinIPv6SitePrefix || l.IPv6SitePrefix > l.IPv6Prefix {
		ch.add("limits.ipv6_site_prefix", "must be %d up to limits.ipv6_prefix (%d), got %d", MinIPv6SitePrefix, l.IPv6Prefix, l.IPv6SitePrefix)
	}
	ch.atLeastOne("limits.app_failures", l.AppFailures)
	ch.atLeastOne("limits.app_failures_notify", l.AppFailuresNotify)
	if l.AppFailuresNotify > l.AppFailures && l.AppFailures >= 1 {
		ch.add("limits.app_failures_notify", "must not be more than limits.app_failures (the user is told before the app is suspended), got %d with limits.app_failures %d", l.AppFailuresNotify, l.AppFailures)
	}
	ch.positive("limits.app_failure_window", l.AppFailureWindow)
}
