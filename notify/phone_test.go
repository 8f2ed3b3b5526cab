package notify_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/notify"
)

func TestParsePhone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		allowed []string
		e164    string
		country string
		err     error
	}{
		// normalisation
		{"+44 7911 123456", nil, "+447911123456", "GB", nil},
		{"+44 (0)7911 123-456", nil, "+447911123456", "GB", nil},
		{"0044 7911 123456", nil, "+447911123456", "GB", nil},
		{"0044 (0) 7911 123456", nil, "+447911123456", "GB", nil},
		{"+49 (0)30 901820", nil, "+4930901820", "DE", nil},
		{"+44 7911 (0)23456", nil, "", "", notify.ErrInvalidPhone}, // "(0)" only after the country code
		{"+44 (0)(0)7911 123456", nil, "", "", notify.ErrInvalidPhone},
		{"+(0)44 7911 123456", nil, "", "", notify.ErrInvalidPhone},
		{"  +44-7911-123.456 ", nil, "+447911123456", "GB", nil},
		{"+44\u00a07911\u202f123456", nil, "+447911123456", "GB", nil},
		{"+49 (151) 1234 5678", []string{"de"}, "+4915112345678", "DE", nil},
		{"+49 30 901820", []string{"DE"}, "+4930901820", "DE", nil},
		{"+33 6 12 34 56 78", []string{"FR", "DE"}, "+33612345678", "FR", nil},
		{"+39 06 6988 1234", nil, "+390669881234", "IT", nil}, // Italian landlines keep the 0
		{"+39 347 123 4567", nil, "+393471234567", "IT", nil},
		{"+353 87 123 4567", nil, "+353871234567", "IE", nil},
		{"+61 412 345 678", nil, "+61412345678", "AU", nil},
		{"+7 912 345-67-89", nil, "+79123456789", "RU", nil},
		{"+7 701 234 5678", nil, "+77012345678", "KZ", nil},
		// NANP
		{"+1 (415) 555-0123", []string{"US"}, "+14155550123", "US", nil},
		{"+1 416 555 0123", []string{"CA"}, "+14165550123", "CA", nil},
		{"+1 416 555 0123", []string{"US"}, "", "", notify.ErrPhoneCountry},
		{"+1 876 555 0123", []string{"US", "CA"}, "", "", notify.ErrPhoneCountry}, // Jamaica
		{"+1 876 555 0123", []string{"JM"}, "+18765550123", "JM", nil},
		{"+1 809 555 0123", nil, "+18095550123", "DO", nil},
		{"+1 500 555 0006", nil, "+15005550006", "US", nil},
		{"+1 115 555 0123", nil, "", "", notify.ErrInvalidPhone}, // area code cannot start with 1
		{"+1 415 055 0123", nil, "", "", notify.ErrInvalidPhone}, // exchange cannot start with 0
		{"+1 415 555 012", nil, "", "", notify.ErrInvalidPhone},
		// allow-list
		{"+44 7911 123456", []string{"DE"}, "", "", notify.ErrPhoneCountry},
		{"+44 7911 123456", []string{" gb "}, "+447911123456", "GB", nil},
		{"+44 7911 123456", []string{"XX"}, "", "", notify.ErrPhoneCountry},
		// unknown calling code (+882 international networks, +999 unassigned)
		{"+882 1234 5678", nil, "", "", notify.ErrPhoneCountry},
		{"+999 1234 5678", nil, "", "", notify.ErrPhoneCountry},
		// malformed
		{"", nil, "", "", notify.ErrInvalidPhone},
		{"07911 123456", nil, "", "", notify.ErrInvalidPhone},
		{"447911123456", nil, "", "", notify.ErrInvalidPhone},
		{"+44 07911 123456", nil, "", "", notify.ErrInvalidPhone},
		{"+0 44 7911 123456", nil, "", "", notify.ErrInvalidPhone},
		{"++447911123456", nil, "", "", notify.ErrInvalidPhone},
		{"+44 7911 12345+6", nil, "", "", notify.ErrInvalidPhone},
		{"+44 7911 123456 ext 12", nil, "", "", notify.ErrInvalidPhone},
		{"+44 7911 1234567", nil, "", "", notify.ErrInvalidPhone}, // 11-digit UK NSN
		{"+44 791", nil, "", "", notify.ErrInvalidPhone},
		{"+49 1511 2345 6789 0123", nil, "", "", notify.ErrInvalidPhone}, // > 15 digits
		{"+４４7911123456", nil, "", "", notify.ErrInvalidPhone},           // full-width digits
		{"+44 7911 123456\n", nil, "+447911123456", "GB", nil},           // trimmed
		{"+44\n7911 123456", nil, "", "", notify.ErrInvalidPhone},
		{"+33 6 12 34 56 7", nil, "", "", notify.ErrInvalidPhone},
		{"+" + strings.Repeat("4", 70), nil, "", "", notify.ErrInvalidPhone},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			e164, country, err := notify.ParsePhone(c.in, c.allowed)
			if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if e164 != c.e164 || country != c.country {
				t.Fatalf("got %q %q, want %q %q", e164, country, c.e164, c.country)
			}
			if err != nil && len(c.in) > 4 && strings.Contains(err.Error(), strings.TrimSpace(c.in)) {
				t.Errorf("error echoes the input: %v", err)
			}
		})
	}
}

