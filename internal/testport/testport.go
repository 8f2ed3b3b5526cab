// Package testport hands out free loopback TCP ports to the test helpers
// that start servers (e2e's gateways, notifytest's mailpit, dirtest's
// slapd), never the same port twice in one process.
//
// A free port is one a listener on 127.0.0.1 could take a moment ago; the
// server is started on it a moment later. Two things can take it in that
// moment:
//
//   - another server of this process: tests of one package run in
//     parallel, and two servers of one test process were given the same
//     port (a CI run's mailpit lost its SMTP port to another test's
//     gateway, and the test's codes went to the gateway). Remembering what
//     was handed out removes that case.
//   - a connection: the kernel gives every outgoing connection a local
//     port of its ephemeral range (ip_local_port_range), and a port found
//     by listening on 127.0.0.1:0 is in that range too. A CI run's gateway
//     failed to start with "bind: address already in use": some
//     connection of the busy machine had been given its port as a source
//     port. Ports are therefore drawn from below the ephemeral range,
//     which the kernel hands to no connection.
//
// A port taken meanwhile by another test process is still possible,
// which is why the helpers also check that their server listens where they
// think.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// lowest is the lowest port Free draws from below the ephemeral range.
const lowest = 10000

// Free returns a loopback TCP port that was free a moment ago, that this
// process has not handed out before, and that the kernel does not give to
// outgoing connections (below the ephemeral range; listening on port 0
// when that range cannot be read or leaves no room below it).
func Free() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	if first, ok := ephemeralFirst(); ok && first-lowest >= 1000 {
		for range 1000 {
			p := lowest + rand.IntN(first-lowest) // #nosec G404 -- a test port, not a secret
			if handed[p] {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue // in use
			}
			l.Close()
			handed[p] = true
			return p, nil
		}
	}
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

// ephemeralFirst is the first port of the kernel's ephemeral range
// (Linux's net.ipv4.ip_local_port_range).
func ephemeralFirst() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	first, err := strconv.Atoi(f[0])
	return first, err == nil
}
