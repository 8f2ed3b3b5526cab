//go:build !(linux || freebsd || netbsd || openbsd)

package flow

import "time"

// preciseSleep falls back to the runtime's timers where nanosleep(2) is
// missing (coarser: see preciseWindow).
func preciseSleep(d time.Duration) { time.Sleep(d) }
