package flow

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/store"
)

// The console's Blocked page: accounts and client addresses the gateway
// held back within the budgets' window (limits.window), read from the
// audit's blocked events, and the admin's unblock, which forgets every
// budget counter of one account or one address.

// Held is one account or client address the gateway held back lately.
type Held struct {
	// AccountID is set for an account, ClientIP for an address.
	AccountID string `json:"account_id,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	// Reasons are the blocked events' reasons (send_budget, bind_budget,
	// code_budget, sign_in_ip_budget...), each once.
	Reasons []string `json:"reasons"`
	// Count is how many blocked events, Last the latest.
	Count int       `json:"count"`
	Last  time.Time `json:"last"`
}

// accountBudgetKeys are the counter keys of the budgets one account
// spends (limits.go, codes.go, start.go, appguess.go): an unblock forgets
// them. Not the count of wrong passwords (bindKey): it keeps the
// directory's own lockout from being reached by passwords the gateway
// forwards, and forgetting it would let more through than the directory
// allows; it ends with limits.bind_failure_window.
func accountBudgetKeys(id string) []string {
	acct := "acct:" + id
	return []string{startKey(acct), sendKey(acct), codeFailKey(acct), codeFailKey(adminCodeAccount(id)),
		appFailKey(acct), appNoticeKey(acct), appBlockKey(acct)}
}

// addressBudgetPrefixes are the prefixes of the per-address budgets
// (addressHits): "<prefix>-ip:<address>".
var addressBudgetPrefixes = []string{"start", "signin"}

// Blocked lists what the gateway held back within the budgets' window,
// the latest first: accounts, then addresses.
func (s *Service) Blocked(ctx context.Context, sess store.Session) ([]Held, error) {
	since := s.now().Add(-s.o.Limits.Window)
	byKey := map[string]*Held{}
	var order []string
	var before int64
	for range 10 { // at most 10,000 events
		evs, err := s.d.Store.ListAudit(ctx, store.AuditQuery{Type: "blocked", Since: since, BeforeSeq: before, Limit: store.MaxAuditLimit})
		if err != nil {
			return nil, storeProblem(err)
		}
		for _, e := range evs {
			k := "a:" + e.AccountID
			if e.AccountID == "" {
				if e.ClientIP == "" {
					continue
				}
				k = "i:" + e.ClientIP
			}
			h, ok := byKey[k]
			if !ok {
				h = &Held{Last: e.Time}
				if e.AccountID != "" {
					h.AccountID = e.AccountID
				} else {
					h.ClientIP = e.ClientIP
				}
				byKey[k] = h
				order = append(order, k)
			}
			h.Count++
			if !slices.Contains(h.Reasons, e.Outcome) {
				h.Reasons = append(h.Reasons, e.Outcome)
			}
		}
		if len(evs) < store.MaxAuditLimit {
			break
		}
		before = evs[len(evs)-1].Seq
	}
	unblocked, err := s.unblockedSince(ctx, since)
	if err != nil {
		return nil, err
	}
	out := make([]Held, 0, len(order))
	for _, k := range order {
		// held back before an admin's unblock: not held any more
		if at, ok := unblocked[k]; ok && !byKey[k].Last.After(at) {
			continue
		}
		out = append(out, *byKey[k])
	}
	slices.SortStableFunc(out, func(a, b Held) int {
		if (a.AccountID == "") != (b.AccountID == "") {
			if a.AccountID != "" {
				return -1
			}
			return 1
		}
		return 0
	})
	return out, nil
}

// unblockedSince is the time of the latest unblock of each account ("a:"
// + id) and address ("i:" + address) since since.
func (s *Service) unblockedSince(ctx context.Context, since time.Time) (map[string]time.Time, error) {
	evs, err := s.d.Store.ListAudit(ctx, store.AuditQuery{Type: "admin.unblocked", Since: since, Limit: store.MaxAuditLimit})
	if err != nil {
		return nil, storeProblem(err)
	}
	out := map[string]time.Time{}
	for _, e := range evs {
		k := "a:" + e.Details["account"]
		if e.Details["address"] != "" {
			k = "i:" + e.Details["address"]
		}
		if e.Time.After(out[k]) {
			out[k] = e.Time
		}
	}
	return out, nil
}

// Unblock forgets every budget counter of one account (by username or
// account id) or one client address, and audits it (admin.unblocked)
// with what was unblocked. Exactly one of account and address is given.
func (s *Service) Unblock(ctx context.Context, sess store.Session, account, address string, m Meta) error {
	account, address = strings.TrimSpace(account), strings.TrimSpace(address)
	var keys []string
	details := map[string]string{}
	switch {
	case account != "" && address == "":
		id := account
		if u, err := s.d.Directory.Lookup(ctx, canonicalUsername(account)); err == nil {
			id = u.ID
		} else if errors.Is(err, directory.ErrUnavailable) {
			return s.dirProblem(err)
		}
		keys = accountBudgetKeys(id)
		details["account"] = id
	case address != "" && account == "":
		a, ok := clientAddress(address)
		if !ok {
			return problem(CodeInvalidRequest, errors.New("not an address"))
		}
		site, hasSite := s.siteOf(a)
		for _, p := range addressBudgetPrefixes {
			keys = append(keys, p+"-ip:"+a)
			if hasSite {
				keys = append(keys, p+"-site:"+site)
			}
		}
		details["address"] = a
	default:
		return problem(CodeInvalidRequest, errors.New("one of account and address"))
	}
	for _, k := range keys {
		if err := s.d.Store.Reset(ctx, k); err != nil {
			return storeProblem(err)
		}
	}
	s.record(ctx, m, "admin.unblocked", sess.AccountID, "success", details)
	return nil
}

// clientAddress is address as the budgets key it: an IP address, or the
// IPv6 prefix the gateway counts (as the audit's client_ip shows it).
func clientAddress(in string) (string, bool) {
	if a, err := netip.ParseAddr(in); err == nil {
		return a.String(), true
	}
	if p, err := netip.ParsePrefix(in); err == nil {
		return p.Masked().String(), true
	}
	return "", false
}
