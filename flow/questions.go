package flow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
)

// Security questions as a recovery method ("questions").
//
// Off unless policy.methods lists them. The admin defines the questions
// (Options.Questions.List); users may write their own only with
// AllowCustom. A user answers Required of them once, while signed in with
// a fresh password; the answers are normalised (Unicode NFKC, case-folded,
// white space collapsed and trimmed), refused when trivial, and each is
// hashed with argon2id and a salt of its own. The set is one store.Method
// of type "questions" whose Address (encrypted at rest by the store) is
// the JSON of {question id and text, salt, hash}; it is verified when
// stored (there is nothing to send a code to), and a new set replaces the
// old one.
//
// At reset, questions are never sufficient alone, never count for a tier's
// require_one_of and, in a tier with require_one_of, do not count toward
// its number of methods either (policy.Decision.Remaining, Counted,
// MissingKinds): elsewhere they only ever act as an additional factor.
// They are shown and answered only once another method is proven in the
// flow (OWASP: questions are shown only after the user proved ownership of
// a channel), so nobody learns an account's questions, nor spends its
// argon2 time, from a username alone.
// Which Ask of the registered questions are asked is chosen when the flow
// starts and kept in the flow; the choice is a keyed hash of the account,
// the method and the number of correct answers so far, so that it changes
// only after a correct answer (reloading, or starting again, asks the same
// questions). Every try, right or wrong, spends the account's budget of
// wrong codes (limits.code_failures_per_account) before it is checked, as
// codes do; the hashes are compared in constant time, and answers never
// appear in a response, page, log line, audit event or message.
const (
	// MethodQuestions is the method type of security questions.
	MethodQuestions = policy.MethodQuestions
	// questionsHint is what lists show for security questions.
	questionsHint = "Security questions"

	// argon2id parameters: OWASP's Password Storage Cheat Sheet minimum
	// (m=19 MiB, t=2, p=1). 64 MiB would be a better trade-off on a server
	// of its own, but a registration hashes Required answers and a reset
	// Ask answers on gateways that share two cores; 19 MiB for two passes
	// costs tens of milliseconds per answer and leaves memory for
	// concurrent resets. The parameters are stored with each set, so they
	// can be raised later without breaking registered answers.
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16

	// MinAnswerLength is the fewest characters an answer may have once
	// normalised; MaxAnswerLength the most (before any hashing).
	MinAnswerLength = 3
	MaxAnswerLength = 200
	// MaxQuestionLength bounds a custom question, as it bounds the
	// admin's (policy.questions.list).
	MaxQuestionLength = config.MaxQuestionLength
	// minCustomQuestionLength: a custom question is a real question.
	minCustomQuestionLength = 10

	// questionsRotation is the window of the counter of correct answers
	// that picks the questions asked: long enough to be one window.
	questionsRotation = 200 * 365 * 24 * time.Hour
)

// QuestionOptions configure security questions (policy.questions).
type QuestionOptions struct {
	// List is the admin's questions.
	List []string
	// AllowCustom lets users write their own questions.
	AllowCustom bool
	// Required answers to register; Ask asked at reset (at most
	// Required). Zero: config's defaults (policy.questions.required, ask).
	Required, Ask int
}

func (q *QuestionOptions) setDefaults(d config.Questions) {
	orDefault(&q.Required, d.Required)
	orDefault(&q.Ask, d.Ask)
}

// check refuses what config.Validate refuses in policy.questions.
func (q *QuestionOptions) check(c *optionsCheck) {
	c.within("Questions.Required", q.Required, 1, config.MaxQuestionsRequired)
	c.within("Questions.Ask", q.Ask, 1, max(q.Required, 1))
}

// Question is one security question as a user sees it.
type Question struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Answer is one answer as typed: Question is the id of a listed question
// or, with AllowCustom at registration, the text of the user's own.
type Answer struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// storedQuestions is the Address of a questions method.
type storedQuestions struct {
	V       int            `json:"v"`
	Time    uint32         `json:"t"`
	Memory  uint32         `json:"m"`
	Threads uint8          `json:"p"`
	Items   []storedAnswer `json:"items"`
}

