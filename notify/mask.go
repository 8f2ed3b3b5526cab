package notify

import (
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Masking shows a user which registered method a choice refers to without
// revealing it. The shapes are fixed, so a mask does not leak the length of
// the address either; the gateway shows masks, never addresses, on pages and
// in API answers before the user is authenticated.

const bullets = "•••"

// MaskPhone masks an E.164 number: the country calling code and the last two
// digits stay, the rest becomes a fixed pattern: "+447911123456" gives
// "+44 •••• ••56". A number whose calling code is not in the built-in table
// gives "•••• ••56"; anything that is not E.164 gives "•••".
func MaskPhone(e164 string) string {
	if !IsE164(e164) {
		return bullets
	}
	digits := e164[1:]
	last := digits[len(digits)-2:]
	if code, cs := lookupCallingCode(digits); cs != nil {
		return "+" + code + " •••• ••" + last
	}
	return "•••• ••" + last
}

// MaskEmail masks an address: the first character of the local part, the
// first character of the domain and the top-level domain stay:
// "jane.doe@gmail.com" gives "j•••@g•••.com" and "jo@mail.example.co.uk"
// gives "j•••@m•••.uk". Input that is not an address gives "•••".
func MaskEmail(addr string) string {
	if strings.ContainsAny(addr, "<>\"") {
		a, err := mail.ParseAddress(addr)
		if err != nil {
			return bullets
		}
		addr = a.Address
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || !utf8.ValidString(addr) {
		return bullets
	}
	local, domain := addr[:at], strings.TrimSuffix(addr[at+1:], ".")
	first := func(s string) string {
		r, _ := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError || r < 0x20 {
			return ""
		}
		return string(r)
	}
	l := first(local)
	labels := strings.Split(domain, ".")
	d := first(labels[0])
	if l == "" || d == "" {
		return bullets
	}
	out := l + bullets + "@" + d + bullets
	if len(labels) > 1 && labels[len(labels)-1] != "" {
		out += "." + labels[len(labels)-1]
	}
	return out
}
