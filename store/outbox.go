package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The outbox: mail and SMS waiting to be sent, kept in the store so that a
// crash or a restart loses none and every instance can send any of them.
//
// A message is written with the change that asks for it (a code with
// IssueCodeWithMessage, in one transaction) or right after it (a notice,
// EnqueueMessage). Workers on any instance claim due messages with a lease
// (ClaimMessages), send them, and finish them (FinishMessage: the body is
// deleted, the row kept a while for the send rate) or put them back for a
// later try (RetryMessage). A message whose lease ran out (its worker or
// instance died) is claimed again: a message is sent at least once, twice
// only when a worker died between the server's acceptance and the finish.

// Kinds of outbox messages.
const (
	// OutboxCode carries a one-time code (sent before notices).
	OutboxCode = "code"
	// OutboxNotice tells a person about a change to their account.
	OutboxNotice = "notice"
	// OutboxDecoy is written for a code asked for a name with no real
	// method, so that the store does the same work as for a real code. It
	// is never sent: the worker that claims it at its time discards it.
	OutboxDecoy = "decoy"
)

// States of outbox messages.
const (
	OutboxPending   = "pending"
	OutboxSent      = "sent"
	OutboxExpired   = "expired" // its code or flow expired before it could be sent
	OutboxFailed    = "failed"  // given up on after failed tries
	OutboxDiscarded = "discarded"
)

// OutboxKeepDone is how long a finished message's row (without its body)
// is kept, for the send rate (OutboxStats.Sent), before Purge deletes it.
const OutboxKeepDone = time.Hour

// OutboxMessage is one message of the outbox.
type OutboxMessage struct {
	// ID identifies the message; made by the caller (random, unique).
	ID string
	// Kind is OutboxCode, OutboxNotice or OutboxDecoy.
	Kind string
	// Channel is MethodEmail or MethodSMS: the workers that send it.
	Channel string
	// Body is the message as the sender needs it, encrypted at rest and
	// deleted once the message is finished. Nil once finished.
	Body []byte
	// AccountID, RequestID, ClientIP and Purpose are for the audit and
	// logs (the request that asked for the message).
	AccountID string
	RequestID string
	ClientIP  string
	Purpose   string
	// CreatedAt is when the message was written.
	CreatedAt time.Time
	// NotBefore is the earliest time it may be sent (the anti-timing
	// delay, or a retry's back-off).
	NotBefore time.Time
	// ExpiresAt: the message is not sent at or after it (a code's
	// lifetime; IssueCodeWithMessage lowers it to the flow's expiry).
	ExpiresAt time.Time
	// Attempts counts the claims so far (ClaimMessages adds one).
	Attempts int
}

// OutboxStats is the state of the whole outbox (every instance's).
type OutboxStats struct {
	// PendingCodes and PendingNotices count the messages not finished yet
	// (decoys are not counted).
	PendingCodes   int
	PendingNotices int
	// OldestCode is the NotBefore of the oldest pending code: zero when
	// there is none.
	OldestCode time.Time
	// Sent counts the messages sent at or after the since given, and
	// FirstSent is when the first of them was sent (zero when none was).
	Sent      int
	FirstSent time.Time
}

// Outbox is the store's outbox. Part of Store.
type Outbox interface {
	// IssueCodeWithMessage is IssueCode and EnqueueMessage in one
	// transaction: either both are written or neither. m.ExpiresAt is
	// lowered to the flow's expiry when that comes first.
	IssueCodeWithMessage(ctx context.Context, c Code, m OutboxMessage) error
	// EnqueueMessage writes m, pending. m.ID, Kind, Channel and a
	// non-zero ExpiresAt are required (ErrInvalid); ErrConflict if the ID
	// exists.
	EnqueueMessage(ctx context.Context, m OutboxMessage) error
	// ClaimMessages leases up to limit pending messages of channel that
	// are due (NotBefore <= now) and not leased (or whose lease ended),
	// codes and decoys first, then the oldest, until now+lease, adding one
	// to their Attempts. Each message is returned to one caller at a time,
	// in any number of processes. Expired messages are returned too: the
	// caller finishes them. limit must be >= 1.
	ClaimMessages(ctx context.Context, channel string, now time.Time, lease time.Duration, limit int) ([]OutboxMessage, error)
	// NextDue is the earliest time a pending message of channel becomes
	// claimable (its NotBefore or the end of its lease); zero if none.
	NextDue(ctx context.Context, channel string) (time.Time, error)
	// FinishMessage sets the message's state (OutboxSent, OutboxExpired,
	// OutboxFailed, OutboxDiscarded) at now and deletes its body, and
	// appends audit (what the finish tells of, e.g. the delivery) in the
	// same transaction. ErrNotFound if there is no such message (nothing
	// appended); finishing a finished one again changes nothing in it, and
	// still appends audit (a second send is still a send).
	FinishMessage(ctx context.Context, id, state string, now time.Time, audit ...AuditEvent) error
	// RetryMessage releases the message's lease and makes it due again at
	// notBefore. ErrNotFound if there is no pending message with the id.
	RetryMessage(ctx context.Context, id string, notBefore time.Time) error
	// ExpediteRetries makes the pending messages of channel that wait for
	// a retry (tried before, not leased, due after now) due at now, and
	// returns how many: the server is back, the backlog need not wait out
	// its back-off.
	ExpediteRetries(ctx context.Context, channel string, now time.Time) (int, error)
	// OutboxStats counts the pending messages and those sent at or after
	// since.
	OutboxStats(ctx context.Context, since time.Time) (OutboxStats, error)
}

