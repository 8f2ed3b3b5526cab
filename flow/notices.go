package flow

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// Notices and their budgets (security notes: notices obey budgets).
//
// Every notice to an account spends one unit of the account's notice
// budget (Limits.NoticesPerAccount in Limits.Window), and every SMS copy of
// it spends the global hourly SMS budgets (Limits.SMSPerHour and
// Limits.SMSPerPrefixPerHour), as codes do. A notice over the account's
// budget is held whole; an SMS copy over the SMS budgets is held on its
// own while the other channels are told. Nothing is dropped: what is held
// for an account waits in the store (store.HoldNotice, one row per
// account) and is told as one "several changes" notice on every channel
// once the window that held it has ended (SendHeldNotices, which `latchkey
// serve` runs every minute, on any instance, each held notice once). A
// coalesced notice spends the budgets too but is never held by the
// account's budget, so an account gets at most one in a window; its SMS
// copies over the SMS budgets are held again for the next hour.
//
// The reset notice (password_reset) is the security signal of the whole
// product: it is never held. It spends the account's and the SMS budgets
// like any other notice (so the notices after it are held sooner) and
// goes out on every channel even when they are spent. It cannot be
// pumped: every reset needs a flow proven afresh, within the start, send
// and code budgets.

// noticeEventReset is the notice that is never held.
const noticeEventReset = "password_reset"

// userNotice are the notices notifications.users turns off: a reset or
// unlock of the account, a method added or removed. Warnings of an attack
// and password changes are sent whatever it says.
var userNotice = map[string]bool{noticeEventReset: true, "unlocked": true, "unlock_not_locked": true,
	"method_added": true, "method_removed": true}

// noticeEventChanges is the coalesced notice.
const noticeEventChanges = "changes"

// heldBatch is how many held notices SendHeldNotices takes at a time.
const heldBatch = 100

// heldRetry is how long a held notice waits again when the directory did
// not answer at its due time (the directory mail would be missed).
const heldRetry = 5 * time.Minute

type noticeChannel struct{ typ, addr string }

// noticeChannels are the verified email and SMS methods of u (but skip)
// and u's directory mail, each address once.
func (s *Service) noticeChannels(ctx context.Context, u *directory.User, skip string) []noticeChannel {
	var out []noticeChannel
	seen := map[string]bool{}
	add := func(typ, addr string) {
		key := typ + ":" + strings.ToLower(addr)
		if addr == "" || seen[key] {
			return
		}
		seen[key] = true
		out = append(out, noticeChannel{typ, addr})
	}
	methods, _ := s.d.Store.ListMethods(ctx, u.ID)
	for _, meth := range methods {
		// only an email or SMS method has an address (an app, passkey or
		// questions keep a Secret)
		if _, ch := channelOf(meth.Type); meth.Verified && meth.ID != skip && ch {
			add(meth.Type, meth.Address)
		}
	}
	add(store.MethodEmail, u.Mail)
	return out
}

func (s *Service) noticeData(u *directory.User, event string, at time.Time, from string) noticeMail {
	return noticeMail{Product: s.o.ProductName, Event: event, Time: at.UTC().Format("2 January 2006 15:04 MST"), From: from,
		URL: s.o.PublicURL.String(), Helpdesk: s.live().Helpdesk, Name: u.DisplayName}
}

// noticeUser tells u about event on every channel, within the budgets
// (see above); skip excludes one method id. The messages are written to
// the outbox on their own, after the change they tell of; a password
// write's notice is written in the write's own record (passwordWritten).
func (s *Service) noticeUser(ctx context.Context, u *directory.User, event, skip string, m Meta) {
	for _, msg := range s.notices(ctx, u, event, skip, m) {
		s.out.put(ctx, msg)
	}
}

