package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

type fakeDemo struct {
	*notify.Outbox
	mu     sync.Mutex
	locked []string
}

func (d *fakeDemo) Accounts() []flow.DemoAccount {
	return []flow.DemoAccount{{Username: "carol", Password: "Carol-Demo-1!", Note: "eligible through a nested group"}}
}

func (d *fakeDemo) Lock(ctx context.Context, username string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.locked = append(d.locked, username)
	return nil
}

func demoTestbed(t *testing.T, publicURL string, tweak ...func(*flow.Options, flow.Deps)) (*Server, *fakeDemo, error) {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), "file:"+filepath.Join(t.TempDir(), "t.db"), []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pu, _ := url.Parse(publicURL)
	demo := &fakeDemo{Outbox: notify.NewOutbox(50)}
	o := flow.Options{PublicURL: pu, SecretKey: []byte("0123456789abcdef0123456789abcdef-test"),
		Eligibility: policy.Eligibility{Scope: policy.ScopeAll, MethodsRequired: 1, Methods: []string{"email", "sms"}},
		Password:    policy.Rules{MinLength: 8}, AllowedCountries: []string{"GB"}}
	deps := flow.Deps{Directory: dirtest.NewStaffMemory(), Store: st, Mailer: demo, SMS: demo, Demo: demo, Log: slog.New(slog.DiscardHandler)}
	for _, f := range tweak {
		f(&o, deps)
	}
	svc, err := flow.NewService(o, deps)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(svc.Close)
	srv, err := New(svc)
	if err != nil {
		t.Fatal(err)
	}
	return srv, demo, nil
}

