package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/notify"
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
	stats *metrics
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
	if d.Demo != nil && !isLoopbackHost(o.PublicURL.Hostname()) {
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
	s := &Service{o: o, d: d, k: k, log: d.Log, audit: d.Audit, mails: mt, stats: newMetrics(), sampler: newAuditSampler(o.Limits.Window),
		padStart: newPadder(o.PadFloor), padSend: newPadder(o.PadFloor), padVerify: newPadder(o.PadFloor),
		padSignIn: newPadder(o.PadFloor), padChange: newPadder(o.PadFloor),
		out: newOutbox(d.Mailer, d.SMS, d.Log)}
	s.out.failed = s.messageFailed
	return s, nil
}

// Close waits for the notices sent in the background, then for queued
// messages to be sent, at most OutboxDrainTimeout, and stores the
// summaries of audit events not stored one by one.
func (s *Service) Close() { s.CloseWithin(OutboxDrainTimeout) }

// CloseWithin is Close with another bound.
func (s *Service) CloseWithin(timeout time.Duration) {
	s.bg.Wait()
	s.out.close(timeout)
	s.storeSummaries(context.Background(), s.sampler.flush(s.now()))
}

// messageFailed audits a message the outbox gave up on: a notice the user
// never got (notice.failed) or a code (code.failed; the user can ask for
// another), with why: every try failed (send_failed), the queue was full
// (outbox_full), or a shutdown's drain time ran out (shutdown). The
// destination is not in the event, only its kind.
func (s *Service) messageFailed(j job, err error) {
	typ := store.MethodEmail
	if j.sms != nil {
		typ = store.MethodSMS
	}
	event, purpose := "code.failed", j.purpose
	if strings.HasPrefix(j.purpose, "notice:") {
		event, purpose = "notice.failed", strings.TrimPrefix(j.purpose, "notice:")
	}
	reason := "send_failed"
	switch {
	case errors.Is(err, errOutboxFull):
		reason = "outbox_full"
	case errors.Is(err, errOutboxShutdown):
		reason = "shutdown"
	}
	s.record(context.Background(), Meta{RequestID: j.requestID}, event, j.account, "failed",
		map[string]string{"type": typ, "purpose": purpose, "reason": reason})
}

func (s *Service) now() time.Time { return s.d.Now().UTC() }

// canonicalUsername is the form a typed username is looked up by.
func canonicalUsername(in string) string {
	return strings.TrimSpace(norm.NFC.String(in))
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
	return Decide(ctx, s.d.Directory, s.o.Eligibility, u)
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
	ev := s.auditEvent(m, typ, account, outcome, details)
	keep, ended := s.sampler.admit(ev)
	s.storeSummaries(ctx, ended)
	if !keep {
		return
	}
	if err := s.d.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit event not stored", "request_id", m.RequestID, "event", typ, "error", err.Error())
	}
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

// passwordWritten records a successful password write (or unlock) of u:
// the counters in resetKeys forgotten, every flow (and, with sessions,
// every session) of the account ended, and the audit event stored; in one
// store transaction where the store can (store.PasswordWriteRecorder).
func (s *Service) passwordWritten(ctx context.Context, m Meta, u *directory.User, resetKeys []string, sessions bool, typ string) {
	s.passwordWrittenAs(ctx, m, u, resetKeys, sessions, typ, "success")
}

// passwordWrittenAs is passwordWritten with the audit event's outcome:
// "already_written" when a completion finds that an earlier one, whose
// outcome was unknown, had set the password.
func (s *Service) passwordWrittenAs(ctx context.Context, m Meta, u *directory.User, resetKeys []string, sessions bool, typ, outcome string) {
	ctx = context.WithoutCancel(ctx)
	ev := s.auditEvent(m, typ, u.ID, outcome, nil)
	if rec, ok := s.d.Store.(store.PasswordWriteRecorder); ok {
		if err := rec.AfterPasswordWrite(ctx, u.ID, resetKeys, sessions, ev); err != nil {
			s.log.Error("recording a password write failed", "request_id", m.RequestID, "event", typ, "error", err.Error())
		}
		return
	}
	for _, k := range resetKeys {
		s.forget(s.d.Store.Reset(ctx, k))
	}
	if err := s.d.Store.DeleteFlowsForAccount(ctx, u.ID); err != nil {
		s.log.Error("deleting flows after a password write failed", "request_id", m.RequestID, "error", err.Error())
	}
	if sessions {
		if err := s.d.Store.DeleteSessionsForAccount(ctx, u.ID); err != nil {
			s.log.Error("deleting sessions after a password write failed", "request_id", m.RequestID, "error", err.Error())
		}
	}
	if err := s.d.Store.AppendAudit(ctx, ev); err != nil {
		s.log.Error("audit event not stored", "request_id", m.RequestID, "event", typ, "error", err.Error())
	}
}

// ---------------------------------------------------------------- sign-in

