package flow

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

// outbox sends mail and SMS in the background, so that neither the speed nor
// the failure of SMTP or the SMS provider shows in any response.
//
// Every message waits in the store's outbox (store.Outbox), written with
// the change that asks for it (a code: in the same transaction), so a crash
// or a restart loses none and every instance sends any of them. Each
// channel (email, SMS) has a dispatcher that claims due messages with a
// lease and hands them to its workers (OutboxOptions: how many); a worker
// sends, then finishes the message (its body is deleted) and the service
// audits it as delivered only then. A message that fails is tried again
// after outboxRetryDelays (or as soon as a send on its channel succeeds
// again) until it expires; one claimed after its expiry
// (a code's, or its flow's) is not sent and is audited
// expired_before_send. A message whose instance died in the middle is
// claimed again once its lease ends: it is sent twice only if the death
// fell between the server's acceptance and the finish.
//
// The anti-timing delay is kept in the row: a message may not leave before
// NotBefore (the answer's time, outboxSettle, and a random part of
// outboxJitter), on this instance or any other, after a restart too.
type outbox struct {
	st     store.Store
	mailer notify.Mailer
	sms    notify.SMSSender
	log    *slog.Logger
	opts   OutboxOptions
	// clock schedules (NotBefore, leases: wall-clock time); svcNow is the
	// service's clock, which codes' and flows' expiries are in
	clock  func() time.Time
	svcNow func() time.Time
	// failed is called once for a message not sent: reason
	// expired_before_send or send_failed; delivered once a server accepted
	// one (the service audits both)
	failed    func(m store.OutboxMessage, reason string)
	delivered func(m store.OutboxMessage) []store.AuditEvent
	// retryDelays are the waits after the first, second... failed try
	// (the last one repeats)
	retryDelays []time.Duration
	lease       time.Duration

	queues []*channelQueue
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	// local holds the ids of the messages this instance wrote and has not
	// seen finished: Close waits for them (as long as its bound allows)
	mu    sync.Mutex
	local map[string]bool // id -> is a decoy

	state   atomic.Pointer[QueueState]
	counts  sync.Map // "channel/outcome" -> *atomic.Int64
	started bool
}

// channelQueue is one channel's dispatcher and workers.
type channelQueue struct {
	name    string
	workers int
	wake    chan struct{} // a message was written here, or reread is set
	freed   chan struct{} // a worker finished one
	// hint is the earliest NotBefore (Unix µs) of the messages written
	// here since the dispatcher last looked, or 0; reread: what is due
	// changed in a way only a read of the store tells (ExpediteRetries)
	hint   atomic.Int64
	reread atomic.Bool
	jobs   chan store.OutboxMessage
	busy   atomic.Int64
	// failing is set by a failed send and cleared by the next success,
	// which brings the retries of the channel forward
	failing atomic.Bool
}

// QueueState is the outbox of every instance as this one last saw it
// (refreshed every outboxStatsEvery).
type QueueState struct {
	// PendingCodes and PendingNotices wait to be sent (decoys not counted).
	PendingCodes   int `json:"pending_codes"`
	PendingNotices int `json:"pending_notices"`
	// OldestCode is how long the oldest pending code has been due.
	OldestCode time.Duration `json:"-"`
	// SendRate is the messages sent per second by every instance, over the
	// part of the last outboxRateWindow in which they were sent (sendRate).
	SendRate float64 `json:"send_rate"`
	// Busy: new codes would not leave within OutboxOptions.MaxWait (or the
	// queue holds MaxPending codes): sends answer busy.
	Busy bool `json:"busy"`
	// Known is false until the state was read once.
	Known bool `json:"-"`
}

type outboxBody struct {
	Email *notify.Email `json:"e,omitempty"`
	SMS   *notify.SMS   `json:"s,omitempty"`
}

// job is a message being made: its body, and what the audit says of it.
type job struct {
	requestID string
	clientIP  string
	email     *notify.Email
	sms       *notify.SMS
	// account and purpose are for the audit events: purpose is a flow
	// kind, "register", or "notice:<event>"
	account string
	purpose string
}

func (j job) channel() string {
	if j.sms != nil {
		return store.MethodSMS
	}
	return store.MethodEmail
}

