package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

func outboxMsg(kind, channel string, now time.Time, body string) store.OutboxMessage {
	return store.OutboxMessage{ID: newID(), Kind: kind, Channel: channel, Body: []byte(body), AccountID: "acct-o",
		RequestID: "req-" + kind, ClientIP: "192.0.2.7", Purpose: "reset", CreatedAt: now, NotBefore: now, ExpiresAt: now.Add(10 * time.Minute)}
}

func claimIDs(ms []store.OutboxMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// outboxNextDue: the earliest NotBefore of a message not leased, or the
// end of a lease if that comes first (a lease that ended is due at its
// end, in the past); another channel's messages and finished ones do not
// count.
func (s *suite) outboxNextDue(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	wantNext := func(what string, want time.Time) {
		t.Helper()
		next, err := st.NextDue(ctx, store.MethodEmail)
		wantErr(t, "NextDue "+what, err, nil)
		if !next.Equal(want) {
			t.Fatalf("NextDue %s: %v, want %v", what, next, want)
		}
	}
	enqueue := func(kind string, notBefore time.Time) store.OutboxMessage {
		t.Helper()
		m := outboxMsg(kind, store.MethodEmail, notBefore, "body")
		wantErr(t, "EnqueueMessage", st.EnqueueMessage(ctx, m), nil)
		return m
	}
	claim := func(at time.Time, lease time.Duration, want store.OutboxMessage) {
		t.Helper()
		got, err := st.ClaimMessages(ctx, store.MethodEmail, at, lease, 1)
		wantErr(t, "ClaimMessages", err, nil)
		mustEqual(t, "claimed", claimIDs(got), []string{want.ID})
	}
	wantNext("of an empty outbox", time.Time{})
	sms := outboxMsg(store.OutboxCode, store.MethodSMS, now.Add(-time.Hour), "sms")
	wantErr(t, "EnqueueMessage", st.EnqueueMessage(ctx, sms), nil)
	wantNext("with only another channel's message", time.Time{})

	notice := enqueue(store.OutboxNotice, now.Add(10*time.Second))
	code := enqueue(store.OutboxCode, now.Add(20*time.Second))
	wantNext("of two later messages", notice.NotBefore)
	held := enqueue(store.OutboxCode, now.Add(-5*time.Second))
	wantNext("with one due", held.NotBefore)
	claim(now, time.Minute, held) // leased past the notice
	wantNext("with the due one leased", notice.NotBefore)
	short := enqueue(store.OutboxCode, now.Add(-4*time.Second))
	claim(now, 5*time.Second, short) // leased until before the notice
	wantNext("with a lease that ends first", now.Add(5*time.Second))
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, short.ID, store.OutboxSent, now), nil)
	wantNext("once that one is sent", notice.NotBefore)
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, notice.ID, store.OutboxSent, now), nil)
	wantNext("once the notice is sent", code.NotBefore)
	old := enqueue(store.OutboxNotice, now.Add(-3*time.Minute))
	claim(now.Add(-3*time.Minute), time.Minute, old) // its worker died
	wantNext("with a lease that ended", now.Add(-2*time.Minute))
	wantErr(t, "RetryMessage", st.RetryMessage(ctx, old.ID, now.Add(15*time.Second)), nil)
	wantNext("once it is put back", now.Add(15*time.Second))
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, old.ID, store.OutboxSent, now), nil)
	wantNext("once the retry is sent", code.NotBefore)
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, code.ID, store.OutboxSent, now), nil)
	wantNext("with only a lease left", now.Add(time.Minute))
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, held.ID, store.OutboxSent, now), nil)
	wantNext("with all sent", time.Time{})
}

