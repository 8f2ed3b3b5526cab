package flow

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/store"
)

// SignIn checks username and password with a real bind and, for an eligible
// user, opens a registration session. Every failure of the credentials
// (unknown user, wrong password, locked, disabled) is the same
// sign_in_failed; an ineligible user with the right password gets
// not_eligible; a client address past its sign-in budget gets too_many.
func (s *Service) SignIn(ctx context.Context, username, password string, m Meta) (store.Session, error) {
	name := canonicalUsername(username)
	if badUsername(name) && name != "" {
		return store.Session{}, problem(CodeInvalidRequest, nil)
	}
	if err := s.spendSignIn(ctx, m); err != nil {
		return store.Session{}, err
	}
	start := time.Now()
	u, err := s.d.Directory.Lookup(ctx, name)
	if err != nil && (errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrAmbiguous)) {
		s.decoyBind(ctx, name, password)
		err = s.nameAttempt(ctx, name, password, err, m)
	}
	if err == nil {
		err = s.verifyPassword(ctx, u, name, password, m)
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
		p := bindFailure(err) // made before the hold, as in changeNotProven
		s.padSignIn.wait(ctx, start, true)
		return store.Session{}, p
	}
	dec, err := s.decide(ctx, u)
	if err != nil {
		return store.Session{}, s.dirProblem(err)
	}
	kind := ""
	if !dec.Eligible {
		// an admin whom self-service excludes (a privileged account) may
		// still set up what the console's sign-in asks for
		if admin, err := s.isAdmin(ctx, u); err != nil {
			return store.Session{}, s.dirProblem(err)
		} else if !admin || len(s.methodsAvailable(adminMethods)) == 0 {
			s.record(ctx, m, "sign_in", u.ID, "not_eligible", map[string]string{"reason": dec.Reason})
			return store.Session{}, problem(CodeNotEligible, errors.New(dec.Reason))
		}
		kind = SessionAdminEnrol
	} else if s.AdminEnabled() {
		// an admin may add the console's methods too; a membership that
		// cannot be read only leaves them out
		if admin, err := s.isAdmin(ctx, u); err == nil && admin {
			kind = SessionAdminUser
		}
	}
	now := s.now()
	sess := store.Session{ID: newToken(), Kind: kind, AccountID: u.ID, Username: u.Username, CreatedAt: now, AuthAt: now, LastSeen: now,
		ExpiresAt: now.Add(s.o.SessionTTL)}
	if err := s.d.Store.CreateSession(ctx, sess); err != nil {
		return store.Session{}, storeProblem(err)
	}
	s.record(ctx, m, "sign_in", u.ID, "success", nil)
	return sess, nil
}

// spendSignIn spends the client address's budget of password tries
// (limits.sign_ins_per_ip), which every sign-in shares: registration,
// change, and both of the console's. Over it the answer is too_many, not
// sign_in_failed: the budget is the address's, it names no account, and a
// real user behind a busy NAT must not be told that their password is
// wrong.
func (s *Service) spendSignIn(ctx context.Context, m Meta) error {
	if ok, p := s.spendAddress(ctx, "signin", m.ClientIP, s.o.Limits.SignInsPerIP); p != nil {
		return p
	} else if !ok {
		s.record(ctx, m, "blocked", "", "sign_in_ip_budget", nil)
		return problem(CodeTooMany, errors.New("sign-in budget of the client address spent"))
	}
	return nil
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

// nameAttempt counts a password tried for a name that is no account, in
// the same budget a real account's wrong passwords spend (bindAttempt), and
// is err, marked once that budget is spent.
func (s *Service) nameAttempt(ctx context.Context, name, password string, err error, m Meta) error {
	if password == "" {
		return err
	}
	s.bindAttempt(ctx, nil, name, m)
	return bindRefusal(s.bindSeen(ctx, name), err)
}

// decoyBind does the work of a failed bind for a name that matched no
// account, so that the answer takes as long as for a wrong password.
func (s *Service) decoyBind(ctx context.Context, name, password string) {
	dn := "cn=latchkey-nobody-" + hex.EncodeToString(mac(s.k.decoy, "bind", strings.ToLower(name))[:8])
	_ = s.d.Directory.VerifyPassword(ctx, &directory.User{DN: dn}, password)
}

// Session returns the live registration session for token, enforcing the
// idle timeout. An admin console session is not one.
func (s *Service) Session(ctx context.Context, token string) (store.Session, error) {
	if token == "" {
		return store.Session{}, problem(CodeSessionExpired, nil)
	}
	now := s.now()
	sess, err := s.d.Store.GetSession(ctx, token, now)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Session{}, storeProblem(err)
	}
	if err != nil || sess.Kind == SessionAdmin {
		return store.Session{}, problem(CodeSessionExpired, nil)
	}
	if now.Sub(sess.LastSeen) > s.o.SessionIdle {
		s.forget(s.d.Store.DeleteSession(ctx, token))
		return store.Session{}, problem(CodeSessionExpired, nil)
	}
	if err := s.d.Store.TouchSession(ctx, token, now); errors.Is(err, store.ErrNotFound) {
		return store.Session{}, problem(CodeSessionExpired, nil)
	} else if err != nil {
		return store.Session{}, storeProblem(err)
	}
	return sess, nil
}

// SignOut ends a session. A session the store cannot delete (the store is
// down) is an error: the caller must not be told it is signed out while
// its token still works.
func (s *Service) SignOut(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	if err := s.d.Store.DeleteSession(ctx, token); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeProblem(err)
	}
	return nil
}

// Reauth re-checks the password of a signed-in user, for changes to
// recovery methods.
func (s *Service) Reauth(ctx context.Context, sess store.Session, password string, m Meta) error {
	u, err := s.sessionUser(ctx, sess)
	if err != nil {
		return err
	}
	if err := s.verifyPassword(ctx, u, sess.Username, password, m); err != nil &&
		!errors.Is(err, directory.ErrPasswordMustChange) && !errors.Is(err, directory.ErrPasswordExpired) {
		if errors.Is(err, directory.ErrUnavailable) {
			return s.dirProblem(err)
		}
		s.record(ctx, m, "reauth", sess.AccountID, "failed", nil)
		return bindFailure(err)
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

// NeedsReauth reports whether sess must enter its password again before
// it changes the account's methods: the one re-authentication rule, for
// the service and the pages alike.
func (s *Service) NeedsReauth(sess store.Session) bool {
	return s.now().Sub(sess.AuthAt) > s.o.ReauthWindow
}

// needsReauth is NeedsReauth as the refusal of a change of methods.
func (s *Service) needsReauth(sess store.Session) *Problem {
	if s.NeedsReauth(sess) {
		return problem(CodeReauthRequired, nil)
	}
	return nil
}