type storedAnswer struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	Salt []byte `json:"salt"`
	Hash []byte `json:"hash"`
}

// Problem codes of security questions (their texts are in errors.go).
var errNotAfterProof = errors.New("security questions are asked only after another method is proven")

// normalizeAnswer is the form an answer is hashed in: NFKC, case-folded,
// runs of white space as one space, trimmed ("  Ｆｌｕｆｆｙ " is "fluffy").
func normalizeAnswer(s string) string {
	s = cases.Fold().String(norm.NFKC.String(s))
	return strings.Join(strings.Fields(norm.NFKC.String(s)), " ")
}

// questionID is the stable id of a question text: the admin may reorder
// the list without changing what users registered.
func questionID(prefix, text string) string {
	h := sha256.Sum256([]byte(normalizeAnswer(text)))
	return prefix + hex.EncodeToString(h[:5])
}

// AdminQuestions are the questions users choose from.
func (s *Service) AdminQuestions() []Question {
	var out []Question
	for _, t := range s.live().Questions.List {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, Question{ID: questionID("q", t), Text: t})
		}
	}
	return out
}

// QuestionSettings are what a registration page or client needs.
type QuestionSettings struct {
	Questions   []Question `json:"questions"`
	Required    int        `json:"required"`
	Ask         int        `json:"ask"`
	AllowCustom bool       `json:"allow_custom"`
}

// QuestionSettings returns the list and numbers, or method_unavailable
// when security questions are off.
func (s *Service) QuestionSettings() (QuestionSettings, error) {
	if !slices.Contains(s.AvailableMethodTypes(store.Session{}), MethodQuestions) {
		return QuestionSettings{}, problem(CodeMethodType, nil)
	}
	return QuestionSettings{Questions: s.AdminQuestions(), Required: s.live().Questions.Required, Ask: s.live().Questions.Ask,
		AllowCustom: s.live().Questions.AllowCustom}, nil
}

// questionsEnabled: security questions need a list to choose from.
func (s *Service) questionsEnabled() bool { return len(s.AdminQuestions()) > 0 }

// commonAnswers are refused whatever the question: placeholders and the
// first things tried.
var commonAnswers = map[string]bool{
	"123": true, "1234": true, "12345": true, "123456": true, "0000": true, "000": true, "abc": true, "abcd": true,
	"password": true, "passw0rd": true, "pass": true, "secret": true, "qwerty": true, "asdf": true, "letmein": true,
	"none": true, "n/a": true, "na": true, "nil": true, "null": true, "nothing": true, "no": true, "yes": true,
	"unknown": true, "dont know": true, "don't know": true, "idk": true, "not applicable": true, "no idea": true,
	"test": true, "testing": true, "answer": true, "same": true, "xxx": true, "-": true, "?": true, "...": true,
}

// Reasons an answer is refused (Violation codes of weak_answers).
const (
	answerTooShort  = "answer_too_short"
	answerTooLong   = "answer_too_long"
	answerRepeated  = "answer_repeated_character"
	answerSequence  = "answer_sequence"
	answerCommon    = "answer_common"
	answerUsername  = "answer_is_username"
	answerQuestion  = "answer_is_question"
	answerDuplicate = "answer_same_as_another"
)

var answerTexts = map[string]string{
	answerTooShort:  "is too short: use at least 3 characters.",
	answerTooLong:   "is too long: use at most 200 characters.",
	answerRepeated:  "is one character repeated.",
	answerSequence:  "is a simple sequence.",
	answerCommon:    "is a placeholder or a common answer anyone would try.",
	answerUsername:  "is your username or your name.",
	answerQuestion:  "repeats the question.",
	answerDuplicate: "is the same as the answer to another question.",
}

// stripPunct drops punctuation and symbols, to compare an answer with a
// question or a name.
func stripPunct(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) {
			return ' '
		}
		return r
	}, s)), " ")
}

