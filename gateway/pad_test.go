package gateway

import (
	"context"
	"testing"
	"time"
)

func TestPadderTarget(t *testing.T) {
	fill := func(p *padder, d time.Duration, n int) {
		for range n {
			p.observe(d)
		}
	}
	// no floor: the p95 of the real path, padInitial until it is known
	p := newPadder(0)
	if got := p.target(); got != padInitial {
		t.Fatalf("target before samples = %v, want %v", got, padInitial)
	}
	fill(p, 3*time.Millisecond, 256)
	if got := p.target(); got != 3*time.Millisecond {
		t.Fatalf("target = %v, want the p95 3ms", got)
	}

	// a floor above the real path: the floor, whatever the ring remembers
	p = newPadder(25 * time.Millisecond)
	if got := p.target(); got != 25*time.Millisecond {
		t.Fatalf("target before samples = %v, want the floor", got)
	}
	fill(p, 3*time.Millisecond, 256)
	if got := p.target(); got != 25*time.Millisecond {
		t.Fatalf("target = %v, want the floor 25ms", got)
	}
	// the real path slower than the floor: the p95, never the floor alone
	fill(p, 40*time.Millisecond, 256)
	if got := p.target(); got != 40*time.Millisecond {
		t.Fatalf("target = %v, want the p95 40ms above the floor", got)
	}
	// bounded by the ceiling
	fill(p, 2*time.Second, 256)
	if got := p.target(); got != PadCeiling {
		t.Fatalf("target = %v, want the ceiling", got)
	}
	// a floor below padInitial applies once the p95 is known
	p = newPadder(2 * time.Millisecond)
	fill(p, time.Millisecond, 64)
	if got := p.target(); got != 2*time.Millisecond {
		t.Fatalf("target = %v, want the floor 2ms", got)
	}
}

func TestPadderWaitHoldsUntilFloor(t *testing.T) {
	p := newPadder(30 * time.Millisecond)
	for range padMinSamples {
		p.observe(time.Millisecond)
	}
	for _, real := range []bool{false, true} {
		start := time.Now()
		p.wait(context.Background(), start, real)
		if took := time.Since(start); took < 30*time.Millisecond || took > 200*time.Millisecond {
			t.Fatalf("real=%v: answer held %v, want the 30ms floor", real, took)
		}
	}
}
