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
