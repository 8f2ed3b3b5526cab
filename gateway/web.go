package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
)

const maxField = 1024

// form wraps a POST handler for pages: parses the form strictly (no
// repeated fields, bounded values) and checks CSRF first.
func (s *Server) form(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("not a form"))
		}
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return flow.NewProblem(flow.CodeTooLarge, nil)
			}
			return flow.NewProblem(flow.CodeInvalidRequest, err)
		}
		if err := strictValues(r.PostForm); err != nil {
			return err
		}
		if len(r.URL.RawQuery) > 0 && r.URL.Query().Has("_csrf") {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("token in query"))
		}
		if err := s.checkCSRF(c); err != nil {
			return err
		}
		return h(c)
	}
}

func strictValues(v url.Values) error {
	for k, vs := range v {
		if len(vs) > 1 {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("repeated field "+k))
		}
		if len(vs[0]) > maxField {
			return flow.NewProblem(flow.CodeInvalidRequest, errors.New("field too long "+k))
		}
	}
	return nil
}

func formValue(c echo.Context, key string) string {
	if v := c.Request().PostForm[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}

func (s *Server) redirect(c echo.Context, path string) error {
	return c.Redirect(http.StatusSeeOther, path)
}

// ---------------------------------------------------------------- home

func (s *Server) home(c echo.Context) error {
	return s.render(c, http.StatusOK, "home", s.o.ProductName+" self-service", nil, nil)
}
