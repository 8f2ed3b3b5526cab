package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
)

// The change page: old and new password, no session.

type changePage struct {
	Username string
	Rules    flow.PasswordRules
}

func (s *Server) changePage(c echo.Context) error {
	return s.render(c, http.StatusOK, "change", "Change your password", changePage{Rules: s.svc.GeneralPasswordRules(c.Request().Context())}, nil)
}

func (s *Server) change(c echo.Context) error {
	username := formValue(c, "username")
	var err error
	if formValue(c, "new_password") != formValue(c, "confirm") {
		p := flow.NewProblem(flow.CodePasswordRejected, nil)
		p.Violations = []flow.Violation{{Code: "mismatch", Message: "The two new passwords are not the same."}}
		err = p
	} else {
		err = s.svc.Change(c.Request().Context(), username, formValue(c, "old_password"), formValue(c, "new_password"), meta(c))
	}
	if err != nil {
		p := flow.AsProblem(err)
		if p.Status >= 500 && p.Code != flow.CodeUnavailable {
			return p
		}
		return s.render(c, p.Status, "change", "Change your password", changePage{Username: username, Rules: s.svc.GeneralPasswordRules(c.Request().Context())}, p)
	}
	return s.redirect(c, "/change/done") // a reload shows the result, it does not post again
}

func (s *Server) changeDone(c echo.Context) error {
	return s.render(c, http.StatusOK, "done", "Password changed", donePage{"Your password has been changed.", true}, nil)
}
