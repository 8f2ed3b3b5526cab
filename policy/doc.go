// Package policy holds Latchkey's rules as pure functions: which passwords
// the gateway accepts before it asks the directory (Rules), and who may use
// self-service at all and with how many methods (Eligibility).
//
// Nothing here does I/O. The directory's own password policy (history,
// complexity, minimum age) stays authoritative; Rules only gives early,
// friendly feedback with stable codes that pages and the JSON API turn into
// text. Eligibility decides from facts the caller has already resolved
// (nested group membership, adminCount, disabled), so the same decision can
// be taken at the start of a flow and again right before the password write.
package policy
