package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// The admin console's pages (/admin). /admin is the sign-in; every other
// page answers 401 with the sign-in form without an admin session (its own
// cookie), and every form is POST with CSRF.

// navItem is one entry of the console's menu.
type navItem struct {
	Path, Label string
	Current     bool
}

// adminPages are the console's pages, in the menu's order, with their
// titles (Entra's: Properties, Authentication methods, Registration,
// Customization; then Activity and Explain a user).
var adminPages = []navItem{
	{Path: "/admin/properties", Label: "Properties"},
	{Path: "/admin/methods", Label: "Authentication methods"},
	{Path: "/admin/registration", Label: "Registration"},
	{Path: "/admin/notifications", Label: "Notifications"},
	{Path: "/admin/customization", Label: "Customization"},
	{Path: "/admin/activity", Label: "Activity"},
	{Path: "/admin/blocked", Label: "Blocked"},
	{Path: "/admin/explain", Label: "Explain a user"},
}

const ctxAdminNav = "latchkey.admin_nav"

func (s *Server) adminRoutes() {
	e := s.e
	e.GET("/admin", s.adminSignInPage)
	e.POST("/admin", s.form(s.adminSignIn))
	e.POST("/admin/passkey-start", s.form(s.adminPasskeyStart))
	e.POST("/admin/passkey", s.passkeyForm(s.adminPasskey))
	e.POST("/admin/signout", s.adminForm(s.adminSignOut))
	e.GET("/admin/properties", s.adminPage(s.adminSettingsPage("admin_properties")))
	e.POST("/admin/properties", s.adminForm(s.adminSaveSettings("admin_properties", propertiesFromForm)))
	e.GET("/admin/methods", s.adminPage(s.adminSettingsPage("admin_methods")))
	e.POST("/admin/methods", s.adminForm(s.adminSaveSettings("admin_methods", methodsFromForm)))
	e.GET("/admin/registration", s.adminPage(s.adminSettingsPage("admin_registration")))
	e.POST("/admin/registration", s.adminForm(s.adminSaveSettings("admin_registration", registrationFromForm)))
	e.GET("/admin/notifications", s.adminPage(s.adminSettingsPage("admin_notifications")))
	e.POST("/admin/notifications", s.adminForm(s.adminSaveSettings("admin_notifications", notificationsFromForm)))
	e.GET("/admin/customization", s.adminPage(s.adminSettingsPage("admin_customization")))
	e.POST("/admin/customization", s.adminForm(s.adminSaveSettings("admin_customization", customizationFromForm)))
	e.GET("/admin/activity", s.adminPage(s.adminActivityPage))
	e.GET("/admin/activity.csv", s.adminPage(s.adminActivityCSV))
	e.GET("/admin/explain", s.adminPage(s.adminExplainPage))
	e.GET("/admin/blocked", s.adminPage(s.adminBlockedPage))
	e.POST("/admin/unblock", s.adminForm(s.adminUnblock))
	e.POST("/admin/remove-app", s.adminForm(s.adminRemoveApp))
}

func (s *Server) adminRemoveApp(c echo.Context, sess store.Session) error {
	name := formValue(c, "username")
	if err := s.svc.RemoveAdminApp(c.Request().Context(), sess, name, meta(c)); err != nil {
		return err
	}
	return s.redirect(c, "/admin/explain?"+url.Values{"username": {name}, "notice": {"app_removed"}}.Encode())
}

func (s *Server) adminBlockedPage(c echo.Context, sess store.Session) error {
	held, err := s.svc.Blocked(c.Request().Context(), sess)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_blocked", "Blocked", struct{ Held []flow.Held }{held}, nil)
}

func (s *Server) adminUnblock(c echo.Context, sess store.Session) error {
	if err := s.svc.Unblock(c.Request().Context(), sess, formValue(c, "account"), formValue(c, "address"), meta(c)); err != nil {
		return err
	}
	return s.redirect(c, "/admin/blocked?notice=unblocked")
}

