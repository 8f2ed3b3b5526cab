package notify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// E.164 allows at most 15 digits including the country calling code. The
// shortest numbers in the built-in table have 7 (a 3-digit code and a
// 4-digit subscriber number); anything shorter cannot be a mobile number.
const (
	minE164Digits = 7
	maxE164Digits = 15
	maxPhoneInput = 64
)

// Errors from ParsePhone. Their messages are safe to show to the user and
// never repeat the input.
var (
	// ErrInvalidPhone: the input is not an international phone number.
	ErrInvalidPhone = errors.New("not a valid international phone number")
	// ErrPhoneCountry: the number's country is unknown to the built-in
	// table or not in the allow-list.
	ErrPhoneCountry = errors.New("phone numbers from this country are not accepted")
)

// country describes one ISO 3166-1 country's numbers: its calling code and
// the length of the national significant number (NSN, the digits after the
// calling code, without any trunk prefix).
type country struct {
	iso         string
	code        string
	min, max    int
	leadingZero bool     // the NSN may start with 0 (Italy)
	areaCodes   []string // NANP (+1) only: the area codes of this country
}

// countries is the built-in table. The lengths are those of the national
// numbering plans (ITU-T E.164 national plans) rounded outwards; they reject
// typos, not every unassigned number. Calling codes are prefix-free, which is
// what lookupCallingCode relies on.
//
// Shared calling codes:
//   - +1 (NANP): the area code decides. Canada and the Caribbean and Pacific
//     members are listed with their area codes; every other valid area code
//     is US. A new Canadian overlay missing here is reported as US.
//   - +7: a national number starting with 6 or 7 is KZ, anything else RU.
//   - +44 is always GB (Guernsey, Jersey and the Isle of Man share its
//     mobile ranges), +47 always NO, +39 always IT (Vatican City shares it),
//     +61 always AU.
var countries = []country{
	// NANP
	{iso: "US", code: "1", min: 10, max: 10},
	{iso: "CA", code: "1", min: 10, max: 10, areaCodes: []string{
		"204", "226", "236", "249", "250", "263", "289", "306", "343", "354", "365", "367", "368",
		"382", "403", "416", "418", "428", "431", "437", "438", "450", "468", "474", "506", "514",
		"519", "548", "579", "581", "584", "587", "600", "604", "613", "622", "639", "647", "672",
		"683", "705", "709", "742", "753", "778", "780", "782", "807", "819", "825", "867", "873",
		"879", "902", "905", "942"}},
	{iso: "AG", code: "1", min: 10, max: 10, areaCodes: []string{"268"}},
	{iso: "AI", code: "1", min: 10, max: 10, areaCodes: []string{"264"}},
	{iso: "AS", code: "1", min: 10, max: 10, areaCodes: []string{"684"}},
	{iso: "BB", code: "1", min: 10, max: 10, areaCodes: []string{"246"}},
	{iso: "BM", code: "1", min: 10, max: 10, areaCodes: []string{"441"}},
	{iso: "BS", code: "1", min: 10, max: 10, areaCodes: []string{"242"}},
	{iso: "DM", code: "1", min: 10, max: 10, areaCodes: []string{"767"}},
	{iso: "DO", code: "1", min: 10, max: 10, areaCodes: []string{"809", "829", "849"}},
	{iso: "GD", code: "1", min: 10, max: 10, areaCodes: []string{"473"}},
	{iso: "GU", code: "1", min: 10, max: 10, areaCodes: []string{"671"}},
	{iso: "JM", code: "1", min: 10, max: 10, areaCodes: []string{"658", "876"}},
	{iso: "KN", code: "1", min: 10, max: 10, areaCodes: []string{"869"}},
	{iso: "KY", code: "1", min: 10, max: 10, areaCodes: []string{"345"}},
	{iso: "LC", code: "1", min: 10, max: 10, areaCodes: []string{"758"}},
	{iso: "MP", code: "1", min: 10, max: 10, areaCodes: []string{"670"}},
	{iso: "MS", code: "1", min: 10, max: 10, areaCodes: []string{"664"}},
	{iso: "PR", code: "1", min: 10, max: 10, areaCodes: []string{"787", "939"}},
	{iso: "SX", code: "1", min: 10, max: 10, areaCodes: []string{"721"}},
	{iso: "TC", code: "1", min: 10, max: 10, areaCodes: []string{"649"}},
	{iso: "TT", code: "1", min: 10, max: 10, areaCodes: []string{"868"}},
	{iso: "VC", code: "1", min: 10, max: 10, areaCodes: []string{"784"}},
	{iso: "VG", code: "1", min: 10, max: 10, areaCodes: []string{"284"}},
	{iso: "VI", code: "1", min: 10, max: 10, areaCodes: []string{"340"}},
	// +7
	{iso: "RU", code: "7", min: 10, max: 10},
	{iso: "KZ", code: "7", min: 10, max: 10},
	// Europe
	{iso: "GB", code: "44", min: 9, max: 10},
	{iso: "IE", code: "353", min: 7, max: 9},
	{iso: "FR", code: "33", min: 9, max: 9},
	{iso: "DE", code: "49", min: 6, max: 13},
	{iso: "NL", code: "31", min: 9, max: 9},
	{iso: "BE", code: "32", min: 8, max: 9},
	{iso: "LU", code: "352", min: 4, max: 11},
	{iso: "ES", code: "34", min: 9, max: 9},
	{iso: "PT", code: "351", min: 9, max: 9},
	{iso: "IT", code: "39", min: 6, max: 11, leadingZero: true},
	{iso: "CH", code: "41", min: 9, max: 9},
	{iso: "AT", code: "43", min: 4, max: 13},
	{iso: "DK", code: "45", min: 8, max: 8},
	{iso: "SE", code: "46", min: 7, max: 13},
	{iso: "NO", code: "47", min: 8, max: 8},
	{iso: "FI", code: "358", min: 5, max: 12},
	{iso: "IS", code: "354", min: 7, max: 9},
	{iso: "PL", code: "48", min: 9, max: 9},
	{iso: "CZ", code: "420", min: 9, max: 9},
	{iso: "SK", code: "421", min: 9, max: 9},
	{iso: "HU", code: "36", min: 8, max: 9},
	{iso: "RO", code: "40", min: 9, max: 9},
	{iso: "BG", code: "359", min: 7, max: 9},
	{iso: "GR", code: "30", min: 10, max: 10},
	{iso: "HR", code: "385", min: 8, max: 9},
	{iso: "SI", code: "386", min: 8, max: 8},
	{iso: "EE", code: "372", min: 7, max: 8},
	{iso: "LV", code: "371", min: 8, max: 8},
	{iso: "LT", code: "370", min: 8, max: 8},
	{iso: "UA", code: "380", min: 9, max: 9},
	{iso: "TR", code: "90", min: 10, max: 10},
	// Middle East and Africa
	{iso: "IL", code: "972", min: 8, max: 9},
	{iso: "AE", code: "971", min: 8, max: 9},
	{iso: "SA", code: "966", min: 8, max: 9},
	{iso: "EG", code: "20", min: 9, max: 10},
	{iso: "ZA", code: "27", min: 9, max: 9},
	{iso: "NG", code: "234", min: 8, max: 10},
	{iso: "KE", code: "254", min: 9, max: 9},
	// Asia and Oceania
	{iso: "IN", code: "91", min: 10, max: 10},
	{iso: "PK", code: "92", min: 10, max: 10},
	{iso: "CN", code: "86", min: 8, max: 11},
	{iso: "HK", code: "852", min: 8, max: 8},
	{iso: "TW", code: "886", min: 8, max: 9},
	{iso: "JP", code: "81", min: 9, max: 10},
	{iso: "KR", code: "82", min: 8, max: 10},
	{iso: "SG", code: "65", min: 8, max: 8},
	{iso: "MY", code: "60", min: 8, max: 10},
	{iso: "TH", code: "66", min: 8, max: 9},
	{iso: "ID", code: "62", min: 8, max: 12},
	{iso: "PH", code: "63", min: 9, max: 10},
	{iso: "VN", code: "84", min: 9, max: 10},
	{iso: "AU", code: "61", min: 9, max: 9},
	{iso: "NZ", code: "64", min: 8, max: 10},
	// Americas (non-NANP)
	{iso: "MX", code: "52", min: 10, max: 10},
	{iso: "BR", code: "55", min: 10, max: 11},
	{iso: "AR", code: "54", min: 10, max: 11},
	{iso: "CL", code: "56", min: 9, max: 9},
	{iso: "CO", code: "57", min: 10, max: 10},
}

