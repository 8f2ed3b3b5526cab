package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them; test with errors.Is.
var (
	// ErrNotFound is returned when the requested row does not exist, does
	// not belong to the given account, or has expired. Callers must treat
	// "expired" and "never existed" alike.
	ErrNotFound = errors.New("store: not found")

	// ErrCodeMismatch is returned by RedeemCode when a live code exists but
	// the hash differs. The wrong try has been counted (and the code deleted
	// if it was the last allowed try).
	ErrCodeMismatch = errors.New("store: wrong code")

	// ErrConflict is returned when an optimistic-concurrency check fails
	// (UpdateFlow with a stale Version) or when a row with the same ID
	// already exists (AddMethod, CreateFlow, CreateSession).
	ErrConflict = errors.New("store: conflict")

	// ErrInvalid is returned (wrapped, with a description that never holds
	// the offending value) when an argument is refused: an empty or too short
	// ID, an empty hash, a non-positive window, a flow whose Kind or AccountID
	// an update tries to change, and the like. It signals a caller bug.
	ErrInvalid = errors.New("store: invalid argument")

	// ErrLimit is returned by AddMethodWithin when the account already has
	// as many methods as the limit allows.
	ErrLimit = errors.New("store: limit reached")
)

// MinSecretIDLen is the shortest Flow.ID or Session.ID the store accepts
// (in bytes of the string). IDs must be >= 128-bit CSPRNG values; 16
// characters is only a floor that catches obvious mistakes, it cannot
// measure entropy. A lookup with a shorter ID is answered with ErrNotFound.
const MinSecretIDLen = 16

// Method types known to the store. Type is free text to the store (TOTP and
// other methods can follow); only these two get address normalization for
// the blind index.
const (
	MethodEmail = "email"
	MethodSMS   = "sms"
)

// Flow kinds.
const (
	FlowReset    = "reset"
	FlowUnlock   = "unlock"
	FlowRegister = "register"
)

// Session kinds (Session.Kind).
const (
	// SessionAdmin is an admin console session. A registration session's
	// kind is "".
	SessionAdmin = "admin"
)

// Audit limits for ListAudit.
const (
	DefaultAuditLimit = 100  // used when AuditQuery.Limit <= 0
	MaxAuditLimit     = 1000 // larger limits are lowered to this
)

// Method is a recovery contact registered by an account.
type Method struct {
	// ID identifies the method within its account; made by the caller.
	ID string
	// AccountID is the directory's immutable id of the owner.
	AccountID string
	// Type is MethodEmail or MethodSMS (or a later method type).
	Type string
	// Address is the destination of an email or SMS method (see
	// HasDestination) in plaintext; empty for every other type. It is
	// encrypted at rest and returned exactly as given to AddMethod (not
	// normalized).
	Address string
	// Secret is what a method of any other type proves itself with: an
	// authenticator app's seed, the hashes of security answers, a passkey's
	// credential record. Empty for an email or SMS method. It is encrypted
	// at rest like an address, in the same column (rows written before
	// Secret existed, with the secret in Address, read back in Secret), and
	// returned exactly as given.
	Secret string
	// Verified is set by VerifyMethod once the user proved control.
	Verified bool
	// CreatedAt is when the method was added; ListMethods orders by it.
	CreatedAt time.Time
	// VerifiedAt is the last VerifyMethod time; zero while unverified.
	VerifiedAt time.Time
}

// Flow is the state of one reset, unlock or register flow.
type Flow struct {
	// ID is a bearer secret (>= 128-bit CSPRNG, at least MinSecretIDLen
	// characters) made by the caller. Only SHA-256(ID) is stored.
	ID string
	// Kind is FlowReset, FlowUnlock or FlowRegister. Fixed at creation.
	Kind string
	// AccountID is the account the flow is bound to; "" is allowed for
	// decoy flows started for unknown or ineligible users. Fixed at creation.
	AccountID string
	// Required is the number of distinct methods to prove.
	Required int
	// Verified lists the method ids proven in this flow. Nil when empty.
	Verified []string
	// Data is small extra state, encrypted at rest. Nil when empty.
	Data map[string]string
	// CreatedAt is fixed at creation.
	CreatedAt time.Time
	// ExpiresAt: the flow is live while now < ExpiresAt.
	ExpiresAt time.Time
	// Version is the optimistic-concurrency counter. CreateFlow stores it as
	// given (normally 0); each successful UpdateFlow increments it by one.
	Version int
}

