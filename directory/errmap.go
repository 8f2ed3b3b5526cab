package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Behera ppolicy error numbers (draft-behera-ldap-password-policy, 8.2.2).
const (
	ppPasswordExpired       = 0
	ppAccountLocked         = 1
	ppChangeAfterReset      = 2
	ppPasswordModNotAllowed = 3
	ppMustSupplyOldPassword = 4
	ppInsufficientQuality   = 5
	ppPasswordTooShort      = 6
	ppPasswordTooYoung      = 7
	ppPasswordInHistory     = 8
)

// adDataRe finds the sub-code in an AD bind diagnostic such as
// "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1".
var adDataRe = regexp.MustCompile(`\bdata ([0-9a-fA-F]{3,8})\b`)

// adWinErrRe finds the leading Windows error code, e.g. "0000052D: ...".
var adWinErrRe = regexp.MustCompile(`^([0-9A-Fa-f]{8}):`)

// classify maps a go-ldap error (and any response controls) to an *Error.
// It is the only place server answers are interpreted; the server's text is
// read here and never copied into the result.
func classify(op string, err error, ctrls []ldap.Control) *Error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	if len(ctrls) == 0 {
		ctrls = controlsFromErr(err)
	}
	pp := ppolicyError(ctrls)
	e := &Error{Op: op, Kind: ErrFailed}
	if pp >= 0 {
		e.Sub = fmt.Sprintf("ppolicy %d", pp)
	}

	var le *ldap.Error
	if !errors.As(err, &le) {
		if isTransportError(err) {
			e.Kind = ErrUnavailable
		}
		return e
	}
	e.Code = int(le.ResultCode)
	diag := ""
	if le.Err != nil {
		diag = le.Err.Error()
	}
	winErr, adData := adDiagnostic(diag)
	if adData != "" {
		e.Sub = "data " + adData
	} else if winErr != "" && e.Sub == "" {
		e.Sub = winErr
	}
	e.classifyResult(le.ResultCode, pp, winErr, adData, diag)
	return e
}

// isTransportError reports whether err, not an LDAP result, is the
// connection failing: a network error, a closed connection, an end of
// stream or a message that could not be read.
func isTransportError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReaderError(err)
}

// adDiagnostic reads Active Directory's diagnostic message: the Windows
// error (upper case hex, "" if none) and the bind "data" code (lower
// case, "" if none).
func adDiagnostic(diag string) (winErr, adData string) {
	if m := adWinErrRe.FindStringSubmatch(diag); m != nil {
		winErr = strings.ToUpper(m[1])
	}
	if m := adDataRe.FindStringSubmatch(diag); m != nil {
		adData = strings.ToLower(m[1])
	}
	return winErr, adData
}

// classifyResult sets e's Kind (and Reason, or Sub for a replica's
// refusal and a referral) from the LDAP result code, the ppolicy error pp
// (-1 if none) and AD's diagnostic.
func (e *Error) classifyResult(code uint16, pp int, winErr, adData, diag string) {
	switch code {
	case ldap.LDAPResultInvalidCredentials:
		e.Kind = invalidCredentialsKind(pp, adData)
	case ldap.LDAPResultUnwillingToPerform:
		if isReplicaRefusal(diag) {
			// a read-only replica (slapd syncrepl consumer): the write was
			// not applied; another server (the provider) may take it
			e.Kind, e.Sub = ErrUnavailable, subReplica
			break
		}
		e.Reason, e.Kind = policyKind(code, pp, winErr, diag)
	case ldap.LDAPResultConstraintViolation:
		e.Reason, e.Kind = policyKind(code, pp, winErr, diag)
	case ldap.LDAPResultReferral:
		// a replica configured with updateref answers writes with a
		// referral; referrals are never followed (see referral_test.go)
		e.Kind, e.Sub = ErrUnavailable, subReferral
	case ldap.LDAPResultInsufficientAccessRights:
		e.Kind = ErrInsufficientRights
		if pp == ppChangeAfterReset || strings.Contains(diag, "restricted to bind/unbind/abandon/StartTLS/modify password") {
			e.Kind = ErrPasswordMustChange
		}
	case ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultStrongAuthRequired:
		e.Kind = ErrInsecure
	case ldap.LDAPResultNoSuchObject:
		e.Kind = ErrNotFound
	case ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultServerDown,
		ldap.LDAPResultTimeout, ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultAdminLimitExceeded,
		ldap.ErrorNetwork, ldap.LDAPResultConnectError, ldap.LDAPResultUnavailableCriticalExtension:
		e.Kind = ErrUnavailable
	}
}

