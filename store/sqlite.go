package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed schema.sql
var schemaV1 string

//go:embed schema_v2.sql
var schemaV2 string

//go:embed schema_v3.sql
var schemaV3 string

//go:embed schema_v4.sql
var schemaV4 string

// migrations[i] brings the schema from version i to version i+1. Append
// new migrations; never edit a released one.
var migrations = []string{schemaV1, schemaV2, schemaV3, schemaV4}

// DefaultBusyTimeout is how long a SQLite connection waits for another
// connection's (or process's) write lock before failing.
const DefaultBusyTimeout = 10 * time.Second

// SQLite is the embedded Store implementation on modernc.org/sqlite.
//
// It keeps two connection pools on one database file: a single writer
// connection, on which every write runs as a BEGIN IMMEDIATE transaction
// (so writers in the same process queue in Go instead of spinning on
// SQLITE_BUSY, and writers in other processes are serialized by SQLite's
// file locks and busy_timeout; writes that queue at the same time share
// one transaction, see writeTx), and several read-only reader connections
// (WAL mode lets them read while a write is in progress). An in-memory
// database (":memory:" or mode=memory) uses the single writer connection for
// everything.
//
// Several processes may share one database file, and RedeemCode,
// UpdateFlow and Hit stay atomic across them, but a writer that finds the
// file locked by another process sleeps in SQLite's busy handler (1 to
// 100 ms steps, up to DefaultBusyTimeout): with 20 concurrent writers in 4
// processes some calls waited several hundred milliseconds in tests. Run
// one gateway process per SQLite file; use PostgreSQL for several instances.
type SQLite struct {
	w, r      *pool
	wq        *writeQueue // see writeTx
	k         *keys
	migration Migration

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the SQLite database named by dsn,
// applies pending schema migrations and checks that key is the key the
// database was created with.
//
// dsn is a file path or a "file:" URI as accepted by modernc.org/sqlite,
// e.g. "file:/var/lib/latchkey/latchkey.db". The store adds WAL journaling,
// synchronous=NORMAL and a busy_timeout unless the DSN sets them, and always
// turns on foreign keys and immediate transactions. A new database file is
// created with mode 0600.
//
// key must be at least MinKeyLen random bytes; it is never stored. Separate
// subkeys for encryption, blind indexes and counter keys are derived from it
// with HKDF-SHA256. Opening an existing database with a different key fails.
func OpenSQLite(ctx context.Context, dsn string, key []byte) (*SQLite, error) {
	return OpenSQLiteWith(ctx, dsn, key, SQLiteOptions{})
}

// SQLiteOptions are the settings of OpenSQLiteWith beyond the DSN.
type SQLiteOptions struct {
	// NoMigrate opens the store without changing its schema: no file is
	// created, nothing is migrated. A schema older than MinSchemaVersion
	// (a missing or empty database included) is ErrSchemaBehind, a newer
	// one than SchemaVersion ErrSchemaNewer; one in between is served.
	NoMigrate bool
}

// OpenSQLiteWith is OpenSQLite with options.
func OpenSQLiteWith(ctx context.Context, dsn string, key []byte, opts SQLiteOptions) (*SQLite, error) {
	k, err := deriveKeys(key)
	if err != nil {
		return nil, err
	}
	name, query, memory, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if err := prepareSQLiteFile(name, memory, opts.NoMigrate); err != nil {
		return nil, err
	}
	wq, rq := sqliteQueries(query, memory)

	s := &SQLite{k: k}
	s.w, err = openPool(name + "?" + wq.Encode())
	if err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)
	busy, err := strconv.Atoi(wq.Get("_busy_timeout"))
	if err != nil {
		busy = int(DefaultBusyTimeout.Milliseconds())
	}
	s.startWriter(time.Duration(busy) * time.Millisecond)

	open := s.migrate
	if opts.NoMigrate {
		open = s.inspect
	}
	if err := open(ctx); err != nil {
		s.stopWriter()
		s.w.Close()
		return nil, err
	}

	if memory {
		s.r = s.w
		return s, nil
	}
	s.r, err = openPool(name + "?" + rq.Encode())
	if err != nil {
		s.stopWriter()
		s.w.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	return s, nil
}

// prepareSQLiteFile checks or creates the database file before it is
// opened: without migrations (check, serve with store.migrate: manual) a
// missing file or an in-memory database is a schema behind (version 0);
// otherwise a missing file is created private (0600).
func prepareSQLiteFile(name string, memory, noMigrate bool) error {
	switch {
	case noMigrate && memory:
		return behind(0)
	case noMigrate:
		path, local, err := filePath(name)
		if err != nil {
			return err
		}
		if local {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return behind(0)
			}
		}
	case !memory:
		return createPrivateFile(name)
	}
	return nil
}

