package config

import (
	"time"

	"github.com/latchkeyhq/latchkey/policy"
)

// Config is the whole configuration file. Field tags are the YAML keys; see
// config.example.yaml at the repository root for every key with comments.
type Config struct {
	Server    Server    `mapstructure:"server"`
	Directory Directory `mapstructure:"directory"`
	Policy    Policy    `mapstructure:"policy"`
	Email     Email     `mapstructure:"email"`
	SMS       SMS       `mapstructure:"sms"`
	SMTP      SMTP      `mapstructure:"smtp"`
	Store     Store     `mapstructure:"store"`
	Log       Log       `mapstructure:"log"`
	Limits    Limits    `mapstructure:"limits"`
	Outbox    Outbox    `mapstructure:"outbox"`
	Admin     Admin     `mapstructure:"admin"`
	// Notifications chooses who is told of resets and method changes.
	Notifications Notifications `mapstructure:"notifications"`

	// Demo is set by `latchkey demo` (WithDemo), never by the file or the
	// environment. It allows directory.insecure_skip_verify and requires a
	// loopback listen address.
	Demo bool `mapstructure:"-"`
	// Warnings are soft problems found by Load (a world-readable secret file,
	// inline secrets in a world-readable config file). They never contain
	// secrets; log them.
	Warnings []Problem `mapstructure:"-"`
}

