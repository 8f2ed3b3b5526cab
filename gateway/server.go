package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/templates"
)

// Server is the HTTP face of a Service.
type Server struct {
	svc   *flow.Service
	e     *echo.Echo
	stats *metrics
	// o are the service's options
	o     flow.Options
	pages map[string]*template.Template
	// static are the files under /static/, read at start-up
	static map[string]staticFile
	// cookie names: __Host- prefixed and Secure behind https
	secure                                bool
	cookieSession, cookieCSRF, cookieFlow string
	// cookieAdmin holds the admin console's session
	cookieAdmin string
	origin      string
	// draining is set by Drain: /readyz answers 503 "draining"
	draining atomic.Bool
	// closing is set by CloseConnections: every answer closes its
	// connection
	closing atomic.Bool
	// conns counts the open client connections (HTTPServer's ConnState)
	conns atomic.Int64
	// proxyWarned: the warning about X-Forwarded-For without
	// server.trusted_proxies was logged (once per process)
	proxyWarned atomic.Bool
}

// cspPages is the Content-Security-Policy of every answer: no script at
// all, styles and images from the gateway only.
const cspPages = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// cspTOTPEnrol is cspPages for the one answer that shows a new
// authenticator app's QR code, inline as a data: image. data: images run
// no code and fetch nothing, so allowing them in img-src on this answer
// alone opens no channel; the alternative, a GET URL serving the QR code,
// would let anyone holding the session fetch the seed again for as long as
// the app is unverified, from a URL that history and caches remember,
// where the seed must leave the gateway once (security notes D3).
const cspTOTPEnrol = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// retryAfterBusy is the Retry-After (seconds) of a 503 "busy": the
// outbox holds more codes than leave within outbox.max_wait.
const retryAfterBusy = "60"

// retryAfterUnavailable is the Retry-After (seconds) of every 503
// "unavailable": a directory or store outage usually ends within seconds
// of the dependency's return (the pools reconnect by themselves).
const retryAfterUnavailable = "10"

const (
	maxBody       = 64 << 10
	ctxRequestID  = "latchkey.request_id"
	ctxClientIP   = "latchkey.client_ip"
	ctxCSRFCookie = "latchkey.csrf"
)

// New builds the HTTP server around svc.
func New(svc *flow.Service) (*Server, error) {
	s := &Server{svc: svc, e: echo.New(), stats: newMetrics(svc)}
	o := svc.Options()
	s.o = o
	s.secure = o.PublicURL.Scheme == "https"
	prefix := ""
	if s.secure {
		prefix = "__Host-"
	}
	s.cookieSession, s.cookieCSRF, s.cookieFlow = prefix+"latchkey_session", prefix+"latchkey_csrf", prefix+"latchkey_flow"
	s.cookieAdmin = prefix + "latchkey_admin"
	s.origin = o.PublicURL.Scheme + "://" + o.PublicURL.Host
	if err := s.loadPages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(templates.FS, "static")
	if err != nil {
		return nil, err
	}
	if s.static, err = staticFiles(static); err != nil {
		return nil, err
	}
	e := s.e
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.base, s.stats.middleware)
	s.routes()
	var patterns []string
	for _, r := range e.Routes() {
		patterns = append(patterns, r.Path)
	}
	s.stats.setRoutes(patterns)
	return s, nil
}

// Handler is the root http.Handler.
func (s *Server) Handler() http.Handler { return s.e }

// HTTPServer is an http.Server with the configured timeouts.
func (s *Server) HTTPServer(addr string) *http.Server {
	o := s.o
	return &http.Server{Addr: addr, Handler: s.e, ReadTimeout: o.ReadTimeout, ReadHeaderTimeout: o.ReadHeaderTimeout,
		WriteTimeout: o.WriteTimeout, IdleTimeout: o.IdleTimeout, MaxHeaderBytes: 16 << 10,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.conns.Add(-1)
			}
		}}
}

