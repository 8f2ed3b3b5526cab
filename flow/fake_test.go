package flow

import (
	"log/slog"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
)

// testbed is a Service over the in-memory directory (dirtest.Memory), a
// real store (flowtest.OpenStore) and a message recorder.
type testbed struct {
	svc *Service
	dir *dirtest.Memory
	st  store.Store
	rec *notifytest.Recorder
	// read counts the codes a test has read, per recipient
	inbox *flowtest.Inbox
	// dbPath is the SQLite store's file
	dbPath string
}

func newTestbed(t *testing.T, tweak func(*Options)) *testbed {
	t.Helper()
	st, dbPath := flowtest.OpenStore(t)
	o := Options{PublicURL: flowtest.PublicURL(), SecretKey: flowtest.SecretKey, Helpdesk: flowtest.Helpdesk,
		Eligibility: flowtest.Eligibility(), Password: flowtest.PasswordRules(), AllowedCountries: flowtest.Countries(),
		Limits: Limits{StartsPerIP: flowtest.StartsPerIP}}
	if tweak != nil {
		tweak(&o)
	}
	rec := &notifytest.Recorder{}
	dir := flowtest.NewDirectory()
	svc, err := NewService(o, Deps{Directory: dir, Store: st, Mailer: rec, SMS: rec, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return &testbed{svc: svc, dir: dir, st: st, rec: rec, inbox: flowtest.NewInbox(rec), dbPath: dbPath}
}

func storeQuery(typ string) store.AuditQuery { return store.AuditQuery{Type: typ} }

// codeSendDelay is how long a check that nothing was sent waits: the
// longest a message waits in the outbox before its first try
// (MaxSendDelay), with half a second for a worker to be scheduled on a busy
// machine.
const codeSendDelay = MaxSendDelay + 500*time.Millisecond