// Code is a one-time code bound to one flow, one purpose and one method.
type Code struct {
	// FlowID is the flow's bearer ID (stored hashed). The flow must exist.
	FlowID string
	// Purpose says what the code is for (e.g. "reset", "register-email").
	Purpose string
	// MethodID is the method the code was sent to.
	MethodID string
	// AccountID must equal the flow's AccountID.
	AccountID string
	// Hash is the caller's hash (an HMAC) of the code; never the code.
	Hash []byte
	// ExpiresAt: the code is live while now < ExpiresAt (and its flow is live).
	ExpiresAt time.Time
	// Tries is the number of wrong tries already counted, normally 0.
	Tries int
}

// Session is a signed-in session (web or API): a registration session or
// an admin console session.
type Session struct {
	// ID is a bearer secret like Flow.ID; only SHA-256(ID) is stored.
	ID string
	// Kind is "" for a registration session, SessionAdmin for an admin
	// console session. Fixed at creation; sessions made before schema
	// version 4 read back as "".
	Kind string
	// AccountID is the directory's immutable id of the user.
	AccountID string
	// Username is the name the user signed in with (for display).
	Username string
	// CreatedAt is when the session was created.
	CreatedAt time.Time
	// AuthAt is when the password was last entered (sign-in or re-entry).
	AuthAt time.Time
	// LastSeen is the last activity, for idle timeouts (the caller checks it).
	LastSeen time.Time
	// ExpiresAt is the absolute expiry: live while now < ExpiresAt.
	ExpiresAt time.Time
}

// AuditEvent is one audit record. Audit events are append-only: no method
// of Store changes them, Purge keeps them, and only PurgeAudit deletes
// them, once they are older than the retention.
type AuditEvent struct {
	// Seq is the event's own sequence number in the store (the audit
	// row's id), set by ListAudit (AppendAudit ignores it): unique, larger
	// for an event appended later (on PostgreSQL: inserted later; of
	// concurrent transactions the later may commit first). See
	// AuditQuery.BeforeSeq.
	Seq       int64
	Time      time.Time
	Type      string // e.g. "reset.started", Entra vocabulary
	RequestID string
	ClientIP  string
	AccountID string
	Outcome   string
	Details   map[string]string // nil when empty; stored in plaintext
}

// HeldNotice is what a budget held back of the notices to one account:
// the events, to be told in one notice once DueAt has passed.
type HeldNotice struct {
	// AccountID is the directory's immutable id of the account.
	AccountID string
	// Events are the names of the notices held, each once, in the order
	// they were first held.
	Events []string
	// Data is what the sender needs to reach the user, encrypted at rest.
	// Nil when empty.
	Data map[string]string
	// SMSOnly: only SMS copies were held (the other channels were told).
	SMSOnly bool
	// HeldAt is when the first of the events was held.
	HeldAt time.Time
	// DueAt is when the notice may be sent.
	DueAt time.Time
}

// StoredSettings is the admin console's settings document (one per store).
// It is kept in plaintext: settings never hold secrets.
type StoredSettings struct {
	// Version is 1 for the first save, then one more per save.
	Version int
	// Body is JSON, kept exactly as given; the store does not read it.
	Body []byte
	// UpdatedAt is when it was saved (stored to the microsecond).
	UpdatedAt time.Time
	// UpdatedBy is the account id of the admin who saved it.
	UpdatedBy string
}

// AuditQuery selects audit events for ListAudit. Zero fields do not filter.
type AuditQuery struct {
	AccountID string    // only this account's events
	Type      string    // only events of this type
	Since     time.Time // only events with Time >= Since
	Until     time.Time // only events with Time < Until (to page, use BeforeSeq)
	Outcome   string    // only events with this outcome
	// TypePrefix: only events whose type starts with it (e.g. "reset."),
	// compared byte by byte; ErrInvalid if it is not valid UTF-8.
	TypePrefix string
	// BeforeSeq > 0: only the events ListAudit's order puts after the
	// event whose Seq it is (older, or as old and appended earlier; where
	// times follow the order of appends, these are exactly the events with
	// Seq < BeforeSeq). For paging newest first: pass
	// the last Seq of a page to get the next one; the pages cover every
	// event stored when the first was read exactly once, also while
	// events are appended (those come in later pages only if older than
	// the last event read). No events when no event has that Seq
	// (PurgeAudit deleted it, and with it every older one).
	BeforeSeq int64
	// Limit is the maximum number of events: <= 0 means DefaultAuditLimit,
	// larger than MaxAuditLimit means MaxAuditLimit.
	Limit int
}

