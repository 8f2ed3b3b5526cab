package store

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed postgres_schema.sql
var pgSchemaV1 string

//go:embed postgres_schema_v2.sql
var pgSchemaV2 string

//go:embed postgres_schema_v3.sql
var pgSchemaV3 string

//go:embed postgres_schema_v4.sql
var pgSchemaV4 string

// pgMigrations[i] brings the PostgreSQL schema from version i to version
// i+1. Append new migrations; never edit a released one. Keep the version
// numbers in step with the SQLite migrations where the change is the same.
var pgMigrations = []string{pgSchemaV1, pgSchemaV2, pgSchemaV3, pgSchemaV4}

// pgMigrationLock is the key of the transaction-scoped advisory lock that
// serializes migrations: instances starting at once wait for the first one
// to migrate, then find the schema current. Advisory locks are per
// database, so stores in other databases of the same server do not wait.
const pgMigrationLock int64 = 0x6c61_7463_686b_6579 // "latchkey"

// PostgresOptions are the settings of OpenPostgres beyond the DSN.
type PostgresOptions struct {
	// AllowPlaintext accepts a connection to a host that is neither a
	// loopback address nor a Unix socket without certificate verification
	// (any sslmode other than verify-full). Off by default: the connection
	// carries addresses, hashes and audit events.
	AllowPlaintext bool
	// NoMigrate opens the store without changing its schema. A schema
	// older than MinSchemaVersion (an empty database included) is
	// ErrSchemaBehind, a newer one than SchemaVersion ErrSchemaNewer; one
	// in between is served.
	NoMigrate bool
}

// Postgres is the Store implementation on PostgreSQL (jackc/pgx), for
// several gateway instances sharing state. Every instance may run
// migrations at start (they serialize on an advisory lock), and every
// operation is atomic across instances: RedeemCode locks the code row
// (SELECT ... FOR UPDATE) for its read-compare-write, UpdateFlow and
// RotateFlow are single conditional UPDATEs on the version, and Hit is one
// INSERT ... ON CONFLICT DO UPDATE ... RETURNING.
//
// Encryption at rest and blind indexes are the same as SQLite's (same key
// derivation, same AAD), so the same key reads both.
type Postgres struct {
	pool      *pgxpool.Pool
	k         *keys
	migration Migration

	closeOnce sync.Once
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the PostgreSQL database named by dsn, applies
// pending schema migrations and checks that key is the key the database was
// created with.
//
// dsn is a libpq connection string, as a URL
// ("postgres://latchkey@db.example.org/latchkey?sslmode=verify-full&sslrootcert=/etc/latchkey/pg-ca.pem")
// or as keywords ("host=/run/postgresql dbname=latchkey"), including pgx's
// pool settings (pool_max_conns=...). As with libpq, PG* environment
// variables fill what it leaves out. A host that is neither loopback nor a
// Unix socket must be reached with sslmode=verify-full unless
// opts.AllowPlaintext is set. Error messages never contain the DSN.
//
// key must be at least MinKeyLen random bytes; it is never stored.
func OpenPostgres(ctx context.Context, dsn string, key []byte, opts PostgresOptions) (*Postgres, error) {
	k, err := deriveKeys(key)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN (with a best-effort redaction of the
		// password) and url.Parse's quotes it whole: say less.
		return nil, fmt.Errorf("%w: the PostgreSQL DSN cannot be parsed (check its syntax; the details are withheld because it may hold a password)", ErrInvalid)
	}
	if !opts.AllowPlaintext {
		if err := checkPostgresTLS(cfg.ConnConfig); err != nil {
			return nil, err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	s := &Postgres{pool: pool, k: k}
	open := s.migrate
	if opts.NoMigrate {
		open = s.inspect
	}
	if err := open(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// checkPostgresTLS refuses a configuration that could talk to a remote host
// without a verified TLS connection: every host tried (the first and each
// fallback) must be a Unix socket, a loopback address, or reached over TLS
// with the certificate and the host name verified (sslmode=verify-full).
func checkPostgresTLS(c *pgx.ConnConfig) error {
	type target struct {
		host string
		tls  bool
	}
	targets := []target{{c.Host, c.TLSConfig != nil && !c.TLSConfig.InsecureSkipVerify}}
	for _, fb := range c.Fallbacks {
		targets = append(targets, target{fb.Host, fb.TLSConfig != nil && !fb.TLSConfig.InsecureSkipVerify})
	}
	for _, t := range targets {
		if t.tls || IsLocalPostgresHost(t.host) {
			continue
		}
		return fmt.Errorf("%w: PostgreSQL host %s is not loopback or a Unix socket: use sslmode=verify-full "+
			"(with sslrootcert= the server's CA), or allow it explicitly (store.allow_plaintext)", ErrInvalid, t.host)
	}
	return nil
}

// IsLocalPostgresHost reports whether host (as in a PostgreSQL DSN) is a
// Unix socket directory (an absolute path, or an abstract socket starting
// with '@'), "localhost" or a loopback IP address: the hosts that
// PostgresOptions.AllowPlaintext is not needed for.
func IsLocalPostgresHost(host string) bool {
	if strings.HasPrefix(host, "/") || strings.HasPrefix(host, "@") {
		return true
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// migrate creates or upgrades the schema and checks the key, in one
// transaction holding an advisory lock, so that instances starting at once
// migrate once.
func (s *Postgres) migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgMigrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return err
		}
		if v > len(pgMigrations) {
			return newer(v)
		}
		s.migration = Migration{From: v, To: len(pgMigrations)}
		for i := v; i < len(pgMigrations); i++ {
			if _, err := tx.Exec(ctx, pgMigrations[i]); err != nil {
				return fmt.Errorf("store: migrate to version %d: %w", i+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)`,
				i+1, time.Now()); err != nil {
				return fmt.Errorf("store: migrate to version %d: %w", i+1, err)
			}
		}
		var check []byte
		err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&check)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO meta (name, value) VALUES ('key_check', $1)`, s.k.keyCheck); err != nil {
				return err
			}
		case err != nil:
			return err
		case !hmacEqual(check, s.k.keyCheck):
			return errors.New("store: the key does not match the one this database was created with")
		}
		return nil
	})
	if err != nil && !strings.HasPrefix(err.Error(), "store: ") {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return err
}

// inspect reads the schema version and checks the key in a read-only
// transaction (PostgresOptions.NoMigrate).
func (s *Postgres) inspect(ctx context.Context) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
			return err
		}
		v := 0
		if exists {
			if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
				return err
			}
		}
		if err := servable(v); err != nil {
			return err
		}
		var check []byte
		err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&check)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return behind(v)
		case err != nil:
			return err
		case !hmacEqual(check, s.k.keyCheck):
			return errors.New("store: the key does not match the one this database was created with")
		}
		s.migration = Migration{From: v, To: v}
		return nil
	})
	if err != nil && !strings.HasPrefix(err.Error(), "store: ") {
		return fmt.Errorf("store: open postgres: %w", err)
	}
	return err
}

