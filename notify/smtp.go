package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"os"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/latchkeyhq/latchkey/internal/tlsdiag"
)

// SMTP TLS modes accepted in SMTPConfig.TLS.
const (
	// TLSImplicit connects with TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "implicit"
	// TLSStartTLS connects in plain text and requires STARTTLS before
	// anything else is sent (usually port 587). The config value "mandatory"
	// is accepted as a synonym.
	TLSStartTLS = "starttls"
	// TLSNone sends in plain text. Only for loopback test servers and demos;
	// the config package decides where it is allowed.
	TLSNone = "none"
)

// DefaultSMTPTimeout bounds one dial + send when SMTPConfig.Timeout is zero.
const DefaultSMTPTimeout = 10 * time.Second

// SMTPConfig configures the SMTP mailer. It is a plain struct: the config
// package fills it (reading Password from password_file) and validates it.
type SMTPConfig struct {
	// Host is the SMTP server's host name or IP address.
	Host string
	// Port defaults to 465 (implicit), 587 (starttls) or 25 (none).
	Port int
	// TLS is "implicit", "starttls" (also "mandatory") or "none". Empty means
	// "starttls". There is no opportunistic mode: a downgrade would be silent.
	TLS string
	// CAFile is a PEM bundle of roots that verify the server certificate.
	// Empty means the system roots.
	CAFile string
	// ServerName is the name the certificate must be valid for; defaults to
	// Host.
	ServerName string
	// Username enables SMTP AUTH when set. The mechanism is chosen from what
	// the server offers, strongest first (SCRAM-SHA-256(-PLUS), SCRAM-SHA-1,
	// NTLM, CRAM-MD5, PLAIN, LOGIN); PLAIN and LOGIN are never used on an
	// unencrypted connection.
	Username string
	// Password for SMTP AUTH. It never appears in errors or logs.
	Password string
	// From is the sender, e.g. "Latchkey <no-reply@example.org>".
	From string
	// Timeout bounds a whole dial + send (or Check). The context's deadline
	// wins when it is earlier. Defaults to DefaultSMTPTimeout.
	Timeout time.Duration
	// HELO is the name sent in EHLO; go-mail's default ("localhost") when empty.
	HELO string
}

// SMTP sends e-mail through one SMTP server. It is safe for concurrent use:
// every SendEmail opens its own connection; OpenSession keeps one open for
// several messages.
type SMTP struct {
	cfg    SMTPConfig
	tlsCfg *tls.Config // nil for TLSNone
	from   *netmail.Address
	logger *slog.Logger
}

var _ Mailer = (*SMTP)(nil)

// NewSMTP validates cfg, loads the CA file and returns a mailer. It does not
// connect; use Check for a preflight.
func NewSMTP(cfg SMTPConfig, logger *slog.Logger) (*SMTP, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if strings.TrimSpace(cfg.Host) == "" {
		errs = append(errs, errors.New("host is required"))
	}
	if strings.ContainsAny(cfg.Host, "/ \t\r\n") || strings.HasPrefix(cfg.Host, "unix:") {
		errs = append(errs, errors.New("host must be a host name or IP address"))
	}
	mode := strings.ToLower(strings.TrimSpace(cfg.TLS))
	switch mode {
	case "", "mandatory", TLSStartTLS:
		mode = TLSStartTLS
	case TLSImplicit, TLSNone:
	default:
		errs = append(errs, fmt.Errorf("tls must be implicit, starttls or none, not %q", cfg.TLS))
	}
	cfg.TLS = mode
	if cfg.Port == 0 {
		switch mode {
		case TLSImplicit:
			cfg.Port = 465
		case TLSNone:
			cfg.Port = 25
		default:
			cfg.Port = 587
		}
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range", cfg.Port))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if cfg.Password != "" && cfg.Username == "" {
		errs = append(errs, errors.New("password is set but username is empty"))
	}
	if err := checkHeaderValue("helo", cfg.HELO); err != nil || strings.ContainsAny(cfg.HELO, " \t") {
		errs = append(errs, errors.New("helo must be a single host name"))
	}
	from, err := parseOneAddress("From", cfg.From)
	if err != nil {
		errs = append(errs, fmt.Errorf("from: %w", err))
	}
	if cfg.ServerName == "" {
		cfg.ServerName = cfg.Host
	}
	var tlsCfg *tls.Config
	if mode != TLSNone {
		tlsCfg = &tls.Config{ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pool, err := loadCAFile(cfg.CAFile)
			if err != nil {
				errs = append(errs, err)
			}
			tlsCfg.RootCAs = pool
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("notify: smtp config: %w", errors.Join(errs...))
	}
	return &SMTP{cfg: cfg, tlsCfg: tlsCfg, from: from, logger: logger}, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path) // #nosec G304 -- smtp.ca_file from the operator's configuration
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificates found", path)
	}
	return pool, nil
}