// Server configures the HTTP listener.
type Server struct {
	// Listen is host:port; an empty host listens on every interface.
	Listen string `mapstructure:"listen"`
	// PublicURL is the absolute base URL users reach; links are built from
	// it, never from the Host header. https, or http for loopback hosts.
	PublicURL string `mapstructure:"public_url"`
	// TrustedProxies are CIDRs (or single addresses) whose X-Forwarded-For
	// header is believed.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// TrustAnyProxy allows 0.0.0.0/0 or ::/0 in TrustedProxies: every
	// client could then choose its own address for every per-address
	// budget. Off by default; only for a listener no client reaches except
	// through the proxy.
	TrustAnyProxy bool `mapstructure:"trust_any_proxy"`
	// SecretKey signs and encrypts (CSRF, cookies, stored seeds); at least 32
	// bytes. Secret: also secret_key_file.
	SecretKey     string `mapstructure:"secret_key"`
	SecretKeyFile string `mapstructure:"secret_key_file"`
	// Helpdesk is an http(s) URL or a mailto: link shown on every page.
	Helpdesk string `mapstructure:"helpdesk"`
	// Organisation is the organisation's name, shown on every page beside
	// the product's ("Example Ltd password reset"); empty shows none.
	Organisation      string        `mapstructure:"organisation"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	// ShutdownDelay: after SIGTERM, /readyz answers 503 for this long while
	// requests are still served, so that a load balancer stops sending new
	// ones before the listener closes (0: close at once). Default:
	// DefaultShutdownDelay with store.driver postgres (instances behind a
	// load balancer), 0 with sqlite (one instance, nowhere else to go).
	ShutdownDelay time.Duration `mapstructure:"shutdown_delay"`
}

// Directory types, the values of directory.type.
const (
	DirectoryOpenLDAP        = "openldap"
	DirectoryActiveDirectory = "activedirectory"
)

// Directory configures the LDAP connection.
type Directory struct {
	// Type is DirectoryOpenLDAP or DirectoryActiveDirectory.
	Type string `mapstructure:"type"`
	// URLs are tried in order (failover): ldaps://host[:port] or
	// ldap://host[:port].
	URLs []string `mapstructure:"urls"`
	// StartTLS upgrades ldap:// connections with StartTLS.
	StartTLS bool `mapstructure:"start_tls"`
	// CAFile is a PEM bundle that verifies the servers; empty means the
	// system roots.
	CAFile string `mapstructure:"ca_file"`
	// InsecureSkipVerify turns certificate verification off; only in the demo.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
	// AllowPlaintext allows ldap:// without StartTLS.
	AllowPlaintext bool   `mapstructure:"allow_plaintext"`
	BindDN         string `mapstructure:"bind_dn"`
	// BindPassword is the service account's password. Secret: also
	// bind_password_file.
	BindPassword     string `mapstructure:"bind_password"`
	BindPasswordFile string `mapstructure:"bind_password_file"`
	BaseDN           string `mapstructure:"base_dn"`
	// UserFilter finds one user; "{username}" is replaced by the escaped
	// username. Empty means DefaultUserFilter(Type).
	UserFilter string `mapstructure:"user_filter"`
	// GroupMemberAttribute is the OpenLDAP group attribute walked to resolve
	// nested groups: "member" (groupOfNames) or "uniqueMember"
	// (groupOfUniqueNames). Active Directory ignores it.
	GroupMemberAttribute string `mapstructure:"group_member_attribute"`
	// DefaultPolicyDN (OpenLDAP) is the ppolicy_default entry, for showing
	// the policy of users without pwdPolicySubentry.
	DefaultPolicyDN string        `mapstructure:"default_policy_dn"`
	Timeout         time.Duration `mapstructure:"timeout"`
	// PoolSize is the number of pooled service-account connections.
	PoolSize int `mapstructure:"pool_size"`
	// GroupCacheTTL (OpenLDAP) is how long the groups a group belongs to
	// are reused by nested-group walks; a user's own groups are always
	// read. 0 turns the cache off.
	GroupCacheTTL time.Duration `mapstructure:"group_cache_ttl"`
}

// Policy is who may use self-service and how.
type Policy struct {
	// Scope is policy.ScopeNone, ScopeSelected or ScopeAll.
	Scope string `mapstructure:"scope"`
	// Groups (scope selected): members of any, nested, are eligible.
	Groups []string `mapstructure:"groups"`
	// ExcludeGroups: members are never eligible.
	ExcludeGroups []string `mapstructure:"exclude_groups"`
	// IncludePrivileged opts privileged accounts (AD adminCount=1, members of
	// PrivilegedGroups) in; by default they are excluded.
	IncludePrivileged bool `mapstructure:"include_privileged"`
	// PrivilegedGroups are extra groups whose members count as privileged.
	PrivilegedGroups []string `mapstructure:"privileged_groups"`
	// MethodsRequired is 1 or 2 different methods verified per reset.
	MethodsRequired int `mapstructure:"methods_required"`
	// Methods available: email, sms, totp, webauthn, questions.
	Methods []string `mapstructure:"methods"`
	// Tiers are stricter rules for some groups.
	Tiers []Tier `mapstructure:"tiers"`
	// Questions configures security questions (method "questions").
	Questions Questions `mapstructure:"questions"`
	Password  Password  `mapstructure:"password"`
	// CodeTTL is how long a one-time code lives (at most 10 minutes).
	CodeTTL time.Duration `mapstructure:"code_ttl"`
	// CodeLength is the number of digits in a one-time code, 6 to 8.
	CodeLength int `mapstructure:"code_length"`
	// MaxTries is how many wrong codes kill a code, 1 to 5.
	MaxTries int `mapstructure:"max_tries"`
	// CoolingOff: a method registered more recently than this cannot alone
	// authorise a reset.
	CoolingOff time.Duration `mapstructure:"cooling_off"`
	// PadFloor: answers that must not tell an existing account from an
	// unknown one are held until at least this long after the request
	// began (longer when the real path is slower); 0 pads to the real
	// path's recent p95 alone.
	PadFloor time.Duration `mapstructure:"pad_floor"`
	// ReconfirmDays: users re-confirm their methods after this many days;
	// 0 never (Entra: 0-730).
	ReconfirmDays int `mapstructure:"reconfirm_days"`
}

// Tier is a stricter rule for members of some groups.
type Tier struct {
	Groups []string `mapstructure:"groups" json:"groups"`
	// MethodsRequired; 0 keeps policy.methods_required.
	MethodsRequired int `mapstructure:"methods_required" json:"methods_required"`
	// Methods restricts policy.methods; empty keeps them all.
	Methods []string `mapstructure:"methods" json:"methods"`
	// RequireOneOf: members must verify at least one method of these kinds
	// (email, sms, totp, webauthn); security questions never count.
	RequireOneOf []string `mapstructure:"require_one_of" json:"require_one_of"`
}

// Password is the gateway's own password rules (policy.Rules).
type Password struct {
	MinLength   int      `mapstructure:"min_length"`
	MaxLength   int      `mapstructure:"max_length"`
	BannedWords []string `mapstructure:"banned_words"`
}

// Email turns the e-mail method (and e-mail notifications) on; it needs smtp.
type Email struct {
	Enabled bool `mapstructure:"enabled"`
}

// SMS providers, the values of sms.provider.
const (
	SMSTwilio  = "twilio"
	SMSWebhook = "webhook"
)

// SMS configures text messages.
type SMS struct {
	Enabled  bool   `mapstructure:"enabled"`
	Provider string `mapstructure:"provider"`
	// AllowedCountries are ISO 3166-1 alpha-2 codes (GB, DE) of the numbers
	// users may register; required, against SMS toll fraud.
	AllowedCountries []string `mapstructure:"allowed_countries"`
	Twilio           Twilio   `mapstructure:"twilio"`
	Webhook          Webhook  `mapstructure:"webhook"`
	// Concurrency is how many SMS each instance sends at once.
	Concurrency int `mapstructure:"concurrency"`
}

// Twilio configures the Twilio Messages API.
type Twilio struct {
	AccountSID string `mapstructure:"account_sid"`
	// AuthToken. Secret: also auth_token_file.
	AuthToken     string `mapstructure:"auth_token"`
	AuthTokenFile string `mapstructure:"auth_token_file"`
	// From is an E.164 number or an alphanumeric sender ID; or set
	// MessagingServiceSID instead.
	From                string `mapstructure:"from"`
	MessagingServiceSID string `mapstructure:"messaging_service_sid"`
	// BaseURL is the API root; change it only for tests.
	BaseURL string `mapstructure:"base_url"`
}

// Webhook posts each SMS as JSON to a URL of the site's own.
type Webhook struct {
	URL string `mapstructure:"url"`
	// Secret signs the requests. Secret: also secret_file.
	Secret     string `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret_file"`
}

