// Package docs_test keeps docs/openapi.yaml and docs/api.md in step with the
// gateway: the routes registered in gateway/routes.go, the error codes,
// statuses and messages of flow/errors.go, and what a live gateway
// (in-process, in-memory directory, in-memory SQLite) actually answers.
package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/gateway"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// ---------------------------------------------------------------- the spec

type spec struct {
	root map[string]any
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if v, _ := root["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi.yaml: openapi version %q, want 3.x", v)
	}
	return &spec{root: root}
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operations returns "METHOD /path" for every operation in the spec.
func (s *spec) operations(t *testing.T) map[string]map[string]any {
	t.Helper()
	paths, ok := s.root["paths"].(map[string]any)
	if !ok {
		t.Fatal("openapi.yaml: no paths")
	}
	out := map[string]map[string]any{}
	for p, item := range paths {
		m, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("openapi.yaml: path %s is not a mapping", p)
		}
		for k, op := range m {
			if !slices.Contains(httpMethods, k) {
				if k != "parameters" && k != "summary" && k != "description" {
					t.Errorf("openapi.yaml: path %s: unexpected key %q", p, k)
				}
				continue
			}
			out[strings.ToUpper(k)+" "+p] = op.(map[string]any)
		}
	}
	return out
}

// deref follows $ref pointers inside the document.
func (s *spec) deref(t *testing.T, node any) any {
	t.Helper()
	for range 10 {
		m, ok := node.(map[string]any)
		if !ok {
			return node
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return node
		}
		ptr, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			t.Fatalf("openapi.yaml: external $ref %q", ref)
		}
		var cur any = s.root
		for _, part := range strings.Split(ptr, "/") {
			cm, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("openapi.yaml: $ref %q does not resolve", ref)
			}
			cur, ok = cm[part]
			if !ok {
				t.Fatalf("openapi.yaml: $ref %q does not resolve", ref)
			}
		}
		node = cur
	}
	t.Fatal("openapi.yaml: $ref chain too long")
	return nil
}

// checkRefs walks the whole document and resolves every $ref.
func (s *spec) checkRefs(t *testing.T, node any) {
	switch n := node.(type) {
	case map[string]any:
		if _, ok := n["$ref"]; ok {
			s.deref(t, n)
		}
		for _, v := range n {
			s.checkRefs(t, v)
		}
	case []any:
		for _, v := range n {
			s.checkRefs(t, v)
		}
	}
}

// validate checks a decoded JSON value against the subset of JSON Schema
// that openapi.yaml uses.
func (s *spec) validate(t *testing.T, schema, v any, where string) []string {
	t.Helper()
	sc, ok := s.deref(t, schema).(map[string]any)
	if !ok {
		return []string{where + ": schema is not a mapping"}
	}
	var errs []string
	if c, ok := sc["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		errs = append(errs, fmt.Sprintf("%s: %v, want %v", where, v, c))
	}
	if enum, ok := sc["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", where, v, enum))
		}
	}
	var types []string
	switch ty := sc["type"].(type) {
	case string:
		types = []string{ty}
	case []any:
		for _, x := range ty {
			types = append(types, fmt.Sprint(x))
		}
	}
	if len(types) > 0 && !slices.Contains(types, jsonType(v)) &&
		!(jsonType(v) == "integer" && slices.Contains(types, "number")) {
		return append(errs, fmt.Sprintf("%s: %s, want %v", where, jsonType(v), types))
	}
	switch val := v.(type) {
	case map[string]any:
		props, _ := sc["properties"].(map[string]any)
		for _, r := range asStrings(sc["required"]) {
			if _, ok := val[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required %q missing", where, r))
			}
		}
		for k, fv := range val {
			ps, ok := props[k]
			if !ok {
				if ap, ok := sc["additionalProperties"].(bool); ok && !ap {
					errs = append(errs, fmt.Sprintf("%s: %q is not in the schema", where, k))
				}
				continue
			}
			errs = append(errs, s.validate(t, ps, fv, where+"."+k)...)
		}
	case []any:
		if mi, ok := sc["minItems"].(int); ok && len(val) < mi {
			errs = append(errs, fmt.Sprintf("%s: %d items, want at least %d", where, len(val), mi))
		}
		if items, ok := sc["items"]; ok {
			for i, e := range val {
				errs = append(errs, s.validate(t, items, e, fmt.Sprintf("%s[%d]", where, i))...)
			}
		}
	case float64:
		if mn, ok := sc["minimum"].(int); ok && val < float64(mn) {
			errs = append(errs, fmt.Sprintf("%s: %v below %d", where, val, mn))
		}
	}
	return errs
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func asStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// ---------------------------------------------------------------- routes.go

// registeredRoutes reads gateway/routes.go and evaluates the route
// registrations: string constants, concatenation, `for _, v := range
// []string{...}` loops, local string variables, Echo groups, and calls of
// the gateway's own methods (`s.adminAPIRoutes(api)`), whose bodies are
// evaluated in turn with their parameters bound to the groups passed.
// Anything else that registers a route makes the test fail, so that a new
// construct cannot slip past it.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../gateway/*.go")
	if err != nil {
		t.Fatal(err)
	}
	methods := map[string]*ast.FuncDecl{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil && fd.Body != nil {
				methods[fd.Name.Name] = fd
			}
		}
	}
	fn := methods["routes"]
	if fn == nil || fset.Position(fn.Pos()).Filename != "../gateway/routes.go" {
		t.Fatal("gateway/routes.go: no func routes")
	}
	ev := &routeEval{t: t, fset: fset, strs: map[string]string{}, groups: map[string]string{}, methods: methods, routes: new([]string)}
	ev.block(fn.Body.List)
	sort.Strings(*ev.routes)
	return *ev.routes
}

