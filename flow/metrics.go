package flow

import (
	"sort"
	"strings"
	"sync"
)

// eventCounts counts the audit events the metrics show (EventCounts).
type eventCounts struct {
	mu sync.Mutex
	n  map[[2]string]uint64 // audit event type, outcome
}

func newEventCounts() *eventCounts { return &eventCounts{n: map[[2]string]uint64{}} }

// event counts only successes that needed a proof (completed resets,
// unlocks, changes, verified methods). The outcomes of unauthenticated
// steps (started, gate, blocked, sign-in) would let anyone who can read
// /metrics tell an eligible name from an unknown one, request by request.
func (m *eventCounts) event(typ, outcome string) {
	if outcome != "success" || (!strings.HasSuffix(typ, ".completed") && typ != "registration.method_verified") {
		return
	}
	m.mu.Lock()
	m.n[[2]string{typ, outcome}]++
	m.mu.Unlock()
}

// EventCount is the number of audit events of one type and outcome.
type EventCount struct {
	Type, Outcome string
	N             uint64
}

// EventCounts are the counted audit events (successes that needed a
// proof), by type and outcome in order.
func (s *Service) EventCounts() []EventCount {
	m := s.stats
	m.mu.Lock()
	out := make([]EventCount, 0, len(m.n))
	for k, n := range m.n {
		out = append(out, EventCount{Type: k[0], Outcome: k[1], N: n})
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Type+out[i].Outcome < out[j].Type+out[j].Outcome })
	return out
}