func TestCountryTable(t *testing.T) {
	t.Parallel()
	all := notify.SupportedCountries()
	if len(all) < 50 || !slices.IsSorted(all) {
		t.Fatalf("SupportedCountries = %v", all)
	}
	for _, iso := range []string{"US", "CA", "GB", "DE", "FR", "IT", "ES", "NL", "AU", "JM"} {
		if !slices.Contains(all, iso) {
			t.Errorf("%s missing", iso)
		}
	}
	for iso, want := range map[string]string{"US": "1", "ca": "1", "GB": "44", "DE": "49", "FR": "33", "IE": "353", "KZ": "7"} {
		if got, ok := notify.CountryCallingCode(iso); !ok || got != want {
			t.Errorf("CountryCallingCode(%s) = %q, %v", iso, got, ok)
		}
	}
	if _, ok := notify.CountryCallingCode("XX"); ok {
		t.Error("XX known")
	}
}

func TestIsE164(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"+447911123456": true, "+1234567": true, "+123456": false, "+1234567890123456": false,
		"447911123456": false, "+0447911123456": false, "+44 7911123456": false, "+44791112345a": false, "": false, "+": false,
	} {
		if got := notify.IsE164(s); got != want {
			t.Errorf("IsE164(%q) = %v", s, got)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"+447911123412":   "+44 •••• ••12",
		"+14155550123":    "+1 •••• ••23",
		"+353871234567":   "+353 •••• ••67",
		"+4915112345678":  "+49 •••• ••78",
		"+88212345678":    "•••• ••78", // calling code not in the table
		"07911123412":     "•••",
		"":                "•••",
		"+44 7911 123412": "•••",
	} {
		if got := notify.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
	// Fixed shape: the length of the number does not show.
	if a, b := notify.MaskPhone("+4930901820"), notify.MaskPhone("+4915112345620"); len(a) != len(b) {
		t.Errorf("masks differ in length: %q %q", a, b)
	}
}

func TestMaskEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"john@gmail.com":              "j•••@g•••.com",
		"jane.doe@mail.example.co.uk": "j•••@m•••.uk",
		"a@b.org":                     "a•••@b•••.org",
		"élodie@exemple.fr":           "é•••@e•••.fr",
		"Jo <jo@example.org>":         "j•••@e•••.org",
		"root@localhost":              "r•••@l•••",
		"x@example.com.":              "x•••@e•••.com",
		"not-an-address":              "•••",
		"@example.com":                "•••",
		"jo@":                         "•••",
		"":                            "•••",
	} {
		if got := notify.MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

var e164RE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func FuzzParsePhone(f *testing.F) {
	for _, s := range []string{
		"+44 7911 123456", "+44 (0)7911 123-456", "0044 7911 123456", "+1 (415) 555-0123", "+1 876 555 0123",
		"+39 06 6988 1234", "+7 701 234 5678", "07911 123456", "+", "00", "(0)", "+44\u00a07911", "+４４",
		"+" + strings.Repeat("9", 20), "+353 87 123 4567",
	} {
		f.Add(s)
	}
	allowed := []string{"GB", "US", "DE", "IT", "KZ"}
	f.Fuzz(func(t *testing.T, s string) {
		for _, list := range [][]string{nil, allowed} {
			e164, country, err := notify.ParsePhone(s, list)
			if err != nil {
				if e164 != "" || country != "" {
					t.Fatalf("error with a result: %q %q %v", e164, country, err)
				}
				if !errors.Is(err, notify.ErrInvalidPhone) && !errors.Is(err, notify.ErrPhoneCountry) {
					t.Fatalf("unexpected error type: %v", err)
				}
				continue
			}
			if !e164RE.MatchString(e164) || !notify.IsE164(e164) {
				t.Fatalf("ParsePhone(%q) = %q, not E.164", s, e164)
			}
			if list != nil && !slices.Contains(list, country) {
				t.Fatalf("ParsePhone(%q) = %q in %s, not allowed", s, e164, country)
			}
			if code, ok := notify.CountryCallingCode(country); !ok || !strings.HasPrefix(e164[1:], code) {
				t.Fatalf("ParsePhone(%q) = %q in %s with code %q", s, e164, country, code)
			}
			// Idempotent: the E.164 form parses to itself.
			again, c2, err := notify.ParsePhone(e164, list)
			if err != nil || again != e164 || c2 != country {
				t.Fatalf("re-parse of %q: %q %q %v", e164, again, c2, err)
			}
			m := notify.MaskPhone(e164)
			if !strings.HasSuffix(m, e164[len(e164)-2:]) || !utf8.ValidString(m) {
				t.Fatalf("MaskPhone(%q) = %q", e164, m)
			}
		}
		_ = notify.MaskEmail(s)
	})
}
