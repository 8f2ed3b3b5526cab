package flow

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/latchkeyhq/latchkey/notify"
	"github.com/latchkeyhq/latchkey/templates"
)

// codeMail is the data of mail/code.* templates.
type codeMail struct {
	Product, Code, Purpose, URL, Helpdesk string
	Minutes                               int
}

// noticeMail is the data of mail/notice.* templates.
type noticeMail struct {
	Product, Event, Time, URL, Helpdesk, Name string
	// From is the client address the request came from (security notes H1:
	// time and source), empty when unknown.
	From string
	// Changes are the sentences of a coalesced notice (Event "changes").
	Changes []string
	// Subject and SubjectName are the display name and username of the
	// admin whose password was reset (Event "admin_password_reset").
	Subject, SubjectName string
}

// mailTemplates holds one template set per file: every .txt defines its
// own "subject".
type mailTemplates struct {
	text map[string]*texttemplate.Template // by file name
	html map[string]*htmltemplate.Template
}

var mailNames = []string{"code", "notice"}

func loadMailTemplates() (*mailTemplates, error) {
	m := &mailTemplates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, n := range mailNames {
		for _, ext := range []string{".txt", ".sms"} {
			t, err := texttemplate.ParseFS(templates.FS, "mail/"+n+ext)
			if err != nil {
				return nil, err
			}
			m.text[n+ext] = t
		}
		h, err := htmltemplate.ParseFS(templates.FS, "mail/"+n+".html")
		if err != nil {
			return nil, err
		}
		m.html[n+".html"] = h
	}
	return m, nil
}

func (m *mailTemplates) email(name, to string, data any) (notify.Email, error) {
	var subj, text, html bytes.Buffer
	t := m.text[name+".txt"]
	if err := t.ExecuteTemplate(&subj, "subject", data); err != nil {
		return notify.Email{}, err
	}
	if err := t.Execute(&text, data); err != nil {
		return notify.Email{}, err
	}
	if err := m.html[name+".html"].Execute(&html, data); err != nil {
		return notify.Email{}, err
	}
	return notify.Email{To: to, Subject: strings.TrimSpace(subj.String()), Text: text.String(), HTML: html.String()}, nil
}

func (m *mailTemplates) sms(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := m.text[name+".sms"].Execute(&b, data); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}
