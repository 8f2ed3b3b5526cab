package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// CommandTB lets the bench command use the test servers of dirtest and
// notifytest (which take a testing.TB) outside a test: temporary
// directories under one root, cleanups run by Close, and Fatal/Skip turned
// into a panic that Guard recovers as an error. The embedded testing.TB is
// nil: a method not listed here must not be called.
type CommandTB struct {
	testing.TB
	mu       sync.Mutex
	root     string
	n        int
	cleanups []func()
	log      io.Writer
}

type tbAbort struct{ msg string }

// NewCommandTB makes a CommandTB whose directories live under a new
// temporary directory, logging to log.
func NewCommandTB(log io.Writer) (*CommandTB, error) {
	root, err := os.MkdirTemp("", "latchkey-bench-")
	if err != nil {
		return nil, err
	}
	return &CommandTB{root: root, log: log}, nil
}

// Helper does nothing.
func (t *CommandTB) Helper() {}

// Name is the run's name.
func (t *CommandTB) Name() string { return "latchkey-bench" }

// Context is a background context.
func (t *CommandTB) Context() context.Context { return context.Background() }

// Cleanup registers f to run at Close, last registered first.
func (t *CommandTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// TempDir makes a new directory under the root.
func (t *CommandTB) TempDir() string {
	t.mu.Lock()
	t.n++
	n := t.n
	t.mu.Unlock()
	d := fmt.Sprintf("%s/%03d", t.root, n)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	return d
}

// Logf writes a line to the log.
func (t *CommandTB) Logf(format string, args ...any) { fmt.Fprintf(t.log, format+"\n", args...) }

// Log writes a line to the log.
func (t *CommandTB) Log(args ...any) { fmt.Fprintln(t.log, args...) }

// Fatalf aborts the run (recovered by Guard).
func (t *CommandTB) Fatalf(format string, args ...any) { panic(tbAbort{fmt.Sprintf(format, args...)}) }

// Fatal aborts the run (recovered by Guard).
func (t *CommandTB) Fatal(args ...any) { panic(tbAbort{fmt.Sprint(args...)}) }

// Errorf aborts the run too: the bench has no "continue after an error".
func (t *CommandTB) Errorf(format string, args ...any) { t.Fatalf(format, args...) }

// Skipf aborts the run: a missing server is an error for the command.
func (t *CommandTB) Skipf(format string, args ...any) { t.Fatalf("missing: "+format, args...) }

// Failed is false: a failure aborts.
func (t *CommandTB) Failed() bool { return false }

// Close runs the cleanups and removes the root directory.
func (t *CommandTB) Close() {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	_ = os.RemoveAll(t.root)
}

// Guard runs fn and turns a Fatal of a CommandTB into an error.
func Guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(tbAbort)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", a.msg)
		}
	}()
	return fn()
}
