package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/notify"
)

// checkOptions are the flags of `latchkey check` besides --config.
type checkOptions struct {
	Canary   string
	TryReset bool
	JSON     bool
}

func (o *checkOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.Canary, "canary", "", "username of a test account: the user filter must find exactly this one entry")
	fs.BoolVar(&o.TryReset, "try-reset", false, "with --canary: reset the canary's password to a random value with the service account (the password is changed!)")
	fs.BoolVar(&o.JSON, "json", false, "print the results as a JSON array of {check, status, message, fix}")
}

func checkHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: latchkey check --config FILE [--canary USER [--try-reset]] [--json]

Preflight: checks everything the gateway needs, each step on its own line:
OK, WARN or FAIL, the check's name, what was found and, for WARN and FAIL,
the fix (the configuration key or the directory right to change).

  config                  the configuration is valid; its warnings
  directory.reach         each directory.urls entry accepts a TCP connection
  directory.tls           its certificate is verified against directory.ca_file
                          (or the system roots) and the host name: unknown
                          authority, name mismatch (with the names the
                          certificate holds), expiry
  directory.bind          the service account binds (directory.bind_dn/password)
  directory.service_account  its own password: a WARN when it expires or a
                          lockout threshold applies to it, with the PSO (AD)
                          or pwdPolicy (OpenLDAP) that exempts it
  directory.capabilities  what the server lacks (ppolicy, policy hints, ...)
  directory.base_dn       directory.base_dn exists
  directory.group         each group in policy.groups, exclude_groups, tiers
  directory.canary        --canary: user_filter finds exactly one entry
  eligibility             --canary: whether it may use self-service, and the
                          group, tier, exclusion or privilege that decided
  directory.policy        the password policy; a minimum age > 0 is a WARN
  directory.reset_right   the service account may reset the canary's password
  policy.cooling_off      a WARN when a method registered now cannot reset
                          at once (a first register-then-reset test fails)
  store                   the store opens
  smtp                    connect, TLS and AUTH as configured (nothing is sent)
  sms                     Twilio: the credentials are accepted (an authenticated
                          read of the account, no message); webhook: reachable

The canary is a test account you designate. --try-reset changes its password
to a random value nobody knows (the reset is the only proof of the right to
reset on OpenLDAP); reset it again before using the account. Without
--try-reset nothing is written.

WARN lines never change the exit status.

Exit status: 0 no FAIL, 1 at least one FAIL, 2 invalid configuration
(its problems on stderr; with --json also on stdout, one FAIL "config"
result each).

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// checkResult is one line of the report.
type checkResult struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

const (
	statusOK   = string(directory.CheckOK)
	statusWarn = string(directory.CheckWarn)
	statusFail = string(directory.CheckFail)
)

// check is the preflight: every result says what was checked, what was
// found and how to fix it.
func check(ctx context.Context, cfg *config.Config, path string, opts checkOptions, stdout io.Writer) int {
	var results []checkResult
	add := func(name, status, msg, fix string) {
		results = append(results, checkResult{Check: name, Status: status, Message: msg, Fix: fix})
	}
	add("config", statusOK, "valid: "+path, "")
	for _, w := range cfg.Warnings {
		add("config", statusWarn, w.String(), "change "+w.Key+" as the message says")
	}
	log := slog.New(slog.DiscardHandler)

	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	for _, f := range directory.Preflight(dctx, directoryConfig(cfg), directory.PreflightOptions{
		Groups:   configuredGroups(cfg),
		Canary:   opts.Canary,
		TryReset: opts.TryReset,
		Logger:   log,
		// the canary's eligibility, right after it is found
		CanaryChecks: eligibilityChecks(cfg),
	}) {
		add(f.Check, string(f.Status), f.Message, f.Fix)
	}
	cancel()
	results = append(results, coolingOffCheck(cfg, time.Now()), proxiesCheck(cfg))

	status, message, fix := checkStore(ctx, cfg)
	add("store", status, message, fix)
	// the outbox lives in the store: with the store behind or failing
	// there is nothing to read, and the store line says why (one cause,
	// one line)
	if status == statusOK {
		status, message, fix = checkOutbox(ctx, cfg)
		add("outbox", status, message, fix)
	}

	if cfg.Email.Enabled {
		results = append(results, checkSMTP(ctx, cfg, log))
	}
	if cfg.SMS.Enabled {
		results = append(results, checkSMS(ctx, cfg, log))
	}

	failed := false
	for _, r := range results {
		failed = failed || r.Status == statusFail
	}
	if opts.JSON {
		printJSON(stdout, results)
	} else {
		printResults(stdout, results)
	}
	if failed {
		return exitFail
	}
	return exitOK
}