// sqliteQueries are the connection parameters of the writer (one
// connection: busy timeout, NORMAL synchronous, WAL for a file, immediate
// transactions) and of the readers (query only), from the DSN's own.
func sqliteQueries(query url.Values, memory bool) (w, r url.Values) {
	setDefault := func(q url.Values, key, value string) {
		if q.Get(key) == "" {
			q.Set(key, value)
		}
	}
	w = cloneValues(query)
	setDefault(w, "_busy_timeout", fmt.Sprint(DefaultBusyTimeout.Milliseconds()))
	setDefault(w, "_synchronous", "NORMAL")
	if !memory {
		setDefault(w, "_journal_mode", "WAL")
	}
	w.Set("_foreign_keys", "1")
	w.Set("_txlock", "immediate")

	r = cloneValues(query)
	setDefault(r, "_busy_timeout", fmt.Sprint(DefaultBusyTimeout.Milliseconds()))
	r.Del("_journal_mode") // WAL is persistent; set by the writer
	r.Del("_journal")
	r.Set("_foreign_keys", "1")
	r.Set("_query_only", "1")
	return w, r
}

// parseDSN splits dsn into the name passed to the driver, the query
// parameters, and whether it names an in-memory database.
func parseDSN(dsn string) (name string, query url.Values, memory bool, err error) {
	name, rawQuery, _ := strings.Cut(dsn, "?")
	query, err = url.ParseQuery(rawQuery)
	if err != nil {
		return "", nil, false, fmt.Errorf("%w: malformed DSN query", ErrInvalid)
	}
	if name == "" {
		return "", nil, false, fmt.Errorf("%w: empty DSN", ErrInvalid)
	}
	memory = name == ":memory:" || name == "file::memory:" || query.Get("mode") == "memory"
	return name, query, memory, nil
}

// createPrivateFile creates the database file with mode 0600 if it does
// not exist yet, so the store (and SQLite's -wal and -shm files, which
// copy the main file's mode) is not readable by other users.
func createPrivateFile(name string) error {
	path, local, err := filePath(name)
	if err != nil || !local {
		return err // not local: let SQLite report it
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the database path of store.dsn
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: create database file: %w", err)
	}
	return f.Close()
}

// filePath is the local file a DSN name (a path or a "file:" URI) names;
// local is false for a file://host/ URI naming another host.
func filePath(name string) (path string, local bool, err error) {
	path = name
	if p, ok := strings.CutPrefix(name, "file:"); ok {
		if rest, ok := strings.CutPrefix(p, "//"); ok {
			// file://host/path: only an empty or "localhost" host is local.
			host, pth, _ := strings.Cut(rest, "/")
			if host != "" && host != "localhost" {
				return "", false, nil
			}
			p = "/" + pth
		}
		u, err := url.PathUnescape(p)
		if err != nil {
			return "", false, fmt.Errorf("%w: malformed DSN path", ErrInvalid)
		}
		path = u
	}
	return path, true, nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// migrate creates or upgrades the schema and checks the key, in one
// immediate transaction so that concurrent starters do not race.
func (s *SQLite) migrate(ctx context.Context) error {
	return s.writeTx(ctx, func(t txn) error {
		tx := t.tx // DDL and one-off statements: not cached
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    INTEGER PRIMARY KEY,
			applied_at INTEGER NOT NULL
		) STRICT`); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		var v int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		if v > len(migrations) {
			return newer(v)
		}
		s.migration = Migration{From: v, To: len(migrations)}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("store: migrate to version %d: %w", i+1, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
				i+1, time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("store: migrate to version %d: %w", i+1, err)
			}
		}
		var check []byte
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&check)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES ('key_check', ?)`, s.k.keyCheck); err != nil {
				return fmt.Errorf("store: migrate: %w", err)
			}
		case err != nil:
			return fmt.Errorf("store: migrate: %w", err)
		case !hmacEqual(check, s.k.keyCheck):
			return errors.New("store: the key does not match the one this database was created with")
		}
		return nil
	})
}

// inspect reads the schema version and checks the key without changing
// anything (SQLiteOptions.NoMigrate).
func (s *SQLite) inspect(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: open sqlite: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).Scan(&n); err != nil {
		return fmt.Errorf("store: open sqlite: %w", err)
	}
	v := 0
	if n > 0 {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("store: open sqlite: %w", err)
		}
	}
	if err := servable(v); err != nil {
		return err
	}
	var check []byte
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&check)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return behind(v)
	case err != nil:
		return fmt.Errorf("store: open sqlite: %w", err)
	case !hmacEqual(check, s.k.keyCheck):
		return errors.New("store: the key does not match the one this database was created with")
	}
	s.migration = Migration{From: v, To: v}
	return nil
}

func hmacEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Migration reports the schema versions found and left by OpenSQLite.
func (s *SQLite) Migration() Migration { return s.migration }

// Checkpoint copies the write-ahead log into the main database file and
// truncates the log (PRAGMA wal_checkpoint(TRUNCATE)). Useful before a file
// backup; the store checkpoints on its own otherwise.
func (s *SQLite) Checkpoint(ctx context.Context) error {
	var busy, logFrames, checkpointed int
	if err := s.w.DB.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("store: checkpoint: database busy")
	}
	return nil
}

