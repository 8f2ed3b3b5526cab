// Package webauthntest is a software WebAuthn authenticator for tests: one
// ES256 credential with "none" attestation, answering the options a relying
// party sends as navigator.credentials.create and .get would, with the
// origin and RP id it is told to claim (a real browser fills these in from
// the page; a test can lie to show that the gateway notices).
//
// It is used by the gateway's unit tests and by the end-to-end suite
// against real directories. It is not an implementation of CTAP and checks
// nothing it is sent beyond what it needs to answer.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// B64 is the encoding WebAuthn's JSON forms use for binary values.
var B64 = base64.RawURLEncoding

// Authenticator is one credential and its signature counter. The exported
// fields may be changed between calls; a copy of an Authenticator (by
// value) shares the key.
type Authenticator struct {
	// ID is the credential id (32 random bytes from New).
	ID []byte
	// Handle is the user handle learnt from the last creation options,
	// sent back in assertions.
	Handle []byte
	// Count is the signature counter: Get increments it before signing
	// unless SameCount is set.
	Count uint32
	// Origin and RPID are what the client data and the authenticator data
	// claim.
	Origin string
	RPID   string
	// NoUP leaves the user-presence flag unset.
	NoUP bool
	// SameCount keeps Count as it is in Get (a cloned authenticator).
	SameCount bool

	key *ecdsa.PrivateKey
}

// New makes an authenticator with a fresh key and credential id that
// claims origin (scheme://host[:port]) and its host name as RP id.
func New(origin string) (*Authenticator, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("webauthntest: origin %q has no host", origin)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	rand.Read(id)
	return &Authenticator{key: k, ID: id, Origin: u.Scheme + "://" + u.Host, RPID: u.Hostname()}, nil
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

func (a *Authenticator) authData(withCred bool) ([]byte, error) {
	h := sha256.Sum256([]byte(a.RPID))
	flags := byte(0x01 | 0x04) // UP, UV
	if a.NoUP {
		flags = 0x04
	}
	if withCred {
		flags |= 0x40 // AT
	}
	out := append([]byte{}, h[:]...)
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, a.Count)
	if withCred {
		out = append(out, make([]byte, 16)...)                      // AAGUID: none
		out = binary.BigEndian.AppendUint16(out, uint16(len(a.ID))) // #nosec G115 -- a credential id is short
		out = append(out, a.ID...)
		pub, err := a.key.PublicKey.ECDH()
		if err != nil {
			return nil, err
		}
		raw := pub.Bytes() // 0x04 || X || Y
		cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
			PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
			Curve:         1, XCoord: raw[1:33], YCoord: raw[33:]})
		if err != nil {
			return nil, err
		}
		out = append(out, cose...)
	}
	return out, nil
}

// Create answers PublicKeyCredentialCreationOptions (their JSON form) as
// navigator.credentials.create would, and remembers the user handle.
func (a *Authenticator) Create(options json.RawMessage) ([]byte, error) {
	var o struct {
		Challenge string `json:"challenge"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("webauthntest: creation options: %w", err)
	}
	a.Handle, _ = B64.DecodeString(o.User.ID)
	ad, err := a.authData(true)
	if err != nil {
		return nil, err
	}
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": B64.EncodeToString(a.ID), "rawId": B64.EncodeToString(a.ID), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": B64.EncodeToString(a.clientData("webauthn.create", o.Challenge)),
			"attestationObject": B64.EncodeToString(att), "transports": []string{"internal"}}})
}

// Get answers PublicKeyCredentialRequestOptions (their JSON form) as
// navigator.credentials.get would, advancing the counter first unless
// SameCount is set.
func (a *Authenticator) Get(options json.RawMessage) ([]byte, error) {
	var o struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("webauthntest: request options: %w", err)
	}
	if !a.SameCount {
		a.Count++
	}
	ad, err := a.authData(false)
	if err != nil {
		return nil, err
	}
	cd := a.clientData("webauthn.get", o.Challenge)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"id": B64.EncodeToString(a.ID), "rawId": B64.EncodeToString(a.ID), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": B64.EncodeToString(cd), "authenticatorData": B64.EncodeToString(ad),
			"signature": B64.EncodeToString(sig), "userHandle": B64.EncodeToString(a.Handle)}})
}