// pageNames are the pages the server renders (templates/pages/NAME.html):
// each is parsed at start-up, and a missing one fails the start, not a
// request.
var pageNames = []string{"change", "demo_outbox", "done", "error", "flow_code", "flow_methods", "flow_password",
	"flow_questions", "flow_start", "flow_unlock", "home", "methods", "not_eligible", "passkey", "questions", "signin",
	"totp_enrol", "verify_method",
	"admin_signin", "admin_properties", "admin_methods", "admin_customization", "admin_activity", "admin_explain", "admin_blocked", "admin_notifications", "admin_registration"}

func (s *Server) loadPages() error {
	pages, err := parsePages(templates.FS)
	s.pages = pages
	return err
}

// parsePages parses every page of pageNames from fsys, each with the
// layout.
func parsePages(fsys fs.FS) (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, n := range pageNames {
		files := []string{"pages/layout.html", "pages/" + n + ".html"}
		if strings.HasPrefix(n, "admin_") {
			files = append(files, "pages/admin_common.html")
		}
		t, err := template.New("layout.html").Funcs(pageFuncs).ParseFS(fsys, files...)
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", n, err)
		}
		pages[n] = t
	}
	return pages, nil
}

// base runs on every request: request id, client address, security headers,
// body limit, and the CSRF cookie for browsers.
func (s *Server) base(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rid := make([]byte, 8)
		_, _ = rand.Read(rid)
		id := hex.EncodeToString(rid)
		c.Set(ctxRequestID, id)
		h := c.Response().Header()
		h.Set("X-Request-Id", id)
		h.Set("Content-Security-Policy", cspPages)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		if s.secure {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		// Once the listener has closed (CloseConnections), an answer
		// closes its connection, so that the client's next request finds
		// the listener closed and a load balancer sends it to another
		// instance, instead of the connection being closed under it.
		// Decided when the answer is written, not when the request came:
		// a request begun before CloseConnections and answered after it
		// must close its connection too.
		c.Response().Before(func() {
			if s.closing.Load() {
				h.Set("Connection", "close")
			}
		})
		// A method outside the fixed set is refused before anything else
		// runs: no client address, no route, no metrics (which would
		// otherwise keep every method string anyone sends), no audit. No
		// OPTIONS (no CORS preflight answers), no TRACE (no echo of the
		// request), no CONNECT.
		if !knownMethod(c.Request().Method) {
			return flow.NewProblem(flow.CodeMethodNotAllowed, nil)
		}
		c.Set(ctxClientIP, s.clientIP(c.Request()))
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxBody)
		return next(c)
	}
}

// clientIP is the socket peer, or the last untrusted address in
// X-Forwarded-For when the peer is a configured trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if !s.trusted(peer) {
		if len(s.o.TrustedProxies) == 0 && (r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "") &&
			s.proxyWarned.CompareAndSwap(false, true) {
			s.svc.Log().Warn("a request came through a proxy (X-Forwarded-For) but server.trusted_proxies is empty: every client behind it counts as the proxy's address, "+
				"so the per-address budgets (limits.starts_per_ip, limits.sign_ins_per_ip) stop all of them at once; set server.trusted_proxies to the proxy's address (logged once)",
				"peer", peer.String())
		}
		return s.limitAddr(peer)
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer.String()
		}
		if !s.trusted(a) {
			return s.limitAddr(a)
		}
	}
	return s.limitAddr(peer)
}