// SignIn checks username and password with a real bind and, for an eligible
// user, opens a registration session. Every failure of the credentials
// (unknown user, wrong password, locked, disabled) is the same
// sign_in_failed; an ineligible user with the right password gets
// not_eligible; a client address past its sign-in budget gets too_many.
func (s *Service) SignIn(ctx context.Context, username, password string, m Meta) (store.Session, error) {
	name := canonicalUsername(username)
	if ok, p := s.spendAddress(ctx, "signin", m.ClientIP, s.o.Limits.SignInsPerIP); p != nil {
		return store.Session{}, p
	} else if !ok {
		s.record(ctx, m, "blocked", "", "sign_in_ip_budget", nil)
		// too_many, not sign_in_failed: the budget is the address's, it
		// names no account, and a real user behind a busy NAT must not be
		// told that their password is wrong
		return store.Session{}, problem(CodeTooMany, errors.New("sign-in budget of the client address spent"))
	}
	start := time.Now()
	u, err := s.d.Directory.Lookup(ctx, name)
	if err != nil && (errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrAmbiguous)) {
		s.decoyBind(ctx, name, password)
	}
	if err == nil {
		err = s.verifyPassword(ctx, u, password, m)
		if errors.Is(err, directory.ErrPasswordMustChange) || errors.Is(err, directory.ErrPasswordExpired) {
			err = nil // the password is proven; registering is still allowed
		}
	}
	if err != nil {
		if errors.Is(err, directory.ErrUnavailable) {
			return store.Session{}, s.dirProblem(err)
		}
		account := ""
		if u != nil {
			account = u.ID
		}
		s.record(ctx, m, "sign_in", account, "failed", map[string]string{"reason": reasonOf(err)})
		// a wrong password, a throttled account and an unknown name take
		// different work: every failure leaves at the same time
		s.padSignIn.wait(ctx, start, true)
		return store.Session{}, problem(CodeSignInFailed, err)
	}
	dec, err := s.decide(ctx, u)
	if err != nil {
		return store.Session{}, s.dirProblem(err)
	}
	if !dec.Eligible {
		s.record(ctx, m, "sign_in", u.ID, "not_eligible", map[string]string{"reason": dec.Reason})
		return store.Session{}, problem(CodeNotEligible, errors.New(dec.Reason))
	}
	now := s.now()
	sess := store.Session{ID: newToken(), AccountID: u.ID, Username: u.Username, CreatedAt: now, AuthAt: now, LastSeen: now,
		ExpiresAt: now.Add(s.o.SessionTTL)}
	if err := s.d.Store.CreateSession(ctx, sess); err != nil {
		return store.Session{}, storeProblem(err)
	}
	s.record(ctx, m, "sign_in", u.ID, "success", nil)
	return sess, nil
}

// forget logs a failed clean-up that the user's answer does not depend on.
func (s *Service) forget(err error) {
	if err != nil {
		s.log.Error("store clean-up failed", "error", err.Error())
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func reasonOf(err error) string {
	for _, e := range []error{directory.ErrNotFound, directory.ErrAmbiguous, directory.ErrInvalidCredentials,
		directory.ErrAccountLocked, directory.ErrAccountDisabled} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "directory: ")
		}
	}
	return "error"
}

// decoyBind does the work of a failed bind for a name that matched no
// account, so that the answer takes as long as for a wrong password.
func (s *Service) decoyBind(ctx context.Context, name, password string) {
	dn := "cn=latchkey-nobody-" + hex.EncodeToString(mac(s.k.decoy, "bind", strings.ToLower(name))[:8])
	_ = s.d.Directory.VerifyPassword(ctx, &directory.User{DN: dn}, password)
}

// Session returns the live session for token, enforcing the idle timeout.
func (s *Service) Session(ctx context.Context, token string) (store.Session, error) {
	if token == "" {
		return store.Session{}, problem(CodeSessionExpired, nil)
	}
	now := s.now()
	sess, err := s.d.Store.GetSession(ctx, token, now)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Session{}, storeProblem(err)
	}
	if err != nil {
		return store.Session{}, problem(CodeSessionExpired, nil)
	}
	if now.Sub(sess.LastSeen) > s.o.SessionIdle {
		s.forget(s.d.Store.DeleteSession(ctx, token))
		return store.Session{}, problem(CodeSessionExpired, nil)
	}
	if err := s.d.Store.TouchSession(ctx, token, now); err != nil {
		return store.Session{}, problem(CodeSessionExpired, nil)
	}
	return sess, nil
}

// SignOut ends a session.
func (s *Service) SignOut(ctx context.Context, token string) {
	if token != "" {
		s.forget(s.d.Store.DeleteSession(ctx, token))
	}
}

// Reauth re-checks the password of a signed-in user, for changes to
// recovery methods.
func (s *Service) Reauth(ctx context.Context, sess store.Session, password string, m Meta) error {
	u, err := s.sessionUser(ctx, sess)
	if err != nil {
		return err
	}
	if err := s.verifyPassword(ctx, u, password, m); err != nil &&
		!errors.Is(err, directory.ErrPasswordMustChange) && !errors.Is(err, directory.ErrPasswordExpired) {
		if errors.Is(err, directory.ErrUnavailable) {
			return s.dirProblem(err)
		}
		s.record(ctx, m, "reauth", sess.AccountID, "failed", nil)
		return problem(CodeSignInFailed, err)
	}
	if err := s.d.Store.SetSessionAuthTime(ctx, sess.ID, s.now()); err != nil {
		return problem(CodeSessionExpired, err)
	}
	return nil
}

// ReauthSession is Reauth for a browser session: like a sign-in, a
// re-authentication gives the session a new id and ends the old one (an id
// seen before cannot ride the fresh proof). Codes pending for methods not
// yet verified are bound to the old id: the user asks for a new one.
func (s *Service) ReauthSession(ctx context.Context, sess store.Session, password string, m Meta) (store.Session, error) {
	if err := s.Reauth(ctx, sess, password, m); err != nil {
		return store.Session{}, err
	}
	now := s.now()
	next := sess
	next.ID, next.AuthAt, next.LastSeen = newToken(), now, now
	if err := s.d.Store.CreateSession(ctx, next); err != nil {
		return store.Session{}, storeProblem(err)
	}
	s.forget(s.d.Store.DeleteSession(context.WithoutCancel(ctx), sess.ID))
	s.record(ctx, m, "reauth", sess.AccountID, "success", nil)
	return next, nil
}

func (s *Service) sessionUser(ctx context.Context, sess store.Session) (*directory.User, error) {
	u, err := s.d.Directory.Lookup(ctx, sess.Username)
	if err != nil {
		if errors.Is(err, directory.ErrUnavailable) {
			return nil, s.dirProblem(err)
		}
		return nil, problem(CodeSessionExpired, err)
	}
	if u.ID != sess.AccountID {
		return nil, problem(CodeSessionExpired, errors.New("account behind the username changed"))
	}
	return u, nil
}