// trivialAnswer returns why the normalised answer a to question q is too
// easy to guess, or "". names are the user's username and names.
func trivialAnswer(a, q string, names []string) string {
	n := utf8.RuneCountInString(a)
	switch {
	case n < MinAnswerLength:
		return answerTooShort
	case n > MaxAnswerLength:
		return answerTooLong
	case commonAnswers[a] || commonAnswers[stripPunct(a)]:
		return answerCommon
	}
	rs := []rune(strings.ReplaceAll(a, " ", ""))
	same, up, down := true, true, true
	for i := 1; i < len(rs); i++ {
		same = same && rs[i] == rs[0]
		up = up && rs[i] == rs[i-1]+1
		down = down && rs[i] == rs[i-1]-1
	}
	switch {
	case same:
		return answerRepeated
	case up || down:
		return answerSequence
	case stripPunct(a) == stripPunct(normalizeAnswer(q)):
		return answerQuestion
	}
	for _, name := range names {
		if name = stripPunct(normalizeAnswer(name)); name != "" && (stripPunct(a) == name || strings.ReplaceAll(stripPunct(a), " ", "") == strings.ReplaceAll(name, " ", "")) {
			return answerUsername
		}
	}
	return ""
}

func hashAnswer(answer string, salt []byte, t, m uint32, p uint8) []byte {
	return argon2.IDKey([]byte(answer), salt, t, m, p, argonKeyLen)
}

// SetQuestions registers the signed-in user's security questions, replacing
// any set registered before. Every answer is checked before any is hashed.
func (s *Service) SetQuestions(ctx context.Context, sess store.Session, answers []Answer, m Meta) (MethodView, error) {
	if p := s.needsReauth(sess); p != nil {
		return MethodView{}, p
	}
	if !slices.Contains(s.AvailableMethodTypes(sess), MethodQuestions) {
		return MethodView{}, problem(CodeMethodType, nil)
	}
	if len(answers) != s.live().Questions.Required {
		return MethodView{}, problem(CodeInvalidRequest, fmt.Errorf("%d answers, want %d", len(answers), s.live().Questions.Required))
	}
	items, normalized, p := s.questionsAnswered(answers)
	if p != nil {
		return MethodView{}, p
	}
	if err := s.answersStrong(ctx, sess, items, normalized, m); err != nil {
		return MethodView{}, err
	}
	existing, err := s.d.Store.ListMethods(ctx, sess.AccountID)
	if err != nil {
		return MethodView{}, problem(CodeInternal, err)
	}
	others := 0
	for _, e := range existing {
		if e.Type != MethodQuestions {
			others++
		}
	}
	// a new set replaces the old one: it does not count against the limit
	if others >= s.o.MaxMethods {
		return MethodView{}, problem(CodeMethodLimit, nil)
	}
	addr, err := hashQuestions(items, normalized)
	if err != nil {
		return MethodView{}, problem(CodeInternal, err)
	}
	now := s.now()
	meth := store.Method{ID: newID(), AccountID: sess.AccountID, Type: MethodQuestions, Secret: addr, CreatedAt: now}
	// the sets read above are replaced below: room for them too
	if err := s.addMethodWithin(ctx, meth, s.o.MaxMethods+len(existing)-others); err != nil {
		return MethodView{}, err
	}
	// nothing to send a code to: the fresh password is the proof
	if err := s.d.Store.VerifyMethod(ctx, sess.AccountID, meth.ID, now); err != nil {
		return MethodView{}, problem(CodeInternal, err)
	}
	meth.Verified, meth.VerifiedAt = true, now
	s.record(ctx, m, "registration.method_added", sess.AccountID, "success", map[string]string{"method": meth.ID, "type": MethodQuestions})
	s.record(ctx, m, "registration.method_verified", sess.AccountID, "success", map[string]string{"method": meth.ID, "type": MethodQuestions})
	s.replaceQuestions(ctx, sess, existing, m)
	s.noticeAll(ctx, sess.AccountID, sess.Username, "method_added", meth.ID, m)
	return view(meth), nil
}