func printJSON(w io.Writer, results []checkResult) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(results)
}

// configFailures are the results of check --json for a configuration that
// did not load or validate (exit status 2): one FAIL "config" per problem,
// with the key to correct, and nothing else (nothing else was checked).
func configFailures(path string, err error) []checkResult {
	file := "the configuration"
	if path != "" {
		file = path
	}
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		return []checkResult{{Check: "config", Status: statusFail, Message: "not loaded: " + err.Error(),
			Fix: "make --config name a readable YAML configuration file"}}
	}
	var rs []checkResult
	for _, p := range ve.Problems {
		fix := "correct " + file + " as the message says"
		if p.Key != "" {
			fix = "correct " + p.Key + " in " + file + " as the message says"
		}
		rs = append(rs, checkResult{Check: "config", Status: statusFail, Message: "invalid: " + p.String(), Fix: fix})
	}
	return rs
}

func printResults(w io.Writer, results []checkResult) {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Check))
	}
	n := map[string]int{}
	for _, r := range results {
		n[r.Status]++
		line := fmt.Sprintf("%-4s  %-*s  %s", r.Status, width, r.Check, r.Message)
		if r.Fix != "" && r.Status != statusOK {
			line += " -- fix: " + r.Fix
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "%d checks: %d OK, %d WARN, %d FAIL\n", len(results), n[statusOK], n[statusWarn], n[statusFail])
}

// configuredGroups lists every group DN of the policy and of admin.groups
// with its key.
func configuredGroups(cfg *config.Config) []directory.GroupRef {
	var gs []directory.GroupRef
	for _, g := range cfg.Policy.GroupDNs() {
		gs = append(gs, directory.GroupRef{Key: g.Key, DN: g.DN})
	}
	// the admin console's groups: a mistyped one locks every admin out
	for i, dn := range cfg.Admin.Groups {
		gs = append(gs, directory.GroupRef{Key: fmt.Sprintf("admin.groups[%d]", i), DN: dn})
	}
	return gs
}