// Migration reports the schema versions found and left by OpenPostgres.
func (s *Postgres) Migration() Migration { return s.migration }

// Ping implements Store.
func (s *Postgres) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close implements Store. It waits for connections in use to be returned
// and closes the pool.
func (s *Postgres) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// ---- value encoding ----

// pgTime is t for a nullable timestamptz column: NULL for a zero time.
func pgTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func fromPGTime(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
)

// ---- methods ----

// AddMethod implements Store.
func (s *Postgres) AddMethod(ctx context.Context, m Method) error {
	enc, idx, err := s.k.sealMethod(m)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO methods
		(account_id, id, type, address_enc, address_idx, verified, created_at, verified_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		m.AccountID, m.ID, m.Type, enc, idx, m.Verified, m.CreatedAt, pgTime(m.VerifiedAt))
	if err != nil {
		return fmt.Errorf("store: add method: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: add method: %w", ErrConflict)
	}
	return nil
}

func (s *Postgres) scanMethod(row pgx.Row) (Method, error) {
	var (
		m          Method
		enc        []byte
		created    time.Time
		verifiedAt pgtype.Timestamptz
	)
	if err := row.Scan(&m.AccountID, &m.ID, &m.Type, &enc, &m.Verified, &created, &verifiedAt); err != nil {
		return Method{}, err
	}
	if err := s.k.openMethod(&m, enc); err != nil {
		return Method{}, err
	}
	m.CreatedAt = created.UTC()
	m.VerifiedAt = fromPGTime(verifiedAt)
	return m, nil
}

