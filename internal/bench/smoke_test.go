package bench

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSmoke runs the bench in its smoke mode: a few users, a few requests
// per scenario, and every correctness check (passwords changed and
// verified by binds, every code and notice received). It never checks a
// timing. Without slapd or mailpit it skips, or fails when CI is set.
func TestSmoke(t *testing.T) {
	smoke(t, Options{})
}

// TestSmokePostgres is the smoke run on a throwaway PostgreSQL with two
// gateways sharing it, each request sent to the next one. Without
// PostgreSQL it skips, or fails when CI is set.
func TestSmokePostgres(t *testing.T) {
	rep := smoke(t, Options{Store: "postgres", Instances: 2})
	if rep.PostgresVersion == "" || len(rep.InstancesRSSKiB) != 2 {
		t.Fatalf("version %q, instances' RSS %v", rep.PostgresVersion, rep.InstancesRSSKiB)
	}
	for _, row := range rep.Rows {
		// measured (a smoke row's few operations may well round to 0)
		if gw := !strings.HasPrefix(row.Scenario, "raw "); gw != (row.StoreCPUms >= 0) {
			t.Errorf("%s c=%d: PostgreSQL CPU %v ms/op", row.Scenario, row.Concurrency, row.StoreCPUms)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, o := range []Options{{Instances: 2}, {Store: "mysql"}} {
		o.Defaults()
		if err := o.check(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func smoke(t *testing.T, o Options) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("starts slapd, mailpit and the gateway")
	}
	o.Smoke, o.Log = true, testLog{t}
	rep, err := Run(t, o)
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
	return rep
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }

// TestSmokeBusy is the reset scenario's smoke run with a tiny outbox
// (outbox.max_pending 2) at c=8: some code sends are answered 503 busy,
// and the correctness check still holds: every code asked for (202)
// arrived, none was lost.
func TestSmokeBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts slapd, mailpit and the gateway")
	}
	rep, err := Run(t, Options{Smoke: true, Log: testLog{t}, Only: []string{"reset"}, Concurrency: []int{8}, MaxOps: 60,
		Outstanding: -1, EnumSamples: -1, OutboxMaxPending: 2})
	if rep != nil {
		rep.WriteTable(testLog{t})
	}
	if err != nil {
		t.Fatal(err)
	}
	ch := rep.Checks
	t.Logf("codes asked %d, received %d, answered busy %d, %.1f code mails/s", ch.CodesRequested, ch.CodesReceived, ch.CodesBusy, ch.CodeMailsPerSecond)
	if ch.CodesBusy == 0 || ch.CodesRequested == 0 || ch.CodesReceived != ch.CodesRequested {
		t.Fatalf("checks: %+v: want some busy answers and every code asked for received", ch)
	}
}