func checkSMTP(ctx context.Context, cfg *config.Config, log *slog.Logger) checkResult {
	r := checkResult{Check: "smtp"}
	sc := smtpConfig(cfg)
	m, err := notify.NewSMTP(sc, log)
	if err != nil {
		r.Status, r.Message, r.Fix = statusFail, err.Error(), "correct the smtp section"
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = m.Check(cctx)
	if err == nil {
		var parts []string
		switch sc.TLS {
		case notify.TLSImplicit:
			parts = append(parts, "implicit TLS, certificate verified")
		case notify.TLSNone:
			parts = append(parts, "no TLS (smtp.tls: none, on loopback)")
		default:
			parts = append(parts, "STARTTLS, certificate verified")
		}
		if sc.Username != "" {
			parts = append(parts, "AUTH as "+sc.Username+" accepted")
		}
		r.Status, r.Message = statusOK, fmt.Sprintf("%s:%d: %s; nothing sent", cfg.SMTP.Host, cfg.SMTP.Port, strings.Join(parts, ", "))
		if sc.TLS == notify.TLSNone && !isLoopback(cfg.SMTP.Host) {
			r.Status, r.Fix = statusWarn, "set smtp.tls to starttls (port 587) or implicit (port 465)"
		}
		return r
	}
	r.Status = statusFail
	var ce *notify.CheckError
	if !errors.As(err, &ce) {
		r.Message, r.Fix = err.Error(), "check the smtp section"
		return r
	}
	r.Message = fmt.Sprintf("%s: %s failed: %s", ce.Addr, ce.Stage, ce.Detail)
	switch ce.Stage {
	case notify.StageConnect:
		r.Fix = "check smtp.host and smtp.port, and that the mail server accepts connections from this machine"
	case notify.StageTLS:
		switch ce.TLSKind {
		case "unknown_authority":
			r.Fix = "set smtp.ca_file to the PEM file of the CA that signed the mail server's certificate"
		case "name_mismatch":
			r.Fix = "set smtp.host to a name the mail server's certificate holds, or reissue the certificate for " + cfg.SMTP.Host
		case "expired", "not_yet_valid":
			r.Fix = "renew the mail server's certificate (or check the clocks)"
		case "negative_serial":
			r.Fix = "give the mail server a certificate with a positive serial number, from a CA whose own certificate has a positive serial number too"
		default:
			r.Fix = "set smtp.tls to what the server speaks: implicit for SMTPS (port 465), starttls for submission (port 587)"
			if strings.Contains(ce.Detail, "protocol version") {
				r.Fix = "enable TLS 1.2 or later on the mail server: latchkey refuses older versions"
			}
		}
	case notify.StageAuth:
		r.Fix = "check smtp.username and smtp.password (or smtp.password_file), and that the server offers AUTH over TLS"
	default:
		r.Fix = "check the mail server's log for why it refused the session"
	}
	return r
}

func checkSMS(ctx context.Context, cfg *config.Config, log *slog.Logger) checkResult {
	r := checkResult{Check: "sms"}
	s, err := smsSender(cfg, log)
	if err != nil {
		r.Status, r.Message, r.Fix = statusFail, err.Error(), "correct the sms section"
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch p := s.(type) {
	case *notify.Twilio:
		acct, err := p.CheckCredentials(cctx)
		var pe *notify.ProviderError
		switch {
		case errors.As(err, &pe) && pe.HTTPStatus == http.StatusUnauthorized:
			r.Status, r.Message = statusFail, "Twilio refused the credentials: "+pe.Error()
			r.Fix = "set sms.twilio.account_sid and sms.twilio.auth_token (or auth_token_file) to the Account SID and Auth Token shown in the Twilio console"
		case errors.As(err, &pe) && pe.HTTPStatus == http.StatusNotFound:
			r.Status, r.Message = statusFail, "Twilio has no such account: "+pe.Error()
			r.Fix = "correct sms.twilio.account_sid (and sms.twilio.base_url, which is normally left out)"
		case err != nil:
			r.Status, r.Message = statusFail, "reading the Twilio account: "+err.Error()
			r.Fix = "check sms.twilio.base_url and that this machine may connect to it over HTTPS"
		case acct.Status != "active":
			r.Status, r.Message = statusFail, fmt.Sprintf("Twilio account %s is %s", acct.SID, acct.Status)
			r.Fix = "reactivate the Twilio account, or use another one in sms.twilio.account_sid"
		case strings.EqualFold(acct.Type, "Trial"):
			r.Status, r.Message = statusWarn, fmt.Sprintf("Twilio account %s accepted the credentials, but it is a trial account: it sends only to verified numbers; no message sent", acct.SID)
			r.Fix = "upgrade the Twilio account"
		default:
			r.Status, r.Message = statusOK, fmt.Sprintf("Twilio account %s (%s, %s) accepted the credentials; no message sent", acct.SID, acct.Status, acct.Type)
		}
	case *notify.Webhook:
		if err := p.CheckReachable(cctx); err != nil {
			r.Status, r.Message, r.Fix = statusFail, err.Error(), "check sms.webhook.url and that this machine may connect to it"
			return r
		}
		r.Status = statusWarn
		r.Message = "the webhook's host accepts connections; whether it accepts a message cannot be checked without sending one"
		r.Fix = "register a phone number once the gateway runs to see a code arrive"
	default:
		r.Status, r.Message, r.Fix = statusWarn, cfg.SMS.Provider+": not checked", "none known"
	}
	return r
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
