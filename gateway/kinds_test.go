package gateway

import (
	"testing"

	"github.com/latchkeyhq/latchkey/flow"
)

// TestEveryKindHasAWebRow: every kind of flow's registry is declared in
// webKinds with the name a sentence gives it, and webKinds declares no
// kind flow does not know; webKindOf fills every hook.
func TestEveryKindHasAWebRow(t *testing.T) {
	known := map[string]bool{}
	for _, typ := range flow.MethodTypes() {
		known[typ] = true
		k, ok := webKinds[typ]
		if !ok || k.name == "" {
			t.Errorf("kind %q has no row with a name in webKinds (gateway/kinds.go)", typ)
		}
		if k := webKindOf(typ); k.addAPI == nil || k.addPage == nil || k.choose == nil || k.provePage == nil || k.prove == nil {
			t.Errorf("webKindOf(%q) leaves a hook nil", typ)
		}
	}
	for typ := range webKinds {
		if !known[typ] {
			t.Errorf("webKinds declares %q, which flow does not know", typ)
		}
	}
}
