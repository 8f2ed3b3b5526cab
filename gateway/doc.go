// Package gateway is Latchkey's web face: the Echo server, its routes and
// middleware, the server-rendered pages and the JSON API, and the flows
// themselves (register, reset, unlock, change) as plain methods on Service
// that both the pages and the API call.
//
// It depends on the directory, store, notify and policy packages through
// their interfaces and never on go-ldap, SQL or SMTP details.
package gateway
