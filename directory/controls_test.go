package directory

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// The AD policy hints control goes on the wire exactly as MS-ADTS
// 3.1.1.3.4.1.39 has it: SEQUENCE { OID, critical TRUE, OCTET STRING
// holding SEQUENCE { INTEGER 1 } }.
func TestPolicyHintsEncoding(t *testing.T) {
	for oid, want := range map[string]string{
		"1.2.840.113556.1.4.2239": "3023" + "0417" + hex.EncodeToString([]byte("1.2.840.113556.1.4.2239")) + "010101" + "0405" + "3003020101",
		"1.2.840.113556.1.4.2066": "3023" + "0417" + hex.EncodeToString([]byte("1.2.840.113556.1.4.2066")) + "010101" + "0405" + "3003020101",
	} {
		c := policyHints(oid)
		if got := hex.EncodeToString(c.Encode().Bytes()); got != want {
			t.Errorf("%s encodes as %s, want %s", oid, got, want)
		}
		if c.GetControlType() != oid {
			t.Errorf("control type %q, want %q", c.GetControlType(), oid)
		}
		back, err := ldap.DecodeControl(c.Encode())
		if err != nil {
			t.Fatalf("%s: decode: %v", oid, err)
		}
		cs, ok := back.(*ldap.ControlString)
		if !ok || !cs.Criticality || cs.ControlType != oid || !bytes.Equal([]byte(cs.ControlValue), []byte{0x30, 0x03, 0x02, 0x01, 0x01}) {
			t.Errorf("%s decodes as %#v", oid, back)
		}
	}
	if oidPolicyHints != "1.2.840.113556.1.4.2239" || oidPolicyHintsDeprec != "1.2.840.113556.1.4.2066" {
		t.Errorf("policy hints OIDs %s and %s", oidPolicyHints, oidPolicyHintsDeprec)
	}
}