// Ping implements Store.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close implements Store. It answers the writes already queued, then
// closes both pools; the last connection to close checkpoints the WAL.
// Writes made after Close fail.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		s.stopWriter()
		var errs []error
		if s.r != s.w {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// ---- time and value encoding ----

// dbTime converts t to microseconds since the epoch; NULL for zero.
func dbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromDBTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func notEmpty(what string, values ...string) error {
	for _, v := range values {
		if v == "" {
			return fmt.Errorf("%w: empty %s", ErrInvalid, what)
		}
	}
	return nil
}

func checkSecretID(what, id string) error {
	if len(id) < MinSecretIDLen {
		return fmt.Errorf("%w: %s id shorter than %d bytes", ErrInvalid, what, MinSecretIDLen)
	}
	return nil
}

// ---- methods ----

func methodAAD(accountID, methodID, typ string) []byte {
	return aad("method-address", accountID, methodID, typ)
}

// AddMethod implements Store.
func (s *SQLite) AddMethod(ctx context.Context, m Method) error {
	enc, idx, err := s.k.sealMethod(m)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO methods
		(account_id, id, type, address_enc, address_idx, verified, created_at, verified_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		m.AccountID, m.ID, m.Type, enc, idx, m.Verified, m.CreatedAt.UnixMicro(), dbTime(m.VerifiedAt))
	if err != nil {
		return fmt.Errorf("store: add method: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: add method: %w", ErrConflict)
	}
	return nil
}

const methodColumns = `account_id, id, type, address_enc, verified, created_at, verified_at`

type rowScanner interface{ Scan(dest ...any) error }

func (s *SQLite) scanMethod(row rowScanner) (Method, error) {
	var (
		m          Method
		enc        []byte
		created    int64
		verifiedAt sql.NullInt64
	)
	if err := row.Scan(&m.AccountID, &m.ID, &m.Type, &enc, &m.Verified, &created, &verifiedAt); err != nil {
		return Method{}, err
	}
	if err := s.k.openMethod(&m, enc); err != nil {
		return Method{}, err
	}
	m.CreatedAt = time.UnixMicro(created).UTC()
	m.VerifiedAt = fromDBTime(verifiedAt)
	return m, nil
}

// GetMethod implements Store.
func (s *SQLite) GetMethod(ctx context.Context, accountID, methodID string) (Method, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+methodColumns+` FROM methods WHERE account_id = ? AND id = ?`,
		accountID, methodID)
	m, err := s.scanMethod(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Method{}, fmt.Errorf("store: get method: %w", ErrNotFound)
	}
	if err != nil {
		return Method{}, fmt.Errorf("store: get method: %w", err)
	}
	return m, nil
}

// ListMethods implements Store.
func (s *SQLite) ListMethods(ctx context.Context, accountID string) ([]Method, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+methodColumns+` FROM methods
		WHERE account_id = ? ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: list methods: %w", err)
	}
	defer rows.Close()
	out := []Method{}
	for rows.Next() {
		m, err := s.scanMethod(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list methods: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list methods: %w", err)
	}
	return out, nil
}

// SampleMethods implements Store.
func (s *SQLite) SampleMethods(ctx context.Context, maxAccounts int, before time.Time) ([]Method, error) {
	if maxAccounts <= 0 {
		return []Method{}, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+methodColumns+` FROM methods
		WHERE verified = 1 AND verified_at < ? AND account_id IN (
			SELECT account_id FROM methods WHERE verified = 1 AND verified_at < ?
			GROUP BY account_id ORDER BY MAX(verified_at) DESC, account_id LIMIT ?)
		ORDER BY account_id, created_at, id`, dbTime(before), dbTime(before), maxAccounts)
	if err != nil {
		return nil, fmt.Errorf("store: sample methods: %w", err)
	}
	defer rows.Close()
	out := []Method{}
	for rows.Next() {
		m, err := s.scanMethod(rows)
		if err != nil {
			return nil, fmt.Errorf("store: sample methods: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sample methods: %w", err)
	}
	return out, nil
}

// VerifyMethod implements Store.
func (s *SQLite) VerifyMethod(ctx context.Context, accountID, methodID string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE methods SET verified = 1, verified_at = ?
		WHERE account_id = ? AND id = ?`, dbTime(at), accountID, methodID)
	if err != nil {
		return fmt.Errorf("store: verify method: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: verify method: %w", ErrNotFound)
	}
	return nil
}