// client builds a go-mail client for one connection. The timeout is the
// configured one, shortened to the context's deadline.
func (s *SMTP) client(ctx context.Context) (*mail.Client, error) {
	timeout := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	opts := []mail.Option{mail.WithPort(s.cfg.Port), mail.WithTimeout(timeout)}
	switch s.cfg.TLS {
	case TLSImplicit:
		// WithTLSConfig replaces go-mail's default config, so ours carries
		// ServerName and MinVersion itself. Clone: go-mail must not share it.
		opts = append(opts, mail.WithSSL(), mail.WithTLSConfig(s.tlsCfg.Clone()))
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(s.tlsCfg.Clone()))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if s.cfg.HELO != "" {
		opts = append(opts, mail.WithHELO(s.cfg.HELO))
	}
	if s.cfg.Username != "" {
		// Auto-discovery only offers PLAIN and LOGIN over TLS.
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	c, err := mail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return nil, s.scrub(err)
	}
	return c, nil
}

// SendEmail validates e and sends it on a new connection. Validation errors
// (ErrInvalidAddress, ErrHeaderInjection, ErrInvalidMessage) are returned
// before any connection is made. Use IsTemporary to decide whether a failure
// is worth a retry.
//
// The context bounds the dial; after that the connection's I/O deadline is
// Timeout, shortened to the context's deadline when there is one. Cancelling
// a context without a deadline does not interrupt a send already past the
// dial (go-mail gives no hook for it); give the context a deadline.
func (s *SMTP) SendEmail(ctx context.Context, e Email) error {
	m, to, err := s.message(e)
	if err != nil {
		return err
	}
	start := time.Now()
	c, err := s.client(ctx)
	if err != nil {
		return fmt.Errorf("notify: smtp: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("notify: smtp: send to %s via %s: %w", MaskEmail(to.Address), s.addr(), s.scrub(err))
	}
	s.logger.DebugContext(ctx, "email sent", slog.String("to", MaskEmail(to.Address)),
		slog.String("server", s.addr()), slog.Duration("duration", time.Since(start)))
	return nil
}

// message validates e and builds its go-mail message.
func (s *SMTP) message(e Email) (*mail.Msg, *netmail.Address, error) {
	to, err := e.validate()
	if err != nil {
		return nil, nil, err
	}
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	m.FromMailAddress(s.from)
	m.ToMailAddress(to)
	m.Subject(e.Subject)
	m.SetDate()
	m.SetMessageID()
	// RFC 3834: automatic mail; ask auto-responders to stay quiet.
	m.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	m.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
	switch {
	case e.Text != "" && e.HTML != "":
		m.SetBodyString(mail.TypeTextPlain, e.Text)
		m.AddAlternativeString(mail.TypeTextHTML, e.HTML)
	case e.Text != "":
		m.SetBodyString(mail.TypeTextPlain, e.Text)
	default:
		m.SetBodyString(mail.TypeTextHTML, e.HTML)
	}
	return m, to, nil
}

// SMTPSession is one open SMTP connection (greeting, EHLO, STARTTLS and
// AUTH done once) that sends messages one after the other. Before each
// message go-mail checks the connection with NOOP and extends its I/O
// deadline by the configured timeout, so a connection the server has
// closed fails before MAIL FROM: nothing was sent, and the message can go
// on a new session at once.
type SMTPSession struct {
	s *SMTP
	c *mail.Client
}

var _ SessionMailer = (*SMTP)(nil)

// OpenSession connects and authenticates as SendEmail does, and keeps the
// connection open until Close.
func (s *SMTP) OpenSession(ctx context.Context) (MailSession, error) {
	c, err := s.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("notify: smtp: %w", err)
	}
	if err := c.DialWithContext(ctx); err != nil {
		return nil, fmt.Errorf("notify: smtp: connect to %s: %w", s.addr(), s.scrub(err))
	}
	return &SMTPSession{s: s, c: c}, nil
}

// SendEmail validates e and sends it on the session's connection.
// ErrSessionBroken (wrapped) says the connection was found closed before
// anything of e was sent.
func (ss *SMTPSession) SendEmail(ctx context.Context, e Email) error {
	s := ss.s
	m, to, err := s.message(e)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	if err := ss.c.Send(m); err != nil {
		var se *mail.SendError
		if errors.As(err, &se) && se.Reason == mail.ErrConnCheck {
			err = fmt.Errorf("%w: %w", ErrSessionBroken, err)
		}
		return fmt.Errorf("notify: smtp: send to %s via %s: %w", MaskEmail(to.Address), s.addr(), s.scrub(err))
	}
	s.logger.DebugContext(ctx, "email sent", slog.String("to", MaskEmail(to.Address)),
		slog.String("server", s.addr()), slog.Duration("duration", time.Since(start)), slog.Bool("session", true))
	return nil
}

