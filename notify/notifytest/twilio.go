package notifytest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/latchkeyhq/latchkey/notify"
)

// Twilio's magic test numbers (Twilio docs, "Test credentials"). The fake
// answers them as the real API does for test credentials, whatever the
// configured credentials.
const (
	TwilioTestFrom            = "+15005550006" // a valid sender
	TwilioToInvalid           = "+15005550001" // 21211 invalid 'To' number
	TwilioToUnroutable        = "+15005550002" // 21612 cannot route to this number
	TwilioToNoInternational   = "+15005550003" // 21408 no permission for this region
	TwilioToBlocked           = "+15005550004" // 21610 recipient unsubscribed (STOP)
	TwilioToNotMobile         = "+15005550009" // 21614 not a mobile number
	TwilioFromInvalid         = "+15005550001" // 21212 invalid 'From' number
	TwilioFromNotOwned        = "+15005550007" // 21606 not an SMS-capable number of the account
	TwilioFromQueueOverflowed = "+15005550008" // 21611 the From number's queue is full
)

// TwilioMessage is a message the fake accepted.
type TwilioMessage struct {
	SID                 string
	AccountSID          string
	To                  string
	From                string // empty when sent through a messaging service
	MessagingServiceSID string
	Body                string
	NumSegments         int
	Created             time.Time
}

// TwilioError is Twilio's error body; the fake also keeps the ones it
// returned (Rejections) so a test can see why a request failed.
type TwilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// FakeTwilio is an httptest server that enforces the request contract of
// Twilio's Messages API (POST /2010-04-01/Accounts/{AccountSid}/Messages.json)
// and records the messages it accepts. Point notify.TwilioConfig.BaseURL at
// URL (Config does this).
//
// Enforced, with Twilio's status and error codes:
//   - path and method: anything but POST …/Accounts/{sid}/Messages.json is
//     404/20404 (405/20004 for another method on that path);
//   - HTTP Basic auth as the account SID or an API key SID, compared in
//     constant time: 401/20003 (also when the path's account is not the
//     authenticated one);
//   - form-encoded body (any other content type leaves the parameters
//     unread, as on Twilio, and fails on the missing To);
//   - To required (21604) and E.164 (21211); From or MessagingServiceSid
//     required (21603); From must be a valid number or alphanumeric ID
//     (21212) the account owns (21606); MessagingServiceSid well formed and
//     known (21701); Body required (21602), at most 1600 characters (21617);
//   - Twilio's magic test numbers (TwilioTo*, TwilioFrom*).
//
// On success it answers 201 with a JSON body shaped like Twilio's (sid
// "SM…", status "queued", or "accepted" with a messaging service).
//
// It also serves the account resource, GET /2010-04-01/Accounts/{AccountSid}.json
// (what `latchkey check` reads to prove the credentials without sending),
// with the same authentication rules, answering 200 and Twilio's account
// JSON (status AccountStatus, type AccountType; like Twilio's, it includes
// the auth token). Other methods on it are 405/20004 here (Twilio allows a
// POST to update the account; that is not modelled). Twilio documents that
// standard API keys cannot use the /Accounts resource; the fake answers an
// API key there with 401/20003 (the exact status Twilio uses is not verified).
//
// Not modelled: the message list and fetch endpoints, status callbacks, media,
// scheduling, per-country sender rules, rate limits (inject them with
// FailNext), and Twilio's own request signing of webhooks.
type FakeTwilio struct {
	// URL is the server's base URL (no trailing slash).
	URL string
	// AccountSID and AuthToken are the credentials the fake accepts.
	AccountSID, AuthToken string
	// APIKeySID and APIKeySecret are an API key the fake also accepts.
	APIKeySID, APIKeySecret string
	// From is a sender the account owns; MessagingServiceSID a service it owns.
	From                string
	MessagingServiceSID string
	// AccountStatus ("active", "suspended", "closed") and AccountType
	// ("Full", "Trial") are what the account resource answers.
	AccountStatus, AccountType string

	srv     *httptest.Server
	senders map[string]bool

	mu         sync.Mutex
	msgs       []TwilioMessage
	rejections []TwilioError
	failNext   []TwilioError
	hangNext   int
	changed    chan struct{}
	release    chan struct{}
}

