package flow

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// Service holds the flows. Pages and the JSON API call the same methods.
type Service struct {
	o     Options
	d     Deps
	k     keys
	out   *outbox
	log   *slog.Logger
	audit *slog.Logger
	mails *mailTemplates
	stats *eventCounts
	// sampler bounds the audit rows of events anyone can cause without a
	// proof (auditsample.go)
	sampler *auditSampler
	// pads hold unauthenticated answers to one duration per step
	padStart, padSend, padVerify *padder
	decoySrc                     decoySource
	// failures of a password check: every one is sampled
	padSignIn, padChange *padder
	// bg is work a request leaves behind (notices it must not wait for)
	bg sync.WaitGroup
	// settings are the admin console's settings in force (settings.go)
	settings      atomic.Pointer[live]
	stopSettings  chan struct{}
	closeSettings sync.Once
}

// Meta is what a flow step knows about the request, for audit and logs.
type Meta struct {
	RequestID string
	ClientIP  string
}

// MethodView is a registered method as its owner sees it.
type MethodView struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Hint      string    `json:"hint"`
	Verified  bool      `json:"verified"`
	CreatedAt time.Time `json:"created_at"`
}

// Offered is a method offered in a reset or unlock flow, masked.
type Offered struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Hint string `json:"hint"`
	real bool
}

// FlowView is the state of a reset or unlock flow as its user sees it.
type FlowView struct {
	ID        string    `json:"flow"`
	Kind      string    `json:"-"`
	Required  int       `json:"required"`
	Methods   []Offered `json:"methods"`
	Verified  []string  `json:"verified"`
	Remaining int       `json:"remaining"`
	// Needs, once a method is proven, lists the method kinds of which one
	// must still be proven in a tier with require_one_of: a required kind
	// still missing, or else, while a method is still needed, the kinds
	// that would count (kindsMissing). Empty otherwise, and always before a
	// first proof, which must not tell a tier member from anyone else.
	Needs []string `json:"needs,omitempty"`
	// CannotFinish, once a method is proven, says that the methods the
	// account has registered cannot complete what its tier requires (two
	// different methods and only one registered): the pages send the user
	// to the helpdesk instead of offering a method never set up. Always
	// false before a first proof.
	CannotFinish bool `json:"-"`
	// Username is the name the flow was started for, as typed
	// (canonical): the pages show it back ("not you? start again"); ""
	// for flows started before it was kept.
	Username string `json:"-"`
}

// offeredJSON is how offered methods are kept in the flow (encrypted at rest).
type offeredJSON struct {
	ID   string `json:"i"`
	Type string `json:"t"`
	Hint string `json:"h"`
	Real bool   `json:"r,omitempty"`
}

