package blackbox

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Listening is the line latchkey serve logs (at info) once it listens.
const Listening = "latchkey listening"

// Process is one running latchkey serve.
type Process struct {
	Cmd *exec.Cmd
	// Exited is closed once the process has ended and its log is closed.
	Exited <-chan struct{}
}

// Launch runs `binary serve --config cfgPath`, its output appended to
// logPath and environ ("KEY=value") added to its environment, and waits
// until base+"/readyz" answers 200. With waitLog (the log level must be
// info or debug) it first waits until the log holds one more Listening
// line than before: a /readyz answer is then never another process's
// that took the port meant for this one. It fails when the process
// exits first or after 30 s, with the log's tail.
func Launch(binary, cfgPath, logPath, base string, environ []string, waitLog bool) (*Process, error) {
	listening := func() int {
		b, _ := os.ReadFile(logPath) // #nosec G304 -- the test's own log
		return bytes.Count(b, []byte(Listening))
	}
	before := listening()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600) // #nosec G304 -- the test's own log
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "serve", "--config", cfgPath) // #nosec G204 -- the binary a test or the bench built or was given
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(environ) > 0 {
		cmd.Env = append(os.Environ(), environ...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	p := &Process{Cmd: cmd, Exited: exited}
	logTail := func() string {
		b, _ := os.ReadFile(logPath) // #nosec G304 -- the test's own log
		return tail(string(b), 6000)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := errors.New("not listening yet")
		if !waitLog || listening() > before {
			var res *http.Response
			if res, err = http.Get(base + "/readyz"); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return p, nil
				}
				err = fmt.Errorf("/readyz: %s", res.Status)
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("latchkey exited: %s", logTail())
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("latchkey not ready: %v\n%s", err, logTail())
		}
		time.Sleep(50 * time.Millisecond) // the process gives no other sign of readiness
	}
}

// Stop sends SIGTERM and waits for the process to end (SIGKILL after
// 30 s); it returns the exit code. Stopping a stopped process does
// nothing more.
func (p *Process) Stop() int {
	select {
	case <-p.Exited:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited:
		case <-time.After(30 * time.Second):
			p.Kill()
		}
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Kill ends the process with SIGKILL, as a crash or an evicted pod
// would, and waits for it.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.Exited
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