// questionsAnswered checks that answers answer distinct questions of the
// admin list (or, where allowed, the user's own) and returns the set's
// items without hashes and the normalised answers.
func (s *Service) questionsAnswered(answers []Answer) ([]storedAnswer, []string, *Problem) {
	admin := s.AdminQuestions()
	items := make([]storedAnswer, 0, len(answers))
	normalized := make([]string, 0, len(answers))
	for _, a := range answers {
		if utf8.RuneCountInString(a.Answer) > 4*MaxAnswerLength || len(a.Question) > 4*MaxQuestionLength {
			return nil, nil, problem(CodeInvalidRequest, errors.New("answer or question too long"))
		}
		var q Question
		if i := slices.IndexFunc(admin, func(x Question) bool { return x.ID == a.Question }); i >= 0 {
			q = admin[i]
		} else if text := strings.Join(strings.Fields(a.Question), " "); s.live().Questions.AllowCustom &&
			utf8.RuneCountInString(text) >= minCustomQuestionLength && utf8.RuneCountInString(text) <= MaxQuestionLength {
			q = Question{ID: questionID("c", text), Text: text}
		} else {
			return nil, nil, problem(CodeInvalidRequest, errors.New("unknown question"))
		}
		if slices.ContainsFunc(items, func(x storedAnswer) bool { return x.ID == q.ID }) {
			return nil, nil, problem(CodeInvalidRequest, errors.New("a question twice"))
		}
		items = append(items, storedAnswer{ID: q.ID, Text: q.Text})
		normalized = append(normalized, normalizeAnswer(a.Answer))
	}
	return items, normalized, nil
}

// answersStrong refuses (weak_answers) answers that are trivial, repeat
// the question or the user's names, or repeat each other.
func (s *Service) answersStrong(ctx context.Context, sess store.Session, items []storedAnswer, normalized []string, m Meta) error {
	names := []string{sess.Username}
	if u, err := s.sessionUser(ctx, sess); err == nil {
		names = append(names, u.Username, u.DisplayName)
		if at := strings.IndexByte(u.Mail, '@'); at > 0 {
			names = append(names, u.Mail[:at])
		}
	} else {
		return err
	}
	var weak []Violation
	for i, a := range normalized {
		reason := trivialAnswer(a, items[i].Text, names)
		if reason == "" && slices.Index(normalized, a) < i {
			reason = answerDuplicate
		}
		if reason != "" {
			weak = append(weak, Violation{Code: reason, Message: fmt.Sprintf("The answer to question %d %s", i+1, answerTexts[reason])})
		}
	}
	if len(weak) > 0 {
		codes := make([]string, len(weak))
		for i, v := range weak {
			codes[i] = v.Code
		}
		s.record(ctx, m, "registration.method_added", sess.AccountID, "refused", map[string]string{"type": MethodQuestions, "reason": strings.Join(codes, ",")})
		p := problem(CodeWeakAnswers, nil)
		p.Violations = weak
		return p
	}
	return nil
}

// hashQuestions is the stored set of items with the answers hashed, each
// with a salt of its own.
func hashQuestions(items []storedAnswer, normalized []string) (string, error) {
	set := storedQuestions{V: 1, Time: argonTime, Memory: argonMemory, Threads: argonThreads}
	for i := range items {
		items[i].Salt = make([]byte, argonSaltLen)
		if _, err := rand.Read(items[i].Salt); err != nil {
			return "", err
		}
		items[i].Hash = hashAnswer(normalized[i], items[i].Salt, set.Time, set.Memory, set.Threads)
	}
	set.Items = items
	addr, err := json.Marshal(set)
	return string(addr), err
}

// replaceQuestions deletes the sets of existing: a new one replaces them.
func (s *Service) replaceQuestions(ctx context.Context, sess store.Session, existing []store.Method, m Meta) {
	replaced := false
	for _, e := range existing {
		if e.Type != MethodQuestions {
			continue
		}
		if err := s.d.Store.DeleteMethod(ctx, sess.AccountID, e.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("replacing security questions failed", "request_id", m.RequestID, "error", err.Error())
			continue
		}
		replaced = replaced || e.Verified
		s.record(ctx, m, "registration.method_removed", sess.AccountID, "replaced", map[string]string{"method": e.ID, "type": MethodQuestions})
	}
	if replaced {
		// open flows may have been proven with the old answers
		s.forget(s.d.Store.DeleteFlowsForAccount(ctx, sess.AccountID))
	}
}

// ---------------------------------------------------------------- reset

