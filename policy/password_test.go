package policy_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/policy"
)

func codes(vs []policy.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Code)
	}
	return out
}

func TestCheck(t *testing.T) {
	t.Parallel()
	jo := policy.Context{Username: "jbloggs", DisplayName: "Jo Bloggs-Smith, Jr.", Email: "jo.bloggs@example.org"}
	def := policy.Rules{}
	tests := []struct {
		name  string
		rules policy.Rules
		pw    string
		ctx   policy.Context
		want  []string
	}{
		{"empty", def, "", jo, []string{"empty"}},
		{"empty only reports empty", policy.Rules{BannedWords: []string{""}}, "", jo, []string{"empty"}},
		{"ok", def, "correct horse battery staple", jo, nil},
		{"no composition rules", def, "aaaaaaaaaaaa", policy.Context{}, nil},
		{"too short", def, "short pass!", jo, []string{"too_short"}},
		{"exactly min", def, strings.Repeat("x", 12), policy.Context{}, nil},
		{"too long", def, strings.Repeat("x", 129), policy.Context{}, []string{"too_long"}},
		{"exactly max", def, strings.Repeat("x", 128), policy.Context{}, nil},
		{"custom lengths", policy.Rules{MinLength: 4, MaxLength: 6}, "abcdefg", policy.Context{}, []string{"too_long"}},
		{"custom lengths short", policy.Rules{MinLength: 4, MaxLength: 6}, "abc", policy.Context{}, []string{"too_short"}},
		// 12 code points once composed, 24 before: "é" as e + U+0301.
		{"NFC counts composed", policy.Rules{MaxLength: 12}, strings.Repeat("e\u0301", 12), policy.Context{}, nil},
		{"NFC short", def, strings.Repeat("e\u0301", 6), policy.Context{}, []string{"too_short"}},
		{"emoji counts as code points", policy.Rules{MinLength: 4}, "🔑🔑🔑🔑", policy.Context{}, nil},
		{"username", def, "my jbloggs password", policy.Context{Username: "jbloggs"}, []string{"contains_username"}},
		{"username also matches name part", def, "my jbloggs password", jo, []string{"contains_username", "contains_name"}},
		{"username case-insensitive", def, "my JBloggs password", policy.Context{Username: "jbloggs"}, []string{"contains_username"}},
		{"username fullwidth", def, "my ｊｂｌｏｇｇｓ password", policy.Context{Username: "jbloggs"}, []string{"contains_username"}},
		{"short username ignored", def, "al al al al al al", policy.Context{Username: "al"}, nil},
		{"UPN local part", def, "xx jdoe xx yy zz", policy.Context{Username: "jdoe@corp.example"}, []string{"contains_username"}},
		{"down-level logon name", def, "xx jdoe xx yy zz", policy.Context{Username: `CORP\jdoe`}, []string{"contains_username"}},
		{"email local part", def, "xx jo.bloggs xx yy", policy.Context{Email: "jo.bloggs@example.org"}, []string{"contains_username"}},
		{"name part", def, "horse smith battery", jo, []string{"contains_name"}},
		{"name part after dash", def, "HORSE BLOGGS BATTERY", policy.Context{DisplayName: "Jo Bloggs-Smith"}, []string{"contains_name"}},
		{"two-letter name part ignored", def, "jo jo jo jo jo jo", jo, nil},
		{"name with accents", def, "xx JOSÉ yy zz ww", policy.Context{DisplayName: "José Núñez"}, []string{"contains_name"}},
		{"name decomposed vs composed", def, "xx jose\u0301 yy zz ww", policy.Context{DisplayName: "José"}, []string{"contains_name"}},
		{"sharp s folds", def, "xx STRASSE yy zz", policy.Context{DisplayName: "Anna Straße"}, []string{"contains_name"}},
		{"banned", policy.Rules{BannedWords: []string{"latchkey"}}, "my LatchKey password", jo, []string{"banned_word"}},
		{"banned once", policy.Rules{BannedWords: []string{"pass", "word"}}, "my long password", jo, []string{"banned_word"}},
		{"banned empty entry ignored", policy.Rules{BannedWords: []string{"", "  "}}, "my long password", jo, nil},
		{"control char", def, "tab\there is long", jo, []string{"control_character"}},
		{"newline", def, "newline\nis long too", jo, []string{"control_character"}},
		{"NUL", def, "nul\x00is long enough", jo, []string{"control_character"}},
		{"DEL", def, "del\x7fis long enough", jo, []string{"control_character"}},
		{"invalid UTF-8", def, "abc\xffdefghijklmnop", jo, []string{"invalid_encoding"}},
		{"everything at once", policy.Rules{BannedWords: []string{"x"}}, "x\tbloggs jbloggs", jo,
			[]string{"control_character", "contains_username", "contains_name", "banned_word"}},
		{"short and personal", def, "jbloggs", jo, []string{"too_short", "contains_username", "contains_name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := codes(tt.rules.Check(tt.pw, tt.ctx))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Check() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckParams(t *testing.T) {
	t.Parallel()
	got := policy.Rules{MinLength: 15}.Check("short", policy.Context{})
	want := []policy.Violation{{Code: "too_short", Params: map[string]int{"min": 15}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	got = policy.Rules{}.Check(strings.Repeat("y", 200), policy.Context{})
	want = []policy.Violation{{Code: "too_long", Params: map[string]int{"max": 128}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rules policy.Rules
		want  []policy.Requirement
	}{
		{"defaults", policy.Rules{}, []policy.Requirement{
			{Code: "min_length", Params: map[string]int{"min": 12}},
			{Code: "max_length", Params: map[string]int{"max": 128}},
			{Code: "no_control_characters"},
			{Code: "no_username"},
			{Code: "no_name"},
		}},
		{"banned words counted, blanks skipped", policy.Rules{MinLength: 8, MaxLength: 64, BannedWords: []string{"acme", "", "sspr"}}, []policy.Requirement{
			{Code: "min_length", Params: map[string]int{"min": 8}},
			{Code: "max_length", Params: map[string]int{"max": 64}},
			{Code: "no_control_characters"},
			{Code: "no_username"},
			{Code: "no_name"},
			{Code: "no_banned_words", Params: map[string]int{"count": 2}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.rules.Describe(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Describe() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLength(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"": 0, "abc": 3, "e\u0301": 1, "한": 1, "\u1112\u1161\u11ab": 1, "🔑": 1} {
		if got := policy.Length(in); got != want {
			t.Errorf("Length(%q) = %d, want %d", in, got, want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("correct horse battery staple", "jbloggs", "Jo Bloggs", "jo@example.org", 12, 128)
	f.Add("", "", "", "", 0, 0)
	f.Add("e\u0301e\u0301\x00", `CORP\jo`, "José Núñez", "@", 3, 5)
	f.Add("\xff\xfe", "a@b@c", "..--", "x", -1, 1)
	f.Fuzz(func(t *testing.T, pw, user, name, email string, minLen, maxLen int) {
		r := policy.Rules{MinLength: minLen % 300, MaxLength: maxLen % 300, BannedWords: []string{"latchkey"}}
		c := policy.Context{Username: user, DisplayName: name, Email: email}
		got := r.Check(pw, c)
		if again := r.Check(pw, c); !reflect.DeepEqual(got, again) {
			t.Fatalf("not deterministic: %v then %v", got, again)
		}
		cs := codes(got)
		if pw == "" {
			if !slices.Equal(cs, []string{"empty"}) {
				t.Fatalf("empty password gave %v", cs)
			}
			return
		}
		if !utf8.ValidString(pw) {
			if !slices.Equal(cs, []string{"invalid_encoding"}) {
				t.Fatalf("invalid UTF-8 gave %v", cs)
			}
			return
		}
		seen := map[string]bool{}
		for _, v := range got {
			if seen[v.Code] {
				t.Fatalf("code %q reported twice: %v", v.Code, cs)
			}
			seen[v.Code] = true
			if v.Code == "empty" || v.Code == "invalid_encoding" {
				t.Fatalf("%q reported for a non-empty valid password", v.Code)
			}
		}
		n := policy.Length(pw)
		minL, maxL := r.MinLength, r.MaxLength
		if minL <= 0 {
			minL = policy.DefaultMinLength
		}
		if maxL <= 0 {
			maxL = policy.DefaultMaxLength
		}
		if seen["too_short"] != (n < minL) || seen["too_long"] != (n > maxL) {
			t.Fatalf("length %d, min %d, max %d: got %v", n, minL, maxL, cs)
		}
		for _, v := range got {
			for k := range v.Params {
				if k != "min" && k != "max" {
					t.Fatalf("unexpected param %q", k)
				}
			}
		}
	})
}
