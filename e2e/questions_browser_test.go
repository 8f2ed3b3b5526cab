package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestQuestionsBrowser registers an email and security questions on the
// pages in Chromium and resets with them, against slapd and Samba AD:
// trivial answers refused at registration; at the reset the questions are
// neither shown nor accepted (not even right answers) before the email is
// proven; a wrong answer is refused with the fixed message and not shown
// back; the right answers, spelt differently, lead to the new password,
// which binds (and the questions page, loaded again, asks nothing more). axe-core and the phone-width checks run on every questions
// page, refusals included.
func TestQuestionsBrowser(t *testing.T) {
	parallel(t)
	for _, d := range directories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			runQuestionsBrowser(t, d.start(t))
		})
	}
}

// browserAnswers are carol's answers as registered on the page, and as
// typed at the reset (other case and spacing, full-width letters): the
// same once normalised.
var browserAnswers = []struct{ registered, typed string }{
	{"Juniper Anvil", "  JUNIPER   anvil "},
	{"Marigold Lane", "marigold LANE"},
	{"Copper Kettle", "ＣＯＰＰＥＲ   Kettle"},
}

// askedQuestion is one question of the reset page: its input's id and the
// question's text (the input's label).
type askedQuestion struct {
	Input string `json:"input"`
	Text  string `json:"text"`
}

// askedQuestions lists the questions the reset page asks.
func (b *browser) askedQuestions() []askedQuestion {
	b.t.Helper()
	qs, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]askedQuestion](`Array.from(document.querySelectorAll('main form input[name^="answer-"]')).map(i => ({
	  input: i.id, text: (document.querySelector('label[for="' + i.id + '"]') || {innerText: ''}).innerText.trim()}))`))
	if err != nil {
		b.t.Fatal(err)
	}
	return qs
}

