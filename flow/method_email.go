package flow

import (
	"context"
	"strings"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

// emailMethod is an email address: proven with a code mailed to it.
type emailMethod struct{}

func (emailMethod) Name() string                                         { return store.MethodEmail }
func (emailMethod) Available(s *Service) bool                            { return s.d.Mailer != nil }
func (emailMethod) Hint(m store.Method) string                           { return notify.MaskEmail(m.Address) }
func (emailMethod) Strong() bool                                         { return true }
func (emailMethod) ProofShape() proofShape                               { return proofCode }
func (emailMethod) CountsOnce() bool                                     { return false }
func (emailMethod) spendBudget(context.Context, *Service, string) string { return "" }

func (emailMethod) Challenge(ctx context.Context, c *challenge) (*PasskeyCeremony, error) {
	return nil, sendFlowCode(ctx, c)
}

func (emailMethod) Verify(ctx context.Context, a *attempt) (verdict, error) {
	return verifyFlowCode(ctx, a)
}

func (emailMethod) normalize(_ *Service, in string) (string, *Problem) {
	a, ok := normalizeEmail(in)
	if !ok {
		return "", problem(CodeInvalidEmail, nil)
	}
	return a, nil
}

// countKey: two addresses of one mailbox count once (mailboxKey).
func (emailMethod) countKey(meth store.Method) string {
	return meth.Type + ":" + mailboxKey(meth.Address)
}

func (emailMethod) message(s *Service, meth store.Method, data codeMail, m Meta) (job, bool) {
	e, err := s.mails.email("code", meth.Address, data)
	if err != nil {
		s.log.Error("rendering a code mail failed", "error", err.Error())
		return job{}, false
	}
	return job{requestID: m.RequestID, clientIP: m.ClientIP, email: &e, account: meth.AccountID, purpose: "code"}, true
}

func (emailMethod) learn(h string, emails, _ *tally[string]) {
	if h != bullets {
		emails.add(h, h, 1)
	}
}

func (emailMethod) decoyHint(_ *Service, dm *decoyModel, u func(...string) float64, key, n string) string {
	return dm.emails.draw(u("email", key, n))
}

// mailboxKey is the mailbox an email address reaches, for counting methods
// toward methods_required: the local part without a "+tag", case folded,
// and for gmail.com and googlemail.com (one provider) without dots.
func mailboxKey(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at+1:]
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	if domain == "googlemail.com" {
		domain = "gmail.com"
	}
	if domain == "gmail.com" {
		local = strings.ReplaceAll(local, ".", "")
	}
	return local + "@" + domain
}
