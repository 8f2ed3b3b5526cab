package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/policy"
)

// valid returns a configuration that passes Validate, with SMS on.
func valid() *config.Config {
	c := config.Default()
	c.Server.PublicURL = "https://sspr.example.org"
	c.Server.SecretKey = testKey
	c.Directory.URLs = []string{"ldaps://ldap1.example.org", "ldaps://ldap2.example.org:636"}
	c.Directory.BindDN = "cn=sspr,ou=services,dc=example,dc=org"
	c.Directory.BindPassword = "bind-pw"
	c.Directory.BaseDN = "dc=example,dc=org"
	c.Policy.Scope = "selected"
	c.Policy.Groups = []string{"cn=sspr-users,ou=groups,dc=example,dc=org"}
	c.Policy.Methods = []string{"email", "sms"}
	c.Policy.Tiers = []config.Tier{{Groups: []string{"cn=it,ou=groups,dc=example,dc=org"}, MethodsRequired: 2}}
	c.SMS.Enabled = true
	c.SMS.AllowedCountries = []string{"GB", "DE"}
	c.SMS.Twilio.AccountSID = "AC0123456789abcdef0123456789abcdef"
	c.SMS.Twilio.AuthToken = "tw-token"
	c.SMS.Twilio.From = "+441234567890"
	c.SMTP.Host = "smtp.example.org"
	c.SMTP.From = "Reset <no-reply@example.org>"
	return c
}

// pg returns a change to store.driver postgres with dsn.
func pg(dsn string, allowPlaintext bool) func(*config.Config) {
	return func(c *config.Config) {
		c.Store.Driver = config.StorePostgres
		c.Store.DSN = dsn
		c.Store.AllowPlaintext = allowPlaintext
	}
}

