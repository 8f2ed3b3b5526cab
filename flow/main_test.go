package flow

import (
	"os"
	"testing"

	"github.com/latchkeyhq/latchkey/store/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop() // the throwaway PostgreSQL of flowtest.OnBothStores, if started
	os.Exit(code)
}
