package directory

import (
	"errors"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// OIDs used by this package; literals where go-ldap v3.4.15 exports no
// constant (its Password Modify and StartTLS OIDs are unexported).
const (
	oidPasswordModify      = "1.3.6.1.4.1.4203.1.11.1"                      // RFC 3062
	oidStartTLS            = "1.3.6.1.4.1.1466.20037"                       // RFC 4511
	oidPPolicy             = ldap.ControlTypeBeheraPasswordPolicy           // 1.3.6.1.4.1.42.2.27.8.5.1
	oidPolicyHints         = ldap.ControlTypeMicrosoftPolicyHints           // 1.2.840.113556.1.4.2239, LDAP_SERVER_POLICY_HINTS_OID (2012+)
	oidPolicyHintsDeprec   = ldap.ControlTypeMicrosoftPolicyHintsDeprecated // 1.2.840.113556.1.4.2066, LDAP_SERVER_POLICY_HINTS_DEPRECATED_OID
	oidADCapability        = "1.2.840.113556.1.4.800"                       // LDAP_CAP_ACTIVE_DIRECTORY_OID
	oidMatchingRuleInChain = "1.2.840.113556.1.4.1941"
)

// policyHints asks AD to apply password history and age to a reset
// (MS-ADTS 3.1.1.3.4.1.39). Sent critical: a DC that advertised it must honour it.
// go-ldap names the OIDs but has no type for the value, so the value
// (SEQUENCE { Flags INTEGER }) is built here and carried as a ControlString.
func policyHints(oid string) ldap.Control {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PolicyHintsRequestValue")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 1, "Flags"))
	return ldap.NewControlString(oid, true, string(seq.Bytes()))
}

// passwordModifyRequest is an RFC 3062 request sent through Extended() so
// that request controls (ppolicy) can ride along; go-ldap's PasswordModify()
// cannot carry controls and its request encoder is unexported (v3.4.15).
func passwordModifyRequest(userDN, oldPw, newPw string, controls []ldap.Control) *ldap.ExtendedRequest {
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PasswdModifyRequestValue")
	if userDN != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, userDN, "userIdentity"))
	}
	if oldPw != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, oldPw, "oldPasswd"))
	}
	if newPw != "" {
		seq.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, newPw, "newPasswd"))
	}
	req := ldap.NewExtendedRequest(oidPasswordModify, seq)
	req.Controls = controls
	return req
}

// controlsFromErr recovers the response controls of a failed operation:
// go-ldap (v3.4.15) drops them from the return values and from ldap.Error
// but keeps the packet.
func controlsFromErr(err error) []ldap.Control {
	var le *ldap.Error
	if !errors.As(err, &le) || le.Packet == nil || len(le.Packet.Children) < 3 {
		return nil
	}
	var out []ldap.Control
	for _, c := range le.Packet.Children[2].Children {
		if dc, derr := ldap.DecodeControl(c); derr == nil {
			out = append(out, dc)
		}
	}
	return out
}

// ppolicyError returns the Behera password policy error number in ctrls,
// or -1 when there is none.
func ppolicyError(ctrls []ldap.Control) int {
	c := ldap.FindControl(ctrls, oidPPolicy)
	if pp, ok := c.(*ldap.ControlBeheraPasswordPolicy); ok {
		return int(pp.Error)
	}
	return -1
}