func TestValidateValid(t *testing.T) {
	t.Parallel()
	if err := valid().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*config.Config)
		key  string // "" when the change is valid
		msg  string
	}{
		// server
		{"listen missing", func(c *config.Config) { c.Server.Listen = "" }, "server.listen", "required"},
		{"listen no port", func(c *config.Config) { c.Server.Listen = "localhost" }, "server.listen", "host:port"},
		{"listen bad port", func(c *config.Config) { c.Server.Listen = ":99999" }, "server.listen", "port must be 1-65535"},
		{"listen all interfaces", func(c *config.Config) { c.Server.Listen = ":8080" }, "", ""},
		{"demo listens on loopback", func(c *config.Config) { c.Demo = true; c.Server.Listen = "0.0.0.0:8080" }, "server.listen", "loopback"},
		{"demo on localhost", func(c *config.Config) { c.Demo = true; c.Server.Listen = "localhost:8080" }, "", ""},
		{"smtp needed outside the demo", func(c *config.Config) { c.SMTP = config.SMTP{} }, "smtp.host", "required"},
		{"demo delivers mail to its outbox", func(c *config.Config) { c.Demo = true; c.SMTP = config.SMTP{} }, "", ""},
		{"sms provider needed outside the demo", func(c *config.Config) { c.SMS.Twilio = config.Twilio{} }, "sms.twilio.account_sid", "required"},
		{"demo delivers sms to its outbox", func(c *config.Config) { c.Demo = true; c.SMS.Twilio = config.Twilio{} }, "", ""},
		{"demo still checks sms countries", func(c *config.Config) { c.Demo = true; c.SMS.AllowedCountries = nil }, "sms.allowed_countries", "required"},
		{"public_url missing", func(c *config.Config) { c.Server.PublicURL = "" }, "server.public_url", "required"},
		{"public_url relative", func(c *config.Config) { c.Server.PublicURL = "/sspr" }, "server.public_url", "absolute"},
		{"public_url http", func(c *config.Config) { c.Server.PublicURL = "http://sspr.example.org" }, "server.public_url", "must use https"},
		{"public_url http loopback", func(c *config.Config) { c.Server.PublicURL = "http://127.0.0.1:8080" }, "", ""},
		{"public_url http localhost", func(c *config.Config) { c.Server.PublicURL = "http://localhost:8080" }, "", ""},
		{"public_url http ::1", func(c *config.Config) { c.Server.PublicURL = "http://[::1]:8080" }, "", ""},
		{"public_url ftp", func(c *config.Config) { c.Server.PublicURL = "ftp://sspr.example.org" }, "server.public_url", "scheme must be https"},
		{"webauthn", func(c *config.Config) { c.Policy.Methods = []string{"email", "webauthn"} }, "", ""},
		{"webauthn on localhost", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "webauthn"}
			c.Server.PublicURL = "http://localhost:8080"
		}, "", ""},
		{"webauthn needs a host name", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "webauthn"}
			c.Server.PublicURL = "http://127.0.0.1:8080"
		}, "policy.methods[1]", "host name"},
		{"public_url path ok", func(c *config.Config) { c.Server.PublicURL = "https://example.org/sspr" }, "", ""},
		{"public_url query", func(c *config.Config) { c.Server.PublicURL = "https://example.org/?a=b" }, "server.public_url", "query"},
		{"public_url userinfo", func(c *config.Config) { c.Server.PublicURL = "https://u:p@example.org" }, "server.public_url", "user info"},
		{"trusted proxy bad", func(c *config.Config) { c.Server.TrustedProxies = []string{"10.0.0.0/8", "proxy.local"} }, "server.trusted_proxies[1]", "CIDR"},
		{"trusted proxy everyone v4", func(c *config.Config) { c.Server.TrustedProxies = []string{"10.0.0.0/8", "0.0.0.0/0"} }, "server.trusted_proxies[1]", "every client"},
		{"trusted proxy everyone v6", func(c *config.Config) { c.Server.TrustedProxies = []string{"::/0"} }, "server.trusted_proxies[0]", "server.trust_any_proxy"},
		{"trusted proxy everyone allowed", func(c *config.Config) {
			c.Server.TrustedProxies = []string{"0.0.0.0/0", "::/0"}
			c.Server.TrustAnyProxy = true
		}, "", ""},
		{"notices budget zero", func(c *config.Config) { c.Limits.NoticesPerAccount = 0 }, "limits.notices_per_account", "at least 1"},
		{"trusted proxy address", func(c *config.Config) { c.Server.TrustedProxies = []string{"192.0.2.1", "2001:db8::/32"} }, "", ""},
		{"secret key missing", func(c *config.Config) { c.Server.SecretKey = "" }, "server.secret_key", "secret_key_file"},
		{"secret key short", func(c *config.Config) { c.Server.SecretKey = "Zx8#kq2L" }, "server.secret_key", "at least 32 bytes"},
		{"secret key placeholder", func(c *config.Config) { c.Server.SecretKey = "CHANGEME-please-change-me-now-0123456789" }, "server.secret_key", "placeholder"},
		{"secret key repetitive", func(c *config.Config) { c.Server.SecretKey = strings.Repeat("ab", 20) }, "server.secret_key", "placeholder"},
		{"helpdesk mailto", func(c *config.Config) { c.Server.Helpdesk = "mailto:help@example.org" }, "", ""},
		{"helpdesk intranet http", func(c *config.Config) { c.Server.Helpdesk = "http://intranet/help" }, "", ""},
		{"helpdesk bad", func(c *config.Config) { c.Server.Helpdesk = "call 555-1234" }, "server.helpdesk", "mailto"},
		{"helpdesk bad mailto", func(c *config.Config) { c.Server.Helpdesk = "mailto:nobody" }, "server.helpdesk", "mailto"},
		{"timeout zero", func(c *config.Config) { c.Server.WriteTimeout = 0 }, "server.write_timeout", "positive"},
		{"timeout negative", func(c *config.Config) { c.Server.IdleTimeout = -time.Second }, "server.idle_timeout", "positive"},
		// directory
		{"type bad", func(c *config.Config) { c.Directory.Type = "ad" }, "directory.type", `must be one of openldap, activedirectory (got "ad")`},
		{"urls missing", func(c *config.Config) { c.Directory.URLs = nil }, "directory.urls", "required"},
		{"url scheme", func(c *config.Config) { c.Directory.URLs[1] = "https://ldap2.example.org" }, "directory.urls[1]", "scheme must be ldaps or ldap"},
		{"url no host", func(c *config.Config) { c.Directory.URLs[0] = "ldaps://" }, "directory.urls[0]", "host is required"},
		{"url path", func(c *config.Config) { c.Directory.URLs[0] = "ldaps://h/dc=x" }, "directory.urls[0]", "only scheme://host[:port]"},
		{"url userinfo", func(c *config.Config) { c.Directory.URLs[0] = "ldaps://u:p@h" }, "directory.urls[0]", "user info"},
		{"url port", func(c *config.Config) { c.Directory.URLs[0] = "ldaps://h:0" }, "directory.urls[0]", "port"},
		{"ldap needs start_tls or opt-in", func(c *config.Config) { c.Directory.URLs[0] = "ldap://ldap1.example.org" }, "directory.urls[0]", "allow_plaintext"},
		{"ldap with start_tls", func(c *config.Config) {
			c.Directory.URLs = []string{"ldap://ldap1.example.org"}
			c.Directory.StartTLS = true
		}, "", ""},
		{"ldap with allow_plaintext", func(c *config.Config) {
			c.Directory.URLs = []string{"ldap://127.0.0.1:3890"}
			c.Directory.AllowPlaintext = true
		}, "", ""},
		{"ldaps with start_tls", func(c *config.Config) { c.Directory.StartTLS = true }, "directory.urls[0]", "not both"},
		{"AD never plaintext", func(c *config.Config) {
			c.Directory.Type = "activedirectory"
			c.Directory.URLs = []string{"ldap://dc1.example.org"}
			c.Directory.AllowPlaintext = true
		}, "directory.urls[0]", "Active Directory"},
		{"insecure_skip_verify outside demo", func(c *config.Config) { c.Directory.InsecureSkipVerify = true }, "directory.insecure_skip_verify", "only in the demo"},
		{"insecure_skip_verify in demo", func(c *config.Config) { c.Demo = true; c.Directory.InsecureSkipVerify = true }, "", ""},
		{"bind_dn missing", func(c *config.Config) { c.Directory.BindDN = "" }, "directory.bind_dn", "required"},
		{"bind_dn invalid", func(c *config.Config) { c.Directory.BindDN = "sspr@example.org" }, "directory.bind_dn", "invalid DN"},
		{"bind password missing", func(c *config.Config) { c.Directory.BindPassword = "" }, "directory.bind_password", "bind_password_file"},
		{"base_dn invalid", func(c *config.Config) { c.Directory.BaseDN = "example.org" }, "directory.base_dn", "invalid DN"},
		{"user_filter missing", func(c *config.Config) { c.Directory.UserFilter = "" }, "directory.user_filter", "required"},
		{"user_filter no placeholder", func(c *config.Config) { c.Directory.UserFilter = "(uid=admin)" }, "directory.user_filter", "must contain {username}"},
		{"user_filter unknown placeholder", func(c *config.Config) {
			c.Directory.UserFilter = "(&(uid={username})(o={org}))"
		}, "directory.user_filter", "unknown placeholder {org}"},
		{"user_filter no parens", func(c *config.Config) { c.Directory.UserFilter = "uid={username}" }, "directory.user_filter", "parentheses"},
		{"user_filter unbalanced", func(c *config.Config) { c.Directory.UserFilter = "(&(uid={username})" }, "directory.user_filter", "unbalanced"},
		{"user_filter two filters", func(c *config.Config) { c.Directory.UserFilter = "(uid={username})(cn=x)" }, "directory.user_filter", "one filter"},
		{"user_filter escaped paren", func(c *config.Config) { c.Directory.UserFilter = `(&(cn=a\29b)(uid={username}))` }, "", ""},
		{"member attribute", func(c *config.Config) { c.Directory.GroupMemberAttribute = "memberUid" }, "directory.group_member_attribute", "member, uniqueMember"},
		{"member attribute ignored on AD", func(c *config.Config) {
			c.Directory.Type = "activedirectory"
			c.Directory.GroupMemberAttribute = ""
		}, "", ""},
		{"directory timeout", func(c *config.Config) { c.Directory.Timeout = 0 }, "directory.timeout", "positive"},
		{"pool size", func(c *config.Config) { c.Directory.PoolSize = 0 }, "directory.pool_size", "1-100"},
		{"outbox max wait", func(c *config.Config) { c.Outbox.MaxWait = 0 }, "outbox.max_wait", "1s to 1h0m0s"},
		{"outbox max wait long", func(c *config.Config) { c.Outbox.MaxWait = 2 * time.Hour }, "outbox.max_wait", "1s to 1h0m0s"},
		{"outbox max pending", func(c *config.Config) { c.Outbox.MaxPending = 0 }, "outbox.max_pending", "at least 1"},
		{"outbox degraded after", func(c *config.Config) { c.Outbox.DegradedAfter = 0 }, "outbox.degraded_after", "positive"},
		{"smtp connections", func(c *config.Config) { c.SMTP.Connections = 65 }, "smtp.connections", "1-64"},
		// policy
		{"scope bad", func(c *config.Config) { c.Policy.Scope = "everyone" }, "policy.scope", "none, selected, all"},
		{"scope all without groups", func(c *config.Config) { c.Policy.Scope = "all"; c.Policy.Groups = nil }, "", ""},
		{"selected needs groups", func(c *config.Config) { c.Policy.Groups = nil }, "policy.groups", "required with scope selected"},
		{"group DN", func(c *config.Config) { c.Policy.Groups = append(c.Policy.Groups, "sspr-users") }, "policy.groups[1]", "invalid DN"},
		{"exclude DN", func(c *config.Config) { c.Policy.ExcludeGroups = []string{"cn=x,,dc=y"} }, "policy.exclude_groups[0]", "invalid DN"},
		{"privileged DN", func(c *config.Config) { c.Policy.PrivilegedGroups = []string{"cn=a;b"} }, "policy.privileged_groups[0]", "invalid DN"},
		{"methods missing", func(c *config.Config) { c.Policy.Methods = nil; c.Policy.Tiers = nil }, "policy.methods", "required"},
		{"method unknown", func(c *config.Config) { c.Policy.Methods = []string{"email", "sms", "carrier-pigeon"} }, "policy.methods[2]", "must be one of"},
		{"method twice", func(c *config.Config) { c.Policy.Methods = []string{"email", "sms", "email"} }, "policy.methods[2]", "twice"},
		{"email method needs email", func(c *config.Config) { c.Email.Enabled = false }, "policy.methods[0]", "email.enabled"},
		{"sms method needs sms", func(c *config.Config) { c.SMS.Enabled = false }, "policy.methods[1]", "sms.enabled"},
		{"questions alone", func(c *config.Config) {
			c.Policy.Methods = []string{"questions"}
			c.Policy.Tiers = nil
		}, "policy.methods", "never be the only method"},
		{"questions with another method", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "questions"}
			c.Policy.Questions.List = []string{"First pet?", "First school?", "Street you grew up on?"}
		}, "", ""},
		{"questions without a list", func(c *config.Config) { c.Policy.Methods = []string{"email", "sms", "questions"} }, "policy.questions.list", "at least 3 questions"},
		{"questions: fewer than required", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "questions"}
			c.Policy.Questions.List = []string{"First pet?", "First school?"}
		}, "policy.questions.list", "at least 3 questions"},
		{"questions list checked while off", func(c *config.Config) { c.Policy.Questions.List = []string{"First pet?", " "} }, "policy.questions.list[1]", "empty"},
		{"question twice", func(c *config.Config) { c.Policy.Questions.List = []string{"First pet?", "FIRST  pet? "} }, "policy.questions.list[1]", "twice"},
		{"question too long", func(c *config.Config) { c.Policy.Questions.List = []string{strings.Repeat("x", 201)} }, "policy.questions.list[0]", "at most 200"},
		{"questions required 0", func(c *config.Config) { c.Policy.Questions.Required = 0 }, "policy.questions.required", "1-10"},
		{"questions required 11", func(c *config.Config) { c.Policy.Questions.Required = 11 }, "policy.questions.required", "1-10"},
		{"questions ask above required", func(c *config.Config) { c.Policy.Questions.Ask = 4 }, "policy.questions.ask", "policy.questions.required"},
		{"questions ask 0", func(c *config.Config) { c.Policy.Questions.Ask = 0 }, "policy.questions.ask", "1 to"},
		{"tier requires totp", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "totp"}
			c.Policy.Tiers[0].RequireOneOf = []string{"totp", "webauthn"}
		}, "", ""},
		{"tier requires an unknown kind", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "totp"}
			c.Policy.Tiers[0].RequireOneOf = []string{"totp", "yubikey"}
		}, "policy.tiers[0].require_one_of[1]", "must be one of email, sms, totp, webauthn"},
		{"tier requires questions", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "totp"}
			c.Policy.Tiers[0].RequireOneOf = []string{"totp", "questions"}
		}, "policy.tiers[0].require_one_of[1]", "never count"},
		{"tier requires a kind nobody has", func(c *config.Config) { c.Policy.Tiers[0].RequireOneOf = []string{"totp", "webauthn"} }, "policy.tiers[0].require_one_of", "could never reset"},
		{"tier requires a kind its methods drop", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "totp"}
			c.Policy.Tiers[0].Methods = []string{"email", "sms"}
			c.Policy.Tiers[0].RequireOneOf = []string{"totp"}
		}, "policy.tiers[0].require_one_of", "could never reset"},
		{"tier with a kind: questions do not count toward its number", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "totp", "questions"}
			c.Policy.Questions.List = []string{"First pet?", "First school?", "Street you grew up on?"}
			c.Policy.Tiers[0].Methods = []string{"totp", "questions"}
			c.Policy.Tiers[0].RequireOneOf = []string{"totp"}
		}, "policy.tiers[0]", "requires 2 methods but leaves only 1 available that count"},
		{"tier with a kind and two that count", func(c *config.Config) {
			c.Policy.Methods = []string{"email", "sms", "totp", "questions"}
			c.Policy.Questions.List = []string{"First pet?", "First school?", "Street you grew up on?"}
			c.Policy.Tiers[0].Methods = []string{"email", "totp", "questions"}
			c.Policy.Tiers[0].RequireOneOf = []string{"totp"}
		}, "", ""},
		{"methods_required 0", func(c *config.Config) { c.Policy.MethodsRequired = 0 }, "policy.methods_required", "1 or 2"},
		{"methods_required 3", func(c *config.Config) { c.Policy.MethodsRequired = 3 }, "policy.methods_required", "1 or 2"},
		{"methods_required above methods", func(c *config.Config) {
			c.Policy.MethodsRequired = 2
			c.Policy.Methods = []string{"email"}
			c.Policy.Tiers = nil
		}, "policy.methods_required", "offers only 1"},
		{"tier without groups", func(c *config.Config) { c.Policy.Tiers[0].Groups = nil }, "policy.tiers[0].groups", "required"},
		{"tier group DN", func(c *config.Config) { c.Policy.Tiers[0].Groups = []string{"cn=ok,dc=x", "bad"} }, "policy.tiers[0].groups[1]", "invalid DN"},
		{"tier methods_required", func(c *config.Config) { c.Policy.Tiers[0].MethodsRequired = 3 }, "policy.tiers[0].methods_required", "1 or 2"},
		{"tier method not offered", func(c *config.Config) { c.Policy.Tiers[0].Methods = []string{"email", "totp"} }, "policy.tiers[0].methods[1]", "policy.methods"},
		{"tier leaves too few", func(c *config.Config) { c.Policy.Tiers[0].Methods = []string{"sms"} }, "policy.tiers[0]", "requires 2 methods but leaves only 1"},
		{"tier needs 2 of 1", func(c *config.Config) {
			c.Policy.Methods = []string{"email"}
			c.SMS.Enabled = false
		}, "policy.tiers[0]", "requires 2 methods but leaves only 1"},
		{"password min", func(c *config.Config) { c.Policy.Password.MinLength = 6 }, "policy.password.min_length", "at least 8"},
		{"password max below min", func(c *config.Config) { c.Policy.Password.MaxLength = 10 }, "policy.password.max_length", "between"},
		{"password max huge", func(c *config.Config) { c.Policy.Password.MaxLength = 5000 }, "policy.password.max_length", "1024"},
		{"banned word empty", func(c *config.Config) { c.Policy.Password.BannedWords = []string{"acme", " "} }, "policy.password.banned_words[1]", "empty"},
		{"code_ttl long", func(c *config.Config) { c.Policy.CodeTTL = time.Hour }, "policy.code_ttl", "at most 10m0s"},
		{"code_ttl zero", func(c *config.Config) { c.Policy.CodeTTL = 0 }, "policy.code_ttl", "positive"},
		{"code_length 5", func(c *config.Config) { c.Policy.CodeLength = 5 }, "policy.code_length", "6-8"},
		{"code_length 9", func(c *config.Config) { c.Policy.CodeLength = 9 }, "policy.code_length", "6-8"},
		{"max_tries 6", func(c *config.Config) { c.Policy.MaxTries = 6 }, "policy.max_tries", "1-5"},
		{"cooling_off", func(c *config.Config) { c.Policy.CoolingOff = -time.Second }, "policy.cooling_off", "negative"},
		{"pad_floor negative", func(c *config.Config) { c.Policy.PadFloor = -time.Millisecond }, "policy.pad_floor", "500ms"},
		{"pad_floor long", func(c *config.Config) { c.Policy.PadFloor = time.Second }, "policy.pad_floor", "500ms"},
		{"pad_floor 25ms", func(c *config.Config) { c.Policy.PadFloor = 25 * time.Millisecond }, "", ""},
		{"reconfirm 0", func(c *config.Config) { c.Policy.ReconfirmDays = 0 }, "", ""},
		{"reconfirm 731", func(c *config.Config) { c.Policy.ReconfirmDays = 731 }, "policy.reconfirm_days", "730"},
		// smtp / email
		{"smtp host", func(c *config.Config) { c.SMTP.Host = "" }, "smtp.host", "required when email.enabled"},
		{"smtp not checked when email off", func(c *config.Config) {
			c.Email.Enabled = false
			c.Policy.Methods = []string{"sms", "totp"}
			c.SMTP = config.SMTP{TLS: "bogus"}
		}, "", ""},
		{"smtp tls", func(c *config.Config) { c.SMTP.TLS = "ssl" }, "smtp.tls", "mandatory, starttls, implicit, none"},
		{"smtp tls none remote", func(c *config.Config) { c.SMTP.TLS = "none" }, "smtp.tls", "allow_plaintext"},
		{"smtp tls none opted in", func(c *config.Config) { c.SMTP.TLS = "none"; c.SMTP.AllowPlaintext = true }, "", ""},
		{"smtp tls none loopback", func(c *config.Config) { c.SMTP.TLS = "none"; c.SMTP.Host = "127.0.0.1" }, "", ""},
		{"smtp port", func(c *config.Config) { c.SMTP.Port = 70000 }, "smtp.port", "1-65535"},
		{"smtp username without password", func(c *config.Config) { c.SMTP.Username = "u" }, "smtp.password", "password_file"},
		{"smtp password without username", func(c *config.Config) { c.SMTP.Password = "p" }, "smtp.username", "required"},
		{"smtp from missing", func(c *config.Config) { c.SMTP.From = "" }, "smtp.from", "required"},
		{"smtp from bad", func(c *config.Config) { c.SMTP.From = "a@x, b@y" }, "smtp.from", "one address"},
		{"smtp timeout", func(c *config.Config) { c.SMTP.Timeout = 0 }, "smtp.timeout", "positive"},
		// sms
		{"sms countries missing", func(c *config.Config) { c.SMS.AllowedCountries = nil }, "sms.allowed_countries", "required"},
		{"sms country UK", func(c *config.Config) { c.SMS.AllowedCountries = []string{"GB", "UK"} }, "sms.allowed_countries[1]", "is GB"},
		{"sms country lower", func(c *config.Config) { c.SMS.AllowedCountries = []string{"de"} }, "sms.allowed_countries[0]", "upper-case"},
		{"sms country unknown", func(c *config.Config) { c.SMS.AllowedCountries = []string{"ZZ"} }, "sms.allowed_countries[0]", "ISO 3166-1"},
		{"sms country Kosovo", func(c *config.Config) { c.SMS.AllowedCountries = []string{"XK"} }, "", ""},
		{"sms provider", func(c *config.Config) { c.SMS.Provider = "nexmo" }, "sms.provider", "twilio, webhook"},
		{"twilio sid", func(c *config.Config) { c.SMS.Twilio.AccountSID = "AC123" }, "sms.twilio.account_sid", "32 hex"},
		{"twilio token", func(c *config.Config) { c.SMS.Twilio.AuthToken = "" }, "sms.twilio.auth_token", "auth_token_file"},
		{"twilio from missing", func(c *config.Config) { c.SMS.Twilio.From = "" }, "sms.twilio.from", "required"},
		{"twilio from bad", func(c *config.Config) { c.SMS.Twilio.From = "441234567890" }, "sms.twilio.from", "E.164"},
		{"twilio sender id", func(c *config.Config) { c.SMS.Twilio.From = "ACME IT" }, "", ""},
		{"twilio service instead of from", func(c *config.Config) {
			c.SMS.Twilio.From = ""
			c.SMS.Twilio.MessagingServiceSID = "MG0123456789abcdef0123456789abcdef"
		}, "", ""},
		{"twilio service bad", func(c *config.Config) { c.SMS.Twilio.MessagingServiceSID = "MG1" }, "sms.twilio.messaging_service_sid", "32 hex"},
		{"twilio base_url http", func(c *config.Config) { c.SMS.Twilio.BaseURL = "http://api.twilio.com" }, "sms.twilio.base_url", "https"},
		{"twilio base_url loopback", func(c *config.Config) { c.SMS.Twilio.BaseURL = "http://127.0.0.1:9999" }, "", ""},
		{"webhook", func(c *config.Config) {
			c.SMS.Provider = "webhook"
			c.SMS.Webhook.URL = "https://hook.example.org/sms?tenant=1"
			c.SMS.Webhook.Secret = "0123456789abcdefXYZ"
		}, "", ""},
		{"webhook url", func(c *config.Config) { c.SMS.Provider = "webhook"; c.SMS.Webhook.Secret = "0123456789abcdefXYZ" }, "sms.webhook.url", "required"},
		{"webhook secret short", func(c *config.Config) {
			c.SMS.Provider = "webhook"
			c.SMS.Webhook.URL = "https://hook.example.org"
			c.SMS.Webhook.Secret = "short"
		}, "sms.webhook.secret", "at least 16 bytes"},
		{"sms not checked when off", func(c *config.Config) {
			c.SMS = config.SMS{Provider: "bogus"}
			c.Policy.Methods = []string{"email", "totp"}
		}, "", ""},
		// store, log
		{"store driver", func(c *config.Config) { c.Store.Driver = "mysql" }, "store.driver", "sqlite, postgres"},
		{"store dsn", func(c *config.Config) { c.Store.DSN = "" }, "store.dsn", "required"},
		{"sqlite with a postgres dsn", func(c *config.Config) { c.Store.DSN = "postgres://u@db.example.org/l?sslmode=verify-full" },
			"store.dsn", "store.driver: postgres"},
		{"postgres verify-full", pg("postgres://latchkey:pw@db.example.org:5432/latchkey?sslmode=verify-full&sslrootcert=/etc/latchkey/pg-ca.pem", false), "", ""},
		{"postgres remote disable", pg("postgres://latchkey:pw@db.example.org/latchkey?sslmode=disable", false), "store.dsn", "sslmode=disable to db.example.org"},
		{"postgres remote default sslmode", pg("postgres://latchkey@db.example.org/latchkey", false), "store.dsn", "sslmode=prefer"},
		{"postgres remote require", pg("postgres://latchkey@10.0.0.5/latchkey?sslmode=require", false), "store.dsn", "verify-full"},
		{"postgres remote disable allowed", pg("postgres://latchkey@db.example.org/latchkey?sslmode=disable", true), "", ""},
		{"postgres remote fallback host", pg("postgres://latchkey@127.0.0.1,db.example.org:5433/latchkey?sslmode=disable", false), "store.dsn", "db.example.org"},
		{"postgres loopback plaintext", pg("postgres://latchkey@127.0.0.1:5432/latchkey?sslmode=disable", false), "", ""},
		{"postgres ipv6 loopback", pg("postgres://latchkey@[::1]:5432/latchkey", false), "", ""},
		{"postgres localhost", pg("postgresql://latchkey@localhost/latchkey", false), "", ""},
		{"postgres socket in query", pg("postgres:///latchkey?host=/run/postgresql", false), "", ""},
		{"postgres socket escaped", pg("postgres://%2Frun%2Fpostgresql/latchkey", false), "", ""},
		{"postgres keywords socket", pg("host=/run/postgresql dbname=latchkey user=latchkey", false), "", ""},
		{"postgres keywords no host", pg("dbname=latchkey", false), "", ""},
		{"postgres keywords remote", pg("host=db.example.org dbname=latchkey password='a b\\' c' sslmode=require", false), "store.dsn", "sslmode=require to db.example.org"},
		{"postgres keywords verify-full", pg("host=db.example.org dbname=latchkey sslmode=verify-full sslrootcert=/etc/ca.pem", false), "", ""},
		{"postgres bad sslmode", pg("postgres://latchkey@db.example.org/latchkey?sslmode=strict", false), "store.dsn", "sslmode must be one of"},
		{"postgres unparsable", pg("host=db.example.org password='unterminated", false), "store.dsn", "cannot be parsed"},
		{"postgres dsn from file", func(c *config.Config) {
			pg("postgres://u@db.example.org/l", false)(c)
			c.Store.DSNFile = "/run/secrets/dsn"
		}, "store.dsn_file", "verify-full"},
		// limits
		{"app failures default", func(c *config.Config) {}, "", ""},
		{"app failures zero", func(c *config.Config) { c.Limits.AppFailures = 0 }, "limits.app_failures", "at least 1"},
		{"app failures notify zero", func(c *config.Config) { c.Limits.AppFailuresNotify = 0 }, "limits.app_failures_notify", "at least 1"},
		{"app failures notify above the cap", func(c *config.Config) { c.Limits.AppFailuresNotify, c.Limits.AppFailures = 31, 30 },
			"limits.app_failures_notify", "not be more than limits.app_failures"},
		{"app failures notify at the cap", func(c *config.Config) { c.Limits.AppFailuresNotify, c.Limits.AppFailures = 10, 10 }, "", ""},
		{"app failure window zero", func(c *config.Config) { c.Limits.AppFailureWindow = 0 }, "limits.app_failure_window", "positive"},
		{"log level", func(c *config.Config) { c.Log.Level = "verbose" }, "log.level", "debug, info, warn, error"},
		{"log format", func(c *config.Config) { c.Log.Format = "xml" }, "log.format", "json, text"},
		{"audit retention without a unit", func(c *config.Config) { c.Log.AuditRetention = 400 }, "log.audit_retention", "at least 24h"},
		{"audit retention a day", func(c *config.Config) { c.Log.AuditRetention = 24 * time.Hour }, "", ""},
		{"ipv6 prefix too long", func(c *config.Config) { c.Limits.IPv6Prefix = 128 }, "limits.ipv6_prefix", "32-64"},
		{"ipv6 prefix /64", func(c *config.Config) { c.Limits.IPv6Prefix = 64 }, "", ""},
		{"ipv6 site longer than the prefix", func(c *config.Config) { c.Limits.IPv6SitePrefix = 60 }, "limits.ipv6_site_prefix", "up to limits.ipv6_prefix (56)"},
		{"ipv6 site equal to the prefix", func(c *config.Config) { c.Limits.IPv6SitePrefix = 56 }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tt.mod(c)
			err := c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			ps := problems(t, err)
			if !hasProblem(ps, tt.key, tt.msg) {
				t.Errorf("want %s: ...%s..., got %v", tt.key, tt.msg, ps)
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	c := valid()
	c.Server.PublicURL = "http://sspr.example.org"
	c.Directory.URLs = []string{"ldaps://ok.example.org", "ftp://ldap2.example.org", "ldap://plain.example.org"}
	c.Directory.UserFilter = "uid={username}"
	c.Policy.MethodsRequired = 3
	c.Policy.Groups = []string{"not a dn"}
	c.Policy.Tiers[0].Groups = []string{"cn=ok,dc=x", "bad"}
	c.SMS.AllowedCountries = []string{"GB", "UK", "XX"}
	c.SMTP.TLS = "none"
	c.Store.Driver = ""
	c.Log.Format = "yaml"

	ps := problems(t, c.Validate())
	want := []string{
		"server.public_url",
		"directory.urls[1]",
		"directory.urls[2]",
		"directory.user_filter",
		"policy.groups[0]",
		"policy.methods_required",
		"policy.tiers[0].groups[1]",
		"smtp.tls",
		"sms.allowed_countries[1]",
		"sms.allowed_countries[2]",
		"store.driver",
		"log.format",
	}
	if got := keys(ps); !slices.Equal(got, want) {
		t.Errorf("problem keys =\n%q\nwant\n%q", got, want)
	}
	if !hasProblem(ps, "directory.urls[1]", "scheme must be ldaps or ldap") {
		t.Errorf("missing the scheme problem: %v", ps)
	}
	msg := c.Validate().Error()
	if !strings.HasPrefix(msg, "invalid configuration: 12 problems\n") || !strings.Contains(msg, "\n  directory.urls[1]: scheme must be ldaps or ldap") {
		t.Errorf("Error() =\n%s", msg)
	}
}

func TestValidateNeverQuotesSecrets(t *testing.T) {
	t.Parallel()
	const marker = "Zx-SECRET-MARKER"
	c := valid()
	c.Server.SecretKey = marker // too short
	c.Directory.BindPassword = marker
	c.SMS.Provider = "webhook"
	c.SMS.Webhook.Secret = marker[:8]                                  // too short
	c.SMS.Webhook.URL = "https://user:" + marker + "@hook.example.org" // user info
	c.SMTP.Password = marker                                           // without username
	c.Store.DSN = "postgres://u:" + marker + "@db"
	c.Store.Driver = "pg"
	c.Directory.URLs = []string{"ldaps://u:" + marker + "@ldap.example.org"}
	err := c.Validate()
	if err == nil {
		t.Fatal("want problems")
	}
	if strings.Contains(err.Error(), marker) || strings.Contains(err.Error(), marker[:8]) {
		t.Errorf("error quotes a secret:\n%v", err)
	}
	if len(problems(t, err)) < 5 {
		t.Errorf("too few problems: %v", err)
	}
}

func TestValidateNil(t *testing.T) {
	t.Parallel()
	var c *config.Config
	if err := c.Validate(); err == nil {
		t.Fatal("nil config validated")
	}
}

func TestPolicyConversion(t *testing.T) {
	t.Parallel()
	c := valid()
	c.Policy.ExcludeGroups = []string{"cn=no,dc=example,dc=org"}
	c.Policy.PrivilegedGroups = []string{"cn=admins,dc=example,dc=org"}
	c.Policy.Password.BannedWords = []string{"acme"}
	e := c.Policy.Eligibility()
	if !e.ExcludePrivileged {
		t.Error("privileged accounts must be excluded unless include_privileged")
	}
	c.Policy.IncludePrivileged = true
	if c.Policy.Eligibility().ExcludePrivileged {
		t.Error("include_privileged ignored")
	}
	in := policy.Subject{MemberOf: map[string]bool{}}
	for _, g := range e.AllGroups() {
		in.MemberOf[g] = false
	}
	in.MemberOf["CN=SSPR-Users,OU=Groups,DC=Example,DC=Org"] = true
	in.MemberOf["cn=it,ou=groups,dc=example,dc=org"] = true
	d := e.Decide(in)
	if !d.Eligible || d.MethodsRequired != 2 || !slices.Equal(d.Methods, []string{"email", "sms"}) {
		t.Errorf("Decide = %+v", d)
	}
	c.Policy.Tiers[0].RequireOneOf = []string{"totp"}
	if k := c.Policy.Eligibility().Tiers[0].RequireOneOf; !slices.Equal(k, []string{"totp"}) {
		t.Errorf("require_one_of not converted: %v", k)
	}
	e.Groups[0] = "changed"
	if c.Policy.Groups[0] == "changed" {
		t.Error("Eligibility shares slices with the config")
	}
	r := c.Policy.PasswordRules()
	if r.MinLength != 12 || r.MaxLength != 128 || !slices.Equal(r.BannedWords, []string{"acme"}) {
		t.Errorf("PasswordRules = %+v", r)
	}
}

// exampleEnv points every *_file secret of config.example.yaml at test files.
func exampleEnv(t *testing.T) map[string]string {
	dir := t.TempDir()
	f := func(name, content string) string { return writeFile(t, dir, name, content+"\n", 0o600) }
	return map[string]string{
		"LATCHKEY_SERVER_SECRET_KEY_FILE":       f("key", testKey),
		"LATCHKEY_DIRECTORY_BIND_PASSWORD_FILE": f("bind", "bind-pw"),
		"LATCHKEY_SMTP_PASSWORD_FILE":           f("smtp", "smtp-pw"),
		"LATCHKEY_SMS_TWILIO_AUTH_TOKEN_FILE":   f("twilio", "tw-token"),
		"LATCHKEY_SMS_WEBHOOK_SECRET_FILE":      f("hook", "0123456789abcdef-hook"),
	}
}

const examplePath = "../config.example.yaml"

func TestExampleFile(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(examplePath, env(exampleEnv(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Scope != "selected" || cfg.Directory.BindPassword != "bind-pw" || cfg.SMTP.Password != "smtp-pw" {
		t.Errorf("example not loaded as expected: %+v", cfg)
	}
}

// TestExampleFileVariants checks that the variants the example's comments
// describe validate too.
func TestExampleFileVariants(t *testing.T) {
	t.Parallel()
	variants := map[string]map[string]string{
		"sms and a two-method tier": {
			"LATCHKEY_SMS_ENABLED":    "true",
			"LATCHKEY_POLICY_METHODS": "email,sms",
			"LATCHKEY_POLICY_TIERS":   `[{"groups":["cn=it-staff,ou=groups,dc=example,dc=org"],"methods_required":2,"methods":["email","sms"]}]`,
		},
		"sms webhook": {
			"LATCHKEY_SMS_ENABLED":    "true",
			"LATCHKEY_SMS_PROVIDER":   "webhook",
			"LATCHKEY_POLICY_METHODS": `["sms", "email"]`,
		},
		"security questions and a tier requiring an authenticator app": {
			"LATCHKEY_POLICY_METHODS": "email,totp,questions",
			"LATCHKEY_POLICY_TIERS":   `[{"groups":["cn=it-staff,ou=groups,dc=example,dc=org"],"require_one_of":["totp","webauthn"]}]`,
		},
		"active directory with default filter": {
			"LATCHKEY_DIRECTORY_TYPE":        "activedirectory",
			"LATCHKEY_DIRECTORY_USER_FILTER": "(&(objectCategory=person)(objectClass=user)(sAMAccountName={username}))",
		},
		"local slapd in clear": {
			"LATCHKEY_DIRECTORY_URLS":            "ldap://127.0.0.1:3890",
			"LATCHKEY_DIRECTORY_ALLOW_PLAINTEXT": "true",
		},
	}
	for name, extra := range variants {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := exampleEnv(t)
			for k, v := range extra {
				e[k] = v
			}
			cfg, err := config.Load(examplePath, env(e))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(name, "questions") {
				if q := cfg.Policy.Questions; len(q.List) != 4 || q.Required != 3 || q.Ask != 2 || q.AllowCustom {
					t.Errorf("policy.questions = %+v", q)
				}
				if k := cfg.Policy.Eligibility().Tiers[0].RequireOneOf; !slices.Equal(k, []string{"totp", "webauthn"}) {
					t.Errorf("require_one_of = %v", k)
				}
			}
		})
	}
}

// TestExampleFileDocumentsEveryKey keeps config.example.yaml complete: every
// key Load knows appears in it.
func TestExampleFileDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Clean(examplePath))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, k := range config.Keys() {
		parts := strings.Split(k.Path, ".")
		last := parts[len(parts)-1]
		if !strings.Contains(text, last+":") {
			t.Errorf("config.example.yaml does not mention %s", k.Path)
		}
	}
}
