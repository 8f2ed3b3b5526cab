package flow

import (
	"testing"

	"github.com/latchkeyhq/latchkey/internal/flowtest"
)

// TestMain stops the throwaway PostgreSQL of flowtest.OnBothStores, if
// started.
func TestMain(m *testing.M) { flowtest.Main(m) }
