package gateway

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestFormResultsAndSmallerWords: a password change ends on a page of its
// own (post/redirect/get: a reload shows the result and posts nothing);
// the phone error names the countries allowed; the account's own address
// in the directory is refused as a personal email with a clear message;
// trivial errors carry no "Reference" line. Before, "Password changed"
// stayed on POST /change, the phone error said "an allowed country", and
// carol@corp.example was accepted as carol's personal address.
func TestFormResultsAndSmallerWords(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	w := c.post("/change", "/change", url.Values{"username": {"carol"}, "old_password": {tb.dir.Password("carol")},
		"new_password": {"Brand-New-Pass-43"}, "confirm": {"Brand-New-Pass-43"}}, nil)
	if w.Code != 303 || w.Header().Get("Location") != "/change/done" {
		t.Fatalf("change: %d %v", w.Code, w.Header())
	}
	if page := c.get("/change/done").Body.String(); !strings.Contains(page, "Your password has been changed.") {
		t.Fatalf("done page:\n%s", page)
	}
	// a trivial error: no reference
	w = c.post("/change", "/change", url.Values{"username": {"carol"}, "old_password": {"Brand-New-Pass-43"},
		"new_password": {"Other-New-Pass-44"}, "confirm": {"Other-New-Pass-45"}}, nil)
	if w.Code != 422 || strings.Contains(w.Body.String(), "Reference:") {
		t.Fatalf("mismatch: %d\n%s", w.Code, w.Body)
	}

	r := newClient(t, tb)
	r.post("/register", "/register", url.Values{"username": {"carol"}, "password": {"Brand-New-Pass-43"}}, nil)
	w = r.post("/register/methods", "/register/methods", url.Values{"type": {"sms"}, "address": {"+81 90 1234 5678"}}, nil)
	if b := w.Body.String(); w.Code != 422 || !strings.Contains(b, "from one of these countries: ") || !strings.Contains(b, "United Kingdom (&#43;44)") {
		t.Fatalf("phone from a country not allowed: %d\n%s", w.Code, b)
	}
	// the API names them too
	a := newClient(t, tb)
	w = a.api("POST", "/api/v1/session", `{"username":"carol","password":"Brand-New-Pass-43"}`, nil)
	tok := regexp.MustCompile(`"token":"([^"]+)"`).FindStringSubmatch(w.Body.String())
	if tok == nil {
		t.Fatalf("API sign-in: %d %s", w.Code, w.Body)
	}
	w = a.api("POST", "/api/v1/methods", `{"type":"sms","address":"+81 90 1234 5678"}`, map[string]string{"Authorization": "Bearer " + tok[1]})
	if b := w.Body.String(); w.Code != 422 || !strings.Contains(b, `"code":"invalid_phone"`) || !strings.Contains(b, "from one of these countries: United Kingdom (+44)") {
		t.Fatalf("API, phone from a country not allowed: %d\n%s", w.Code, b)
	}
	for _, work := range []string{"carol@corp.example", "Carol+sspr@CORP.example"} {
		w = r.post("/register/methods", "/register/methods", url.Values{"type": {"email"}, "address": {work}}, nil)
		if b := w.Body.String(); w.Code != 422 || !strings.Contains(b, "That is your work address") || strings.Contains(b, "Reference:") {
			t.Fatalf("the work address %q: %d\n%s", work, w.Code, b)
		}
	}
	w = r.post("/register/methods", "/register/methods", url.Values{"type": {"email"}, "address": {"carol@home.example"}}, nil)
	if w.Code != 303 {
		t.Fatalf("a personal address: %d\n%s", w.Code, w.Body)
	}
}
