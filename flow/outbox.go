package flow

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
)

// outbox sends mail and SMS in the background, so that neither the speed nor
// the failure of SMTP or the SMS provider shows in any response.
//
// A message that fails is tried again after outboxRetryDelays; after the
// last try the failed hook runs (the service audits it). On shutdown close
// sends everything queued, waiting for messages still in their settle or
// jitter time and for retries, within a time bound.
type outbox struct {
	mailer notify.Mailer
	sms    notify.SMSSender
	log    *slog.Logger
	jobs   chan job
	wg     sync.WaitGroup
	stop   chan struct{}
	once   sync.Once
	// inflight counts messages accepted and not yet sent or given up,
	// including those waiting for their time (enqueueAfter) or a retry
	inflight atomic.Int64
	// pending holds those messages by id, so that the ones a shutdown
	// leaves behind can be reported (failed) rather than vanish
	mu      sync.Mutex
	pending map[uint64]job
	seq     uint64
	// failed, if set, is called once for a message whose last try failed
	failed func(j job, err error)
	// retryDelays are the waits before the second, third... try
	retryDelays []time.Duration
}

type job struct {
	requestID string
	email     *notify.Email
	sms       *notify.SMS
	// account and purpose are for the audit event of a failure:
	// "code" or "notice:<event>"
	account string
	purpose string
	attempt int
	id      uint64 // in outbox.pending
}

// Why a message was given up on without its last try failing.
var (
	errOutboxFull     = errors.New("outbox full: message dropped")
	errOutboxShutdown = errors.New("shutdown: message not sent within the drain time")
)

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
	// MaxSendDelay is the longest a message waits in the outbox before its
	// first try (the settle and the jitter). A check that nothing was sent
	// must wait longer than this.
	MaxSendDelay = outboxSettle + outboxJitter
	sendTimeout  = 30 * time.Second
	// OutboxDrainTimeout bounds how long Close waits for queued messages.
	OutboxDrainTimeout = 20 * time.Second
)

// outboxRetryDelays: three tries in all, over about three seconds. A code
// is only useful for minutes and a user can ask for another one; a notice
// that still fails is audited (notice.failed).
var outboxRetryDelays = []time.Duration{time.Second, 2 * time.Second}

func newOutbox(m notify.Mailer, s notify.SMSSender, log *slog.Logger) *outbox {
	o := &outbox{mailer: m, sms: s, log: log, jobs: make(chan job, outboxCapacity), stop: make(chan struct{}),
		retryDelays: outboxRetryDelays, pending: map[uint64]job{}}
	for i := 0; i < outboxWorkers; i++ {
		o.wg.Add(1)
		go o.work()
	}
	return o
}

// enqueue queues j now. It never blocks: when the queue is full the
// message is dropped and logged (the user can ask for another code).
func (o *outbox) enqueue(j job) {
	o.put(o.accept(j))
}

// accept counts j in flight and keeps it in pending until done.
func (o *outbox) accept(j job) job {
	o.inflight.Add(1)
	o.mu.Lock()
	o.seq++
	j.id = o.seq
	o.pending[j.id] = j
	o.mu.Unlock()
	return j
}

// done ends j: sent, or given up on. It reports whether j was still
// pending: false once a shutdown has reported it as not sent.
func (o *outbox) done(j job) bool {
	o.mu.Lock()
	_, ok := o.pending[j.id]
	delete(o.pending, j.id)
	o.mu.Unlock()
	if ok {
		o.inflight.Add(-1)
	}
	return ok
}

func (o *outbox) put(j job) {
	select {
	case o.jobs <- j:
	default:
		o.log.Error("outbox full, message dropped", "request_id", j.requestID)
		if o.done(j) && o.failed != nil {
			o.failed(j, errOutboxFull)
		}
	}
}

// enqueueAfter queues j outboxSettle after t (when the answer of the
// request has left) plus a random part of outboxJitter. No worker waits
// meanwhile: a timer queues it.
func (o *outbox) enqueueAfter(j job, t time.Time) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	jitter := time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(outboxJitter))
	o.later(o.accept(j), time.Until(t.Add(outboxSettle))+jitter)
}

func (o *outbox) later(j job, d time.Duration) {
	time.AfterFunc(d, func() { o.put(j) })
}

