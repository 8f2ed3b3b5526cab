package gateway

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/latchkeyhq/latchkey/templates"
)

// A page missing from the templates fails the start (parsePages), not a
// request.
func TestMissingPageFailsAtStart(t *testing.T) {
	if _, err := parsePages(templates.FS); err != nil {
		t.Fatalf("the shipped pages: %v", err)
	}
	fsys := fstest.MapFS{"pages/layout.html": {Data: []byte(`{{define "layout"}}{{end}}`)}}
	for _, n := range pageNames[1:] {
		fsys["pages/"+n+".html"] = &fstest.MapFile{Data: []byte("x")}
	}
	_, err := parsePages(fsys)
	if err == nil || !strings.Contains(err.Error(), pageNames[0]) {
		t.Fatalf("without page %s: %v", pageNames[0], err)
	}
}

// Every page the server renders by name is one parsed at start-up.
func TestRenderedPagesAreParsedAtStart(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 3 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "render" {
				return true
			}
			lit, ok := call.Args[2].(*ast.BasicLit)
			if !ok {
				return true
			}
			name, _ := strconv.Unquote(lit.Value)
			seen++
			if !slices.Contains(pageNames, name) {
				t.Errorf("%s renders page %q, which is not parsed at start-up (pageNames)", f, name)
			}
			return true
		})
	}
	if seen < len(pageNames) {
		t.Fatalf("found %d render calls by name, want at least %d", seen, len(pageNames))
	}
}