// outboxFinishAudits: the events given to FinishMessage are stored with
// the finish; none for a message that does not exist; finishing a finished
// message stores them and leaves its state.
func (s *suite) outboxFinishAudits(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	m := outboxMsg(store.OutboxCode, store.MethodEmail, now, "code body 123456")
	wantErr(t, "EnqueueMessage", st.EnqueueMessage(ctx, m), nil)
	ev := func(outcome string) store.AuditEvent {
		return store.AuditEvent{Time: now, Type: "code.delivered", RequestID: m.RequestID, AccountID: "acct-fin", Outcome: outcome,
			Details: map[string]string{"type": "email"}}
	}
	events := func() []string {
		t.Helper()
		evs, err := st.ListAudit(ctx, store.AuditQuery{AccountID: "acct-fin"})
		wantErr(t, "ListAudit", err, nil)
		var out []string
		for _, e := range evs {
			out = append(out, e.Type+"/"+e.Outcome+"/"+e.Details["type"])
		}
		slices.Sort(out)
		return out
	}
	wantErr(t, "FinishMessage missing", st.FinishMessage(ctx, newID(), store.OutboxSent, now, ev("lost")), store.ErrNotFound)
	mustEqual(t, "events after finishing a missing message", len(events()), 0)
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, m.ID, store.OutboxSent, now, ev("first")), nil)
	mustEqual(t, "events after the finish", events(), []string{"code.delivered/first/email"})
	wantErr(t, "FinishMessage again", st.FinishMessage(ctx, m.ID, store.OutboxFailed, now, ev("second")), nil)
	mustEqual(t, "events after the second finish", events(), []string{"code.delivered/first/email", "code.delivered/second/email"})
	stats, err := st.OutboxStats(ctx, now.Add(-time.Hour))
	wantErr(t, "OutboxStats", err, nil)
	mustEqual(t, "sent (the second finish left the state)", stats.Sent, 1)
	wantErr(t, "FinishMessage without events", st.FinishMessage(ctx, m.ID, store.OutboxSent, now), nil)
	mustEqual(t, "events after a finish without events", len(events()), 2)
}

