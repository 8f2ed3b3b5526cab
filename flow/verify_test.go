package flow

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/store"
)

// rotateDown is a store that does not answer when a flow is rotated.
type rotateDown struct{ store.Store }

func (rotateDown) RotateFlow(context.Context, store.Flow, string) error {
	return errors.New("connection refused")
}

// A store that does not answer while a proof is recorded is unavailable
// (a 5xx: the flow is not lost, the user tries again), for every kind of
// method: the one verify path records every proof. The passkey's copy of
// the record-and-rotate loop used to call it flow_expired.
func TestProofNotRecordedIsUnavailable(t *testing.T) {
	check := func(t *testing.T, tb *testbed, flowID string, err error) {
		t.Helper()
		wantCode(t, err, CodeUnavailable)
		if p := asProblem(err); p.Status < http.StatusInternalServerError {
			t.Fatalf("status %d, want a 5xx", p.Status)
		}
		tb.svc.d.Store = tb.st
		if _, err := tb.svc.Flow(context.Background(), "reset", flowID); err != nil {
			t.Fatalf("the flow is lost: %v", err)
		}
	}
	t.Run("passkey", func(t *testing.T) {
		tb := passkeyBed(t)
		key := flowtest.NewSoftKey(t)
		tb.addPasskey(t, "carol", key)
		f, id := tb.passkeyFlow(t, "carol")
		opts := tb.assertionOptions(t, f.ID, id)
		tb.svc.d.Store = rotateDown{tb.st}
		_, err := tb.svc.VerifyFlowPasskey(context.Background(), "reset", f.ID, id, key.MustGet(opts), Meta{})
		check(t, tb, f.ID, err)
	})
	t.Run("email", func(t *testing.T) {
		tb := newTestbed(t, nil)
		ctx := context.Background()
		tb.enroll(t, "carol", "carol@home.example")
		f, err := tb.svc.StartFlow(ctx, "reset", "carol", Meta{})
		if err != nil {
			t.Fatal(err)
		}
		id := methodOf(t, f, "email")
		if err := tb.svc.SendFlowCode(ctx, "reset", f.ID, id, Meta{}); err != nil {
			t.Fatal(err)
		}
		code := tb.inbox.LastCode(t, "carol@home.example")
		tb.svc.d.Store = rotateDown{tb.st}
		_, err = tb.svc.VerifyFlowCode(ctx, "reset", f.ID, id, code, Meta{})
		check(t, tb, f.ID, err)
	})
}
