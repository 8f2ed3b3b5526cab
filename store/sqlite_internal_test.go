package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openInternal(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), "file:"+filepath.Join(t.TempDir(), "i.db"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Rows are found by the 64-bit key AND the full SHA-256: an ID that shares
// only the key (simulated by rewriting the stored hash) matches nothing,
// and a key taken by another ID makes CreateFlow/CreateSession conflict.
func TestLookupNeedsFullHash(t *testing.T) {
	s, ctx, now := openInternal(t), t.Context(), time.Now()
	f := Flow{ID: "flow-0123456789abcdef", Kind: FlowReset, AccountID: "a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateFlow(ctx, f); err != nil {
		t.Fatal(err)
	}
	sess := Session{ID: "sess-0123456789abcdef", AccountID: "a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{0xee}, 32)
	for _, table := range []string{"flows", "sessions"} {
		if _, err := s.w.DB.ExecContext(ctx, `UPDATE `+table+` SET id_hash = ?`, other); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := s.GetFlow(ctx, f.ID, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetFlow with only the key matching: %v", err)
	}
	if err := s.UpdateFlow(ctx, f); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateFlow with only the key matching: %v", err)
	}
	if err := s.IssueCode(ctx, Code{FlowID: f.ID, Purpose: "p", MethodID: "m", AccountID: "a", Hash: []byte("h"),
		ExpiresAt: now.Add(time.Minute)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("IssueCode with only the key matching: %v", err)
	}
	if err := s.DeleteFlow(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, sess.ID, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetSession with only the key matching: %v", err)
	}
	if err := s.TouchSession(ctx, sess.ID, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("TouchSession with only the key matching: %v", err)
	}
	if err := s.DeleteSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	var flows, sessions int
	s.w.DB.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM flows), (SELECT COUNT(*) FROM sessions)`).Scan(&flows, &sessions)
	if flows != 1 || sessions != 1 {
		t.Errorf("delete by key alone removed another ID's row: flows=%d sessions=%d", flows, sessions)
	}

	if err := s.CreateFlow(ctx, f); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateFlow on a taken key: %v, want ErrConflict", err)
	}
	if err := s.CreateSession(ctx, sess); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateSession on a taken key: %v, want ErrConflict", err)
	}
}

// An encrypted address is bound to its row: copying one method's
// ciphertext onto another (someone with write access to the database
// redirecting codes) makes reads fail instead of returning the copied
// address. The same holds for flow data.
func TestCiphertextBoundToRow(t *testing.T) {
	s, ctx, now := openInternal(t), t.Context(), time.Now()
	for _, m := range []Method{
		{ID: "victim", AccountID: "alice", Type: MethodSMS, Address: "+447700900001", CreatedAt: now},
		{ID: "attacker", AccountID: "mallory", Type: MethodSMS, Address: "+447700900666", CreatedAt: now},
	} {
		if err := s.AddMethod(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.w.DB.ExecContext(ctx, `UPDATE methods SET address_enc =
		(SELECT address_enc FROM methods WHERE id = 'attacker') WHERE id = 'victim'`); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMethod(ctx, "alice", "victim")
	if err == nil {
		t.Fatalf("GetMethod returned %q from another row's ciphertext", m.Address)
	}
	if strings.Contains(err.Error(), "+4477") {
		t.Fatalf("error holds an address: %v", err)
	}
	if _, err := s.ListMethods(ctx, "alice"); err == nil {
		t.Fatal("ListMethods succeeded with a moved ciphertext")
	}

	f1 := Flow{ID: "flow-one-0123456789", Kind: FlowReset, AccountID: "a", Data: map[string]string{"k": "1"},
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	f2 := Flow{ID: "flow-two-0123456789", Kind: FlowReset, AccountID: "a", Data: map[string]string{"k": "2"},
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, f := range []Flow{f1, f2} {
		if err := s.CreateFlow(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.w.DB.ExecContext(ctx, `UPDATE flows SET data_enc = (SELECT data_enc FROM flows WHERE key = ?)
		WHERE key = ?`, idKey(hashID(f2.ID)), idKey(hashID(f1.ID))); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetFlow(ctx, f1.ID, now); err == nil {
		t.Fatalf("GetFlow returned data %v from another flow's ciphertext", got.Data)
	}
}

func TestNormalizeAddress(t *testing.T) {
	for _, tc := range []struct{ typ, in, want string }{
		{MethodEmail, "  Alice@Example.ORG ", "alice@example.org"},
		{MethodSMS, "+44 (0)7700-900.123", "+4407700900123"},
		{MethodSMS, " 07700 900123", "07700900123"},
		{"totp", "  As Is ", "  As Is "},
	} {
		if got := NormalizeAddress(tc.typ, tc.in); got != tc.want {
			t.Errorf("NormalizeAddress(%q, %q) = %q, want %q", tc.typ, tc.in, got, tc.want)
		}
	}
}

// Subkeys are independent of each other and of the input key's length
// beyond MinKeyLen (a longer key is a different key).
func TestDeriveKeys(t *testing.T) {
	k1, err := deriveKeys(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := deriveKeys(bytes.Repeat([]byte{1}, 33))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k1.index, k2.index) || bytes.Equal(k1.keyCheck, k2.keyCheck) {
		t.Error("a longer key derived the same subkeys")
	}
	if bytes.Equal(k1.index, k1.counter) {
		t.Error("blind-index and counter subkeys are equal")
	}
	if !bytes.Equal(k1.addressIndex(MethodEmail, "A@x.org"), k1.addressIndex(MethodEmail, " a@X.ORG")) {
		t.Error("blind index does not normalize")
	}
	if bytes.Equal(k1.addressIndex(MethodEmail, "a@x.org"), k1.addressIndex(MethodSMS, "a@x.org")) {
		t.Error("blind index does not separate types")
	}
	sealed := k1.seal([]byte("secret"), []byte("aad"))
	if _, err := k2.open(sealed, []byte("aad")); err == nil {
		t.Error("another key opened the ciphertext")
	}
	if _, err := k1.open(sealed, []byte("other aad")); err == nil {
		t.Error("ciphertext opened under another AAD")
	}
	if pt, err := k1.open(sealed, []byte("aad")); err != nil || string(pt) != "secret" {
		t.Errorf("open: %q, %v", pt, err)
	}
}

// Purge works through more rows than one batch and counts them all,
// including the codes of expired flows.
func TestPurgeManyBatches(t *testing.T) {
	s, ctx, now := openInternal(t), t.Context(), time.Now()
	const n = 2*purgeBatch + 500
	if err := SeedForBench(ctx, s, n, now.Add(-2*time.Hour)); err != nil { // flows expired an hour ago
		t.Fatal(err)
	}
	live := Flow{ID: "live-flow-0123456789", Kind: FlowReset, AccountID: "a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateFlow(ctx, live); err != nil {
		t.Fatal(err)
	}
	got, err := s.Purge(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2*n {
		t.Errorf("Purge = %d, want %d (flows and their codes)", got, 2*n)
	}
	var flows, codes int
	s.w.DB.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM flows), (SELECT COUNT(*) FROM codes)`).Scan(&flows, &codes)
	if flows != 1 || codes != 0 {
		t.Errorf("after Purge: %d flows, %d codes; want 1 and 0", flows, codes)
	}
}