// worker is one sending goroutine. With a mailer that keeps sessions
// (SMTP), it keeps its connection open while messages keep coming: closed
// after outboxSessionIdle without one, after outboxSessionMessages
// messages, or after outboxSessionAge.
type worker struct {
	o      *outbox
	sess   notify.MailSession
	opened time.Time
	sent   int
}

const (
	outboxSessionIdle     = time.Second
	outboxSessionMessages = 50
	outboxSessionAge      = 30 * time.Second
)

func (o *outbox) work() {
	defer o.wg.Done()
	w := &worker{o: o}
	defer w.closeSession()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	for {
		select {
		case j := <-o.jobs:
			w.send(j)
			if w.sess != nil {
				idle.Reset(outboxSessionIdle)
			}
		case <-idle.C:
			w.closeSession()
		case <-o.stop:
			// drain what is queued, then exit
			for {
				select {
				case j := <-o.jobs:
					w.send(j)
				default:
					return
				}
			}
		}
	}
}

func (w *worker) closeSession() {
	if w.sess == nil {
		return
	}
	if err := w.sess.Close(); err != nil {
		w.o.log.Debug("closing the mail session failed", "error", err.Error())
	}
	w.sess = nil
}

// sendEmail sends e on the worker's session (opened if need be), or on a
// connection of its own when the mailer keeps no sessions. A session found
// closed before the message started (the server's idle timeout) is
// replaced once, right away: nothing of the message was sent.
func (w *worker) sendEmail(ctx context.Context, e notify.Email) error {
	sm, ok := w.o.mailer.(notify.SessionMailer)
	if !ok {
		return w.o.mailer.SendEmail(ctx, e)
	}
	if w.sess != nil && (w.sent >= outboxSessionMessages || time.Since(w.opened) > outboxSessionAge) {
		w.closeSession()
	}
	for try := 0; ; try++ {
		if w.sess == nil {
			sess, err := sm.OpenSession(ctx)
			if err != nil {
				return err
			}
			w.sess, w.opened, w.sent = sess, time.Now(), 0
		}
		err := w.sess.SendEmail(ctx, e)
		if err == nil {
			w.sent++
			return nil
		}
		// after any failure the connection's state is unknown: a new
		// message gets a new one
		w.closeSession()
		if !errors.Is(err, notify.ErrSessionBroken) || try > 0 {
			return err
		}
	}
}

func (w *worker) send(j job) {
	o := w.o
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	var err error
	kind := "email"
	switch {
	case j.email != nil && o.mailer != nil:
		err = w.sendEmail(ctx, *j.email)
	case j.sms != nil && o.sms != nil:
		kind = "sms"
		err = o.sms.SendSMS(ctx, *j.sms)
	}
	if err == nil {
		o.done(j)
		return
	}
	if j.attempt < len(o.retryDelays) {
		o.log.Warn("sending "+kind+" failed, will retry", "request_id", j.requestID, "attempt", j.attempt+1, "error", err.Error())
		d := o.retryDelays[j.attempt]
		j.attempt++
		o.later(j, d)
		return
	}
	o.log.Error("sending "+kind+" failed, giving up", "request_id", j.requestID, "attempts", j.attempt+1, "error", err.Error())
	if o.done(j) && o.failed != nil {
		o.failed(j, err)
	}
}

// close stops the workers after the waiting messages are queued and the
// queue is drained, or when timeout has passed: then the messages not sent
// are logged and each goes to the failed hook (audited), and are lost.
func (o *outbox) close(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		// wait until nothing waits for its time or a retry and nothing
		// is queued or being sent (requests have stopped: no new ones)
		for o.inflight.Load() > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		o.once.Do(func() { close(o.stop) })
		o.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		// taken out of pending: a worker or timer still running finds
		// them gone (done reports false) and reports nothing twice
		o.mu.Lock()
		left := make([]job, 0, len(o.pending))
		for _, j := range o.pending {
			left = append(left, j)
		}
		o.pending = map[uint64]job{}
		o.inflight.Store(0)
		o.mu.Unlock()
		o.log.Error("outbox: shutdown timeout, messages not sent", "messages", len(left), "timeout", timeout.String())
		if o.failed != nil {
			for _, j := range left {
				o.failed(j, errOutboxShutdown)
			}
		}
	}
}
