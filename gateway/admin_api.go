package gateway

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

// The admin console's JSON API (/api/v1/admin): a bearer token from POST
// /api/v1/admin/session; every other call answers 401
// admin_session_required without one.

func (s *Server) adminAPIRoutes(api *echo.Group) {
	a := api.Group("/admin")
	a.POST("/session", s.apiAdminSession)
	a.DELETE("/session", s.adminAPI(s.apiAdminSignOut))
	a.GET("/settings", s.adminAPI(s.apiAdminSettings))
	a.PUT("/settings", s.adminAPI(s.apiAdminSaveSettings))
	a.GET("/audit", s.adminAPI(s.apiAdminAudit))
	a.GET("/explain", s.adminAPI(s.apiAdminExplain))
	a.POST("/preview", s.adminAPI(s.apiAdminPreview))
	a.GET("/groups", s.adminAPI(s.apiAdminGroups))
	a.GET("/blocked", s.adminAPI(s.apiAdminBlocked))
	a.POST("/unblock", s.adminAPI(s.apiAdminUnblock))
	a.POST("/remove-app", s.adminAPI(s.apiAdminRemoveApp))
}

// apiAdminRemoveApp: POST /api/v1/admin/remove-app {username}: the
// account's authenticator apps are removed (an admin who lost theirs sets
// up a new one).
func (s *Server) apiAdminRemoveApp(c echo.Context, sess store.Session) error {
	var in struct {
		Username string `json:"username"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Username, 256); err != nil {
		return err
	}
	if err := s.svc.RemoveAdminApp(c.Request().Context(), sess, in.Username, meta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// apiAdminPreview: POST /api/v1/admin/preview {settings}: what saving
// them would change.
func (s *Server) apiAdminPreview(c echo.Context, sess store.Session) error {
	var in struct {
		Settings json.RawMessage `json:"settings"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	set, err := s.overCurrent(in.Settings)
	if err != nil {
		return err
	}
	p, err := s.svc.PreviewSettings(c.Request().Context(), sess, set, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// apiAdminGroups: GET /api/v1/admin/groups?q=: the group picker.
func (s *Server) apiAdminGroups(c echo.Context, sess store.Session) error {
	q := c.QueryParam("q")
	if err := field(q, 256); err != nil {
		return err
	}
	gs, err := s.svc.SearchGroups(c.Request().Context(), sess, q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"groups": gs})
}

func (s *Server) apiAdminBlocked(c echo.Context, sess store.Session) error {
	held, err := s.svc.Blocked(c.Request().Context(), sess)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"held": held})
}

