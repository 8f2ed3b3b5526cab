package flow

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"strings"
)

// keys are independent subkeys of Options.SecretKey, one per purpose.
type keys struct {
	code     []byte // hashes of one-time codes
	decoy    []byte // stable fake methods for unknown users
	register []byte // registration flow ids derived from session + method
	csrf     []byte // form tokens
}

func deriveKeys(secret []byte) (keys, error) {
	d := func(label string) ([]byte, error) {
		return hkdf.Key(sha256.New, secret, nil, "latchkey gateway "+label, 32)
	}
	var k keys
	var err error
	if k.code, err = d("code"); err != nil {
		return k, err
	}
	if k.decoy, err = d("decoy"); err != nil {
		return k, err
	}
	if k.register, err = d("register"); err != nil {
		return k, err
	}
	k.csrf, err = d("csrf")
	return k, err
}

// newToken is a 256-bit random bearer secret, URL-safe.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newID is a random 88-bit identifier (not a secret) shaped like decoyID.
func newID() string {
	b := make([]byte, 11)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newCode is a uniformly random decimal code of n digits.
func newCode(n int) string {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		panic("gateway: crypto/rand failed: " + err.Error())
	}
	s := v.String()
	return strings.Repeat("0", n-len(s)) + s
}

func mac(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// codeHash binds a code to its flow, purpose and method.
func (k keys) codeHash(flowID, purpose, methodID, code string) []byte {
	return mac(k.code, flowID, purpose, methodID, code)
}

// normalizeCode keeps digits only, so "123 456" and "123-456" are accepted.
func normalizeCode(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
		if b.Len() > 16 {
			break
		}
	}
	return b.String()
}
