package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/store"
)

type apiErrorBody struct {
	Error struct {
		Code      string           `json:"code"`
		Message   string           `json:"message"`
		RequestID string           `json:"request_id"`
		Details   []flow.Violation `json:"errors,omitempty"`
		// UsableAt: see Problem.UsableAt
		UsableAt string `json:"usable_at,omitempty"`
	} `json:"error"`
	// Errors repeats the password violations at the top level, as
	// {errors:[{code,message}]} (the contract of reset/complete and change).
	Errors []flow.Violation `json:"errors,omitempty"`
}

func apiError(p *flow.Problem, requestID string) apiErrorBody {
	var b apiErrorBody
	b.Error.Code, b.Error.Message, b.Error.RequestID = p.Code, p.Message(), requestID
	b.Error.Details = p.Violations
	if !p.UsableAt.IsZero() {
		b.Error.UsableAt = p.UsableAt.UTC().Format(time.RFC3339)
	}
	b.Errors = p.Violations
	return b
}

// decodeJSON reads exactly one JSON object into v: application/json only,
// valid UTF-8 only (400 invalid_encoding), unknown fields, repeated keys
// and trailing data refused.
func decodeJSON(c echo.Context, v any) error {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("content type must be application/json"))
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return flow.NewProblem(flow.CodeTooLarge, nil)
		}
		return flow.NewProblem(flow.CodeInvalidRequest, err)
	}
	// encoding/json would turn each invalid byte into U+FFFD and go on:
	// a name or an address that is not what was sent
	if !utf8.Valid(body) || hasLoneSurrogate(body) {
		return flow.NewProblem(flow.CodeInvalidEncoding, nil)
	}
	if err := checkDuplicateKeys(body); err != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, err)
	}
	if dec.More() {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("trailing data"))
	}
	if _, err := dec.Token(); err != io.EOF {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("trailing data"))
	}
	return nil
}

// hasLoneSurrogate reports whether body has a \u escape of a UTF-16
// surrogate that is not half of a pair: JSON allows writing one, it stands
// for no character, and encoding/json decodes it as U+FFFD. Backslashes
// occur only in strings in JSON, so the body is scanned whole (a malformed
// escape is left to the decoder).
func hasLoneSurrogate(body []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range body[i+2 : i+6] {
			switch {
			case c >= '0' && c <= '9':
				r = r<<4 | rune(c-'0')
			case c >= 'a' && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case c >= 'A' && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // an escaped character: \\, \", \n...
			continue
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := hex4(i + 6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
				i += 11
				continue
			}
			return true
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		}
		i += 5
	}
	return false
}

// checkDuplicateKeys refuses a JSON document in which an object repeats a
// key: encoding/json would silently keep the last one.
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // next token in this object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: t == '{', keys: map[string]bool{}, key: t == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.obj && top.key {
				if top.keys[foldKey(t)] {
					return errors.New("repeated key " + t)
				}
				top.keys[foldKey(t)] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// field bounds a string field.
func field(s string, max int) error {
	if len(s) > max {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("field too long"))
	}
	return nil
}

func bearer(c echo.Context) string {
	h := c.Request().Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// ---------------------------------------------------------------- session and methods

func (s *Server) apiSession(c echo.Context) error {
	var in struct{ Username, Password string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Username, 256); err != nil {
		return err
	}
	if err := field(in.Password, maxField); err != nil {
		return err
	}
	sess, err := s.svc.SignIn(c.Request().Context(), in.Username, in.Password, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"token": sess.ID, "expires_at": sess.ExpiresAt.UTC().Format(time.RFC3339)})
}

func (s *Server) apiSignOut(c echo.Context) error {
	if err := s.svc.SignOut(c.Request().Context(), bearer(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) apiMethods(c echo.Context) error {
	sess, err := s.svc.Session(c.Request().Context(), bearer(c))
	if err != nil {
		return err
	}
	ms, err := s.svc.Methods(c.Request().Context(), sess)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ms)
}

func (s *Server) apiAddMethod(c echo.Context) error {
	sess, err := s.svc.Session(c.Request().Context(), bearer(c))
	if err != nil {
		return err
	}
	var in addMethodIn
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Address, 254); err != nil {
		return err
	}
	return webKindOf(in.Type).addAPI(s, c, sess, in)
}

// apiEnrolTOTP: POST /api/v1/methods {type: totp}.
func (s *Server) apiEnrolTOTP(c echo.Context, sess store.Session, in addMethodIn) error {
	if err := in.noLabelNorAnswers(); err != nil {
		return err
	}
	if in.Address != "" {
		return flow.NewProblem(flow.CodeInvalidRequest, errors.New("an authenticator app has no address"))
	}
	en, err := s.svc.EnrolTOTP(c.Request().Context(), sess, meta(c))
	if err != nil {
		return err
	}
	// the only answer that ever carries the seed (Cache-Control: no-store)
	return c.JSON(http.StatusCreated, map[string]string{"id": en.Method.ID, "secret": en.Secret, "otpauth_url": en.URL,
		"qr_png": base64.StdEncoding.EncodeToString(en.QRPNG)})
}

