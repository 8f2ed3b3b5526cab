// Package directory is everything Latchkey needs from an LDAP directory, for
// OpenLDAP (slapd with ppolicy) and Active Directory (including Samba AD DCs),
// behind one interface the rest of the product uses.
//
// It owns connecting (LDAPS, StartTLS, plain only when explicitly allowed;
// verified certificates; ordered failover across URLs; a small pool of
// service-account connections that never carries a user bind), RootDSE
// discovery, user lookup with the username escaped exactly once (RFC 4515),
// account status, nested group membership, password reset as the service
// account with the directory's own policy still applied, password change as
// the user, unlock, password verification, the effective password policy,
// and mapping every server answer to this package's own errors.
//
// No *ldap.Error, no LDAP diagnostic text and no password ever leaves the
// package: callers test errors with errors.Is against the sentinels in
// errors.go and read a policy refusal's machine-readable Reason with
// ReasonOf. Only this package imports go-ldap.
package directory
