package flow

import (
	"context"
	"encoding/hex"
	"errors"
	"net/mail"
	"slices"
	"strconv"
	"strings"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/store"
)

// hint is how a registered method is shown in a flow
// (recoveryMethod.Hint); an unknown kind as an email address.
func hint(m store.Method) string {
	if k, ok := methodKind(m.Type); ok {
		return k.Hint(m)
	}
	return notify.MaskEmail(m.Address)
}

// ownerHinter is a kind its owner sees otherwise than a flow shows it (a
// passkey's label).
type ownerHinter interface{ ownerHint(m store.Method) string }

func view(m store.Method) MethodView {
	h := hint(m)
	if k, ok := methodKind(m.Type); ok {
		if oh, ok := k.(ownerHinter); ok {
			h = oh.ownerHint(m)
		}
	}
	return MethodView{ID: m.ID, Type: m.Type, Hint: h, Verified: m.Verified, CreatedAt: m.CreatedAt}
}

// Methods lists the signed-in user's methods.
func (s *Service) Methods(ctx context.Context, sess store.Session) ([]MethodView, error) {
	ms, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return nil, storeProblem(err)
	}
	out := make([]MethodView, 0, len(ms))
	for _, m := range ms {
		out = append(out, view(m))
	}
	return out, nil
}

// AvailableMethodTypes are the method types a signed-in user may add.
func (s *Service) AvailableMethodTypes(sess store.Session) []string {
	switch sess.Kind {
	case SessionAdminEnrol:
		return s.methodsAvailable(adminMethods)
	case SessionAdminUser:
		// an admin needs an app (or passkey) for the console even where
		// the policy does not offer it for resets
		all := slices.Clone(s.eligibility().Methods)
		for _, m := range adminMethods {
			if !slices.Contains(all, m) {
				all = append(all, m)
			}
		}
		return s.methodsAvailable(all)
	}
	return s.methodsAvailable(s.eligibility().Methods)
}

func normalizeEmail(in string) (string, bool) {
	in = strings.TrimSpace(in)
	if len(in) > 254 || strings.ContainsAny(in, "\r\n<>\"(),;:") {
		return "", false
	}
	a, err := mail.ParseAddress(in)
	if err != nil || a.Name != "" || a.Address != in {
		return "", false
	}
	at := strings.LastIndexByte(in, '@')
	if at < 1 || !strings.Contains(in[at+1:], ".") {
		return "", false
	}
	return in[:at] + "@" + strings.ToLower(in[at+1:]), true
}

// AddMethod registers a new, unverified method and sends a code to it.
func (s *Service) AddMethod(ctx context.Context, sess store.Session, typ, address string, m Meta) (MethodView, error) {
	if p := s.needsReauth(sess); p != nil {
		return MethodView{}, p
	}
	if !slices.Contains(s.AvailableMethodTypes(sess), typ) {
		return MethodView{}, problem(CodeMethodType, nil)
	}
	ch, ok := channelOf(typ)
	if !ok {
		// an app (EnrolTOTP: the seed must reach the user), a passkey
		// (BeginPasskey), security questions (SetQuestions)
		return MethodView{}, problem(CodeInvalidRequest, errors.New("a method of type "+typ+" is not added with an address"))
	}
	addr, p := ch.normalize(s, address)
	if p != nil {
		return MethodView{}, p
	}
	if typ == store.MethodEmail {
		// the "personal email" the page asks for: the account's own
		// address in the directory is the one mailbox of no use to someone
		// who cannot sign in
		u, err := s.sessionUser(ctx, sess)
		if err != nil && asProblem(err).Code != CodeUnavailable {
			return MethodView{}, err
		}
		// (a directory that does not answer does not stop a registration:
		// the check is a kindness, not a safeguard)
		if u != nil && u.Mail != "" && mailboxKey(u.Mail) == mailboxKey(addr) {
			return MethodView{}, problem(CodeWorkEmail, nil)
		}
	}
	existing, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return MethodView{}, storeProblem(err)
	}
	for _, e := range existing {
		if e.Type == typ && strings.EqualFold(e.Address, addr) {
			if e.Verified {
				return MethodView{}, problem(CodeMethodExists, nil)
			}
			// the same unverified method again: send a fresh code
			if err := s.sendRegistrationCode(ctx, sess, e, m); err != nil {
				return MethodView{}, err
			}
			return view(e), nil
		}
	}
	if len(existing) >= s.o.MaxMethods {
		return MethodView{}, problem(CodeMethodLimit, nil)
	}
	meth := store.Method{ID: newID(), AccountID: sess.AccountID, Type: typ, Address: addr, CreatedAt: s.now()}
	// a full outbox, then budgets, before anything is stored: a refused
	// request leaves no unverified method behind
	if s.out.busy() {
		return MethodView{}, problem(CodeBusy, nil)
	}
	if err := s.spendRegistrationSend(ctx, sess, meth, m); err != nil {
		return MethodView{}, err
	}
	if err := s.addMethodWithin(ctx, meth, s.o.MaxMethods); err != nil {
		return MethodView{}, err
	}
	s.record(ctx, m, "registration.method_added", sess.AccountID, "pending", map[string]string{"method": meth.ID, "type": typ})
	if err := s.issueRegistrationCode(ctx, sess, meth, m); err != nil {
		return MethodView{}, err
	}
	return view(meth), nil
}

