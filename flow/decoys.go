package flow

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

// Fake methods for names that have none to show (unknown, ineligible,
// excluded, disabled, privileged, no methods, throttled).
//
// A fake set must look like a real one: if fakes came from a fixed pattern,
// any real hint outside it (an upper-case initial, another top-level
// domain, a third method) would prove the account exists. So fakes are
// drawn from what real users registered: the mix of method types per
// account, the masked email hints and the phone country codes, counted over
// the most recently verified accounts in the store. Only masked hints and
// counts are kept, never addresses. Each draw is a keyed hash of the name,
// so asking twice shows the same set, like a real account.
//
// The counts are taken as of the start of the current UTC day, and kept for
// the day: every instance sharing a store draws from the same counts, and a
// fake set changes at most once a day (when the counts move), not between
// two requests. With fewer than decoyMinAccounts registered accounts the
// counts would reveal too little (and too much about those few), so a
// built-in pattern is used instead.

const (
	decoyMinAccounts = 20
	decoySample      = 5000
)

// weighted is a discrete distribution over keys, drawn by a number in
// [0, 1). Keys are ordered by label, so that the same counts give the same
// draws on every instance.
type weighted[T any] struct {
	keys []T
	cum  []float64 // cumulative weights, last = total
}

// tally counts labelled keys before they become a weighted.
type tally[T any] struct {
	n   map[string]float64
	key map[string]T
}

func (t *tally[T]) add(label string, key T, n float64) {
	if t.n == nil {
		t.n, t.key = map[string]float64{}, map[string]T{}
	}
	t.n[label] += n
	t.key[label] = key
}

func (t *tally[T]) weighted() weighted[T] {
	labels := make([]string, 0, len(t.n))
	for l := range t.n {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	var w weighted[T]
	total := 0.0
	for _, l := range labels {
		total += t.n[l]
		w.keys = append(w.keys, t.key[l])
		w.cum = append(w.cum, total)
	}
	return w
}

func (w weighted[T]) empty() bool { return len(w.keys) == 0 }

// draw picks a key; u is in [0, 1).
func (w weighted[T]) draw(u float64) T {
	x := u * w.cum[len(w.cum)-1]
	i := sort.SearchFloat64s(w.cum, x)
	for i < len(w.cum) && w.cum[i] <= x {
		i++
	}
	return w.keys[min(i, len(w.keys)-1)]
}

// decoyModel is what fakes are drawn from.
type decoyModel struct {
	day      string             // UTC date the counts were taken for
	sets     weighted[[]string] // method types of one account, in kindOrder
	emails   weighted[string]   // masked email hints
	phones   weighted[string]   // masked phone hints without the last two digits
	accounts int                // accounts counted
	learned  bool               // false: the built-in pattern
}

type decoySource struct {
	mu    sync.Mutex
	model *decoyModel
}

// model returns the counts for today, taking them from the store once a
// day. On a store failure the previous counts (or the pattern) are used.
func (s *Service) decoyModel(ctx context.Context) *decoyModel {
	now := s.now().UTC()
	day := now.Format(time.DateOnly)
	s.decoySrc.mu.Lock()
	defer s.decoySrc.mu.Unlock()
	if m := s.decoySrc.model; m != nil && m.day == day {
		return m
	}
	m := s.learnDecoys(ctx, now.Truncate(24*time.Hour))
	m.day = day
	s.decoySrc.model = m
	return m
}

func (s *Service) learnDecoys(ctx context.Context, before time.Time) *decoyModel {
	types := s.methodsAvailable(s.eligibility().Methods)
	ms, err := s.d.Store.SampleMethods(context.WithoutCancel(ctx), decoySample, before)
	if err != nil {
		s.log.Error("counting registered methods for decoys failed", "error", err.Error())
		ms = nil
	}
	var sets tally[[]string]
	var emails, phones tally[string]
	byAccount := map[string][]string{}
	for _, meth := range ms {
		if !slices.Contains(types, meth.Type) {
			continue
		}
		byAccount[meth.AccountID] = append(byAccount[meth.AccountID], meth.Type)
		if ch, ok := channelOf(meth.Type); ok {
			// one hint for every app, passkey and set of questions:
			// nothing to count for those
			ch.learn(hint(meth), &emails, &phones)
		}
	}
	if len(byAccount) < decoyMinAccounts {
		return s.patternDecoys(types)
	}
	for _, set := range byAccount {
		if !slices.ContainsFunc(set, strongKind) {
			continue // never offered alone: such an account shows fakes itself
		}
		// a shape is the multiset of kinds: the order a user registered
		// them in is never shown (flowView shows every list in kindOrder)
		sortKinds(set, func(t string) string { return t })
		sets.add(strings.Join(set, "+"), set, 1)
	}
	m := &decoyModel{sets: sets.weighted(), emails: emails.weighted(), phones: phones.weighted(), accounts: len(byAccount), learned: true}
	// a type nobody uses yet still needs hints, should a set hold it
	p := s.patternDecoys(types)
	if m.emails.empty() {
		m.emails = p.emails
	}
	if m.phones.empty() {
		m.phones = p.phones
	}
	return m
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// patternDecoys is the built-in distribution used until enough accounts
// have registered: one or two methods of the available types, lower-case
// initials, common top-level domains, the allowed countries.
func (s *Service) patternDecoys(types []string) *decoyModel {
	if len(types) == 0 {
		types = []string{store.MethodEmail}
	}
	var sets tally[[]string]
	var emails, phones tally[string]
	for i, a := range types {
		if strongKind(a) {
			sets.add(a, []string{a}, 2) // security questions are never offered alone
		}
		for _, b := range types[i:] {
			if a == b && singleKind(a) {
				continue // an account has one authenticator app, one set of questions
			}
			sets.add(a+"+"+b, []string{a, b}, 1)
		}
	}
	for _, tld := range []string{"com", "org", "net", "de", "uk", "fr", "nl", "io"} {
		for l := 'a'; l <= 'z'; l++ {
			for _, d := range "ghoyiawpme" {
				h := string(l) + bullets + "@" + string(d) + bullets + "." + tld
				emails.add(h, h, 1)
			}
		}
	}
	ccs := []string{"1"}
	if len(s.o.AllowedCountries) > 0 {
		ccs = ccs[:0]
		for _, c := range s.o.AllowedCountries {
			if cc, ok := notify.CountryCallingCode(c); ok {
				ccs = append(ccs, cc)
			}
		}
	}
	for _, cc := range ccs {
		p := "+" + cc + " •••• ••"
		phones.add(p, p, 1)
	}
	return &decoyModel{sets: sets.weighted(), emails: emails.weighted(), phones: phones.weighted()}
}

const bullets = "•••"

// kindOrder is the one order in which every list of offered methods is
// shown, real or fake, in every answer and page (flowView). Real accounts
// keep their methods in registration order and fakes are drawn in another
// order: shown as they are, a real order no fake takes (webauthn before
// email, sms after totp) would prove the account exists. Within a kind the
// order is kept (registration order, or the order drawn); nothing tells a
// real hint from a fake one there.
var kindOrder = func() []string {
	var out []string
	for _, k := range recoveryMethods {
		out = append(out, k.Name())
	}
	return out
}()

// sortKinds orders xs by kindOrder (kinds it lacks last, by name), stably.
func sortKinds[T any](xs []T, kind func(T) string) {
	rank := func(k string) int {
		if i := slices.Index(kindOrder, k); i >= 0 {
			return i
		}
		return len(kindOrder)
	}
	slices.SortStableFunc(xs, func(a, b T) int {
		ka, kb := kind(a), kind(b)
		return cmp.Or(cmp.Compare(rank(ka), rank(kb)), cmp.Compare(ka, kb))
	})
}

// decoys returns a stable fake set of methods for name: the method types of
// one drawn account, each with a drawn hint. prior are the real methods
// that precede the fakes (a real user with fewer methods than required),
// and atLeast the smallest total to reach. A set never shows two
// authenticator apps: no real account has two.
func (s *Service) decoys(ctx context.Context, name string, prior []Offered, atLeast int) []Offered {
	have := len(prior)
	// the kinds an account has one of, shown already
	shown := map[string]bool{}
	for _, o := range prior {
		shown[o.Type] = singleKind(o.Type)
	}
	m := s.decoyModel(ctx)
	key := strings.ToLower(name)
	u := func(parts ...string) float64 {
		h := mac(s.k.decoy, parts...)
		return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
	}
	set := m.sets.draw(u("set", key))
	var out []Offered
	for i := have; i < max(len(set), atLeast); i++ {
		typ := set[i%len(set)]
		if shown[typ] {
			typ = s.decoyAddressType()
		}
		shown[typ] = shown[typ] || singleKind(typ)
		n := strconv.Itoa(i)
		id := mac(s.k.decoy, "method", key, n)
		var h string
		if ch, ok := channelOf(typ); ok {
			h = ch.decoyHint(s, m, u, key, n)
		} else if k, ok := methodKind(typ); ok {
			h = k.Hint(store.Method{Type: typ})
		} else {
			h = emailMethod{}.decoyHint(s, m, u, key, n)
		}
		out = append(out, Offered{ID: hex.EncodeToString(id[:11]), Type: typ, Hint: h})
	}
	return out
}

// decoyAddressType is the type a fake takes where a second authenticator
// app would give it away: the first available type with an address.
func (s *Service) decoyAddressType() string {
	for _, t := range s.methodsAvailable(s.eligibility().Methods) {
		if _, ok := channelOf(t); ok {
			return t
		}
	}
	return store.MethodEmail
}
