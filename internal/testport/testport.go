// Package testport hands out free loopback TCP ports to the test helpers
// that start servers (e2e's gateways, notifytest's mailpit, dirtest's
// slapd), never the same port twice in one process.
//
// A free port is found by listening on 127.0.0.1:0 and closing the
// listener; the server is started on it a moment later. Tests of one
// package run in parallel, and the kernel may hand the port just closed
// to the next caller: two servers of one test process were given the same
// port (a CI run's mailpit lost its SMTP port to another test's gateway,
// and the test's codes went to the gateway). Remembering what was handed
// out removes that case; a port taken meanwhile by another process is
// still possible, which is why the helpers also check that their server
// listens where they think.
package testport

import (
	"fmt"
	"net"
	"sync"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Free returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before.
func Free() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handed[p] {
			handed[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("testport: no port not handed out before in 100 tries")
}
