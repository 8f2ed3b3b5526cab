package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// pool is a *sql.DB whose ExecContext, QueryContext and QueryRowContext
// run through prepared statements cached per query text, so that SQLite
// parses each statement once per connection instead of on every call.
// Only constant query texts (or a small bounded set, as in ListAudit) may
// go through it.
type pool struct {
	*sql.DB

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func openPool(dsn string) (*pool, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	return &pool{DB: db, stmts: map[string]*sql.Stmt{}}, nil
}

// prepare returns the cached statement for query, preparing it first if
// needed. p.mu is never held while waiting for a connection: a writer
// transaction holding the only writer connection may be waiting for p.mu.
func (p *pool) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	p.mu.Lock()
	st := p.stmts[query]
	p.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev := p.stmts[query]; prev != nil {
		st.Close() // another caller won the race
		return prev, nil
	}
	p.stmts[query] = st
	return st, nil
}

// ExecContext shadows sql.DB.ExecContext with a cached statement.
func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext shadows sql.DB.QueryContext with a cached statement.
func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext shadows sql.DB.QueryRowContext with a cached statement.
func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) rowScanner {
	st, err := p.prepare(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// Close closes the cached statements and the database.
func (p *pool) Close() error {
	p.mu.Lock()
	var errs []error
	for q, st := range p.stmts {
		errs = append(errs, st.Close())
		delete(p.stmts, q)
	}
	p.mu.Unlock()
	errs = append(errs, p.DB.Close())
	return errors.Join(errs...)
}

// txn is a transaction on the writer pool whose statements come from the
// pool's cache (sql.Tx.StmtContext reuses a statement already prepared on
// the transaction's connection).
//
// A statement that is not cached yet cannot be prepared on the pool here:
// the writer pool has one connection and this transaction holds it. Such a
// statement runs unprepared on the transaction and is noted in missed;
// writeTx prepares it on the pool once the transaction has ended.
//
// If ctx is set, statements run with it instead of the one passed to them
// (writeTx sets it to the caller's context without its cancellation).
type txn struct {
	tx     *sql.Tx
	p      *pool
	missed *[]string
	ctx    context.Context
}

func (t txn) cached(query string) *sql.Stmt {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	st := t.p.stmts[query]
	if st == nil && t.missed != nil {
		*t.missed = append(*t.missed, query)
	}
	return st
}

func (t txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.ctx != nil {
		ctx = t.ctx
	}
	if st := t.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t txn) QueryRowContext(ctx context.Context, query string, args ...any) rowScanner {
	if t.ctx != nil {
		ctx = t.ctx
	}
	if st := t.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// errRow is a row whose Scan reports a preparation error.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