// ---------------------------------------------------------------- methods

// hint is how a registered method is shown in a flow
// (recoveryMethod.Hint); an unknown kind as an email address.
func hint(typ, addr string) string {
	if k, ok := methodKind(typ); ok {
		return k.Hint(store.Method{Type: typ, Address: addr})
	}
	return notify.MaskEmail(addr)
}

// ownerHinter is a kind its owner sees otherwise than a flow shows it (a
// passkey's label).
type ownerHinter interface{ ownerHint(m store.Method) string }

func view(m store.Method) MethodView {
	h := hint(m.Type, m.Address)
	if k, ok := methodKind(m.Type); ok {
		if oh, ok := k.(ownerHinter); ok {
			h = oh.ownerHint(m)
		}
	}
	return MethodView{ID: m.ID, Type: m.Type, Hint: h, Verified: m.Verified, CreatedAt: m.CreatedAt}
}

// Methods lists the signed-in user's methods.
func (s *Service) Methods(ctx context.Context, sess store.Session) ([]MethodView, error) {
	ms, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return nil, storeProblem(err)
	}
	out := make([]MethodView, 0, len(ms))
	for _, m := range ms {
		out = append(out, view(m))
	}
	return out, nil
}

// AvailableMethodTypes are the method types a signed-in user may add.
func (s *Service) AvailableMethodTypes() []string { return s.methodsAvailable(s.o.Eligibility.Methods) }

func normalizeEmail(in string) (string, bool) {
	in = strings.TrimSpace(in)
	if len(in) > 254 || strings.ContainsAny(in, "\r\n<>\"(),;:") {
		return "", false
	}
	a, err := mail.ParseAddress(in)
	if err != nil || a.Name != "" || a.Address != in {
		return "", false
	}
	at := strings.LastIndexByte(in, '@')
	if at < 1 || !strings.Contains(in[at+1:], ".") {
		return "", false
	}
	return in[:at] + "@" + strings.ToLower(in[at+1:]), true
}

// AddMethod registers a new, unverified method and sends a code to it.
func (s *Service) AddMethod(ctx context.Context, sess store.Session, typ, address string, m Meta) (MethodView, error) {
	if s.now().Sub(sess.AuthAt) > s.o.ReauthWindow {
		return MethodView{}, problem(CodeReauthRequired, nil)
	}
	if !slices.Contains(s.AvailableMethodTypes(), typ) {
		return MethodView{}, problem(CodeMethodType, nil)
	}
	ch, ok := channelOf(typ)
	if !ok {
		// an app (EnrolTOTP: the seed must reach the user), a passkey
		// (BeginPasskey), security questions (SetQuestions)
		return MethodView{}, problem(CodeInvalidRequest, errors.New("a method of type "+typ+" is not added with an address"))
	}
	addr, p := ch.normalize(s, address)
	if p != nil {
		return MethodView{}, p
	}
	existing, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return MethodView{}, storeProblem(err)
	}
	for _, e := range existing {
		if e.Type == typ && strings.EqualFold(e.Address, addr) {
			if e.Verified {
				return MethodView{}, problem(CodeMethodExists, nil)
			}
			// the same unverified method again: send a fresh code
			if err := s.sendRegistrationCode(ctx, sess, e, m); err != nil {
				return MethodView{}, err
			}
			return view(e), nil
		}
	}
	if len(existing) >= s.o.MaxMethods {
		return MethodView{}, problem(CodeMethodLimit, nil)
	}
	meth := store.Method{ID: newID(), AccountID: sess.AccountID, Type: typ, Address: addr, CreatedAt: s.now()}
	// budgets before anything is stored: a throttled request leaves no
	// unverified method behind
	if err := s.spendRegistrationSend(ctx, sess, meth, m); err != nil {
		return MethodView{}, err
	}
	if err := s.addMethodWithin(ctx, meth, s.o.MaxMethods); err != nil {
		return MethodView{}, err
	}
	s.record(ctx, m, "registration.method_added", sess.AccountID, "pending", map[string]string{"method": meth.ID, "type": typ})
	if err := s.issueRegistrationCode(ctx, sess, meth, m); err != nil {
		return MethodView{}, err
	}
	return view(meth), nil
}

// addMethodWithin stores meth unless the account already has limit
// methods: the count and the insert are one atomic step in the store, so
// concurrent additions cannot pass MaxMethods (the lists read before are
// only a fast answer).
func (s *Service) addMethodWithin(ctx context.Context, meth store.Method, limit int) error {
	err := s.d.Store.AddMethodWithin(ctx, meth, limit)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrLimit):
		return problem(CodeMethodLimit, nil)
	default:
		return storeProblem(err)
	}
}

// regFlowID derives the registration flow of one method in one session:
// unguessable without the key, nothing extra to store.
func (s *Service) regFlowID(sessID, methodID string) string {
	return hex.EncodeToString(mac(s.k.register, sessID, methodID))
}

func regPurpose(typ string) string { return "register-" + typ }

// ResendMethodCode sends a new code for an unverified method.
func (s *Service) ResendMethodCode(ctx context.Context, sess store.Session, methodID string, m Meta) error {
	meth, err := s.d.Store.GetMethod(ctx, sess.AccountID, methodID)
	if err != nil {
		return problem(CodeMethodNotFound, err)
	}
	if meth.Verified {
		return nil
	}
	if _, ok := channelOf(meth.Type); !ok {
		return problem(CodeInvalidRequest, errors.New("nothing to send to a method of type "+meth.Type))
	}
	return s.sendRegistrationCode(ctx, sess, meth, m)
}