type routeEval struct {
	t       *testing.T
	fset    *token.FileSet
	strs    map[string]string // local string variables
	groups  map[string]string // local route receivers and their prefixes
	methods map[string]*ast.FuncDecl
	depth   int
	routes  *[]string
}

// call evaluates the body of the gateway's method fd, called with args:
// its parameters that receive a route receiver are bound to its prefix.
func (ev *routeEval) call(fd *ast.FuncDecl, args []ast.Expr) {
	if ev.depth > 5 {
		ev.fail(fd, "route methods nested too deep")
	}
	sub := &routeEval{t: ev.t, fset: ev.fset, strs: map[string]string{}, groups: map[string]string{}, methods: ev.methods,
		depth: ev.depth + 1, routes: ev.routes}
	i := 0
	for _, field := range fd.Type.Params.List {
		for _, name := range field.Names {
			if i < len(args) {
				if p, ok := ev.receiver(args[i]); ok {
					sub.groups[name.Name] = p
				}
			}
			i++
		}
	}
	sub.block(fd.Body.List)
}

var echoVerbs = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true, "CONNECT": true, "TRACE": true}

func (ev *routeEval) fail(n ast.Node, format string, a ...any) {
	ev.t.Helper()
	pos := ev.fset.Position(n.Pos())
	ev.t.Fatalf("%s:%d: %s (extend docs/docs_test.go)", strings.TrimPrefix(pos.Filename, "../"), pos.Line, fmt.Sprintf(format, a...))
}

func (ev *routeEval) str(e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind == token.STRING {
			s, err := strconv.Unquote(x.Value)
			return s, err == nil
		}
	case *ast.Ident:
		s, ok := ev.strs[x.Name]
		return s, ok
	case *ast.ParenExpr:
		return ev.str(x.X)
	case *ast.BinaryExpr:
		if x.Op == token.ADD {
			a, ok1 := ev.str(x.X)
			b, ok2 := ev.str(x.Y)
			return a + b, ok1 && ok2
		}
	}
	return "", false
}

// receiver reports the prefix of a route receiver: s.e, or a local bound to
// it or to one of its groups.
func (ev *routeEval) receiver(e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.Ident:
		p, ok := ev.groups[x.Name]
		return p, ok
	case *ast.SelectorExpr:
		if id, ok := x.X.(*ast.Ident); ok && id.Name == "s" && x.Sel.Name == "e" {
			return "", true
		}
	}
	return "", false
}

func (ev *routeEval) block(stmts []ast.Stmt) {
	for _, st := range stmts {
		ev.stmt(st)
	}
}

func (ev *routeEval) stmt(st ast.Stmt) {
	switch x := st.(type) {
	case *ast.AssignStmt:
		if len(x.Lhs) != 1 || len(x.Rhs) != 1 {
			ev.scan(x)
			return
		}
		name, ok := x.Lhs[0].(*ast.Ident)
		if !ok {
			ev.scan(x)
			return
		}
		if p, ok := ev.receiver(x.Rhs[0]); ok {
			ev.groups[name.Name] = p
			return
		}
		if call, ok := x.Rhs[0].(*ast.CallExpr); ok {
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Group" {
				if p, ok := ev.receiver(sel.X); ok {
					if len(call.Args) < 1 {
						ev.fail(call, "Group without a prefix")
					}
					g, ok := ev.str(call.Args[0])
					if !ok {
						ev.fail(call, "group prefix is not a constant string")
					}
					ev.groups[name.Name] = p + g
					return
				}
			}
		}
		if s, ok := ev.str(x.Rhs[0]); ok {
			ev.strs[name.Name] = s
			return
		}
		ev.scan(x)
	case *ast.IfStmt:
		// a route registered under a condition (the demo's pages) is still
		// a route: the body counts; an init statement or an else does not
		// occur and is refused
		if x.Init != nil || x.Else != nil {
			ev.scan(x)
			return
		}
		ev.scan(x.Cond)
		ev.block(x.Body.List)
	case *ast.RangeStmt:
		lit, ok := x.X.(*ast.CompositeLit)
		val, ok2 := x.Value.(*ast.Ident)
		if !ok || !ok2 {
			ev.scan(x)
			return
		}
		for _, el := range lit.Elts {
			s, ok := ev.str(el)
			if !ok {
				ev.fail(el, "range over a non-constant string")
			}
			ev.strs[val.Name] = s
			ev.block(x.Body.List)
		}
		delete(ev.strs, val.Name)
	case *ast.ExprStmt:
		call, ok := x.X.(*ast.CallExpr)
		if !ok {
			ev.scan(x)
			return
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			ev.scan(x)
			return
		}
		prefix, ok := ev.receiver(sel.X)
		if !ok {
			// s.someRoutes(api): a method of the gateway that registers
			// routes of its own
			if id, isS := sel.X.(*ast.Ident); isS && id.Name == "s" && ev.methods[sel.Sel.Name] != nil {
				ev.call(ev.methods[sel.Sel.Name], call.Args)
				return
			}
			ev.scan(x)
			return
		}
		verb := sel.Sel.Name
		switch {
		case echoVerbs[verb]:
			p, ok := ev.str(call.Args[0])
			if !ok {
				ev.fail(call, "route path is not a constant string")
			}
			*ev.routes = append(*ev.routes, verb+" "+openAPIPath(prefix+p))
		case verb == "Use" || verb == "Pre":
		default:
			ev.fail(call, "route registration %s is not understood", verb)
		}
	default:
		ev.scan(st)
	}
}