func (s *Postgres) queryMethods(ctx context.Context, op, query string, args ...any) ([]Method, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	out := []Method{}
	for rows.Next() {
		m, err := s.scanMethod(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

// GetMethod implements Store.
func (s *Postgres) GetMethod(ctx context.Context, accountID, methodID string) (Method, error) {
	m, err := s.scanMethod(s.pool.QueryRow(ctx, `SELECT `+methodColumns+` FROM methods WHERE account_id = $1 AND id = $2`,
		accountID, methodID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Method{}, fmt.Errorf("store: get method: %w", ErrNotFound)
	}
	if err != nil {
		return Method{}, fmt.Errorf("store: get method: %w", err)
	}
	return m, nil
}

// ListMethods implements Store.
func (s *Postgres) ListMethods(ctx context.Context, accountID string) ([]Method, error) {
	return s.queryMethods(ctx, "list methods", `SELECT `+methodColumns+` FROM methods
		WHERE account_id = $1 ORDER BY created_at, id`, accountID)
}

// SampleMethods implements Store.
func (s *Postgres) SampleMethods(ctx context.Context, maxAccounts int, before time.Time) ([]Method, error) {
	if maxAccounts <= 0 {
		return []Method{}, nil
	}
	return s.queryMethods(ctx, "sample methods", `SELECT `+methodColumns+` FROM methods
		WHERE verified AND verified_at < $1 AND account_id IN (
			SELECT account_id FROM methods WHERE verified AND verified_at < $1
			GROUP BY account_id ORDER BY MAX(verified_at) DESC, account_id LIMIT $2)
		ORDER BY account_id, created_at, id`, before, maxAccounts)
}

// VerifyMethod implements Store.
func (s *Postgres) VerifyMethod(ctx context.Context, accountID, methodID string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE methods SET verified = true, verified_at = $1
		WHERE account_id = $2 AND id = $3`, pgTime(at), accountID, methodID)
	if err != nil {
		return fmt.Errorf("store: verify method: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: verify method: %w", ErrNotFound)
	}
	return nil
}

// SwapMethodAddress implements Store. The row is locked (SELECT ... FOR
// UPDATE) for the compare and the write, so a concurrent swap waits and
// then sees the new address.
func (s *Postgres) SwapMethodAddress(ctx context.Context, accountID, methodID, oldAddress, newAddress string) error {
	if newAddress == "" {
		return fmt.Errorf("%w: empty address", ErrInvalid)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			typ string
			enc []byte
		)
		err := tx.QueryRow(ctx, `SELECT type, address_enc FROM methods WHERE account_id = $1 AND id = $2 FOR UPDATE`,
			accountID, methodID).Scan(&typ, &enc)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: swap method address: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: swap method address: %w", err)
		}
		bind := methodAAD(accountID, methodID, typ)
		cur, err := s.k.open(enc, bind)
		if err != nil {
			return fmt.Errorf("store: swap method address: %w", err)
		}
		if subtle.ConstantTimeCompare(cur, []byte(oldAddress)) != 1 {
			return fmt.Errorf("store: swap method address: %w", ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE methods SET address_enc = $1, address_idx = $2
			WHERE account_id = $3 AND id = $4`,
			s.k.seal([]byte(newAddress), bind), s.k.addressIndex(typ, newAddress), accountID, methodID); err != nil {
			return fmt.Errorf("store: swap method address: %w", err)
		}
		return nil
	})
}

// DeleteMethod implements Store.
func (s *Postgres) DeleteMethod(ctx context.Context, accountID, methodID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM methods WHERE account_id = $1 AND id = $2`, accountID, methodID)
		if err != nil {
			return fmt.Errorf("store: delete method: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("store: delete method: %w", ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM codes WHERE account_id = $1 AND method_id = $2`, accountID, methodID); err != nil {
			return fmt.Errorf("store: delete method: %w", err)
		}
		return nil
	})
}

// CountAccountsByAddress implements Store.
func (s *Postgres) CountAccountsByAddress(ctx context.Context, typ, address string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT COUNT(DISTINCT account_id) FROM methods
		WHERE type = $1 AND address_idx = $2 AND verified`, typ, s.k.addressIndex(typ, address)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count accounts by address: %w", err)
	}
	return n, nil
}

// ---- flows ----

// sealFlowData returns the stored form of f.Data, sealed to idHash.
func (s *Postgres) sealFlowData(idHash []byte, f Flow) ([]byte, error) {
	if len(f.Data) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(f.Data)
	if err != nil {
		return nil, fmt.Errorf("store: encode flow: %w", err)
	}
	return s.k.seal(b, flowDataAAD(idHash)), nil
}

// pgVerified is the stored form of Flow.Verified: NULL when empty.
func pgVerified(v []string) any {
	if len(v) == 0 {
		return nil
	}
	return v
}

// CreateFlow implements Store.
func (s *Postgres) CreateFlow(ctx context.Context, f Flow) error {
	return s.createFlow(ctx, s.pool, f)
}

func (s *Postgres) createFlow(ctx context.Context, q pgQuerier, f Flow) error {
	if err := checkSecretID("flow", f.ID); err != nil {
		return err
	}
	if f.Kind == "" {
		return fmt.Errorf("%w: empty flow kind", ErrInvalid)
	}
	h := hashID(f.ID)
	data, err := s.sealFlowData(h, f)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, `INSERT INTO flows
		(id_hash, kind, account_id, required, verified, data_enc, created_at, expires_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		h, f.Kind, f.AccountID, f.Required, pgVerified(f.Verified), data, f.CreatedAt, f.ExpiresAt, f.Version)
	if err != nil {
		return fmt.Errorf("store: create flow: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: create flow: %w", ErrConflict)
	}
	return nil
}