const (
	// outboxSettle is how long a message waits after the answer of the
	// request that wrote it, so that the answer leaves first: the work of
	// sending must not slow that answer down (a timing tell).
	outboxSettle = 3 * time.Millisecond
	// outboxJitter spreads the sending of codes asked for without any
	// proof over a random half second: the CPU a send takes must not land
	// on the asker's next request, where its absence would tell that the
	// name has no real method.
	outboxJitter = 500 * time.Millisecond
	// MaxSendDelay is the longest a message waits in the outbox before its
	// first try (the settle and the jitter) when a worker is free. A check
	// that nothing was sent must wait longer than this.
	MaxSendDelay = outboxSettle + outboxJitter
	sendTimeout  = 30 * time.Second
	// OutboxDrainTimeout bounds how long Close waits for the messages this
	// instance wrote; what is left stays in the store for the next start
	// or another instance.
	OutboxDrainTimeout = 20 * time.Second
	// outboxLease is how long a claim holds a message: longer than a send
	// may take, so that only a dead worker's messages are claimed again.
	outboxLease = sendTimeout + 15*time.Second
	// outboxPoll is the longest a dispatcher sleeps without being woken
	// (messages written by other instances, leases that ran out).
	outboxPoll = time.Second
	// outboxRecheck is the pause before reading the queue again after a
	// claim found nothing it expected.
	outboxRecheck = 10 * time.Millisecond
	// outboxNoticeLifetime: a notice not sent within it is given up on.
	outboxNoticeLifetime = 24 * time.Hour
	// outboxStatsEvery is how often the queue state is read.
	outboxStatsEvery = 250 * time.Millisecond
	// outboxRateWindow is the window of the measured send rate.
	outboxRateWindow = time.Minute
	// outboxMinRate is the send rate assumed while less was measured (an
	// idle queue measures nothing).
	outboxMinRate = 1.0
)

// outboxRetryDelays: a failed message waits 1, 2, 5, 10, then 30 s
// between tries, until it expires.
var outboxRetryDelays = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}

func newOutbox(st store.Store, m notify.Mailer, s notify.SMSSender, log *slog.Logger, opts OutboxOptions, svcNow func() time.Time) *outbox {
	o := &outbox{st: st, mailer: m, sms: s, log: log, opts: opts, clock: time.Now, svcNow: svcNow,
		retryDelays: outboxRetryDelays, lease: outboxLease, stop: make(chan struct{}), local: map[string]bool{}}
	for _, c := range []struct {
		name string
		n    int
	}{{store.MethodEmail, opts.EmailConcurrency}, {store.MethodSMS, opts.SMSConcurrency}} {
		o.queues = append(o.queues, &channelQueue{name: c.name, workers: c.n, wake: make(chan struct{}, 1),
			freed: make(chan struct{}, 1), jobs: make(chan store.OutboxMessage, c.n)})
	}
	o.state.Store(&QueueState{})
	return o
}

// start runs the dispatchers, workers and the state reader.
func (o *outbox) start() {
	o.started = true
	for _, q := range o.queues {
		o.wg.Add(1 + q.workers)
		go o.dispatch(q)
		for range q.workers {
			go o.work(q)
		}
	}
	o.wg.Add(1)
	go o.watch()
}

// sendTime is when a message asked for at t may leave: outboxSettle after
// t plus a random part of outboxJitter.
func sendTime(t time.Time) time.Time {
	var b [8]byte
	_, _ = rand.Read(b[:])
	jitter := time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(outboxJitter))
	return t.Add(outboxSettle + jitter)
}

// row is j as an outbox message of kind, due at notBefore.
func (o *outbox) row(j job, kind string, notBefore, expires time.Time) store.OutboxMessage {
	body, _ := json.Marshal(outboxBody{Email: j.email, SMS: j.sms}) // plain structs of strings: never fails
	return store.OutboxMessage{ID: newID(), Kind: kind, Channel: j.channel(), Body: body, AccountID: j.account,
		RequestID: j.requestID, ClientIP: j.clientIP, Purpose: j.purpose, CreatedAt: o.clock(), NotBefore: notBefore, ExpiresAt: expires}
}

// decoyRow is the row written for a code that is never sent: as large as
// a code's mail, so that the store does the same work.
func (o *outbox) decoyRow(channel string, m Meta, purpose string, notBefore, expires time.Time) store.OutboxMessage {
	if channel != store.MethodSMS {
		channel = store.MethodEmail
	}
	body := make([]byte, decoyBodyLen)
	_, _ = rand.Read(body)
	return store.OutboxMessage{ID: newID(), Kind: store.OutboxDecoy, Channel: channel, Body: body,
		RequestID: m.RequestID, ClientIP: m.ClientIP, Purpose: purpose, CreatedAt: o.clock(), NotBefore: notBefore, ExpiresAt: expires}
}

// decoyBodyLen is about the size of a code's mail as JSON.
const decoyBodyLen = 2048

// notice is j as a notice's row, due after outboxSettle: put writes it on
// its own, or a store transaction writes it with the change it tells of
// (written then tells the dispatcher).
func (o *outbox) notice(j job) store.OutboxMessage {
	return o.row(j, store.OutboxNotice, o.clock().Add(outboxSettle), o.svcNow().Add(outboxNoticeLifetime))
}

// put writes m in a transaction of its own and tells the dispatcher; a
// store that refuses it is logged and audited (not_stored). A message whose
// id is stored already (a transaction that wrote it, whose commit answer
// was lost) is there to be sent: it is not written twice.
func (o *outbox) put(ctx context.Context, m store.OutboxMessage) {
	err := o.st.EnqueueMessage(context.WithoutCancel(ctx), m)
	if errors.Is(err, store.ErrConflict) {
		err = nil
	}
	if err != nil {
		// the store is down: the message cannot be kept (audited)
		o.log.Error("outbox: message not stored", "request_id", m.RequestID, "error", err.Error())
		if o.failed != nil {
			o.failed(m, "not_stored")
		}
		return
	}
	o.written(m)
}

// written tells the dispatcher of m's channel that m was stored.
func (o *outbox) written(m store.OutboxMessage) {
	o.mu.Lock()
	o.local[m.ID] = m.Kind == store.OutboxDecoy
	o.mu.Unlock()
	due := m.NotBefore
	if due.IsZero() {
		due = m.CreatedAt
	}
	for _, q := range o.queues {
		if q.name == m.Channel {
			lowerHint(&q.hint, due.UnixMicro())
			signal(q.wake)
		}
	}
}

// lowerHint sets h to t if h is 0 or later than t.
func lowerHint(h *atomic.Int64, t int64) {
	for {
		cur := h.Load()
		if cur != 0 && cur <= t || h.CompareAndSwap(cur, t) {
			return
		}
	}
}