// scan fails on any route registration hidden in a statement the evaluator
// does not follow.
func (ev *routeEval) scan(n ast.Node) {
	ast.Inspect(n, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
			if _, ok := ev.receiver(sel.X); ok {
				ev.fail(call, "route registration inside a statement the test does not follow")
			}
		}
		return true
	})
}

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

func openAPIPath(p string) string { return echoParam.ReplaceAllString(p, "{$1}") }

// jsonSurface says which routes belong in openapi.yaml: the API and the
// probes (the web pages and /static are HTML).
func jsonSurface(route string) bool {
	_, p, _ := strings.Cut(route, " ")
	return strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/healthz") || p == "/readyz" || p == "/metrics"
}

func TestSpecMatchesRoutes(t *testing.T) {
	s := loadSpec(t)
	s.checkRefs(t, s.root)
	ops := s.operations(t)
	var registered []string
	for _, r := range registeredRoutes(t) {
		if jsonSurface(r) {
			registered = append(registered, r)
		}
	}
	if len(registered) < 10 {
		t.Fatalf("found only %d JSON routes in gateway/routes.go: %v", len(registered), registered)
	}
	for _, r := range registered {
		if _, ok := ops[r]; !ok {
			t.Errorf("%s is registered in gateway/routes.go but not in docs/openapi.yaml", r)
		}
	}
	for op := range ops {
		if !slices.Contains(registered, op) {
			t.Errorf("%s is in docs/openapi.yaml but not registered in gateway/routes.go", op)
		}
	}
	// Every operation names its responses, each with a status or default.
	ids := map[string]string{}
	for name, op := range ops {
		if id, _ := op["operationId"].(string); id == "" {
			t.Errorf("%s: no operationId", name)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("%s and %s share operationId %s", name, prev, id)
		} else {
			ids[id] = name
		}
		rs, _ := op["responses"].(map[string]any)
		if len(rs) == 0 {
			t.Errorf("%s: no responses", name)
		}
	}
	t.Logf("%d JSON routes, %d operations", len(registered), len(ops))
}

// TestAPIMarkdownListsRoutes: every JSON route appears in docs/api.md.
func TestAPIMarkdownListsRoutes(t *testing.T) {
	md, err := os.ReadFile("api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range registeredRoutes(t) {
		if jsonSurface(r) && !bytes.Contains(md, []byte("`"+r+"`")) {
			t.Errorf("docs/api.md does not mention `%s`", r)
		}
	}
}

// ---------------------------------------------------------------- errors.go

var httpStatusNames = map[string]int{}

func init() {
	for code := 100; code < 600; code++ {
		if txt := http.StatusText(code); txt != "" {
			// http.StatusText("Request Entity Too Large") is the constant
			// StatusRequestEntityTooLarge; punctuation and spaces go.
			name := "Status" + strings.NewReplacer(" ", "", "-", "", "'", "").Replace(txt)
			httpStatusNames[name] = code
		}
	}
	// Names that differ from their status text.
	httpStatusNames["StatusTeapot"] = http.StatusTeapot
	httpStatusNames["StatusRequestURITooLong"] = http.StatusRequestURITooLong
	httpStatusNames["StatusHTTPVersionNotSupported"] = http.StatusHTTPVersionNotSupported
}

type problemCode struct {
	code, message string
	status        int
}

// problemCodes reads the codes, messages and statuses of flow/errors.go.
func problemCodes(t *testing.T) []problemCode {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../flow/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	var order []string
	maps := map[string]map[string]ast.Expr{}
	ast.Inspect(f, func(n ast.Node) bool {
		gd, ok := n.(*ast.GenDecl)
		if !ok {
			return true
		}
		for _, sp := range gd.Specs {
			vs, ok := sp.(*ast.ValueSpec)
			if !ok {
				continue
			}
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				switch v := vs.Values[i].(type) {
				case *ast.BasicLit:
					if gd.Tok == token.CONST && strings.HasPrefix(name.Name, "Code") && v.Kind == token.STRING {
						s, _ := strconv.Unquote(v.Value)
						consts[name.Name] = s
						order = append(order, name.Name)
					}
				case *ast.CompositeLit:
					m := map[string]ast.Expr{}
					for _, el := range v.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if id, ok := kv.Key.(*ast.Ident); ok {
								m[id.Name] = kv.Value
							}
						}
					}
					maps[name.Name] = m
				}
			}
		}
		return true
	})
	if len(order) < 10 || maps["messages"] == nil || maps["statuses"] == nil {
		t.Fatalf("flow/errors.go: found %d codes, messages %v, statuses %v", len(order), maps["messages"] != nil, maps["statuses"] != nil)
	}
	var out []problemCode
	for _, c := range order {
		pc := problemCode{code: consts[c]}
		if lit, ok := maps["messages"][c].(*ast.BasicLit); ok {
			pc.message, _ = strconv.Unquote(lit.Value)
		} else {
			t.Errorf("flow/errors.go: %s has no constant message", c)
		}
		if sel, ok := maps["statuses"][c].(*ast.SelectorExpr); ok {
			pc.status = httpStatusNames[sel.Sel.Name]
		}
		if pc.status == 0 {
			t.Errorf("flow/errors.go: the status of %s is not an http.Status constant the test knows", c)
		}
		out = append(out, pc)
	}
	return out
}

