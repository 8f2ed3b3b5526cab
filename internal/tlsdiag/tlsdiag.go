// Package tlsdiag explains why a server certificate is not trusted, in words
// an operator can act on: which names the certificate has when the host name
// does not match ("certificate has no SAN" when it only has a CN), which
// issuer was unknown, when it expired. It is shared by the directory
// (LDAPS/StartTLS) and notify (SMTP) preflights and does no I/O.
package tlsdiag

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Kind is the reason a certificate was refused.
type Kind string

// The kinds, most specific first.
const (
	UnknownAuthority Kind = "unknown_authority"
	NameMismatch     Kind = "name_mismatch"
	Expired          Kind = "expired"
	NotYetValid      Kind = "not_yet_valid"
	// NegativeSerial: Go refuses to read a certificate whose serial number
	// is negative (about every second one Samba 4.17 generates for itself)
	NegativeSerial Kind = "negative_serial"
	Other          Kind = "other"
)

// Problem is one reason a certificate is not trusted.
type Problem struct {
	Kind    Kind
	Message string
}

// Verify checks a presented chain (leaf first) against roots (nil: the
// system roots) for host at now, and lists every problem found: unlike
// x509.Certificate.Verify, which stops at the first, it checks the validity
// period, the authority (at a time inside the validity period) and the name
// separately, so a wrong CA and a wrong name are both reported.
func Verify(chain []*x509.Certificate, roots *x509.CertPool, host string, now time.Time) []Problem {
	if len(chain) == 0 {
		return []Problem{{Other, "the server presented no certificate"}}
	}
	leaf := chain[0]
	var probs []Problem
	switch {
	case now.After(leaf.NotAfter):
		probs = append(probs, Problem{Expired, fmt.Sprintf("certificate expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))})
	case now.Before(leaf.NotBefore):
		probs = append(probs, Problem{NotYetValid, fmt.Sprintf("certificate is not valid before %s (check the clocks)", leaf.NotBefore.UTC().Format(time.RFC3339))})
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// the authority is checked at the nearest moment the leaf was valid
	at := now
	switch {
	case at.After(leaf.NotAfter):
		at = leaf.NotAfter.Add(-time.Second)
	case at.Before(leaf.NotBefore):
		at = leaf.NotBefore.Add(time.Second)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		probs = append(probs, Describe(err))
	}
	if err := leaf.VerifyHostname(host); err != nil {
		probs = append(probs, Describe(err))
	}
	return probs
}

// Describe explains a certificate verification error from crypto/tls or
// crypto/x509 (Kind Other, with the error's text, when it is not one).
func Describe(err error) Problem {
	if IsNegativeSerial(err) {
		return Problem{NegativeSerial, "the server's certificate, or its CA's, has a negative serial number, which Go's TLS refuses to read (x509: negative serial number), whatever the CA"}
	}
	var hn x509.HostnameError
	if errors.As(err, &hn) {
		return Problem{NameMismatch, nameMismatch(hn.Certificate, hn.Host)}
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return Problem{UnknownAuthority, unknownAuthority(ua.Cert)}
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		switch ci.Reason {
		case x509.Expired:
			if ci.Cert != nil {
				return Problem{Expired, fmt.Sprintf("certificate expired on %s (or is not valid yet)", ci.Cert.NotAfter.UTC().Format(time.RFC3339))}
			}
			return Problem{Expired, "certificate expired or not valid yet"}
		}
		return Problem{Other, "certificate invalid: " + ci.Error()}
	}
	var tv *tls.CertificateVerificationError
	if errors.As(err, &tv) {
		return Problem{Other, "certificate not trusted: " + tv.Err.Error()}
	}
	return Problem{Other, err.Error()}
}

// IsCertError reports whether err is a certificate verification failure,
// or a certificate Go cannot read for its negative serial number.
func IsCertError(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var tv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &tv) || IsNegativeSerial(err)
}

// IsNegativeSerial reports whether err is crypto/x509 refusing a
// certificate for its negative serial number: in a TLS handshake ("tls:
// failed to parse certificate from server: ...") or reading a CA file.
// crypto/x509 gives that error no type, only its text.
func IsNegativeSerial(err error) bool {
	return err != nil && strings.Contains(err.Error(), "x509: negative serial number")
}

func unknownAuthority(c *x509.Certificate) string {
	if c == nil {
		return "certificate signed by an unknown authority"
	}
	issuer := c.Issuer.String()
	if !c.IsCA && issuer == c.Subject.String() {
		return fmt.Sprintf("self-signed certificate %q, signed by an unknown authority", issuer)
	}
	return fmt.Sprintf("certificate signed by an unknown authority (issuer %q)", issuer)
}

// Names lists the names a certificate is valid for, as "DNS:x", "IP:y".
func Names(c *x509.Certificate) []string {
	var n []string
	for _, d := range c.DNSNames {
		n = append(n, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		n = append(n, "IP:"+ip.String())
	}
	return n
}

func nameMismatch(c *x509.Certificate, host string) string {
	if c == nil {
		return fmt.Sprintf("certificate is not valid for %s", host)
	}
	names := Names(c)
	if len(names) == 0 {
		cn := c.Subject.CommonName
		return fmt.Sprintf("certificate has no SAN (subject alternative name), only CN=%q, which TLS clients ignore; it is not valid for %s", cn, host)
	}
	what := "host name"
	if net.ParseIP(host) != nil {
		what = "IP address"
	}
	return fmt.Sprintf("certificate is valid for %s, not %s (the %s connected to)", strings.Join(names, ", "), host, what)
}