// outboxClaim: due messages are claimed codes (and decoys) first, then the
// oldest; a message not yet due, another channel's, or one leased is not
// claimed; the body comes back as written; a lease that ran out lets the
// message be claimed again (attempts counted); finishing deletes the body
// and keeps it from every later claim; retry makes it due again later, and
// ExpediteRetries due at once.
func (s *suite) outboxClaim(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	notice := outboxMsg(store.OutboxNotice, store.MethodEmail, now.Add(-2*time.Second), "notice body")
	code := outboxMsg(store.OutboxCode, store.MethodEmail, now.Add(-time.Second), "code body 123456")
	decoy := outboxMsg(store.OutboxDecoy, store.MethodEmail, now, "")
	later := outboxMsg(store.OutboxCode, store.MethodEmail, now, "later")
	later.NotBefore = now.Add(time.Minute)
	sms := outboxMsg(store.OutboxCode, store.MethodSMS, now, "sms body")
	for _, m := range []store.OutboxMessage{notice, code, decoy, later, sms} {
		wantErr(t, "EnqueueMessage", st.EnqueueMessage(ctx, m), nil)
	}
	wantErr(t, "EnqueueMessage twice", st.EnqueueMessage(ctx, code), store.ErrConflict)
	bad := outboxMsg("other", store.MethodEmail, now, "")
	wantErr(t, "EnqueueMessage unknown kind", st.EnqueueMessage(ctx, bad), store.ErrInvalid)
	bad = outboxMsg(store.OutboxCode, store.MethodEmail, now, "")
	bad.ExpiresAt = time.Time{}
	wantErr(t, "EnqueueMessage without expiry", st.EnqueueMessage(ctx, bad), store.ErrInvalid)
	_, err := st.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 0)
	wantErr(t, "ClaimMessages limit 0", err, store.ErrInvalid)

	next, err := st.NextDue(ctx, store.MethodEmail)
	wantErr(t, "NextDue", err, nil)
	if !next.Equal(notice.NotBefore) {
		t.Fatalf("NextDue %v, want %v", next, notice.NotBefore)
	}
	stats, err := st.OutboxStats(ctx, now.Add(-time.Hour))
	wantErr(t, "OutboxStats", err, nil)
	mustEqual(t, "stats before", stats, store.OutboxStats{PendingCodes: 3, PendingNotices: 1, OldestCode: code.NotBefore})

	got, err := st.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 2)
	wantErr(t, "ClaimMessages", err, nil)
	mustEqual(t, "claimed first", claimIDs(got), []string{code.ID, decoy.ID})
	if string(got[0].Body) != "code body 123456" || got[0].Attempts != 1 || got[0].Kind != store.OutboxCode ||
		got[0].AccountID != "acct-o" || got[0].RequestID != "req-code" || got[0].ClientIP != "192.0.2.7" || got[0].Purpose != "reset" ||
		!got[0].ExpiresAt.Equal(code.ExpiresAt) || !got[0].CreatedAt.Equal(code.CreatedAt) {
		t.Fatalf("claimed message %+v", got[0])
	}
	got, err = st.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 10)
	wantErr(t, "ClaimMessages", err, nil)
	mustEqual(t, "claimed next (the later one is not due)", claimIDs(got), []string{notice.ID})
	got, err = st.ClaimMessages(ctx, store.MethodEmail, now.Add(30*time.Second), time.Minute, 10)
	wantErr(t, "ClaimMessages", err, nil)
	mustEqual(t, "claimed while leased", len(got), 0)

	// the code's worker "died": its lease ends, another claims it
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, notice.ID, store.OutboxSent, now), nil)
	wantErr(t, "FinishMessage decoy", st.FinishMessage(ctx, decoy.ID, store.OutboxDiscarded, now), nil)
	got, err = st.ClaimMessages(ctx, store.MethodEmail, now.Add(61*time.Second), time.Minute, 10)
	wantErr(t, "ClaimMessages after the lease", err, nil)
	mustEqual(t, "claimed after the lease", claimIDs(got), []string{code.ID, later.ID})
	if got[0].Attempts != 2 || string(got[0].Body) != "code body 123456" {
		t.Fatalf("reclaimed message %+v", got[0])
	}
	wantErr(t, "RetryMessage", st.RetryMessage(ctx, later.ID, now.Add(5*time.Minute)), nil)
	wantErr(t, "RetryMessage missing", st.RetryMessage(ctx, newID(), now), store.ErrNotFound)
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, code.ID, store.OutboxSent, now.Add(61*time.Second)), nil)
	wantErr(t, "FinishMessage again", st.FinishMessage(ctx, code.ID, store.OutboxFailed, now.Add(62*time.Second)), nil)
	wantErr(t, "FinishMessage missing", st.FinishMessage(ctx, newID(), store.OutboxSent, now), store.ErrNotFound)
	wantErr(t, "FinishMessage bad state", st.FinishMessage(ctx, later.ID, store.OutboxPending, now), store.ErrInvalid)
	wantErr(t, "RetryMessage finished", st.RetryMessage(ctx, code.ID, now), store.ErrNotFound)

	got, err = st.ClaimMessages(ctx, store.MethodEmail, now.Add(4*time.Minute), time.Minute, 10)
	wantErr(t, "ClaimMessages", err, nil)
	mustEqual(t, "claimed before the retry time", len(got), 0)
	// the server is back: the retry is brought forward (sms: untouched,
	// never tried)
	n, err := st.ExpediteRetries(ctx, store.MethodEmail, now.Add(4*time.Minute))
	wantErr(t, "ExpediteRetries", err, nil)
	mustEqual(t, "expedited", n, 1)
	n, err = st.ExpediteRetries(ctx, store.MethodSMS, now.Add(4*time.Minute))
	wantErr(t, "ExpediteRetries sms", err, nil)
	mustEqual(t, "expedited sms", n, 0)
	got, err = st.ClaimMessages(ctx, store.MethodEmail, now.Add(4*time.Minute), time.Minute, 10)
	wantErr(t, "ClaimMessages", err, nil)
	mustEqual(t, "claimed once expedited", claimIDs(got), []string{later.ID})
	got, err = st.ClaimMessages(ctx, store.MethodSMS, now, time.Minute, 10)
	wantErr(t, "ClaimMessages sms", err, nil)
	mustEqual(t, "sms claimed", claimIDs(got), []string{sms.ID})

	stats, err = st.OutboxStats(ctx, now.Add(-time.Hour))
	wantErr(t, "OutboxStats", err, nil)
	mustEqual(t, "stats after", stats, store.OutboxStats{PendingCodes: 2, Sent: 2, OldestCode: sms.NotBefore, FirstSent: now})
	stats, err = st.OutboxStats(ctx, now.Add(time.Second))
	wantErr(t, "OutboxStats", err, nil)
	mustEqual(t, "sent since", stats.Sent, 1)
	mustEqual(t, "first sent since", stats.FirstSent, now.Add(61*time.Second))

	// Purge keeps finished rows for OutboxKeepDone, then deletes them;
	// pending ones stay
	n, err = st.Purge(ctx, now.Add(store.OutboxKeepDone-time.Minute))
	wantErr(t, "Purge", err, nil)
	if n != 0 {
		t.Fatalf("Purge removed %d rows before OutboxKeepDone, want 0", n)
	}
	n, err = st.Purge(ctx, now.Add(store.OutboxKeepDone+2*time.Minute))
	wantErr(t, "Purge", err, nil)
	if n < 3 {
		t.Fatalf("Purge removed %d rows, want at least the 3 finished messages", n)
	}
	stats, err = st.OutboxStats(ctx, now.Add(-time.Hour))
	wantErr(t, "OutboxStats", err, nil)
	mustEqual(t, "stats after purge", stats, store.OutboxStats{PendingCodes: 2, OldestCode: sms.NotBefore})
}

