package flow

import (
	"errors"
	"net/http"
	"time"
)

// Problem is a failure a user may see: a stable code, an HTTP status and a
// fixed message. The wrapped error is for the log only.
type Problem struct {
	Code       string
	Status     int
	Violations []Violation
	// UsableAt, with method_too_new once a method is proven, is when the
	// proofs will be old enough (zero when no method ever will).
	UsableAt time.Time
	// Text, when set, replaces the code's message: a page that knows
	// better words for its case (a wrong code from an authenticator app
	// is not "send a new code")
	Text string
	Err  error
}

// Violation is one reason a new password was refused.
type Violation struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	if p.Err != nil {
		return p.Code + ": " + p.Err.Error()
	}
	return p.Code
}

func (p *Problem) Unwrap() error { return p.Err }

// Message is the fixed, user-safe text for the problem's code.
func (p *Problem) Message() string {
	if p.Text != "" {
		return p.Text
	}
	if p.Code == CodeMethodTooNew && !p.UsableAt.IsZero() {
		return messageFor(p.Code) + " It can be used from " + p.UsableAt.UTC().Format("2 January 2006 15:04 UTC") + "."
	}
	return messageFor(p.Code)
}

// Problem codes.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeSignInFailed     = "sign_in_failed"
	CodeNotEligible      = "not_eligible"
	CodeSessionExpired   = "session_expired"
	CodeReauthRequired   = "reauth_required"
	CodeFlowExpired      = "flow_expired"
	CodeInvalidCode      = "invalid_code"
	CodeNotVerified      = "not_verified"
	CodeMethodTooNew     = "method_too_new"
	CodePasswordRejected = "password_rejected"
	CodeInvalidEmail     = "invalid_email"
	CodeWorkEmail        = "work_email"
	CodeInvalidPhone     = "invalid_phone"
	CodeMethodExists     = "method_exists"
	CodeMethodLimit      = "method_limit"
	CodeMethodNotFound   = "method_not_found"
	CodeMethodType       = "method_unavailable"
	CodeUnavailable      = "unavailable"
	// CodeBusy: the outbox holds more codes than leave within
	// outbox.max_wait; the same for every username
	CodeBusy             = "busy"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooLarge         = "too_large"
	// CodeInvalidEncoding: a JSON body that is not valid UTF-8.
	CodeInvalidEncoding = "invalid_encoding"
	CodeCSRF            = "forbidden"
	CodeInternal        = "internal"
	CodeTooMany         = "too_many"

	// security questions and tiers' required kinds
	CodeWeakAnswers        = "weak_answers"
	CodeWrongAnswers       = "wrong_answers"
	CodeMethodKindRequired = "method_kind_required"

	// an earlier completion of the flow, whose answer was lost, had
	// already set the password
	CodeAlreadyCompleted = "already_completed"

	// a passkey's registration or assertion did not verify
	CodePasskeyFailed = "passkey_failed"

	// the admin console: a save based on an old version of the settings
	// (CodeConflict), settings a configuration file could not hold
	// (CodeInvalidSettings), a save with admin.settings file
	// (CodeReadOnly), a request without an admin session (CodeAdminAuth)
	CodeConflict        = "conflict"
	CodeInvalidSettings = "invalid_settings"
	CodeReadOnly        = "read_only"
	CodeAdminAuth       = "admin_session_required"
	// CodeAdminAppKept: an admin's verified authenticator app is not
	// replaced from a registration session (RemoveAdminApp first)
	CodeAdminAppKept = "admin_app_kept"
)