// adminSessionFromCookie is the admin session of the browser's cookie.
func (s *Server) adminSessionFromCookie(c echo.Context) (store.Session, error) {
	ck, err := c.Cookie(s.cookieAdmin)
	if err != nil {
		return store.Session{}, flow.NewProblem(flow.CodeAdminAuth, nil)
	}
	return s.svc.AdminSession(c.Request().Context(), ck.Value)
}

// adminPage wraps a GET page that needs an admin session: without one it
// answers 401 with the sign-in form.
func (s *Server) adminPage(h func(echo.Context, store.Session) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, err := s.adminSessionFromCookie(c)
		if err != nil {
			return s.adminSignInRefusal(c, err)
		}
		s.setAdminNav(c)
		return h(c, sess)
	}
}

// adminForm is adminPage for a POST form: CSRF first, then the session.
func (s *Server) adminForm(h func(echo.Context, store.Session) error) echo.HandlerFunc {
	return s.form(s.adminPage(h))
}

func (s *Server) adminSignInRefusal(c echo.Context, err error) error {
	p := flow.AsProblem(err)
	if p.Code != flow.CodeAdminAuth {
		return err
	}
	if !s.svc.AdminEnabled() {
		return flow.NewProblem(flow.CodeNotFound, nil)
	}
	return s.render(c, http.StatusUnauthorized, "admin_signin", "Admin sign-in", s.signInData(""), nil)
}

// adminSignInData is what the console's sign-in page shows.
type adminSignInData struct {
	Username string
	// Passkeys: a passkey can sign in (the public URL has a host name)
	Passkeys bool
}

func (s *Server) signInData(username string) adminSignInData {
	return adminSignInData{Username: username, Passkeys: s.svc.PasskeysPossible()}
}

// adminPasskeyStart: the password of a passkey sign-in; the answer is the
// page that asks the browser for the passkey (a ceremony for a passkey
// nobody has when anything was wrong: the next step fails alike).
func (s *Server) adminPasskeyStart(c echo.Context) error {
	username := formValue(c, "username")
	ac, err := s.svc.AdminPasskeyBegin(c.Request().Context(), username, formValue(c, "password"), meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 || p.Code == flow.CodeNotFound {
			return err
		}
		return s.render(c, p.Status, "admin_signin", "Admin sign-in", s.signInData(username), p)
	}
	return s.renderPasskey(c, http.StatusOK, "Admin sign-in", passkeyPage{Mode: "get", Action: "/admin/passkey", Kind: "admin",
		Token: ac.Token, Options: string(ac.Options)}, nil)
}

// adminPasskey: the browser's answer; an admin session when it is right.
func (s *Server) adminPasskey(c echo.Context) error {
	ctx := c.Request().Context()
	sess, err := s.svc.AdminPasskeyFinish(ctx, formValue(c, "token"), []byte(formValue(c, "credential")), meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 || p.Code == flow.CodeNotFound {
			return err
		}
		return s.render(c, p.Status, "admin_signin", "Admin sign-in", s.signInData(""), p)
	}
	if old, err := c.Cookie(s.cookieAdmin); err == nil {
		_ = s.svc.SignOut(ctx, old.Value)
	}
	c.SetCookie(s.cookie(s.cookieAdmin, sess.ID, 0))
	return s.redirect(c, adminPages[0].Path)
}

func (s *Server) setAdminNav(c echo.Context) {
	nav := slices.Clone(adminPages)
	for i := range nav {
		nav[i].Current = c.Request().URL.Path == nav[i].Path
	}
	c.Set(ctxAdminNav, nav)
}

func (s *Server) adminSignInPage(c echo.Context) error {
	if !s.svc.AdminEnabled() {
		return flow.NewProblem(flow.CodeNotFound, nil)
	}
	if _, err := s.adminSessionFromCookie(c); err == nil {
		return s.redirect(c, adminPages[0].Path)
	}
	return s.render(c, http.StatusOK, "admin_signin", "Admin sign-in", s.signInData(""), nil)
}

