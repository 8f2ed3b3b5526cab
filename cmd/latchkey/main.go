// Command latchkey is the Latchkey self-service password reset gateway.
//
//	latchkey demo                   try it out: embedded directory, loopback only
//	latchkey serve --config FILE    run the gateway
//	latchkey check --config FILE    preflight: configuration, directory, store, SMTP, SMS
//	latchkey migrate --config FILE  apply the store's schema migrations, print the version
//	latchkey version
//
// Exit codes: 0 success, 2 bad configuration (every problem listed with its
// key path), 1 anything else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/gateway"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "latchkey", version)
		return exitOK
	case "serve", "check", "migrate":
	case "demo":
		return demo(rest, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "latchkey: unknown command %q\n", cmd)
		usage(stderr)
		return exitConfig
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); every key can also be set as LATCHKEY_<SECTION>_<KEY>")
	var copts checkOptions
	if cmd == "check" {
		copts.register(fs)
		fs.Usage = func() {}
	}
	if err := fs.Parse(rest); err != nil {
		if cmd == "check" {
			if errors.Is(err, flag.ErrHelp) {
				checkHelp(stdout, fs)
				return exitOK
			}
			checkHelp(stderr, fs)
		}
		return exitConfig
	}
	if copts.TryReset && copts.Canary == "" {
		fmt.Fprintln(stderr, "latchkey: --try-reset needs --canary USER")
		return exitConfig
	}
	cfg, err := loadConfigErr(*path, stderr)
	if cfg == nil {
		if cmd == "check" && copts.JSON {
			// scripts read stdout: the problems as FAIL results too
			printJSON(stdout, configFailures(*path, err))
		}
		return exitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "check":
		return check(ctx, cfg, *path, copts, stdout)
	case "migrate":
		return migrate(ctx, cfg, stdout, stderr)
	}
	return serve(ctx, cfg, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  latchkey demo                   try it: an embedded directory, everything on 127.0.0.1 (not for production)
  latchkey serve --config FILE    run the gateway
  latchkey check --config FILE    preflight: directory, TLS, rights, store, SMTP, SMS
                                  (latchkey check --help for its flags)
  latchkey migrate --config FILE  apply the store's schema migrations and print the version
  latchkey version                print the version
`)
}

// loadConfig loads and validates; on problems it lists every one and
// returns exit code 2.
func loadConfig(path string, stderr io.Writer, opts ...config.Option) (*config.Config, int) {
	if cfg, _ := loadConfigErr(path, stderr, opts...); cfg != nil {
		return cfg, exitOK
	}
	return nil, exitConfig
}

// loadConfigErr is loadConfig returning why the configuration was refused
// (nil configuration; the problems are on stderr) instead of an exit code.
func loadConfigErr(path string, stderr io.Writer, opts ...config.Option) (*config.Config, error) {
	cfg, err := config.Load(path, opts...)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintln(stderr, "latchkey: the configuration has problems:")
			for _, p := range ve.Problems {
				fmt.Fprintln(stderr, "  "+p.String())
			}
			return nil, err
		}
		fmt.Fprintln(stderr, "latchkey:", err)
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func directoryConfig(cfg *config.Config) directory.Config {
	d := cfg.Directory
	dc := directory.Config{
		Flavor:             directory.Flavor(d.Type),
		URLs:               d.URLs,
		StartTLS:           d.StartTLS,
		AllowPlaintext:     d.AllowPlaintext,
		CAFile:             d.CAFile,
		InsecureSkipVerify: d.InsecureSkipVerify,
		BindDN:             d.BindDN,
		BindPassword:       d.BindPassword,
		BaseDN:             d.BaseDN,
		UserFilter:         d.UserFilter,
		DefaultPolicyDN:    d.DefaultPolicyDN,
		Timeout:            d.Timeout,
		PoolSize:           d.PoolSize,
		GroupCacheTTL:      d.GroupCacheTTL,
	}
	if d.GroupCacheTTL == 0 {
		dc.GroupCacheTTL = -1 // off
	}
	if d.Type == config.DirectoryOpenLDAP && d.GroupMemberAttribute != "" {
		dc.MemberAttributes = []string{d.GroupMemberAttribute}
	}
	return dc
}

func smtpConfig(cfg *config.Config) notify.SMTPConfig {
	s := cfg.SMTP
	tls := s.TLS
	if tls == config.SMTPTLSMandatory {
		tls = notify.TLSStartTLS
	}
	return notify.SMTPConfig{Host: s.Host, Port: s.Port, TLS: tls, CAFile: s.CAFile, Username: s.Username,
		Password: s.Password, From: s.From, Timeout: s.Timeout}
}

func smsSender(cfg *config.Config, log *slog.Logger) (notify.SMSSender, error) {
	if !cfg.SMS.Enabled {
		return nil, nil
	}
	switch cfg.SMS.Provider {
	case config.SMSWebhook:
		return notify.NewWebhook(notify.WebhookConfig{URL: cfg.SMS.Webhook.URL, Secret: cfg.SMS.Webhook.Secret, Logger: log})
	default:
		t := cfg.SMS.Twilio
		return notify.NewTwilio(notify.TwilioConfig{AccountSID: t.AccountSID, AuthToken: t.AuthToken, From: t.From,
			MessagingServiceSID: t.MessagingServiceSID, BaseURL: t.BaseURL, Logger: log})
	}
}

// gatewayOptions copies the validated configuration into the gateway's
// options. Every value, defaults and fixed settings included, comes from
// config (Default, its constants and its derived values): the gateway's
// own defaults for zero fields never decide what runs.
func gatewayOptions(cfg *config.Config) (flow.Options, error) {
	pu, err := url.Parse(cfg.Server.PublicURL)
	if err != nil {
		return flow.Options{}, err
	}
	return flow.Options{
		PublicURL:    pu,
		SecretKey:    []byte(cfg.Server.SecretKey),
		Helpdesk:     cfg.Server.Helpdesk,
		ProductName:  config.ProductName,
		Organisation: cfg.Server.Organisation,
		Admin: flow.AdminOptions{Groups: cfg.Admin.Groups, Settings: cfg.Admin.Settings, SessionIdle: cfg.Admin.SessionIdle,
			SessionTTL: cfg.Admin.SessionTTL, Config: cfg},
		Eligibility:      cfg.Eligibility(),
		Password:         cfg.Policy.PasswordRules(),
		CodeLength:       cfg.Policy.CodeLength,
		CodeTTL:          cfg.Policy.CodeTTL,
		FlowTTL:          config.FlowTTL,
		MaxTries:         cfg.Policy.MaxTries,
		SessionTTL:       config.SessionTTL,
		SessionIdle:      config.SessionIdle,
		ReauthWindow:     config.ReauthWindow,
		CoolingOff:       cfg.Policy.CoolingOff,
		MaxMethods:       config.MaxMethods,
		PadFloor:         cfg.Policy.PadFloor,
		AllowedCountries: cfg.SMS.AllowedCountries,
		UnlockOnReset:    cfg.Policy.UnlockOnReset(),
		Limits: flow.Limits{
			Window:                 cfg.Limits.Window,
			StartsPerAccount:       cfg.Limits.StartsPerAccount,
			StartsPerIP:            cfg.Limits.StartsPerIP,
			StartsTotal:            cfg.Limits.StartsTotal,
			SendsPerAccount:        cfg.Limits.SendsPerAccount,
			SendsPerDestination:    cfg.Limits.SendsPerDestination,
			SMSPerHour:             cfg.Limits.SMSPerHour,
			SMSPerPrefixPerHour:    cfg.Limits.SMSPerPrefixPerHour,
			CodeFailuresPerAccount: cfg.Limits.CodeFailuresPerAccount,
			SignInsPerIP:           cfg.Limits.SignInsPerIP,
			BindFailures:           cfg.Limits.BindFailures,
			BindFailureWindow:      cfg.Limits.BindFailureWindow,
			NoticesPerAccount:      cfg.Limits.NoticesPerAccount,
			IPv6Prefix:             cfg.Limits.IPv6Prefix,
			IPv6SitePrefix:         cfg.Limits.IPv6SitePrefix,
			AppFailures:            cfg.Limits.AppFailures,
			AppFailuresNotify:      cfg.Limits.AppFailuresNotify,
			AppFailureWindow:       cfg.Limits.AppFailureWindow,
		},
		Questions: flow.QuestionOptions{List: cfg.Policy.Questions.List, AllowCustom: cfg.Policy.Questions.AllowCustom,
			Required: cfg.Policy.Questions.Required, Ask: cfg.Policy.Questions.Ask},
		Outbox: flow.OutboxOptions{MaxWait: cfg.Outbox.MaxWait, MaxPending: cfg.Outbox.MaxPending, DegradedAfter: cfg.Outbox.DegradedAfter,
			EmailConcurrency: cfg.SMTP.Connections, SMSConcurrency: cfg.SMS.Concurrency},
		TrustedProxies:    cfg.Server.TrustedProxyPrefixes(),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
	}, nil
}

func auditLogger(cfg *config.Config, stdout io.Writer) (*slog.Logger, func(), error) {
	w, closeFn := stdout, func() {}
	if cfg.Log.AuditFile != "" {
		f, err := os.OpenFile(cfg.Log.AuditFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600) // #nosec G304 G703 -- the path is the operator's log.audit_file
		if err != nil {
			return nil, nil, err
		}
		w, closeFn = f, func() { f.Close() }
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: dropRecordTime})).With("log", "audit"), closeFn, nil
}

// dropRecordTime leaves out the log record's own time: every audit line
// carries its event's time under "time" (flow.Service.logAudit), and a
// second "time" key made the lines ambiguous JSON (parsers keep one of the
// two or refuse the line). The record's time is the one slog adds as a
// time.Time; the event's is a string.
func dropRecordTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.Attr{}
	}
	return a
}

// wiring is what `latchkey demo` changes in serve: where messages go, the
// demo's pages, and a listener opened before the configuration was made.
// serve leaves it zero.
type wiring struct {
	outbox   *notify.Outbox // mail and SMS go here instead of SMTP and a provider
	demo     flow.Demo
	listener net.Listener
	// ready is called once the gateway accepts requests
	ready func()
	// seed, when set, is called once the service is built (the demo's
	// admin app)
	seed func(context.Context, *flow.Service) error
}

func serve(ctx context.Context, cfg *config.Config, stderr io.Writer) int {
	return runGateway(ctx, cfg, stderr, wiring{})
}

func runGateway(ctx context.Context, cfg *config.Config, stderr io.Writer, w wiring) int {
	log := newLogger(cfg, stderr)
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w.String())
	}
	audit, closeAudit, err := auditLogger(cfg, stderr)
	if err != nil {
		log.Error("opening the audit file", "error", err.Error())
		return exitFail
	}
	defer closeAudit()
	deps, closeDeps, ok := openDeps(ctx, cfg, log, w)
	if !ok {
		return exitFail
	}
	defer closeDeps()
	deps.Audit = audit
	svc, ok := newService(cfg, deps, log)
	if !ok {
		return exitFail
	}
	if w.seed != nil {
		if err := w.seed(ctx, svc); err != nil {
			svc.Close()
			log.Error("seeding the demo", "error", err.Error())
			return exitFail
		}
	}
	defer func() {
		// after the HTTP server stopped: send what this instance wrote
		// to the outbox (codes in their jitter time, notices, retries),
		// within a bound; the rest stays in the store for the next start
		// or another instance
		svc.Close()
		log.Info("outbox drained")
	}()
	srv, err := gateway.New(svc)
	if err != nil {
		log.Error("gateway", "error", err.Error())
		return exitFail
	}
	hs := srv.HTTPServer(cfg.Server.Listen)
	audit.Info("audit", "event", "configuration.loaded", "time", time.Now().UTC().Format(time.RFC3339Nano), "outcome", "success")
	go purge(ctx, deps.Store, svc, cfg.Log.AuditRetention, log)
	go sendHeldNotices(ctx, svc, log)
	return serveHTTP(ctx, cfg, log, srv, hs, w)
}

// directoryOpenTimeout bounds connecting to the directory at start-up.
const directoryOpenTimeout = 30 * time.Second

// openDeps opens what the flows run on: the directory, the store and
// where messages go (senders). A failure is logged, and what was opened
// is closed again; otherwise closeDeps closes them.
func openDeps(ctx context.Context, cfg *config.Config, log *slog.Logger, w wiring) (deps flow.Deps, closeDeps func(), ok bool) {
	// the store first: a schema this build cannot serve on stops here
	st, err := openStore(ctx, cfg, cfg.Store.Migrate == config.MigrateOnStart)
	if err != nil {
		log.Error("opening the store", "error", err.Error(), "migrate", cfg.Store.Migrate)
		return flow.Deps{}, nil, false
	}
	if m := st.(migrater).Migration(); m.Migrated() {
		log.Info("store schema migrated", "from", m.From, "to", m.To)
	} else if m.Behind() {
		log.Warn("store schema behind this build: serving on it; run latchkey migrate once every instance runs this version",
			"version", m.To, "build", store.SchemaVersion())
	}
	dctx, cancel := context.WithTimeout(ctx, directoryOpenTimeout)
	dir, err := directory.Open(dctx, directoryConfig(cfg), log)
	cancel()
	if err != nil {
		log.Error("connecting to the directory", "error", err.Error())
		st.Close()
		return flow.Deps{}, nil, false
	}
	closeDeps = func() {
		st.Close()
		dir.Close()
	}
	deps = flow.Deps{Directory: dir, Store: st, Log: log, Demo: w.demo}
	if !senders(cfg, log, w, &deps) {
		closeDeps()
		return flow.Deps{}, nil, false
	}
	return deps, closeDeps, true
}

// senders sets where mail and SMS go, each only when it is enabled: the
// demo's outbox when there is one, else SMTP and the SMS provider. A
// failure is logged.
func senders(cfg *config.Config, log *slog.Logger, w wiring, deps *flow.Deps) bool {
	if w.outbox != nil {
		if cfg.Email.Enabled {
			deps.Mailer = w.outbox
		}
		if cfg.SMS.Enabled {
			deps.SMS = w.outbox
		}
		return true
	}
	if cfg.Email.Enabled {
		m, err := notify.NewSMTP(smtpConfig(cfg), log)
		if err != nil {
			log.Error("smtp", "error", err.Error())
			return false
		}
		deps.Mailer = m
	}
	s, err := smsSender(cfg, log)
	if err != nil {
		log.Error("sms", "error", err.Error())
		return false
	}
	if s != nil {
		deps.SMS = s
	}
	return true
}

// newService builds the flows from the configuration; a failure is logged.
func newService(cfg *config.Config, deps flow.Deps, log *slog.Logger) (*flow.Service, bool) {
	opts, err := gatewayOptions(cfg)
	if err != nil {
		log.Error("gateway options", "error", err.Error())
		return nil, false
	}
	svc, err := flow.NewService(opts, deps)
	if err != nil {
		log.Error("gateway", "error", err.Error())
		return nil, false
	}
	return svc, true
}

// serveHTTP serves on the wiring's listener, else on server.listen, until
// the server fails or ctx ends; then it drains and shuts down.
func serveHTTP(ctx context.Context, cfg *config.Config, log *slog.Logger, srv *gateway.Server, hs *http.Server, w wiring) int {
	ln := w.listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
			log.Error("http server", "error", err.Error())
			return exitFail
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("latchkey listening", "listen", ln.Addr().String(), "public_url", cfg.Server.PublicURL, "version", version)
	if w.ready != nil {
		w.ready()
	}
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "error", err.Error())
			return exitFail
		}
		return exitOK
	case <-ctx.Done():
		return shutdown(cfg, log, srv, hs, ln, errc)
	}
}

// shutdown stops serving after ctx ended: the server reports itself not
// ready (the load balancer moves away) while still serving for
// server.shutdown_delay. Then the listener closes: a new connection is
// refused, which a load balancer without a health check (nginx) sends to
// the next instance; each kept connection is closed right after its next
// answer (CloseConnections), and the idle ones are left for up to
// connCloseWait to the client, whose keep-alive timeout closes them (a
// connection closed by the server while idle may be one the client is
// sending a POST on). Then requests in flight get httpShutdownTimeout to
// finish. Without a delay (one instance, no load balancer) the listener
// and the idle connections close at once.
func shutdown(cfg *config.Config, log *slog.Logger, srv *gateway.Server, hs *http.Server, ln net.Listener, errc <-chan error) int {
	srv.Drain()
	if d := cfg.Server.ShutdownDelay; d > 0 {
		log.Info("draining before shutdown", "delay", d.String())
		select {
		case <-time.After(d):
		case err := <-errc:
			log.Error("http server", "error", err.Error())
			return exitFail
		}
		srv.CloseConnections()
		_ = ln.Close() // Serve returns; the connections it started go on
		waitConnsClosed(srv, connCloseWait)
	}
	sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	_ = hs.Shutdown(sctx)
	log.Info("latchkey stopped")
	return exitOK
}

// connCloseWait bounds how long a drain waits, after the listener closed,
// for clients to close their kept connections (each is closed after its
// next answer; an idle one by the client's keep-alive timeout, shorter in
// deploy/nginx).
const connCloseWait = 5 * time.Second

// waitConnsClosed returns once srv has no open connection, or after limit.
func waitConnsClosed(srv *gateway.Server, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for srv.OpenConnections() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// httpShutdownTimeout bounds how long requests in flight may take to
// finish after the listener closes on SIGTERM; the outbox's drain
// (flow.OutboxDrainTimeout) follows.
const httpShutdownTimeout = 10 * time.Second

// sendHeldNotices tells, every minute, the notices a budget held back
// whose window has ended (flow.Service.SendHeldNotices).
func sendHeldNotices(ctx context.Context, svc *flow.Service, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := svc.SendHeldNotices(ctx); err != nil {
				log.Warn("sending held notices", "error", err.Error())
			}
		}
	}
}

// purge removes expired flows, codes and sessions every minute, stores
// the gateway's summaries of audit events it did not store one by one, and
// every hour deletes audit events older than log.audit_retention.
func purge(ctx context.Context, st store.Store, svc *flow.Service, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var lastAudit time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sweep(ctx, st, svc.FlushAudit, retention, now, &lastAudit, log)
		}
	}
}

// sweep is one minute's purge (see purge); lastAudit is when the audit was
// last swept, updated when it is swept again.
func sweep(ctx context.Context, st store.Store, flush func(context.Context), retention time.Duration, now time.Time, lastAudit *time.Time, log *slog.Logger) {
	if _, err := st.Purge(ctx, now); err != nil {
		log.Warn("store purge", "error", err.Error())
	}
	flush(ctx)
	if now.Sub(*lastAudit) < time.Hour {
		return
	}
	*lastAudit = now
	if n, err := st.PurgeAudit(ctx, now.Add(-retention)); err != nil {
		log.Warn("audit retention sweep", "error", err.Error())
	} else if n > 0 {
		log.Info("audit retention sweep", "deleted", n, "retention", retention.String())
	}
}
