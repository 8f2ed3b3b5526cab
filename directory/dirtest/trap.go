package dirtest

import (
	"net"
	"sync/atomic"
	"testing"
)

// Trap is a listener that counts the connections made to it and closes
// each at once: the server a referral names, which a client must never
// contact (credentials could be replayed there).
type Trap struct {
	// URL is ldap://127.0.0.1:port/, for WithReferral.
	URL    string
	dialed atomic.Int32
}

// StartTrap starts a Trap on loopback until the test ends.
func StartTrap(t testing.TB) *Trap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tr := &Trap{URL: "ldap://" + ln.Addr().String() + "/"}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.dialed.Add(1)
			c.Close()
		}
	}()
	return tr
}

// Dialed is how many connections the trap has received.
func (tr *Trap) Dialed() int { return int(tr.dialed.Load()) }