func (s *Server) adminSignIn(c echo.Context) error {
	ctx := c.Request().Context()
	if old, err := c.Cookie(s.cookieAdmin); err == nil {
		_ = s.svc.SignOut(ctx, old.Value)
	}
	username := formValue(c, "username")
	sess, err := s.svc.AdminSignIn(ctx, username, formValue(c, "password"), formValue(c, "code"), meta(c))
	if err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 || p.Code == flow.CodeNotFound {
			return err
		}
		return s.render(c, p.Status, "admin_signin", "Admin sign-in", s.signInData(username), p)
	}
	c.SetCookie(s.cookie(s.cookieAdmin, sess.ID, 0))
	return s.redirect(c, adminPages[0].Path)
}

func (s *Server) adminSignOut(c echo.Context, sess store.Session) error {
	if err := s.svc.AdminSignOut(c.Request().Context(), sess, meta(c)); err != nil {
		return err
	}
	c.SetCookie(s.cookie(s.cookieAdmin, "", -1))
	return s.redirect(c, "/admin")
}

// settingsPage is what the settings pages show.
type settingsPage struct {
	View flow.SettingsView
	// Set is what the form shows: the settings in force, or what a
	// refused save sent.
	Set config.Settings
	// Methods are the methods a save may list, with whether each is on.
	Methods []methodChoice
	// Tiers are the tiers with their choices, and one empty to add.
	Tiers []tierForm
	// Changed: after a conflict, the keys someone else changed.
	Changed []string
	// Preview is the impact of the form's settings (the Preview button).
	Preview *flow.Preview
	// GroupQuery and Groups are the group picker's search and results.
	GroupQuery string
	Groups     []flow.GroupView
	Searched   bool
}

type methodChoice struct {
	Type, Label string
	On          bool
}

// tierForm is one tier as the methods page shows it, with its choices.
type tierForm struct {
	Index    int
	Groups   []string
	Required int
	Methods  []methodChoice
	Require  []methodChoice
	New      bool
}

var methodLabels = map[string]string{"email": "Email code", "sms": "Text message (SMS) code", "totp": "Authenticator app",
	"webauthn": "Passkey", "questions": "Security questions"}

func newSettingsPage(v flow.SettingsView, set config.Settings) settingsPage {
	d := settingsPage{View: v, Set: set}
	for _, m := range v.Methods {
		d.Methods = append(d.Methods, methodChoice{Type: m, Label: methodLabels[m], On: slices.Contains(set.Policy.Methods, m)})
	}
	for i, t := range append(slices.Clone(set.Policy.Tiers), config.Tier{}) {
		tf := tierForm{Index: i, Groups: t.Groups, Required: t.MethodsRequired, New: i == len(set.Policy.Tiers)}
		for _, m := range v.Methods {
			tf.Methods = append(tf.Methods, methodChoice{Type: m, Label: methodLabels[m], On: slices.Contains(t.Methods, m)})
			if m != "questions" {
				tf.Require = append(tf.Require, methodChoice{Type: m, Label: methodLabels[m], On: slices.Contains(t.RequireOneOf, m)})
			}
		}
		d.Tiers = append(d.Tiers, tf)
	}
	return d
}

var adminTitles = map[string]string{"admin_properties": "Properties", "admin_methods": "Authentication methods",
	"admin_registration": "Registration", "admin_notifications": "Notifications", "admin_customization": "Customization"}

func (s *Server) adminSettingsPage(page string) func(echo.Context, store.Session) error {
	return func(c echo.Context, sess store.Session) error {
		v := s.svc.Settings()
		d := newSettingsPage(v, v.Settings)
		if q, ok := c.QueryParams()["q"]; ok && page == "admin_properties" {
			if len(q) != 1 || len(q[0]) > 256 {
				return flow.NewProblem(flow.CodeInvalidRequest, errors.New("q"))
			}
			d.GroupQuery, d.Searched = strings.TrimSpace(q[0]), true
			gs, err := s.svc.SearchGroups(c.Request().Context(), sess, d.GroupQuery)
			if err != nil {
				return err
			}
			d.Groups = gs
		}
		return s.render(c, http.StatusOK, page, adminTitles[page], d, nil)
	}
}