// outboxAAD binds a sealed body to its message.
func outboxAAD(id string) []byte { return aad("outbox", id) }

// outboxPriorities are the values outboxPriority gives; outboxPriorityList
// is them as an SQL list.
var outboxPriorities = []int{0, 1}

var outboxPriorityList = func() string {
	parts := make([]string, len(outboxPriorities))
	for i, p := range outboxPriorities {
		parts[i] = strconv.Itoa(p)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}()

// outboxNextFree is NextDue's first read, with channel as param: the
// earliest NotBefore of a pending message that is not leased past it.
// NextDue is the least of MAX(not_before, lease_until) over the pending
// messages; read in one pass, that visits every pending message, and the
// dispatcher asks on every wake. So it is read in two parts, each walking
// the outbox_due index (state, channel, priority, not_before) only as far
// as it must:
//
//   - here, per priority, in not_before order, the first message whose
//     lease does not outlast its NotBefore (never leased, or released):
//     the walk passes only the leased messages before it;
//   - then (the caller's second read) the earliest lease end among leased
//     messages whose NotBefore is before that first answer: a message with
//     a later NotBefore cannot be due sooner. Leases are few (one per
//     message being sent, plus a crashed worker's).
func outboxNextFree(param string) string {
	parts := make([]string, len(outboxPriorities))
	for i, p := range outboxPriorities {
		parts[i] = `SELECT (SELECT not_before FROM outbox WHERE state = 'pending' AND channel = ` + param +
			` AND priority = ` + strconv.Itoa(p) + ` AND lease_until <= not_before ORDER BY not_before LIMIT 1) AS x`
	}
	return `SELECT MIN(x) FROM (` + strings.Join(parts, " UNION ALL ") + `) AS t`
}

func outboxPriority(kind string) int {
	if kind == OutboxNotice {
		return 1
	}
	return 0
}

func checkOutboxMessage(m OutboxMessage) error {
	if err := notEmpty("outbox message id, kind or channel", m.ID, m.Kind, m.Channel); err != nil {
		return err
	}
	switch m.Kind {
	case OutboxCode, OutboxNotice, OutboxDecoy:
	default:
		return fmt.Errorf("%w: unknown outbox message kind", ErrInvalid)
	}
	if m.ExpiresAt.IsZero() || m.CreatedAt.IsZero() {
		return fmt.Errorf("%w: an outbox message needs its creation and expiry times", ErrInvalid)
	}
	return nil
}

func checkFinishState(state string) error {
	switch state {
	case OutboxSent, OutboxExpired, OutboxFailed, OutboxDiscarded:
		return nil
	}
	return fmt.Errorf("%w: unknown outbox message state", ErrInvalid)
}

func (k *keys) sealOutboxBody(m OutboxMessage) []byte {
	return k.seal(m.Body, outboxAAD(m.ID))
}

func (k *keys) openOutboxBody(m *OutboxMessage, enc []byte) error {
	if enc == nil {
		m.Body = nil
		return nil
	}
	b, err := k.open(enc, outboxAAD(m.ID))
	if err != nil {
		return err
	}
	m.Body = b
	return nil
}

// notBefore is m.NotBefore, or CreatedAt when unset.
func outboxNotBefore(m OutboxMessage) time.Time {
	if m.NotBefore.IsZero() {
		return m.CreatedAt
	}
	return m.NotBefore
}

// sortOutbox orders claimed messages as the claim chose them (RETURNING
// keeps no order): codes and decoys first, then the oldest.
func sortOutbox(ms []OutboxMessage) {
	slices.SortFunc(ms, func(a, b OutboxMessage) int {
		if c := outboxPriority(a.Kind) - outboxPriority(b.Kind); c != 0 {
			return c
		}
		return a.NotBefore.Compare(b.NotBefore)
	})
}
