package tlsdiag

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, cn string) ca {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return ca{c, key}
}

func (a ca) leaf(t *testing.T, dns []string, ips []net.IP, notAfter time.Time) *x509.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter, DNSNames: dns, IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func kinds(ps []Problem) string {
	var k []string
	for _, p := range ps {
		k = append(k, string(p.Kind))
	}
	return strings.Join(k, ",")
}

func TestVerify(t *testing.T) {
	good, other := newCA(t, "Good CA"), newCA(t, "Other CA")
	roots := x509.NewCertPool()
	roots.AddCert(good.cert)
	now := time.Now()
	day := now.Add(24 * time.Hour)
	ip := []net.IP{net.ParseIP("127.0.0.1")}

	if ps := Verify([]*x509.Certificate{good.leaf(t, []string{"ldap.example.org"}, ip, day)}, roots, "127.0.0.1", now); len(ps) != 0 {
		t.Fatalf("valid chain: %v", ps)
	}
	// a wrong CA and a wrong name are both reported, each with what it found
	ps := Verify([]*x509.Certificate{other.leaf(t, []string{"ldap.example.org"}, nil, day)}, roots, "127.0.0.1", now)
	if kinds(ps) != "unknown_authority,name_mismatch" {
		t.Fatalf("got %v", ps)
	}
	if !strings.Contains(ps[0].Message, `issuer "CN=Other CA"`) || !strings.Contains(ps[1].Message, "valid for DNS:ldap.example.org, not 127.0.0.1") {
		t.Fatalf("messages: %v", ps)
	}
	// CN only, as Samba's own certificate
	ps = Verify([]*x509.Certificate{good.leaf(t, nil, nil, day)}, roots, "dc1.example.test", now)
	if kinds(ps) != "name_mismatch" || !strings.Contains(ps[0].Message, `certificate has no SAN`) || !strings.Contains(ps[0].Message, `CN="localhost"`) {
		t.Fatalf("no SAN: %v", ps)
	}
	// expired, but otherwise right: only the expiry is reported
	ps = Verify([]*x509.Certificate{good.leaf(t, []string{"localhost"}, nil, now.Add(-time.Hour))}, roots, "localhost", now)
	if kinds(ps) != "expired" {
		t.Fatalf("expired: %v", ps)
	}
	if ps := Verify(nil, roots, "localhost", now); kinds(ps) != "other" {
		t.Fatalf("no certificate: %v", ps)
	}
}

func TestDescribe(t *testing.T) {
	good := newCA(t, "Good CA")
	leaf := good.leaf(t, []string{"a.example"}, nil, time.Now().Add(time.Hour))
	_, err := leaf.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), DNSName: "a.example"})
	if p := Describe(err); p.Kind != UnknownAuthority || !IsCertError(err) {
		t.Fatalf("got %+v for %v", p, err)
	}
	if p := Describe(leaf.VerifyHostname("b.example")); p.Kind != NameMismatch || !strings.Contains(p.Message, "DNS:a.example, not b.example") {
		t.Fatalf("got %+v", p)
	}
}

// A server whose certificate has a negative serial number, as about every
// second one Samba 4.17 generates for itself: Go's TLS client refuses to
// read it, and that is a certificate problem of its own kind.
func TestNegativeSerial(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	// version v3, then serial INTEGER 1: make the serial -1 (Go will not
	// issue one, and the handshake fails on reading it, before any signature)
	v3serial1 := []byte{0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01}
	i := bytes.Index(der, v3serial1)
	if i < 0 {
		t.Fatal("serial not found in the certificate")
	}
	der[i+len(v3serial1)-1] = 0xff
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12})
	if err == nil {
		t.Fatal("handshake succeeded")
	}
	if !IsNegativeSerial(err) || !IsCertError(err) {
		t.Fatalf("not recognised: %v", err)
	}
	if p := Describe(err); p.Kind != NegativeSerial || !strings.Contains(p.Message, "negative serial") {
		t.Fatalf("described as %+v", p)
	}
	if IsNegativeSerial(errors.New("x509: certificate signed by unknown authority")) || IsNegativeSerial(nil) {
		t.Fatal("other errors taken for a negative serial")
	}
}