// SMTP TLS modes, the values of smtp.tls.
const (
	// SMTPTLSMandatory: STARTTLS, required.
	SMTPTLSMandatory = "mandatory"
	// SMTPTLSStartTLS: the same as mandatory; there is no opportunistic mode.
	SMTPTLSStartTLS = "starttls"
	// SMTPTLSImplicit: TLS from the first byte (usually port 465).
	SMTPTLSImplicit = "implicit"
	// SMTPTLSNone: no TLS; needs smtp.allow_plaintext unless the host is
	// loopback.
	SMTPTLSNone = "none"
)

// SMTP configures the mail server.
type SMTP struct {
	Host string `mapstructure:"host"`
	// Port; 0 means by TLS mode: 465 implicit, 587 mandatory/starttls, 25 none.
	Port int    `mapstructure:"port"`
	TLS  string `mapstructure:"tls"`
	// AllowPlaintext accepts tls: none with a host that is not loopback.
	AllowPlaintext bool   `mapstructure:"allow_plaintext"`
	CAFile         string `mapstructure:"ca_file"`
	Username       string `mapstructure:"username"`
	// Password for SMTP AUTH. Secret: also password_file.
	Password     string `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
	// From is the sender: "Latchkey <no-reply@example.org>".
	From    string        `mapstructure:"from"`
	Timeout time.Duration `mapstructure:"timeout"`
	// Connections is how many SMTP sessions each instance sends on at
	// once (each kept open while mail keeps coming).
	Connections int `mapstructure:"connections"`
}

// Outbox configures the queue of mail and SMS waiting to be sent (kept in
// the store, shared by every instance).
type Outbox struct {
	// MaxWait: when the codes waiting would not all leave within it at the
	// measured send rate, or the oldest has waited longer, a new code is
	// refused with 503 busy ("try again in a minute") for every username
	// alike.
	MaxWait time.Duration `mapstructure:"max_wait"`
	// MaxPending: with this many codes waiting, new codes are refused the
	// same way.
	MaxPending int `mapstructure:"max_pending"`
	// DegradedAfter: /readyz reports "outbox": "degraded" (still 200)
	// while the oldest pending code has waited longer than this.
	DegradedAfter time.Duration `mapstructure:"degraded_after"`
}

// Store drivers, the values of store.driver.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// Store configures where state lives.
type Store struct {
	Driver string `mapstructure:"driver"`
	// DSN: "file:/var/lib/latchkey/latchkey.db" (sqlite) or
	// "postgres://..." (postgres). Secret (it may hold a password): also
	// dsn_file. With sqlite and neither set, DefaultDSN.
	DSN     string `mapstructure:"dsn"`
	DSNFile string `mapstructure:"dsn_file"`
	// AllowPlaintext (postgres) accepts an sslmode other than verify-full
	// (disable, prefer, require, verify-ca) to a host that is neither
	// loopback nor a Unix socket. Off: such a DSN is a validation problem.
	AllowPlaintext bool `mapstructure:"allow_plaintext"`
	// Migrate says who changes the schema: MigrateOnStart (`latchkey
	// serve` applies pending migrations when it starts) or MigrateManual
	// (only `latchkey migrate` does; serve refuses a schema it cannot
	// serve on). Default: on_start with sqlite (one instance), manual with
	// postgres (several instances: a newer one starting must not migrate
	// the database under older ones still serving).
	Migrate string `mapstructure:"migrate"`
}

