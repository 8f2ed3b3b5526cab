package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// rawMethods reads and writes a backend's methods table directly, the way
// the code before Method.Secret did: the secret of an authenticator app,
// questions or passkey in Method.Address.
type rawMethods struct {
	k *keys
	// insert writes a row; read returns a row's address_enc and address_idx.
	insert func(ctx context.Context, m Method, enc, idx []byte) error
	read   func(ctx context.Context, accountID, methodID string) (enc, idx []byte, err error)
}

// oldForm is how the code before Method.Secret stored m.Address.
func (r rawMethods) oldForm(m Method) (enc, idx []byte) {
	return r.k.seal([]byte(m.Address), methodAAD(m.AccountID, m.ID, m.Type)), r.k.addressIndex(m.Type, m.Address)
}

// TestMethodSecretRollingUpgrade: Method.Secret is kept in the column that
// held secrets in Address before it existed, so instances of both versions
// can share one database: a row the old code wrote (secret in Address)
// reads back in Secret, and a row written with Secret reads, as the old
// code read it, as that Address, with the blind index the old code made.
// Email and SMS rows are the same in both.
func TestMethodSecretRollingUpgrade(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		s := openInternal(t)
		testRollingUpgrade(t, s, rawMethods{k: s.k,
			insert: func(ctx context.Context, m Method, enc, idx []byte) error {
				_, err := s.w.DB.ExecContext(ctx, `INSERT INTO methods
					(account_id, id, type, address_enc, address_idx, verified, created_at, verified_at)
					VALUES (?, ?, ?, ?, ?, 0, ?, NULL)`, m.AccountID, m.ID, m.Type, enc, idx, m.CreatedAt.UnixMicro())
				return err
			},
			read: func(ctx context.Context, accountID, methodID string) (enc, idx []byte, err error) {
				err = s.w.DB.QueryRowContext(ctx, `SELECT address_enc, address_idx FROM methods WHERE account_id = ? AND id = ?`,
					accountID, methodID).Scan(&enc, &idx)
				return enc, idx, err
			},
		})
	})
	t.Run("Postgres", func(t *testing.T) {
		srv := pgtest.Start(t)
		s, err := OpenPostgres(t.Context(), srv.DSN(srv.NewDatabase(t)), bytes.Repeat([]byte{7}, 32), PostgresOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		testRollingUpgrade(t, s, rawMethods{k: s.k,
			insert: func(ctx context.Context, m Method, enc, idx []byte) error {
				_, err := s.pool.Exec(ctx, `INSERT INTO methods
					(account_id, id, type, address_enc, address_idx, verified, created_at, verified_at)
					VALUES ($1, $2, $3, $4, $5, false, $6, NULL)`, m.AccountID, m.ID, m.Type, enc, idx, m.CreatedAt)
				return err
			},
			read: func(ctx context.Context, accountID, methodID string) (enc, idx []byte, err error) {
				err = s.pool.QueryRow(ctx, `SELECT address_enc, address_idx FROM methods WHERE account_id = $1 AND id = $2`,
					accountID, methodID).Scan(&enc, &idx)
				return enc, idx, err
			},
		})
	})
}

func testRollingUpgrade(t *testing.T, st Store, raw rawMethods) {
	ctx, now := t.Context(), time.Now().UTC().Truncate(time.Microsecond)
	// written by the old code, read by the new
	for _, old := range []Method{
		{ID: "old-app", AccountID: "a", Type: "totp", Address: "JBSWY3DPEHPK3PXP", CreatedAt: now},
		{ID: "old-pk", AccountID: "a", Type: "webauthn", Address: `{"index":"cred-1","n":3}`, CreatedAt: now},
		{ID: "old-email", AccountID: "a", Type: MethodEmail, Address: "old@example.org", CreatedAt: now},
	} {
		enc, idx := raw.oldForm(old)
		if err := raw.insert(ctx, old, enc, idx); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetMethod(ctx, "a", old.ID)
		if err != nil {
			t.Fatalf("GetMethod of a row the old code wrote: %v", err)
		}
		want := old
		if !HasDestination(old.Type) {
			want.Address, want.Secret = "", old.Address
		}
		if got != want {
			t.Fatalf("a %s row the old code wrote reads back as %+v, want %+v", old.Type, got, want)
		}
	}
	// written by the new code, read as the old code read it
	for _, m := range []Method{
		{ID: "new-app", AccountID: "b", Type: "totp", Secret: "KRSXG5CTMVRXEZLU", CreatedAt: now},
		{ID: "new-pk", AccountID: "b", Type: "webauthn", Secret: `{"index":"cred-2","n":1}`, CreatedAt: now},
		{ID: "new-sms", AccountID: "b", Type: MethodSMS, Address: "+447700900777", CreatedAt: now},
	} {
		if err := st.AddMethod(ctx, m); err != nil {
			t.Fatal(err)
		}
		enc, idx, err := raw.read(ctx, m.AccountID, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		value := m.Address + m.Secret
		pt, err := raw.k.open(enc, methodAAD(m.AccountID, m.ID, m.Type))
		if err != nil || string(pt) != value {
			t.Fatalf("the old code reads the address of a new %s row as %q, %v; want its value", m.Type, pt, err)
		}
		if !bytes.Equal(idx, raw.k.addressIndex(m.Type, value)) {
			t.Fatalf("a new %s row has another blind index than the old code made", m.Type)
		}
	}
}
