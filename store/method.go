package store

import "fmt"

// HasDestination reports whether a method of type typ is a destination a
// code is sent to, kept in Method.Address: MethodEmail and MethodSMS. A
// method of any other type (an authenticator app, security questions, a
// passkey) keeps its Secret instead.
func HasDestination(typ string) bool {
	return typ == MethodEmail || typ == MethodSMS
}

// methodValue is the one value of m the store keeps (encrypted, with its
// blind index): its Address for a destination type, its Secret for any
// other. Both are kept in the same column, so rows written when secrets
// still lived in Address read back the same. The value of the other field
// must be empty. The error never holds a value.
func methodValue(m Method) (string, error) {
	if m.ID == "" || m.AccountID == "" || m.Type == "" {
		return "", fmt.Errorf("%w: method id, account and type are required", ErrInvalid)
	}
	if HasDestination(m.Type) {
		if m.Address == "" || m.Secret != "" {
			return "", fmt.Errorf("%w: an email or SMS method needs an address and no secret", ErrInvalid)
		}
		return m.Address, nil
	}
	if m.Secret == "" || m.Address != "" {
		return "", fmt.Errorf("%w: a method of this type needs a secret and no address", ErrInvalid)
	}
	return m.Secret, nil
}

// setMethodValue puts a stored value into the field of m its type keeps
// (the reverse of methodValue); m.Type must be set.
func setMethodValue(m *Method, v string) {
	if HasDestination(m.Type) {
		m.Address = v
	} else {
		m.Secret = v
	}
}

// sealMethod is the stored form of m's value: encrypted and bound to the
// row, and its blind index.
func (k *keys) sealMethod(m Method) (enc, idx []byte, err error) {
	v, err := methodValue(m)
	if err != nil {
		return nil, nil, err
	}
	return k.seal([]byte(v), methodAAD(m.AccountID, m.ID, m.Type)), k.addressIndex(m.Type, v), nil
}

// openMethod decrypts a stored value into m (whose AccountID, ID and
// Type are set).
func (k *keys) openMethod(m *Method, enc []byte) error {
	v, err := k.open(enc, methodAAD(m.AccountID, m.ID, m.Type))
	if err != nil {
		return err
	}
	setMethodValue(m, string(v))
	return nil
}