// TwilioOption configures StartTwilio.
type TwilioOption func(*FakeTwilio)

// TwilioCredentials sets the account SID and auth token (random by default).
func TwilioCredentials(accountSID, authToken string) TwilioOption {
	return func(f *FakeTwilio) { f.AccountSID, f.AuthToken = accountSID, authToken }
}

// TwilioSenders replaces the senders the account owns (default
// TwilioTestFrom). The first one becomes f.From.
func TwilioSenders(from ...string) TwilioOption {
	return func(f *FakeTwilio) {
		f.senders = map[string]bool{}
		for _, s := range from {
			f.senders[s] = true
		}
		if len(from) > 0 {
			f.From = from[0]
		}
	}
}

// StartTwilio starts the fake; it is closed when the test ends.
func StartTwilio(t testing.TB, opts ...TwilioOption) *FakeTwilio {
	t.Helper()
	f := &FakeTwilio{
		AccountSID:          "AC" + randHex(16),
		AuthToken:           randHex(16),
		APIKeySID:           "SK" + randHex(16),
		APIKeySecret:        randHex(16),
		MessagingServiceSID: "MG" + randHex(16),
		From:                TwilioTestFrom,
		AccountStatus:       "active",
		AccountType:         "Full",
		senders:             map[string]bool{TwilioTestFrom: true},
		changed:             make(chan struct{}),
		release:             make(chan struct{}),
	}
	for _, o := range opts {
		o(f)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	// Runs before Close (LIFO): unblocks handlers parked by HangNext.
	t.Cleanup(func() { close(f.release) })
	return f
}

// Config returns a notify.TwilioConfig for this fake, sending from f.From.
func (f *FakeTwilio) Config() notify.TwilioConfig {
	return notify.TwilioConfig{
		AccountSID: f.AccountSID,
		AuthToken:  f.AuthToken,
		From:       f.From,
		BaseURL:    f.URL,
		Timeout:    5 * time.Second,
	}
}

// Messages returns a copy of the accepted messages, oldest first.
func (f *FakeTwilio) Messages() []TwilioMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TwilioMessage(nil), f.msgs...)
}

// Rejections returns the errors the fake answered, oldest first.
func (f *FakeTwilio) Rejections() []TwilioError {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TwilioError(nil), f.rejections...)
}

// Reset forgets accepted messages and rejections.
func (f *FakeTwilio) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs, f.rejections = nil, nil
}

// FailNext makes the next request (after authentication) fail with this
// HTTP status and Twilio error code, e.g. FailNext(429, 20429) or
// FailNext(503, 20503). Calls queue up.
func (f *FakeTwilio) FailNext(status, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = append(f.failNext, twilioErr(status, code, "Injected failure"))
}

// HangNext makes the next request block until the client gives up or the
// test ends, for timeout tests.
func (f *FakeTwilio) HangNext() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hangNext++
}

// WaitFor waits until a message to `to` has been accepted and returns the
// newest one. The caller's context sets the deadline.
func (f *FakeTwilio) WaitFor(ctx context.Context, to string) (TwilioMessage, error) {
	for {
		f.mu.Lock()
		for i := len(f.msgs) - 1; i >= 0; i-- {
			if f.msgs[i].To == to {
				m := f.msgs[i]
				f.mu.Unlock()
				return m, nil
			}
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return TwilioMessage{}, fmt.Errorf("no SMS for %s: %w", to, ctx.Err())
		}
	}
}

