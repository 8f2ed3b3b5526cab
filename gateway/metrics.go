package gateway

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
)

// metrics are Prometheus counters in the text exposition format. Labels are
// route patterns, status codes and event names: never a username, address,
// code or token.
//
// Every label comes from a fixed set, so that no request can add a series:
// the method is one of knownMethods (others are refused before they get
// here, and would count as "other"), the route one the server registered
// (anything else is "unmatched"), the status a number of three digits.
type metrics struct {
	mu       sync.Mutex
	requests map[[3]string]uint64 // method, route, status
	// svc counts the audit events (flow.Service.EventCounts)
	svc     *flow.Service
	seconds map[string]float64 // route -> total seconds
	started time.Time
	// routes are the registered route patterns (setRoutes); nil until set
	routes map[string]bool
}

func newMetrics(svc *flow.Service) *metrics {
	return &metrics{requests: map[[3]string]uint64{}, svc: svc, seconds: map[string]float64{}, started: time.Now()}
}

// knownMethods are the HTTP methods the gateway serves or answers 405 to
// after routing. Every other method is refused by the base middleware
// before anything else runs.
var knownMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}

func knownMethod(m string) bool {
	for _, k := range knownMethods {
		if m == k {
			return true
		}
	}
	return false
}

// setRoutes fixes the route label set to the patterns the server registered.
func (m *metrics) setRoutes(patterns []string) {
	rs := map[string]bool{}
	for _, p := range patterns {
		rs[p] = true
	}
	m.mu.Lock()
	m.routes = rs
	m.mu.Unlock()
}

// labels maps a request to its label values, each from a fixed set.
func (m *metrics) labels(method, route string, status int) (string, string, string) {
	if !knownMethod(method) {
		method = "other"
	}
	if route == "" || !m.routes[route] {
		route = "unmatched"
	}
	if status < 100 || status > 999 {
		status = 0
	}
	return method, route, strconv.Itoa(status)
}

func (m *metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		status := c.Response().Status
		if err != nil {
			status = asProblemStatus(err)
		}
		m.mu.Lock()
		method, route, st := m.labels(c.Request().Method, c.Path(), status)
		m.requests[[3]string{method, route, st}]++
		m.seconds[route] += time.Since(start).Seconds()
		m.mu.Unlock()
		return err
	}
}

func asProblemStatus(err error) int {
	if he, ok := err.(*echo.HTTPError); ok {
		return he.Code
	}
	return flow.AsProblem(err).Status
}

func (m *metrics) handler(c echo.Context) error {
	var b strings.Builder
	m.mu.Lock()
	b.WriteString("# HELP latchkey_http_requests_total HTTP requests by method, route and status.\n# TYPE latchkey_http_requests_total counter\n")
	keys := make([][3]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return strings.Join(keys[i][:], " ") < strings.Join(keys[j][:], " ") })
	for _, k := range keys {
		fmt.Fprintf(&b, "latchkey_http_requests_total{method=%q,route=%q,status=%q} %d\n", k[0], k[1], k[2], m.requests[k])
	}
	b.WriteString("# HELP latchkey_http_request_seconds_total Time spent serving requests, by route.\n# TYPE latchkey_http_request_seconds_total counter\n")
	routes := make([]string, 0, len(m.seconds))
	for r := range m.seconds {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	for _, r := range routes {
		fmt.Fprintf(&b, "latchkey_http_request_seconds_total{route=%q} %g\n", r, m.seconds[r])
	}
	b.WriteString("# HELP latchkey_events_total Audit events by type and outcome.\n# TYPE latchkey_events_total counter\n")
	for _, e := range m.svc.EventCounts() {
		fmt.Fprintf(&b, "latchkey_events_total{event=%q,outcome=%q} %d\n", e.Type, e.Outcome, e.N)
	}
	m.outboxMetrics(&b)
	fmt.Fprintf(&b, "# HELP latchkey_uptime_seconds Seconds since start.\n# TYPE latchkey_uptime_seconds gauge\nlatchkey_uptime_seconds %g\n", time.Since(m.started).Seconds())
	m.mu.Unlock()
	return c.Blob(http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", []byte(b.String()))
}

// outboxMetrics: the queue of every instance (as this one last read it)
// and what this instance's senders did, by channel.
func (m *metrics) outboxMetrics(b *strings.Builder) {
	q := m.svc.Queue()
	b.WriteString("# HELP latchkey_outbox_pending Messages waiting to be sent, all instances, by kind.\n# TYPE latchkey_outbox_pending gauge\n")
	fmt.Fprintf(b, "latchkey_outbox_pending{kind=\"code\"} %d\nlatchkey_outbox_pending{kind=\"notice\"} %d\n", q.PendingCodes, q.PendingNotices)
	b.WriteString("# HELP latchkey_outbox_oldest_code_seconds How long the oldest pending code has been due.\n# TYPE latchkey_outbox_oldest_code_seconds gauge\n")
	fmt.Fprintf(b, "latchkey_outbox_oldest_code_seconds %g\n", q.OldestCode.Seconds())
	b.WriteString("# HELP latchkey_outbox_send_rate Messages sent per second over the last minute, all instances.\n# TYPE latchkey_outbox_send_rate gauge\n")
	fmt.Fprintf(b, "latchkey_outbox_send_rate %g\n", q.SendRate)
	busy := 0
	if q.Busy {
		busy = 1
	}
	b.WriteString("# HELP latchkey_outbox_busy 1 while new codes are refused (outbox.max_wait, outbox.max_pending).\n# TYPE latchkey_outbox_busy gauge\n")
	fmt.Fprintf(b, "latchkey_outbox_busy %d\n", busy)
	b.WriteString("# HELP latchkey_outbox_messages_total Messages this instance sent, tries that failed, and messages expired before they could be sent, by channel.\n# TYPE latchkey_outbox_messages_total counter\n")
	counts := m.svc.OutboxCounts()
	for _, ch := range []string{"email", "sms"} {
		for _, outcome := range []string{"sent", "failed", "expired"} {
			fmt.Fprintf(b, "latchkey_outbox_messages_total{channel=%q,outcome=%q} %d\n", ch, outcome, counts[ch+"/"+outcome])
		}
	}
}