// sendRegistrationCode spends the send budgets for meth, then issues a code
// and sends it to the method's address as stored. Over budget nothing
// changes: the live code (if any) stays as it is.
func (s *Service) sendRegistrationCode(ctx context.Context, sess store.Session, meth store.Method, m Meta) error {
	if err := s.spendRegistrationSend(ctx, sess, meth, m); err != nil {
		return err
	}
	return s.issueRegistrationCode(ctx, sess, meth, m)
}

// spendRegistrationSend counts one send to meth against the account's and
// the destination's budgets (and the global SMS budget).
func (s *Service) spendRegistrationSend(ctx context.Context, sess store.Session, meth store.Method, m Meta) error {
	if !s.hit(ctx, "send:acct:"+sess.AccountID, s.o.Limits.SendsPerAccount, s.o.Limits.Window) || !s.sendAllowed(ctx, meth) {
		s.record(ctx, m, "blocked", sess.AccountID, "send_budget", map[string]string{"type": meth.Type})
		return problem(CodeTooMany, nil)
	}
	return nil
}

func (s *Service) issueRegistrationCode(ctx context.Context, sess store.Session, meth store.Method, m Meta) error {
	now := s.now()
	flowID := s.regFlowID(sess.ID, meth.ID)
	if _, err := s.d.Store.GetFlow(ctx, flowID, now); err != nil {
		f, err := liveFlow{Flow: store.Flow{ID: flowID, Kind: store.FlowRegister, AccountID: sess.AccountID, Required: 1,
			CreatedAt: now, ExpiresAt: now.Add(s.o.FlowTTL)}, st: flowState{Method: meth.ID}}.row()
		if err != nil {
			return problem(CodeInternal, err)
		}
		if err := s.d.Store.CreateFlow(ctx, f); err != nil && !errors.Is(err, store.ErrConflict) {
			return storeProblem(err)
		}
	}
	code := newCode(s.o.CodeLength)
	c := store.Code{FlowID: flowID, Purpose: regPurpose(meth.Type), MethodID: meth.ID, AccountID: sess.AccountID,
		Hash: s.k.codeHash(flowID, regPurpose(meth.Type), meth.ID, code), ExpiresAt: now.Add(s.o.CodeTTL)}
	if err := s.d.Store.IssueCode(ctx, c); err != nil {
		return storeProblem(err)
	}
	// the destination is read from the store, never from the request
	stored, err := s.d.Store.GetMethod(ctx, sess.AccountID, meth.ID)
	if err != nil {
		return storeProblem(err)
	}
	if j, ok := s.codeMessage(stored, "register", code, m); ok {
		s.out.enqueue(j)
	}
	return nil
}

// VerifyMethod checks the code sent to a new method and marks it verified.
func (s *Service) VerifyMethod(ctx context.Context, sess store.Session, methodID, code string, m Meta) (MethodView, error) {
	meth, err := s.d.Store.GetMethod(ctx, sess.AccountID, methodID)
	if err != nil {
		return MethodView{}, problem(CodeMethodNotFound, err)
	}
	if meth.Verified {
		return view(meth), nil
	}
	flowID := s.regFlowID(sess.ID, meth.ID)
	code = normalizeCode(code)
	failKey := "codefail:acct:" + sess.AccountID
	if !s.hit(ctx, failKey, s.o.Limits.CodeFailuresPerAccount, s.o.Limits.Window) {
		s.record(ctx, m, "blocked", sess.AccountID, "code_budget", nil)
		return MethodView{}, problem(CodeTooMany, nil)
	}
	kind, _ := methodKind(meth.Type)
	sc, self := kind.(selfCoded)
	if self {
		reason, ok, err := sc.checkEnrolment(ctx, s, meth, code)
		if err != nil {
			return MethodView{}, storeProblem(err)
		}
		if !ok {
			s.record(ctx, m, "registration.method_verified", sess.AccountID, "failed", map[string]string{"method": meth.ID, "reason": reason})
			return MethodView{}, problem(CodeInvalidCode, nil)
		}
	} else {
		err = s.d.Store.RedeemCode(ctx, flowID, regPurpose(meth.Type), meth.ID, s.k.codeHash(flowID, regPurpose(meth.Type), meth.ID, code), s.o.MaxTries, s.now())
		if err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCodeMismatch) {
				s.record(ctx, m, "registration.method_verified", sess.AccountID, "failed", map[string]string{"method": meth.ID})
				return MethodView{}, problem(CodeInvalidCode, nil)
			}
			return MethodView{}, storeProblem(err)
		}
	}
	now := s.now()
	if err := s.d.Store.VerifyMethod(ctx, sess.AccountID, meth.ID, now); err != nil {
		return MethodView{}, storeProblem(err)
	}
	meth.Verified, meth.VerifiedAt = true, now
	s.record(ctx, m, "registration.method_verified", sess.AccountID, "success", map[string]string{"method": meth.ID, "type": meth.Type})
	if self {
		sc.enrolled(ctx, s, meth, m)
	} else {
		s.forget(s.d.Store.DeleteFlow(ctx, flowID))
	}
	// one address or number on several accounts is how a stolen session or
	// password is turned into lasting access (or a helpdesk phone reused):
	// flagged for the admins, without telling the user who else has it
	if self {
		// a seed is random and never shared: nothing to compare
	} else if n, err := s.d.Store.CountAccountsByAddress(ctx, meth.Type, meth.Address); err == nil && n > 1 {
		s.record(ctx, m, "registration.shared_destination", sess.AccountID, "flagged",
			map[string]string{"method": meth.ID, "type": meth.Type, "accounts": strconv.Itoa(n)})
	}
	s.noticeAll(ctx, sess.AccountID, sess.Username, "method_added", meth.ID, m)
	return view(meth), nil
}