// Close says QUIT and closes the connection.
func (ss *SMTPSession) Close() error { return ss.s.scrub(ss.c.Close()) }

// ErrSessionBroken: a MailSession's connection was closed (by the server,
// after its idle time) before a message was started; the message was not
// sent and may go on a new session right away.
var ErrSessionBroken = errors.New("mail session connection closed")

// Stages of an SMTP check, CheckError.Stage: which step failed.
const (
	StageConnect = "connect" // no TCP connection to host:port
	StageTLS     = "tls"     // STARTTLS missing, handshake failed or certificate not trusted
	StageAuth    = "auth"    // SMTP AUTH refused or impossible
	StageSMTP    = "smtp"    // anything else the server answered
)

// CheckError is the error of Check: the stage that failed, an explanation
// (for a certificate: unknown authority, or the names it holds), and the
// cause. It never holds the password.
type CheckError struct {
	Stage  string
	Addr   string // host:port
	Detail string
	// TLSKind is the certificate problem (tlsdiag kinds: unknown_authority,
	// name_mismatch, expired, ...) when Stage is StageTLS and the
	// certificate was the problem.
	TLSKind string
	Err     error
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("notify: smtp check %s: %s: %s", e.Addr, e.Stage, e.Detail)
}

func (e *CheckError) Unwrap() error { return e.Err }

// Check connects, says EHLO, performs STARTTLS and AUTH as configured, and
// quits without sending. It is the SMTP step of `latchkey check`. Failures
// are a *CheckError saying which stage failed.
func (s *SMTP) Check(ctx context.Context) error {
	fail := func(stage string, err error) error {
		err = s.scrub(err)
		ce := &CheckError{Stage: stage, Addr: s.addr(), Detail: err.Error(), Err: err}
		if stage == StageTLS && tlsdiag.IsCertError(err) {
			p := tlsdiag.Describe(err)
			ce.Detail, ce.TLSKind = p.Message, string(p.Kind)
		}
		return ce
	}
	c, err := s.client(ctx)
	if err != nil {
		return fmt.Errorf("notify: smtp check: %w", err)
	}
	sc, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fail(smtpStage(err), err)
	}
	if err := c.CloseWithSMTPClient(sc); err != nil {
		return fail(StageSMTP, err)
	}
	return nil
}

// smtpStage says which step of go-mail's dial (greeting, EHLO, STARTTLS,
// AUTH) an error came from.
func smtpStage(err error) string {
	var rh tls.RecordHeaderError
	var alert tls.AlertError
	var oe *net.OpError
	msg := err.Error()
	switch {
	case errors.As(err, &oe) && oe.Op == "dial":
		return StageConnect
	case tlsdiag.IsCertError(err), errors.As(err, &rh), errors.As(err, &alert),
		strings.Contains(msg, "STARTTLS"), strings.HasPrefix(msg, "tls:"), strings.Contains(msg, " tls: "):
		return StageTLS
	case errors.Is(err, mail.ErrNoSupportedAuthDiscovered), strings.Contains(msg, "SMTP AUTH"),
		strings.Contains(msg, "SMTP Auth"), strings.Contains(msg, "authentication"):
		return StageAuth
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return StageConnect
	}
	return StageSMTP
}

func (s *SMTP) addr() string {
	return net.JoinHostPort(s.cfg.Host, fmt.Sprint(s.cfg.Port))
}

// scrub makes sure an error never carries the SMTP password (a server could
// echo it, a library could format it). When it would, the error is replaced
// by a redacted copy that keeps only the temporary/permanent classification.
func (s *SMTP) scrub(err error) error {
	return scrubSecrets(err, s.cfg.Password)
}

// redactedError replaces an error whose text contained a secret.
type redactedError struct {
	msg  string
	temp bool
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Temporary() bool { return e.temp }

// scrubSecrets returns err unchanged unless its text (or the text of anything
// it wraps) contains one of the secrets.
func scrubSecrets(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	leak := false
	for _, sec := range secrets {
		if sec != "" && strings.Contains(msg, sec) {
			leak = true
			msg = strings.ReplaceAll(msg, sec, "[REDACTED]")
		}
	}
	if !leak {
		return err
	}
	return &redactedError{msg: msg, temp: IsTemporary(err)}
}

// IsTemporary reports whether a send error is worth retrying later: an SMTP
// 4xx reply, a provider's 429 or 5xx, or a timeout. Validation errors, TLS
// verification failures, authentication failures and permanent rejections
// are not temporary. After a timeout the message may nevertheless have been
// delivered, so a retry can send it twice.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		return se.IsTemp()
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Retryable()
	}
	var re *redactedError
	if errors.As(err, &re) {
		return re.temp
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}
