package flow

import (
	"errors"
	"log/slog"
	"net/netip"
	"net/url"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// Defaults for Options fields left zero.
const (
	DefaultCodeLength   = 6
	DefaultCodeTTL      = 10 * time.Minute
	DefaultFlowTTL      = 15 * time.Minute
	DefaultMaxTries     = 5
	DefaultSessionTTL   = 30 * time.Minute
	DefaultSessionIdle  = 10 * time.Minute
	DefaultReauthWindow = 10 * time.Minute
	DefaultMaxMethods   = 5
)

// Options are the gateway's settings, filled from configuration by cmd/latchkey.
type Options struct {
	// PublicURL is the base of every link the gateway makes (mails, redirects);
	// the Host header is never used.
	PublicURL *url.URL
	// SecretKey (>= 32 bytes) keys code hashes, decoys and CSRF tokens.
	SecretKey []byte
	// Helpdesk is shown on every page: a URL or a mailto: link.
	Helpdesk string
	// ProductName is shown in pages and messages (default "Latchkey").
	ProductName string

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
	// Timeouts of the HTTP server.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
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

func (o *Options) setDefaults() error {
	if o.PublicURL == nil || o.PublicURL.Scheme == "" || o.PublicURL.Host == "" {
		return errors.New("gateway: PublicURL is required")
	}
	if len(o.SecretKey) < 32 {
		return errors.New("gateway: SecretKey must be at least 32 bytes")
	}
	if o.ProductName == "" {
		o.ProductName = "Latchkey"
	}
	if o.CodeLength < 6 || o.CodeLength > 8 {
		o.CodeLength = DefaultCodeLength
	}
	if o.CodeTTL <= 0 || o.CodeTTL > 10*time.Minute {
		o.CodeTTL = DefaultCodeTTL
	}
	if o.FlowTTL <= 0 {
		o.FlowTTL = DefaultFlowTTL
	}
	if o.MaxTries <= 0 || o.MaxTries > DefaultMaxTries {
		o.MaxTries = DefaultMaxTries
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = DefaultSessionIdle
	}
	if o.ReauthWindow <= 0 {
		o.ReauthWindow = DefaultReauthWindow
	}
	if o.MaxMethods <= 0 {
		o.MaxMethods = DefaultMaxMethods
	}
	o.Limits.setDefaults()
	o.Questions.setDefaults()
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	return nil
}