// notices are the outbox messages that tell u about event on every
// channel, within the budgets (see above): what the budgets hold is held
// (and audited) here, the rest is returned to be written.
func (s *Service) notices(ctx context.Context, u *directory.User, event, skip string, m Meta) []store.OutboxMessage {
	ctx = context.WithoutCancel(ctx)
	if userNotice[event] && !s.live().Notifications.Users {
		// the admin turned these notices off (notifications.users); an
		// admin's own account is told all the same (its methods sign in
		// to the console), and so is one whose membership cannot be read
		if admin, err := s.isAdmin(ctx, u); err == nil && !admin {
			s.record(ctx, m, "notice.not_sent", u.ID, "notifications_off", map[string]string{"event": event})
			return nil
		}
	}
	always := event == noticeEventReset
	if !s.hit(ctx, "notice:acct:"+u.ID, s.o.Limits.NoticesPerAccount, s.o.Limits.Window) && !always {
		s.holdNotice(ctx, u, []string{event}, false, s.windowEnd(s.o.Limits.Window), "notice_budget", m)
		return nil
	}
	data := s.noticeData(u, event, s.now(), m.ClientIP)
	smsHeld := false
	var msgs []store.OutboxMessage
	for _, c := range s.noticeChannels(ctx, u, skip) {
		// the SMS budgets are spent by every SMS copy, the reset's too
		if c.typ == store.MethodSMS && s.smsBudget(ctx, c.addr) != "" && !always {
			smsHeld = true
			continue
		}
		if msg, ok := s.noticeMessage(c.typ, c.addr, u.ID, data, m); ok {
			msgs = append(msgs, msg)
		}
	}
	if smsHeld {
		s.holdNotice(ctx, u, []string{event}, true, s.windowEnd(time.Hour), "sms_budget", m)
	}
	return msgs
}

// windowEnd is the end of the budget window of length w that holds now
// (windows are aligned to the Unix epoch, as the store's counters are).
func (s *Service) windowEnd(w time.Duration) time.Time {
	t, l := s.now().UnixMicro(), w.Microseconds()
	start := t - t%l
	if t%l < 0 {
		start -= l
	}
	return time.UnixMicro(start + l).UTC()
}

// holdNotice keeps events for u to be told in one notice after due, and
// audits it (notice.held; outcome failed if the store refused, which is
// logged too).
func (s *Service) holdNotice(ctx context.Context, u *directory.User, events []string, smsOnly bool, due time.Time, reason string, m Meta) {
	var data map[string]string
	if u.DN != "" {
		data = map[string]string{"dn": u.DN}
	}
	outcome := "held"
	err := s.d.Store.HoldNotice(ctx, store.HeldNotice{AccountID: u.ID, Events: events, Data: data, SMSOnly: smsOnly, HeldAt: s.now(), DueAt: due})
	if err != nil {
		outcome = "failed"
		s.log.Error("holding a notice failed", "request_id", m.RequestID, "error", err.Error())
	}
	s.record(ctx, m, "notice.held", u.ID, outcome, map[string]string{"event": strings.Join(events, ","), "reason": reason})
}

// SendHeldNotices tells each account whose held notices are due, in one
// "several changes" notice per channel, and returns how many accounts it
// told. `latchkey serve` calls it every minute. Held notices wait in the
// store, so any instance may send them, and each is sent once.
func (s *Service) SendHeldNotices(ctx context.Context) (int, error) {
	total := 0
	for {
		ns, err := s.d.Store.TakeDueNotices(ctx, s.now(), heldBatch)
		if err != nil {
			return total, err
		}
		for _, n := range ns {
			if s.sendHeld(ctx, n) {
				total++
			}
		}
		if len(ns) < heldBatch {
			return total, nil
		}
	}
}

// sendHeld tells one held notice; false if it was held again because the
// directory did not answer.
func (s *Service) sendHeld(ctx context.Context, n store.HeldNotice) bool {
	ctx = context.WithoutCancel(ctx)
	m := Meta{RequestID: "held-notice-" + newID()}
	u := &directory.User{ID: n.AccountID}
	if dn := n.Data["dn"]; dn != "" {
		r, err := s.d.Directory.Refresh(ctx, &directory.User{DN: dn})
		switch {
		case errors.Is(err, directory.ErrUnavailable):
			u.DN = dn
			s.holdNotice(ctx, u, n.Events, n.SMSOnly, s.now().Add(heldRetry), "directory_unavailable", m)
			return false
		case err == nil && r.ID == n.AccountID:
			u = r
		}
	}
	// spent, never held by: at most one coalesced notice in a window
	s.hit(ctx, "notice:acct:"+u.ID, s.o.Limits.NoticesPerAccount, s.o.Limits.Window)
	data := s.noticeData(u, noticeEventChanges, n.HeldAt, "")
	for _, e := range n.Events {
		data.Changes = append(data.Changes, changeText(e))
	}
	smsHeld := false
	for _, c := range s.noticeChannels(ctx, u, "") {
		if n.SMSOnly && c.typ != store.MethodSMS {
			continue // told already
		}
		if c.typ == store.MethodSMS && s.smsBudget(ctx, c.addr) != "" {
			smsHeld = true
			continue
		}
		if msg, ok := s.noticeMessage(c.typ, c.addr, u.ID, data, m); ok {
			s.out.put(ctx, msg)
		}
	}
	if smsHeld {
		s.holdNotice(ctx, u, n.Events, true, s.windowEnd(time.Hour), "sms_budget", m)
	}
	s.record(ctx, m, "notice.coalesced", u.ID, "sent", map[string]string{"events": strings.Join(n.Events, ","),
		"held_at": n.HeldAt.UTC().Format(time.RFC3339)})
	return true
}