// addMethodWithin stores meth unless the account already has limit
// methods: the count and the insert are one atomic step in the store, so
// concurrent additions cannot pass MaxMethods (the lists read before are
// only a fast answer).
func (s *Service) addMethodWithin(ctx context.Context, meth store.Method, limit int) error {
	err := s.d.Store.AddMethodWithin(ctx, meth, limit)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrLimit):
		return problem(CodeMethodLimit, nil)
	default:
		return storeProblem(err)
	}
}

// regFlowID derives the registration flow of one method in one session:
// unguessable without the key, nothing extra to store.
func (s *Service) regFlowID(sessID, methodID string) string {
	return hex.EncodeToString(mac(s.k.register, sessID, methodID))
}

func regPurpose(typ string) string { return "register-" + typ }

// ResendMethodCode sends a new code for an unverified method.
func (s *Service) ResendMethodCode(ctx context.Context, sess store.Session, methodID string, m Meta) error {
	meth, err := s.d.Store.GetMethod(ctx, sess.AccountID, methodID)
	if err != nil {
		return problem(CodeMethodNotFound, err)
	}
	if meth.Verified {
		return nil
	}
	if _, ok := channelOf(meth.Type); !ok {
		return problem(CodeInvalidRequest, errors.New("nothing to send to a method of type "+meth.Type))
	}
	return s.sendRegistrationCode(ctx, sess, meth, m)
}

// sendRegistrationCode spends the send budgets for meth, then issues a code
// and sends it to the method's address as stored. Over budget nothing
// changes: the live code (if any) stays as it is.
func (s *Service) sendRegistrationCode(ctx context.Context, sess store.Session, meth store.Method, m Meta) error {
	if err := s.spendRegistrationSend(ctx, sess, meth, m); err != nil {
		return err
	}
	return s.issueRegistrationCode(ctx, sess, meth, m)
}

// spendRegistrationSend counts one send to meth against the account's and
// the destination's budgets (and the global SMS budget).
func (s *Service) spendRegistrationSend(ctx context.Context, sess store.Session, meth store.Method, m Meta) error {
	limit := "limits.sends_per_account"
	if s.hit(ctx, "send:acct:"+sess.AccountID, s.o.Limits.SendsPerAccount, s.o.Limits.Window) {
		limit = s.sendBudget(ctx, meth)
	}
	if limit != "" {
		s.record(ctx, m, "blocked", sess.AccountID, "send_budget", map[string]string{"type": meth.Type, "limit": limit})
		s.demoNotSent(meth.Type, meth.Address, "register", limit)
		return problem(CodeTooMany, nil)
	}
	return nil
}

func (s *Service) issueRegistrationCode(ctx context.Context, sess store.Session, meth store.Method, m Meta) error {
	if s.out.busy() {
		return problem(CodeBusy, nil)
	}
	now := s.now()
	flowID := s.regFlowID(sess.ID, meth.ID)
	if _, err := s.d.Store.GetFlow(ctx, flowID, now); err != nil {
		f, err := liveFlow{Flow: store.Flow{ID: flowID, Kind: store.FlowRegister, AccountID: sess.AccountID, Required: 1,
			CreatedAt: now, ExpiresAt: now.Add(s.o.FlowTTL)}, st: flowState{Method: meth.ID}}.row()
		if err != nil {
			return problem(CodeInternal, err)
		}
		if err := s.d.Store.CreateFlow(ctx, f); err != nil && !errors.Is(err, store.ErrConflict) {
			return storeProblem(err)
		}
	}
	code := newCode(s.o.CodeLength)
	c := store.Code{FlowID: flowID, Purpose: regPurpose(meth.Type), MethodID: meth.ID, AccountID: sess.AccountID,
		Hash: s.k.codeHash(flowID, regPurpose(meth.Type), meth.ID, code), ExpiresAt: now.Add(s.o.CodeTTL)}
	// the destination is read from the store, never from the request
	stored, err := s.d.Store.GetMethod(ctx, sess.AccountID, meth.ID)
	if err != nil {
		return storeProblem(err)
	}
	j, ok := s.codeMessage(stored, "register", code, m)
	if !ok {
		if err := s.d.Store.IssueCode(ctx, c); err != nil {
			return storeProblem(err)
		}
		return nil
	}
	// the code and its message in one transaction
	msg := s.out.row(j, store.OutboxCode, s.out.clock().Add(outboxSettle), c.ExpiresAt)
	if err := s.d.Store.IssueCodeWithMessage(ctx, c, msg); err != nil {
		return storeProblem(err)
	}
	s.out.written(msg)
	return nil
}