// withoutLoneQuestions drops security questions from a real account's
// offered methods when nothing else is offered: they can never be enough,
// so such an account is one with no usable methods.
func withoutLoneQuestions(offered []Offered) []Offered {
	if slices.ContainsFunc(offered, func(o Offered) bool { return strongKind(o.Type) }) {
		return offered
	}
	return nil
}

// flowExtras adds to a new flow's data what security questions and tier
// kinds need: the questions each offered questions method asks (the real
// ones for a real method, a stable choice from the admin list for a fake
// one), the kinds the account's tiers require and, with those, the method
// types the account may use (to name what still counts; see kindsMissing).
func (s *Service) flowExtras(ctx context.Context, st *flowState, name, account string, kinds [][]string, types []string) {
	if account != "" && len(kinds) > 0 {
		st.Kinds, st.Types = kinds, types
	}
	asked := map[string][]Question{}
	for _, o := range st.Offered {
		if o.Type != MethodQuestions {
			continue
		}
		var qs []Question
		if o.real && account != "" {
			qs = s.pickRealQuestions(ctx, account, o.ID)
		}
		if qs == nil {
			qs = s.pickDecoyQuestions(name)
		}
		asked[o.ID] = qs
	}
	if len(asked) > 0 {
		st.Questions = asked
	}
}

func questionsOKKey(accountID, methodID string) string {
	return "questions-ok:" + accountID + ":" + methodID
}

// pickRealQuestions chooses Ask of the method's questions: a keyed hash of
// the account, the method and its count of correct answers orders them.
func (s *Service) pickRealQuestions(ctx context.Context, accountID, methodID string) []Question {
	meth, err := s.d.Store.GetMethod(ctx, accountID, methodID)
	if err != nil {
		return nil
	}
	var set storedQuestions
	if json.Unmarshal([]byte(meth.Secret), &set) != nil || len(set.Items) == 0 {
		return nil
	}
	n, err := s.d.Store.Count(ctx, questionsOKKey(accountID, methodID), questionsRotation, s.now())
	if err != nil {
		n = 0
	}
	qs := make([]Question, len(set.Items))
	for i, it := range set.Items {
		qs[i] = Question{ID: it.ID, Text: it.Text}
	}
	return s.choose(qs, "ask", accountID, methodID, strconv.Itoa(n))
}

// pickDecoyQuestions chooses Ask questions of the admin list for a fake
// method, the same for one name every time.
func (s *Service) pickDecoyQuestions(name string) []Question {
	return s.choose(s.AdminQuestions(), "ask-decoy", strings.ToLower(name))
}