var (
	byCode = map[string][]*country{}
	byISO  = map[string]*country{}
)

func init() {
	for i := range countries {
		c := &countries[i]
		byCode[c.code] = append(byCode[c.code], c)
		byISO[c.iso] = c
	}
}

// CountryCallingCode returns the calling code (digits, without "+") of an
// ISO 3166-1 alpha-2 country in the built-in table, so that configuration can
// reject allow-list entries ParsePhone would never match.
func CountryCallingCode(iso string) (code string, ok bool) {
	c, ok := byISO[strings.ToUpper(strings.TrimSpace(iso))]
	if !ok {
		return "", false
	}
	return c.code, true
}

// SupportedCountries lists the ISO codes of the built-in table, sorted.
func SupportedCountries() []string {
	out := make([]string, 0, len(byISO))
	for iso := range byISO {
		out = append(out, iso)
	}
	slices.Sort(out)
	return out
}

// lookupCallingCode finds the calling code at the start of digits.
func lookupCallingCode(digits string) (string, []*country) {
	for n := 1; n <= 3 && n <= len(digits); n++ {
		if cs, ok := byCode[digits[:n]]; ok {
			return digits[:n], cs
		}
	}
	return "", nil
}

// resolveCountry picks the country among those sharing a calling code.
func resolveCountry(code, nsn string, cs []*country) *country {
	switch code {
	case "1":
		area := nsn[:3]
		for _, c := range cs {
			if slices.Contains(c.areaCodes, area) {
				return c
			}
		}
		return byISO["US"]
	case "7":
		if nsn[0] == '6' || nsn[0] == '7' {
			return byISO["KZ"]
		}
		return byISO["RU"]
	}
	return cs[0]
}