// Wait waits until cond holds for the accepted messages (oldest first)
// and returns them; cond is asked again each time a message is accepted.
// The caller's context sets the deadline.
func (f *FakeTwilio) Wait(ctx context.Context, cond func([]TwilioMessage) bool) ([]TwilioMessage, error) {
	for {
		f.mu.Lock()
		ch := f.changed
		msgs := append([]TwilioMessage(nil), f.msgs...)
		f.mu.Unlock()
		if cond(msgs) {
			return msgs, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return msgs, ctx.Err()
		}
	}
}

func twilioErr(status, code int, msg string) TwilioError {
	return TwilioError{Code: code, Message: msg, MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), Status: status}
}

var (
	twilioPath   = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages\.json$`)
	accountPath  = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)\.json$`)
	reServiceSID = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
)

func (f *FakeTwilio) reject(w http.ResponseWriter, e TwilioError) {
	f.mu.Lock()
	f.rejections = append(f.rejections, e)
	f.mu.Unlock()
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ctEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (f *FakeTwilio) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/2010-04-01/") {
		f.reject(w, twilioErr(404, 20404, "The requested resource "+r.URL.Path+" was not found"))
		return
	}
	user, pass, ok := r.BasicAuth()
	authed := ok && ((ctEqual(user, f.AccountSID) && ctEqual(pass, f.AuthToken)) ||
		(ctEqual(user, f.APIKeySID) && ctEqual(pass, f.APIKeySecret)))
	if !authed {
		f.reject(w, twilioErr(401, 20003, "Authenticate"))
		return
	}
	if a := accountPath.FindStringSubmatch(r.URL.Path); a != nil {
		f.serveAccount(w, r, a[1], ctEqual(user, f.AccountSID))
		return
	}
	m := twilioPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		f.reject(w, twilioErr(404, 20404, "The requested resource "+r.URL.Path+" was not found"))
		return
	}
	if m[1] != f.AccountSID {
		f.reject(w, twilioErr(401, 20003, "Authenticate"))
		return
	}
	if r.Method != http.MethodPost {
		f.reject(w, twilioErr(405, 20004, "Method not allowed"))
		return
	}

	f.mu.Lock()
	hang := f.hangNext > 0
	if hang {
		f.hangNext--
	}
	var fail *TwilioError
	if !hang && len(f.failNext) > 0 {
		e := f.failNext[0]
		fail = &e
		f.failNext = f.failNext[1:]
	}
	f.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	}
	if fail != nil {
		f.reject(w, *fail)
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			f.reject(w, twilioErr(400, 20001, "Unable to parse request body"))
			return
		}
	}
	form := r.PostForm // nil unless form-encoded: the parameters are then missing
	to, from, svc, body := form.Get("To"), form.Get("From"), form.Get("MessagingServiceSid"), form.Get("Body")

	switch {
	case to == "":
		f.reject(w, twilioErr(400, 21604, "A 'To' phone number is required."))
		return
	case !notify.IsE164(to) || to == TwilioToInvalid:
		f.reject(w, twilioErr(400, 21211, "Invalid 'To' Phone Number: "+to))
		return
	case from == "" && svc == "":
		f.reject(w, twilioErr(400, 21603, "A 'From' phone number is required."))
		return
	}
	if svc != "" {
		if !reServiceSID.MatchString(svc) || svc != f.MessagingServiceSID {
			f.reject(w, twilioErr(400, 21701, "The Messaging Service Sid "+svc+" is invalid."))
			return
		}
	}
	if from != "" {
		switch {
		case !notify.IsTwilioSender(from) || from == TwilioFromInvalid:
			f.reject(w, twilioErr(400, 21212, "Invalid From Number (caller ID): "+from))
			return
		case from == TwilioFromQueueOverflowed:
			f.reject(w, twilioErr(400, 21611, "This 'From' number has exceeded the maximum number of queued messages"))
			return
		case from == TwilioFromNotOwned || !f.senders[from]:
			f.reject(w, twilioErr(400, 21606, "The From phone number "+from+" is not a valid, SMS-capable inbound phone number or short code for your account."))
			return
		}
	}
	switch to {
	case TwilioToUnroutable:
		f.reject(w, twilioErr(400, 21612, "The 'To' phone number: "+to+", is not currently reachable using the 'From' phone number"))
		return
	case TwilioToNoInternational:
		f.reject(w, twilioErr(400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: "+to))
		return
	case TwilioToBlocked:
		f.reject(w, twilioErr(400, 21610, "Attempt to send to unsubscribed recipient"))
		return
	case TwilioToNotMobile:
		f.reject(w, twilioErr(400, 21614, "'To' number is not a valid mobile number"))
		return
	}
	switch {
	case strings.TrimSpace(body) == "":
		f.reject(w, twilioErr(400, 21602, "Message body is required."))
		return
	case !utf8.ValidString(body):
		f.reject(w, twilioErr(400, 21602, "Message body is required."))
		return
	case utf8.RuneCountInString(body) > 1600:
		f.reject(w, twilioErr(400, 21617, "The concatenated message body exceeds the 1600 character limit."))
		return
	}

	now := time.Now().UTC()
	msg := TwilioMessage{
		SID: "SM" + randHex(16), AccountSID: f.AccountSID, To: to, From: from,
		MessagingServiceSID: svc, Body: body, NumSegments: smsSegments(body), Created: now,
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, msg)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()

	status := "queued"
	if svc != "" {
		status = "accepted"
	}
	date := now.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	uri := "/2010-04-01/Accounts/" + f.AccountSID + "/Messages/" + msg.SID
	writeJSON(w, http.StatusCreated, map[string]any{
		"account_sid":           f.AccountSID,
		"api_version":           "2010-04-01",
		"body":                  body,
		"date_created":          date,
		"date_sent":             nil,
		"date_updated":          date,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  nullIfEmpty(from),
		"messaging_service_sid": nullIfEmpty(svc),
		"num_media":             "0",
		"num_segments":          fmt.Sprint(msg.NumSegments),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   msg.SID,
		"status":                status,
		"subresource_uris":      map[string]string{"media": uri + "/Media.json"},
		"to":                    to,
		"uri":                   uri + ".json",
	})
}

// serveAccount answers GET /2010-04-01/Accounts/{sid}.json for an
// authenticated request.
func (f *FakeTwilio) serveAccount(w http.ResponseWriter, r *http.Request, sid string, asAccount bool) {
	if sid != f.AccountSID || !asAccount {
		f.reject(w, twilioErr(401, 20003, "Authenticate"))
		return
	}
	if r.Method != http.MethodGet {
		f.reject(w, twilioErr(405, 20004, "Method not allowed"))
		return
	}
	uri := "/2010-04-01/Accounts/" + f.AccountSID
	date := time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700")
	writeJSON(w, http.StatusOK, map[string]any{
		"auth_token":        f.AuthToken,
		"date_created":      date,
		"date_updated":      date,
		"friendly_name":     "latchkey notifytest",
		"owner_account_sid": f.AccountSID,
		"sid":               f.AccountSID,
		"status":            f.AccountStatus,
		"subresource_uris":  map[string]string{"messages": uri + "/Messages.json"},
		"type":              f.AccountType,
		"uri":               uri + ".json",
	})
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// gsm7 is the GSM 03.38 basic character set; gsm7ext the extension table
// (each costs two septets).
const (
	gsm7    = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7ext = "^{}\\[~]|€\f"
)

// smsSegments estimates the number of SMS segments: GSM-7 (160, or 153 per
// part) when every character is in the GSM alphabet, else UCS-2 (70, or 67
// per part, counted in UTF-16 code units).
func smsSegments(body string) int {
	septets, gsm := 0, true
	units := 0
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsm7, r):
			septets++
		case strings.ContainsRune(gsm7ext, r):
			septets += 2
		default:
			gsm = false
		}
		if r > 0xFFFF {
			units += 2
		} else {
			units++
		}
	}
	single, multi, n := 160, 153, septets
	if !gsm {
		single, multi, n = 70, 67, units
	}
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
