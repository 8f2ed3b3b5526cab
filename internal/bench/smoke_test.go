package bench

import (
	"path/filepath"
	"testing"
)

// TestSmoke runs the bench in its smoke mode: a few users, a few requests
// per scenario, and every correctness check (passwords changed and
// verified by binds, every code and notice received). It never checks a
// timing. Without slapd or mailpit it skips, or fails when CI is set.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts slapd, mailpit and the gateway")
	}
	rep, err := Run(t, Options{Smoke: true, Log: testLog{t}})
	if rep != nil {
		rep.WriteTable(testLog{t})
		if err := rep.WriteJSON(filepath.Join(t.TempDir(), "bench.json")); err != nil {
			t.Error(err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checks.PasswordsVerified == 0 || rep.Checks.ResetsCompleted == 0 || rep.Checks.CodesReceived == 0 {
		t.Fatalf("checks: %+v", rep.Checks)
	}
	if rep.Scaling == nil || rep.Scaling.Flows == 0 {
		t.Fatalf("no scaling case: %+v", rep.Scaling)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }
