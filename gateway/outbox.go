package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
)

// outbox sends mail and SMS in the background, so that neither the speed nor
// the failure of SMTP or the SMS provider shows in any response.
type outbox struct {
	mailer notify.Mailer
	sms    notify.SMSSender
	log    *slog.Logger
	jobs   chan job
	wg     sync.WaitGroup
	stop   chan struct{}
	once   sync.Once
	// pending counts messages waiting for their time (see enqueueAfter)
	pending sync.WaitGroup
}

type job struct {
	requestID string
	email     *notify.Email
	sms       *notify.SMS
}

const (
	outboxWorkers  = 4
	outboxCapacity = 1024
	// outboxSettle is how long a message waits after it was queued, so
	// that the answer of the request that queued it leaves first: the work
	// of sending must not slow that answer down (a timing tell).
	outboxSettle = 3 * time.Millisecond
	// outboxJitter spreads the sending of codes asked for without any
	// proof over a random half second: the CPU a send takes must not land
	// on the asker's next request, where its absence would tell that the
	// name has no real method.
	outboxJitter = 500 * time.Millisecond
	sendTimeout  = 30 * time.Second
)

func newOutbox(m notify.Mailer, s notify.SMSSender, log *slog.Logger) *outbox {
	o := &outbox{mailer: m, sms: s, log: log, jobs: make(chan job, outboxCapacity), stop: make(chan struct{})}
	for i := 0; i < outboxWorkers; i++ {
		o.wg.Add(1)
		go o.work()
	}
	return o
}

// enqueue queues j now. It never blocks: when the queue is full the
// message is dropped and logged (the user can ask for another code).
func (o *outbox) enqueue(j job) {
	select {
	case o.jobs <- j:
	default:
		o.log.Error("outbox full, message dropped", "request_id", j.requestID)
	}
}

// enqueueAfter queues j outboxSettle after t (when the answer of the
// request has left) plus a random part of outboxJitter. No worker waits
// meanwhile: a timer queues it.
func (o *outbox) enqueueAfter(j job, t time.Time) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	jitter := time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(outboxJitter))
	o.pending.Add(1)
	time.AfterFunc(time.Until(t.Add(outboxSettle))+jitter, func() {
		defer o.pending.Done()
		o.enqueue(j)
	})
}

func (o *outbox) work() {
	defer o.wg.Done()
	for {
		select {
		case j := <-o.jobs:
			o.send(j)
		case <-o.stop:
			// drain what is queued, then exit
			for {
				select {
				case j := <-o.jobs:
					o.send(j)
				default:
					return
				}
			}
		}
	}
}

func (o *outbox) send(j job) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	switch {
	case j.email != nil && o.mailer != nil:
		if err := o.mailer.SendEmail(ctx, *j.email); err != nil {
			o.log.Warn("sending email failed", "request_id", j.requestID, "error", err.Error())
		}
	case j.sms != nil && o.sms != nil:
		if err := o.sms.SendSMS(ctx, *j.sms); err != nil {
			o.log.Warn("sending sms failed", "request_id", j.requestID, "error", err.Error())
		}
	}
}

// close stops the workers after the waiting messages are queued and the
// queue is drained.
func (o *outbox) close() {
	o.pending.Wait()
	o.once.Do(func() { close(o.stop) })
	o.wg.Wait()
}
