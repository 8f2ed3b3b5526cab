package flow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// Session kinds beside registration sessions (Kind ""): an admin console
// session, and the registration session of an admin whom self-service
// excludes (a privileged account), which may set up only the strong
// methods the console's sign-in takes.
const (
	SessionAdmin      = store.SessionAdmin
	SessionAdminEnrol = "admin_enrol"
	// SessionAdminUser is the registration session of an admin whom
	// self-service covers: the policy's methods and the console's.
	SessionAdminUser = "admin_user"
)

// adminMethods are the methods an admin proves at the console's sign-in
// besides the password (only totp is asked for there yet), and may
// register even where self-service excludes the account.
var adminMethods = []string{MethodTOTP, MethodWebAuthn}

// AdminEnabled reports whether the admin console is on (admin.groups).
func (s *Service) AdminEnabled() bool { return len(s.o.Admin.Groups) > 0 }

// isAdmin reports whether u is a member (nested) of one of admin.groups.
func (s *Service) isAdmin(ctx context.Context, u *directory.User) (bool, error) {
	if !s.AdminEnabled() {
		return false, nil
	}
	m, err := s.d.Directory.Membership(ctx, u, s.o.Admin.Groups)
	if err != nil {
		return false, err
	}
	for _, g := range s.o.Admin.Groups {
		for dn, in := range m.MemberOf {
			if in && policy.NormalizeDN(dn) == policy.NormalizeDN(g) {
				return true, nil
			}
		}
	}
	return false, nil
}

// AdminSignIn opens an admin console session for a member of admin.groups
// who proves the directory password and a code of an authenticator app
// registered in Latchkey. Every failure (unknown name, wrong password, not
// an admin, no app, wrong or replayed code, locked or disabled account) is
// the same sign_in_failed, held to the same time; a client address past
// its sign-in budget gets too_many.
func (s *Service) AdminSignIn(ctx context.Context, username, password, code string, m Meta) (store.Session, error) {
	name, err := s.adminName(username)
	if err != nil {
		return store.Session{}, err
	}
	if err := s.spendSignIn(ctx, m); err != nil {
		return store.Session{}, err
	}
	start := time.Now()
	u, reason, err := s.adminProof(ctx, name, password, code, m)
	if err != nil && errors.Is(err, directory.ErrUnavailable) {
		return store.Session{}, s.dirProblem(err)
	}
	if reason != "" || err != nil {
		account := ""
		if u != nil {
			account = u.ID
		}
		if reason == "" {
			reason = reasonOf(err)
		}
		s.record(ctx, m, "admin.sign_in", account, "failed", map[string]string{"reason": reason})
		p := problem(CodeSignInFailed, errors.New(reason))
		if errors.Is(err, errBindBudget) {
			p = problem(CodeTooMany, err)
		}
		s.padSignIn.wait(ctx, start, true) // after the answer is made, as in changeNotProven
		return store.Session{}, p
	}
	return s.openAdminSession(ctx, u, MethodTOTP, m)
}

// openAdminSession opens the console session of u, proven with method,
// and audits the sign-in.
func (s *Service) openAdminSession(ctx context.Context, u *directory.User, method string, m Meta) (store.Session, error) {
	now := s.now()
	sess := store.Session{ID: newToken(), Kind: SessionAdmin, AccountID: u.ID, Username: u.Username, CreatedAt: now, AuthAt: now,
		LastSeen: now, ExpiresAt: now.Add(s.o.Admin.SessionTTL)}
	if err := s.d.Store.CreateSession(ctx, sess); err != nil {
		return store.Session{}, storeProblem(err)
	}
	s.record(ctx, m, "admin.sign_in", u.ID, "success", map[string]string{"method": method})
	return sess, nil
}

// adminName is the canonical form of a name typed at the console's
// sign-in: not_found while the console is off, invalid_request for a name
// that can be no account's.
func (s *Service) adminName(username string) (string, error) {
	name := canonicalUsername(username)
	if !s.AdminEnabled() {
		return "", problem(CodeNotFound, nil)
	}
	if badUsername(name) {
		return "", problem(CodeInvalidRequest, nil)
	}
	return name, nil
}

