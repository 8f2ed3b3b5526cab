package flow

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/config"
)

// padder hides the time a step takes for an account that is not real
// (unknown, ineligible, throttled, no methods): every answer of the step is
// held until a target duration, the 95th percentile of the recent durations
// of the real path (the slowest one), so that the time of one answer says
// nothing about the username. Only the real path's durations are sampled.
//
// With a fixed floor (policy.pad_floor), every answer is held until at
// least the floor after the request began, and longer only when the real
// path's p95 is above it (the floor never lets the slow path show). Below
// the floor the recent load does not matter: the answer time is the same
// whatever the ring remembers.
//
// Samples older than padMaxAge are forgotten (the newest padMinSamples are
// always kept): after a burst the target follows the load of now, not the
// burst's, within padMaxAge, whatever the request rate since.
type padder struct {
	mu      sync.Mutex
	ring    [256]padSample
	n       int
	initial time.Duration // target until enough real samples exist
	floor   time.Duration // fixed minimum target (0: the p95 alone)
	ceiling time.Duration // never wait longer than this
}

type padSample struct {
	d  time.Duration
	at time.Time
}

const (
	padMinSamples = 16
	// padMaxAge is how long a real answer's duration counts.
	padMaxAge = 30 * time.Second
	// padInitial is the target before padMinSamples real answers exist.
	padInitial = 10 * time.Millisecond
	// PadCeiling bounds any hold: the bound of policy.pad_floor.
	PadCeiling = config.MaxPadFloor
)

// newPadder holds answers at least floor, 0 to PadCeiling (Options.check
// refuses any other).
func newPadder(floor time.Duration) *padder {
	return &padder{initial: max(padInitial, floor), floor: floor, ceiling: PadCeiling}
}

func (p *padder) observe(d time.Duration) { p.observeAt(d, time.Now()) }

func (p *padder) observeAt(d time.Duration, at time.Time) {
	p.mu.Lock()
	p.ring[p.n%len(p.ring)] = padSample{d, at}
	p.n++
	p.mu.Unlock()
}

func (p *padder) target() time.Duration { return p.targetAt(time.Now()) }

// targetAt is the p95 of the samples younger than padMaxAge at now, or of
// the newest padMinSamples when fewer are that young.
func (p *padder) targetAt(now time.Time) time.Duration {
	p.mu.Lock()
	n := min(p.n, len(p.ring))
	if n < padMinSamples {
		p.mu.Unlock()
		return p.initial
	}
	s := make([]time.Duration, 0, n)
	// newest first: i steps back from the last sample written
	for i := 0; i < n; i++ {
		smp := p.ring[(p.n-1-i)%len(p.ring)]
		if i >= padMinSamples && now.Sub(smp.at) > padMaxAge {
			break
		}
		s = append(s, smp.d)
	}
	p.mu.Unlock()
	slices.Sort(s)
	return max(p.floor, min(s[len(s)*95/100], p.ceiling))
}

// wait records the duration of a real answer and holds every answer until
// the target. The hold is a runtime timer (the goroutine parks: no CPU, no
// OS thread, no store transaction or directory connection is held: callers
// wait after their work, in a defer) and, for the last preciseWindow, a
// nanosleep on an OS thread that the runtime hands its P away from.
//
// The hold is the last work of a padded answer: the caller makes its
// answer (the error, the view) before it and returns right after, so that
// nothing that differs between names runs after the hold
// (TestHoldIsTheLastWork).
func (p *padder) wait(ctx context.Context, start time.Time, real bool) {
	took := time.Since(start)
	if real {
		p.observe(took)
	}
	sleepUntil(ctx, start.Add(p.target()))
}

// preciseWindow is how much of a wait is left to a precise sleep. Go's
// timers wake up on a millisecond grid when the process is idle (a 0.3 ms
// sleep takes 1.1 ms, a 1.2 ms one 2.1 ms), so two answers held until the
// same deadline would leave at times that depend on how much work each had
// done: the very difference the padding hides. The last stretch is slept
// with nanosleep(2), which overshoots by a steady ~80 µs whatever the
// length, on an OS thread of its own; preciseSlots bounds how many threads
// that can hold at once (beyond it, timers, and coarser timing, are used).
const preciseWindow = 2 * time.Millisecond

var preciseSlots = make(chan struct{}, 64)

// sleepUntil returns at deadline (or when ctx ends).
func sleepUntil(ctx context.Context, deadline time.Time) {
	rest := time.Until(deadline)
	if rest <= 0 {
		return
	}
	if rest > preciseWindow {
		t := time.NewTimer(rest - preciseWindow)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	select {
	case preciseSlots <- struct{}{}:
		preciseSleep(time.Until(deadline))
		<-preciseSlots
	default:
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}
