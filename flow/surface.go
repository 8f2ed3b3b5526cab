package flow

import (
	"context"
	"log/slog"
	"time"
)

// What the web face (package gateway) uses of a Service besides the
// steps of the flows.

// NewProblem is a failure with code, err for the log only.
func NewProblem(code string, err error) *Problem { return problem(code, err) }

// AsProblem is err as a Problem: an internal one if it is none.
func AsProblem(err error) *Problem { return asProblem(err) }

// NewToken is a fresh bearer secret (>= 128 bits, URL-safe).
func NewToken() string { return newToken() }

// Now is the service's clock, in UTC.
func (s *Service) Now() time.Time { return s.now() }

// Log is the service's logger (never the audit log).
func (s *Service) Log() *slog.Logger { return s.log }

// Record logs and stores an audit event of a step the web face refused
// itself (a CSRF failure).
func (s *Service) Record(ctx context.Context, m Meta, typ, account, outcome string, details map[string]string) {
	s.record(ctx, m, typ, account, outcome, details)
}

// CSRFMAC is the keyed MAC a CSRF token carries of the cookie value v.
func (s *Service) CSRFMAC(v string) []byte { return mac(s.k.csrf, v) }

// Ready pings the directory and the store, each error logged; nil when
// it answers.
func (s *Service) Ready(ctx context.Context) (directoryErr, storeErr error) {
	if directoryErr = s.d.Directory.Ping(ctx); directoryErr != nil {
		s.log.Warn("readiness: directory", "error", directoryErr.Error())
	}
	if storeErr = s.d.Store.Ping(ctx); storeErr != nil {
		s.log.Warn("readiness: store", "error", storeErr.Error())
	}
	return directoryErr, storeErr
}

// GeneralPasswordRules are the password rules the change page shows
// before it knows the user.
func (s *Service) GeneralPasswordRules(ctx context.Context) PasswordRules {
	return s.passwordRules(ctx, nil)
}

// CredentialJSON checks that a client's passkey response is one bounded
// JSON object.
func CredentialJSON(raw []byte) ([]byte, bool) { return credentialJSON(raw) }

// Bounds of what a client sends for a passkey.
const (
	MaxCredentialJSON = maxCredentialJSON
	PasskeyLabelMax   = passkeyLabelMax
)

// Bounds the web face's tests check from outside.
const (
	MaxFlowChallenges = maxFlowChallenges
	AuditSampleRows   = auditSampleRows
	AuditSampleTotal  = auditSampleTotal
	AnswerUsername    = answerUsername
)
