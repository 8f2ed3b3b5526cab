// Package gateway is Latchkey's web face: the Echo server, its routes and
// middleware, CSRF, the server-rendered pages (one set per flow) and the
// JSON API. The flows themselves (sign-in, register, reset, unlock,
// change) are package flow's; both the pages and the API call its
// exported surface.
//
// It depends on the directory, store, notify and policy packages through
// their interfaces and never on go-ldap, SQL or SMTP details.
//
// Where things are:
//
//   - routes.go: every route on one screen; server.go: the server, its
//     middleware, rendering and the error answer;
//   - web.go: what every form shares (strict parsing, CSRF, redirects);
//   - web_register.go: sign-in and the registration of methods;
//     questions_web.go and webauthn_http.go: the pages of the two methods
//     that are more than a code;
//   - web_flow.go: the reset and unlock pages, step by step;
//   - web_change.go: the change page;
//   - api.go: the JSON API; kinds.go: each method kind's pages;
//   - metrics.go, static.go, a11y.go, demo.go: the rest.
package gateway