// adminSaveSettings saves what one settings page's form changes: the
// settings the form was shown with (its version) with the page's keys
// replaced.
func (s *Server) adminSaveSettings(page string, read func(echo.Context, *config.Settings) error) func(echo.Context, store.Session) error {
	return func(c echo.Context, sess store.Session) error {
		version, err := strconv.Atoi(formValue(c, "version"))
		if err != nil || version < 0 {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("version"))
		}
		cur := s.svc.Settings()
		set := cur.Settings
		if err := read(c, &set); err != nil {
			return err
		}
		if formValue(c, "action") == "preview" {
			p, err := s.svc.PreviewSettings(c.Request().Context(), sess, set, meta(c))
			if err != nil {
				pr := flow.AsProblem(err)
				if pr.Status >= 500 {
					return err
				}
				d := newSettingsPage(cur, set)
				d.View.Version = version // the form still saves what it was opened with
				return s.render(c, pr.Status, page, adminTitles[page], d, pr)
			}
			d := newSettingsPage(cur, set)
			d.View.Version = version // the form still saves what it was opened with
			d.Preview = &p
			return s.render(c, http.StatusOK, page, adminTitles[page], d, nil)
		}
		_, err = s.svc.SaveSettings(c.Request().Context(), sess, version, set, meta(c))
		if err == nil {
			return s.redirect(c, c.Request().URL.Path+"?notice=settings_saved")
		}
		p := flow.AsProblem(err)
		if p.Status >= 500 {
			return err
		}
		d := newSettingsPage(s.svc.Settings(), set)
		// refused (invalid settings): the form keeps the version it was
		// opened with, so that a second try is checked against it
		d.View.Version = version
		var conflict *flow.SettingsConflict
		if errors.As(err, &conflict) {
			// show what is in force now: the admin reviews it and saves again
			d = newSettingsPage(conflict.Current, conflict.Current.Settings)
			d.Changed = conflict.Changed
		}
		return s.render(c, p.Status, page, adminTitles[page], d, p)
	}
}

// lines splits a textarea into its non-empty lines.
func lines(v string) []string {
	out := []string{}
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func propertiesFromForm(c echo.Context, set *config.Settings) error {
	p := &set.Policy
	p.Scope = formValue(c, "scope")
	p.Groups, p.ExcludeGroups = lines(formValue(c, "groups")), lines(formValue(c, "exclude_groups"))
	p.IncludePrivileged = formValue(c, "include_privileged") == "on"
	return nil
}

func methodsFromForm(c echo.Context, set *config.Settings) error {
	p := &set.Policy
	n, err := strconv.Atoi(formValue(c, "methods_required"))
	if err != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("methods_required"))
	}
	p.MethodsRequired = n
	p.Methods = checked(c, "method_")
	// security questions: how many to register and to ask, the list
	q := &p.Questions
	if q.Required, err = strconv.Atoi(formValue(c, "questions_required")); err != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("questions_required"))
	}
	if q.Ask, err = strconv.Atoi(formValue(c, "questions_ask")); err != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("questions_ask"))
	}
	q.List, q.AllowCustom = lines(formValue(c, "questions_list")), formValue(c, "questions_custom") == "on"
	// the tiers shown, and one empty tier to add
	n, err = strconv.Atoi(formValue(c, "tiers"))
	if err != nil || n < 0 || n > maxTiers {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("tiers"))
	}
	p.Tiers = []config.Tier{}
	for i := 0; i <= n; i++ {
		pre := "tier" + strconv.Itoa(i) + "_"
		groups := lines(formValue(c, pre+"groups"))
		if formValue(c, pre+"remove") == "on" || (i == n && len(groups) == 0) {
			continue
		}
		req, err := strconv.Atoi(formValue(c, pre+"required"))
		if err != nil {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New(pre+"required"))
		}
		p.Tiers = append(p.Tiers, config.Tier{Groups: groups, MethodsRequired: req, Methods: checked(c, pre+"method_"),
			RequireOneOf: checked(c, pre+"require_")})
	}
	return nil
}

