package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MinKeyLen is the shortest key accepted by the constructors (bytes).
const MinKeyLen = 32

// HKDF "info" labels. Changing one makes existing data unreadable.
const (
	infoEncrypt  = "latchkey/store/v1/aes-256-gcm"
	infoIndex    = "latchkey/store/v1/address-blind-index"
	infoCounter  = "latchkey/store/v1/counter-key"
	infoKeyCheck = "latchkey/store/v1/key-check"
)

// sealVersion is the first byte of every ciphertext, for key/algorithm
// rotation later.
const sealVersion = 1

var errDecrypt = errors.New("store: cannot decrypt a stored value (wrong key or tampered row)")

// keys holds the subkeys derived from the caller's key. The caller's key
// itself is not kept.
type keys struct {
	aead     cipher.AEAD
	index    []byte // HMAC key for address blind indexes
	counter  []byte // HMAC key for rate-limit counter keys
	keyCheck []byte // HMAC of a constant, stored to detect a wrong key
}

func deriveKeys(key []byte) (*keys, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("%w: key shorter than %d bytes", ErrInvalid, MinKeyLen)
	}
	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, key, nil, info, 32)
	}
	enc, err := derive(infoEncrypt)
	if err != nil {
		return nil, fmt.Errorf("store: derive key: %w", err)
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, fmt.Errorf("store: derive key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: derive key: %w", err)
	}
	k := &keys{aead: aead}
	if k.index, err = derive(infoIndex); err != nil {
		return nil, fmt.Errorf("store: derive key: %w", err)
	}
	if k.counter, err = derive(infoCounter); err != nil {
		return nil, fmt.Errorf("store: derive key: %w", err)
	}
	check, err := derive(infoKeyCheck)
	if err != nil {
		return nil, fmt.Errorf("store: derive key: %w", err)
	}
	k.keyCheck = mac(check, []byte("latchkey store key check"))
	return k, nil
}

// seal encrypts plaintext with a fresh random nonce. aad binds the
// ciphertext to its row so that it cannot be moved to another row.
// Output: version byte || nonce || ciphertext+tag.
func (k *keys) seal(plaintext, aad []byte) []byte {
	ns := k.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1 : 1+ns])                             // crypto/rand.Read never returns an error
	return k.aead.Seal(out, out[1:1+ns], plaintext, aad) // #nosec G407 -- the nonce is random, filled just above
}

func (k *keys) open(sealed, aad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errDecrypt
	}
	pt, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
	if err != nil {
		return nil, errDecrypt
	}
	return pt, nil
}

// addressIndex is the blind index of a method address: an HMAC of the type
// and the normalized address.
func (k *keys) addressIndex(typ, address string) []byte {
	return mac(k.index, aad("address", typ, NormalizeAddress(typ, address)))
}

// counterKey is the stored form of a rate-limit key.
func (k *keys) counterKey(key string) []byte {
	return mac(k.counter, []byte(key))
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// hashID is the stored form of a bearer ID (flow or session): SHA-256.
// Bearer IDs are >= 128-bit random values, so an unkeyed hash suffices.
func hashID(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return sum[:]
}

// idKey is the integer primary key of a flow or session row: the first 8
// bytes of its ID hash. Lookups also compare the full hash.
func idKey(h []byte) int64 {
	return int64(binary.BigEndian.Uint64(h[:8])) // #nosec G115 -- reinterpreting 64 hash bits as a key; overflow is intended
}

// aad builds an unambiguous byte string from parts (each length-prefixed).
func aad(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += 4 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p))) // #nosec G115 -- parts are short strings
		b = append(b, p...)
	}
	return b
}

// NormalizeAddress returns the form of an address used for the blind index
// (CountAccountsByAddress): for MethodEmail the address trimmed of spaces and
// lower-cased; for MethodSMS only a leading '+' and the digits (callers
// should pass E.164 numbers). For other types (whose value is their
// Method.Secret), a value that is a JSON object with a non-empty string
// member "index" is indexed by that member alone: a record of which one field names the destination (a passkey's
// credential id) is found by that field, whatever else it holds or later
// holds (a signature counter). Other addresses are unchanged. It is exported
// so callers can compare addresses the way the store does.
func NormalizeAddress(typ, address string) string {
	switch typ {
	case MethodEmail:
		return strings.ToLower(strings.TrimSpace(address))
	case MethodSMS:
		s := strings.TrimSpace(address)
		var b strings.Builder
		if strings.HasPrefix(s, "+") {
			b.WriteByte('+')
		}
		for _, r := range s {
			if r >= '0' && r <= '9' {
				b.WriteRune(r)
			}
		}
		return b.String()
	default:
		if k, ok := recordIndex(address); ok {
			return k
		}
		return address
	}
}

// recordIndex returns the "index" member of an address that is a JSON
// object with a non-empty string member of that name.
func recordIndex(address string) (string, bool) {
	if !strings.HasPrefix(strings.TrimSpace(address), "{") {
		return "", false
	}
	var rec struct {
		Index *string `json:"index"`
	}
	if err := json.Unmarshal([]byte(address), &rec); err != nil || rec.Index == nil || *rec.Index == "" {
		return "", false
	}
	return *rec.Index, true
}