// runQuestionsBrowser is the journey of TestQuestionsBrowser on srv. Two
// methods are required, so the questions count as the second one after
// the email (with one required, the email alone would end the proof).
func runQuestionsBrowser(t *testing.T, srv *dirtest.Server) {
	exe := chromiumPath(t)
	mail, sms := startMail(t)
	p := questionsParams()
	p.MethodsRequired = 2
	e := startGateway(t, srv, mail, sms, p)
	b := newBrowser(t, exe, e.base)
	const (
		email   = "carol.home@example.net"
		newPass = "Quartz-Meadow-Falcon-73"
		wrong   = "Wrong Horse Battery"
	)

	// ------------------------------------------------ registration
	b.open("/register", 200)
	b.typeInto("username", "carol")
	b.typeInto("password", srv.Password("carol"))
	b.click(`form[action="/register"] button[type=submit]`, 200, "/register/methods")
	b.typeInto("email", email)
	b.click(`form:has(input[name=type][value=email]) button[type=submit]`, 200, "")
	b.typeInto("code", e.mailCode(email))
	b.click(`form[action$="/verify"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("The method is verified.", "Add security questions")
	b.click(`a[href="/register/questions"]`, 200, "/register/questions")
	b.mustSee(e2eQuestions[0], "never reset your password on their own")
	b.check("security questions")

	b.typeInto("answer-0", "carol")
	b.typeInto("answer-1", browserAnswers[1].registered)
	b.typeInto("answer-2", browserAnswers[2].registered)
	b.click(`form[action="/register/questions"] button[type=submit]`, 422, "/register/questions")
	b.mustError("Some answers are too easy to guess")
	if strings.Contains(b.mainText(), "Marigold") {
		t.Fatal("the page after a refusal shows an answer")
	}
	b.check("security questions: trivial answer")
	// the question of each row, by its id and its text
	chosen, err := chromedp.Run(b.ctx, chromedp.Evaluate[[][2]string](`[0, 1, 2].map(i => {
	  const o = document.getElementById('question-' + i).selectedOptions[0]; return [o.value, o.text]; })`))
	if err != nil || len(chosen) != 3 {
		t.Fatalf("the questions chosen: %v %v", chosen, err)
	}
	typed := map[string]string{} // the answer typed at the reset, by question text
	for i, a := range browserAnswers {
		b.typeInto("answer-"+strconv.Itoa(i), a.registered)
		typed[chosen[i][1]] = a.typed
	}
	if len(typed) != 3 {
		t.Fatalf("two rows hold the same question: %v", chosen)
	}
	b.click(`form[action="/register/questions"] button[type=submit]`, 200, "/register/methods")
	b.mustSee("Your security questions are saved", "Security questions", "Change security questions")
	if strings.Contains(b.mainText(), "Juniper") {
		t.Fatal("the methods page shows an answer")
	}
	b.check("methods: security questions saved")
	b.click(`form[action="/register/signout"] button[type=submit]`, 200, "/")

	// ------------------------------------------------ reset: questions only after another proof
	b.open("/reset", 200)
	b.typeInto("username", "carol")
	b.click(`form[action="/reset"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee("You need 2 verified methods, each a different one.", "Your security questions (after another method)")
	b.check("reset: email and security questions offered")
	emailID, questionsID := b.offeredID("Email to"), b.offeredID("Your security questions")
	noQuestions := func(when string) {
		t.Helper()
		txt := b.mainText()
		for text := range typed {
			if strings.Contains(txt, text) {
				t.Fatalf("%s the page shows the question %q:\n%s", when, text, txt)
			}
		}
		if qs := b.askedQuestions(); len(qs) != 0 {
			t.Fatalf("%s the page asks %v", when, qs)
		}
	}

	b.click(`ul.methods form:has(input[name=method][value="`+questionsID+`"]) button[type=submit]`, 200, "/reset/code")
	b.mustSee("Security questions are asked only after you have verified another method")
	noQuestions("before another proof")
	b.check("reset: security questions before another method")

	// a post of the right answers (the method's form, sent to verify
	// instead) is refused as well, and asks nothing either
	b.click(`main a[href="/reset/methods"]`, 200, "/reset/methods")
	right, _ := json.Marshal([][2]string{
		{chosen[0][0], browserAnswers[0].registered}, {chosen[1][0], browserAnswers[1].registered}, {chosen[2][0], browserAnswers[2].registered},
	})
	if err := chromedp.Do(b.ctx, chromedp.Evaluate[chromedp.Void](`((answers) => {
	  const f = document.querySelector('ul.methods form:has(input[name=method][value="`+questionsID+`"])');
	  f.action = '/reset/verify';
	  for (const [id, answer] of answers) {
	    const i = document.createElement('input'); i.type = 'hidden'; i.name = 'answer-' + id; i.value = answer; f.append(i);
	  }
	})(`+string(right)+`)`)); err != nil {
		t.Fatal(err)
	}
	b.click(`ul.methods form[action="/reset/verify"] button[type=submit]`, 409, "/reset/verify")
	b.mustError("Verify the required number of methods first.")
	b.mustSee("Security questions are asked only after you have verified another method")
	noQuestions("after answers posted before another proof,")
	if strings.Contains(b.mainText(), "Juniper") {
		t.Fatal("the refusal shows an answer")
	}
	b.check("reset: security questions posted before another method")
	b.open("/reset/password", 200)
	if p := b.path(); p != "/reset/methods" {
		t.Fatalf("the password page before any proof: at %s", p)
	}

	// ------------------------------------------------ reset: the email, then the questions
	b.click(`ul.methods form:has(input[name=method][value="`+emailID+`"]) button[type=submit]`, 200, "/reset/code")
	b.typeInto("code", e.mailCode(email))
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/methods")
	b.mustSee("That method is verified.", "Choose 1 more method", "Verified")
	b.open("/reset/password", 200)
	if p := b.path(); p != "/reset/methods" {
		t.Fatalf("the password page with the email alone: at %s", p)
	}

	b.click(`ul.methods form:has(input[name=method][value="`+questionsID+`"]) button[type=submit]`, 200, "/reset/code")
	b.mustSee("Answer your security questions.")
	asked := b.askedQuestions()
	if len(asked) != 2 || asked[0].Text == asked[1].Text || typed[asked[0].Text] == "" || typed[asked[1].Text] == "" {
		t.Fatalf("the page asks %v, want 2 of the registered %v", asked, chosen)
	}
	b.check("reset: security questions")

	b.typeInto(asked[0].Input, typed[asked[0].Text])
	b.typeInto(asked[1].Input, wrong)
	b.click(`form[action="/reset/verify"] button[type=submit]`, 422, "/reset/verify")
	b.mustError("The answers are not right. Check them and try again.")
	if again := b.askedQuestions(); len(again) != 2 || again[0] != asked[0] || again[1] != asked[1] {
		t.Fatalf("after a wrong answer the page asks %v, before %v", again, asked)
	}
	values, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main').innerHTML + Array.from(document.querySelectorAll('main input')).map(i => i.value).join('|')`))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{wrong, strings.TrimSpace(typed[asked[0].Text]), "JUNIPER", "marigold", "ＣＯＰＰＥＲ"} {
		if strings.Contains(values, a) {
			t.Fatalf("the refusal shows the answer %q back", a)
		}
	}
	b.check("reset: wrong answers")
	if err := srv.UserBind("carol", srv.Password("carol")); err != nil {
		t.Fatalf("carol's password changed: %v", err)
	}

	b.typeInto(asked[0].Input, typed[asked[0].Text])
	b.typeInto(asked[1].Input, typed[asked[1].Text])
	b.click(`form[action="/reset/verify"] button[type=submit]`, 200, "/reset/password")
	// the questions page again (as Back would load it) asks nothing more
	b.open("/reset/code?method="+questionsID, 200)
	if p := b.path(); p != "/reset/password" {
		t.Fatalf("the questions page once answered: at %s", p)
	}
	b.typeInto("password", newPass)
	b.typeInto("confirm", newPass)
	b.click(`form[action="/reset/password"] button[type=submit]`, 200, "/reset/done")
	b.mustSee("Your password has been reset")
	if err := srv.UserBind("carol", newPass); err != nil {
		t.Fatalf("the new password does not bind: %v", err)
	}
	if err := srv.UserBind("carol", srv.Password("carol")); err == nil {
		t.Fatal("the old password still binds")
	}

	// no answer in the log or the audit
	logs, _ := readFile(e.log)
	audit, _ := readFile(e.audit)
	if !strings.Contains(audit, "reset.questions_asked") {
		t.Fatal("the questions asked are not in the audit log")
	}
	for what, text := range map[string]string{"the log": strings.ToLower(logs), "the audit log": strings.ToLower(audit)} {
		for _, a := range []string{"juniper", "marigold", "copper", "ｃｏｐｐｅｒ", "wrong horse"} {
			if strings.Contains(text, a) {
				t.Errorf("%s holds the answer %q", what, a)
			}
		}
	}
}
