package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/flowtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
)

// testbed is a Service and Server over the in-memory directory
// (dirtest.Memory), a real store (flowtest.OpenStore) and a message
// recorder.
type testbed struct {
	svc *flow.Service
	srv *Server
	dir *dirtest.Memory
	st  store.Store
	rec *notifytest.Recorder
	// read counts the codes a test has read, per recipient
	inbox *flowtest.Inbox
	// dbPath is the SQLite store's file
	dbPath string
	// clock is the service's clock when set (Deps.Now)
	clock func() time.Time
	// logs and audits take the service's log and audit lines
	logs, audits *swapHandler
}

// swapHandler is a slog.Handler a test points elsewhere after the
// service is built; it drops lines until then.
type swapHandler struct {
	mu sync.Mutex
	h  slog.Handler
}

func (s *swapHandler) set(h slog.Handler) { s.mu.Lock(); s.h = h; s.mu.Unlock() }

func (s *swapHandler) target() slog.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return slog.DiscardHandler
	}
	return s.h
}

func (s *swapHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.target().Enabled(ctx, l)
}
func (s *swapHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.target().Handle(ctx, r)
}
func (s *swapHandler) WithAttrs(as []slog.Attr) slog.Handler { return s.target().WithAttrs(as) }
func (s *swapHandler) WithGroup(n string) slog.Handler       { return s.target().WithGroup(n) }

func newTestbed(t *testing.T, tweak func(*flow.Options)) *testbed {
	t.Helper()
	st, dbPath := flowtest.OpenStore(t)
	o := flow.Options{PublicURL: flowtest.PublicURL(), SecretKey: flowtest.SecretKey, Helpdesk: flowtest.Helpdesk,
		Eligibility: flowtest.Eligibility(), Password: flowtest.PasswordRules(), AllowedCountries: flowtest.Countries(),
		Limits: flow.Limits{StartsPerIP: flowtest.StartsPerIP}}
	if tweak != nil {
		tweak(&o)
	}
	rec := &notifytest.Recorder{}
	dir := flowtest.NewDirectory()
	tb := &testbed{dir: dir, st: st, rec: rec, inbox: flowtest.NewInbox(rec), dbPath: dbPath, logs: &swapHandler{}, audits: &swapHandler{}}
	svc, err := flow.NewService(o, flow.Deps{Directory: dir, Store: st, Mailer: rec, SMS: rec, Log: slog.New(tb.logs), Audit: slog.New(tb.audits),
		Now: func() time.Time {
			if tb.clock != nil {
				return tb.clock()
			}
			return time.Now()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv, err := New(svc)
	if err != nil {
		t.Fatal(err)
	}
	tb.svc, tb.srv = svc, srv
	return tb
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func storeQuery(typ string) store.AuditQuery { return store.AuditQuery{Type: typ} }
