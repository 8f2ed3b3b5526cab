package flow

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// Options are the gateway's settings, filled from configuration by
// cmd/latchkey. Fields left zero get config's defaults (setDefaults).
type Options struct {
	// PublicURL is the base of every link the gateway makes (mails, redirects);
	// the Host header is never used.
	PublicURL *url.URL
	// SecretKey (at least config.MinSecretKeyBytes) keys code hashes, decoys and CSRF tokens.
	SecretKey []byte
	// Helpdesk is shown on every page: a URL or a mailto: link.
	Helpdesk string
	// ProductName is shown in pages and messages.
	ProductName string
	// Organisation is the organisation's name shown on every page (the
	// admin console can change it and Helpdesk).
	Organisation string
	// Admin configures the admin console.
	Admin AdminOptions

	Eligibility policy.Eligibility
	Password    policy.Rules

	CodeLength   int
	CodeTTL      time.Duration
	FlowTTL      time.Duration
	MaxTries     int
	SessionTTL   time.Duration
	SessionIdle  time.Duration
	ReauthWindow time.Duration
	// CoolingOff: a method verified less than this long ago cannot alone
	// authorise a reset or unlock. 0 disables the rule.
	CoolingOff time.Duration
	MaxMethods int
	// PadFloor: unauthenticated answers (reset and unlock start, send,
	// verify, sign-in and change failures) are held until at least this
	// long after the request began, and longer only when the real path's
	// recent p95 is slower. 0: the p95 alone (10 ms until it is known).
	PadFloor time.Duration

	// AllowedCountries for SMS numbers (ISO 3166 alpha-2).
	AllowedCountries []string
	// UnlockOnReset clears a lockout together with a reset (Entra does).
	UnlockOnReset bool
	// TrustedProxies: peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Limits are the abuse budgets.
	Limits Limits
	// Questions configure security questions (method "questions").
	Questions QuestionOptions
	// Outbox configures the sending of mail and SMS.
	Outbox OutboxOptions
	// Timeouts of the HTTP server (server.*_timeout).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// AdminOptions configure the admin console (admin.*).
type AdminOptions struct {
	// Groups: members may sign in to the console; empty turns it off.
	Groups []string
	// Settings is config.AdminSettingsStore or AdminSettingsFile.
	Settings string
	// SessionIdle and SessionTTL bound an admin session.
	SessionIdle, SessionTTL time.Duration
	// Config is the configuration the gateway started with: the first
	// version of the console's settings, and what a save is checked
	// against (a method needs its sender). Nil: the console cannot save.
	Config *config.Config
}

// OutboxOptions configure the outbox (outbox.*, smtp.connections,
// sms.concurrency).
type OutboxOptions struct {
	// MaxWait: when the codes waiting would not all leave within it at the
	// measured send rate (or the oldest has waited longer), new codes
	// answer busy (outbox.max_wait).
	MaxWait time.Duration
	// MaxPending: with this many codes waiting, new codes answer busy
	// (outbox.max_pending).
	MaxPending int
	// DegradedAfter: /readyz says degraded while the oldest pending code
	// has waited longer (outbox.degraded_after).
	DegradedAfter time.Duration
	// EmailConcurrency and SMSConcurrency are the senders of each channel
	// on this instance (smtp.connections, sms.concurrency).
	EmailConcurrency int
	SMSConcurrency   int
}

// Deps are the gateway's collaborators.
type Deps struct {
	Directory directory.Directory
	Store     store.Store
	// Mailer sends email; nil disables email methods and notifications.
	Mailer notify.Mailer
	// SMS sends text messages; nil disables SMS methods.
	SMS notify.SMSSender
	Log *slog.Logger
	// Audit receives one JSON line per audit event (nil: Log).
	Audit *slog.Logger
	// Demo is set by `latchkey demo` only (see Demo).
	Demo Demo
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// setDefaults gives the fields left zero config's defaults and refuses a
// value out of range, naming the field; nothing is replaced by another
// value. config is the one place a default or a bound is written:
// cmd/latchkey sets every field from a validated configuration (whose
// Validate names the key of a value out of range), so the defaults here
// fill only Options built by hand, as unit tests do, with what `latchkey
// serve` runs with by default.
func (o *Options) setDefaults() error {
	if o.PublicURL == nil || o.PublicURL.Scheme == "" || o.PublicURL.Host == "" {
		return errors.New("gateway: PublicURL is required")
	}
	if len(o.SecretKey) < config.MinSecretKeyBytes {
		return fmt.Errorf("gateway: SecretKey must be at least %d bytes", config.MinSecretKeyBytes)
	}
	d := config.Default()
	orDefault(&o.ProductName, config.ProductName)
	orDefault(&o.Eligibility.MethodsRequired, d.Policy.MethodsRequired)
	orDefault(&o.CodeLength, d.Policy.CodeLength)
	orDefault(&o.CodeTTL, d.Policy.CodeTTL)
	orDefault(&o.FlowTTL, config.FlowTTL)
	orDefault(&o.MaxTries, d.Policy.MaxTries)
	orDefault(&o.SessionTTL, config.SessionTTL)
	orDefault(&o.SessionIdle, config.SessionIdle)
	orDefault(&o.ReauthWindow, config.ReauthWindow)
	orDefault(&o.MaxMethods, config.MaxMethods)
	orDefault(&o.ReadHeaderTimeout, d.Server.ReadHeaderTimeout)
	orDefault(&o.ReadTimeout, d.Server.ReadTimeout)
	orDefault(&o.WriteTimeout, d.Server.WriteTimeout)
	orDefault(&o.IdleTimeout, d.Server.IdleTimeout)
	o.Limits.setDefaults(d.Limits)
	o.Questions.setDefaults(d.Policy.Questions)
	orDefault(&o.Admin.SessionIdle, d.Admin.SessionIdle)
	orDefault(&o.Admin.SessionTTL, d.Admin.SessionTTL)
	orDefault(&o.Outbox.MaxWait, d.Outbox.MaxWait)
	orDefault(&o.Outbox.MaxPending, d.Outbox.MaxPending)
	orDefault(&o.Outbox.DegradedAfter, d.Outbox.DegradedAfter)
	orDefault(&o.Outbox.EmailConcurrency, d.SMTP.Connections)
	orDefault(&o.Outbox.SMSConcurrency, d.SMS.Concurrency)
	return o.check()
}

// check refuses the values config.Validate refuses, with config's bounds,
// naming the field of Options (a configuration never gets here with one:
// Validate refused it at its key).
func (o *Options) check() error {
	var c optionsCheck
	c.within("CodeLength", o.CodeLength, config.MinCodeLength, config.MaxCodeLength)
	if o.CodeTTL <= 0 || o.CodeTTL > config.MaxCodeTTL {
		c.add("CodeTTL", "must be a positive duration of at most %s, got %s", config.MaxCodeTTL, o.CodeTTL)
	}
	c.within("MaxTries", o.MaxTries, 1, config.MaxMaxTries)
	c.within("Eligibility.MethodsRequired", o.Eligibility.MethodsRequired, 1, config.MaxMethodsRequired)
	c.positive("FlowTTL", o.FlowTTL)
	c.positive("SessionTTL", o.SessionTTL)
	c.positive("SessionIdle", o.SessionIdle)
	c.positive("ReauthWindow", o.ReauthWindow)
	if o.CoolingOff < 0 {
		c.add("CoolingOff", "must be 0 (off) or a positive duration, got %s", o.CoolingOff)
	}
	c.atLeastOne("MaxMethods", o.MaxMethods)
	if o.PadFloor < 0 || o.PadFloor > config.MaxPadFloor {
		c.add("PadFloor", "must be 0 (the p95 alone) to %s, got %s", config.MaxPadFloor, o.PadFloor)
	}
	c.positive("ReadHeaderTimeout", o.ReadHeaderTimeout)
	c.positive("ReadTimeout", o.ReadTimeout)
	c.positive("WriteTimeout", o.WriteTimeout)
	c.positive("IdleTimeout", o.IdleTimeout)
	o.Limits.check(&c)
	o.Questions.check(&c)
	return errors.Join(c...)
}

// optionsCheck collects the fields of Options out of range.
type optionsCheck []error

func (c *optionsCheck) add(field, format string, args ...any) {
	*c = append(*c, fmt.Errorf("gateway: Options.%s %s", field, fmt.Sprintf(format, args...)))
}

func (c *optionsCheck) positive(field string, d time.Duration) {
	if d <= 0 {
		c.add(field, "must be a positive duration, got %s", d)
	}
}

func (c *optionsCheck) atLeastOne(field string, v int) {
	if v < 1 {
		c.add(field, "must be at least 1, got %d", v)
	}
}

func (c *optionsCheck) within(field string, v, lo, hi int) {
	if v < lo || v > hi {
		c.add(field, "must be %d-%d, got %d", lo, hi, v)
	}
}

// orDefault sets *p to def when it is zero.
func orDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}