// outboxIssueCode: IssueCodeWithMessage writes the code and the message
// together, or neither (no flow: ErrNotFound, no message); the message's
// expiry is lowered to the flow's; messages survive a restart.
func (s *suite) outboxIssueCode(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-o", now)) // expires in 15 minutes
	m := outboxMsg(store.OutboxCode, store.MethodEmail, now, "your code is 424242")
	m.ExpiresAt = now.Add(time.Hour)
	wantErr(t, "IssueCodeWithMessage", st.IssueCodeWithMessage(ctx, code(f, "m1", "h", now), m), nil)
	wantErr(t, "RedeemCode", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("h"), 5, now), nil)

	gone := newFlow("acct-o", now)
	m2 := outboxMsg(store.OutboxCode, store.MethodEmail, now, "never")
	wantErr(t, "IssueCodeWithMessage without a flow", st.IssueCodeWithMessage(ctx, code(gone, "m1", "h", now), m2), store.ErrNotFound)
	other := code(f, "m1", "h", now)
	other.AccountID = "someone-else"
	wantErr(t, "IssueCodeWithMessage other account", st.IssueCodeWithMessage(ctx, other, m2), store.ErrInvalid)
	wantErr(t, "Close", st.Close(), nil)

	st = s.open(t) // a restart
	got, err := st.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 10)
	wantErr(t, "ClaimMessages", err, nil)
	mustEqual(t, "claimed", claimIDs(got), []string{m.ID})
	if !got[0].ExpiresAt.Equal(f.ExpiresAt) || string(got[0].Body) != "your code is 424242" {
		t.Fatalf("message %+v: want the flow's expiry %v and the body", got[0], f.ExpiresAt)
	}
}

// outboxConcurrentClaims: claimers racing on one instance or two take
// every message exactly once.
func (s *suite) outboxConcurrentClaims(t *testing.T) {
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprintf("instances=%d", instances), func(t *testing.T) {
			stores := []store.Store{s.open(t)}
			if instances == 2 {
				stores = append(stores, s.open(t))
			}
			ctx, now := ctxT(t), base()
			const msgs = 60
			want := map[string]bool{}
			for range msgs {
				m := outboxMsg(store.OutboxCode, store.MethodEmail, now, "b")
				want[m.ID] = true
				wantErr(t, "EnqueueMessage", stores[0].EnqueueMessage(ctx, m), nil)
			}
			var (
				mu  sync.Mutex
				got = map[string]int{}
			)
			errs := race(concurrency, stores, func(st store.Store, i int) error {
				for {
					ms, err := st.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 3)
					if err != nil || len(ms) == 0 {
						return err
					}
					mu.Lock()
					for _, m := range ms {
						got[m.ID]++
					}
					mu.Unlock()
				}
			})
			tally(t, errs)
			if len(got) != msgs {
				t.Fatalf("%d of %d messages claimed", len(got), msgs)
			}
			for id, n := range got {
				if n != 1 || !want[id] {
					t.Fatalf("message claimed %d times (known: %v)", n, want[id])
				}
			}
		})
	}
}