// VerifyMethod checks the code sent to a new method and marks it verified.
func (s *Service) VerifyMethod(ctx context.Context, sess store.Session, methodID, code string, m Meta) (MethodView, error) {
	meth, err := s.d.Store.GetMethod(ctx, sess.AccountID, methodID)
	if err != nil {
		return MethodView{}, problem(CodeMethodNotFound, err)
	}
	if meth.Verified {
		return view(meth), nil
	}
	flowID := s.regFlowID(sess.ID, meth.ID)
	code = normalizeCode(code)
	try, ok := s.countCodeTry(ctx, "acct:"+sess.AccountID)
	if !ok {
		s.record(ctx, m, "blocked", sess.AccountID, "code_budget", nil)
		return MethodView{}, problem(CodeTooMany, nil)
	}
	kind, _ := methodKind(meth.Type)
	sc, self := kind.(selfCoded)
	if self {
		reason, ok, err := sc.checkEnrolment(ctx, s, meth, code)
		if err != nil {
			return MethodView{}, storeProblem(err)
		}
		if !ok {
			s.record(ctx, m, "registration.method_verified", sess.AccountID, "failed", map[string]string{"method": meth.ID, "reason": reason})
			return MethodView{}, problem(CodeInvalidCode, nil)
		}
	} else {
		err = s.d.Store.RedeemCode(ctx, flowID, regPurpose(meth.Type), meth.ID, s.k.codeHash(flowID, regPurpose(meth.Type), meth.ID, code), s.o.MaxTries, s.now())
		if err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCodeMismatch) {
				s.record(ctx, m, "registration.method_verified", sess.AccountID, "failed", map[string]string{"method": meth.ID})
				return MethodView{}, problem(CodeInvalidCode, nil)
			}
			return MethodView{}, storeProblem(err)
		}
	}
	s.rightCodeTry(ctx, try)
	now := s.now()
	if err := s.d.Store.VerifyMethod(ctx, sess.AccountID, meth.ID, now); err != nil {
		return MethodView{}, storeProblem(err)
	}
	meth.Verified, meth.VerifiedAt = true, now
	s.record(ctx, m, "registration.method_verified", sess.AccountID, "success", map[string]string{"method": meth.ID, "type": meth.Type})
	if self {
		sc.enrolled(ctx, s, meth, m)
	} else {
		s.forget(s.d.Store.DeleteFlow(ctx, flowID))
	}
	// one address or number on several accounts is how a stolen session or
	// password is turned into lasting access (or a helpdesk phone reused):
	// flagged for the admins, without telling the user who else has it
	if self {
		// a seed is random and never shared: nothing to compare
	} else if n, err := s.d.Store.CountAccountsByAddress(ctx, meth.Type, meth.Address); err == nil && n > 1 {
		s.record(ctx, m, "registration.shared_destination", sess.AccountID, "flagged",
			map[string]string{"method": meth.ID, "type": meth.Type, "accounts": strconv.Itoa(n)})
	}
	s.noticeAll(ctx, sess.AccountID, sess.Username, "method_added", meth.ID, m)
	return view(meth), nil
}

// RemoveMethod deletes a method after the password is entered again, and
// tells every channel, the removed one included.
func (s *Service) RemoveMethod(ctx context.Context, sess store.Session, methodID, password string, m Meta) error {
	if err := s.Reauth(ctx, sess, password, m); err != nil {
		return err
	}
	meth, err := s.d.Store.GetMethod(ctx, sess.AccountID, methodID)
	if err != nil {
		return problem(CodeMethodNotFound, err)
	}
	// an admin's app or passkey is not removed with the password alone:
	// a new one would follow, and the password would be the console's
	// only proof (another admin removes it: RemoveAdminApp)
	if strongConsole(meth) {
		if p := s.adminAppKept(ctx, sess, []store.Method{meth}); p != nil {
			return p
		}
	}
	s.noticeAll(ctx, sess.AccountID, sess.Username, "method_removed", "", m)
	if err := s.d.Store.DeleteMethod(ctx, sess.AccountID, methodID); err != nil {
		return storeProblem(err)
	}
	// open flows may have proven the removed method: end them
	s.forget(s.d.Store.DeleteFlowsForAccount(ctx, sess.AccountID))
	s.record(ctx, m, "registration.method_removed", sess.AccountID, "success", map[string]string{"method": meth.ID, "type": meth.Type})
	return nil
}

// MethodsNeeded is, for the signed-in user (whose tier is theirs to know:
// the password is proven), how many different methods the account's tier
// needs and how many of its verified methods count toward that number
// (two addresses of one mailbox, or two apps, count once; security
// questions not where the tier requires a kind).
func (s *Service) MethodsNeeded(ctx context.Context, sess store.Session) (required, counted int, err error) {
	u, err := s.sessionUser(ctx, sess)
	if err != nil {
		return 0, 0, err
	}
	dec, err := s.decide(ctx, u)
	if err != nil {
		return 0, 0, s.dirProblem(err)
	}
	ms, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return 0, 0, storeProblem(err)
	}
	seen := map[string]bool{}
	var kinds []string
	for _, m := range ms {
		if !m.Verified || seen[countKey(m)] {
			continue
		}
		seen[countKey(m)] = true
		kinds = append(kinds, m.Type)
	}
	return max(dec.MethodsRequired, 1), dec.Counted(kinds), nil
}