// RemoveMethod deletes a method after the password is entered again, and
// tells every channel, the removed one included.
func (s *Service) RemoveMethod(ctx context.Context, sess store.Session, methodID, password string, m Meta) error {
	if err := s.Reauth(ctx, sess, password, m); err != nil {
		return err
	}
	meth, err := s.d.Store.GetMethod(ctx, sess.AccountID, methodID)
	if err != nil {
		return problem(CodeMethodNotFound, err)
	}
	s.noticeAll(ctx, sess.AccountID, sess.Username, "method_removed", "", m)
	if err := s.d.Store.DeleteMethod(ctx, sess.AccountID, methodID); err != nil {
		return storeProblem(err)
	}
	// open flows may have proven the removed method: end them
	s.forget(s.d.Store.DeleteFlowsForAccount(ctx, sess.AccountID))
	s.record(ctx, m, "registration.method_removed", sess.AccountID, "success", map[string]string{"method": meth.ID, "type": meth.Type})
	return nil
}

// ---------------------------------------------------------------- reset and unlock

// flowBinding is what a flow's codes are bound to: a secret fixed for the
// flow's life (its id changes when a method is proven; live codes must
// survive that). Flows from before the binding existed use their id.
func flowBinding(f liveFlow) string {
	if b := f.st.Bind; b != "" {
		return b
	}
	return f.ID
}

func toJSON(o []Offered) []offeredJSON {
	out := make([]offeredJSON, len(o))
	for i, m := range o {
		out[i] = offeredJSON{ID: m.ID, Type: m.Type, Hint: m.Hint, Real: m.real}
	}
	return out
}

// flowView is what a flow shows: its methods in kindOrder, whoever asks.
// Until a method is proven it shows the policy's base number of methods
// required, whatever the account's tier: a stricter tier (administrators,
// IT staff) would otherwise tell anyone who types a name that the account
// exists and what it is. The true number shows from the first proof on (as
// remaining methods).
func (s *Service) flowView(f liveFlow, offered []Offered) FlowView {
	required := f.Required
	if len(f.Verified) == 0 {
		required = s.baseRequired()
	}
	// one order for every list, real or fake: see kindOrder
	methods := slices.Clone(offered)
	sortKinds(methods, func(o Offered) string { return o.Type })
	v := FlowView{ID: f.ID, Kind: f.Kind, Required: required, Methods: methods, Verified: append([]string{}, f.Verified...)}
	v.Remaining = max(required-len(f.Verified), 0)
	if len(f.Verified) > 0 {
		v.Remaining = flowRemaining(f, offered)
		v.Needs = kindsMissing(f, offered)
	}
	return v
}

// flowRemaining is how many more methods a flow of a real account needs
// (FlowView.Remaining once a method is proven): security questions count
// as the account's tiers let them (policy.Decision.Remaining).
func flowRemaining(f liveFlow, offered []Offered) int {
	return max(f.Required-len(f.Verified), kindsRemaining(f, offered))
}

func (s *Service) baseRequired() int { return max(s.o.Eligibility.MethodsRequired, 1) }

// offeredOf is the methods flow f offers, a copy the caller may change.
func offeredOf(f liveFlow) []Offered { return slices.Clone(f.st.Offered) }

func (s *Service) loadFlow(ctx context.Context, kind, id string) (liveFlow, error) {
	if len(id) < store.MinSecretIDLen || len(id) > 128 {
		return liveFlow{}, problem(CodeFlowExpired, nil)
	}
	f, err := s.d.Store.GetFlow(ctx, id, s.now())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		// the store does not answer: the flow is not lost, try later
		return liveFlow{}, storeProblem(err)
	}
	if err != nil || f.Kind != kind {
		return liveFlow{}, problem(CodeFlowExpired, err)
	}
	return s.readFlow(f)
}

// readFlow decodes the state of the stored flow f; a state that does not
// decode is an internal error, logged.
func (s *Service) readFlow(f store.Flow) (liveFlow, error) {
	lf, err := readFlow(f)
	if err != nil {
		s.log.Error("a flow's state does not decode", "error", err.Error())
		return liveFlow{}, problem(CodeInternal, err)
	}
	return lf, nil
}

// Flow returns the current state of a flow.
func (s *Service) Flow(ctx context.Context, kind, id string) (FlowView, error) {
	f, err := s.loadFlow(ctx, kind, id)
	if err != nil {
		return FlowView{}, err
	}
	return s.flowView(f, offeredOf(f)), nil
}

// smsAllowed spends the global hourly SMS budget and that of the number's
// block, for one text message to number (a code or a notice).
func (s *Service) smsAllowed(ctx context.Context, number string) bool {
	if !s.hit(ctx, "sms:global", s.o.Limits.SMSPerHour, time.Hour) {
		s.log.Warn("the hourly SMS budget is spent")
		return false
	}
	if p := smsPrefix(number); !s.hit(ctx, "sms:prefix:"+p, s.o.Limits.SMSPerPrefixPerHour, time.Hour) {
		s.log.Warn("the hourly SMS budget of a number block is spent", "prefix", p)
		return false
	}
	return true
}

// smsPrefix is the block a number belongs to for the velocity budget: the
// country code and the first digits, six digits in all.
func smsPrefix(e164 string) string {
	d := strings.TrimPrefix(store.NormalizeAddress(store.MethodSMS, e164), "+")
	return "+" + d[:min(len(d), 6)]
}

// partialNoticeAfter is the number of wrong codes, after a first method was
// proven in the flow, at which the user is told (security notes H2).
const partialNoticeAfter = 3