// adminProof checks the three proofs in turn: the password, membership of
// admin.groups, then the app's code (a code is spent only once the
// password is proven, so a guessed password cannot burn an admin's
// codes). It returns the account (once found) and why it failed: a reason
// for the audit, or an error.
func (s *Service) adminProof(ctx context.Context, name, password, code string, m Meta) (*directory.User, string, error) {
	u, err := s.d.Directory.Lookup(ctx, name)
	if err != nil {
		if errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrAmbiguous) {
			s.decoyBind(ctx, name, password)
			s.decoyTOTP("admin:"+name, code)
			return nil, "", s.nameAttempt(ctx, name, password, err, m)
		}
		return nil, "", err
	}
	if err := s.verifyPassword(ctx, u, name, password, m); err != nil {
		s.decoyTOTP("admin:"+name, code)
		return u, "", err
	}
	admin, err := s.isAdmin(ctx, u)
	if err != nil {
		return u, "", err
	}
	if !admin {
		s.decoyTOTP("admin:"+name, code)
		return u, "not_admin", nil
	}
	ms, err := s.d.Store.ListMethods(ctx, u.ID)
	if err != nil {
		return u, "", err
	}
	i := slices.IndexFunc(ms, func(x store.Method) bool { return x.Type == MethodTOTP && x.Verified })
	if i < 0 {
		s.decoyTOTP("admin:"+name, code)
		return u, "no_strong_method", nil
	}
	// wrong codes are bounded per account (limits.code_failures_per_account
	// in limits.window), apart from the resets' count: only someone who
	// has the password gets this far, and a reset's wrong codes must not
	// lock an admin out of the console
	try, ok := s.countCodeTry(ctx, adminCodeAccount(u.ID))
	if !ok {
		s.decoyTOTP("admin:"+name, code)
		s.record(ctx, m, "blocked", u.ID, "admin_code_budget", nil)
		return u, "admin_code_budget", nil
	}
	res, err := s.checkTOTP(ctx, ms[i], code)
	switch {
	case err != nil:
		return u, "", err
	case res != totpOK:
		return u, res.reason(), nil
	}
	s.rightCodeTry(ctx, try)
	return u, "", nil
}

// adminCodeAccount is the account part of the counter of an admin's wrong
// console codes (codeFailKey of it).
func adminCodeAccount(id string) string { return "admin:" + id }

// AdminSession returns the live admin session for token, enforcing the
// console's idle timeout. Anything else (no token, a registration
// session's token, an expired one) is admin_session_required.
func (s *Service) AdminSession(ctx context.Context, token string) (store.Session, error) {
	if token == "" || !s.AdminEnabled() {
		return store.Session{}, problem(CodeAdminAuth, nil)
	}
	now := s.now()
	sess, err := s.d.Store.GetSession(ctx, token, now)
	if errors.Is(err, store.ErrNotFound) || (err == nil && sess.Kind != SessionAdmin) {
		return store.Session{}, problem(CodeAdminAuth, nil)
	}
	if err != nil {
		return store.Session{}, storeProblem(err)
	}
	if now.Sub(sess.LastSeen) > s.o.Admin.SessionIdle {
		s.forget(s.d.Store.DeleteSession(ctx, token))
		return store.Session{}, problem(CodeAdminAuth, nil)
	}
	// still an admin, with an app: a member taken out of admin.groups, or
	// whose app was removed, is out at the next request
	if err := s.stillAdmin(ctx, sess); err != nil {
		if p := asProblem(err); p.Code == CodeAdminAuth {
			s.forget(s.d.Store.DeleteSession(ctx, token))
		}
		return store.Session{}, err
	}
	if err := s.d.Store.TouchSession(ctx, token, now); errors.Is(err, store.ErrNotFound) {
		return store.Session{}, problem(CodeAdminAuth, nil)
	} else if err != nil {
		return store.Session{}, storeProblem(err)
	}
	return sess, nil
}

// stillAdmin checks, for every request of an admin session, that its
// account is the same, still a member of admin.groups and still has a
// verified authenticator app (admin_session_required otherwise; a
// directory or store that does not answer is unavailable).
func (s *Service) stillAdmin(ctx context.Context, sess store.Session) error {
	u, err := s.d.Directory.Lookup(ctx, sess.Username)
	switch {
	case errors.Is(err, directory.ErrUnavailable):
		return s.dirProblem(err)
	case err != nil || u.ID != sess.AccountID:
		return problem(CodeAdminAuth, errors.New("the account is gone or changed"))
	}
	admin, err := s.isAdmin(ctx, u)
	if err != nil {
		return s.dirProblem(err)
	}
	if !admin {
		return problem(CodeAdminAuth, errors.New("no longer an admin"))
	}
	ms, err := s.d.Store.ListMethods(ctx, u.ID)
	if err != nil {
		return storeProblem(err)
	}
	if !slices.ContainsFunc(ms, strongConsole) {
		return problem(CodeAdminAuth, errors.New("no authenticator app or passkey any more"))
	}
	return nil
}

// strongConsole reports whether m signs in to the console: a verified
// authenticator app or passkey.
func strongConsole(m store.Method) bool {
	return m.Verified && (m.Type == MethodTOTP || m.Type == MethodWebAuthn)
}