// Store is Latchkey's state. Implementations are safe for concurrent use by
// many goroutines and, where the backend allows it, by many processes
// sharing the same database. Every method that takes an ID of a bearer
// secret hashes it before use; IDs never appear in errors.
type Store interface {
	// AddMethod stores a new recovery method. m.ID, m.AccountID and m.Type
	// must be non-empty, and m.Address for an email or SMS method, m.Secret
	// for any other (the other one empty), else ErrInvalid. ErrConflict if
	// the account already has a method with m.ID.
	AddMethod(ctx context.Context, m Method) error
	// GetMethod returns one method of the account; ErrNotFound if the
	// account has no method with that id.
	GetMethod(ctx context.Context, accountID, methodID string) (Method, error)
	// ListMethods returns the account's methods ordered by CreatedAt (then
	// ID); an empty slice and nil error when there are none.
	ListMethods(ctx context.Context, accountID string) ([]Method, error)
	// SwapMethodAddress replaces the method's stored value (its Address,
	// or its Secret for a type that keeps one; "address" below) with
	// newAddress if the stored one is still exactly oldAddress
	// (compare-and-swap):
	// of concurrent callers that read the same address, in any number of
	// processes, exactly one succeeds. ErrConflict if the stored address
	// differs from oldAddress; ErrNotFound if the account has no method
	// with that id; ErrInvalid if newAddress is empty. The new address is
	// encrypted at rest and its blind index replaces the old one; Type,
	// Verified, CreatedAt, VerifiedAt and the method's codes are kept. It
	// is meant for state kept inside a secret (a passkey's signature
	// counter), not for moving a verified method to an unproven destination.
	SwapMethodAddress(ctx context.Context, accountID, methodID, oldAddress, newAddress string) error
	// VerifyMethod marks the method verified and sets VerifiedAt to at
	// (again on re-verification). ErrNotFound if missing.
	VerifyMethod(ctx context.Context, accountID, methodID string, at time.Time) error
	// DeleteMethod removes the method and every outstanding code bound to
	// it. ErrNotFound if missing.
	DeleteMethod(ctx context.Context, accountID, methodID string) error
	// CountAccountsByAddress returns how many distinct accounts have a
	// VERIFIED method of type typ with this address, or this secret for a
	// type that keeps one (compared after
	// NormalizeAddress: emails trimmed and lower-cased, phone numbers
	// reduced to '+' and digits, a record with an "index" member by that
	// member alone). Unverified methods do not count, so nobody can
	// inflate the count for someone else's address without proving it.
	CountAccountsByAddress(ctx context.Context, typ, address string) (int, error)
	// AddMethodWithin is AddMethod that first counts the account's methods
	// (verified or not) and refuses with ErrLimit when there are limit or
	// more, atomically: of concurrent callers, in any number of processes,
	// no more succeed than the limit leaves room for. limit must be >= 1.
	AddMethodWithin(ctx context.Context, m Method, limit int) error
	// SampleMethods returns the methods verified before the given time of
	// up to maxAccounts accounts, the most recently verified accounts first,
	// every such method of each account included, grouped by account. It exists for aggregate
	// statistics (the shape of the fake methods shown for unknown names);
	// callers must not return its addresses to anyone.
	SampleMethods(ctx context.Context, maxAccounts int, before time.Time) ([]Method, error)

	// CreateFlow stores a new flow. ErrConflict if a flow with f.ID exists.
	CreateFlow(ctx context.Context, f Flow) error
	// GetFlow returns the flow with this ID, with ID set to id.
	// ErrNotFound when missing or expired (now >= ExpiresAt).
	GetFlow(ctx context.Context, id string, now time.Time) (Flow, error)
	// UpdateFlow replaces Required, Verified, Data and ExpiresAt of the
	// stored flow if its version is still f.Version, and stores version
	// f.Version+1 (a caller that keeps using f must increment f.Version).
	// ErrConflict if the stored version differs; ErrNotFound if missing or
	// expired at the current wall-clock time (an expired flow cannot be
	// revived by moving ExpiresAt); ErrInvalid if f.Kind or f.AccountID differ
	// from the stored flow (a flow never changes owner or kind).
	UpdateFlow(ctx context.Context, f Flow) error
	// RotateFlow is UpdateFlow that also gives the flow a new bearer ID:
	// afterwards the flow and its live codes answer to newID only, and f.ID
	// is gone (ErrNotFound). newID must be a fresh secret like Flow.ID;
	// ErrConflict if it is taken. Used when a flow gains privileges (a
	// method proven), so that an ID seen or planted before cannot ride them.
	RotateFlow(ctx context.Context, f Flow, newID string) error
	// DeleteFlow removes the flow and its codes. Deleting a missing flow is
	// not an error.
	DeleteFlow(ctx context.Context, id string) error
	// DeleteFlowsForAccount removes every flow (and code) of the account;
	// call it on any password change. accountID must not be empty.
	DeleteFlowsForAccount(ctx context.Context, accountID string) error

	// IssueCode stores c as the one live code for (c.FlowID, c.Purpose,
	// c.MethodID), replacing any previous one (and its tries count).
	// ErrNotFound if the flow does not exist; ErrInvalid if c.AccountID is
	// not the flow's account or c.Hash is empty.
	IssueCode(ctx context.Context, c Code) error
	// RedeemCode checks hash against the live code for (flowID, purpose,
	// methodID), atomically (exactly one of any number of concurrent
	// callers, in any number of processes, can succeed):
	//   - no live code (never issued, already used, dead, expired, or its
	//     flow expired) -> ErrNotFound;
	//   - hash differs -> the try is counted and ErrCodeMismatch is returned;
	//     the code is deleted once its tries reach maxTries;
	//   - hash matches -> the code is deleted and nil is returned.
	// maxTries must be >= 1. The caller still has to bound guesses per
	// account across re-issued codes (with Hit).
	RedeemCode(ctx context.Context, flowID, purpose, methodID string, hash []byte, maxTries int, now time.Time) error

	// CreateSession stores a new session. ErrConflict if the ID exists.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session with ID set to id. ErrNotFound when
	// missing or expired (now >= ExpiresAt). Idle timeouts are the
	// caller's check on LastSeen.
	GetSession(ctx context.Context, id string, now time.Time) (Session, error)
	// TouchSession sets LastSeen. ErrNotFound if missing or expired at
	// lastSeen.
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	// SetSessionAuthTime sets AuthAt ("password re-entered at").
	// ErrNotFound if missing or expired at t.
	SetSessionAuthTime(ctx context.Context, id string, t time.Time) error
	// DeleteSession removes the session. Deleting a missing session is not
	// an error.
	DeleteSession(ctx context.Context, id string) error
	// DeleteSessionsForAccount removes every session of the account.
	// accountID must not be empty.
	DeleteSessionsForAccount(ctx context.Context, accountID string) error

	// Hit adds one to key's counter for the fixed window of length window
	// that contains now (windows are aligned to the Unix epoch) and returns
	// the new count. Atomic: N concurrent hits return 1..N. Keys are stored
	// only as a keyed hash, so they may contain addresses or IPs.
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	// Count returns key's count for the window containing now (0 if none).
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	// Unhit takes back one Hit of key made at time at (the now given to
	// that Hit, so that the hit's own window is the one that drops), never
	// below zero; a window with no count is left alone. For budgets that
	// count a try before its outcome is known and keep only the failures.
	Unhit(ctx context.Context, key string, window time.Duration, at time.Time) error
	// Reset forgets every window of key (e.g. failures after a success).
	Reset(ctx context.Context, key string) error

	// HoldNotice merges n into the account's held notice, creating it if
	// there is none: events not held yet are appended, Data is replaced
	// when n has any, SMSOnly stays only if both are SMS-only, HeldAt and
	// DueAt keep the earlier value. n.AccountID and at least one event are
	// required (ErrInvalid).
	HoldNotice(ctx context.Context, n HeldNotice) error
	// TakeDueNotices removes and returns up to limit held notices whose
	// DueAt is at or before now, the earliest due first. Each held notice
	// is returned to exactly one caller, in any number of processes.
	// limit must be >= 1.
	TakeDueNotices(ctx context.Context, now time.Time, limit int) ([]HeldNotice, error)

	// AppendAudit stores one audit event. e.Type must not be empty.
	AppendAudit(ctx context.Context, e AuditEvent) error
	// ListAudit returns matching events newest first (ties: the later
	// appended first), each with its Seq.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)

	// GetSettings returns the stored settings; ErrNotFound when none was
	// ever saved.
	GetSettings(ctx context.Context) (StoredSettings, error)
	// SaveSettings stores s.Body, s.UpdatedAt and s.UpdatedBy as version
	// prev+1 if the stored version is still prev (prev 0: none stored
	// yet), atomically across any number of processes: of concurrent saves
	// from one prev, exactly one succeeds. ErrConflict otherwise, and
	// nothing is written. events are appended (as AppendAudit) in the same
	// transaction: on any error none is. Returns the settings as stored
	// (Version set, UpdatedAt as GetSettings returns it). ErrInvalid for an
	// empty body, a body that is not valid UTF-8, or prev < 0.
	SaveSettings(ctx context.Context, prev int, s StoredSettings, events []AuditEvent) (StoredSettings, error)
	// SettingsVersion returns the stored settings' version (0 when none
	// was ever saved) with one cheap read: every instance polls it every
	// second or two.
	SettingsVersion(ctx context.Context) (int, error)

	// Purge deletes expired flows, codes and sessions and counter windows
	// that ended at or before now, and returns how many rows it deleted.
	// Audit events are kept.
	Purge(ctx context.Context, now time.Time) (int, error)
	// PurgeAudit deletes the audit events with Time before before (the
	// retention's end), in batches, and returns how many it deleted.
	// ErrInvalid if before is zero.
	PurgeAudit(ctx context.Context, before time.Time) (int, error)
	// Ping checks that the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store. Calling it more than once is allowed.
	Close() error

	// The writes of the start of a reset or unlock, in two transactions.
	StartRecorder

	// Mail and SMS waiting to be sent (outbox.go).
	Outbox
}

