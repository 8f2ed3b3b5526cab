package flow

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPadderTarget(t *testing.T) {
	fill := func(p *padder, d time.Duration, n int) {
		for range n {
			p.observe(d)
		}
	}
	// no floor: the p95 of the real path, padInitial until it is known
	p := newPadder(0)
	if got := p.target(); got != padInitial {
		t.Fatalf("target before samples = %v, want %v", got, padInitial)
	}
	fill(p, 3*time.Millisecond, 256)
	if got := p.target(); got != 3*time.Millisecond {
		t.Fatalf("target = %v, want the p95 3ms", got)
	}

	// a floor above the real path: the floor, whatever the ring remembers
	p = newPadder(25 * time.Millisecond)
	if got := p.target(); got != 25*time.Millisecond {
		t.Fatalf("target before samples = %v, want the floor", got)
	}
	fill(p, 3*time.Millisecond, 256)
	if got := p.target(); got != 25*time.Millisecond {
		t.Fatalf("target = %v, want the floor 25ms", got)
	}
	// the real path slower than the floor: the p95, never the floor alone
	fill(p, 40*time.Millisecond, 256)
	if got := p.target(); got != 40*time.Millisecond {
		t.Fatalf("target = %v, want the p95 40ms above the floor", got)
	}
	// bounded by the ceiling
	fill(p, 2*time.Second, 256)
	if got := p.target(); got != PadCeiling {
		t.Fatalf("target = %v, want the ceiling", got)
	}
	// a floor below padInitial applies once the p95 is known
	p = newPadder(2 * time.Millisecond)
	fill(p, time.Millisecond, 64)
	if got := p.target(); got != 2*time.Millisecond {
		t.Fatalf("target = %v, want the floor 2ms", got)
	}
}

func TestPadderWaitHoldsUntilFloor(t *testing.T) {
	p := newPadder(30 * time.Millisecond)
	for range padMinSamples {
		p.observe(time.Millisecond)
	}
	for _, real := range []bool{false, true} {
		start := time.Now()
		p.wait(context.Background(), start, real)
		// at least the floor; and not the ceiling, which would mean the
		// floor was ignored for the fallback bound
		if took := time.Since(start); took < 30*time.Millisecond || took >= PadCeiling {
			t.Fatalf("real=%v: answer held %v, want the 30ms floor", real, took)
		}
	}
}

// After a burst the target follows the load of now: samples older than
// padMaxAge stop counting, except the newest padMinSamples.
func TestPadderForgetsOldLoad(t *testing.T) {
	p := newPadder(0)
	t0 := time.Now()
	for range 256 {
		p.observeAt(80*time.Millisecond, t0) // a burst
	}
	if got := p.targetAt(t0); got != 80*time.Millisecond {
		t.Fatalf("during the burst: %v", got)
	}
	later := t0.Add(padMaxAge + time.Second)
	// a few quiet answers: fewer than padMinSamples young ones, so the
	// newest padMinSamples (mostly the burst) still count
	for range 4 {
		p.observeAt(2*time.Millisecond, later)
	}
	if got := p.targetAt(later); got != 80*time.Millisecond {
		t.Fatalf("with 4 quiet samples: %v, want the burst still counted", got)
	}
	for range padMinSamples {
		p.observeAt(2*time.Millisecond, later)
	}
	if got := p.targetAt(later); got != 2*time.Millisecond {
		t.Fatalf("after %d quiet samples: %v, want the quiet p95 2ms", padMinSamples+4, got)
	}
	// young samples all count, whatever their number
	if got := p.targetAt(t0.Add(time.Second)); got != 80*time.Millisecond {
		t.Fatalf("the burst within padMaxAge: %v", got)
	}
}

// TestHoldIsTheLastWork: a padded answer is made before its hold, so that
// what follows the hold is the same work for every name. Every call of a
// padder's wait is a statement of its own, either the whole body of a
// deferred function (the results are set before deferred calls run) or
// followed at once by a return whose results call nothing; every call of
// a wait anywhere must be one of these, so that a hold the check cannot
// place fails it too. Finding L1 of the honest-messages review was a
// refusal wrapped (fmt.Errorf) after the change path's hold: a real
// account's answer left ~4 µs after an unknown name's, every time.
func TestHoldIsTheLastWork(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// isWaitCall: a call of wait on a padder field (s.padX.wait)
	isWaitCall := func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "wait" {
			return false
		}
		recv, ok := sel.X.(*ast.SelectorExpr)
		return ok && strings.HasPrefix(recv.Sel.Name, "pad")
	}
	isWait := func(s ast.Stmt) bool {
		es, ok := s.(*ast.ExprStmt)
		return ok && isWaitCall(es.X)
	}
	calls, placed := 0, 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		// a deferred function holding only the wait is fine
		deferred := map[ast.Stmt]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			if isWaitCall(n) {
				calls++
			}
			if d, ok := n.(*ast.DeferStmt); ok {
				if fl, ok := d.Call.Fun.(*ast.FuncLit); ok && len(fl.Body.List) == 1 {
					deferred[fl.Body.List[0]] = true
				}
			}
			return true
		})
		// every list of statements: blocks, and the bodies of case and
		// select clauses
		ast.Inspect(f, func(n ast.Node) bool {
			var list []ast.Stmt
			switch b := n.(type) {
			case *ast.BlockStmt:
				list = b.List
			case *ast.CaseClause:
				list = b.Body
			case *ast.CommClause:
				list = b.Body
			default:
				return true
			}
			for i, st := range list {
				if !isWait(st) {
					continue
				}
				placed++
				if deferred[st] {
					continue
				}
				pos := fset.Position(st.Pos())
				if i+1 >= len(list) {
					t.Errorf("%s:%d: a hold not followed by a return", name, pos.Line)
					continue
				}
				ret, ok := list[i+1].(*ast.ReturnStmt)
				if !ok {
					t.Errorf("%s:%d: a hold followed by work, not by the return", name, pos.Line)
					continue
				}
				for _, r := range ret.Results {
					ast.Inspect(r, func(n ast.Node) bool {
						if _, ok := n.(*ast.CallExpr); ok {
							t.Errorf("%s:%d: the return after a hold calls %s: make the answer before the hold", name, pos.Line, types.ExprString(n.(ast.Expr)))
							return false
						}
						return true
					})
				}
			}
			return true
		})
	}
	if calls != placed {
		t.Errorf("%d calls of a padder's wait, %d of them statements this check places: a hold inside an expression, or called another way, is not checked", calls, placed)
	}
	if calls < 10 {
		t.Fatalf("found %d holds; the check is not looking where the holds are", calls)
	}
}
