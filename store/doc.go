// Package store owns Latchkey's server-side state: recovery methods
// (enrollment), in-flight reset/unlock/register flows, one-time codes,
// registration sessions, rate-limit counters and audit events.
//
// The [Store] interface is the contract; [SQLite] is the embedded
// implementation (pure Go, modernc.org/sqlite), [Postgres] the one for
// several gateway instances sharing state (jackc/pgx). Both pass the same
// conformance suite in package storetest; package pgtest starts the real
// PostgreSQL server the tests use. Both apply versioned schema migrations
// when opened and report them as a [Migration].
//
// What is kept at rest, and how:
//   - Flow and session IDs are bearer secrets: only SHA-256(ID) is stored and
//     lookups hash their input. An ID is returned to callers only as they
//     passed it in.
//   - Code values are never seen by the store: the caller passes a hash (an
//     HMAC of the code) and the store compares hashes in constant time.
//   - Method addresses (email addresses, phone numbers: Method.Address),
//     method secrets (authenticator app seeds, security answer hashes,
//     passkey credential records: Method.Secret) and Flow.Data are
//     encrypted with AES-256-GCM under a key derived from the key given to
//     the constructor, which is never written to the database. A method's
//     address or secret is kept in one column (address_enc; which field it
//     reads back into follows the method type: [HasDestination]), so rows
//     written before Method.Secret existed read back the same. A keyed HMAC
//     "blind index" of the normalized value lets [Store.CountAccountsByAddress]
//     work without decrypting (for a JSON record secret with an "index"
//     member, of that member: see [NormalizeAddress]).
//     [Store.SwapMethodAddress] replaces an address only if the stored one
//     is still the one the caller read, decrypting it in a transaction that
//     holds the row (PostgreSQL) or the write lock (SQLite).
//   - Rate-limit counter keys (which may contain addresses or IPs) are stored
//     only as a keyed HMAC.
//   - Everything else is plaintext: account ids, method ids and types,
//     Session.Username, code purposes and the whole of every AuditEvent. Do
//     not put addresses or secrets there.
//
// Errors: [ErrNotFound] means missing or expired, [ErrCodeMismatch] means a
// wrong code was counted, [ErrConflict] means an optimistic-concurrency loss
// or an ID that already exists, [ErrInvalid] means the caller passed an
// argument the store refuses. Compare with errors.Is. No error string
// contains an address, ID, code hash or key.
//
// Times are stored in UTC with microsecond precision: every time.Time the
// store returns is in UTC and truncated to whole microseconds. A zero
// time.Time round-trips as zero.
package store