// maxTiers bounds the tiers a form may hold.
const maxTiers = 50

// checked lists the methods whose checkbox prefix+method is on.
func checked(c echo.Context, prefix string) []string {
	out := []string{}
	for _, m := range config.KnownMethods() {
		if formValue(c, prefix+m) == "on" {
			out = append(out, m)
		}
	}
	return out
}

func registrationFromForm(c echo.Context, set *config.Settings) error {
	n, err := strconv.Atoi(formValue(c, "reconfirm_days"))
	if err != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("reconfirm_days"))
	}
	set.Policy.ReconfirmDays = n
	return nil
}

func notificationsFromForm(c echo.Context, set *config.Settings) error {
	set.Notifications.Users = formValue(c, "users") == "on"
	set.Notifications.Admins = formValue(c, "admins") == "on"
	return nil
}

func customizationFromForm(c echo.Context, set *config.Settings) error {
	set.Server.Helpdesk = formValue(c, "helpdesk")
	set.Server.Organisation = formValue(c, "organisation")
	return nil
}

// activityPage is what the activity page shows.
type activityPage struct {
	Filter              flow.AuditFilter
	Page                flow.AuditPage
	Query, NextQuery    string
	Since, Until        string
	Account, Event, Out string
}

func (s *Server) adminActivity(c echo.Context, sess store.Session) (activityPage, error) {
	f, err := auditFilter(c)
	if err != nil {
		return activityPage{}, err
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	page, err := s.svc.Audit(c.Request().Context(), sess, f, meta(c))
	if err != nil {
		return activityPage{}, err
	}
	q := c.QueryParams()
	d := activityPage{Filter: f, Page: page, Account: q.Get("account"), Event: q.Get("event"), Out: q.Get("outcome"),
		Since: q.Get("since"), Until: q.Get("until")}
	keep := url.Values{}
	for _, k := range []string{"account", "event", "outcome", "since", "until"} {
		if v := q.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	d.Query = keep.Encode()
	if page.Next != 0 {
		keep.Set("before", strconv.FormatInt(page.Next, 10))
		d.NextQuery = keep.Encode()
	}
	return d, nil
}

func (s *Server) adminActivityPage(c echo.Context, sess store.Session) error {
	d, err := s.adminActivity(c, sess)
	if err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 {
			return err
		}
		return s.render(c, p.Status, "admin_activity", "Activity", activityPage{}, p)
	}
	return s.render(c, http.StatusOK, "admin_activity", "Activity", d, nil)
}

func (s *Server) adminActivityCSV(c echo.Context, sess store.Session) error {
	d, err := s.adminActivity(c, sess)
	if err != nil {
		return err
	}
	return writeAuditCSV(c, d.Page)
}

// explainPage is what the explain page shows.
type explainPage struct {
	Username string
	Result   *flow.Explanation
}

func (s *Server) adminExplainPage(c echo.Context, sess store.Session) error {
	name := strings.TrimSpace(c.QueryParam("username"))
	d := explainPage{Username: name}
	if name != "" {
		ex, err := s.svc.Explain(c.Request().Context(), sess, name, meta(c))
		if err != nil {
			p := flow.AsProblem(err)
			if p.Status >= 500 {
				return err
			}
			return s.render(c, p.Status, "admin_explain", "Explain a user", d, p)
		}
		d.Result = &ex
	}
	return s.render(c, http.StatusOK, "admin_explain", "Explain a user", d, nil)
}