// partialFailure counts a wrong code in a flow where one method is already
// proven and more are needed: someone holds one of the user's methods and
// not the other. At partialNoticeAfter such failures the user is told, once
// per flow, on every channel.
func (s *Service) partialFailure(ctx context.Context, f liveFlow, m Meta) {
	if f.AccountID == "" || len(f.Verified) == 0 || flowRemaining(f, offeredOf(f)) == 0 {
		return
	}
	f.st.PartialFailures++
	n := f.st.PartialFailures
	ctx = context.WithoutCancel(ctx)
	if err := s.updateFlow(ctx, f); err != nil {
		return // a concurrent try updated the flow: it counts instead
	}
	if n != partialNoticeAfter {
		return
	}
	s.record(ctx, m, f.Kind+".partial_failure", f.AccountID, "notified", nil)
	if u, err := s.flowUser(ctx, f); err == nil {
		s.noticeUser(ctx, u, "partial_failure", "", m)
	}
}

// PasswordRules is what the password page shows before the user types.
type PasswordRules struct {
	Local     []Violation `json:"local"`
	Directory []string    `json:"directory"`
}

// FlowPasswordRules describes the rules for the flow's account, once the
// methods are verified.
func (s *Service) FlowPasswordRules(ctx context.Context, flowID string) (PasswordRules, error) {
	f, err := s.loadFlow(ctx, store.FlowReset, flowID)
	if err != nil {
		return PasswordRules{}, err
	}
	if f.AccountID == "" || len(f.Verified) == 0 || flowRemaining(f, offeredOf(f)) > 0 {
		return PasswordRules{}, problem(CodeNotVerified, nil)
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return PasswordRules{}, err
	}
	return s.passwordRules(ctx, u), nil
}

func (s *Service) passwordRules(ctx context.Context, u *directory.User) PasswordRules {
	var r PasswordRules
	for _, req := range s.o.Password.Describe() {
		r.Local = append(r.Local, Violation{Code: req.Code, Message: requirementText(req.Code, req.Params)})
	}
	if u != nil {
		if p, err := s.d.Directory.EffectivePolicy(ctx, u); err == nil && p.Known {
			r.Directory = directoryRuleTexts(p)
		}
	}
	return r
}

func (s *Service) flowUser(ctx context.Context, f liveFlow) (*directory.User, error) {
	u, err := s.d.Directory.Refresh(ctx, &directory.User{DN: f.st.DN})
	if err != nil {
		if errors.Is(err, directory.ErrUnavailable) {
			return nil, s.dirProblem(err)
		}
		return nil, problem(CodeFlowExpired, err)
	}
	if u.ID != f.AccountID {
		return nil, problem(CodeFlowExpired, errors.New("account changed during the flow"))
	}
	return u, nil
}

// CompleteFlow finishes a verified flow: a reset writes the new password
// as the service account (policy enforced by the directory); an unlock
// clears the lockout. Eligibility is checked again first.
func (s *Service) CompleteFlow(ctx context.Context, kind, flowID, password string, m Meta) error {
	f, err := s.loadFlow(ctx, kind, flowID)
	if err != nil {
		return err
	}
	if f.AccountID == "" || len(f.Verified) < f.Required {
		s.record(ctx, m, kind+".completed", f.AccountID, "not_verified", nil)
		return problem(CodeNotVerified, nil)
	}
	if s.o.CoolingOff > 0 {
		old := false
		for _, id := range f.Verified {
			// security questions are never what makes a proof old enough
			if meth, err := s.d.Store.GetMethod(ctx, f.AccountID, id); err == nil && s.now().Sub(meth.VerifiedAt) >= s.o.CoolingOff && strongKind(meth.Type) {
				old = true
			}
		}
		if !old {
			s.record(ctx, m, kind+".completed", f.AccountID, "method_too_new", nil)
			return problem(CodeMethodTooNew, nil)
		}
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return err
	}
	dec, err := s.decide(ctx, u)
	if err != nil {
		return s.dirProblem(err)
	}
	if !dec.Eligible {
		s.record(ctx, m, kind+".completed", u.ID, "not_eligible", map[string]string{"reason": dec.Reason})
		return problem(CodeNotEligible, errors.New(dec.Reason))
	}
	// The proofs must still satisfy today's policy: enough distinct methods
	// for the user's current tier, each still registered, verified and allowed.
	// An authenticator app counts once, however many were proven, and so
	// do the passkeys of an account.
	// Two addresses of one mailbox count once (mailboxKey). A method
	// verified in the cooling-off before the password was last changed,
	// anywhere, counts no more: it may be an attacker's, added with the
	// password the user has since replaced (staleMethod).
	allowed, once := s.methodsAvailable(dec.Methods), map[string]bool{}
	var kinds []string
	old := s.o.CoolingOff <= 0
	for _, id := range f.Verified {
		if meth, err := s.d.Store.GetMethod(ctx, f.AccountID, id); err == nil && meth.Verified && slices.Contains(allowed, meth.Type) &&
			!s.staleMethod(meth, u) {
			key := countKey(meth)
			if once[key] {
				continue
			}
			once[key] = true
			kinds = append(kinds, meth.Type)
			old = old || (strongKind(meth.Type) && s.now().Sub(meth.VerifiedAt) >= s.o.CoolingOff)
		}
	}
	// security questions do not count in a tier requiring a kind
	if dec.Counted(kinds) < max(f.Required, dec.MethodsRequired) {
		s.record(ctx, m, kind+".completed", u.ID, "not_verified", nil)
		return problem(CodeNotVerified, nil)
	}
	if !old {
		s.record(ctx, m, kind+".completed", u.ID, "method_too_new", nil)
		return problem(CodeMethodTooNew, nil)
	}
	// security questions alone, or no method of a kind a tier requires
	if p := kindsProblem(dec, kinds); p != nil {
		s.record(ctx, m, kind+".completed", u.ID, p.Code, nil)
		return p
	}
	writing := s.writing(f)
	// An earlier completion of this flow whose outcome is unknown (its
	// directory write timed out, or its instance stopped between the write
	// and recording it) may have set the password already. The directory
	// says so: the time the password was last set has moved since that
	// completion read it. Then the flow is done and nothing is written a
	// second time.
	if kind == store.FlowReset && passwordMoved(f, u) {
		// the earlier completion may never record it (it is gone, or its
		// answer was lost): whichever gets there first does
		s.recordWrite(ctx, m, u, f, kind, "already_written")
		return problem(CodeAlreadyCompleted, errors.New("an earlier completion set the password"))
	}
	if kind == store.FlowReset {
		if vs := s.o.Password.Check(password, policy.Context{Username: u.Username, DisplayName: u.DisplayName, Email: u.Mail}); len(vs) > 0 {
			p := problem(CodePasswordRejected, nil)
			for _, v := range vs {
				p.Violations = append(p.Violations, Violation{Code: v.Code, Message: violationText(v.Code, v.Params)})
			}
			return p
		}
	}
	// Claim the flow: of concurrent completions exactly one proceeds to
	// the directory write.
	if writing {
		return problem(CodeFlowExpired, errors.New("flow is being completed"))
	}
	f.st.Writing = s.now()
	// what the directory says of the password before the write, in the
	// directory's own clock, kept with the claim (see passwordMoved)
	if kind == store.FlowReset {
		before := formatPasswordSet(u.Status.PasswordChanged)
		f.st.PasswordSetBefore = &before
	}
	if err := s.updateFlow(ctx, f); err != nil {
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return storeProblem(err)
		}
		return problem(CodeFlowExpired, err)
	}
	f.Version++
	if kind == store.FlowReset {
		err = s.d.Directory.SetPassword(ctx, u, password, directory.SetOptions{Unlock: s.o.UnlockOnReset})
	} else {
		err = s.d.Directory.Unlock(ctx, u)
	}
	if err != nil {
		f.st.Writing = time.Time{}
		if !directory.MayHaveApplied(err) {
			// refused: nothing was written, no later check is needed
			f.st.PasswordSetBefore = nil
		}
		if uerr := s.updateFlow(context.WithoutCancel(ctx), f); uerr != nil {
			s.log.Error("releasing a flow failed", "request_id", m.RequestID, "error", uerr.Error())
		}
		s.record(ctx, m, kind+".completed", u.ID, "refused", map[string]string{"reason": dirReason(err)})
		return s.writeProblem(err)
	}
	s.recordWrite(ctx, m, u, f, kind, "success")
	return nil
}