// invalidCredentialsKind is the kind of a refused bind: AD says why in
// its data code, OpenLDAP's ppolicy in its control (which wins).
func invalidCredentialsKind(pp int, adData string) error {
	kind := ErrInvalidCredentials
	switch adData {
	case "775":
		kind = ErrAccountLocked
	case "773":
		kind = ErrPasswordMustChange
	case "532":
		kind = ErrPasswordExpired
	case "533", "701", "530", "531":
		kind = ErrAccountDisabled
	}
	switch pp {
	case ppAccountLocked:
		kind = ErrAccountLocked
	case ppPasswordExpired:
		kind = ErrPasswordExpired
	}
	return kind
}

// MayHaveApplied reports whether a failed write may have been applied all
// the same: the server or the path to it stopped answering, or the request
// was cancelled, after the write may have left. A write a replica refused
// or answered with a referral was not applied.
func MayHaveApplied(err error) bool {
	var de *Error
	if errors.As(err, &de) && (de.Sub == subReplica || de.Sub == subReferral) {
		return false
	}
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Error.Sub of a write refused because the server is a replica.
const (
	subReplica  = "read-only replica"
	subReferral = "referral"
)

// isReplicaRefusal reports whether diag is slapd's answer to a write on a
// syncrepl consumer without an update referral.
func isReplicaRefusal(diag string) bool {
	return strings.Contains(strings.ToLower(diag), "shadow context")
}

// policyKind interprets 19 (constraint violation) and 53 (unwilling to perform)
// on password operations.
func policyKind(code uint16, pp int, winErr, diag string) (Reason, error) {
	switch pp {
	case ppPasswordTooShort:
		return ReasonTooShort, ErrPolicyRejected
	case ppPasswordInHistory:
		return ReasonInHistory, ErrPolicyRejected
	case ppInsufficientQuality:
		return ReasonNotComplex, ErrPolicyRejected
	case ppPasswordTooYoung:
		return ReasonTooYoung, ErrPolicyRejected
	case ppPasswordModNotAllowed:
		return ReasonNotAllowed, ErrPolicyRejected
	case ppMustSupplyOldPassword:
		return ReasonNone, ErrInvalidCredentials
	case ppAccountLocked:
		return ReasonNone, ErrAccountLocked
	case ppChangeAfterReset:
		return ReasonNone, ErrPasswordMustChange
	}
	d := strings.ToLower(diag)
	switch winErr {
	case "0000052D": // ERROR_PASSWORD_RESTRICTION
		switch {
		case strings.Contains(d, "too short"):
			return ReasonTooShort, ErrPolicyRejected
		case strings.Contains(d, "complexity"):
			return ReasonNotComplex, ErrPolicyRejected
		case strings.Contains(d, "history") || strings.Contains(d, "already used"):
			return ReasonInHistory, ErrPolicyRejected
		case strings.Contains(d, "too young") || strings.Contains(d, "minimum password age"):
			return ReasonTooYoung, ErrPolicyRejected
		}
		return ReasonPolicy, ErrPolicyRejected
	case "00000056": // ERROR_INVALID_PASSWORD: wrong old password on change
		return ReasonNone, ErrInvalidCredentials
	case "0000001F", "00002077": // unicodePwd over a plain connection
		if strings.Contains(d, "unicodepwd") || code == ldap.LDAPResultUnwillingToPerform {
			return ReasonNone, ErrInsecure
		}
	case "00000005": // ERROR_ACCESS_DENIED
		return ReasonNone, ErrInsufficientRights
	}
	// OpenLDAP without the response control: the same cases, by text.
	switch {
	case strings.Contains(d, "in history") || strings.Contains(d, "not being changed from existing value"):
		return ReasonInHistory, ErrPolicyRejected
	case strings.Contains(d, "quality"):
		return ReasonPolicy, ErrPolicyRejected
	case strings.Contains(d, "too young"):
		return ReasonTooYoung, ErrPolicyRejected
	case strings.Contains(d, "old password"):
		return ReasonNone, ErrInvalidCredentials
	}
	if code == ldap.LDAPResultConstraintViolation {
		return ReasonPolicy, ErrPolicyRejected
	}
	return ReasonNone, ErrFailed
}
