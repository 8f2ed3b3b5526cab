package testport

import "testing"

// TestFreeNeverRepeats: a thousand ports, all different (the kernel alone
// may give the same one twice in a row once it is closed).
func TestFreeNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for range 1000 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

// TestFreeIsBelowTheEphemeralRange: the ports handed out are not in the
// range the kernel gives outgoing connections, so no connection can take
// one as its source port before the server listens on it.
func TestFreeIsBelowTheEphemeralRange(t *testing.T) {
	first, ok := ephemeralFirst()
	if !ok || first-lowest < 1000 {
		t.Skipf("no ephemeral range readable with room below it (%d, %v)", first, ok)
	}
	for range 200 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= first {
			t.Fatalf("port %d is not in [%d, %d)", p, lowest, first)
		}
	}
}