// outboxAtRest: a message body is not in plaintext at rest, and is gone
// once the message is finished.
func (s *suite) outboxAtRest(t *testing.T) {
	if s.cfg.rawBytes == nil {
		t.Skip("no WithRawBytes option: cannot inspect the bytes at rest")
	}
	st, ctx, now := s.open(t), ctxT(t), base()
	const secret = "outbox-code-marker-731946"
	m := outboxMsg(store.OutboxCode, store.MethodEmail, now, "Your code: "+secret)
	wantErr(t, "EnqueueMessage", st.EnqueueMessage(ctx, m), nil)
	raw := s.cfg.rawBytes(t, st)
	if !bytes.Contains(raw, []byte("req-code")) {
		t.Fatalf("raw bytes do not hold the message row: the WithRawBytes function does not return the stored data")
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the body of a pending message is in plaintext at rest")
	}
	got, err := st.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 1)
	wantErr(t, "ClaimMessages", err, nil)
	if len(got) != 1 || !bytes.Contains(got[0].Body, []byte(secret)) {
		t.Fatalf("claimed %+v", got)
	}
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, m.ID, store.OutboxSent, now), nil)
}

// outboxAfterPasswordWrite: the record of a password write (counters
// forgotten, flows and sessions ended, the audit event) and the notices
// that tell of it are one transaction: all of them, or, when one part
// fails (here a notice whose id is taken), none.
func (s *suite) outboxAfterPasswordWrite(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	rec, ok := st.(store.PasswordWriteRecorder)
	if !ok {
		t.Fatal("the store does not implement store.PasswordWriteRecorder")
	}
	const acct = "acct-pw"
	f := mustCreateFlow(t, st, newFlow(acct, now))
	sess := store.Session{ID: newID(), AccountID: acct, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	wantErr(t, "CreateSession", st.CreateSession(ctx, sess), nil)
	if _, err := st.Hit(ctx, "bindfail:"+acct, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	ev := store.AuditEvent{Time: now, Type: "reset.completed", RequestID: "req-pw", AccountID: acct, Outcome: "success"}
	mail := outboxMsg(store.OutboxNotice, store.MethodEmail, now, "your password was reset")
	mail.AccountID = acct
	sms := outboxMsg(store.OutboxNotice, store.MethodSMS, now, "password reset")
	sms.AccountID = acct
	state := func() string {
		t.Helper()
		_, ferr := st.GetFlow(ctx, f.ID, now)
		_, serr := st.GetSession(ctx, sess.ID, now)
		n, err := st.Count(ctx, "bindfail:"+acct, time.Hour, now)
		wantErr(t, "Count", err, nil)
		evs, err := st.ListAudit(ctx, store.AuditQuery{AccountID: acct})
		wantErr(t, "ListAudit", err, nil)
		return fmt.Sprintf("flow %v, session %v, count %d, events %d", ferr == nil, serr == nil, n, len(evs))
	}

	// a notice whose id is taken: the whole record fails
	wantErr(t, "EnqueueMessage", st.EnqueueMessage(ctx, sms), nil)
	taken := mail
	taken.ID = sms.ID
	if err := rec.AfterPasswordWrite(ctx, acct, []string{"bindfail:" + acct}, true, ev, taken); err == nil {
		t.Fatal("AfterPasswordWrite with a notice whose id is taken: no error")
	}
	mustEqual(t, "after the failed record", state(), "flow true, session true, count 1, events 0")
	got, err := st.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 10)
	wantErr(t, "ClaimMessages", err, nil)
	mustEqual(t, "mail notices after the failed record", len(got), 0)
	wantErr(t, "FinishMessage", st.FinishMessage(ctx, sms.ID, store.OutboxSent, now), nil)

	sms.ID = newID()
	wantErr(t, "AfterPasswordWrite", rec.AfterPasswordWrite(ctx, acct, []string{"bindfail:" + acct}, true, ev, mail, sms), nil)
	mustEqual(t, "after the record", state(), "flow false, session false, count 0, events 1")
	for _, want := range []store.OutboxMessage{mail, sms} {
		got, err := st.ClaimMessages(ctx, want.Channel, now, time.Minute, 10)
		wantErr(t, "ClaimMessages", err, nil)
		if len(got) != 1 || got[0].ID != want.ID || string(got[0].Body) != string(want.Body) || got[0].Kind != store.OutboxNotice {
			t.Fatalf("%s notices claimed: %+v, want %s", want.Channel, got, want.ID)
		}
	}
}
