package flow

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"image/png"
	"slices"
	"strconv"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkeyhq/latchkey/store"
)

// The authenticator app (TOTP, RFC 6238) as a recovery method.
//
// The seed is kept as the method's Address, which the store encrypts at rest
// with its key; it leaves the gateway exactly once, in the answer to the
// enrolment (as text, as an otpauth:// URL and as a QR code), and never
// again: lists, hints, logs, audit events and notices say "Authenticator
// app". The method is active once a code from the new seed is verified;
// that also revokes any earlier seed of the account (one authenticator app
// per account, so it counts as one method wherever two are required).
//
// Codes: 6 digits, 30 s steps, accepted one step either side of the
// server's clock (RFC 6238 §5.2), each at most once (ASVS 2.8.4): the first
// use of a step is counted in the store's atomic counter, shared by every
// instance, and a second use of the same step is refused as a replay. Every
// try, right or wrong, is counted against the account's budget of wrong
// codes before it is checked, exactly as for emailed and texted codes.
const (
	// MethodTOTP is the method type of an authenticator app.
	MethodTOTP = "totp"
	// totpHint is what every list shows for an authenticator app.
	totpHint     = "Authenticator app"
	totpPeriod   = 30 // seconds
	totpSkew     = 1  // steps accepted either side of the current one
	totpDigits   = otp.DigitsSix
	totpSeedSize = 20 // bytes: 160 bits (RFC 4226 §4 recommends 160)
	totpQRSize   = 240
)

// totpReplayWindow is the counter window of a used step. Every use of a
// step is counted at one fixed instant, the step's end of acceptance (see
// totpStepAnchor), so the window holding it is the same for every use, and
// it ends after the step stops being accepted: Purge cannot forget a used
// step while its code still works.
const totpReplayWindow = 4 * totpPeriod * time.Second

// TOTPEnrolment is the one answer that carries a new seed.
type TOTPEnrolment struct {
	Method MethodView
	// Secret is the seed in base32 (no padding), for typing into the app.
	Secret string
	// URL is the otpauth:// URL the QR code encodes.
	URL string
	// QRPNG is the QR code of URL as a PNG image.
	QRPNG []byte
}

func totpOpts() totp.ValidateOpts {
	return totp.ValidateOpts{Period: totpPeriod, Skew: totpSkew, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}
}

// EnrolTOTP creates a new, unverified authenticator app for the signed-in
// user and returns its seed, once. An earlier unverified app is discarded;
// a verified one keeps working until the new one is verified.
func (s *Service) EnrolTOTP(ctx context.Context, sess store.Session, m Meta) (TOTPEnrolment, error) {
	if p := s.needsReauth(sess); p != nil {
		return TOTPEnrolment{}, p
	}
	if !slices.Contains(s.AvailableMethodTypes(sess), MethodTOTP) {
		return TOTPEnrolment{}, problem(CodeMethodType, nil)
	}
	existing, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return TOTPEnrolment{}, problem(CodeInternal, err)
	}
	others, apps := 0, 0
	for _, e := range existing {
		switch {
		case e.Type != MethodTOTP:
			others++
		case e.Verified:
			apps++
		case !e.Verified:
			// a set-up that was never finished: its seed was shown once
			// and cannot be shown again, so it is of no use
			if err := s.d.Store.DeleteMethod(ctx, sess.AccountID, e.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return TOTPEnrolment{}, problem(CodeInternal, err)
			}
		}
	}
	if p := s.adminAppKept(ctx, sess, existing); p != nil {
		return TOTPEnrolment{}, p
	}
	// the new app replaces the old one: it does not count against the limit
	if others >= s.o.MaxMethods {
		return TOTPEnrolment{}, problem(CodeMethodLimit, nil)
	}
	key, qr, err := s.totpKey(sess.Username, totp.GenerateOpts{SecretSize: totpSeedSize})
	if err != nil {
		return TOTPEnrolment{}, problem(CodeInternal, err)
	}
	meth := store.Method{ID: newID(), AccountID: sess.AccountID, Type: MethodTOTP, Secret: key.Secret(), CreatedAt: s.now()}
	// the verified app read above is replaced once this one is proven:
	// room for it too
	if err := s.addMethodWithin(ctx, meth, s.o.MaxMethods+apps); err != nil {
		return TOTPEnrolment{}, err
	}
	// which session was shown the seed: only it may be shown it again
	if _, err := s.d.Store.Hit(context.WithoutCancel(ctx), totpEnrolKey(sess.ID, meth.ID), totpEnrolWindow, s.now()); err != nil {
		s.log.Error("rate limit counter failed", "error", err.Error())
	}
	s.record(ctx, m, "registration.method_added", sess.AccountID, "pending", map[string]string{"method": meth.ID, "type": MethodTOTP})
	return TOTPEnrolment{Method: view(meth), Secret: key.Secret(), URL: key.URL(), QRPNG: qr}, nil
}

// totpKey makes the app's key for the account named username (a new seed
// of o.SecretSize, or o.Secret) and its QR code as a PNG image.
func (s *Service) totpKey(username string, o totp.GenerateOpts) (*otp.Key, []byte, error) {
	o.Issuer, o.AccountName, o.Period, o.Digits, o.Algorithm = s.o.ProductName, username, totpPeriod, totpDigits, otp.AlgorithmSHA1
	key, err := totp.Generate(o)
	if err != nil {
		return nil, nil, err
	}
	img, err := key.Image(totpQRSize, totpQRSize)
	if err != nil {
		return nil, nil, err
	}
	var qr bytes.Buffer
	if err := png.Encode(&qr, img); err != nil {
		return nil, nil, err
	}
	return key, qr.Bytes(), nil
}

