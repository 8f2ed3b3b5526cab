package gateway

import (
	"encoding/json"
	"testing"
)

// TestJSONEncodingAndUsernames: a JSON body that is not valid UTF-8 (raw
// bytes, or a \u escape of half a surrogate pair) is 400
// invalid_encoding on every call, and a username with a control or format
// character is 400 invalid_request on reset, unlock, sign-in and change,
// the same for every name. Before, encoding/json turned each bad byte into
// U+FFFD and the call went on with a name that was not the one sent, and a
// name with NUL got the believable answer of an unknown account.
func TestJSONEncodingAndUsernames(t *testing.T) {
	tb := newTestbed(t, nil)
	c := newClient(t, tb)
	code := func(body []byte) string {
		var out struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(body, &out)
		return out.Error.Code
	}
	for name, body := range map[string]string{
		"a raw invalid byte":       "{\"username\":\"car\xffol\"}",
		"a truncated sequence":     "{\"username\":\"caro\xc3\"}",
		"a lone high surrogate":    `{"username":"carol\ud800"}`,
		"a lone low surrogate":     `{"username":"\uDC00carol"}`,
		"a high one before a char": `{"username":"\ud83dx"}`,
		"two high ones":            `{"username":"\ud83d\ud83d"}`,
		"in a field's name":        "{\"user\xfename\":\"carol\"}",
	} {
		for _, path := range []string{"/api/v1/reset", "/api/v1/unlock", "/api/v1/session"} {
			w := c.api("POST", path, body, nil)
			if got := code(w.Body.Bytes()); w.Code != 400 || got != "invalid_encoding" {
				t.Errorf("%s on %s: %d %s", name, path, w.Code, w.Body)
			}
		}
	}
	// valid escapes are fine: a pair, an escaped backslash before "u"
	for name, body := range map[string]string{
		"a surrogate pair":          `{"username":"carol\ud83d\ude00"}`,
		"an escaped backslash":      `{"username":"carol\\ud800"}`,
		"a character, not a pair":   `{"username":"caf\u00e9"}`,
		"an escaped quote then \\u": `{"username":"\"\u0041"}`,
	} {
		w := c.api("POST", "/api/v1/reset", body, nil)
		if got := code(w.Body.Bytes()); got == "invalid_encoding" {
			t.Errorf("%s: refused as %s", name, got)
		}
	}
	for _, name := range []string{"carol\x00", "car\nol", "\u202ecarol", "ca\u200brol", "carol\x7f"} {
		body, _ := json.Marshal(map[string]string{"username": name})
		for _, path := range []string{"/api/v1/reset", "/api/v1/unlock"} {
			w := c.api("POST", path, string(body), nil)
			if got := code(w.Body.Bytes()); w.Code != 400 || got != "invalid_request" {
				t.Errorf("username %q on %s: %d %s", name, path, w.Code, w.Body)
			}
		}
		body, _ = json.Marshal(map[string]string{"username": name, "password": "Whatever-Pass-1"})
		w := c.api("POST", "/api/v1/session", string(body), nil)
		if got := code(w.Body.Bytes()); w.Code != 400 || got != "invalid_request" {
			t.Errorf("username %q on sign-in: %d %s", name, w.Code, w.Body)
		}
		body, _ = json.Marshal(map[string]string{"username": name, "old_password": "Whatever-Pass-1", "new_password": "Another-Long-Pass-9"})
		w = c.api("POST", "/api/v1/change", string(body), nil)
		if got := code(w.Body.Bytes()); w.Code != 400 || got != "invalid_request" {
			t.Errorf("username %q on change: %d %s", name, w.Code, w.Body)
		}
	}
	// a real name with no control character still starts a flow
	if w := c.api("POST", "/api/v1/reset", `{"username":"carol"}`, nil); w.Code != 200 {
		t.Fatalf("carol: %d %s", w.Code, w.Body)
	}
}