// GetFlow implements Store.
func (s *Postgres) GetFlow(ctx context.Context, id string, now time.Time) (Flow, error) {
	if len(id) < MinSecretIDLen {
		return Flow{}, fmt.Errorf("store: get flow: %w", ErrNotFound)
	}
	h := hashID(id)
	var (
		f                  Flow
		data               []byte
		created, expiresAt time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT kind, account_id, required, verified, data_enc, created_at, expires_at, version
		FROM flows WHERE id_hash = $1 AND expires_at > $2`, h, now).
		Scan(&f.Kind, &f.AccountID, &f.Required, &f.Verified, &data, &created, &expiresAt, &f.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return Flow{}, fmt.Errorf("store: get flow: %w", ErrNotFound)
	}
	if err != nil {
		return Flow{}, fmt.Errorf("store: get flow: %w", err)
	}
	if len(f.Verified) == 0 {
		f.Verified = nil
	}
	if data != nil {
		pt, err := s.k.open(data, flowDataAAD(h))
		if err != nil {
			return Flow{}, fmt.Errorf("store: get flow: %w", err)
		}
		if err := json.Unmarshal(pt, &f.Data); err != nil {
			return Flow{}, fmt.Errorf("store: get flow: decode data: %w", err)
		}
	}
	f.ID = id
	f.CreatedAt = created.UTC()
	f.ExpiresAt = expiresAt.UTC()
	return f, nil
}

// UpdateFlow implements Store.
func (s *Postgres) UpdateFlow(ctx context.Context, f Flow) error {
	return s.updateFlow(ctx, f, "")
}

// RotateFlow implements Store.
func (s *Postgres) RotateFlow(ctx context.Context, f Flow, newID string) error {
	if err := checkSecretID("flow", newID); err != nil {
		return err
	}
	return s.updateFlow(ctx, f, newID)
}

// updateFlow is one conditional UPDATE: it changes the row only if the
// flow is live and still at f.Version with f's kind and account, and, when
// newID is set, also moves the row to newID's hash (the codes follow by ON
// UPDATE CASCADE; a taken newID is a unique violation, so nothing changes).
// Concurrent updaters of one version queue on the row lock; after the
// winner commits, the others re-check the condition against the new row
// and update nothing. When nothing was updated, a read says why.
func (s *Postgres) updateFlow(ctx context.Context, f Flow, newID string) error {
	op := "update flow"
	if newID != "" {
		op = "rotate flow"
	}
	if len(f.ID) < MinSecretIDLen {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	h := hashID(f.ID)
	target := h
	if newID != "" {
		target = hashID(newID)
	}
	data, err := s.sealFlowData(target, f) // flow data is sealed to the ID it is stored under
	if err != nil {
		return err
	}
	now := time.Now()
	tag, err := s.pool.Exec(ctx, `UPDATE flows SET id_hash = $1, required = $2, verified = $3, data_enc = $4,
		expires_at = $5, version = version + 1
		WHERE id_hash = $6 AND version = $7 AND kind = $8 AND account_id = $9 AND expires_at > $10`,
		target, f.Required, pgVerified(f.Verified), data, f.ExpiresAt, h, f.Version, f.Kind, f.AccountID, now)
	if pgCode(err) == pgUniqueViolation {
		return fmt.Errorf("store: %s: %w", op, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var (
		kind, account string
		expiresAt     time.Time
		version       int
	)
	err = s.pool.QueryRow(ctx, `SELECT kind, account_id, expires_at, version FROM flows WHERE id_hash = $1`, h).
		Scan(&kind, &account, &expiresAt, &version)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && !expiresAt.After(now)):
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: %s: %w", op, err)
	case version != f.Version:
		return fmt.Errorf("store: %s: %w", op, ErrConflict)
	case kind != f.Kind || account != f.AccountID:
		return fmt.Errorf("%w: a flow's kind and account cannot change", ErrInvalid)
	default:
		// Changed between the UPDATE and this read; report the lost race.
		return fmt.Errorf("store: %s: %w", op, ErrConflict)
	}
}

// DeleteFlow implements Store.
func (s *Postgres) DeleteFlow(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM flows WHERE id_hash = $1`, hashID(id)); err != nil {
		return fmt.Errorf("store: delete flow: %w", err)
	}
	return nil
}