// AdminSignOut ends an admin session (as SignOut) and audits it.
func (s *Service) AdminSignOut(ctx context.Context, sess store.Session, m Meta) error {
	if err := s.SignOut(ctx, sess.ID); err != nil {
		return err
	}
	s.record(ctx, m, "admin.sign_out", sess.AccountID, "success", nil)
	return nil
}

// AuditFilter selects audit events for the console's activity page.
type AuditFilter struct {
	// Account is a username (looked up) or an account id.
	Account string
	// Event is an event type ("reset.completed") or a prefix ending in "."
	// ("reset.").
	Event   string
	Outcome string
	Since   time.Time
	Until   time.Time
	// Before is the Seq of the last event of the previous page (0: first).
	Before int64
	Limit  int
}

// AuditEntry is one audit event as the console shows it. Details hold no
// secret: no audit event ever does.
type AuditEntry struct {
	Seq       int64             `json:"seq"`
	Time      time.Time         `json:"time"`
	Event     string            `json:"event"`
	Outcome   string            `json:"outcome"`
	AccountID string            `json:"account_id,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
	ClientIP  string            `json:"client_ip,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// AuditPage is a page of events, newest first; Next is the Before of the
// following page (0: no more).
type AuditPage struct {
	Events []AuditEntry `json:"events"`
	Next   int64        `json:"next,omitempty"`
}

// Audit reads the audit for the console (a read changes nothing and is
// not audited itself).
func (s *Service) Audit(ctx context.Context, sess store.Session, f AuditFilter, m Meta) (AuditPage, error) {
	q := store.AuditQuery{Outcome: f.Outcome, Since: f.Since, Until: f.Until, BeforeSeq: f.Before, Limit: f.Limit}
	if q.Limit <= 0 || q.Limit > store.MaxAuditLimit {
		q.Limit = store.DefaultAuditLimit
	}
	if f.Event != "" {
		if f.Event[len(f.Event)-1] == '.' {
			q.TypePrefix = f.Event
		} else {
			q.Type = f.Event
		}
	}
	if f.Account != "" {
		q.AccountID = f.Account
		if u, err := s.d.Directory.Lookup(ctx, canonicalUsername(f.Account)); err == nil {
			q.AccountID = u.ID
		} else if errors.Is(err, directory.ErrUnavailable) {
			return AuditPage{}, s.dirProblem(err)
		}
	}
	evs, err := s.d.Store.ListAudit(ctx, q)
	if err != nil {
		return AuditPage{}, storeProblem(err)
	}
	page := AuditPage{Events: make([]AuditEntry, 0, len(evs))}
	for _, e := range evs {
		page.Events = append(page.Events, AuditEntry{Seq: e.Seq, Time: e.Time, Event: e.Type, Outcome: e.Outcome, AccountID: e.AccountID,
			RequestID: e.RequestID, ClientIP: e.ClientIP, Details: e.Details})
	}
	if len(evs) == q.Limit {
		page.Next = evs[len(evs)-1].Seq
	}
	return page, nil
}

// Explanation is what the console says about one user: eligible or not
// and why, the kinds of methods registered (masked hints only), and the
// last events.
type Explanation struct {
	Username  string `json:"username"`
	AccountID string `json:"account_id"`
	Found     bool   `json:"found"`
	Eligible  bool   `json:"eligible"`
	// Reason is policy's reason for a refusal (not_in_group, excluded,
	// privileged, disabled, membership_unresolved, no_methods, scope_none).
	Reason string `json:"reason,omitempty"`
	// By names the group, SID or marker that decided.
	By              string   `json:"by,omitempty"`
	Tiers           []int    `json:"tiers,omitempty"`
	MethodsRequired int      `json:"methods_required,omitempty"`
	Methods         []string `json:"methods,omitempty"`
	// Registered are the account's methods, hints masked.
	Registered []MethodView `json:"registered"`
	// Counted is how many of the verified methods count toward
	// MethodsRequired; Ready: enough to reset now.
	Counted int  `json:"counted"`
	Ready   bool `json:"ready"`
	// Admin: a member of admin.groups (another admin may remove its app
	// or passkey)
	Admin  bool         `json:"admin"`
	Events []AuditEntry `json:"events"`
}

// Explain tells an admin why a user may or may not reset.
func (s *Service) Explain(ctx context.Context, sess store.Session, username string, m Meta) (Explanation, error) {
	name := canonicalUsername(username)
	if badUsername(name) {
		return Explanation{}, problem(CodeInvalidRequest, nil)
	}
	out := Explanation{Username: name, Registered: []MethodView{}, Events: []AuditEntry{}}
	u, err := s.d.Directory.Lookup(ctx, name)
	switch {
	case errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrAmbiguous):
		s.record(ctx, m, "admin.explain", sess.AccountID, "success", map[string]string{"found": "false"})
		return out, nil
	case err != nil:
		return Explanation{}, s.dirProblem(err)
	}
	out.Found, out.AccountID, out.Username = true, u.ID, u.Username
	dec, err := s.decide(ctx, u)
	if err != nil {
		return Explanation{}, s.dirProblem(err)
	}
	out.Eligible, out.Reason, out.By, out.Tiers = dec.Eligible, dec.Reason, dec.By, dec.Tiers
	out.MethodsRequired, out.Methods = dec.MethodsRequired, dec.Methods
	ms, err := s.d.Store.ListMethods(ctx, u.ID)
	if err != nil {
		return Explanation{}, storeProblem(err)
	}
	seen := map[string]bool{}
	var kinds []string
	for _, meth := range ms {
		out.Registered = append(out.Registered, view(meth))
		if meth.Verified && !seen[countKey(meth)] {
			seen[countKey(meth)] = true
			kinds = append(kinds, meth.Type)
		}
	}
	if dec.Eligible {
		out.Counted = dec.Counted(kinds)
		out.Ready = s.ready(dec, kinds)
	}
	if out.Admin, err = s.isAdmin(ctx, u); err != nil {
		return Explanation{}, s.dirProblem(err)
	}
	page, err := s.Audit(ctx, sess, AuditFilter{Account: u.ID, Limit: 20}, m)
	if err != nil {
		return Explanation{}, err
	}
	out.Events = page.Events
	s.record(ctx, m, "admin.explain", sess.AccountID, "success", map[string]string{"account": u.ID})
	return out, nil
}