// Values of store.migrate.
const (
	MigrateOnStart = "on_start"
	MigrateManual  = "manual"
)

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is json or text.
	Format string `mapstructure:"format"`
	// AuditFile, when set, receives audit events as JSON lines.
	AuditFile string `mapstructure:"audit_file"`
	// AuditRetention is how long audit events are kept in the store; a
	// sweep deletes older ones (the audit file is the operator's to rotate).
	// At least MinAuditRetention.
	AuditRetention time.Duration `mapstructure:"audit_retention"`
}

// Limits are the abuse budgets, counted in the store so they hold across
// restarts and instances. A request over budget gets the normal answer and
// nothing happens (no lookup result, no message, no bind).
type Limits struct {
	// Window is the counting window of the per-account, per-IP and
	// per-destination budgets.
	Window time.Duration `mapstructure:"window"`
	// StartsPerAccount: reset/unlock starts per account (every spelling of
	// one account shares it; unknown names get a counter too).
	StartsPerAccount int `mapstructure:"starts_per_account"`
	// StartsPerIP: reset/unlock starts per client address.
	StartsPerIP int `mapstructure:"starts_per_ip"`
	// StartsTotal: reset/unlock starts per window, all clients together. It
	// bounds the state that requests without any proof can create (flows,
	// counters), whatever the number of client addresses.
	StartsTotal int `mapstructure:"starts_total"`
	// SendsPerAccount: codes sent per account, all channels together.
	SendsPerAccount int `mapstructure:"sends_per_account"`
	// SendsPerDestination: codes sent to one address or number.
	SendsPerDestination int `mapstructure:"sends_per_destination"`
	// SMSPerHour: every SMS the gateway sends in a clock hour, all users.
	SMSPerHour int `mapstructure:"sms_per_hour"`
	// SMSPerPrefixPerHour: SMS to numbers that share their first six digits
	// (country code and number block), per clock hour, all users: the
	// velocity check against SMS pumping through premium number ranges.
	SMSPerPrefixPerHour int `mapstructure:"sms_per_prefix_per_hour"`
	// CodeFailuresPerAccount: wrong codes per account across re-sent codes.
	CodeFailuresPerAccount int `mapstructure:"code_failures_per_account"`
	// SignInsPerIP: password sign-ins (register, change) per client address.
	SignInsPerIP int `mapstructure:"sign_ins_per_ip"`
	// BindFailures: wrong passwords per account the gateway forwards to the
	// directory in BindFailureWindow; also kept below the directory's own
	// lockout threshold, so the gateway never locks an account.
	BindFailures      int           `mapstructure:"bind_failures"`
	BindFailureWindow time.Duration `mapstructure:"bind_failure_window"`
	// NoticesPerAccount: notices (method added or removed, password
	// changed, unlocked, partial failure) told to one account per Window;
	// the rest are held and told as one notice when the window ends. The
	// reset notice is never held (it still counts).
	NoticesPerAccount int `mapstructure:"notices_per_account"`
	// IPv6Prefix: IPv6 clients in one network of this many bits are one
	// client address for every per-address budget and in the audit
	// (32-64; default 56, what providers commonly give one customer).
	IPv6Prefix int `mapstructure:"ipv6_prefix"`
	// IPv6SitePrefix: every IPv6 network of this many bits has a second
	// budget of its own, four times each per-address budget, spent only by
	// requests within their address's (16 up to ipv6_prefix; default 48;
	// equal to ipv6_prefix: none).
	IPv6SitePrefix int `mapstructure:"ipv6_site_prefix"`
	// AppFailures: wrong authenticator-app codes of an account in
	// AppFailureWindow (counted over the current and the previous window)
	// that suspend its apps for resets and unlocks until the user signs in
	// with the password. Every channel is told.
	AppFailures int `mapstructure:"app_failures"`
	// AppFailuresNotify: wrong authenticator-app codes in AppFailureWindow
	// after which the user is told on every channel, once a window, even
	// before any method is proven. At most AppFailures.
	AppFailuresNotify int           `mapstructure:"app_failures_notify"`
	AppFailureWindow  time.Duration `mapstructure:"app_failure_window"`
}