// limitAddr is the client address as budgets and the audit see it: IPv4 as
// is, IPv6 as its network of Limits.IPv6Prefix bits (default /56: one
// customer of a provider usually holds a whole /56 or /48, so per /64 one
// client would have 256 or 65,536 budgets).
func (s *Server) limitAddr(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(s.o.Limits.IPv6Prefix)
	return p.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.o.TrustedProxies {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func meta(c echo.Context) flow.Meta {
	id, _ := c.Get(ctxRequestID).(string)
	ip, _ := c.Get(ctxClientIP).(string)
	return flow.Meta{RequestID: id, ClientIP: ip}
}

// handleError is the one error handler: fixed messages with a request id
// for users, details in the log.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var p *flow.Problem
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			p = flow.NewProblem(flow.CodeNotFound, nil)
		case http.StatusMethodNotAllowed:
			p = flow.NewProblem(flow.CodeMethodNotAllowed, nil)
		case http.StatusRequestEntityTooLarge:
			p = flow.NewProblem(flow.CodeTooLarge, nil)
		case http.StatusBadRequest:
			p = flow.NewProblem(flow.CodeInvalidRequest, err)
		default:
			p = flow.NewProblem(flow.CodeInternal, err)
		}
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p = flow.NewProblem(flow.CodeTooLarge, nil)
		} else {
			p = flow.NewProblem(flow.CodeInternal, err)
		}
	}
	m := meta(c)
	if p.Code == flow.CodeCSRF {
		s.svc.Record(c.Request().Context(), m, "blocked", "", "csrf", map[string]string{"path": c.Path()})
	}
	if p.Status >= 500 {
		s.svc.Log().Error("request failed", "request_id", m.RequestID, "path", c.Path(), "code", p.Code, "error", errString(p.Err))
	} else if p.Err != nil && s.svc.Log().Enabled(c.Request().Context(), slog.LevelDebug) {
		// only when debug lines are kept: p.Err differs by name (a real
		// account's directory error, an unknown name's lookup error), and
		// this runs after the hold of a padded answer (flow.padder.wait)
		s.svc.Log().Debug("request refused", "request_id", m.RequestID, "path", c.Path(), "code", p.Code, "error", errString(p.Err))
	}
	switch p.Code {
	case flow.CodeUnavailable:
		// a dependency is down: tell clients (and proxies) when to try again
		c.Response().Header().Set("Retry-After", retryAfterUnavailable)
	case flow.CodeBusy:
		// the outbox is full: "try again in a minute"
		c.Response().Header().Set("Retry-After", retryAfterBusy)
	}
	if isAPI(c) {
		_ = c.JSON(p.Status, apiError(p, m.RequestID))
		return
	}
	_ = s.render(c, p.Status, "error", "Something went wrong", nil, p)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func isAPI(c echo.Context) bool {
	p := c.Request().URL.Path
	return strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/healthz/deps" || p == "/readyz" || p == "/metrics"
}

// pageData is what every page template receives.
type pageData struct {
	Title, Product, Helpdesk, CSRF, RequestID string
	// Organisation is the organisation's name (server.organisation, or
	// the admin console's), shown beside the product's; "" shows none.
	Organisation string
	// AdminNav is the admin console's menu (admin pages only)
	AdminNav []navItem
	// FooterID is the request id of a 4xx error page, shown small in the
	// footer (a 5xx shows RequestID as a Reference line instead).
	FooterID string
	// Demo shows the "not for production" banner and the outbox link.
	Demo          bool
	Notice, Error string
	Errors        []flow.Violation
	// UnlockLink: a password was refused (sign_in_failed, too_many) on a
	// page that asks for one: the error links to Unlock (a locked
	// account's right password is refused too)
	UnlockLink bool
	// Invalid are the ids of the fields the error is about, Focus the one
	// that takes focus ("" with an error: the summary) (fieldsInError)
	Invalid []string
	Focus   string
	// NoticeFocus: a notice after a redirect takes focus, so that it is
	// read out (a live region present at load is not announced)
	NoticeFocus bool
	// FlowLimit is how long a reset or unlock lives ("15 minutes"), said on
	// the flow's pages (WCAG 2.2.1)
	FlowLimit string
	Data      any
}

