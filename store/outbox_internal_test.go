package store

import (
	"slices"
	"testing"
)

// TestOutboxPrioritiesCoverEveryKind: NextDue reads only the priorities in
// outboxPriorities; a kind whose priority were not listed would be claimed
// but never found due.
func TestOutboxPrioritiesCoverEveryKind(t *testing.T) {
	for _, k := range []string{OutboxCode, OutboxNotice, OutboxDecoy} {
		if p := outboxPriority(k); !slices.Contains(outboxPriorities, p) {
			t.Errorf("kind %q has priority %d, not in outboxPriorities %v", k, p, outboxPriorities)
		}
	}
}
