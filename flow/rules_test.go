package flow

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/policy"
)

// lengthLines are the rules of rs that speak of a minimum length.
func lengthLines(rs []Violation) []string {
	var out []string
	for _, r := range rs {
		if strings.Contains(r.Message, "at least") || strings.Contains(r.Message, "At least") {
			out = append(out, r.Message)
		}
	}
	return out
}

// One set of rules: the stricter minimum of the gateway's and the
// directory's in one line, the same list before the user is known (the
// directory's default policy) and after, and the number in every length
// refusal, the gateway's and the directory's.
func TestPasswordRulesAreOneMergedList(t *testing.T) {
	tb := newTestbed(t, func(o *Options) { o.Password.MinLength = 8 })
	tb.dir.SetPolicy(dirtest.MemoryPolicy{MinLength: 10, HistoryLength: 3})
	tb.dir.SetUserPolicy("carol", dirtest.MemoryPolicy{Source: "ppolicy:cn=strict,ou=policies,dc=example,dc=org", MinLength: 14, HistoryLength: 5})
	ctx := context.Background()

	g := tb.svc.GeneralPasswordRules(ctx)
	if l := lengthLines(g.Effective); len(l) != 1 || !strings.HasPrefix(l[0], "At least 10 characters") || g.MinLength != 10 {
		t.Fatalf("general rules: length lines %q, min %d, all %+v", l, g.MinLength, g.Effective)
	}
	if !slices.ContainsFunc(g.Effective, func(v Violation) bool { return v.Message == "It must differ from your last 3 passwords." }) {
		t.Fatalf("general rules lack the directory's history: %+v", g.Effective)
	}
	if g.Effective[0].Code != policy.ReqMinLength {
		t.Fatalf("the length line comes first: %+v", g.Effective)
	}

	_, mid := tb.enroll(t, "carol", "c@home.example")
	f, _ := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
	tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, Meta{})
	v, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "c@home.example"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := tb.svc.FlowPasswordRules(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if l := lengthLines(r.Effective); len(l) != 1 || !strings.HasPrefix(l[0], "At least 14 characters") || r.MinLength != 14 {
		t.Fatalf("carol's rules: length lines %q, min %d, all %+v", l, r.MinLength, r.Effective)
	}
	// the two sources stay as they were (API)
	if len(r.Local) == 0 || !strings.HasPrefix(r.Local[0].Message, "At least 8 characters") || len(r.Directory) == 0 {
		t.Fatalf("sources: %+v", r)
	}

	// the gateway's refusal names the effective minimum
	err = tb.svc.CompleteFlow(ctx, "reset", v.ID, "Kurz-1!", Meta{})
	wantCode(t, err, CodePasswordRejected)
	if vs := asProblem(err).Violations; len(vs) == 0 || vs[0].Code != policy.CodeTooShort || vs[0].Message != "Use at least 14 characters." {
		t.Fatalf("gateway too short: %+v", vs)
	}
	// the directory's refusal too
	err = tb.svc.CompleteFlow(ctx, "reset", v.ID, "Short-Pw-12", Meta{})
	wantCode(t, err, CodePasswordRejected)
	if vs := asProblem(err).Violations; len(vs) != 1 || vs[0].Code != "directory_too_short" || vs[0].Message != "The directory requires at least 14 characters." {
		t.Fatalf("directory too short: %+v", vs)
	}
	// and a change, once the old password is proven
	err = tb.svc.Change(ctx, "carol", tb.dir.Password("carol"), "Short-Pw-12", Meta{})
	if vs := asProblem(err).Violations; len(vs) != 1 || vs[0].Message != "The directory requires at least 14 characters." {
		t.Fatalf("change, directory too short: %v %+v", err, vs)
	}
	err = tb.svc.Change(ctx, "carol", tb.dir.Password("carol"), "Kurz-1!", Meta{})
	if vs := asProblem(err).Violations; len(vs) == 0 || vs[0].Message != "Use at least 14 characters." {
		t.Fatalf("change, gateway too short: %v %+v", err, vs)
	}
}

// A gateway stricter than the directory: its number, in one line.
func TestPasswordRulesGatewayStricter(t *testing.T) {
	tb := newTestbed(t, func(o *Options) { o.Password.MinLength = 12 })
	tb.dir.SetPolicy(dirtest.MemoryPolicy{MinLength: 10})
	g := tb.svc.GeneralPasswordRules(context.Background())
	if l := lengthLines(g.Effective); len(l) != 1 || !strings.HasPrefix(l[0], "At least 12 characters") || g.MinLength != 12 {
		t.Fatalf("length lines %q, min %d", l, g.MinLength)
	}
}