// TestErrorCodesDocumented: the ErrorCode enum of openapi.yaml and the table
// of api.md list exactly the codes of flow/errors.go, each with its
// status and its message.
func TestErrorCodesDocumented(t *testing.T) {
	codes := problemCodes(t)
	s := loadSpec(t)
	enum := asStrings(s.deref(t, map[string]any{"$ref": "#/components/schemas/ErrorCode"}).(map[string]any)["enum"])
	var want []string
	for _, c := range codes {
		want = append(want, c.code)
	}
	sort.Strings(want)
	sort.Strings(enum)
	if !slices.Equal(want, enum) {
		t.Errorf("openapi.yaml ErrorCode enum = %v\nflow/errors.go codes  = %v", enum, want)
	}
	md, err := os.ReadFile("api.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]{3}) \\| (.*) \\|$").FindAllStringSubmatch(string(md), -1)
	table := map[string][2]string{}
	for _, r := range rows {
		table[r[1]] = [2]string{r[2], r[3]}
	}
	for _, c := range codes {
		row, ok := table[c.code]
		if !ok {
			t.Errorf("docs/api.md: no row for error code %s", c.code)
			continue
		}
		if row[0] != strconv.Itoa(c.status) {
			t.Errorf("docs/api.md: %s has status %s, flow/errors.go says %d", c.code, row[0], c.status)
		}
		if row[1] != c.message {
			t.Errorf("docs/api.md: %s message %q, flow/errors.go says %q", c.code, row[1], c.message)
		}
		delete(table, c.code)
	}
	for code := range table {
		t.Errorf("docs/api.md documents error code %s, which flow/errors.go does not have", code)
	}
}

// ---------------------------------------------------------------- a live gateway

// outbox collects the mails and text messages the gateway sends.
type outbox struct {
	mu    sync.Mutex
	mails []notify.Email
	sms   []notify.SMS
}

func (o *outbox) SendSMS(_ context.Context, m notify.SMS) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sms = append(o.sms, m)
	return nil
}

var smsCodeRE = regexp.MustCompile(`\b([0-9]{6,8})\b`)

