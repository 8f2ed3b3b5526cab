package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/flow"
)

// TestCoolingOffUpFront: a flow whose proofs can only be too new says so
// at the proof (method_too_new and when the proofs become usable), not
// after the new password is typed; the refused proof is not recorded, so
// an older method still finishes the flow; a method old enough left to
// prove lets a new one count; before a proof the answers do not change.
func TestCoolingOffUpFront(t *testing.T) {
	ctx := context.Background()
	const cool = time.Hour
	prove := func(tb *testbed, f flow.FlowView, id, to string) (flow.FlowView, error) {
		t.Helper()
		if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, id, flow.Meta{}); err != nil {
			t.Fatal(err)
		}
		return tb.svc.VerifyFlowCode(ctx, "reset", f.ID, id, tb.inbox.LastCode(t, to), flow.Meta{})
	}

	t.Run("only a new method", func(t *testing.T) {
		tb, clk, _ := totpBed(t, func(o *flow.Options) { o.CoolingOff = cool })
		_, mid := tb.enroll(t, "carol", "carol@home.example")
		verifiedAt := clk.Now()
		f, _ := tb.svc.StartFlow(ctx, "reset", "carol", flow.Meta{})
		// before a proof: a wrong code is a wrong code, as for anyone
		if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, mid, flow.Meta{}); err != nil {
			t.Fatal(err)
		}
		_, err := tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, "00000000", flow.Meta{})
		wantCode(t, err, flow.CodeInvalidCode)
		_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, mid, tb.inbox.LastCode(t, "carol@home.example"), flow.Meta{})
		wantCode(t, err, flow.CodeMethodTooNew)
		want := verifiedAt.Add(cool).Add(time.Second - 1).Truncate(time.Second)
		if p := flow.AsProblem(err); !p.UsableAt.Equal(want) || !strings.Contains(p.Message(), want.Format("2 January 2006 15:04 UTC")) {
			t.Fatalf("usable at %v (%q), want %v", p.UsableAt, p.Message(), want)
		}
		// the JSON answer says when
		b, _ := json.Marshal(apiError(flow.AsProblem(err), "r"))
		var body struct {
			Error struct {
				UsableAt string `json:"usable_at"`
			}
		}
		json.Unmarshal(b, &body)
		if body.Error.UsableAt != want.Format(time.RFC3339) {
			t.Fatalf("JSON %s", b)
		}
		// nothing recorded: the flow has no proof and cannot complete
		if v, err := tb.svc.Flow(ctx, "reset", f.ID); err != nil || len(v.Verified) != 0 {
			t.Fatalf("flow after the refused proof: %+v %v", v, err)
		}
		wantCode(t, tb.svc.CompleteFlow(ctx, "reset", f.ID, "New-Password-123", flow.Meta{}), flow.CodeNotVerified)
		if got := tb.auditOutcomes(t, "reset.gate"); !strings.Contains(strings.Join(got, ","), "method_too_new") {
			t.Fatalf("gate outcomes %v", got)
		}
		// once the cooling-off is over, the same method works
		clk.Add(cool)
		f, _ = tb.svc.StartFlow(ctx, "reset", "carol", flow.Meta{})
		v, err := prove(tb, f, mid, "carol@home.example")
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.svc.CompleteFlow(ctx, "reset", v.ID, "New-Password-123", flow.Meta{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a new method refused, an old one finishes", func(t *testing.T) {
		tb, clk, _ := totpBed(t, func(o *flow.Options) { o.CoolingOff = cool })
		_, mail := tb.enroll(t, "carol", "carol@home.example")
		clk.Add(2 * cool)
		sess, err := tb.svc.SignIn(ctx, "carol", tb.dir.Password("carol"), flow.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		ph := tb.addPhone(t, sess, "+44 7700 900003")
		f, _ := tb.svc.StartFlow(ctx, "reset", "carol", flow.Meta{})
		_, err = prove(tb, f, ph.ID, "+447700900003")
		wantCode(t, err, flow.CodeMethodTooNew)
		v, err := prove(tb, f, mail, "carol@home.example")
		if err != nil {
			t.Fatalf("the old email after the refused phone: %v", err)
		}
		if err := tb.svc.CompleteFlow(ctx, "reset", v.ID, "New-Password-123", flow.Meta{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("two required: an old method left lets a new one count", func(t *testing.T) {
		tb, clk, _ := totpBed(t, func(o *flow.Options) { o.CoolingOff = cool })
		_, mail := tb.enroll(t, "alice", "alice@home.example") // alice's tier requires 2
		clk.Add(2 * cool)
		sess, err := tb.svc.SignIn(ctx, "alice", tb.dir.Password("alice"), flow.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		ph := tb.addPhone(t, sess, "+44 7700 900001")
		f, _ := tb.svc.StartFlow(ctx, "reset", "alice", flow.Meta{})
		v, err := prove(tb, f, ph.ID, "+447700900001")
		if err != nil {
			t.Fatalf("the new phone with the old email still to prove: %v", err)
		}
		if v, err = prove(tb, v, mail, "alice@home.example"); err != nil {
			t.Fatal(err)
		}
		if err := tb.svc.CompleteFlow(ctx, "reset", v.ID, "New-Password-123", flow.Meta{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("two required, both new: refused at the first proof", func(t *testing.T) {
		tb, clk, _ := totpBed(t, func(o *flow.Options) { o.CoolingOff = cool })
		sess, mail := tb.enroll(t, "alice", "alice@home.example")
		first := clk.Now()
		clk.Add(10 * time.Minute)
		ph := tb.addPhone(t, sess, "+44 7700 900001")
		f, _ := tb.svc.StartFlow(ctx, "reset", "alice", flow.Meta{})
		_, err := prove(tb, f, ph.ID, "+447700900001")
		wantCode(t, err, flow.CodeMethodTooNew)
		if at := flow.AsProblem(err).UsableAt; !at.Equal(first.Add(cool).Add(time.Second - 1).Truncate(time.Second)) {
			t.Fatalf("usable at %v, want the email's time %v", at, first.Add(cool))
		}
		_, err = prove(tb, f, mail, "alice@home.example")
		wantCode(t, err, flow.CodeMethodTooNew)
	})
}
