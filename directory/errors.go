package directory

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns matches exactly one of
// them with errors.Is.
var (
	// ErrNotFound: no entry matched (or the input could not name one).
	ErrNotFound = errors.New("directory: user not found")
	// ErrAmbiguous: more than one entry matched a lookup.
	ErrAmbiguous = errors.New("directory: lookup matched several entries")
	// ErrInvalidCredentials: wrong password (or an empty one, never sent).
	ErrInvalidCredentials = errors.New("directory: invalid credentials")
	// ErrAccountLocked: locked out by the directory's lockout policy.
	ErrAccountLocked = errors.New("directory: account locked")
	// ErrAccountDisabled: disabled, expired or administratively locked.
	ErrAccountDisabled = errors.New("directory: account disabled")
	// ErrPasswordMustChange: the password is correct but must be changed
	// (AD pwdLastSet=0, OpenLDAP pwdReset).
	ErrPasswordMustChange = errors.New("directory: password must be changed")
	// ErrPasswordExpired: the password is correct but expired.
	ErrPasswordExpired = errors.New("directory: password expired")
	// ErrPolicyRejected: the directory's password policy refused the new
	// password; ReasonOf tells why.
	ErrPolicyRejected = errors.New("directory: password rejected by policy")
	// ErrInsufficientRights: the service account (or user) may not do this.
	ErrInsufficientRights = errors.New("directory: insufficient access rights")
	// ErrUnavailable: no server could be reached, or it timed out or was busy.
	ErrUnavailable = errors.New("directory: unavailable")
	// ErrInsecure: the operation needs a TLS connection and there is none.
	ErrInsecure = errors.New("directory: operation requires TLS")
	// ErrFailed: any other refusal by the server.
	ErrFailed = errors.New("directory: operation failed")
)

// Reason is a machine-readable cause for ErrPolicyRejected.
type Reason string

// Reasons a directory gives for refusing a password. ReasonPolicy is used
// when the server does not say which rule failed (Windows AD usually does not).
const (
	ReasonNone        Reason = ""
	ReasonTooShort    Reason = "too_short"
	ReasonInHistory   Reason = "in_history"
	ReasonNotComplex  Reason = "not_complex"
	ReasonTooYoung    Reason = "too_young"
	ReasonNotAllowed  Reason = "change_not_allowed"
	ReasonOldRequired Reason = "old_password_required"
	ReasonPolicy      Reason = "policy"
)

// Error is the only error type this package returns. Its message holds the
// operation, the kind, the LDAP result code and a parsed sub-code: never
// server text, DNs supplied by users, or passwords.
type Error struct {
	Op     string // e.g. "set password"
	Kind   error  // one of the sentinels
	Reason Reason // for ErrPolicyRejected
	Code   int    // LDAP result code, 0 if none
	Sub    string // AD bind "data" code or ppolicy error number, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("directory: %s: %s", e.Op, trimPrefix(e.Kind.Error()))
	if e.Reason != ReasonNone {
		s += " (" + string(e.Reason) + ")"
	}
	if e.Code != 0 {
		s += fmt.Sprintf(" [ldap %d", e.Code)
		if e.Sub != "" {
			s += " " + e.Sub
		}
		s += "]"
	}
	return s
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

// ReasonOf returns why the directory refused a password, or ReasonNone.
func ReasonOf(err error) Reason {
	var de *Error
	if errors.As(err, &de) {
		return de.Reason
	}
	return ReasonNone
}

func trimPrefix(s string) string {
	const p = "directory: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func newErr(op string, kind error) *Error { return &Error{Op: op, Kind: kind} }