// Defaults that are not obvious from Default. Default (rawDefaults below)
// is the one place every key's default is written: cmd/latchkey passes
// every value on, so the defaults of the packages it configures (directory,
// notify) never decide what runs; flow has none of its own (Options left
// zero take Default's values, and config's bounds).
const (
	// DefaultListen is server.listen's default: loopback, behind a proxy.
	DefaultListen = "127.0.0.1:8080"
	// DefaultDSN is store.dsn's default with the sqlite driver.
	DefaultDSN = "file:/var/lib/latchkey/latchkey.db"
	// DefaultTwilioURL is sms.twilio.base_url's default.
	DefaultTwilioURL = "https://api.twilio.com"
	// DefaultCodeTTL is policy.code_ttl's default (and its maximum,
	// MaxCodeTTL).
	DefaultCodeTTL = 10 * time.Minute
	// DefaultCodeLength is policy.code_length's default: 8 digits
	// (MinCodeLength to MaxCodeLength are allowed).
	DefaultCodeLength = 8
	// DefaultMaxTries is policy.max_tries's default (and its maximum).
	DefaultMaxTries = 5
	// DefaultCoolingOff is policy.cooling_off's default.
	DefaultCoolingOff = 24 * time.Hour
	// MaxPadFloor bounds policy.pad_floor (the gateway never holds an
	// answer longer).
	MaxPadFloor      = 500 * time.Millisecond
	DefaultReconfirm = 180
	// DefaultAuditRetention is log.audit_retention's default (400 days: a
	// year and a month, for yearly reviews).
	DefaultAuditRetention = 400 * 24 * time.Hour
	// MinAuditRetention bounds log.audit_retention from below, so that a
	// value without its unit cannot empty the audit.
	MinAuditRetention = 24 * time.Hour
	// DefaultIPv6Prefix is limits.ipv6_prefix's default: what providers
	// commonly give one customer.
	DefaultIPv6Prefix = 56
	// DefaultIPv6SitePrefix is limits.ipv6_site_prefix's default.
	DefaultIPv6SitePrefix = 48
)