// NewService builds the flows. Call Close to drain the outbox.
func NewService(o Options, d Deps) (*Service, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	if d.Directory == nil || d.Store == nil {
		return nil, errors.New("gateway: Directory and Store are required")
	}
	if d.Demo != nil && !IsLoopbackHost(o.PublicURL.Hostname()) {
		return nil, errors.New("gateway: the demo outbox is served on a loopback public URL only")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Audit == nil {
		d.Audit = d.Log
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	k, err := deriveKeys(o.SecretKey)
	if err != nil {
		return nil, err
	}
	mt, err := loadMailTemplates()
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, d: d, k: k, log: d.Log, audit: d.Audit, mails: mt, stats: newEventCounts(), sampler: newAuditSampler(o.Limits.Window),
		padStart: newPadder(o.PadFloor), padSend: newPadder(o.PadFloor), padVerify: newPadder(o.PadFloor),
		padSignIn: newPadder(o.PadFloor), padChange: newPadder(o.PadFloor)}
	s.out = newOutbox(d.Store, d.Mailer, d.SMS, d.Log, o.Outbox, s.now)
	s.out.failed = s.messageFailed
	s.out.delivered = s.messageDelivered
	if err := s.initLive(context.Background()); err != nil {
		return nil, err
	}
	s.stopSettings = make(chan struct{})
	if s.settingsFromStore() {
		go s.watchSettings(s.stopSettings)
	}
	s.out.start()
	return s, nil
}

// Close waits for the notices sent in the background, then for queued
// messages to be sent, at most OutboxDrainTimeout, and stores the
// summaries of audit events not stored one by one.
func (s *Service) Close() { s.CloseWithin(OutboxDrainTimeout) }

// CloseWithin is Close with another bound.
func (s *Service) CloseWithin(timeout time.Duration) {
	s.closeSettings.Do(func() { close(s.stopSettings) })
	s.bg.Wait()
	s.out.close(timeout)
	s.storeSummaries(context.Background(), s.sampler.flush(s.now()))
}

// messageFailed audits a message the outbox did not send: a notice the
// user never got (notice.failed) or a code (code.failed; the user can ask
// for another), with why: its code, flow or lifetime ended before it could
// be sent (expired_before_send), it could not be sent at all
// (send_failed), or the store refused to keep it (not_stored). The
// destination is not in the event, only its kind.
func (s *Service) messageFailed(m store.OutboxMessage, reason string) {
	event, purpose := messageEvent(m, "failed")
	s.record(context.Background(), Meta{RequestID: m.RequestID, ClientIP: m.ClientIP}, event, m.AccountID, "failed",
		map[string]string{"type": m.Channel, "purpose": purpose, "reason": reason})
	s.demoNotSent(m.Channel, "", purpose, reason)
}

// messageDelivered audits a message once the mail server or the SMS
// provider accepted it (code.delivered, notice.delivered): it returns the
// event to store with the message's finish (none when sampled out).
func (s *Service) messageDelivered(m store.OutboxMessage) []store.AuditEvent {
	event, purpose := messageEvent(m, "delivered")
	ev, keep := s.admitAudit(context.Background(), Meta{RequestID: m.RequestID, ClientIP: m.ClientIP}, event, m.AccountID, "success",
		map[string]string{"type": m.Channel, "purpose": purpose})
	if !keep {
		return nil
	}
	return []store.AuditEvent{ev}
}

func messageEvent(m store.OutboxMessage, what string) (event, purpose string) {
	if p, ok := strings.CutPrefix(m.Purpose, "notice:"); ok {
		return "notice." + what, p
	}
	return "code." + what, m.Purpose
}

// Queue is the outbox of every instance as this one last read it.
func (s *Service) Queue() QueueState { return *s.out.state.Load() }

// QueueDegraded reports whether the oldest pending code has waited longer
// than outbox.degraded_after (for /readyz).
func (s *Service) QueueDegraded() bool { return s.Queue().OldestCode > s.o.Outbox.DegradedAfter }

// OutboxCounts are the messages this instance sent, failed to send (each
// failed try) and found expired, by channel ("email/sent": n).
func (s *Service) OutboxCounts() map[string]int64 {
	out := map[string]int64{}
	s.out.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func (s *Service) now() time.Time { return s.d.Now().UTC() }

// canonicalUsername is the form a typed username is looked up by.
func canonicalUsername(in string) string {
	return strings.TrimSpace(norm.NFC.String(in))
}

// badUsername reports whether a canonical username can be no account's:
// empty, over 256 bytes, or holding a control or format character (NUL,
// a line break, a bidi override). Such a name is 400 invalid_request for
// every caller alike, before any budget or lookup: it depends on the
// input only, so it tells nothing about accounts.
func badUsername(name string) bool {
	if name == "" || len(name) > 256 {
		return true
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return true
		}
	}
	return false
}

// methodsAvailable is the set of method types that are both allowed by the
// decision and available (recoveryMethod.Available: a sender configured,
// a relying party, an admin list of questions; an app needs nothing).
func (s *Service) methodsAvailable(allowed []string) []string {
	var out []string
	for _, m := range allowed {
		if k, ok := methodKind(m); ok && k.Available(s) {
			out = append(out, m)
		}
	}
	return out
}

func (s *Service) decide(ctx context.Context, u *directory.User) (policy.Decision, error) {
	return Decide(ctx, s.d.Directory, s.eligibility(), u)
}

func (s *Service) dirProblem(err error) *Problem {
	switch {
	case errors.Is(err, directory.ErrUnavailable), errors.Is(err, directory.ErrCertificate):
		return problem(CodeUnavailable, err)
	default:
		return problem(CodeInternal, err)
	}
}

// record logs an audit event and stores it, or for events anyone can cause
// without a proof, counts it toward its window's summary once its kind and
// client address have their rows for the window (auditsample.go).
func (s *Service) record(ctx context.Context, m Meta, typ, account, outcome string, details map[string]string) {
	ev, keep := s.admitAudit(ctx, m, typ, account, outcome, details)
	if !keep {
		return
	}
	if err := s.d.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit event not stored", "request_id", m.RequestID, "event", typ, "error", err.Error())
	}
}

