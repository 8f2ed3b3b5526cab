package flow

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// Audit events that anyone can cause in any number without a proof
// (sampledEvent: refusals over a budget, CSRF refusals, failed sign-ins
// and changes) are stored one by one only up to a bound per window of
// Limits.Window; the rest are counted, and the window's count is stored as
// one summary row per kind and client address once the window has ended.
// Every event still gets its audit line (and the log keeps everything).
// The bounds hold per gateway instance.
const (
	// auditSampleRows: rows stored per event kind and client address per
	// window.
	auditSampleRows = 10
	// auditSampleTotal: rows of sampled kinds stored per window, all
	// client addresses together.
	auditSampleTotal = 1000
	// auditSampleKeys: kinds and client addresses told apart per window;
	// past it, further addresses share one key per kind (client "*").
	auditSampleKeys = 1024
)

// sampledEvent reports whether events of this type and outcome are
// sampled: those a request without a proof can cause without bound.
func sampledEvent(typ, outcome string) bool {
	switch {
	case typ == "blocked":
		return true
	case outcome == "failed" && (typ == "sign_in" || typ == "change.completed"):
		return true
	}
	return false
}

type sampleKey struct{ typ, outcome, ip string }

// auditSampler decides which sampled events are stored; its memory is
// bounded by auditSampleKeys whatever the traffic.
type auditSampler struct {
	mu     sync.Mutex
	window time.Duration
	start  time.Time         // the current window's start
	seen   map[sampleKey]int // events per key in the window
	held   map[sampleKey]int // of those, not stored
	stored int               // rows stored in the window
}

func newAuditSampler(window time.Duration) *auditSampler {
	return &auditSampler{window: window, seen: map[sampleKey]int{}, held: map[sampleKey]int{}}
}

// admit reports whether ev is stored as a row of its own, and returns the
// summaries of a window that has ended (to be stored).
func (a *auditSampler) admit(ev store.AuditEvent) (bool, []store.AuditEvent) {
	if !sampledEvent(ev.Type, ev.Outcome) {
		return true, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var ended []store.AuditEvent
	if ws := ev.Time.Truncate(a.window); !ws.Equal(a.start) {
		ended = a.rollLocked(ws)
	}
	k := sampleKey{ev.Type, ev.Outcome, ev.ClientIP}
	if _, ok := a.seen[k]; !ok && len(a.seen) >= auditSampleKeys {
		k.ip = "*"
	}
	a.seen[k]++
	if a.seen[k] <= auditSampleRows && a.stored < auditSampleTotal {
		a.stored++
		return true, ended
	}
	a.held[k]++
	return false, ended
}

// due returns the summaries of the current window if it has ended by now.
func (a *auditSampler) due(now time.Time) []store.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ws := now.Truncate(a.window); ws.After(a.start) {
		return a.rollLocked(ws)
	}
	return nil
}

// flush returns the summaries of the current window so far (at shutdown).
func (a *auditSampler) flush(now time.Time) []store.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.summariesLocked(now)
	clear(a.held)
	return out
}

// rollLocked ends the current window and starts the one at ws.
func (a *auditSampler) rollLocked(ws time.Time) []store.AuditEvent {
	out := a.summariesLocked(a.start.Add(a.window))
	a.start, a.stored = ws, 0
	clear(a.seen)
	clear(a.held)
	return out
}

// summariesLocked is one event per key with events not stored: its type,
// outcome and client address, the number not stored and since when.
func (a *auditSampler) summariesLocked(at time.Time) []store.AuditEvent {
	var out []store.AuditEvent
	for k, n := range a.held {
		out = append(out, store.AuditEvent{Time: at, Type: k.typ, ClientIP: k.ip, Outcome: k.outcome,
			Details: map[string]string{"summary": "not_stored", "count": strconv.Itoa(n), "since": a.start.UTC().Format(time.RFC3339)}})
	}
	return out
}

// storeSummaries stores the summary events (logging each as an audit line).
func (s *Service) storeSummaries(ctx context.Context, evs []store.AuditEvent) {
	for _, ev := range evs {
		s.logAudit(ev)
		if err := s.d.Store.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
			s.log.Error("audit summary not stored", "event", ev.Type, "error", err.Error())
		}
	}
}

// FlushAudit stores the summaries of audit events that were not stored one
// by one in a window that has ended. A window's summaries are also stored
// by the first sampled event after it and by Close; call this periodically
// (latchkey serve does every minute) so that they do not wait for either.
func (s *Service) FlushAudit(ctx context.Context) {
	s.storeSummaries(ctx, s.sampler.due(s.now()))
}