// Settings without a key: the same in every deployment. They are written
// here, beside the keys' defaults, so that config is the one place the
// values a gateway runs with are chosen; cmd/latchkey passes them on.
const (
	// FlowTTL is how long a reset or unlock flow lives after its start
	// (docs/api.md).
	FlowTTL = 15 * time.Minute
	// SessionTTL is how long a registration session lives after the
	// sign-in, SessionIdle how long it lives without a request.
	SessionTTL  = 30 * time.Minute
	SessionIdle = 10 * time.Minute
	// ReauthWindow: adding or removing a method needs the password entered
	// within this long (else reauth_required).
	ReauthWindow = 10 * time.Minute
	// MaxMethods is how many recovery methods one account may register (a
	// new authenticator app or set of questions replaces the old one and
	// does not count twice).
	MaxMethods = 5
	// ProductName is the name pages, mails and authenticator apps show.
	ProductName = "Latchkey"
)

// The readiness probe every deployment example uses (deploy/kubernetes,
// deploy/haproxy, docs/deploy.md): /readyz every ProbePeriod, an instance
// out of rotation after ProbeFailureThreshold failed checks.
const (
	ProbePeriod           = 5 * time.Second
	ProbeFailureThreshold = 2
	// DrainMargin is added to the probe's time to notice a drain: one
	// check's own answer time (/readyz answers within a second while
	// draining) and the load balancer's timer not starting at SIGTERM.
	DrainMargin = 5 * time.Second
	// DefaultShutdownDelay is server.shutdown_delay's default with a
	// shared store: longer than the probe can take to notice the drain, so
	// the listener closes only after the load balancer has stopped sending.
	DefaultShutdownDelay = ProbePeriod*ProbeFailureThreshold + DrainMargin
)

// shutdownDelayUnset marks server.shutdown_delay as not given, until
// fillDerived knows the store driver.
const shutdownDelayUnset = -1

// Default returns the built-in defaults: every key Load knows, with the value
// it has when neither the file nor the environment sets it. It does not pass
// Validate on its own (no public URL, secret key or directory).
func Default() *Config {
	c := rawDefaults()
	c.fillDerived()
	return c
}

// DefaultFor is Default with store.driver set to driver: the defaults that
// depend on it (store.dsn, store.migrate, server.shutdown_delay) are the
// ones Load gives a file that sets only the driver.
func DefaultFor(driver string) *Config {
	c := rawDefaults()
	c.Store.Driver = driver
	c.fillDerived()
	return c
}

// fillDerived sets the defaults that depend on other keys, once the file, the
// environment and the secret files have been read: the user filter for the
// directory type, the SQLite DSN when neither dsn nor dsn_file is set, and
// server.shutdown_delay and store.migrate by the store driver when not set.
func (c *Config) fillDerived() {
	if c.Directory.UserFilter == "" {
		c.Directory.UserFilter = DefaultUserFilter(c.Directory.Type)
	}
	if c.Store.DSN == "" && c.Store.DSNFile == "" && c.Store.Driver == StoreSQLite {
		c.Store.DSN = DefaultDSN
	}
	if c.Store.Migrate == "" {
		c.Store.Migrate = MigrateOnStart
		if c.Store.Driver == StorePostgres {
			c.Store.Migrate = MigrateManual
		}
	}
	if c.Server.ShutdownDelay == shutdownDelayUnset {
		c.Server.ShutdownDelay = 0
		if c.Store.Driver == StorePostgres {
			c.Server.ShutdownDelay = DefaultShutdownDelay
		}
	}
}

