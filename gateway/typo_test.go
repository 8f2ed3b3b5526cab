package gateway

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestFlowPageNamesTheUsername: the methods page of a reset or unlock says
// whose password or account it is, as typed, with a way to start again,
// for a real name and a typo alike (the same sentence: it repeats what
// the person typed and tells nothing about accounts). Before, a mistyped
// name led to believable masked methods and codes that never came, with
// nothing on the page to notice the typo by.
func TestFlowPageNamesTheUsername(t *testing.T) {
	tb := newTestbed(t, nil)
	tb.enroll(t, "carol", "carol@home.example")
	who := regexp.MustCompile(`<p class="who">([^<]*)<strong>([^<]*)</strong>\. Not you\? <a href="(/[a-z]+)">Start again</a></p>`)
	for _, c := range []struct{ kind, name, lead string }{
		{"reset", "carol", "Resetting the password of "},
		{"reset", "carlo", "Resetting the password of "},
		{"unlock", "carol", "Unlocking the account of "},
		{"unlock", "<b>x</b>", "Unlocking the account of "},
	} {
		b := newClient(t, tb)
		w := b.post("/"+c.kind, "/"+c.kind, url.Values{"username": {c.name}}, nil)
		if w.Header().Get("Location") != "/"+c.kind+"/methods" {
			t.Fatalf("%s %q: %d %v", c.kind, c.name, w.Code, w.Header())
		}
		page := b.get("/" + c.kind + "/methods").Body.String()
		m := who.FindStringSubmatch(page)
		escaped := strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(c.name)
		if m == nil || m[1] != c.lead || m[2] != escaped || m[3] != "/"+c.kind {
			t.Fatalf("%s %q: the page does not name the user with a way back:\n%s", c.kind, c.name, page)
		}
	}
}