// DeleteFlowsForAccount implements Store.
func (s *Postgres) DeleteFlowsForAccount(ctx context.Context, accountID string) error {
	if err := notEmpty("account id", accountID); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM flows WHERE account_id = $1`, accountID); err != nil {
		return fmt.Errorf("store: delete flows for account: %w", err)
	}
	return nil
}

// ---- codes ----

// IssueCode implements Store.
func (s *Postgres) IssueCode(ctx context.Context, c Code) error {
	if len(c.Hash) == 0 {
		return fmt.Errorf("%w: empty code hash", ErrInvalid)
	}
	if err := notEmpty("code purpose or method id", c.Purpose, c.MethodID); err != nil {
		return err
	}
	h := hashID(c.FlowID)
	var account string
	err := s.pool.QueryRow(ctx, `SELECT account_id FROM flows WHERE id_hash = $1`, h).Scan(&account)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: issue code: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: issue code: %w", err)
	}
	if account != c.AccountID {
		return fmt.Errorf("%w: code account differs from its flow's", ErrInvalid)
	}
	// A flow's account never changes, so the check above holds; if the flow
	// is deleted or rotated meanwhile, the foreign key refuses the code.
	_, err = s.pool.Exec(ctx, `INSERT INTO codes
		(flow_id, purpose, method_id, account_id, hash, expires_at, tries) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (flow_id, purpose, method_id) DO UPDATE SET
			account_id = excluded.account_id, hash = excluded.hash,
			expires_at = excluded.expires_at, tries = excluded.tries`,
		h, c.Purpose, c.MethodID, c.AccountID, c.Hash, c.ExpiresAt, c.Tries)
	if pgCode(err) == pgForeignKeyViolation {
		return fmt.Errorf("store: issue code: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: issue code: %w", err)
	}
	return nil
}

// RedeemCode implements Store. The code row is locked (SELECT ... FOR
// UPDATE) for the compare and the delete or count: concurrent redeemers in
// any instance queue on the lock, and each one after the first re-reads the
// row as the previous one left it (gone, or with one more try).
func (s *Postgres) RedeemCode(ctx context.Context, flowID, purpose, methodID string, hash []byte, maxTries int, now time.Time) error {
	if maxTries < 1 {
		return fmt.Errorf("%w: maxTries must be at least 1", ErrInvalid)
	}
	h := hashID(flowID)
	var outcome error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			stored                   []byte
			tries                    int
			codeExpires, flowExpires time.Time
		)
		err := tx.QueryRow(ctx, `SELECT c.hash, c.tries, c.expires_at, f.expires_at
			FROM codes c JOIN flows f ON f.id_hash = c.flow_id
			WHERE c.flow_id = $1 AND c.purpose = $2 AND c.method_id = $3
			FOR UPDATE OF c`, h, purpose, methodID).
			Scan(&stored, &tries, &codeExpires, &flowExpires)
		if errors.Is(err, pgx.ErrNoRows) {
			outcome = ErrNotFound
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: redeem code: %w", err)
		}
		del := func() error {
			if _, err := tx.Exec(ctx, `DELETE FROM codes WHERE flow_id = $1 AND purpose = $2 AND method_id = $3`,
				h, purpose, methodID); err != nil {
				return fmt.Errorf("store: redeem code: %w", err)
			}
			return nil
		}
		nowUS := now.UnixMicro()
		switch {
		case codeExpires.UnixMicro() <= nowUS || flowExpires.UnixMicro() <= nowUS || tries >= maxTries:
			outcome = ErrNotFound
			return del()
		case subtle.ConstantTimeCompare(stored, hash) == 1:
			return del()
		case tries+1 >= maxTries:
			outcome = ErrCodeMismatch
			return del()
		default:
			outcome = ErrCodeMismatch
			if _, err := tx.Exec(ctx, `UPDATE codes SET tries = tries + 1
				WHERE flow_id = $1 AND purpose = $2 AND method_id = $3`, h, purpose, methodID); err != nil {
				return fmt.Errorf("store: redeem code: %w", err)
			}
			return nil
		}
	})
	if err != nil {
		return err
	}
	if outcome != nil {
		return fmt.Errorf("store: redeem code: %w", outcome)
	}
	return nil
}

// ---- sessions ----

// CreateSession implements Store.
func (s *Postgres) CreateSession(ctx context.Context, sess Session) error {
	if err := checkSecretID("session", sess.ID); err != nil {
		return err
	}
	if err := notEmpty("session account id", sess.AccountID); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO sessions
		(id_hash, kind, account_id, username, created_at, auth_at, last_seen, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		hashID(sess.ID), sess.Kind, sess.AccountID, sess.Username, sess.CreatedAt,
		pgTime(sess.AuthAt), pgTime(sess.LastSeen), sess.ExpiresAt)
	if err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: create session: %w", ErrConflict)
	}
	return nil
}

// GetSession implements Store.
func (s *Postgres) GetSession(ctx context.Context, id string, now time.Time) (Session, error) {
	if len(id) < MinSecretIDLen {
		return Session{}, fmt.Errorf("store: get session: %w", ErrNotFound)
	}
	var (
		sess               Session
		created, expiresAt time.Time
		authAt, lastSeen   pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, `SELECT kind, account_id, username, created_at, auth_at, last_seen, expires_at
		FROM sessions WHERE id_hash = $1 AND expires_at > $2`, hashID(id), now).
		Scan(&sess.Kind, &sess.AccountID, &sess.Username, &created, &authAt, &lastSeen, &expiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, fmt.Errorf("store: get session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("store: get session: %w", err)
	}
	sess.ID = id
	sess.CreatedAt = created.UTC()
	sess.AuthAt = fromPGTime(authAt)
	sess.LastSeen = fromPGTime(lastSeen)
	sess.ExpiresAt = expiresAt.UTC()
	return sess, nil
}

// setSessionTime sets one time column of a live session.
func (s *Postgres) setSessionTime(ctx context.Context, op, column, id string, t time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET `+column+` = $1 WHERE id_hash = $2 AND expires_at > $3`,
		pgTime(t), hashID(id), t)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return nil
}

