// Package demodir is an LDAP directory embedded in the process, for
// `latchkey demo` and for tests: it speaks the real LDAP protocol on
// loopback sockets (LDAPS, and ldap:// with StartTLS), so the unchanged
// directory package (flavor openldap) talks to it as it would to slapd
// with slapo-ppolicy.
//
// What it does like slapd + ppolicy, because the directory package relies
// on it: RootDSE discovery; simple binds with lockout (pwdFailureTime,
// pwdAccountLockedTime, 49 with the ppolicy accountLocked error) and
// must-change (pwdReset); searches with real filter evaluation; the
// Password Modify extended operation (RFC 3062) checked against the
// entry's ppolicy (length, history, minimum age) unless done by the
// administrator (rootdn), answering with the ppolicy response control;
// the access rules of directory/dirtest/testdata/slapd.conf.in. Passwords
// are only kept as salted PBKDF2-SHA256 hashes and are never logged.
//
// What it does not do: schema checking, SASL, referrals, ModifyDN,
// Compare, paging, persistence. It is a demo and a test double, not a
// directory server. Requests it does not serve (SASL binds, ModifyDN,
// Compare, unknown critical controls) get an LDAP result and leave the
// connection usable, as slapd's do.
//
// # Files
//
//   - conn.go: the connection loop, the LDAPMessage envelope (message ID,
//     request, controls) read and written, dispatch, result and ppolicy
//     control encoding.
//   - ops.go: bind, search, modify, add, delete and the extended
//     operations (StartTLS, WhoAmI, Password Modify), each reading its
//     request's fields and applying the directory's rules.
//   - filter.go: evaluation of a search filter as received (BER).
//   - store.go, ldif.go, seed.go, password.go, lock.go, tls.go: the
//     in-memory tree, the LDIF seed, the demo people, password hashing,
//     the demo's lock button, the throwaway CA.
//
// # Why the LDAP message layer is written here
//
// BER itself is not: go-asn1-ber reads and writes every packet, and
// go-ldap gives the result codes, DN escaping and OIDs. What is written
// here is the LDAP message layout on top, which child of a request is
// which field: conn.go (256 lines) and the decoding of each request and
// building of each response in ops.go (filter.go's evaluation would stay
// with any library, which hands over the filter, not its result). A
// server library would take that part; the maintained candidate is github.com/jimlambrt/gldap. It was checked at v0.1.14
// (released 2024-08-30, the newest version on the Go module proxy on
// 2026-12-06) by reading its source and by running it against go-ldap
// v3.4.15, the client the directory package uses. It cannot serve what
// the directory package needs:
//
//   - Password Modify, the operation every reset and change uses: gldap
//     decodes only the name of an extended request, never its value
//     (ExtendedOperationMessage.Value is declared but never set, and
//     Request has no accessor for extended requests or the raw packet),
//     so the user, old and new password cannot be read. Its controls are
//     not decoded either (ExtendedOperationMessage has no Controls), so
//     the ppolicy request control that asks for the answer below is unseen.
//   - Controls on an extended response: ExtendedResponse has no
//     SetControls, so the ppolicy error (too short, in history, too
//     young) cannot ride on a failed Password Modify, which is how the
//     directory package tells the user why (directory.ppolicyError).
//   - A responseName or responseValue: ExtendedResponse writes neither
//     (SetResponseName is stored but not encoded), so WhoAmI answers
//     with an empty identity.
//   - Answers to the requests the demo does not serve: a SASL bind, a
//     bind of another version, Compare, ModifyDN and Abandon fail to
//     decode and gldap closes the connection instead of answering (go-ldap
//     then sees EOF); a critical control cannot be refused before the
//     handler runs unless every handler checks it.
//   - Close: Server.Stop waits for every connection to end but does not
//     close idle ones, so it blocks while a client (the gateway's pool)
//     keeps one open; measured: still blocked after 5 s, returned once
//     the client closed.
//   - Listening on port 0: Server.Run takes an address and has no Addr()
//     nor a way to serve a given net.Listener, so the free ports the demo
//     and the tests use could only be guessed before listening.
//
// It would also put the testing package, testify, go-hclog and
// fatih/color into the latchkey binary (gldap's testing.go is not a test
// file), and at debug level it prints every packet it reads or writes,
// with the values of universal strings in clear: a Modify or Add of
// userPassword would be logged (measured with a bind: the DN printed,
// the context-tagged password only as its length).
//
// Keeping gldap for binds and searches and hand-writing the rest is not
// possible either: gldap owns the connection's read loop and
// exports none of its decoders. The other Go server library,
// github.com/vjeantet/ldapserver, has had no release since v1.0.1
// (2020-04-23). Tests that pin the behaviour listed above are in
// protocol_test.go; revisit when gldap decodes extended request values
// and carries controls on extended responses.
package demodir