func (s *Server) apiVerifyMethod(c echo.Context) error {
	sess, err := s.svc.Session(c.Request().Context(), bearer(c))
	if err != nil {
		return err
	}
	var in struct {
		Code       string
		Credential json.RawMessage
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Code, 16); err != nil {
		return err
	}
	if cred, ok, err := passkeyCredential(in.Credential); ok {
		if err != nil || in.Code != "" {
			return flow.NewProblem(flow.CodeInvalidRequest, err)
		}
		mv, err := s.svc.FinishPasskey(c.Request().Context(), sess, c.Param("id"), cred, meta(c))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, mv)
	}
	mv, err := s.svc.VerifyMethod(c.Request().Context(), sess, c.Param("id"), in.Code, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mv)
}

func (s *Server) apiResendMethod(c echo.Context) error {
	sess, err := s.svc.Session(c.Request().Context(), bearer(c))
	if err != nil {
		return err
	}
	if err := s.svc.ResendMethodCode(c.Request().Context(), sess, c.Param("id"), meta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}

func (s *Server) apiRemoveMethod(c echo.Context) error {
	sess, err := s.svc.Session(c.Request().Context(), bearer(c))
	if err != nil {
		return err
	}
	var in struct{ Password string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Password, maxField); err != nil {
		return err
	}
	if err := s.svc.RemoveMethod(c.Request().Context(), sess, c.Param("id"), in.Password, meta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ---------------------------------------------------------------- reset and unlock

func apiKind(c echo.Context) string {
	if strings.HasPrefix(c.Request().URL.Path, "/api/v1/unlock") {
		return "unlock"
	}
	return "reset"
}

func (s *Server) apiFlowStart(c echo.Context) error {
	var in struct{ Username string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Username, 256); err != nil {
		return err
	}
	f, err := s.svc.StartFlow(c.Request().Context(), apiKind(c), in.Username, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"flow": f.ID, "required": f.Required, "methods": f.Methods})
}

func (s *Server) apiFlowSend(c echo.Context) error {
	var in struct{ Flow, Method string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	pc, err := s.svc.SendFlowChallenge(c.Request().Context(), apiKind(c), in.Flow, in.Method, meta(c))
	if err != nil {
		return err
	}
	if pc != nil {
		// a passkey: the assertion options, for navigator.credentials.get
		return c.JSON(http.StatusAccepted, map[string]any{"options": pc.Options})
	}
	return c.NoContent(http.StatusAccepted)
}

func (s *Server) apiFlowVerify(c echo.Context) error {
	var in struct {
		Flow, Method, Code string
		Credential         json.RawMessage
		Answers            []flow.Answer
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Code, 16); err != nil {
		return err
	}
	p, err := apiProof(in.Code, in.Credential, in.Answers)
	if err != nil {
		return err
	}
	f, err := s.svc.VerifyFlow(c.Request().Context(), apiKind(c), in.Flow, in.Method, p, meta(c))
	if err != nil {
		return err
	}
	// the flow has a new id from now on (the old one is gone)
	out := map[string]any{"flow": f.ID, "verified": f.Verified, "remaining": f.Remaining}
	if len(f.Needs) > 0 {
		out["needs"] = f.Needs
	}
	return c.JSON(http.StatusOK, out)
}

// apiProof is the one proof a verify request carries: a passkey's
// credential, answers to security questions, or a code.
func apiProof(code string, credential json.RawMessage, answers []flow.Answer) (flow.Proof, error) {
	if cred, ok, err := passkeyCredential(credential); ok {
		if err != nil || code != "" || answers != nil {
			return flow.Proof{}, flow.NewProblem(flow.CodeInvalidRequest, err)
		}
		return flow.Proof{Credential: cred}, nil
	}
	if answers != nil {
		if code != "" || len(answers) > maxAnswersInRequest {
			return flow.Proof{}, flow.NewProblem(flow.CodeInvalidRequest, errors.New("a code and answers, or too many answers"))
		}
		return flow.Proof{Answers: answers}, nil
	}
	return flow.Proof{Code: code}, nil
}

func (s *Server) apiResetPolicy(c echo.Context) error {
	var in struct{ Flow string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r, err := s.svc.FlowPasswordRules(c.Request().Context(), in.Flow)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) apiResetComplete(c echo.Context) error {
	var in struct{ Flow, Password string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := field(in.Password, maxField); err != nil {
		return err
	}
	if err := s.svc.CompleteFlow(c.Request().Context(), "reset", in.Flow, in.Password, meta(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "password_reset"})
}

func (s *Server) apiUnlockComplete(c echo.Context) error {
	var in struct{ Flow string }
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	unlocked, err := s.svc.CompleteUnlock(c.Request().Context(), in.Flow, meta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "unlocked", "was_locked": unlocked})
}

func (s *Server) apiChange(c echo.Context) error {
	var in struct {
		Username    string `json:"username"`
		OldPassword string `json:"old_password"`
		NewPassword string `json:"new_password"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if field(in.Username, 256) != nil || field(in.OldPassword, maxField) != nil || field(in.NewPassword, maxField) != nil {
		return flow.NewProblem(flow.CodeInvalidRequest, nil)
	}
	if err := s.svc.Change(c.Request().Context(), in.Username, in.OldPassword, in.NewPassword, meta(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "password_changed"})
}

// foldKey is how encoding/json matches keys to fields: case-insensitively,
// with the long s and the Kelvin sign folding to s and k.
func foldKey(k string) string {
	return strings.ToLower(keyFolder.Replace(k))
}

var keyFolder = strings.NewReplacer("\u017f", "s", "\u212a", "k")
