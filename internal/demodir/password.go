package demodir

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Passwords are kept only as salted PBKDF2-SHA256 hashes:
// {PBKDF2-SHA256}iterations$salt$key, base64 without padding.
const (
	hashScheme     = "{PBKDF2-SHA256}"
	hashIterations = 10000
)

var b64 = base64.RawStdEncoding

func hashPassword(pw string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic("demodir: no randomness: " + err.Error())
	}
	key, err := pbkdf2.Key(sha256.New, pw, salt, hashIterations, 32)
	if err != nil {
		panic("demodir: pbkdf2: " + err.Error())
	}
	return hashScheme + strconv.Itoa(hashIterations) + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
}

// checkHash reports whether pw matches a stored hash.
func checkHash(stored, pw string) bool {
	rest, ok := strings.CutPrefix(stored, hashScheme)
	if !ok {
		return false
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return false
	}
	iter, err := strconv.Atoi(parts[0])
	if err != nil || iter < 1 || iter > 1_000_000 {
		return false
	}
	salt, err1 := b64.DecodeString(parts[1])
	want, err2 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, pw, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// randomPassword is a printable password that meets the default policy.
func randomPassword() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic("demodir: no randomness: " + err.Error())
	}
	return "Dk-" + base64.RawURLEncoding.EncodeToString(b) + "1!"
}

func randomUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("demodir: no randomness: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hx = "0123456789abcdef"
	var s strings.Builder
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s.WriteByte('-')
		}
		s.WriteByte(hx[c>>4])
		s.WriteByte(hx[c&0xf])
	}
	return s.String()
}

// Generalized time as slapd writes it.
const genTime = "20060102150405Z"

func formatTime(t time.Time) string { return t.UTC().Format(genTime) }

func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(genTime, s)
	if err != nil {
		// slapd also writes fractions: 20240101120000.123456Z
		t, err = time.Parse("20060102150405.999999Z", s)
	}
	return t, err == nil
}

// adminLocked is ppolicy's "locked until an administrator unlocks" value,
// which the directory package (and the dirtest seed) read as disabled.
const adminLocked = "000001010000Z"

// policy is a ppolicy entry as enforced here.
type policy struct {
	minLength, inHistory, checkQuality, maxFailure int
	lockout, mustChange, allowUserChange           bool
	lockoutDuration, failureInterval               time.Duration
	minAge, maxAge                                 time.Duration
}

func policyFrom(e *entry) policy {
	n := func(a string) int { v, _ := strconv.Atoi(e.first(a)); return v }
	sec := func(a string) time.Duration { return time.Duration(n(a)) * time.Second }
	b := func(a string, def bool) bool {
		v := e.first(a)
		if v == "" {
			return def
		}
		return strings.EqualFold(v, "TRUE")
	}
	return policy{
		minLength: n("pwdMinLength"), inHistory: n("pwdInHistory"), checkQuality: n("pwdCheckQuality"),
		maxFailure: n("pwdMaxFailure"), lockout: b("pwdLockout", false), mustChange: b("pwdMustChange", false),
		allowUserChange: b("pwdAllowUserChange", true), lockoutDuration: sec("pwdLockoutDuration"),
		failureInterval: sec("pwdFailureCountInterval"), minAge: sec("pwdMinAge"), maxAge: sec("pwdMaxAge"),
	}
}
