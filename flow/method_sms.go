package flow

import (
	"context"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

// smsMethod is a mobile number: proven with a code sent in a text
// message, within the global and per-block hourly budgets (smsBudget).
type smsMethod struct{}

func (smsMethod) Name() string               { return store.MethodSMS }
func (smsMethod) Available(s *Service) bool  { return s.d.SMS != nil }
func (smsMethod) Hint(m store.Method) string { return notify.MaskPhone(m.Address) }
func (smsMethod) Strong() bool               { return true }
func (smsMethod) ProofShape() proofShape     { return proofCode }
func (smsMethod) CountsOnce() bool           { return false }

func (smsMethod) Challenge(ctx context.Context, c *challenge) (*PasskeyCeremony, error) {
	return nil, sendFlowCode(ctx, c)
}

func (smsMethod) Verify(ctx context.Context, a *attempt) (verdict, error) {
	return verifyFlowCode(ctx, a)
}

func (smsMethod) spendBudget(ctx context.Context, s *Service, addr string) string {
	return s.smsBudget(ctx, addr)
}

func (smsMethod) normalize(s *Service, in string) (string, *Problem) {
	e164, _, err := notify.ParsePhone(in, s.o.AllowedCountries)
	if err != nil {
		p := problem(CodeInvalidPhone, err)
		if names := countryNames(s.o.AllowedCountries); names != "" {
			// the pages and the API alike name the countries allowed
			p.Text = "Enter a mobile number in international format, for example +44 7700 900123, from one of these countries: " + names + "."
		}
		return "", p
	}
	return e164, nil
}

func (smsMethod) countKey(meth store.Method) string { return meth.Type + ":" + meth.ID }

func (smsMethod) message(s *Service, meth store.Method, data codeMail, m Meta) (job, bool) {
	body, err := s.mails.sms("code", data)
	if err != nil {
		s.log.Error("rendering a code sms failed", "error", err.Error())
		return job{}, false
	}
	return job{requestID: m.RequestID, clientIP: m.ClientIP, sms: &notify.SMS{To: meth.Address, Body: body}, account: meth.AccountID, purpose: "code"}, true
}

// learn counts a number's hint without its last two digits, which fakes
// draw at random.
func (smsMethod) learn(h string, _, phones *tally[string]) {
	if n := len(h); n > 2 && isDigit(h[n-1]) && isDigit(h[n-2]) {
		phones.add(h[:n-2], h[:n-2], 1)
	}
}

func (smsMethod) decoyHint(s *Service, dm *decoyModel, u func(...string) float64, key, n string) string {
	d := mac(s.k.decoy, "digits", key, n)
	return dm.phones.draw(u("phone", key, n)) + string(rune('0'+d[0]%10)) + string(rune('0'+d[1]%10))
}

// smsBudget spends the global hourly SMS budget and that of the number's
// block, for one text message to number (a code or a notice): "" when it
// may go, else the limits key of the spent budget.
func (s *Service) smsBudget(ctx context.Context, number string) string {
	if !s.hit(ctx, "sms:global", s.o.Limits.SMSPerHour, time.Hour) {
		s.log.Warn("the hourly SMS budget is spent")
		return "limits.sms_per_hour"
	}
	if p := smsPrefix(number); !s.hit(ctx, "sms:prefix:"+p, s.o.Limits.SMSPerPrefixPerHour, time.Hour) {
		s.log.Warn("the hourly SMS budget of a number block is spent", "prefix", p)
		return "limits.sms_per_prefix_per_hour"
	}
	return ""
}

// smsPrefix is the block a number belongs to for the velocity budget: the
// country code and the first digits, six digits in all.
func smsPrefix(e164 string) string {
	d := strings.TrimPrefix(store.NormalizeAddress(store.MethodSMS, e164), "+")
	return "+" + d[:min(len(d), 6)]
}

// countryNames names the countries of isos in English with their calling
// codes, "United Kingdom (+44), United States (+1)"; "" for none.
func countryNames(isos []string) string {
	names := make([]string, 0, len(isos))
	for _, iso := range isos {
		name := iso
		if r, err := language.ParseRegion(iso); err == nil {
			if n := display.English.Regions().Name(r); n != "" {
				name = n
			}
		}
		if code, ok := notify.CountryCallingCode(iso); ok {
			name += " (+" + code + ")"
		}
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}