// PasswordWriteRecorder is implemented by stores that record what follows a
// successful password write in one transaction instead of several (one
// commit on the single SQLite writer instead of several queued ones): the
// account's counters named by resetKeys forgotten (as Reset), its flows
// and, when sessions is true, its sessions deleted (as
// DeleteFlowsForAccount and DeleteSessionsForAccount), e appended (as
// AppendAudit) and the notices msgs written to the outbox (as
// EnqueueMessage): the record of the write and the messages that tell of
// it are kept or lost together. Callers fall back to the single calls
// when a store does not implement it.
type PasswordWriteRecorder interface {
	AfterPasswordWrite(ctx context.Context, accountID string, resetKeys []string, sessions bool, e AuditEvent, msgs ...OutboxMessage) error
}

// CounterHit is one counter of a batch (see StartRecorder): Hit(Key, Window).
type CounterHit struct {
	Key    string
	Window time.Duration
	// Limit > 0 makes the hit a guard of its batch (see HitMany): the
	// hits after it are counted only if this count stays <= Limit.
	Limit int
}

// StartRecorder is implemented by stores that can group the writes of a
// reset or unlock start (three counters, the flow, one or two audit events)
// into two transactions instead of five or six. Part of Store.
type StartRecorder interface {
	// HitMany is Hit for each of hits (at now) in one transaction: either
	// every counter is counted or none is (and an error is returned). The
	// counts are in the order of hits, each as exact as Hit's under
	// concurrency, across instances.
	//
	// A hit with a Limit is a guard: once a guard's new count is over its
	// Limit, the hits after it are not counted and their counts are 0. So
	// a request over one budget does not spend the next ones: of N
	// concurrent batches guarded by one key with Limit L, exactly min(N, L)
	// count the keys after it. A batch with a guard is counted in the
	// order given (PostgreSQL takes the row locks in that order), so
	// callers must name keys that batches share in one order; a batch
	// without one is counted in an order of the store's choosing.
	HitMany(ctx context.Context, hits []CounterHit, now time.Time) ([]int, error)
	// HitCreateFlow hits h (as Hit) and, in the same transaction, calls
	// pick with the new count and creates the flow it returns (as
	// CreateFlow) and appends its events in order (as AppendAudit). pick
	// must not use the store. On any error (ErrConflict if the flow's ID
	// exists, ErrInvalid for an invalid flow or event) nothing is written,
	// the count included. Returns the count.
	HitCreateFlow(ctx context.Context, h CounterHit, now time.Time, pick func(count int) (Flow, []AuditEvent)) (int, error)
}