// TouchSession implements Store.
func (s *Postgres) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	return s.setSessionTime(ctx, "touch session", "last_seen", id, lastSeen)
}

// SetSessionAuthTime implements Store.
func (s *Postgres) SetSessionAuthTime(ctx context.Context, id string, t time.Time) error {
	return s.setSessionTime(ctx, "set session auth time", "auth_at", id, t)
}

// DeleteSession implements Store.
func (s *Postgres) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, hashID(id)); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// DeleteSessionsForAccount implements Store.
func (s *Postgres) DeleteSessionsForAccount(ctx context.Context, accountID string) error {
	if err := notEmpty("account id", accountID); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE account_id = $1`, accountID); err != nil {
		return fmt.Errorf("store: delete sessions for account: %w", err)
	}
	return nil
}

// ---- counters ----

// Hit implements Store: one INSERT ... ON CONFLICT DO UPDATE ... RETURNING,
// atomic across instances.
func (s *Postgres) Hit(ctx context.Context, key string, w time.Duration, now time.Time) (int, error) {
	return s.hit(ctx, s.pool, key, w, now)
}

// pgQuerier is the pool or a transaction.
type pgQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ pgQuerier = (*pgxpool.Pool)(nil)
	_ pgQuerier = pgx.Tx(nil)
)

func (s *Postgres) hit(ctx context.Context, q pgQuerier, key string, w time.Duration, now time.Time) (int, error) {
	length, start, err := window(w, now)
	if err != nil {
		return 0, err
	}
	var n int
	err = q.QueryRow(ctx, `INSERT INTO counters AS c (key_hash, window_us, window_start, window_end, count)
		VALUES ($1, $2, $3, $4, 1)
		ON CONFLICT (key_hash, window_us, window_start) DO UPDATE SET count = c.count + 1
		RETURNING count`, s.k.counterKey(key), length, start, start+length).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: hit: %w", err)
	}
	return n, nil
}

// HitMany implements StartRecorder. The counters' rows stay locked until
// the commit; they are taken in the order of their keyed hashes, so that
// two batches naming the same keys in another order cannot deadlock.
func (s *Postgres) HitMany(ctx context.Context, hits []CounterHit, now time.Time) ([]int, error) {
	for _, h := range hits {
		if _, _, err := window(h.Window, now); err != nil {
			return nil, err
		}
	}
	order := make([]int, len(hits))
	for i := range order {
		order[i] = i
	}
	// in key order, so that concurrent batches lock shared keys in one
	// order; a batch with a guard in the order given (the caller's order)
	if !slices.ContainsFunc(hits, func(h CounterHit) bool { return h.Limit > 0 }) {
		slices.SortStableFunc(order, func(a, b int) int {
			return bytes.Compare(s.k.counterKey(hits[a].Key), s.k.counterKey(hits[b].Key))
		})
	}
	counts := make([]int, len(hits))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, i := range order {
			n, err := s.hit(ctx, tx, hits[i].Key, hits[i].Window, now)
			if err != nil {
				return err
			}
			counts[i] = n
			if hits[i].Limit > 0 && n > hits[i].Limit {
				break // a guard is over: the later hits are not counted
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// HitCreateFlow implements StartRecorder.
func (s *Postgres) HitCreateFlow(ctx context.Context, h CounterHit, now time.Time, pick func(count int) (Flow, []AuditEvent)) (int, error) {
	if _, _, err := window(h.Window, now); err != nil {
		return 0, err
	}
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		c, err := s.hit(ctx, tx, h.Key, h.Window, now)
		if err != nil {
			return err
		}
		f, events := pick(c)
		if err := s.createFlow(ctx, tx, f); err != nil {
			return err
		}
		for _, e := range events {
			if err := appendAuditPg(ctx, tx, e); err != nil {
				return err
			}
		}
		n = c
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Count implements Store.
func (s *Postgres) Count(ctx context.Context, key string, w time.Duration, now time.Time) (int, error) {
	length, start, err := window(w, now)
	if err != nil {
		return 0, err
	}
	var n int
	err = s.pool.QueryRow(ctx, `SELECT count FROM counters WHERE key_hash = $1 AND window_us = $2 AND window_start = $3`,
		s.k.counterKey(key), length, start).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: count: %w", err)
	}
	return n, nil
}

// Unhit implements Store.
func (s *Postgres) Unhit(ctx context.Context, key string, w time.Duration, at time.Time) error {
	length, start, err := window(w, at)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `UPDATE counters SET count = count - 1
		WHERE key_hash = $1 AND window_us = $2 AND window_start = $3 AND count > 0`,
		s.k.counterKey(key), length, start)
	if err != nil {
		return fmt.Errorf("store: unhit: %w", err)
	}
	return nil
}

// Reset implements Store.
func (s *Postgres) Reset(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM counters WHERE key_hash = $1`, s.k.counterKey(key)); err != nil {
		return fmt.Errorf("store: reset: %w", err)
	}
	return nil
}