// ParsePhone normalises user input to E.164 and checks its country.
//
// It accepts a leading "+" or "00" (international prefix) followed by the
// country calling code and the national number, with spaces, dashes, dots,
// slashes and parentheses anywhere and an optional "(0)" trunk-prefix marker
// ("+44 (0)7911 123456"). It refuses letters, national formats without a
// country code ("07911 123456"), a trunk 0 after the country code (except
// Italy, where it belongs to the number), and lengths outside the country's
// numbering plan.
//
// allowedCountries holds ISO 3166-1 alpha-2 codes (case-insensitive). When it
// is empty every country in the built-in table is accepted; numbers whose
// calling code is not in the table are always refused (see
// SupportedCountries). It returns the E.164 form ("+447911123456") and the
// ISO code of its country ("GB").
//
// Limits: the table checks lengths and the NANP structure, not whether a
// number is assigned or is a mobile number; the provider finds that out.
func ParsePhone(s string, allowedCountries []string) (e164, iso string, err error) {
	if len(s) > maxPhoneInput {
		return "", "", ErrInvalidPhone
	}
	s = strings.TrimSpace(s)
	var b strings.Builder
	plus := false
	trunkAt := -1 // number of digits before a "(0)" trunk-prefix marker
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "(0)") {
			if trunkAt >= 0 {
				return "", "", ErrInvalidPhone
			}
			trunkAt = b.Len()
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			plus = true
		case r == ' ' || r == '\t' || r == '-' || r == '.' || r == '/' || r == '(' || r == ')' ||
			r == '\u00a0' || r == '\u2009' || r == '\u202f' || r == '\u2011' || r == '\u2013':
		default:
			return "", "", ErrInvalidPhone
		}
		i += size
	}
	digits := b.String()
	switch {
	case plus:
	case strings.HasPrefix(digits, "00"):
		digits = digits[2:]
		trunkAt -= 2
	default:
		return "", "", fmt.Errorf("%w: start with + and the country code", ErrInvalidPhone)
	}
	if len(digits) < minE164Digits || len(digits) > maxE164Digits || digits[0] == '0' {
		return "", "", ErrInvalidPhone
	}
	code, cs := lookupCallingCode(digits)
	if cs == nil {
		return "", "", ErrPhoneCountry
	}
	nsn := digits[len(code):]
	if nsn == "" {
		return "", "", ErrInvalidPhone
	}
	if trunkAt >= 0 && trunkAt != len(code) {
		// "(0)" belongs right after the country code, nowhere else.
		return "", "", ErrInvalidPhone
	}
	if code == "1" {
		// NXX-NXX-XXXX, N = 2-9.
		if len(nsn) != 10 || nsn[0] < '2' || nsn[3] < '2' {
			return "", "", ErrInvalidPhone
		}
	}
	c := resolveCountry(code, nsn, cs)
	if nsn[0] == '0' && !c.leadingZero {
		return "", "", fmt.Errorf("%w: leave out the 0 after the country code", ErrInvalidPhone)
	}
	if len(nsn) < c.min || len(nsn) > c.max {
		return "", "", ErrInvalidPhone
	}
	if len(allowedCountries) > 0 && !slices.ContainsFunc(allowedCountries, func(a string) bool {
		return strings.EqualFold(strings.TrimSpace(a), c.iso)
	}) {
		return "", "", ErrPhoneCountry
	}
	return "+" + digits, c.iso, nil
}
