package flowtest

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// What the testbeds of flow's and gateway's tests build their service
// from: the values of its options (flowtest cannot name flow.Options),
// its directory, clock and log.

// SecretKey is the service's secret key.
var SecretKey = []byte("0123456789abcdef0123456789abcdef-test")

// Helpdesk is the service's helpdesk link.
const Helpdesk = "mailto:help@example.org"

// StartsPerIP is the per-address budget of starts: many tests start
// hundreds of flows from one (empty) address; tests of that budget set
// their own.
const StartsPerIP = 100000

// PublicURL is the service's public URL.
func PublicURL() *url.URL {
	u, _ := url.Parse("https://sspr.example.org")
	return u
}

// Eligibility: staff eligible (privileged accounts not), email and SMS,
// one method, two for the admins' tier.
func Eligibility() policy.Eligibility {
	return policy.Eligibility{Scope: policy.ScopeSelected, Groups: []string{"cn=staff"}, ExcludePrivileged: true,
		MethodsRequired: 1, Methods: []string{"email", "sms"},
		Tiers: []policy.Tier{{Groups: []string{"cn=admins"}, MethodsRequired: 2}}}
}

// PasswordRules are the service's password rules.
func PasswordRules() policy.Rules { return policy.Rules{MinLength: 8} }

// Countries are the countries numbers may be registered in.
func Countries() []string { return []string{"GB"} }

// NewDirectory is the in-memory directory with the seeded staff; its
// writes take 5 ms, which widens race windows.
func NewDirectory() *dirtest.Memory {
	return dirtest.NewStaffMemory(dirtest.WithWriteDelay(5 * time.Millisecond))
}

// StepClock is a clock 10 s into a 30 s authenticator-app step.
func StepClock() *Clock {
	return NewClock(time.Now().UTC().Truncate(30 * time.Second).Add(10 * time.Second))
}

// DebugLog is a logger that keeps every line (debug and up, JSON) in
// the returned buffer.
func DebugLog() (*SyncBuffer, *slog.Logger) {
	logs := &SyncBuffer{}
	return logs, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// AuditOutcomes are the outcomes of the stored audit events of type typ.
func AuditOutcomes(t testing.TB, st store.Store, typ string) []string {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditQuery{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Outcome)
	}
	return out
}

// Main runs the tests and stops the throwaway PostgreSQL of OnBothStores,
// if started: the TestMain of flow's and gateway's tests.
func Main(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