// ---- audit ----

// AppendAudit implements Store.
func (s *Postgres) AppendAudit(ctx context.Context, e AuditEvent) error {
	return appendAuditPg(ctx, s.pool, e)
}

func appendAuditPg(ctx context.Context, q pgQuerier, e AuditEvent) error {
	if err := notEmpty("audit event type", e.Type); err != nil {
		return err
	}
	var details *string
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return fmt.Errorf("store: append audit: %w", err)
		}
		d := string(b)
		details = &d
	}
	if _, err := q.Exec(ctx, `INSERT INTO audit
		(time, type, request_id, client_ip, account_id, outcome, details) VALUES ($1, $2, $3, $4, $5, $6, $7::text::json)`,
		e.Time, e.Type, e.RequestID, e.ClientIP, e.AccountID, e.Outcome, details); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	return nil
}

// ListAudit implements Store.
func (s *Postgres) ListAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if q.AccountID != "" {
		arg("account_id = ?", q.AccountID)
	}
	// type compares in byte order (COLLATE "C"), as audit_by_type is
	// built since version 4: a range on it is a prefix in any collation.
	if q.Type != "" {
		arg(`type COLLATE "C" = ?`, q.Type)
	}
	if q.TypePrefix != "" {
		end, ok, err := prefixEnd(q.TypePrefix)
		if err != nil {
			return nil, err
		}
		arg(`type COLLATE "C" >= ?`, q.TypePrefix)
		if ok {
			arg(`type COLLATE "C" < ?`, end)
		}
	}
	if q.Outcome != "" {
		arg("outcome = ?", q.Outcome)
	}
	if !q.Since.IsZero() {
		arg("time >= ?", q.Since)
	}
	if !q.Until.IsZero() {
		arg("time < ?", q.Until)
	}
	if q.BeforeSeq > 0 {
		// after the event BeforeSeq in the order below (none if it is gone)
		arg("(time, seq) < (SELECT time, seq FROM audit WHERE seq = ?)", q.BeforeSeq)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	query := `SELECT seq, time, type, request_id, client_ip, account_id, outcome, details::text FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += " ORDER BY time DESC, seq DESC LIMIT $" + strconv.Itoa(len(args))

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var (
			e       AuditEvent
			t       time.Time
			details *string
		)
		if err := rows.Scan(&e.Seq, &t, &e.Type, &e.RequestID, &e.ClientIP, &e.AccountID, &e.Outcome, &details); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		e.Time = t.UTC()
		if details != nil {
			if err := json.Unmarshal([]byte(*details), &e.Details); err != nil {
				return nil, fmt.Errorf("store: list audit: decode details: %w", err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	return out, nil
}

// ---- maintenance ----

// PostgresPurgeBatch is how many rows of one table Purge deletes per
// statement: each statement locks at most this many rows, and only for its
// own short transaction.
const PostgresPurgeBatch = 1000

// pgPurgeSteps are Purge's statements. Each selects at most $2 expired rows
// by ctid, skipping rows another transaction has locked (a code being
// redeemed, a flow being updated: a later run deletes them), deletes them
// by ctid (a TID scan, no table scan) after checking the condition again on
// the row version it deletes, and returns how many rows it deleted: the
// first column decides whether another batch follows, the second is added
// to the total as well.
var pgPurgeSteps = []struct {
	query string
	args  func(now time.Time) []any
}{
	{`WITH doomed AS (SELECT ctid FROM codes WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED),
		gone AS (DELETE FROM codes WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)) AND expires_at <= $1 RETURNING 1)
	SELECT count(*), 0 FROM gone`, pgPurgeByTime},
	// The codes of expired flows go in the same statement, so that they are
	// counted (rows removed by ON DELETE CASCADE are not). These are not
	// skipped when locked: a code of an expired flow being redeemed makes
	// the batch wait for that short transaction (docs/store.md).
	{`WITH doomed AS (SELECT ctid, id_hash FROM flows WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED),
		codes_gone AS (DELETE FROM codes WHERE flow_id IN (SELECT id_hash FROM doomed) RETURNING 1),
		gone AS (DELETE FROM flows WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)) AND expires_at <= $1 RETURNING 1)
	SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM codes_gone)`, pgPurgeByTime},
	{`WITH doomed AS (SELECT ctid FROM sessions WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED),
		gone AS (DELETE FROM sessions WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)) AND expires_at <= $1 RETURNING 1)
	SELECT count(*), 0 FROM gone`, pgPurgeByTime},
	// a counter's window is kept until the next one ends too (the bind
	// budget counts the previous window with the current one)
	{`WITH doomed AS (SELECT ctid FROM counters WHERE window_end <= $1 AND window_end + window_us <= $1
			LIMIT $2 FOR UPDATE SKIP LOCKED),
		gone AS (DELETE FROM counters WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed))
			AND window_end + window_us <= $1 RETURNING 1)
	SELECT count(*), 0 FROM gone`, func(now time.Time) []any { return []any{now.UnixMicro(), PostgresPurgeBatch} }},
	// finished outbox rows (no body left) once OutboxKeepDone has passed
	{`WITH doomed AS (SELECT ctid FROM outbox WHERE state <> 'pending' AND done_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED),
		gone AS (DELETE FROM outbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)) RETURNING 1)
	SELECT count(*), 0 FROM gone`, func(now time.Time) []any { return []any{now.Add(-OutboxKeepDone), PostgresPurgeBatch} }},
}

func pgPurgeByTime(now time.Time) []any { return []any{now, PostgresPurgeBatch} }

// Purge implements Store. It deletes in batches of PostgresPurgeBatch rows
// per table, each batch one statement (its own transaction), so no lock is
// held for long and gateway requests run between batches. Several
// instances may purge at once: they skip each other's locked rows.
func (s *Postgres) Purge(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, step := range pgPurgeSteps {
		for {
			var n, more int
			if err := s.pool.QueryRow(ctx, step.query, step.args(now)...).Scan(&n, &more); err != nil {
				return total, fmt.Errorf("store: purge: %w", err)
			}
			total += n + more
			if n < PostgresPurgeBatch {
				break
			}
		}
	}
	return total, nil
}

// PurgeAudit implements Store, in batches of PostgresPurgeBatch rows (the
// oldest first, by the time index), each one statement.
func (s *Postgres) PurgeAudit(ctx context.Context, before time.Time) (int, error) {
	if before.IsZero() {
		return 0, fmt.Errorf("%w: purge audit: no time", ErrInvalid)
	}
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM audit WHERE seq IN
			(SELECT seq FROM audit WHERE time < $1 ORDER BY time, seq LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, PostgresPurgeBatch)
		if err != nil {
			return total, fmt.Errorf("store: purge audit: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < PostgresPurgeBatch {
			return total, nil
		}
	}
}

var (
	_ StartRecorder         = (*Postgres)(nil)
	_ PasswordWriteRecorder = (*Postgres)(nil)
)