func (o *outbox) forget(id string) {
	o.mu.Lock()
	delete(o.local, id)
	o.mu.Unlock()
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// dispatch claims due messages of q's channel for its free workers.
//
// It reads when the next message is due (NextDue) at most once per claim
// and once per outboxPoll, not on every wake: this instance's own writes
// and retries lower the time it knows by their hint (written, deliver), a
// message sent or finished changes nothing it must read, and what other
// instances write or leave behind is found by the poll. Reading on every wake cost a read per
// message written and per message sent, most of the gateway's CPU under a
// burst.
func (o *outbox) dispatch(q *channelQueue) {
	defer o.wg.Done()
	defer close(q.jobs)
	ctx := context.Background()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		next   time.Time // the next message due, as known; zero: none known
		readAt time.Time // when next was read from the store; zero: read it now
	)
	for {
		select {
		case <-o.stop:
			return
		default:
		}
		if readAt.IsZero() || o.clock().Sub(readAt) >= outboxPoll {
			n, err := o.st.NextDue(ctx, q.name)
			if err != nil {
				o.log.Warn("outbox: reading the queue failed", "channel", q.name, "error", err.Error())
			}
			next, readAt = n, o.clock()
		}
		wait := outboxPoll - o.clock().Sub(readAt)
		switch now := o.clock(); {
		case next.IsZero():
		case !next.After(now) && q.workers-int(q.busy.Load()) > 0:
			ms, err := o.st.ClaimMessages(ctx, q.name, now, o.lease, q.workers-int(q.busy.Load()))
			if err != nil {
				// the store failed: read again after a poll's wait
				o.log.Warn("outbox: claiming messages failed", "channel", q.name, "error", err.Error())
				next, readAt, wait = time.Time{}, now, outboxPoll
				break
			}
			for _, m := range ms {
				if o.settle(m) {
					continue
				}
				q.busy.Add(1)
				q.jobs <- m // room: at most workers are busy
			}
			if len(ms) > 0 {
				readAt = time.Time{} // perhaps more are due
				continue
			}
			// nothing claimable after all: a hint of a message already
			// claimed, or another instance took it (on PostgreSQL, perhaps
			// still in its claim's transaction). Read again shortly, so
			// that what else is due is not forgotten for a poll's wait.
			next, readAt, wait = time.Time{}, time.Time{}, outboxRecheck
		case next.After(now):
			wait = min(wait, next.Sub(now))
		}
		timer.Reset(max(wait, 0))
		select {
		case <-o.stop:
			return
		case <-q.wake:
			if q.reread.Swap(false) {
				readAt = time.Time{}
			}
			if h := q.hint.Swap(0); h != 0 && (next.IsZero() || time.UnixMicro(h).Before(next)) {
				next = time.UnixMicro(h)
			}
		case <-q.freed:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// settle finishes a claimed message that is not to be sent: a decoy (at
// its time, never sent), or one expired (audited). It reports whether m
// was finished.
func (o *outbox) settle(m store.OutboxMessage) bool {
	switch {
	case m.Kind == store.OutboxDecoy:
		o.finish(m, store.OutboxDiscarded)
		return true
	case !o.svcNow().Before(m.ExpiresAt):
		o.finish(m, store.OutboxExpired)
		o.count(m.Channel, "expired")
		o.log.Info("outbox: message expired before it could be sent", "request_id", m.RequestID, "channel", m.Channel, "attempts", m.Attempts)
		if o.failed != nil {
			o.failed(m, "expired_before_send")
		}
		return true
	}
	return false
}

// finish sets m's final state, storing audit (the events of its delivery)
// in the same transaction: one write per message sent, not two.
func (o *outbox) finish(m store.OutboxMessage, state string, audit ...store.AuditEvent) {
	ctx := context.Background()
	if err := o.st.FinishMessage(ctx, m.ID, state, o.clock(), audit...); err != nil {
		// the lease ends and another try follows: the message may leave twice
		o.log.Error("outbox: finishing a message failed", "request_id", m.RequestID, "state", state, "error", err.Error())
		for _, ev := range audit { // the audit line was written; keep the row if the store takes it
			if err := o.st.AppendAudit(ctx, ev); err != nil {
				o.log.Error("audit event not stored", "request_id", ev.RequestID, "event", ev.Type, "error", err.Error())
			}
		}
		return
	}
	o.forget(m.ID)
}

func (o *outbox) count(channel, outcome string) {
	c, _ := o.counts.LoadOrStore(channel+"/"+outcome, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
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

func (o *outbox) work(q *channelQueue) {
	defer o.wg.Done()
	w := &worker{o: o}
	defer w.closeSession()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	for {
		select {
		case m, ok := <-q.jobs:
			if !ok {
				return
			}
			w.deliver(q, m)
			q.busy.Add(-1)
			signal(q.freed)
			if w.sess != nil {
				idle.Reset(outboxSessionIdle)
			}
		case <-idle.C:
			w.closeSession()
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

var errNoSender = errors.New("no sender for the message's channel")

// deliver sends m, then finishes it, or puts it back for a later try.
func (w *worker) deliver(q *channelQueue, m store.OutboxMessage) {
	o := w.o
	var b outboxBody
	err := json.Unmarshal(m.Body, &b)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		switch {
		case b.Email != nil && o.mailer != nil:
			err = w.sendEmail(ctx, *b.Email)
		case b.SMS != nil && o.sms != nil:
			err = o.sms.SendSMS(ctx, *b.SMS)
		default:
			err = errNoSender
		}
		cancel()
	}
	if err == nil {
		var audit []store.AuditEvent
		if o.delivered != nil {
			audit = o.delivered(m)
		}
		o.finish(m, store.OutboxSent, audit...)
		o.count(m.Channel, "sent")
		if q.failing.Swap(false) {
			// the server is back: the messages waiting for a retry need
			// not wait out their back-off
			if n, err := o.st.ExpediteRetries(context.Background(), q.name, o.clock()); err == nil && n > 0 {
				o.log.Info("outbox: the "+q.name+" server accepts messages again, retrying the waiting ones now", "messages", n)
				q.reread.Store(true)
				signal(q.wake)
			}
		}
		return
	}
	q.failing.Store(true)
	if errors.Is(err, errNoSender) || m.Body == nil {
		o.finish(m, store.OutboxFailed)
		o.count(m.Channel, "failed")
		if o.failed != nil {
			o.failed(m, "send_failed")
		}
		return
	}
	o.count(m.Channel, "failed")
	d := o.retryDelays[min(max(m.Attempts, 1), len(o.retryDelays))-1]
	// a long outage retries every message for hours: the first tries are
	// warnings, the rest debug lines (the metrics count every one)
	level := slog.LevelWarn
	if m.Attempts > len(o.retryDelays) {
		level = slog.LevelDebug
	}
	o.log.Log(context.Background(), level, "sending "+m.Channel+" failed, will retry", "request_id", m.RequestID, "attempt", m.Attempts,
		"retry_in", d.String(), "error", err.Error())
	at := o.clock().Add(d)
	if err := o.st.RetryMessage(context.Background(), m.ID, at); err != nil {
		o.log.Error("outbox: putting a message back failed (its lease will end)", "request_id", m.RequestID, "error", err.Error())
		return
	}
	lowerHint(&q.hint, at.UnixMicro()) // the dispatcher learns the retry's time as a write's
	signal(q.wake)
}

// watch reads the queue state every outboxStatsEvery.
func (o *outbox) watch() {
	defer o.wg.Done()
	t := time.NewTicker(outboxStatsEvery)
	defer t.Stop()
	for {
		o.refresh(context.Background())
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
	}
}

func (o *outbox) refresh(ctx context.Context) {
	now := o.clock()
	st, err := o.st.OutboxStats(ctx, now.Add(-outboxRateWindow))
	if err != nil {
		o.log.Warn("outbox: reading the queue state failed", "error", err.Error())
		return
	}
	q := QueueState{PendingCodes: st.PendingCodes, PendingNotices: st.PendingNotices, Known: true,
		SendRate: sendRate(st, now)}
	if !st.OldestCode.IsZero() && now.After(st.OldestCode) {
		q.OldestCode = now.Sub(st.OldestCode)
	}
	q.Busy = o.opts.busy(q)
	o.state.Store(&q)
}

// sendRate is the messages sent per second over the part of the last
// outboxRateWindow in which messages were sent: from the first of them
// (at least outboxRateSpan ago) to now. Over the whole window, the first
// minute of a burst measured a fraction of its rate (100 codes sent in
// 5 s read as 1.7/s, not 20/s), and back-pressure refused new codes that
// would have left within seconds.
func sendRate(st store.OutboxStats, now time.Time) float64 {
	if st.Sent == 0 {
		return 0
	}
	span := min(max(now.Sub(st.FirstSent), outboxRateSpan), outboxRateWindow)
	return float64(st.Sent) / span.Seconds()
}

// outboxRateSpan is the shortest time a send rate is measured over.
const outboxRateSpan = 5 * time.Second

// busy reports whether new codes are refused (QueueState.Busy).
func (o *outbox) busy() bool { return o.state.Load().Busy }

// busy decides back-pressure from the queue of every instance alone: the
// same answer for every username.
func (opts OutboxOptions) busy(q QueueState) bool {
	if q.PendingCodes == 0 {
		return false
	}
	if opts.MaxPending > 0 && q.PendingCodes >= opts.MaxPending {
		return true
	}
	rate := max(q.SendRate, outboxMinRate)
	return float64(q.PendingCodes)/rate > opts.MaxWait.Seconds() || q.OldestCode > opts.MaxWait
}

// close stops the outbox once the messages this instance wrote are
// finished, or when timeout has passed: what is left stays in the store,
// for the next start or another instance, and is logged.
func (o *outbox) close(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for i := 0; o.pendingLocal() > 0 && time.Now().Before(deadline); i++ {
		// another instance may have sent some of them: once a fresh read
		// finds nothing pending at all, only decoys can be left
		if i%10 == 9 {
			o.refresh(context.Background())
			if st := o.state.Load(); st.Known && st.PendingCodes+st.PendingNotices == 0 {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	o.once.Do(func() { close(o.stop) })
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max(time.Until(deadline), time.Second)):
	}
	if n := o.pendingLocal(); n > 0 {
		o.log.Warn("outbox: messages left in the store for the next start or another instance", "messages", n, "timeout", timeout.String())
	}
}

func (o *outbox) pendingLocal() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.local)
}