// changeText is the sentence for one event in a coalesced notice.
func changeText(event string) string {
	switch event {
	case "method_added":
		return "A recovery method was added."
	case "method_removed":
		return "A recovery method was removed."
	case "password_changed":
		return "Your password was changed."
	case noticeEventReset:
		return "Your password was reset."
	case "unlocked":
		return "Your account was unlocked."
	case "unlock_not_locked":
		return "Someone proved your recovery methods to unlock your account; it was not locked, so nothing changed."
	case "partial_failure":
		return "Someone proved one of your recovery methods to reset your password, then failed to prove a second one."
	}
	return "Something changed in the recovery settings of your account."
}

// noticeMessage is the outbox message of a notice on channel typ to addr;
// false if its text could not be made (logged by the templates).
func (s *Service) noticeMessage(typ, addr, account string, data noticeMail, m Meta) (store.OutboxMessage, bool) {
	j := job{requestID: m.RequestID, clientIP: m.ClientIP, account: account, purpose: "notice:" + data.Event}
	if typ == store.MethodSMS {
		body, err := s.mails.sms("notice", data)
		if err != nil {
			return store.OutboxMessage{}, false
		}
		j.sms = &notify.SMS{To: addr, Body: body}
	} else {
		e, err := s.mails.email("notice", addr, data)
		if err != nil {
			return store.OutboxMessage{}, false
		}
		j.email = &e
	}
	return s.out.notice(j), true
}

// noticeEventAdminReset tells the other admins that an admin's password
// was reset (notifications.admins).
const noticeEventAdminReset = "admin_password_reset"

// noticeAdmins tells every other admin, at the directory mail, that u (an
// admin) had the password reset through self-service, when
// notifications.admins asks for it. The admins are the nested members of
// admin.groups; a directory that cannot list them is logged.
func (s *Service) noticeAdmins(ctx context.Context, u *directory.User, m Meta) {
	ctx = context.WithoutCancel(ctx)
	if !s.live().Notifications.Admins || !s.AdminEnabled() {
		return
	}
	if admin, err := s.isAdmin(ctx, u); err != nil || !admin {
		return
	}
	lister, ok := s.d.Directory.(directory.Lister)
	if !ok {
		s.log.Error("admins not told of an admin's reset: the directory cannot list group members")
		return
	}
	told := map[string]bool{policy.NormalizeDN(u.DN): true}
	for _, g := range s.o.Admin.Groups {
		members, err := lister.NestedMembers(ctx, g)
		if err != nil {
			s.log.Error("admins not told of an admin's reset: reading an admin group failed", "group", g, "error", err.Error())
			continue
		}
		for dn := range members {
			if told[dn] {
				continue
			}
			told[dn] = true
			a, err := s.d.Directory.Refresh(ctx, &directory.User{DN: dn})
			if err != nil || a.Mail == "" {
				continue
			}
			data := s.noticeData(a, noticeEventAdminReset, s.now(), m.ClientIP)
			data.Subject = u.DisplayName
			if data.Subject == "" {
				data.Subject = u.Username
			}
			data.SubjectName = u.Username
			if msg, ok := s.noticeMessage(store.MethodEmail, a.Mail, a.ID, data, m); ok {
				s.out.put(ctx, msg)
			}
		}
	}
}
