// Package flow holds the rules of Latchkey's flows: sign-in, registration
// of recovery methods, reset, unlock and change. Package gateway is their
// web face (pages and JSON API) and calls only what this package exports;
// flow never imports Echo or HTTP handler code.
//
// # Reset and unlock
//
// A reset and an unlock are one state machine; only the last write
// differs. Every name, known or not, eligible or not, walks the same
// states after the same work: an unknown or ineligible name gets a flow of
// fake methods (decoys.go) that can never be proven.
//
//	              StartFlow
//	             (start.go)
//	                  |
//	                  v
//	+-------------- offer --------------+
//	|  SendFlowChallenge (verify.go):   |
//	|  a code sent, passkey options,    |<---------+
//	|  or nothing (app, questions)      |          |
//	+-----------------+-----------------+          |
//	                  |                            |
//	                  v                            |
//	               prove  VerifyFlow (verify.go)   |
//	                  |   wrong: failure recorded -+
//	                  |   right: proof recorded,
//	                  |   flow id rotated
//	    more methods  |
//	    needed  ------+------> offer (again, x N)
//	                  |
//	                  v
//	              complete  CompleteFlow (complete.go)
//	              reset: new password (reset.go)
//	              unlock: lockout cleared (unlock.go)
//
// Where each step lives:
//
//   - start.go: StartFlow in three steps: take the budgets, resolve the
//     name (real or decoy, the same work), build and store the answer.
//   - flows.go: loading a flow (flowstate.go: its typed state) and what it
//     shows (flowView).
//   - verify.go: asking for a proof and the one verify path: load, find the
//     offered method, hold, spend the failure budget, check, record the
//     proof and rotate the flow id.
//   - method.go: the recoveryMethod interface and its registry; one kind
//     per file: method_email.go, method_sms.go, method_totp.go,
//     method_passkey.go, method_questions.go. "Where does a reset check
//     the code?" codes.go (verifyFlowCode) for email and SMS,
//     method_totp.go for an app. "How do I add a recovery method?" A new
//     method_X.go implementing recoveryMethod, and a line in
//     recoveryMethods.
//   - coolingoff.go: a proof of a method too new is refused up front.
//   - complete.go: the proofs counted again against today's policy, the
//     claim on the flow, the directory write and its record (reset.go,
//     unlock.go).
//
// # The other flows
//
//   - signin.go: sign-in, sessions and re-authentication (NeedsReauth).
//   - register.go: adding, verifying and removing methods; totp.go,
//     webauthn.go and questions.go enrol an app, a passkey and questions.
//   - change.go: changing a known password.
//
// # Around the flows
//
// limits.go and appguess.go (budgets), pad.go (every answer to a step
// without proof leaves at the same time), notices.go and outbox.go
// (messages), auditsample.go (audit rows), options.go (options; their
// defaults and bounds are config's), errors.go (the problems a user may
// see).
package flow
