package e2e

import (
	"testing"
	"time"
)

// TestPrioSemAdmitsByPriority: with the gate full, waiters are let in by
// priority, then in the order they came, and a waiter that fits when it
// arrives at the head goes in at once.
func TestPrioSemAdmitsByPriority(t *testing.T) {
	s := &prioSem{size: 2}
	s.acquire(2, 0)
	order := make(chan string, 3)
	queued := func() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.waiters) }
	wait := func(name string, prio int) {
		n := queued()
		go func() {
			s.acquire(1, prio)
			order <- name
		}()
		// each waiter queued before the next one comes
		for deadline := time.Now().Add(10 * time.Second); queued() == n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never queued", name)
			}
		}
	}
	wait("low", 0)
	wait("long-first", 5)
	wait("long-second", 5)
	s.release(2)
	// admitted in that order (closed in turn under the lock); the
	// goroutines may report in either order
	got := map[string]bool{<-order: true, <-order: true}
	if !got["long-first"] || !got["long-second"] {
		t.Fatalf("admitted %v first, want the two of priority 5", got)
	}
	s.mu.Lock()
	if len(s.waiters) != 1 || s.waiters[0].prio != 0 {
		t.Fatalf("still waiting: %d waiters, want low alone", len(s.waiters))
	}
	s.mu.Unlock()
	select {
	case n := <-order:
		t.Fatalf("%s admitted past the gate's size", n)
	case <-time.After(50 * time.Millisecond):
	}
	s.release(1)
	if n := <-order; n != "low" {
		t.Fatalf("then %s, want low", n)
	}
	s.release(1)
	s.release(1)
	// an empty gate admits at once
	done := make(chan struct{})
	go func() { s.acquire(2, 0); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("an empty gate did not admit a whole-gate waiter")
	}
}
