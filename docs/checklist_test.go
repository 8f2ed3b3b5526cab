package docs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// checklistSections are the items of the security research behind
// security-checklist.md: section letter and number of items.
var checklistSections = []struct {
	letter string
	items  int
}{{"A", 6}, {"B", 14}, {"C", 8}, {"D", 8}, {"E", 7}, {"F", 12}, {"G", 7}, {"H", 5}, {"I", 4}, {"J", 4}, {"K", 4}}

// testPackages maps the package names used in the checklist to their
// directories.
var testPackages = map[string]string{
	"e2e": "../e2e", "gateway": "../gateway", "flow": "../flow", "directory": "../directory", "store": "../store", "config": "../config",
	"notify": "../notify", "policy": "../policy", "docs": ".", "latchkey": "../cmd/latchkey",
	"timingleak": "../internal/timingleak",
}

// TestSecurityChecklist: docs/security-checklist.md has one row per item,
// each with a known status, every test it names exists, and the counts it
// states are right.
func TestSecurityChecklist(t *testing.T) {
	b, err := os.ReadFile("security-checklist.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`^\| ([A-K]\d+) \| [^|]+ \| (tested|partly|not applicable) \| (.+) \|$`)
	ref := regexp.MustCompile("`([a-z0-9]+)\\.((?:Test|Fuzz)[A-Za-z0-9_]+)((?:/[^`]*)?)`")
	rows := map[string]string{}
	counts := map[string]int{}
	funcs := map[string]string{} // package -> its test sources
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			if regexp.MustCompile(`^\| [A-K]\d+ \|`).MatchString(line) {
				t.Errorf("malformed row: %s", line)
			}
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("%s twice", m[1])
		}
		rows[m[1]] = m[2]
		counts[m[2]]++
		refs := ref.FindAllStringSubmatch(m[3], -1)
		if (m[2] == "tested" || m[2] == "partly") && len(refs) == 0 {
			t.Errorf("%s is %s but names no test", m[1], m[2])
		}
		for _, r := range refs {
			dir, ok := testPackages[r[1]]
			if !ok {
				t.Errorf("%s: unknown package %q", m[1], r[1])
				continue
			}
			src, ok := funcs[r[1]]
			if !ok {
				files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
				sub, _ := filepath.Glob(filepath.Join(dir, "*", "*.go")) // storetest and the like hold suites
				for _, f := range append(files, sub...) {
					c, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					src += string(c)
				}
				funcs[r[1]] = src
			}
			if !strings.Contains(src, "func "+r[2]+"(") {
				t.Errorf("%s names %s.%s, which does not exist", m[1], r[1], r[2])
			}
			// subtests: each named level ("*" is any directory kind, "…"
			// any) must be a name the sources give to t.Run or a table
			sub := strings.TrimPrefix(r[3], "/")
			if sub == "" || strings.Contains(src, `"`+sub+`"`) {
				continue
			}
			for _, seg := range strings.Split(sub, "/") {
				if seg == "*" || seg == "…" || seg == "" {
					continue
				}
				if !strings.Contains(src, `"`+strings.ReplaceAll(seg, "_", " ")+`"`) && !strings.Contains(src, `"`+seg+`"`) {
					t.Errorf("%s names subtest %q of %s.%s, which does not exist", m[1], seg, r[1], r[2])
				}
			}
		}
	}
	for _, sec := range checklistSections {
		for i := 1; i <= sec.items; i++ {
			if _, ok := rows[fmt.Sprintf("%s%d", sec.letter, i)]; !ok {
				t.Errorf("%s%d is missing", sec.letter, i)
			}
		}
	}
	if len(rows) != 79 {
		t.Errorf("%d rows, want 79", len(rows))
	}
	flat := strings.Join(strings.Fields(string(b)), " ")
	for _, stated := range []string{
		fmt.Sprintf("79 items: %d tested, %d partly", counts["tested"], counts["partly"]),
		fmt.Sprintf(", %d not applicable", counts["not applicable"]),
	} {
		if !strings.Contains(flat, stated) {
			t.Errorf("the counts line does not say %q", stated)
		}
	}
}