func TestDemoOutboxOnlyInTheDemoAndOnlyOnLoopback(t *testing.T) {
	if _, _, err := demoTestbed(t, "https://sspr.example.org"); err == nil {
		t.Fatal("the demo outbox was accepted on a public URL that is not loopback")
	}
	srv, demo, err := demoTestbed(t, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	_ = demo.SendEmail(context.Background(), notify.Email{To: "carol@example.net", Subject: "Your code", Text: "Your code is 48213907. It expires in 10 minutes."})
	_ = demo.SendSMS(context.Background(), notify.SMS{To: "+447700900123", Body: "552901 is your Latchkey code"})

	far := &client{t: t, h: srv.Handler(), cookies: map[string]*http.Cookie{}}
	if w := far.get("/demo/outbox"); w.Code != 404 || strings.Contains(w.Body.String(), "48213907") {
		t.Fatalf("another host read the outbox: %d", w.Code)
	}
	local := &client{t: t, h: srv.Handler(), cookies: map[string]*http.Cookie{}, remote: "127.0.0.1:40000"}
	w := local.get("/demo/outbox")
	body := html.UnescapeString(w.Body.String())
	if w.Code != 200 {
		t.Fatalf("outbox: %d", w.Code)
	}
	for _, want := range []string{"48213907", "552901", "carol@example.net", "+447700900123", "Carol-Demo-1!", "not for production"} {
		if !strings.Contains(body, want) {
			t.Fatalf("outbox page lacks %q", want)
		}
	}
	if strings.Index(body, "552901") > strings.Index(body, "48213907") {
		t.Fatal("the newest message is not first")
	}
	if home := local.get("/").Body.String(); !strings.Contains(home, `href="/demo/outbox"`) {
		t.Fatal("pages do not link the outbox in the demo")
	}

	// locking needs the form's token and names a demo account only
	if w := local.post("", "/demo/lock", url.Values{"username": {"carol"}}, nil); w.Code != 403 {
		t.Fatalf("lock without a CSRF token: %d", w.Code)
	}
	if w := local.post("/demo/outbox", "/demo/lock", url.Values{"username": {"mallory"}}, map[string]string{"Origin": "http://127.0.0.1:8080"}); w.Code != 400 {
		t.Fatalf("lock of a name that is not a demo account: %d", w.Code)
	}
	w = local.post("/demo/outbox", "/demo/lock", url.Values{"username": {"carol"}}, map[string]string{"Origin": "http://127.0.0.1:8080"})
	if w.Code != 303 || len(demo.locked) != 1 || demo.locked[0] != "carol" {
		t.Fatalf("lock: %d %v", w.Code, demo.locked)
	}
	if page := local.get(w.Header().Get("Location")).Body.String(); !strings.Contains(page, "carol is locked now") {
		t.Fatal("no notice after locking")
	}
}

// TestDemoOutboxListsWhatWasNotSent: a code the gateway does not send
// because the address has had its codes (limits.sends_per_destination: 1,
// spent by the registration's code) is listed on the demo's outbox page,
// with the address and why, while the reset's own answer stays the usual
// 202.
func TestDemoOutboxListsWhatWasNotSent(t *testing.T) {
	var dir *dirtest.Memory
	srv, demo, err := demoTestbed(t, "http://127.0.0.1:8080", func(o *flow.Options, d flow.Deps) {
		o.Limits.SendsPerDestination = 1
		dir = d.Directory.(*dirtest.Memory)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sess, err := srv.svc.SignIn(ctx, "carol", dir.Password("carol"), flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := srv.svc.AddMethod(ctx, sess, "email", "carol.home@example.net", flow.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	// the registration code leaves through the outbox, 3-503 ms later
	var code string
	for deadline := time.Now().Add(10 * time.Second); code == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, m := range demo.Messages() {
			if m.To == "carol.home@example.net" && m.NotSent == "" {
				code = codeRE.FindString(m.Text)
			}
		}
	}
	if code == "" {
		t.Fatal("no registration code in the demo outbox")
	}
	if _, err := srv.svc.VerifyMethod(ctx, sess, mv.ID, code, flow.Meta{}); err != nil {
		t.Fatal(err)
	}

	local := &client{t: t, h: srv.Handler(), cookies: map[string]*http.Cookie{}, remote: "127.0.0.1:40000"}
	w := local.api("POST", "/api/v1/reset", `{"username":"carol"}`, nil)
	var start struct {
		Flow    string `json:"flow"`
		Methods []struct {
			ID string `json:"id"`
		} `json:"methods"`
	}
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &start) != nil || len(start.Methods) == 0 {
		t.Fatalf("reset start: %d %s", w.Code, w.Body)
	}
	w = local.api("POST", "/api/v1/reset/send", fmt.Sprintf(`{"flow":%q,"method":%q}`, start.Flow, start.Methods[0].ID), nil)
	if w.Code != 202 {
		t.Fatalf("send past the destination's budget: %d %s, want the usual 202", w.Code, w.Body)
	}
	body := html.UnescapeString(local.get("/demo/outbox").Body.String())
	for _, want := range []string{"<strong>carol.home@example.net</strong> (reset)", "<strong>not sent</strong>", "limits.sends_per_destination"} {
		if !strings.Contains(body, want) {
			t.Fatalf("the outbox page does not list the code not sent (%q):\n%s", want, body)
		}
	}
	if n := strings.Count(body, "<strong>not sent</strong>"); n != 1 {
		t.Fatalf("%d messages listed as not sent, want 1:\n%s", n, body)
	}
}

func TestNoDemoPagesOutsideTheDemo(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	c.remote = "127.0.0.1:40000"
	if w := c.get("/demo/outbox"); w.Code != 404 {
		t.Fatalf("/demo/outbox outside the demo: %d", w.Code)
	}
	if body := c.get("/").Body.String(); strings.Contains(body, "not for production") || strings.Contains(body, "/demo/") {
		t.Fatal("the demo banner outside the demo")
	}
}

// TestDemoOutboxSaysWhyForEveryReason: every reason flow gives for a
// message not sent (a spent budget, a code expired before it left, a
// sender that did not take it, a store that did not keep it) is listed on
// the demo's outbox page in words, and a reason the page has no words for
// is still listed, by its key.
func TestDemoOutboxSaysWhyForEveryReason(t *testing.T) {
	srv, demo, err := demoTestbed(t, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	local := &client{t: t, h: srv.Handler(), cookies: map[string]*http.Cookie{}, remote: "127.0.0.1:40000"}
	reasons := append(slices.Sorted(maps.Keys(notSentWhy)), "a_reason_with_no_words")
	for _, r := range reasons {
		demo.NotSent("email", "", "reset", r)
		body := html.UnescapeString(local.get("/demo/outbox").Body.String())
		want := notSentWhy[r]
		if want == "" {
			want = r
		}
		if !strings.Contains(body, want) {
			t.Fatalf("reason %s: the outbox page does not say %q:\n%s", r, want, body)
		}
	}
	body := local.get("/demo/outbox").Body.String()
	if n := strings.Count(body, "<strong>not sent</strong>"); n != len(reasons) {
		t.Fatalf("%d messages listed as not sent, want %d", n, len(reasons))
	}
}
