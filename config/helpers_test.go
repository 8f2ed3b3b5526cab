package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/config"
)

// env returns a WithLookupEnv option over a fixed map, so tests never see
// the real environment.
func env(m map[string]string) config.Option {
	return config.WithLookupEnv(func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	})
}

// writeFile writes content to name in dir with mode and returns its path.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
	return p
}

// testKey is a random-looking 48-byte key.
const testKey = "q0Xc7f9vRrM2Jt1wZs8LbY4kHn6pEu3aGd5iKo+Vx/TmCy2N"

// problems returns err's problems, failing the test if err is not a
// *config.ValidationError.
func problems(t *testing.T, err error) []config.Problem {
	t.Helper()
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *config.ValidationError", err, err)
	}
	return ve.Problems
}

func keys(ps []config.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Key)
	}
	return out
}

// hasProblem reports whether ps has a problem at key whose message contains msg.
func hasProblem(ps []config.Problem, key, msg string) bool {
	return slices.ContainsFunc(ps, func(p config.Problem) bool {
		return p.Key == key && strings.Contains(p.Message, msg)
	})
}
