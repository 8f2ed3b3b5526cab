// Package gateway is Latchkey's web face: the Echo server, its routes and
// middleware, CSRF, the server-rendered pages (one set per flow) and the
// JSON API. The flows themselves (sign-in, register, reset, unlock,
// change) are package flow's; both the pages and the API call its
// exported surface.
//
// It depends on the directory, store, notify and policy packages through
// their interfaces and never on go-ldap, SQL or SMTP details.
package gateway