// admitAudit writes the audit line of the event and reports whether it is
// to be stored as a row of its own (the sampler's choice; the summaries
// of a window that ended are stored here).
func (s *Service) admitAudit(ctx context.Context, m Meta, typ, account, outcome string, details map[string]string) (store.AuditEvent, bool) {
	ev := s.auditEvent(m, typ, account, outcome, details)
	keep, ended := s.sampler.admit(ev)
	s.storeSummaries(ctx, ended)
	return ev, keep
}

// auditEvent writes the audit line and counts the event; the caller stores
// the event.
func (s *Service) auditEvent(m Meta, typ, account, outcome string, details map[string]string) store.AuditEvent {
	ev := s.newAuditEvent(m, typ, account, outcome, details)
	s.logAudit(ev)
	return ev
}

// newAuditEvent is the event, neither logged nor counted yet (logAudit).
func (s *Service) newAuditEvent(m Meta, typ, account, outcome string, details map[string]string) store.AuditEvent {
	return store.AuditEvent{Time: s.now(), Type: typ, RequestID: m.RequestID, ClientIP: m.ClientIP, AccountID: account, Outcome: outcome, Details: details}
}

// logAudit writes the audit line of ev and counts the event.
func (s *Service) logAudit(ev store.AuditEvent) {
	attrs := []any{"event", ev.Type, "time", ev.Time.Format(time.RFC3339Nano), "request_id", ev.RequestID, "client_ip", ev.ClientIP,
		"account_id", ev.AccountID, "outcome", ev.Outcome}
	for k, v := range ev.Details {
		attrs = append(attrs, k, v)
	}
	s.audit.Info("audit", attrs...)
	s.stats.event(ev.Type, ev.Outcome)
}

// passwordWrite is what follows a successful password write (or unlock)
// of an account, recorded by passwordWritten.
type passwordWrite struct {
	// resetKeys are the counters forgotten (the count of wrong passwords)
	resetKeys []string
	// sessions: every session of the account ends too (its flows always do)
	sessions bool
	// event and outcome are the audit event's: outcome "already_written"
	// when a completion finds that an earlier one, whose outcome was
	// unknown, had set the password
	event, outcome string
	// notice is the notice told to the account ("" for none)
	notice string
}

// passwordWritten records w for u: the counters forgotten, every flow (and
// with w.sessions every session) of the account ended, the audit event
// stored and the notices that tell the account now written to the outbox;
// in one store transaction where the store can
// (store.PasswordWriteRecorder), so that the record and those notices are
// kept or lost together. When that transaction fails, each part is tried
// again on its own: the password is written, and a session left alive is
// worse than an audit line written twice.
func (s *Service) passwordWritten(ctx context.Context, m Meta, u *directory.User, w passwordWrite) {
	ctx = context.WithoutCancel(ctx)
	ev := s.auditEvent(m, w.event, u.ID, w.outcome, nil)
	var notices []store.OutboxMessage
	if w.notice != "" {
		notices = s.notices(ctx, u, w.notice, "", m)
	}
	if rec, ok := s.d.Store.(store.PasswordWriteRecorder); ok {
		err := rec.AfterPasswordWrite(ctx, u.ID, w.resetKeys, w.sessions, ev, notices...)
		if err == nil {
			for _, msg := range notices {
				s.out.written(msg)
			}
			return
		}
		s.log.Error("recording a password write failed: trying each part alone", "request_id", m.RequestID, "event", w.event, "error", err.Error())
	}
	for _, k := range w.resetKeys {
		s.forget(s.d.Store.Reset(ctx, k))
	}
	if err := s.d.Store.DeleteFlowsForAccount(ctx, u.ID); err != nil {
		s.log.Error("deleting flows after a password write failed", "request_id", m.RequestID, "error", err.Error())
	}
	if w.sessions {
		if err := s.d.Store.DeleteSessionsForAccount(ctx, u.ID); err != nil {
			s.log.Error("deleting sessions after a password write failed", "request_id", m.RequestID, "error", err.Error())
		}
	}
	if err := s.d.Store.AppendAudit(ctx, ev); err != nil {
		s.log.Error("audit event not stored", "request_id", m.RequestID, "event", w.event, "error", err.Error())
	}
	for _, msg := range notices {
		s.out.put(ctx, msg)
	}
}

// noticeAll tells every verified channel of the account (and the directory
// mail) about event; skip excludes one method id.
func (s *Service) noticeAll(ctx context.Context, accountID, username, event, skip string, m Meta) {
	u, err := s.d.Directory.Lookup(ctx, username)
	if err != nil || u.ID != accountID {
		u = &directory.User{ID: accountID}
	}
	s.noticeUser(ctx, u, event, skip, m)
}

// Options are the service's options, defaults applied.
func (s *Service) Options() Options { return s.o }