// choose orders qs by a keyed hash of parts and each id, and keeps Ask.
func (s *Service) choose(qs []Question, parts ...string) []Question {
	out := slices.Clone(qs)
	rank := func(q Question) string {
		return hex.EncodeToString(mac(s.k.decoy, append(slices.Clone(parts), q.ID)...))
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out[:min(len(out), s.live().Questions.Ask)]
}

// questionsOf returns the flow's questions for methodID, and whether the
// flow has proven a method other than security questions (the questions
// are shown and checked only then).
func (s *Service) questionsOf(f liveFlow, offered []Offered, methodID string) ([]Question, bool) {
	asked := f.st.Questions
	proven := false
	for _, id := range f.Verified {
		if i := slices.IndexFunc(offered, func(o Offered) bool { return o.ID == id }); i >= 0 && strongKind(offered[i].Type) {
			proven = true
		}
	}
	return asked[methodID], proven
}

// FlowQuestions returns the questions a flow asks for one of its security
// questions methods. ok is false when methodID is not such a method (the
// caller then sends a code as usual). Until another method is proven in
// the flow the answer is not_verified, for every name alike.
func (s *Service) FlowQuestions(ctx context.Context, kind, flowID, methodID string, m Meta) (qs []Question, ok bool, err error) {
	f, err := s.loadFlow(ctx, kind, flowID)
	if err != nil {
		return nil, false, err
	}
	offered := offeredOf(f)
	i := slices.IndexFunc(offered, func(o Offered) bool { return o.ID == methodID })
	if i < 0 || offered[i].Type != MethodQuestions {
		return nil, false, nil
	}
	if slices.Contains(f.Verified, methodID) {
		return nil, true, nil
	}
	qs, proven := s.questionsOf(f, offered, methodID)
	if !proven {
		return nil, true, problem(CodeNotVerified, errNotAfterProof)
	}
	s.record(ctx, m, kind+".questions_asked", f.AccountID, "success", map[string]string{"method": methodID, "count": strconv.Itoa(len(qs))})
	return qs, true, nil
}

// answersMatch hashes every given answer (a fake set, or a question the
// set lacks, is hashed with a salt nobody knows and never matches) and
// compares in constant time; all must match.
func (s *Service) answersMatch(set storedQuestions, asked []Question, given map[string]string, methodID string) bool {
	ok := len(set.Items) > 0
	for _, q := range asked {
		i := slices.IndexFunc(set.Items, func(it storedAnswer) bool { return it.ID == q.ID })
		var it storedAnswer
		t, mem, p := uint32(argonTime), uint32(argonMemory), uint8(argonThreads)
		if i >= 0 && set.Time > 0 && set.Memory > 0 && set.Threads > 0 {
			it, t, mem, p = set.Items[i], set.Time, set.Memory, set.Threads
		} else {
			d := mac(s.k.decoy, "questions", methodID, q.ID)
			it = storedAnswer{Salt: d[:argonSaltLen], Hash: mac(s.k.decoy, "questions-hash", methodID, q.ID)}
			ok = false
		}
		got := hashAnswer(normalizeAnswer(given[q.ID]), it.Salt, t, mem, p)
		if subtle.ConstantTimeCompare(got, it.Hash) != 1 {
			ok = false
		}
	}
	return ok
}

// ---------------------------------------------------------------- tiers

// flowKinds are the kinds the flow's account must prove (from its tiers).
func flowKinds(f liveFlow) [][]string { return f.st.Kinds }

// kindsRemaining is what the flow still needs once a method is proven:
// at least one more while only security questions are proven or a kind
// its tiers require is missing.
func kindsRemaining(f liveFlow, offered []Offered) int {
	var kinds []string
	for _, id := range f.Verified {
		if i := slices.IndexFunc(offered, func(o Offered) bool { return o.ID == id }); i >= 0 {
			kinds = append(kinds, offered[i].Type)
		}
	}
	return policy.Decision{MethodsRequired: f.Required, RequireKinds: flowKinds(f)}.Remaining(kinds)
}

// kindsMissing is the first set of kinds the flow's account must still
// prove one of, nil when none. Once every required kind is proven, in a
// tier that requires one, a flow that still needs a method (security
// questions do not count there) needs one of the account's method types
// that would count: any but security questions, and an app or a passkey
// only if none is proven yet (each counts once).
func kindsMissing(f liveFlow, offered []Offered) []string {
	var kinds []string
	for i := range offered {
		if slices.Contains(f.Verified, offered[i].ID) {
			kinds = append(kinds, offered[i].Type)
		}
	}
	d := policy.Decision{MethodsRequired: f.Required, RequireKinds: flowKinds(f)}
	if missing := d.MissingKinds(kinds); missing != nil || len(d.RequireKinds) == 0 || d.Remaining(kinds) == 0 {
		return missing
	}
	var out []string
	for _, t := range f.st.Types {
		if strongKind(t) && !(countsOnce(t) && slices.Contains(kinds, t)) {
			out = append(out, t)
		}
	}
	return out
}

// kindsProblem refuses proofs of the right number that are only security
// questions (not_verified) or lack a kind the account's tiers require
// (method_kind_required).
func kindsProblem(dec policy.Decision, kinds []string) *Problem {
	if policy.OnlyQuestions(kinds) {
		return problem(CodeNotVerified, errors.New("security questions are never enough alone"))
	}
	if missing := dec.MissingKinds(kinds); missing != nil {
		return problem(CodeMethodKindRequired, fmt.Errorf("one of %v is required", missing))
	}
	return nil
}

// QuestionOptions are the security questions' settings in force.
func (s *Service) QuestionOptions() QuestionOptions { return s.live().Questions }
