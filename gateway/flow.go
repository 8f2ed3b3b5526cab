package gateway

import "github.com/latchkeyhq/latchkey/flow"

// The rules of the flows live in package flow; the web face uses its
// exported surface. These names keep the gateway's own (and its callers',
// cmd/latchkey and the e2e suites) as they were.

type (
	Service         = flow.Service
	Options         = flow.Options
	Deps            = flow.Deps
	Limits          = flow.Limits
	QuestionOptions = flow.QuestionOptions
	Demo            = flow.Demo
	DemoAccount     = flow.DemoAccount
	Meta            = flow.Meta
	Problem         = flow.Problem
	Violation       = flow.Violation
	FlowView        = flow.FlowView
	MethodView      = flow.MethodView
	Question        = flow.Question
	Answer          = flow.Answer
	PasswordRules   = flow.PasswordRules
)

// NewService builds the flows (flow.NewService).
func NewService(o Options, d Deps) (*Service, error) { return flow.NewService(o, d) }

// Decide is flow.Decide.
var Decide = flow.Decide

const (
	MethodTOTP         = flow.MethodTOTP
	MethodWebAuthn     = flow.MethodWebAuthn
	MethodQuestions    = flow.MethodQuestions
	MaxSendDelay       = flow.MaxSendDelay
	OutboxDrainTimeout = flow.OutboxDrainTimeout
)

// Problem codes (flow's).
const (
	CodeInvalidRequest     = flow.CodeInvalidRequest
	CodeSignInFailed       = flow.CodeSignInFailed
	CodeNotEligible        = flow.CodeNotEligible
	CodeSessionExpired     = flow.CodeSessionExpired
	CodeReauthRequired     = flow.CodeReauthRequired
	CodeFlowExpired        = flow.CodeFlowExpired
	CodeInvalidCode        = flow.CodeInvalidCode
	CodeNotVerified        = flow.CodeNotVerified
	CodeMethodTooNew       = flow.CodeMethodTooNew
	CodePasswordRejected   = flow.CodePasswordRejected
	CodeInvalidEmail       = flow.CodeInvalidEmail
	CodeInvalidPhone       = flow.CodeInvalidPhone
	CodeMethodExists       = flow.CodeMethodExists
	CodeMethodLimit        = flow.CodeMethodLimit
	CodeMethodNotFound     = flow.CodeMethodNotFound
	CodeMethodType         = flow.CodeMethodType
	CodeUnavailable        = flow.CodeUnavailable
	CodeNotFound           = flow.CodeNotFound
	CodeMethodNotAllowed   = flow.CodeMethodNotAllowed
	CodeTooLarge           = flow.CodeTooLarge
	CodeCSRF               = flow.CodeCSRF
	CodeInternal           = flow.CodeInternal
	CodeTooMany            = flow.CodeTooMany
	CodeWeakAnswers        = flow.CodeWeakAnswers
	CodeWrongAnswers       = flow.CodeWrongAnswers
	CodeMethodKindRequired = flow.CodeMethodKindRequired
	CodeAlreadyCompleted   = flow.CodeAlreadyCompleted
	CodePasskeyFailed      = flow.CodePasskeyFailed
)

func problem(code string, err error) *Problem { return flow.NewProblem(code, err) }

func asProblem(err error) *Problem { return flow.AsProblem(err) }