// #nosec G101 -- fixed messages for users ("passkey" is not a credential)
var messages = map[string]string{
	CodeInvalidRequest:   "The request was not valid.",
	CodeSignInFailed:     "The username or password is incorrect, or this account cannot sign in here.",
	CodeNotEligible:      "Your account is not enabled for self-service password reset. Contact the helpdesk.",
	CodeSessionExpired:   "Your session has ended. Please sign in again.",
	CodeReauthRequired:   "Enter your current password again to change your recovery methods.",
	CodeFlowExpired:      "This request has expired or is no longer valid. Please start again.",
	CodeInvalidCode:      "That code is not valid or has expired. Check it, or send a new code. After too many wrong codes no code is accepted for a while: then try again later, or contact the helpdesk.",
	CodeNotVerified:      "Verify the required number of methods first.",
	CodeMethodTooNew:     "A recovery method added very recently cannot be used on its own yet. Use another method, or contact the helpdesk.",
	CodePasswordRejected: "The new password does not meet the password policy.",
	CodeInvalidEmail:     "Enter a valid email address.",
	CodeWorkEmail:        "That is your work address, which you cannot read when you cannot sign in. Enter a personal email address.",
	CodeInvalidPhone:     "Enter a mobile number in international format, for example +44 7700 900123, from an allowed country.",
	CodeMethodExists:     "That method is already registered.",
	CodeMethodLimit:      "You have registered the maximum number of methods.",
	CodeMethodNotFound:   "That method does not exist.",
	CodeMethodType:       "That kind of method is not available.",
	CodeUnavailable:      "The service is temporarily unavailable. Please try again in a few minutes.",
	CodeBusy:             "We are sending many codes right now: try again in a minute.",
	CodeNotFound:         "Page not found.",
	CodeMethodNotAllowed: "Method not allowed.",
	CodeTooLarge:         "The request is too large.",
	CodeInvalidEncoding:  "The request is not valid UTF-8.",
	CodeCSRF:             "The form has expired or was sent from another site. Reload the page and try again.",
	CodeInternal:         "Something went wrong.",
	CodeTooMany:          "Too many attempts: try again later.",

	CodeWeakAnswers:        "Some answers are too easy to guess:",
	CodeWrongAnswers:       "The answers are not right. Check them and try again.",
	CodeMethodKindRequired: "Your account must also verify a stronger method, such as an authenticator app. Choose one of those too.",
	CodeAlreadyCompleted:   "Your password was already changed by your earlier attempt. Sign in with the password you chose then; if it does not work, start again.",
	CodePasskeyFailed:      "The passkey could not be verified. Try again, or choose another method.",

	CodeConflict:        "The settings were changed by someone else since you opened them. Review the current settings and save again.",
	CodeInvalidSettings: "The settings were not saved:",
	CodeReadOnly:        "The settings are kept in the configuration file (admin.settings: file): change them there.",
	CodeAdminAuth:       "Sign in to the admin console.",
	CodeAdminAppKept:    "Your account is an admin's: its authenticator app or passkey also signs you in to the admin console, so another cannot be added here. Ask another admin to remove it (admin console, Explain a user), then set up the new one.",
}

var statuses = map[string]int{
	CodeInvalidRequest:   http.StatusBadRequest,
	CodeSignInFailed:     http.StatusUnauthorized,
	CodeNotEligible:      http.StatusForbidden,
	CodeSessionExpired:   http.StatusUnauthorized,
	CodeReauthRequired:   http.StatusForbidden,
	CodeFlowExpired:      http.StatusGone,
	CodeInvalidCode:      http.StatusUnprocessableEntity,
	CodeNotVerified:      http.StatusConflict,
	CodeMethodTooNew:     http.StatusConflict,
	CodePasswordRejected: http.StatusUnprocessableEntity,
	CodeInvalidEmail:     http.StatusUnprocessableEntity,
	CodeWorkEmail:        http.StatusUnprocessableEntity,
	CodeInvalidPhone:     http.StatusUnprocessableEntity,
	CodeMethodExists:     http.StatusConflict,
	CodeMethodLimit:      http.StatusConflict,
	CodeMethodNotFound:   http.StatusNotFound,
	CodeMethodType:       http.StatusUnprocessableEntity,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeBusy:             http.StatusServiceUnavailable,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeInvalidEncoding:  http.StatusBadRequest,
	CodeCSRF:             http.StatusForbidden,
	CodeInternal:         http.StatusInternalServerError,
	CodeTooMany:          http.StatusTooManyRequests,

	CodeWeakAnswers:        http.StatusUnprocessableEntity,
	CodeWrongAnswers:       http.StatusUnprocessableEntity,
	CodeMethodKindRequired: http.StatusConflict,
	CodeAlreadyCompleted:   http.StatusConflict,
	CodePasskeyFailed:      http.StatusUnprocessableEntity,

	CodeConflict:        http.StatusConflict,
	CodeInvalidSettings: http.StatusUnprocessableEntity,
	CodeReadOnly:        http.StatusForbidden,
	CodeAdminAuth:       http.StatusUnauthorized,
	CodeAdminAppKept:    http.StatusConflict,
}

func messageFor(code string) string {
	if m, ok := messages[code]; ok {
		return m
	}
	return messages[CodeInternal]
}

func problem(code string, err error) *Problem {
	st, ok := statuses[code]
	if !ok {
		st = http.StatusInternalServerError
	}
	return &Problem{Code: code, Status: st, Err: err}
}

// asProblem turns any error into a Problem (internal when unknown).
func asProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return problem(CodeInternal, err)
}
