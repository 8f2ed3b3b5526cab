package bench

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// sendBurstMax is the most users of the outbox burst (sendBursts).
const sendBurstMax = 500

// SendRate is how fast the outbox delivered a burst of codes by one
// channel.
type SendRate struct {
	Channel string `json:"channel"`
	// Asked is the codes asked for at once (202), Busy the sends answered
	// 503 busy instead, Received those that reached the server.
	Asked    int `json:"asked"`
	Busy     int `json:"busy"`
	Received int `json:"received"`
	// Seconds is from the first ask to the last arrival; PerSecond is
	// Received over it.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

// sendBursts measures the outbox's delivery rate by email (to mailpit) and
// by SMS (to the fake Twilio): the burst's users (up to sendBurstMax, a
// twentieth of the users) each ask one reset code, 8 clients asking one
// after another as fast as answered, and the rate is the codes that reached the server
// over the time from the first ask to the last arrival. It includes the
// send delay every code waits (3-503 ms) and is bounded by the senders'
// concurrency (smtp.connections, sms.concurrency). A code that does not
// arrive within a minute fails the run.
func (r *run) sendBursts() {
	for _, ch := range []string{"email", "sms"} {
		r.logf("outbox burst by %s: %d codes...", ch, r.snd[1]-r.snd[0])
		sr, err := r.sendBurst(ch)
		if err != nil {
			r.rep.Checks.Failures = append(r.rep.Checks.Failures, fmt.Sprintf("outbox burst by %s: %v", ch, err))
		}
		r.rep.Sends = append(r.rep.Sends, sr)
		r.logf("  %-5s %d asked, %d busy, %d received in %.2f s: %.1f/s", ch, sr.Asked, sr.Busy, sr.Received, sr.Seconds, sr.PerSecond)
	}
}

func (r *run) sendBurst(channel string) (SendRate, error) {
	sr := SendRate{Channel: channel}
	before, err := r.quiet(channel)
	if err != nil {
		return sr, err
	}
	var (
		next, asked, busy atomic.Int64
		mu                sync.Mutex
		first             error
		wg                sync.WaitGroup
	)
	users := r.snd[1] - r.snd[0]
	t0 := time.Now()
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < users; i = int(next.Add(1)) - 1 {
				err := r.askCodeBy(r.snd[0]+i, channel)
				switch {
				case err == nil:
					asked.Add(1)
				case errors.Is(err, errBusy): // counted in r.busy by sendCode
					busy.Add(1)
				default:
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	sr.Asked, sr.Busy = int(asked.Load()), int(busy.Load())
	deadline := time.Now().Add(time.Minute)
	for {
		sr.Received = r.arrived(channel) - before
		if sr.Received >= sr.Asked || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sr.Seconds = time.Since(t0).Seconds()
	if sr.Seconds > 0 {
		sr.PerSecond = float64(sr.Received) / sr.Seconds
	}
	switch {
	case first != nil:
		return sr, first
	case sr.Received != sr.Asked:
		return sr, fmt.Errorf("%d codes asked, %d arrived within a minute", sr.Asked, sr.Received)
	}
	return sr, nil
}

// askCodeBy starts a reset for user u and asks a code by its method of
// type channel; errBusy when the outbox answered busy.
func (r *run) askCodeBy(u int, channel string) error {
	a, err := r.api.Must(200, "POST", "/api/v1/reset", "", map[string]string{"username": userName(u)})
	if err != nil {
		return err
	}
	ms, _ := a.JSON["methods"].([]any)
	mid := ""
	for _, m := range ms {
		if mm, _ := m.(map[string]any); mm["type"] == channel {
			mid, _ = mm["id"].(string)
		}
	}
	if mid == "" {
		return fmt.Errorf("reset start %s: no %s method among %.200s", userName(u), channel, a.Body)
	}
	if err := r.sendCode(r.api, a.Str("flow"), mid); err != nil {
		return err
	}
	if channel == "sms" {
		r.smsCodes.Add(1)
	} else {
		r.codes.Add(1)
	}
	return nil
}

// arrived is the count of messages the channel's server has received.
func (r *run) arrived(channel string) int {
	if channel == "sms" {
		return len(r.sms.Messages())
	}
	n, _ := r.mb.Snapshot()
	return n
}

// quiet waits until the channel's server has received nothing new for a
// second (the earlier scenarios' messages still leaving), at most a
// minute, and returns its count.
func (r *run) quiet(channel string) (int, error) {
	deadline := time.Now().Add(time.Minute)
	last, since := r.arrived(channel), time.Now()
	for time.Since(since) < time.Second {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the %s server still receives the earlier messages after a minute", channel)
		}
		time.Sleep(100 * time.Millisecond)
		if n := r.arrived(channel); n != last {
			last, since = n, time.Now()
		}
	}
	return last, nil
}
