package gateway

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The reset page, submitted again after its answer was lost, says the
// password is already changed and ends the flow's cookie.
func TestAlreadyCompletedPage(t *testing.T) {
	tb := newTestbed(t, nil)
	tb.enroll(t, "carol", "carol@home.example")
	b := newClient(t, tb)
	b.post("/reset", "/reset", url.Values{"username": {"carol"}}, nil)
	mid := regexp.MustCompile(`name="method" value="([0-9a-f]{22})"`).FindStringSubmatch(b.get("/reset/methods").Body.String())[1]
	codePage := b.post("/reset/methods", "/reset/send", url.Values{"method": {mid}}, nil).Header().Get("Location")
	code := tb.inbox.LastCode(t, "carol@home.example")
	if w := b.post(codePage, "/reset/verify", url.Values{"method": {mid}, "code": {code}}, nil); w.Header().Get("Location") != "/reset/password" {
		t.Fatalf("verify: %d %s", w.Code, w.Body)
	}
	form := url.Values{"password": {"Page-Lost-Answer-7"}, "confirm": {"Page-Lost-Answer-7"}}
	tb.dir.SetReplyLost(true)
	if w := b.post("/reset/password", "/reset/password", form, nil); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("lost answer: %d %s", w.Code, w.Body)
	}
	tb.dir.SetReplyLost(false)
	w := b.post("/reset/password", "/reset/password", form, nil)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "already changed by your earlier attempt") {
		t.Fatalf("second submission: %d %s", w.Code, w.Body)
	}
	for name := range b.cookies {
		if strings.Contains(name, "flow") {
			t.Fatalf("flow cookie %s kept", name)
		}
	}
	if tb.writes() != 1 {
		t.Fatalf("%d writes", tb.writes())
	}
}