// staleMethod reports whether meth was verified within the cooling-off
// before the directory's last change of u's password (security notes:
// methods added before a password change). The change may have been made
// anywhere (Windows, another tool, this gateway): the method was added
// with a password that has since been replaced, possibly by the user
// taking their account back. Such a method never counts again; the user
// removes it and adds it anew.
func (s *Service) staleMethod(meth store.Method, u *directory.User) bool {
	changed := u.Status.PasswordChanged
	if s.o.CoolingOff <= 0 || changed.IsZero() || meth.VerifiedAt.IsZero() {
		return false
	}
	return !meth.VerifiedAt.After(changed) && changed.Sub(meth.VerifiedAt) < s.o.CoolingOff
}

// mailboxKey is the mailbox an email address reaches, for counting methods
// toward methods_required: the local part without a "+tag", case folded,
// and for gmail.com and googlemail.com (one provider) without dots.
func mailboxKey(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at+1:]
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	if domain == "googlemail.com" {
		domain = "gmail.com"
	}
	if domain == "gmail.com" {
		local = strings.ReplaceAll(local, ".", "")
	}
	return local + "@" + domain
}

// recordWrite records the directory write of flow f once: of the
// completions that get here for one flow (the writer, and a retry that
// found the password already moved) exactly one goes on, and that one
// ends every open flow and session of the account, audits with outcome
// and tells the user. The claim is a counter of its own, keyed by the
// flow's binding secret, not the flow row: whatever happened to the flow
// during the write (updated, rotated, expired, deleted), the write is
// recorded.
func (s *Service) recordWrite(ctx context.Context, m Meta, u *directory.User, f liveFlow, kind, outcome string) {
	if f.st.Recorded != "" {
		return // recorded by a version that marked the flow
	}
	ctx = context.WithoutCancel(ctx)
	if n, err := s.d.Store.Hit(ctx, "recorded:"+flowBinding(f), recordedWindow, recordedAt(f)); err != nil {
		// the store is in trouble: record all the same, as far as it goes
		s.log.Error("claiming the record of a write failed", "request_id", m.RequestID, "error", err.Error())
	} else if n > 1 {
		return // another completion recorded it
	}
	event := "unlocked"
	if kind == store.FlowReset {
		event = "password_reset"
	}
	s.passwordWrittenAs(ctx, m, u, nil, kind == store.FlowReset, kind+".completed", outcome)
	s.noticeUser(ctx, u, event, "", m)
}

// recordedWindow is the counter window of the "recorded" claim: every
// completion of a flow counts in the window that holds recordedAt, which
// ends a day or more after the flow began, long after the flow and any
// write of it.
const recordedWindow = 48 * time.Hour

// recordedAt is the time every claim to record f is counted at: fixed
// for the flow (its creation time never changes), so that its claims
// meet in one window.
func recordedAt(f liveFlow) time.Time { return f.CreatedAt.Add(recordedWindow / 2) }

// writing reports whether a completion's claim on f is live: its
// directory write may be under way.
func (s *Service) writing(f liveFlow) bool {
	return !f.st.Writing.IsZero() && s.now().Sub(f.st.Writing) < writeLease
}