// rawDefaults are the defaults registered with viper, before fillDerived:
// the one place a key's default is written (the comments of the types above
// say what each key means; config.example.yaml shows the same values).
// Validate refuses what is out of range rather than replacing it.
func rawDefaults() *Config {
	return &Config{
		Server: Server{
			Listen:            DefaultListen,
			TrustedProxies:    []string{},
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
			ShutdownDelay:     shutdownDelayUnset,
		},
		Directory: Directory{
			Type:                 DirectoryOpenLDAP,
			URLs:                 []string{},
			GroupMemberAttribute: "member",
			Timeout:              5 * time.Second,
			PoolSize:             4,
			GroupCacheTTL:        time.Minute,
		},
		Policy: Policy{
			Scope:            policy.ScopeNone,
			Groups:           []string{},
			ExcludeGroups:    []string{},
			PrivilegedGroups: []string{},
			MethodsRequired:  1,
			Methods:          []string{policy.MethodEmail},
			Tiers:            []Tier{},
			Questions: Questions{
				List:     []string{},
				Required: DefaultQuestionsRequired,
				Ask:      DefaultQuestionsAsked,
			},
			Password: Password{
				MinLength:   policy.DefaultMinLength,
				MaxLength:   policy.DefaultMaxLength,
				BannedWords: []string{},
			},
			CodeTTL:       DefaultCodeTTL,
			CodeLength:    DefaultCodeLength,
			MaxTries:      DefaultMaxTries,
			CoolingOff:    DefaultCoolingOff,
			ReconfirmDays: DefaultReconfirm,
		},
		Email: Email{Enabled: true},
		SMS: SMS{
			Provider:         SMSTwilio,
			AllowedCountries: []string{},
			Twilio:           Twilio{BaseURL: DefaultTwilioURL},
			Concurrency:      4,
		},
		SMTP: SMTP{
			TLS:         SMTPTLSMandatory,
			Timeout:     10 * time.Second,
			Connections: 4,
		},
		Notifications: Notifications{Users: true},
		Admin:         defaultAdmin(),
		Outbox:        Outbox{MaxWait: time.Minute, MaxPending: 10000, DegradedAfter: 2 * time.Minute},
		Store:         Store{Driver: StoreSQLite},
		Log:           Log{Level: "info", Format: "json", AuditRetention: DefaultAuditRetention},
		Limits:        defaultLimits(),
	}
}

// DefaultUserFilter is the user filter used when directory.user_filter is
// empty: inetOrgPerson by uid on OpenLDAP, person/user by sAMAccountName on
// Active Directory. Disabled accounts are found too, so that they get the
// same answer as everyone else and are refused by eligibility.
func DefaultUserFilter(directoryType string) string {
	if directoryType == DirectoryActiveDirectory {
		return "(&(objectCategory=person)(objectClass=user)(sAMAccountName={username}))"
	}
	return "(&(objectClass=inetOrgPerson)(uid={username}))"
}

// Eligibility converts the policy section for policy.Eligibility.Decide.
// Privileged accounts are excluded unless include_privileged is set.
func (p Policy) Eligibility() policy.Eligibility {
	e := policy.Eligibility{
		Scope:             p.Scope,
		Groups:            clone(p.Groups),
		ExcludeGroups:     clone(p.ExcludeGroups),
		ExcludePrivileged: !p.IncludePrivileged,
		PrivilegedGroups:  clone(p.PrivilegedGroups),
		MethodsRequired:   p.MethodsRequired,
		Methods:           clone(p.Methods),
	}
	for _, t := range p.Tiers {
		e.Tiers = append(e.Tiers, policy.Tier{
			Groups:          clone(t.Groups),
			MethodsRequired: t.MethodsRequired,
			Methods:         clone(t.Methods),
			RequireOneOf:    clone(t.RequireOneOf),
		})
	}
	return e
}

// PasswordRules converts policy.password for policy.Rules.Check.
func (p Policy) PasswordRules() policy.Rules {
	return policy.Rules{
		MinLength:   p.Password.MinLength,
		MaxLength:   p.Password.MaxLength,
		BannedWords: clone(p.Password.BannedWords),
	}
}

func clone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// defaultLimits is the limits section's defaults (rawDefaults).
func defaultLimits() Limits {
	return Limits{
		Window:                 time.Hour,
		StartsPerAccount:       10,
		StartsPerIP:            60,
		StartsTotal:            20000,
		SendsPerAccount:        10,
		SendsPerDestination:    5,
		SMSPerHour:             200,
		SMSPerPrefixPerHour:    50,
		CodeFailuresPerAccount: 10,
		SignInsPerIP:           60,
		BindFailures:           3,
		BindFailureWindow:      time.Hour,
		NoticesPerAccount:      5,
		IPv6Prefix:             DefaultIPv6Prefix,
		IPv6SitePrefix:         DefaultIPv6SitePrefix,
		AppFailures:            30,
		AppFailuresNotify:      5,
		AppFailureWindow:       24 * time.Hour,
	}
}