func (s *Server) apiAdminUnblock(c echo.Context, sess store.Session) error {
	var in struct {
		Account string `json:"account"`
		Address string `json:"address"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Account, 256); err != nil {
		return err
	}
	if err := field(in.Address, 64); err != nil {
		return err
	}
	if err := s.svc.Unblock(c.Request().Context(), sess, in.Account, in.Address, meta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// adminAPI wraps a handler that needs an admin session from the bearer
// token.
func (s *Server) adminAPI(h func(echo.Context, store.Session) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, err := s.svc.AdminSession(c.Request().Context(), bearer(c))
		if err != nil {
			return err
		}
		return h(c, sess)
	}
}

func (s *Server) apiAdminSession(c echo.Context) error {
	var in struct{ Username, Password, Code string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	for _, f := range []struct {
		v string
		n int
	}{{in.Username, 256}, {in.Password, maxField}, {in.Code, 16}} {
		if err := field(f.v, f.n); err != nil {
			return err
		}
	}
	sess, err := s.svc.AdminSignIn(c.Request().Context(), in.Username, in.Password, in.Code, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"token": sess.ID, "expires_at": sess.ExpiresAt.UTC().Format(time.RFC3339)})
}

func (s *Server) apiAdminSignOut(c echo.Context, sess store.Session) error {
	if err := s.svc.AdminSignOut(c.Request().Context(), sess, meta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) apiAdminSettings(c echo.Context, _ store.Session) error {
	return c.JSON(http.StatusOK, s.svc.Settings())
}

// settingsIn is the body of PUT /api/v1/admin/settings: the version the
// change is based on and the settings (keys left out keep their value).
type settingsIn struct {
	Version  *int            `json:"version"`
	Settings json.RawMessage `json:"settings"`
}

// overCurrent is the settings in force with the keys of patch (a JSON
// object with the settings' key names; unknown keys refused) replacing
// theirs: a key left out keeps its value, a list given replaces the list.
func (s *Server) overCurrent(patch json.RawMessage) (config.Settings, error) {
	var set config.Settings
	if len(patch) == 0 || string(patch) == "null" {
		return set, flow.NewProblem(flow.CodeInvalidRequest, errors.New("settings are required"))
	}
	// a copy of the settings in force: decoding over them must not write
	// into the lists they share with the settings the flows read
	cur, err := json.Marshal(s.svc.Settings().Settings)
	if err != nil {
		return set, err
	}
	if err := json.Unmarshal(cur, &set); err != nil {
		return set, err
	}
	dec := json.NewDecoder(bytes.NewReader(patch))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		return set, flow.NewProblem(flow.CodeInvalidRequest, err)
	}
	return set, nil
}

func (s *Server) apiAdminSaveSettings(c echo.Context, sess store.Session) error {
	var in settingsIn
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Version == nil {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("version is required"))
	}
	set, err := s.overCurrent(in.Settings)
	if err != nil {
		return err
	}
	view, err := s.svc.SaveSettings(c.Request().Context(), sess, *in.Version, set, meta(c))
	var conflict *flow.SettingsConflict
	if errors.As(err, &conflict) {
		p := flow.AsProblem(err)
		return c.JSON(p.Status, struct {
			apiErrorBody
			*flow.SettingsConflict
		}{apiError(p, meta(c).RequestID), conflict})
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, view)
}

// auditFilter reads the activity filters from the query: account, event,
// outcome, since and until (RFC 3339), before (a seq) and limit.
func auditFilter(c echo.Context) (flow.AuditFilter, error) {
	q := c.QueryParams()
	for k, v := range q {
		if len(v) > 1 {
			return flow.AuditFilter{}, flow.NewProblem(flow.CodeInvalidRequest, errors.New("repeated parameter "+k))
		}
		if len(v[0]) > 256 {
			return flow.AuditFilter{}, flow.NewProblem(flow.CodeInvalidRequest, errors.New("parameter too long "+k))
		}
	}
	f := flow.AuditFilter{Account: strings.TrimSpace(q.Get("account")), Event: strings.TrimSpace(q.Get("event")),
		Outcome: strings.TrimSpace(q.Get("outcome"))}
	var err error
	parseTime := func(name string) time.Time {
		v := q.Get(name)
		if v == "" || err != nil {
			return time.Time{}
		}
		t, e := time.Parse(time.RFC3339, v)
		if e != nil {
			// a date alone (the page's date fields) is midnight UTC
			t, e = time.Parse("2006-01-02", v)
		}
		if e != nil {
			err = flow.NewProblem(flow.CodeInvalidRequest, errors.New(name+": not a time"))
		}
		return t
	}
	f.Since, f.Until = parseTime("since"), parseTime("until")
	if v := q.Get("before"); v != "" && err == nil {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before < 0 {
			err = flow.NewProblem(flow.CodeInvalidRequest, errors.New("before: not a sequence number"))
		}
	}
	if v := q.Get("limit"); v != "" && err == nil {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > store.MaxAuditLimit {
			err = flow.NewProblem(flow.CodeInvalidRequest, errors.New("limit: 1 to "+strconv.Itoa(store.MaxAuditLimit)))
		}
	}
	return f, err
}

func (s *Server) apiAdminAudit(c echo.Context, sess store.Session) error {
	f, err := auditFilter(c)
	if err != nil {
		return err
	}
	page, err := s.svc.Audit(c.Request().Context(), sess, f, meta(c))
	if err != nil {
		return err
	}
	if c.QueryParam("format") == "csv" {
		return writeAuditCSV(c, page)
	}
	return c.JSON(http.StatusOK, page)
}

// writeAuditCSV answers a page of events as CSV (one row per event, the
// details as key=value pairs sorted by key). Cells that a spreadsheet
// would run as a formula are prefixed with an apostrophe.
func writeAuditCSV(c echo.Context, page flow.AuditPage) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="latchkey-audit.csv"`)
	if page.Next != 0 {
		h.Set("X-Next-Before", strconv.FormatInt(page.Next, 10))
	}
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"seq", "time", "event", "outcome", "account_id", "request_id", "client_ip", "details"})
	for _, e := range page.Events {
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var d []string
		for _, k := range keys {
			d = append(d, k+"="+e.Details[k])
		}
		row := []string{strconv.FormatInt(e.Seq, 10), e.Time.UTC().Format(time.RFC3339Nano), e.Event, e.Outcome, e.AccountID,
			e.RequestID, e.ClientIP, strings.Join(d, " ")}
		for i := range row {
			row[i] = csvSafe(row[i])
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet
// (OWASP "CSV injection").
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

func (s *Server) apiAdminExplain(c echo.Context, sess store.Session) error {
	name := c.QueryParam("username")
	if err := field(name, 256); err != nil {
		return err
	}
	ex, err := s.svc.Explain(c.Request().Context(), sess, name, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ex)
}