func (s *Server) render(c echo.Context, status int, page, title string, data any, p *flow.Problem) error {
	t, ok := s.pages[page]
	if !ok {
		return flow.NewProblem(flow.CodeInternal, errors.New("no page "+page))
	}
	helpdesk, org := s.svc.Customization()
	d := pageData{Title: title, Product: s.o.ProductName, Organisation: org, Helpdesk: helpdesk, CSRF: s.csrfToken(c),
		Notice: notices[c.QueryParam("notice")], Data: data, Demo: s.svc.Demo() != nil}
	if p != nil {
		d.Error, d.Errors = p.Message(), p.Violations
		d.UnlockLink = (p.Code == flow.CodeSignInFailed || p.Code == flow.CodeTooMany) && (page == "signin" || page == "change" || page == "methods")
		if p.Status >= 500 {
			// the reference is for the helpdesk: a failure of ours, not a
			// mistake the page explains
			d.RequestID = meta(c).RequestID
		} else {
			// every error still carries its request id, quietly, in the
			// footer: not a "Reference" line beside a mistake the page
			// explains, but there for whoever asks the helpdesk
			d.FooterID = meta(c).RequestID
		}
		if len(p.Violations) > 0 && p.Code == flow.CodePasswordRejected {
			d.Error = "The new password was not accepted:"
		}
		d.Invalid, d.Focus = fieldsInError(c, page, p)
	}
	d.NoticeFocus = d.Notice != "" && d.Error == ""
	d.AdminNav, _ = c.Get(ctxAdminNav).([]navItem)
	if inFlow(page, data) {
		d.FlowLimit = minutes(s.o.FlowTTL)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", d); err != nil {
		return flow.NewProblem(flow.CodeInternal, err)
	}
	return c.HTML(status, b.String())
}

// inFlow reports whether page is a step of a reset or an unlock, whose
// time limit (FlowTTL) the page states: the flow_ pages, and the passkey
// page when it asks for a passkey in a flow (not when one is added at
// registration, nor at the console's sign-in).
func inFlow(page string, data any) bool {
	if pk, ok := data.(passkeyPage); ok {
		return pk.Kind == "reset" || pk.Kind == "unlock"
	}
	return strings.HasPrefix(page, "flow_")
}

// notices are the fixed status messages a redirect may ask a page to show.
var notices = map[string]string{
	"code_sent":      "We sent a new code.",
	"verified":       "The method is verified. You can use it to reset your password.",
	"verified_more":  "The method is verified. Your account needs more different methods before you can reset your password yourself: add another below.",
	"removed":        "The method was removed.",
	"signed_in":      "You are signed in.",
	"method_ok":      "That method is verified.",
	"reauth_ok":      "Thank you. You can now add a method.",
	"passkey_added":  "The passkey is added. You can use it to reset your password.",
	"already_signed": "",
	"settings_saved": "The settings are saved. Every instance applies them within a few seconds.",
	"unblocked":      "Unblocked: its budgets start again from zero.",
	"reconfirmed":    "Thank you: your recovery methods are confirmed.",
	"app_removed":    "The authenticator app is removed. The account signs in at /register with its password to set up a new one.",
}

// ---------------------------------------------------------------- CSRF

// csrfToken returns the form token for this browser: an HMAC of a random
// per-browser cookie (set here when missing).
func (s *Server) csrfToken(c echo.Context) string {
	v, _ := c.Get(ctxCSRFCookie).(string)
	if v == "" {
		if ck, err := c.Cookie(s.cookieCSRF); err == nil && len(ck.Value) >= 32 {
			v = ck.Value
		} else {
			v = flow.NewToken()
			c.SetCookie(s.cookie(s.cookieCSRF, v, 0))
		}
		c.Set(ctxCSRFCookie, v)
	}
	return base64.RawURLEncoding.EncodeToString(s.svc.CSRFMAC(v))
}

