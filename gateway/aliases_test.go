package gateway

import "github.com/latchkeyhq/latchkey/flow"

type (
	Offered          = flow.Offered
	TOTPEnrolment    = flow.TOTPEnrolment
	QuestionSettings = flow.QuestionSettings
)
