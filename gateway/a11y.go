package gateway

import (
	"fmt"
	"html/template"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
)

// Accessible errors (WCAG 3.3.1, 1.3.1, 2.4.3), without JavaScript: after a
// refused post the fields the refusal is about carry aria-invalid and are
// described by the error's text, and the first of them takes focus
// (autofocus); a refusal about no field puts focus on the error summary.

// The ids of the error summary's parts (layout.html).
const (
	errorMessageID = "error-message"
	errorListID    = "error-list"
)

// anyAnswer stands for every "answer-N" field of a questions page.
const anyAnswer = "answer-*"

// fieldsInError names the fields (their ids on the page) a refusal is
// about, and the one that takes focus ("" with no field: the summary).
// It depends on the page, the route posted to and the problem's code only,
// never on the account: before any proof the page is the same for every
// username.
func fieldsInError(c echo.Context, page string, p *flow.Problem) (fields []string, focus string) {
	path := c.Request().URL.Path
	switch p.Code {
	case flow.CodeSignInFailed:
		switch {
		case page == "signin":
			return []string{"username", "password"}, "password"
		case page == "change":
			return []string{"username", "old"}, "old"
		case page == "methods" && strings.HasSuffix(path, "/reauth"):
			return []string{"reauth"}, "reauth"
		case page == "methods" && strings.HasSuffix(path, "/remove"):
			id := "rm-" + c.Param("id")
			return []string{id}, id
		}
	case flow.CodePasswordRejected:
		newID := map[string]string{"change": "new", "flow_password": "password"}[page]
		if newID == "" {
			return nil, ""
		}
		var bad, mismatch bool
		for _, v := range p.Violations {
			if v.Code == "mismatch" {
				mismatch = true
			} else {
				bad = true
			}
		}
		if bad || !mismatch {
			fields = append(fields, newID)
		}
		if mismatch {
			fields = append(fields, "confirm")
		}
		return fields, fields[0]
	case flow.CodeInvalidCode:
		if page == "flow_code" || page == "verify_method" || page == "totp_enrol" {
			return []string{"code"}, "code"
		}
	case flow.CodeWrongAnswers, flow.CodeWeakAnswers:
		if page == "flow_questions" || page == "questions" {
			return []string{anyAnswer}, "answer-0"
		}
	case flow.CodeInvalidEmail, flow.CodeWorkEmail:
		if page == "methods" {
			return []string{"email"}, "email"
		}
	case flow.CodeInvalidPhone:
		if page == "methods" {
			return []string{"phone"}, "phone"
		}
	case flow.CodeMethodExists:
		if page == "methods" {
			if id := map[string]string{"email": "email", "sms": "phone"}[formValue(c, "type")]; id != "" {
				return []string{id}, id
			}
		}
	}
	return nil, ""
}

// Field gives a form field's accessibility attributes: aria-describedby
// (its own descriptions, and the error's text first when the field is in
// error), aria-invalid, and autofocus on the field that takes focus.
func (d pageData) Field(id string, describedBy ...string) template.HTMLAttr {
	var desc []string
	bad := d.Error != "" && d.inError(id)
	if bad {
		desc = append(desc, errorMessageID)
		if len(d.Errors) > 0 {
			desc = append(desc, errorListID)
		}
	}
	desc = append(desc, describedBy...)
	var b strings.Builder
	if len(desc) > 0 {
		fmt.Fprintf(&b, ` aria-describedby="%s"`, template.HTMLEscapeString(strings.Join(desc, " ")))
	}
	if bad {
		b.WriteString(` aria-invalid="true"`)
		if d.Focus == id {
			b.WriteString(` autofocus`)
		}
	}
	return template.HTMLAttr(b.String()) // #nosec G203 -- fixed names, escaped ids
}

func (d pageData) inError(id string) bool {
	for _, f := range d.Invalid {
		if f == id || (f == anyAnswer && strings.HasPrefix(id, "answer-")) {
			return true
		}
	}
	return false
}

// SummaryFocus: the error is about no field of the page, so its summary
// takes focus.
func (d pageData) SummaryFocus() bool { return d.Error != "" && d.Focus == "" }

// Masked addresses read aloud (WCAG 1.3.1): "c•••@e•••.net" is shown, and a
// screen reader hears the same facts in words, no more than the eye sees.
var (
	maskedEmail = regexp.MustCompile(`^(.)•••@(.)•••(?:\.(.+))?$`)
	maskedPhone = regexp.MustCompile(`^(?:\+(\d+) )?•••• ••(\d\d)$`)
	bulletRun   = regexp.MustCompile(`•+`)
)

// masked says whether a hint is a mask (bullets in it).
func masked(hint string) bool { return strings.Contains(hint, "•") }

// spoken is a mask in words: "an address starting with c, at a domain
// starting with e, ending in .net"; "a number with country code +44,
// ending in 56"; "hidden" for a mask that shows nothing.
func spoken(hint string) string {
	if m := maskedEmail.FindStringSubmatch(hint); m != nil {
		s := "an address starting with " + m[1] + ", at a domain starting with " + m[2]
		if m[3] != "" {
			s += ", ending in ." + m[3]
		}
		return s
	}
	if m := maskedPhone.FindStringSubmatch(hint); m != nil {
		if m[1] != "" {
			return "a number with country code +" + m[1] + ", ending in " + m[2]
		}
		return "a number ending in " + m[2]
	}
	if strings.Trim(hint, "•") == "" {
		return "hidden"
	}
	return strings.Join(strings.Fields(bulletRun.ReplaceAllString(hint, " (hidden) ")), " ")
}

// minutes says a duration in whole minutes: "15 minutes", "1 minute".
func minutes(d time.Duration) string {
	n := int(d.Round(time.Minute) / time.Minute)
	if n == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", max(n, 1))
}

var pageFuncs = template.FuncMap{"masked": masked, "spoken": spoken, "reason": reasonText}

// reasonText says a policy reason (policy.Reason*) in words, for the
// admin console.
func reasonText(r string) string {
	if t, ok := reasonTexts[r]; ok {
		return t
	}
	return r
}

var reasonTexts = map[string]string{
	"scope_none":            "self-service reset is off (None)",
	"not_in_group":          "not a member of any selected group",
	"excluded":              "member of an excluded group",
	"privileged":            "a privileged account, and privileged accounts are excluded",
	"disabled":              "the account is disabled",
	"membership_unresolved": "a group membership could not be read, so the account is refused",
	"no_methods":            "its tier requires more methods than are available",
}
