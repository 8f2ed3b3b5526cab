package gateway

import (
	"context"
	"slices"
	"sync"
	"time"
)

// padder hides the time a step takes for an account that is not real
// (unknown, ineligible, throttled, no methods): every answer of the step is
// held until a target duration, the 95th percentile of the recent durations
// of the real path (the slowest one), so that the time of one answer says
// nothing about the username. Only the real path's durations are sampled.
type padder struct {
	mu      sync.Mutex
	ring    [256]time.Duration
	n       int
	floor   time.Duration // target until enough real samples exist
	ceiling time.Duration // never wait longer than this
}

const padMinSamples = 16

func newPadder() *padder {
	return &padder{floor: 10 * time.Millisecond, ceiling: 500 * time.Millisecond}
}

func (p *padder) observe(d time.Duration) {
	p.mu.Lock()
	p.ring[p.n%len(p.ring)] = d
	p.n++
	p.mu.Unlock()
}

func (p *padder) target() time.Duration {
	p.mu.Lock()
	n := min(p.n, len(p.ring))
	if n < padMinSamples {
		p.mu.Unlock()
		return p.floor
	}
	s := append([]time.Duration(nil), p.ring[:n]...)
	p.mu.Unlock()
	slices.Sort(s)
	return min(s[n*95/100], p.ceiling)
}

// wait records the duration of a real answer and holds every answer until
// the target.
func (p *padder) wait(ctx context.Context, start time.Time, real bool) {
	took := time.Since(start)
	if real {
		p.observe(took)
	}
	rest := p.target() - took
	if rest <= 0 {
		return
	}
	t := time.NewTimer(rest)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