// smsCode waits for the n-th code text (counting from 1) to the number to.
func (o *outbox) smsCode(t *testing.T, to string, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		var codes []string
		for _, m := range o.sms {
			if c := smsCodeRE.FindStringSubmatch(m.Body); m.To == to && strings.Contains(m.Body, "is your") && c != nil {
				codes = append(codes, c[1])
			}
		}
		o.mu.Unlock()
		if len(codes) >= n {
			return codes[n-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no code text #%d to %s", n, to)
	return ""
}

func (o *outbox) SendEmail(_ context.Context, e notify.Email) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mails = append(o.mails, e)
	return nil
}

var codeRE = regexp.MustCompile(`(?m)^\s+([0-9]{6,8})\s*$`)

// code waits for the n-th code mail (counting from 1) to addr.
func (o *outbox) code(t *testing.T, addr string, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		var codes []string
		for _, m := range o.mails {
			if m.To == addr && strings.Contains(m.Subject, "verification code") {
				if c := codeRE.FindStringSubmatch(m.Text); c != nil {
					codes = append(codes, c[1])
				}
			}
		}
		o.mu.Unlock()
		if len(codes) >= n {
			return codes[n-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no code mail #%d to %s", n, addr)
	return ""
}

type live struct {
	t    *testing.T
	spec *spec
	ops  map[string]map[string]any
	h    http.Handler
	dir  *dirtest.Memory
	st   store.Store
	mail *outbox
}

const (
	carolPassword = "Carol-Pass1!"
	newPassword   = "Golden-Harbor-Kite-5"
	adaPassword   = "Ada-Admin-Pass1!"
	liveAdmins    = "cn=admins,ou=groups,dc=example,dc=org"
)

func newLive(t *testing.T) *live {
	t.Helper()
	ctx := context.Background()
	key := []byte("k3y-for-docs-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0")
	st, err := store.OpenSQLite(ctx, "file::memory:", key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// AD-like resets: the lockout clears only when the reset asks
	// (UnlockOnReset), so TestWorkedExample can tell
	dir := dirtest.NewMemory(dirtest.WithFlavor(directory.ActiveDirectory),
		dirtest.WithPolicy(dirtest.MemoryPolicy{Source: "ppolicy:cn=default,ou=policies,dc=example,dc=org", MinLength: 8, HistoryLength: 5}))
	dir.AddUser(directory.User{DN: "uid=carol,ou=people,dc=example,dc=org", ID: "11111111-2222-3333-4444-555555555555",
		Username: "carol", DisplayName: "Carol Example"}, carolPassword)
	// ada is the admin console's admin (cn=admins); the console keeps its
	// settings in the store, so that every admin call can be checked
	dir.AddUser(directory.User{DN: "uid=ada,ou=people,dc=example,dc=org", ID: "66666666-7777-8888-9999-000000000000",
		Username: "ada", DisplayName: "Ada Admin"}, adaPassword, liveAdmins)
	mail := &outbox{}
	pu, _ := url.Parse("https://sspr.example.org")
	cfg := config.Default()
	cfg.Server.PublicURL = pu.String()
	cfg.Email.Enabled, cfg.SMS.Enabled = true, true
	cfg.Policy.Scope, cfg.Policy.MethodsRequired = policy.ScopeAll, 1
	cfg.Policy.Methods = []string{store.MethodEmail, store.MethodSMS, policy.MethodTOTP, policy.MethodWebAuthn, policy.MethodQuestions}
	cfg.Policy.Questions.List = liveQuestions
	cfg.Admin.Groups = []string{liveAdmins}
	// every method kind is on, so that every kind's answers are checked
	// against the spec (TestMethodKindsLive)
	svc, err := flow.NewService(flow.Options{
		PublicURL: pu,
		SecretKey: key,
		Eligibility: policy.Eligibility{Scope: policy.ScopeAll, MethodsRequired: 1,
			Methods: []string{store.MethodEmail, store.MethodSMS, policy.MethodTOTP, policy.MethodWebAuthn, policy.MethodQuestions}},
		Password:         policy.Rules{MinLength: 12},
		UnlockOnReset:    true,
		AllowedCountries: []string{"GB"},
		Questions:        flow.QuestionOptions{List: liveQuestions, Required: 3, Ask: 2},
		Limits:           flow.Limits{CodeFailuresPerAccount: 20},
		Admin:            flow.AdminOptions{Groups: cfg.Admin.Groups, Settings: cfg.Admin.Settings, Config: cfg},
	}, flow.Deps{Directory: dir, Store: st, Mailer: mail, SMS: mail})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv, err := gateway.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	s := loadSpec(t)
	return &live{t: t, spec: s, ops: s.operations(t), h: srv.Handler(), dir: dir, st: st, mail: mail}
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	body   any
}

func (a answer) obj() map[string]any {
	m, _ := a.body.(map[string]any)
	return m
}

func (a answer) errCode() string {
	e, _ := a.obj()["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// do sends one request. body is marshalled to JSON unless it is a string
// or []byte, which are sent as they are; ctype "" means application/json.
func (l *live) do(method, path, token string, body any, ctype string) answer {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		case []byte:
			rd = bytes.NewReader(b)
		default:
			data, err := json.Marshal(b)
			if err != nil {
				l.t.Fatal(err)
			}
			rd = bytes.NewReader(data)
		}
		if ctype == "" {
			ctype = "application/json"
		}
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = "192.0.2.10:40000"
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	l.h.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if len(a.raw) > 0 && strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(a.raw, &a.body); err != nil {
			l.t.Errorf("%s %s: answer is not JSON: %q", method, path, a.raw)
		}
	}
	l.check(method, path, a)
	return a
}

// opFor finds the spec operation a request path belongs to.
func (l *live) opFor(method, path string) (string, map[string]any) {
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	for name, op := range l.ops {
		m, p, _ := strings.Cut(name, " ")
		if m != method {
			continue
		}
		ps := strings.Split(p, "/")
		if len(ps) != len(segs) {
			continue
		}
		match := true
		for i := range ps {
			if ps[i] != segs[i] && !(strings.HasPrefix(ps[i], "{") && strings.HasSuffix(ps[i], "}")) {
				match = false
			}
		}
		if match {
			return name, op
		}
	}
	return "", nil
}

// check compares an answer with the spec: the status is documented for the
// operation, the body matches its schema, errors are the envelope with the
// request id, and every answer has the documented headers.
func (l *live) check(method, path string, a answer) {
	l.t.Helper()
	where := method + " " + path
	rid := a.header.Get("X-Request-Id")
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(rid) {
		l.t.Errorf("%s: X-Request-Id %q", where, rid)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		l.t.Errorf("%s: Cache-Control %q", where, cc)
	}
	if a.status >= 400 && a.errCode() != "" {
		if errs := l.spec.validate(l.t, map[string]any{"$ref": "#/components/schemas/Error"}, a.body, where); len(errs) > 0 {
			l.t.Errorf("%s: error envelope: %v (%s)", where, errs, a.raw)
		}
		if e, _ := a.obj()["error"].(map[string]any); e["request_id"] != rid {
			l.t.Errorf("%s: request_id %v, X-Request-Id %s", where, e["request_id"], rid)
		}
	}
	name, op := l.opFor(method, path)
	if op == nil {
		if a.status != http.StatusNotFound && a.status != http.StatusMethodNotAllowed {
			l.t.Errorf("%s: not in the spec, yet answered %d", where, a.status)
		}
		return
	}
	if a.errCode() == "not_found" || a.errCode() == "method_not_allowed" {
		l.t.Errorf("%s is in the spec as %s but the gateway does not route it: %d %s", where, name, a.status, a.raw)
		return
	}
	rs, _ := op["responses"].(map[string]any)
	resp, ok := rs[strconv.Itoa(a.status)]
	if !ok {
		l.t.Errorf("%s: status %d is not documented for %s (%s)", where, a.status, name, a.raw)
		return
	}
	r, _ := l.spec.deref(l.t, resp).(map[string]any)
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		if len(a.raw) > 0 {
			l.t.Errorf("%s: %d documented without a body, got %s", where, a.status, a.raw)
		}
		return
	}
	// x-empty-body: the answer may also have no body (and no
	// Content-Type), as a send to anything but a passkey does
	if empty, _ := r["x-empty-body"].(bool); empty && len(a.raw) == 0 && a.header.Get("Content-Type") == "" {
		return
	}
	ct, _, _ := strings.Cut(a.header.Get("Content-Type"), ";")
	mt, ok := content[strings.TrimSpace(ct)].(map[string]any)
	if !ok {
		l.t.Errorf("%s: %d answered Content-Type %q; the spec has %v", where, a.status, a.header.Get("Content-Type"), keys(content))
		return
	}
	if ct != "application/json" {
		return
	}
	if errs := l.spec.validate(l.t, mt["schema"], a.body, where); len(errs) > 0 {
		l.t.Errorf("%s: %d body does not match the spec: %v (%s)", where, a.status, errs, a.raw)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestEveryOperationIsRouted sends each operation of the spec a minimal
// request: every one must reach a handler and answer a documented status.
func TestEveryOperationIsRouted(t *testing.T) {
	l := newLive(t)
	names := make([]string, 0, len(l.ops))
	for n := range l.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		method, p, _ := strings.Cut(n, " ")
		p = strings.ReplaceAll(p, "{id}", "0123456789abcdef012345")
		var body any
		if _, ok := l.ops[n]["requestBody"]; ok {
			body = "{}"
		}
		a := l.do(method, p, "", body, "")
		t.Logf("%-40s %d %s", n, a.status, a.errCode())
	}
	// Unknown paths and methods under /api answer the envelope.
	if a := l.do("GET", "/api/v1/nothing-here", "", nil, ""); a.status != 404 || a.errCode() != "not_found" {
		t.Errorf("unknown API path: %d %s", a.status, a.raw)
	}
	if a := l.do("GET", "/api/v1/reset", "", nil, ""); a.status != 405 || a.errCode() != "method_not_allowed" {
		t.Errorf("wrong method: %d %s", a.status, a.raw)
	}
}

// TestStrictBodies: what docs/api.md says about request bodies.
func TestStrictBodies(t *testing.T) {
	l := newLive(t)
	const p = "/api/v1/reset"
	cases := []struct {
		name, body, ctype string
		status            int
		code              string
	}{
		{"good", `{"username":"nobody"}`, "", 200, ""},
		{"charset parameter", `{"username":"nobody"}`, "application/json; charset=utf-8", 200, ""},
		{"form post", `username=nobody`, "application/x-www-form-urlencoded", 400, "invalid_request"},
		{"text", `{"username":"nobody"}`, "text/plain", 400, "invalid_request"},
		{"unknown field", `{"username":"nobody","admin":true}`, "", 400, "invalid_request"},
		{"repeated key", `{"username":"nobody","username":"carol"}`, "", 400, "invalid_request"},
		{"repeated key, other case", `{"username":"nobody","Username":"carol"}`, "", 400, "invalid_request"},
		{"trailing object", `{"username":"nobody"} {}`, "", 400, "invalid_request"},
		{"trailing garbage", `{"username":"nobody"}x`, "", 400, "invalid_request"},
		{"array", `[{"username":"nobody"}]`, "", 400, "invalid_request"},
		{"empty username", `{"username":"  "}`, "", 400, "invalid_request"},
		{"long username", `{"username":"` + strings.Repeat("a", 257) + `"}`, "", 400, "invalid_request"},
		{"64 KiB exactly", `{"username":"nobody"}` + strings.Repeat(" ", 65536-len(`{"username":"nobody"}`)), "", 200, ""},
		{"over 64 KiB", `{"username":"nobody"}` + strings.Repeat(" ", 65537-len(`{"username":"nobody"}`)), "", 413, "too_large"},
	}
	for _, c := range cases {
		a := l.do("POST", p, "", c.body, c.ctype)
		if a.status != c.status || a.errCode() != c.code {
			t.Errorf("%s: %d %q, want %d %q (%s)", c.name, a.status, a.errCode(), c.status, c.code, a.raw)
		}
	}
}

// TestSameAnswerForEveryUsername: unknown and real users get one shape.
func TestSameAnswerForEveryUsername(t *testing.T) {
	l := newLive(t)
	l.register(t)
	for _, kind := range []string{"reset", "unlock"} {
		real := l.do("POST", "/api/v1/"+kind, "", map[string]string{"username": "carol"}, "")
		fake := l.do("POST", "/api/v1/"+kind, "", map[string]string{"username": "nobody"}, "")
		again := l.do("POST", "/api/v1/"+kind, "", map[string]string{"username": "nobody"}, "")
		if real.status != 200 || fake.status != 200 {
			t.Fatalf("%s: %d / %d", kind, real.status, fake.status)
		}
		if shape(real.body) != shape(fake.body) {
			t.Errorf("%s: real %s, unknown %s", kind, shape(real.body), shape(fake.body))
		}
		if fmt.Sprint(fake.obj()["methods"]) != fmt.Sprint(again.obj()["methods"]) {
			t.Errorf("%s: an unknown name's methods change between calls: %v / %v", kind, fake.obj()["methods"], again.obj()["methods"])
		}
		flow := fake.obj()["flow"].(string)
		m := fake.obj()["methods"].([]any)[0].(map[string]any)["id"].(string)
		if a := l.do("POST", "/api/v1/"+kind+"/send", "", map[string]string{"flow": flow, "method": m}, ""); a.status != 202 {
			t.Errorf("%s send for an unknown name: %d", kind, a.status)
		}
		if a := l.do("POST", "/api/v1/"+kind+"/verify", "", map[string]string{"flow": flow, "method": m, "code": "123456"}, ""); a.errCode() != "invalid_code" {
			t.Errorf("%s verify for an unknown name: %d %s", kind, a.status, a.raw)
		}
	}
}

// shape is a value's JSON structure without its content.
func shape(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString("{")
		for _, k := range keys {
			b.WriteString(k + ":" + shape(x[k]) + ",")
		}
		return b.String() + "}"
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		return "[" + shape(x[0]) + "]"
	}
	return jsonType(v)
}

// register signs carol in and registers and verifies an e-mail method,
// returning the session token.
func (l *live) register(t *testing.T) string {
	t.Helper()
	a := l.do("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": carolPassword}, "")
	if a.status != 200 {
		t.Fatalf("sign in: %d %s", a.status, a.raw)
	}
	tok := a.obj()["token"].(string)
	a = l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "email", "address": "carol@example.net"}, "")
	if a.status != 201 {
		t.Fatalf("add method: %d %s", a.status, a.raw)
	}
	id := a.obj()["id"].(string)
	a = l.do("POST", "/api/v1/methods/"+id+"/verify", tok, map[string]string{"code": l.mail.code(t, "carol@example.net", 1)}, "")
	if a.status != 200 || a.obj()["verified"] != true {
		t.Fatalf("verify method: %d %s", a.status, a.raw)
	}
	return tok
}

