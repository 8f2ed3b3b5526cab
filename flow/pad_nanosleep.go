//go:build linux || freebsd || netbsd || openbsd

package flow

import (
	"syscall"
	"time"
)

// preciseSleep blocks the calling OS thread for d with nanosleep(2).
func preciseSleep(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR { //nolint:revive // the remaining time is in ts
	}
}
