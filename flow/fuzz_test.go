package flow

import (
	"net/mail"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzNormalizeEmail: an accepted address is one bare address, without
// anything that could end up in a mail header, and normalising is stable.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"a@b.example", "A@B.EXAMPLE", "a@b", "x\r\nBcc: y@z.example", "<a@b.example>", "a@b.example, c@d.example", `"q"@x.example`, "ü@ä.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := normalizeEmail(in)
		if !ok {
			return
		}
		if strings.ContainsAny(out, "\r\n\x00<>,;") || len(out) > 254 {
			t.Fatalf("accepted %q -> %q", in, out)
		}
		a, err := mail.ParseAddress(out)
		if err != nil || a.Name != "" || a.Address != out {
			t.Fatalf("%q -> %q is not one bare address", in, out)
		}
		if again, ok := normalizeEmail(out); !ok || again != out {
			t.Fatalf("not stable: %q -> %q -> %q", in, out, again)
		}
	})
}

// FuzzCanonicalUsername: the canonical form is NFC, trimmed and stable.
func FuzzCanonicalUsername(f *testing.F) {
	for _, s := range []string{"alice", " Alice ", "jose\u0301", "josé", "\u00a0bob\u00a0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c := canonicalUsername(in)
		if utf8.ValidString(in) && !norm.NFC.IsNormalString(c) {
			t.Fatalf("not NFC: %q", c)
		}
		if canonicalUsername(c) != c || strings.TrimSpace(c) != c {
			t.Fatalf("not stable: %q -> %q", in, c)
		}
	})
}
