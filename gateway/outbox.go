package gateway

import (
	"context"
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
}

type job struct {
	notBefore time.Time
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

// enqueue never blocks: when the queue is full the message is dropped and
// logged (the user can ask for another code).
func (o *outbox) enqueue(j job) { o.enqueueAfter(j, time.Now()) }

// enqueueAfter queues j to be sent no sooner than outboxSettle after t.
func (o *outbox) enqueueAfter(j job, t time.Time) {
	j.notBefore = t.Add(outboxSettle)
	select {
	case o.jobs <- j:
	default:
		o.log.Error("outbox full, message dropped", "request_id", j.requestID)
	}
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
	if d := time.Until(j.notBefore); d > 0 {
		time.Sleep(d)
	}
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

// close stops the workers after the queue is drained.
func (o *outbox) close() {
	o.once.Do(func() { close(o.stop) })
	o.wg.Wait()
}