// adminAppKept refuses a new authenticator app or passkey to an admin who
// has a verified one (existing are the account's methods): it is the
// console's second proof, and one added with the password alone would
// make the password the only proof. Another admin removes the old ones in
// the console (RemoveAdminApp); then the admin sets up a new one. A
// membership that cannot be read refuses too.
func (s *Service) adminAppKept(ctx context.Context, sess store.Session, existing []store.Method) *Problem {
	if !s.AdminEnabled() || !slices.ContainsFunc(existing, strongConsole) {
		return nil
	}
	u, err := s.sessionUser(ctx, sess)
	if err != nil {
		return asProblem(err)
	}
	admin, err := s.isAdmin(ctx, u)
	if err != nil {
		return s.dirProblem(err)
	}
	if admin {
		return problem(CodeAdminAppKept, nil)
	}
	return nil
}

// RemoveAdminApp deletes the authenticator apps and passkeys of the
// account named username, for an admin who lost them: they set up a new
// one at /register, with their password. The account is told on every channel
// and its sessions end; the removal is audited with who did it.
func (s *Service) RemoveAdminApp(ctx context.Context, sess store.Session, username string, m Meta) error {
	name := canonicalUsername(username)
	if badUsername(name) {
		return problem(CodeInvalidRequest, nil)
	}
	u, err := s.d.Directory.Lookup(ctx, name)
	switch {
	case errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrAmbiguous):
		return problem(CodeMethodNotFound, err)
	case err != nil:
		return s.dirProblem(err)
	}
	// another admin's only: a user's own app is theirs to replace, and an
	// admin who removed their own could set up a new one with the password
	// alone
	if u.ID == sess.AccountID {
		p := problem(CodeInvalidRequest, errors.New("an admin's app is removed by another admin"))
		p.Text = "An admin's authenticator app or passkey is removed by another admin, not by the admin whose it is."
		return p
	}
	if admin, err := s.isAdmin(ctx, u); err != nil {
		return s.dirProblem(err)
	} else if !admin {
		return problem(CodeMethodNotFound, errors.New("not an admin"))
	}
	ms, err := s.d.Store.ListMethods(ctx, u.ID)
	if err != nil {
		return storeProblem(err)
	}
	var removed []string
	for _, meth := range ms {
		if meth.Type != MethodTOTP && meth.Type != MethodWebAuthn {
			continue
		}
		if err := s.d.Store.DeleteMethod(ctx, u.ID, meth.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeProblem(err)
		}
		removed = append(removed, meth.Type+":"+meth.ID)
	}
	if len(removed) == 0 {
		return problem(CodeMethodNotFound, errors.New("no authenticator app or passkey"))
	}
	// open flows may have proven a removed method; sessions end too
	s.forget(s.d.Store.DeleteFlowsForAccount(ctx, u.ID))
	s.forget(s.d.Store.DeleteSessionsForAccount(ctx, u.ID))
	details := map[string]string{"account": u.ID, "removed": strings.Join(removed, ",")}
	s.record(ctx, m, "admin.app_removed", sess.AccountID, "success", details)
	// and on the account's own record, for its Explain
	s.record(ctx, m, "registration.method_removed", u.ID, "by_admin", map[string]string{"by": sess.AccountID, "removed": strings.Join(removed, ",")})
	s.noticeUser(ctx, u, "method_removed", "", m)
	return nil
}