// proofClosed is why flow f takes no more proofs or challenges, or nil:
// a completion is writing the password (its claim is live). A proof or a
// challenge then could only change a flow whose password is being
// written. Only a real, proven flow is ever claimed (a decoy never is),
// so the refusal tells nothing of the name. A flow whose proofs already
// add up still takes more: the completion may refuse one of them (too
// new, or of a kind that does not count) and ask for another.
func (s *Service) proofClosed(f liveFlow) *Problem {
	if s.writing(f) {
		return problem(CodeFlowExpired, errors.New("flow is being completed"))
	}
	return nil
}

// writeLease is how long a completion's claim on its flow holds off
// another completion: longer than any directory write may take.
const writeLease = time.Minute

// passwordMoved reports whether the password of u was set after an
// earlier completion of f read its last-set time: "pw_set_before", kept
// with the claim and still there when that completion's outcome is
// unknown. Both times are the directory's (pwdChangedTime on OpenLDAP,
// pwdLastSet on Active Directory), so the clocks of gateway and directory
// never meet. A directory that keeps no such time (OpenLDAP without
// ppolicy) cannot tell, and the flow writes again.
func passwordMoved(f liveFlow, u *directory.User) bool {
	before := f.st.PasswordSetBefore
	if before == nil || u.Status.PasswordChanged.IsZero() {
		return false
	}
	return formatPasswordSet(u.Status.PasswordChanged) != *before
}

func formatPasswordSet(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func dirReason(err error) string {
	if r := directory.ReasonOf(err); r != directory.ReasonNone {
		return string(r)
	}
	return reasonOf(err)
}

func (s *Service) writeProblem(err error) *Problem {
	switch {
	case errors.Is(err, directory.ErrPolicyRejected):
		p := problem(CodePasswordRejected, err)
		r := directory.ReasonOf(err)
		p.Violations = []Violation{{Code: "directory_" + string(r), Message: directoryReasonText(r)}}
		return p
	case errors.Is(err, directory.ErrAccountDisabled):
		return problem(CodeNotEligible, err)
	case errors.Is(err, directory.ErrUnavailable):
		return problem(CodeUnavailable, err)
	default:
		s.log.Error("directory refused a write", "error", err.Error())
		return problem(CodeInternal, err)
	}
}

// ---------------------------------------------------------------- change

// Change changes a password as the user (old and new). Unknown user, wrong
// old password, locked or disabled are one sign_in_failed.
func (s *Service) Change(ctx context.Context, username, oldPassword, newPassword string, m Meta) error {
	name := canonicalUsername(username)
	if ok, p := s.spendAddress(ctx, "signin", m.ClientIP, s.o.Limits.SignInsPerIP); p != nil {
		return p
	} else if !ok {
		s.record(ctx, m, "blocked", "", "sign_in_ip_budget", nil)
		return problem(CodeTooMany, errors.New("sign-in budget of the client address spent")) // as in SignIn
	}
	start := time.Now()
	u, err := s.d.Directory.Lookup(ctx, name)
	if err != nil {
		if errors.Is(err, directory.ErrUnavailable) {
			return s.dirProblem(err)
		}
		s.decoyBind(ctx, name, oldPassword)
		s.record(ctx, m, "change.completed", "", "failed", nil)
		s.padChange.wait(ctx, start, true)
		return problem(CodeSignInFailed, err)
	}
	// The old password is proven first, within the account's budget of
	// wrong passwords, by the user's bind that also makes the change; the
	// gateway's own rules are checked only then, so that nothing tells an
	// unknown name from a known one to someone who does not know the
	// password.
	proven := false
	err = errors.New("empty password")
	if oldPassword != "" && s.bindAttempt(ctx, u, m) {
		err = s.d.Directory.ChangePassword(ctx, u, oldPassword, newPassword, func() error {
			// the count of wrong passwords is cleared after the write
			// (with the rest of the request's store writes), or below
			// when the write is refused: not while the user's
			// connection is held
			proven = true
			if vs := s.o.Password.Check(newPassword, policy.Context{Username: u.Username, DisplayName: u.DisplayName, Email: u.Mail}); len(vs) > 0 {
				p := problem(CodePasswordRejected, nil)
				for _, v := range vs {
					p.Violations = append(p.Violations, Violation{Code: v.Code, Message: violationText(v.Code, v.Params)})
				}
				return p
			}
			return nil
		})
	}
	if proven && err != nil {
		s.bindProven(ctx, u)
	}
	switch {
	case err == nil:
	case !proven:
		if errors.Is(err, directory.ErrUnavailable) {
			return s.dirProblem(err)
		}
		if errors.Is(err, directory.ErrPasswordExpired) {
			s.bindProven(ctx, u) // the directory says so only to the right password
		}
		s.record(ctx, m, "change.completed", u.ID, "failed", map[string]string{"reason": reasonOf(err)})
		s.padChange.wait(ctx, start, true)
		return problem(CodeSignInFailed, err)
	default:
		var p *Problem
		if errors.As(err, &p) {
			return p // the gateway's rules
		}
		s.record(ctx, m, "change.completed", u.ID, "refused", map[string]string{"reason": dirReason(err)})
		if errors.Is(err, directory.ErrPolicyRejected) || errors.Is(err, directory.ErrUnavailable) {
			return s.writeProblem(err)
		}
		return problem(CodeSignInFailed, err)
	}
	ctx = context.WithoutCancel(ctx)
	s.passwordWritten(ctx, m, u, []string{bindKey(u)}, true, "change.completed")
	s.noticeUser(ctx, u, "password_changed", "", m)
	return nil
}

// ---------------------------------------------------------------- messages

// noticeAll tells every verified channel of the account (and the directory
// mail) about event; skip excludes one method id.
func (s *Service) noticeAll(ctx context.Context, accountID, username, event, skip string, m Meta) {
	u, err := s.d.Directory.Lookup(ctx, username)
	if err != nil || u.ID != accountID {
		u = &directory.User{ID: accountID}
	}
	s.noticeUser(ctx, u, event, skip, m)
}