// SwapMethodAddress implements Store. The compare and the write run in one
// BEGIN IMMEDIATE transaction, which holds the database's write lock.
func (s *SQLite) SwapMethodAddress(ctx context.Context, accountID, methodID, oldAddress, newAddress string) error {
	if newAddress == "" {
		return fmt.Errorf("%w: empty address", ErrInvalid)
	}
	return s.writeTx(ctx, func(tx txn) error {
		var (
			typ string
			enc []byte
		)
		err := tx.QueryRowContext(ctx, `SELECT type, address_enc FROM methods WHERE account_id = ? AND id = ?`,
			accountID, methodID).Scan(&typ, &enc)
		if errors.Is(err, sql.ErrNoRows) {
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
		if !hmacEqual(cur, []byte(oldAddress)) {
			return fmt.Errorf("store: swap method address: %w", ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE methods SET address_enc = ?, address_idx = ?
			WHERE account_id = ? AND id = ?`,
			s.k.seal([]byte(newAddress), bind), s.k.addressIndex(typ, newAddress), accountID, methodID); err != nil {
			return fmt.Errorf("store: swap method address: %w", err)
		}
		return nil
	})
}

// DeleteMethod implements Store.
func (s *SQLite) DeleteMethod(ctx context.Context, accountID, methodID string) error {
	return s.writeTx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM methods WHERE account_id = ? AND id = ?`, accountID, methodID)
		if err != nil {
			return fmt.Errorf("store: delete method: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: delete method: %w", ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM codes WHERE account_id = ? AND method_id = ?`, accountID, methodID); err != nil {
			return fmt.Errorf("store: delete method: %w", err)
		}
		return nil
	})
}

// CountAccountsByAddress implements Store.
func (s *SQLite) CountAccountsByAddress(ctx context.Context, typ, address string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(DISTINCT account_id) FROM methods
		WHERE type = ? AND address_idx = ? AND verified = 1`, typ, s.k.addressIndex(typ, address)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count accounts by address: %w", err)
	}
	return n, nil
}

// ---- flows ----

func flowDataAAD(idHash []byte) []byte { return aad("flow-data", string(idHash)) }

// encodeFlow returns the stored forms of f.Verified and f.Data.
func (s *SQLite) encodeFlow(idHash []byte, f Flow) (verified, data any, err error) {
	if len(f.Verified) > 0 {
		b, err := json.Marshal(f.Verified)
		if err != nil {
			return nil, nil, fmt.Errorf("store: encode flow: %w", err)
		}
		verified = string(b)
	}
	if len(f.Data) > 0 {
		b, err := json.Marshal(f.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("store: encode flow: %w", err)
		}
		data = s.k.seal(b, flowDataAAD(idHash))
	}
	return verified, data, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var (
	_ execer = (*pool)(nil)
	_ execer = txn{}
)

// insertFlow inserts f through e; ErrConflict if the ID exists.
func (s *SQLite) insertFlow(ctx context.Context, e execer, f Flow) error {
	if err := checkSecretID("flow", f.ID); err != nil {
		return err
	}
	if f.Kind == "" {
		return fmt.Errorf("%w: empty flow kind", ErrInvalid)
	}
	h := hashID(f.ID)
	verified, data, err := s.encodeFlow(h, f)
	if err != nil {
		return err
	}
	res, err := e.ExecContext(ctx, `INSERT INTO flows
		(key, id_hash, kind, account_id, required, verified, data_enc, created_at, expires_at, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		idKey(h), h, f.Kind, f.AccountID, f.Required, verified, data, f.CreatedAt.UnixMicro(), f.ExpiresAt.UnixMicro(), f.Version)
	if err != nil {
		return fmt.Errorf("store: create flow: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: create flow: %w", ErrConflict)
	}
	return nil
}

// CreateFlow implements Store.
func (s *SQLite) CreateFlow(ctx context.Context, f Flow) error {
	return s.insertFlow(ctx, s.w, f)
}

// GetFlow implements Store.
func (s *SQLite) GetFlow(ctx context.Context, id string, now time.Time) (Flow, error) {
	if len(id) < MinSecretIDLen {
		return Flow{}, fmt.Errorf("store: get flow: %w", ErrNotFound)
	}
	h := hashID(id)
	var (
		f                  Flow
		verified           sql.NullString
		data               []byte
		created, expiresAt int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT kind, account_id, required, verified, data_enc, created_at, expires_at, version
		FROM flows WHERE key = ? AND id_hash = ? AND expires_at > ?`, idKey(h), h, now.UnixMicro()).
		Scan(&f.Kind, &f.AccountID, &f.Required, &verified, &data, &created, &expiresAt, &f.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return Flow{}, fmt.Errorf("store: get flow: %w", ErrNotFound)
	}
	if err != nil {
		return Flow{}, fmt.Errorf("store: get flow: %w", err)
	}
	if verified.Valid {
		if err := json.Unmarshal([]byte(verified.String), &f.Verified); err != nil {
			return Flow{}, fmt.Errorf("store: get flow: decode verified: %w", err)
		}
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
	f.CreatedAt = time.UnixMicro(created).UTC()
	f.ExpiresAt = time.UnixMicro(expiresAt).UTC()
	return f, nil
}

// UpdateFlow implements Store.
func (s *SQLite) UpdateFlow(ctx context.Context, f Flow) error {
	return s.updateFlow(ctx, f, "")
}

// RotateFlow implements Store.
func (s *SQLite) RotateFlow(ctx context.Context, f Flow, newID string) error {
	if err := checkSecretID("flow", newID); err != nil {
		return err
	}
	return s.updateFlow(ctx, f, newID)
}

// updateFlow updates f and, when newID is set, moves it (and its codes) to
// newID in the same transaction.
func (s *SQLite) updateFlow(ctx context.Context, f Flow, newID string) error {
	if len(f.ID) < MinSecretIDLen {
		return fmt.Errorf("store: update flow: %w", ErrNotFound)
	}
	h := hashID(f.ID)
	target := h
	if newID != "" {
		target = hashID(newID)
	}
	// flow data is sealed to the ID it is stored under
	verified, data, err := s.encodeFlow(target, f)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, func(tx txn) error {
		var (
			kind, account      string
			created, expiresAt int64
			version            int
		)
		err := tx.QueryRowContext(ctx, `SELECT kind, account_id, created_at, expires_at, version FROM flows
			WHERE key = ? AND id_hash = ?`, idKey(h), h).
			Scan(&kind, &account, &created, &expiresAt, &version)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && expiresAt <= time.Now().UnixMicro()) {
			return fmt.Errorf("store: update flow: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: update flow: %w", err)
		}
		if version != f.Version {
			return fmt.Errorf("store: update flow: %w", ErrConflict)
		}
		if kind != f.Kind || account != f.AccountID {
			return fmt.Errorf("%w: a flow's kind and account cannot change", ErrInvalid)
		}
		if newID == "" {
			if _, err := tx.ExecContext(ctx, `UPDATE flows SET required = ?, verified = ?, data_enc = ?, expires_at = ?,
			version = version + 1 WHERE key = ?`,
				f.Required, verified, data, f.ExpiresAt.UnixMicro(), idKey(h)); err != nil {
				return fmt.Errorf("store: update flow: %w", err)
			}
			return nil
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO flows
			(key, id_hash, kind, account_id, required, verified, data_enc, created_at, expires_at, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			idKey(target), target, kind, account, f.Required, verified, data, created, f.ExpiresAt.UnixMicro(), version+1)
		if err != nil {
			return fmt.Errorf("store: rotate flow: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: rotate flow: %w", ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE codes SET flow_key = ? WHERE flow_key = ?`, idKey(target), idKey(h)); err != nil {
			return fmt.Errorf("store: rotate flow: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM flows WHERE key = ?`, idKey(h)); err != nil {
			return fmt.Errorf("store: rotate flow: %w", err)
		}
		return nil
	})
}

// DeleteFlow implements Store.
func (s *SQLite) DeleteFlow(ctx context.Context, id string) error {
	h := hashID(id)
	if _, err := s.w.ExecContext(ctx, `DELETE FROM flows WHERE key = ? AND id_hash = ?`, idKey(h), h); err != nil {
		return fmt.Errorf("store: delete flow: %w", err)
	}
	return nil
}

// DeleteFlowsForAccount implements Store.
func (s *SQLite) DeleteFlowsForAccount(ctx context.Context, accountID string) error {
	if err := notEmpty("account id", accountID); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM flows WHERE account_id = ?`, accountID); err != nil {
		return fmt.Errorf("store: delete flows for account: %w", err)
	}
	return nil
}

// ---- codes ----

// IssueCode implements Store.
func (s *SQLite) IssueCode(ctx context.Context, c Code) error {
	if len(c.Hash) == 0 {
		return fmt.Errorf("%w: empty code hash", ErrInvalid)
	}
	if err := notEmpty("code purpose or method id", c.Purpose, c.MethodID); err != nil {
		return err
	}
	h := hashID(c.FlowID)
	return s.writeTx(ctx, func(tx txn) error {
		var account string
		err := tx.QueryRowContext(ctx, `SELECT account_id FROM flows WHERE key = ? AND id_hash = ?`, idKey(h), h).
			Scan(&account)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: issue code: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: issue code: %w", err)
		}
		if account != c.AccountID {
			return fmt.Errorf("%w: code account differs from its flow's", ErrInvalid)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO codes
			(flow_key, purpose, method_id, account_id, hash, expires_at, tries) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (flow_key, purpose, method_id) DO UPDATE SET
				account_id = excluded.account_id, hash = excluded.hash,
				expires_at = excluded.expires_at, tries = excluded.tries`,
			idKey(h), c.Purpose, c.MethodID, c.AccountID, c.Hash, c.ExpiresAt.UnixMicro(), c.Tries); err != nil {
			return fmt.Errorf("store: issue code: %w", err)
		}
		return nil
	})
}

// RedeemCode implements Store.
func (s *SQLite) RedeemCode(ctx context.Context, flowID, purpose, methodID string, hash []byte, maxTries int, now time.Time) error {
	if maxTries < 1 {
		return fmt.Errorf("%w: maxTries must be at least 1", ErrInvalid)
	}
	h := hashID(flowID)
	key := idKey(h)
	nowUS := now.UnixMicro()
	var outcome error
	err := s.writeTx(ctx, func(tx txn) error {
		var (
			stored                   []byte
			tries                    int
			codeExpires, flowExpires int64
		)
		err := tx.QueryRowContext(ctx, `SELECT c.hash, c.tries, c.expires_at, f.expires_at
			FROM codes c JOIN flows f ON f.key = c.flow_key
			WHERE c.flow_key = ? AND f.id_hash = ? AND c.purpose = ? AND c.method_id = ?`, key, h, purpose, methodID).
			Scan(&stored, &tries, &codeExpires, &flowExpires)
		if errors.Is(err, sql.ErrNoRows) {
			outcome = ErrNotFound
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: redeem code: %w", err)
		}
		del := func() error {
			_, err := tx.ExecContext(ctx, `DELETE FROM codes WHERE flow_key = ? AND purpose = ? AND method_id = ?`,
				key, purpose, methodID)
			if err != nil {
				return fmt.Errorf("store: redeem code: %w", err)
			}
			return nil
		}
		switch {
		case codeExpires <= nowUS || flowExpires <= nowUS || tries >= maxTries:
			outcome = ErrNotFound
			return del()
		case subtle.ConstantTimeCompare(stored, hash) == 1:
			return del()
		case tries+1 >= maxTries:
			outcome = ErrCodeMismatch
			return del()
		default:
			outcome = ErrCodeMismatch
			_, err := tx.ExecContext(ctx, `UPDATE codes SET tries = tries + 1
				WHERE flow_key = ? AND purpose = ? AND method_id = ?`, key, purpose, methodID)
			if err != nil {
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
func (s *SQLite) CreateSession(ctx context.Context, sess Session) error {
	if err := checkSecretID("session", sess.ID); err != nil {
		return err
	}
	if err := notEmpty("session account id", sess.AccountID); err != nil {
		return err
	}
	h := hashID(sess.ID)
	res, err := s.w.ExecContext(ctx, `INSERT INTO sessions
		(key, id_hash, kind, account_id, username, created_at, auth_at, last_seen, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		idKey(h), h, sess.Kind, sess.AccountID, sess.Username, sess.CreatedAt.UnixMicro(),
		dbTime(sess.AuthAt), dbTime(sess.LastSeen), sess.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: create session: %w", ErrConflict)
	}
	return nil
}

// GetSession implements Store.
func (s *SQLite) GetSession(ctx context.Context, id string, now time.Time) (Session, error) {
	if len(id) < MinSecretIDLen {
		return Session{}, fmt.Errorf("store: get session: %w", ErrNotFound)
	}
	h := hashID(id)
	var (
		sess               Session
		created, expiresAt int64
		authAt, lastSeen   sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, `SELECT kind, account_id, username, created_at, auth_at, last_seen, expires_at
		FROM sessions WHERE key = ? AND id_hash = ? AND expires_at > ?`, idKey(h), h, now.UnixMicro()).
		Scan(&sess.Kind, &sess.AccountID, &sess.Username, &created, &authAt, &lastSeen, &expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("store: get session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("store: get session: %w", err)
	}
	sess.ID = id
	sess.CreatedAt = time.UnixMicro(created).UTC()
	sess.AuthAt = fromDBTime(authAt)
	sess.LastSeen = fromDBTime(lastSeen)
	sess.ExpiresAt = time.UnixMicro(expiresAt).UTC()
	return sess, nil
}

// setSessionTime sets one time column of a live session.
func (s *SQLite) setSessionTime(ctx context.Context, op, column, id string, t time.Time) error {
	h := hashID(id)
	res, err := s.w.ExecContext(ctx, `UPDATE sessions SET `+column+` = ? WHERE key = ? AND id_hash = ? AND expires_at > ?`,
		dbTime(t), idKey(h), h, t.UnixMicro())
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return nil
}

// TouchSession implements Store.
func (s *SQLite) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	return s.setSessionTime(ctx, "touch session", "last_seen", id, lastSeen)
}

// SetSessionAuthTime implements Store.
func (s *SQLite) SetSessionAuthTime(ctx context.Context, id string, t time.Time) error {
	return s.setSessionTime(ctx, "set session auth time", "auth_at", id, t)
}

// DeleteSession implements Store.
func (s *SQLite) DeleteSession(ctx context.Context, id string) error {
	h := hashID(id)
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE key = ? AND id_hash = ?`, idKey(h), h); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// DeleteSessionsForAccount implements Store.
func (s *SQLite) DeleteSessionsForAccount(ctx context.Context, accountID string) error {
	if err := notEmpty("account id", accountID); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE account_id = ?`, accountID); err != nil {
		return fmt.Errorf("store: delete sessions for account: %w", err)
	}
	return nil
}

// ---- counters ----

// window returns the window length and the start of the window containing
// now, in microseconds.
func window(w time.Duration, now time.Time) (length, start int64, err error) {
	length = w.Microseconds()
	if length < 1 {
		return 0, 0, fmt.Errorf("%w: counter window shorter than a microsecond", ErrInvalid)
	}
	t := now.UnixMicro()
	start = t - t%length
	if t%length < 0 {
		start -= length
	}
	return length, start, nil
}

// Hit implements Store.
func (s *SQLite) Hit(ctx context.Context, key string, w time.Duration, now time.Time) (int, error) {
	var n int
	err := s.writeTx(ctx, func(tx txn) error {
		var err error
		n, err = s.hitTx(ctx, tx, key, w, now)
		return err
	})
	return n, err
}

// hitTx is Hit inside tx.
func (s *SQLite) hitTx(ctx context.Context, tx txn, key string, w time.Duration, now time.Time) (int, error) {
	length, start, err := window(w, now)
	if err != nil {
		return 0, err
	}
	var n int
	err = tx.QueryRowContext(ctx, `INSERT INTO counters (key_hash, window_us, window_start, window_end, count)
		VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (key_hash, window_us, window_start) DO UPDATE SET count = count + 1
		RETURNING count`, s.k.counterKey(key), length, start, start+length).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: hit: %w", err)
	}
	return n, nil
}

// HitMany implements StartRecorder.
func (s *SQLite) HitMany(ctx context.Context, hits []CounterHit, now time.Time) ([]int, error) {
	for _, h := range hits {
		if _, _, err := window(h.Window, now); err != nil {
			return nil, err
		}
	}
	counts := make([]int, len(hits))
	err := s.writeTx(ctx, func(tx txn) error {
		clear(counts) // a retried transaction starts again
		for i, h := range hits {
			n, err := s.hitTx(ctx, tx, h.Key, h.Window, now)
			if err != nil {
				return err
			}
			counts[i] = n
			if h.Limit > 0 && n > h.Limit {
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
func (s *SQLite) HitCreateFlow(ctx context.Context, h CounterHit, now time.Time, pick func(count int) (Flow, []AuditEvent)) (int, error) {
	if _, _, err := window(h.Window, now); err != nil {
		return 0, err
	}
	var n int
	err := s.writeTx(ctx, func(tx txn) error {
		c, err := s.hitTx(ctx, tx, h.Key, h.Window, now)
		if err != nil {
			return err
		}
		f, events := pick(c)
		if err := s.insertFlow(ctx, tx, f); err != nil {
			return err
		}
		for _, e := range events {
			if err := appendAuditTx(ctx, tx, e); err != nil {
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

// Reset implements Store.
func (s *SQLite) Reset(ctx context.Context, key string) error {
	kh := s.k.counterKey(key)
	return s.writeTx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM counters WHERE key_hash = ?`, kh); err != nil {
			return fmt.Errorf("store: reset: %w", err)
		}
		return nil
	})
}

// Count implements Store.
func (s *SQLite) Count(ctx context.Context, key string, w time.Duration, now time.Time) (int, error) {
	length, start, err := window(w, now)
	if err != nil {
		return 0, err
	}
	var n int
	err = s.r.QueryRowContext(ctx, `SELECT count FROM counters WHERE key_hash = ? AND window_us = ? AND window_start = ?`,
		s.k.counterKey(key), length, start).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: count: %w", err)
	}
	return n, nil
}

// Unhit implements Store.
func (s *SQLite) Unhit(ctx context.Context, key string, w time.Duration, at time.Time) error {
	length, start, err := window(w, at)
	if err != nil {
		return err
	}
	return s.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `UPDATE counters SET count = count - 1
			WHERE key_hash = ? AND window_us = ? AND window_start = ? AND count > 0`,
			s.k.counterKey(key), length, start)
		if err != nil {
			return fmt.Errorf("store: unhit: %w", err)
		}
		return nil
	})
}

// ---- audit ----

// AppendAudit implements Store.
func (s *SQLite) AppendAudit(ctx context.Context, e AuditEvent) error {
	return appendAuditTx(ctx, s.w, e)
}

// appendAuditTx is AppendAudit through ex (the writer or a transaction).
func appendAuditTx(ctx context.Context, ex execer, e AuditEvent) error {
	if err := notEmpty("audit event type", e.Type); err != nil {
		return err
	}
	var details any
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return fmt.Errorf("store: append audit: %w", err)
		}
		details = string(b)
	}
	if _, err := ex.ExecContext(ctx, `INSERT INTO audit
		(time, type, request_id, client_ip, account_id, outcome, details) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.Time.UnixMicro(), e.Type, e.RequestID, e.ClientIP, e.AccountID, e.Outcome, details); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	return nil
}

// ListAudit implements Store.
func (s *SQLite) ListAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	where, args, err := sqliteAuditWhere(q)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	query := `SELECT seq, time, type, request_id, client_ip, account_id, outcome, details FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time DESC, seq DESC LIMIT ?"
	args = append(args, limit)

	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var (
			e       AuditEvent
			t       int64
			details sql.NullString
		)
		if err := rows.Scan(&e.Seq, &t, &e.Type, &e.RequestID, &e.ClientIP, &e.AccountID, &e.Outcome, &details); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		e.Time = time.UnixMicro(t).UTC()
		if details.Valid {
			if err := json.Unmarshal([]byte(details.String), &e.Details); err != nil {
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

// sqliteAuditWhere is the WHERE terms of q's filters, with their
// arguments.
func sqliteAuditWhere(q AuditQuery) (where []string, args []any, err error) {
	if q.AccountID != "" {
		where = append(where, "account_id = ?")
		args = append(args, q.AccountID)
	}
	if q.Type != "" {
		where = append(where, "type = ?")
		args = append(args, q.Type)
	}
	if q.TypePrefix != "" {
		// a range on audit_by_type (BINARY collation: byte order)
		end, ok, err := prefixEnd(q.TypePrefix)
		if err != nil {
			return nil, nil, err
		}
		where = append(where, "type >= ?")
		args = append(args, q.TypePrefix)
		if ok {
			where = append(where, "type < ?")
			args = append(args, end)
		}
	}
	if q.Outcome != "" {
		where = append(where, "outcome = ?")
		args = append(args, q.Outcome)
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, q.Until.UnixMicro())
	}
	if q.BeforeSeq > 0 {
		// after the event BeforeSeq in the order below (none if it is gone)
		where = append(where, "(time, seq) < (SELECT time, seq FROM audit WHERE seq = ?)")
		args = append(args, q.BeforeSeq)
	}
	return where, args, nil
}

// ---- maintenance ----

// purgeBatch is how many rows Purge deletes per transaction, so that it
// never holds the write lock for long (other writers run between batches).
const purgeBatch = 1000

// Purge implements Store. It deletes in batches of purgeBatch rows, each in
// its own transaction; the count covers codes deleted with their flows.
func (s *SQLite) Purge(ctx context.Context, now time.Time) (int, error) {
	t := now.UnixMicro()
	steps := [][]string{
		{`DELETE FROM codes WHERE (flow_key, purpose, method_id) IN
			(SELECT flow_key, purpose, method_id FROM codes WHERE expires_at <= ?1 LIMIT ?2)`},
		// Codes of expired flows first, so that they are counted too
		// (rows removed by ON DELETE CASCADE are not).
		{`DELETE FROM codes WHERE flow_key IN
			(SELECT key FROM flows WHERE expires_at <= ?1 ORDER BY expires_at, key LIMIT ?2)`,
			`DELETE FROM flows WHERE key IN
			(SELECT key FROM flows WHERE expires_at <= ?1 ORDER BY expires_at, key LIMIT ?2)`},
		{`DELETE FROM sessions WHERE key IN (SELECT key FROM sessions WHERE expires_at <= ?1 LIMIT ?2)`},
		// finished outbox rows (no body left) once OutboxKeepDone has passed
		{`DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state <> 'pending' AND done_at <= ?1 - ` +
			strconv.FormatInt(OutboxKeepDone.Microseconds(), 10) + ` LIMIT ?2)`},
		// a counter's window is kept until the next one ends too: the
		// budgets that count the previous window with the current one
		// (the bind budget) must not be refilled by the purge
		{`DELETE FROM counters WHERE (key_hash, window_us, window_start) IN
			(SELECT key_hash, window_us, window_start FROM counters
			WHERE window_end <= ?1 AND window_end + window_us <= ?1 LIMIT ?2)`},
	}
	total := 0
	for _, step := range steps {
		for {
			last := 0 // rows deleted by the step's last statement in this batch
			err := s.writeTx(ctx, func(tx txn) error {
				for _, q := range step {
					res, err := tx.ExecContext(ctx, q, t, purgeBatch)
					if err != nil {
						return fmt.Errorf("store: purge: %w", err)
					}
					n, _ := res.RowsAffected()
					total += int(n)
					last = int(n)
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			if last < purgeBatch {
				break
			}
		}
	}
	return total, nil
}

// PurgeAudit implements Store, in batches of purgeBatch rows (the oldest
// first, by the time index), each in its own transaction.
func (s *SQLite) PurgeAudit(ctx context.Context, before time.Time) (int, error) {
	if before.IsZero() {
		return 0, fmt.Errorf("%w: purge audit: no time", ErrInvalid)
	}
	total := 0
	for {
		var n int64
		err := s.writeTx(ctx, func(tx txn) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE seq IN
				(SELECT seq FROM audit WHERE time < ?1 ORDER BY time, seq LIMIT ?2)`, before.UnixMicro(), purgeBatch)
			if err != nil {
				return fmt.Errorf("store: purge audit: %w", err)
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < purgeBatch {
			return total, nil
		}
	}
}

// AfterPasswordWrite implements PasswordWriteRecorder.
func (s *SQLite) AfterPasswordWrite(ctx context.Context, accountID string, resetKeys []string, sessions bool, e AuditEvent, msgs ...OutboxMessage) error {
	if err := notEmpty("account id", accountID); err != nil {
		return err
	}
	if err := notEmpty("audit event type", e.Type); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := checkOutboxMessage(m); err != nil {
			return err
		}
	}
	var details any
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return fmt.Errorf("store: after password write: %w", err)
		}
		details = string(b)
	}
	return s.writeTx(ctx, func(tx txn) error {
		for _, k := range resetKeys {
			if _, err := tx.ExecContext(ctx, `DELETE FROM counters WHERE key_hash = ?`, s.k.counterKey(k)); err != nil {
				return fmt.Errorf("store: reset: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM flows WHERE account_id = ?`, accountID); err != nil {
			return fmt.Errorf("store: delete flows for account: %w", err)
		}
		if sessions {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE account_id = ?`, accountID); err != nil {
				return fmt.Errorf("store: delete sessions for account: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit
			(time, type, request_id, client_ip, account_id, outcome, details) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.Time.UnixMicro(), e.Type, e.RequestID, e.ClientIP, e.AccountID, e.Outcome, details); err != nil {
			return fmt.Errorf("store: append audit: %w", err)
		}
		for _, m := range msgs {
			if err := s.insertOutbox(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

var (
	_ PasswordWriteRecorder = (*SQLite)(nil)
	_ StartRecorder         = (*SQLite)(nil)
)