// TestWorkedExample runs the register → reset example of docs/api.md step
// by step, and a few of the refusals it mentions.
func TestWorkedExample(t *testing.T) {
	l := newLive(t)

	// 1-3: sign in, add an address, verify it with the mailed code.
	a := l.do("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": "wrong"}, "")
	if a.status != 401 || a.errCode() != "sign_in_failed" {
		t.Errorf("wrong password: %d %s", a.status, a.raw)
	}
	if a := l.do("GET", "/api/v1/methods", "", nil, ""); a.status != 401 || a.errCode() != "session_expired" {
		t.Errorf("no token: %d %s", a.status, a.raw)
	}
	tok := l.register(t)
	a = l.do("GET", "/api/v1/methods", tok, nil, "")
	ms, _ := a.body.([]any)
	if a.status != 200 || len(ms) != 1 {
		t.Fatalf("list methods: %d %s", a.status, a.raw)
	}
	id := ms[0].(map[string]any)["id"].(string)
	if hint := ms[0].(map[string]any)["hint"]; hint != "c•••@e•••.net" {
		t.Errorf("hint %v", hint)
	}
	if a := l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "email", "address": "carol@example.net"}, ""); a.errCode() != "method_exists" {
		t.Errorf("the same address again: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/methods", tok, map[string]string{"type": "fax", "address": "+447700900123"}, ""); a.errCode() != "method_unavailable" {
		t.Errorf("a method type nobody offers: %d %s", a.status, a.raw)
	}
	// 4: sign out.
	if a := l.do("DELETE", "/api/v1/session", tok, nil, ""); a.status != 204 {
		t.Errorf("sign out: %d", a.status)
	}
	if a := l.do("GET", "/api/v1/methods", tok, nil, ""); a.errCode() != "session_expired" {
		t.Errorf("after sign-out: %d %s", a.status, a.raw)
	}
	tok = l.do("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": carolPassword}, "").obj()["token"].(string)
	// carol then locks herself out at the directory
	l.dir.Edit("carol", func(u *directory.User, _ *string) { u.Status.Locked = true })

	// 5: start a reset.
	a = l.do("POST", "/api/v1/reset", "", map[string]string{"username": "carol"}, "")
	if a.status != 200 {
		t.Fatalf("reset: %d %s", a.status, a.raw)
	}
	flow := a.obj()["flow"].(string)
	offered := a.obj()["methods"].([]any)
	if len(offered) != 1 || offered[0].(map[string]any)["id"] != id || a.obj()["required"] != 1.0 {
		t.Fatalf("reset offers %s", a.raw)
	}
	if a := l.do("POST", "/api/v1/reset/policy", "", map[string]string{"flow": flow}, ""); a.errCode() != "not_verified" {
		t.Errorf("policy before verifying: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/reset/complete", "", map[string]string{"flow": flow, "password": newPassword}, ""); a.errCode() != "not_verified" {
		t.Errorf("complete before verifying: %d %s", a.status, a.raw)
	}
	// 6: send a code.
	if a := l.do("POST", "/api/v1/reset/send", "", map[string]string{"flow": flow, "method": id}, ""); a.status != 202 || len(a.raw) != 0 {
		t.Fatalf("send: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/unlock/send", "", map[string]string{"flow": flow, "method": id}, ""); a.errCode() != "flow_expired" {
		t.Errorf("a reset flow used for unlock: %d %s", a.status, a.raw)
	}
	// 7: verify it (a wrong code first).
	code := l.mail.code(t, "carol@example.net", 2)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if a := l.do("POST", "/api/v1/reset/verify", "", map[string]string{"flow": flow, "method": id, "code": wrong}, ""); a.errCode() != "invalid_code" {
		t.Errorf("wrong code: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/reset/verify", "", map[string]string{"flow": flow, "method": id, "code": code}, "")
	if a.status != 200 || a.obj()["remaining"] != 0.0 || fmt.Sprint(a.obj()["verified"]) != fmt.Sprint([]any{id}) {
		t.Fatalf("verify: %d %s", a.status, a.raw)
	}
	// the flow has a new id; the old one is dead
	old := flow
	if flow, _ = a.obj()["flow"].(string); flow == "" || flow == old {
		t.Fatalf("verify did not rename the flow: %s", a.raw)
	}
	if a := l.do("POST", "/api/v1/reset/policy", "", map[string]string{"flow": old}, ""); a.errCode() != "flow_expired" {
		t.Errorf("policy with the id from before the proof: %d %s", a.status, a.raw)
	}
	// 8: the rules.
	a = l.do("POST", "/api/v1/reset/policy", "", map[string]string{"flow": flow}, "")
	if a.status != 200 {
		t.Fatalf("policy: %d %s", a.status, a.raw)
	}
	// 9: a refused password, then a good one.
	a = l.do("POST", "/api/v1/reset/complete", "", map[string]string{"flow": flow, "password": "short"}, "")
	if a.status != 422 || a.errCode() != "password_rejected" {
		t.Fatalf("weak password: %d %s", a.status, a.raw)
	}
	top, _ := a.obj()["errors"].([]any)
	inner, _ := a.obj()["error"].(map[string]any)["errors"].([]any)
	if len(top) == 0 || fmt.Sprint(top) != fmt.Sprint(inner) {
		t.Errorf("password_rejected: errors %v, error.errors %v", top, inner)
	}
	a = l.do("POST", "/api/v1/reset/complete", "", map[string]string{"flow": flow, "password": newPassword}, "")
	if a.status != 200 || a.obj()["status"] != "password_reset" {
		t.Fatalf("complete: %d %s", a.status, a.raw)
	}
	if got := l.dir.Password("carol"); got != newPassword {
		t.Errorf("the directory has %q", got)
	}
	if u, err := l.dir.Lookup(context.Background(), "carol"); err != nil || u.Status.Locked {
		t.Error("the reset did not clear the lockout")
	}
	// The flow and carol's sessions are gone.
	if a := l.do("POST", "/api/v1/reset/complete", "", map[string]string{"flow": flow, "password": newPassword}, ""); a.errCode() != "flow_expired" {
		t.Errorf("complete twice: %d %s", a.status, a.raw)
	}
	if a := l.do("GET", "/api/v1/methods", tok, nil, ""); a.errCode() != "session_expired" {
		t.Errorf("a session survived the reset: %d %s", a.status, a.raw)
	}

	// Change, then unlock, for their documented answers.
	if a := l.do("POST", "/api/v1/change", "", map[string]string{"username": "carol", "old_password": "wrong", "new_password": "Another-Long-Phrase-7"}, ""); a.errCode() != "sign_in_failed" {
		t.Errorf("change with a wrong old password: %d %s", a.status, a.raw)
	}
	if a := l.do("POST", "/api/v1/change", "", map[string]string{"username": "carol", "old_password": newPassword, "new_password": "Another-Long-Phrase-7"}, ""); a.status != 200 || a.obj()["status"] != "password_changed" {
		t.Errorf("change: %d %s", a.status, a.raw)
	}
	a = l.do("POST", "/api/v1/unlock", "", map[string]string{"username": "carol"}, "")
	flow = a.obj()["flow"].(string)
	l.do("POST", "/api/v1/unlock/send", "", map[string]string{"flow": flow, "method": id}, "")
	a = l.do("POST", "/api/v1/unlock/verify", "", map[string]string{"flow": flow, "method": id, "code": l.mail.code(t, "carol@example.net", 3)}, "")
	if a.status != 200 {
		t.Fatalf("unlock verify: %d %s", a.status, a.raw)
	}
	flow = a.obj()["flow"].(string)
	if a := l.do("POST", "/api/v1/unlock/complete", "", map[string]string{"flow": flow}, ""); a.status != 200 || a.obj()["status"] != "unlocked" {
		t.Errorf("unlock: %d %s", a.status, a.raw)
	}
	// Removing the method needs the password. (Few wrong passwords in this
	// test: the gateway stops forwarding them after a small budget.)
	tok = l.do("POST", "/api/v1/session", "", map[string]string{"username": "carol", "password": "Another-Long-Phrase-7"}, "").obj()["token"].(string)
	if a := l.do("DELETE", "/api/v1/methods/"+id, tok, map[string]string{"password": "Another-Long-Phrase-7"}, ""); a.status != 204 {
		t.Errorf("remove: %d %s", a.status, a.raw)
	}
}

// TestReadiness: /readyz stays 200 with a dependency down and reports it in
// its body; /healthz/deps answers 503 with the same shape; a call that needs
// the dependency answers the error envelope with Retry-After.
func TestReadiness(t *testing.T) {
	l := newLive(t)
	if a := l.do("GET", "/readyz", "", nil, ""); a.status != 200 {
		t.Errorf("readyz: %d %s", a.status, a.raw)
	}
	if a := l.do("GET", "/healthz/deps", "", nil, ""); a.status != 200 {
		t.Errorf("healthz/deps: %d %s", a.status, a.raw)
	}
	l.dir.SetPingError(&directory.Error{Op: "ping", Kind: directory.ErrUnavailable})
	a := l.do("GET", "/readyz", "", nil, "")
	if a.status != 200 || a.obj()["directory"] != "unavailable" || a.obj()["store"] != "ok" {
		t.Errorf("readyz with the directory down: %d %s", a.status, a.raw)
	}
	a = l.do("GET", "/healthz/deps", "", nil, "")
	if a.status != 503 || a.obj()["directory"] != "unavailable" || a.obj()["store"] != "ok" {
		t.Errorf("healthz/deps with the directory down: %d %s", a.status, a.raw)
	}
	if a := l.do("GET", "/healthz", "", nil, ""); a.status != 200 {
		t.Errorf("healthz: %d %s", a.status, a.raw)
	}
	l.dir.SetWriteDown(true)
	a = l.do("POST", "/api/v1/change", "", map[string]string{"username": "carol", "old_password": carolPassword, "new_password": "Never-Written-Phrase-55"}, "")
	if a.status != 503 || a.header.Get("Retry-After") != "10" || !strings.Contains(string(a.raw), `"unavailable"`) {
		t.Errorf("change with the directory's writes down: %d %v %s", a.status, a.header, a.raw)
	}
}