// checkCSRF refuses a cross-site form post: Sec-Fetch-Site and Origin must
// say same origin when present, and the form token must match the cookie.
// A page under Referrer-Policy: no-referrer makes the browser send
// "Origin: null" on its own same-origin form posts (Fetch: "serializing a
// request origin"), so "null" passes when Sec-Fetch-Site says same-origin;
// the token is checked either way.
func (s *Server) checkCSRF(c echo.Context) error {
	r := c.Request()
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" && site != "none" {
		return flow.NewProblem(flow.CodeCSRF, errors.New("cross-site request"))
	}
	if o := r.Header.Get("Origin"); o != "" && o != s.origin && !(o == "null" && site == "same-origin") {
		return flow.NewProblem(flow.CodeCSRF, errors.New("foreign origin"))
	}
	ck, err := c.Cookie(s.cookieCSRF)
	if err != nil || len(ck.Value) < 32 {
		return flow.NewProblem(flow.CodeCSRF, errors.New("no csrf cookie"))
	}
	got, err := base64.RawURLEncoding.DecodeString(formValue(c, "_csrf"))
	if err != nil || !hmac.Equal(got, s.svc.CSRFMAC(ck.Value)) {
		return flow.NewProblem(flow.CodeCSRF, errors.New("bad csrf token"))
	}
	c.Set(ctxCSRFCookie, ck.Value)
	return nil
}

func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	// Secure whenever public_url is https; config allows http only for
	// loopback hosts (development), where browsers would drop Secure cookies.
	return &http.Cookie{ // #nosec G124 -- see above
		Name: name, Value: value, Path: "/", MaxAge: maxAge, Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// ---------------------------------------------------------------- health

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// Drain makes /readyz answer 503 from now on, with "shutdown": "draining",
// while every other route is served as before: a load balancer stops
// sending new requests before the listener closes (server.shutdown_delay).
func (s *Server) Drain() { s.draining.Store(true) }

// CloseConnections makes every answer from now on close its connection
// ("Connection: close"). The last step of a drain, once the listener has
// closed: a kept connection is closed by the server only right after an
// answer that said so, never while the client may be sending a request on
// it (a POST nginx would answer with its own 502, not retried); the
// connections a client leaves idle it closes itself after its keep-alive
// timeout.
func (s *Server) CloseConnections() { s.closing.Store(true) }

// OpenConnections is how many client connections of HTTPServer's server
// are open.
func (s *Server) OpenConnections() int64 { return s.conns.Load() }

// deps pings the directory and the store within limit and names the state
// of each: "ok" or "unavailable".
func (s *Server) deps(c echo.Context, limit time.Duration) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), limit)
	defer cancel()
	status := map[string]string{"directory": "ok", "store": "ok"}
	dirErr, storeErr := s.svc.Ready(ctx)
	if dirErr != nil {
		status["directory"] = "unavailable"
	}
	if storeErr != nil {
		status["store"] = "unavailable"
	}
	return status, dirErr == nil && storeErr == nil
}

// readyz is readiness: "this instance can serve". It is 503 only while the
// instance drains. A directory or store outage is shared by every instance:
// taking them all out of a load balancer would only replace Latchkey's own
// 503 "unavailable" (with Retry-After) by the load balancer's page, so the
// body reports the dependencies and the status does not follow them
// (/healthz/deps does, for monitoring).
//
// While draining it answers within a second (a hanging dependency shows as
// "unavailable"), so that a probe notices the drain within its period ×
// failure threshold (config.DrainMargin).
func (s *Server) readyz(c echo.Context) error {
	if s.draining.Load() {
		status, _ := s.deps(c, time.Second)
		status["shutdown"] = "draining"
		return c.JSON(http.StatusServiceUnavailable, status)
	}
	status, _ := s.deps(c, 5*time.Second)
	// the outbox: "degraded" (still ready: the instance serves, and new
	// codes answer busy if need be) while the oldest pending code has
	// waited longer than outbox.degraded_after
	status["outbox"] = "ok"
	if s.svc.QueueDegraded() {
		status["outbox"] = "degraded"
	}
	return c.JSON(http.StatusOK, status)
}

// healthzDeps is the dependencies' health, for monitoring and alerts: 503
// while the directory or the store does not answer. Not a readiness probe.
func (s *Server) healthzDeps(c echo.Context) error {
	status, ok := s.deps(c, 5*time.Second)
	if !ok {
		return c.JSON(http.StatusServiceUnavailable, status)
	}
	return c.JSON(http.StatusOK, status)
}