// totpEnrolKey marks that session sessionID enrolled the app methodID:
// the seed is shown again (TOTPEnrolmentAgain) to that session only, not
// to another session of the account (one signed in by someone else who
// knows the password would otherwise copy the pending app).
func totpEnrolKey(sessionID, methodID string) string {
	return "totp-enrol:" + sessionID + ":" + methodID
}

// totpEnrolWindow is how long the mark is counted (twice: the current and
// the previous window), beyond any session's life.
const totpEnrolWindow = time.Hour

// enrolledHere reports whether session sessionID enrolled the app methodID.
func (s *Service) enrolledHere(ctx context.Context, sessionID, methodID string) bool {
	key, now := totpEnrolKey(sessionID, methodID), s.now()
	n, err := s.d.Store.Count(ctx, key, totpEnrolWindow, now)
	if err == nil && n == 0 {
		n, err = s.d.Store.Count(ctx, key, totpEnrolWindow, now.Add(-totpEnrolWindow))
	}
	return err == nil && n > 0
}

// TOTPEnrolmentAgain is the enrolment of the signed-in user's authenticator
// app methodID again, while it is not verified and the session's password
// is fresh (as for EnrolTOTP): the answer to a wrong first code shows the
// QR code again, so that one typing slip does not mean starting over. It
// goes to the session that was shown the seed, in the answer to its own
// form post, never to a GET.
func (s *Service) TOTPEnrolmentAgain(ctx context.Context, sess store.Session, methodID string) (TOTPEnrolment, error) {
	if p := s.needsReauth(sess); p != nil {
		return TOTPEnrolment{}, p
	}
	meth, err := s.d.Store.GetMethod(ctx, sess.AccountID, methodID)
	if err != nil || meth.Type != MethodTOTP || meth.Verified {
		return TOTPEnrolment{}, problem(CodeMethodNotFound, err)
	}
	if !s.enrolledHere(ctx, sess.ID, methodID) {
		return TOTPEnrolment{}, problem(CodeMethodNotFound, errors.New("the app was set up by another session"))
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(meth.Secret)
	if err != nil {
		return TOTPEnrolment{}, problem(CodeInternal, err)
	}
	key, qr, err := s.totpKey(sess.Username, totp.GenerateOpts{Secret: raw})
	if err != nil {
		return TOTPEnrolment{}, problem(CodeInternal, err)
	}
	return TOTPEnrolment{Method: view(meth), Secret: key.Secret(), URL: key.URL(), QRPNG: qr}, nil
}

// totpStepKey is the counter of one used step of one method.
func totpStepKey(accountID, methodID string, step int64) string {
	return "totp-step:" + accountID + ":" + methodID + ":" + strconv.FormatInt(step, 10)
}

// totpStepAnchor is the instant every use of step is counted at: the first
// instant its code is no longer accepted.
func totpStepAnchor(step int64) time.Time {
	return time.Unix((step+totpSkew+1)*totpPeriod, 0)
}

// totpMatches returns the steps around now whose code is code.
func totpMatches(secret, code string, now time.Time) []int64 {
	var steps []int64
	if len(code) != totpDigits.Length() {
		return nil
	}
	cur := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix((cur+d)*totpPeriod, 0), totpOpts())
		if err != nil {
			return nil
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			steps = append(steps, cur+d)
		}
	}
	return steps
}

// totpResult is the outcome of a TOTP check.
type totpResult int

const (
	totpWrong totpResult = iota
	totpReplayed
	totpOK
)

func (r totpResult) reason() string {
	if r == totpReplayed {
		return "totp_replayed"
	}
	return "wrong_code"
}

// checkTOTP checks code against meth's seed and spends the step it
// matches: a step used before is a replay. Store failures fail closed.
func (s *Service) checkTOTP(ctx context.Context, meth store.Method, code string) (totpResult, error) {
	steps := totpMatches(meth.Secret, code, s.now())
	if len(steps) == 0 {
		return totpWrong, nil
	}
	res := totpOK
	for _, st := range steps {
		n, err := s.d.Store.Hit(context.WithoutCancel(ctx), totpStepKey(meth.AccountID, meth.ID, st), totpReplayWindow, totpStepAnchor(st))
		if err != nil {
			return totpWrong, err
		}
		if n > 1 {
			res = totpReplayed
		}
	}
	return res, nil
}

// decoyTOTP does the work of checking a code for a fake authenticator app
// (an unknown or ineligible name): the codes of a seed derived from the
// method id, which nobody can know. It never matches anything usable.
func (s *Service) decoyTOTP(methodID, code string) {
	seed := mac(s.k.decoy, "totp", methodID)[:totpSeedSize]
	_ = totpMatches(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed), code, s.now())
}

// revokeOtherTOTP deletes every authenticator app of the account but keep,
// once keep is verified: re-enrolment replaces the old seed. Open flows
// may have proven a revoked app: they end.
func (s *Service) revokeOtherTOTP(ctx context.Context, accountID, keep string, m Meta) {
	ms, err := s.d.Store.ListMethods(ctx, accountID)
	if err != nil {
		s.log.Error("listing methods to revoke an old authenticator app failed", "request_id", m.RequestID, "error", err.Error())
		return
	}
	revoked := false
	for _, e := range ms {
		if e.Type != MethodTOTP || e.ID == keep {
			continue
		}
		if err := s.d.Store.DeleteMethod(ctx, accountID, e.ID); err != nil {
			s.log.Error("revoking an old authenticator app failed", "request_id", m.RequestID, "error", err.Error())
			continue
		}
		revoked = revoked || e.Verified
		s.record(ctx, m, "registration.method_removed", accountID, "replaced", map[string]string{"method": e.ID, "type": MethodTOTP})
	}
	if revoked {
		s.forget(s.d.Store.DeleteFlowsForAccount(ctx, accountID))
	}
}
