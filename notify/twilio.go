package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultTwilioBaseURL is Twilio's REST API.
const DefaultTwilioBaseURL = "https://api.twilio.com"

// DefaultSMSTimeout bounds one provider request when no Timeout is set.
const DefaultSMSTimeout = 10 * time.Second

// TwilioConfig configures the Twilio sender.
type TwilioConfig struct {
	// AccountSID is the account ("AC" + 32 hex digits); it is part of the URL.
	AccountSID string
	// AuthToken is the account's auth token, or the secret of APIKeySID.
	AuthToken string
	// APIKeySID optionally authenticates with an API key ("SK…") instead of
	// the account SID; AuthToken is then the key's secret.
	APIKeySID string
	// From is the sender: an E.164 number or an alphanumeric sender ID
	// (1-11 letters, digits or spaces, at least one letter). Exactly one of
	// From and MessagingServiceSID is required.
	From string
	// MessagingServiceSID ("MG" + 32 hex digits) lets Twilio pick the sender.
	MessagingServiceSID string
	// BaseURL defaults to DefaultTwilioBaseURL. It must be https, except
	// http on loopback for test servers.
	BaseURL string
	// HTTPClient defaults to a client with Timeout that does not follow
	// redirects.
	HTTPClient *http.Client
	// Timeout bounds one request; defaults to DefaultSMSTimeout. The
	// context's deadline applies too.
	Timeout time.Duration
	// Logger receives a debug line with the message SID on success. Optional.
	Logger *slog.Logger
}

// Twilio sends SMS through Twilio's Programmable Messaging API
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json).
type Twilio struct {
	cfg      TwilioConfig
	endpoint string
	client   *http.Client
	logger   *slog.Logger
}

var _ SMSSender = (*Twilio)(nil)

var (
	reAccountSID = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	reAPIKeySID  = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	reServiceSID = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	reMessageSID = regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`)
	reAlphaID    = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
)

// IsTwilioSender reports whether s is acceptable as Twilio's From: an E.164
// number or an alphanumeric sender ID (1-11 characters from A-Z, a-z, 0-9 and
// space, with at least one letter). Short codes are not supported.
func IsTwilioSender(s string) bool {
	if IsE164(s) {
		return true
	}
	return reAlphaID.MatchString(s) && strings.IndexFunc(s, func(r rune) bool {
		return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z'
	}) >= 0 && strings.TrimSpace(s) == s
}

// NewTwilio validates cfg and returns a sender. It makes no request.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	var errs []error
	if !reAccountSID.MatchString(cfg.AccountSID) {
		errs = append(errs, errors.New("account_sid must be AC followed by 32 hex digits"))
	}
	if cfg.APIKeySID != "" && !reAPIKeySID.MatchString(cfg.APIKeySID) {
		errs = append(errs, errors.New("api_key_sid must be SK followed by 32 hex digits"))
	}
	if cfg.AuthToken == "" {
		errs = append(errs, errors.New("auth_token is required"))
	}
	switch {
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		errs = append(errs, errors.New("one of from and messaging_service_sid is required"))
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		errs = append(errs, errors.New("set either from or messaging_service_sid, not both"))
	case cfg.From != "" && !IsTwilioSender(cfg.From):
		errs = append(errs, errors.New("from must be an E.164 number or an alphanumeric sender ID of at most 11 characters"))
	case cfg.MessagingServiceSID != "" && !reServiceSID.MatchString(cfg.MessagingServiceSID):
		errs = append(errs, errors.New("messaging_service_sid must be MG followed by 32 hex digits"))
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultTwilioBaseURL
	}
	base, err := checkEndpoint("base_url", cfg.BaseURL)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultSMSTimeout
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("notify: twilio config: %w", errors.Join(errs...))
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout, CheckRedirect: noRedirects}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	endpoint := strings.TrimRight(base.String(), "/") +
		"/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json"
	return &Twilio{cfg: cfg, endpoint: endpoint, client: client, logger: logger}, nil
}

// twilioError is Twilio's error body.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// SendSMS sends m. A refusal by Twilio is a *ProviderError carrying Twilio's
// error code (e.g. 21211 invalid To, 20003 bad credentials, 21610 the
// recipient replied STOP).
func (t *Twilio) SendSMS(ctx context.Context, m SMS) error {
	_, err := t.Send(ctx, m)
	return err
}

// Send is SendSMS that also returns Twilio's message SID ("SM…"), for audit.
func (t *Twilio) Send(ctx context.Context, m SMS) (sid string, err error) {
	if err := m.validate(); err != nil {
		return "", err
	}
	form := url.Values{"To": {m.To}, "Body": {m.Body}}
	if t.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", t.cfg.MessagingServiceSID)
	} else {
		form.Set("From", t.cfg.From)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("notify: twilio: %w", err)
	}
	user := t.cfg.AccountSID
	if t.cfg.APIKeySID != "" {
		user = t.cfg.APIKeySID
	}
	req.SetBasicAuth(user, t.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "latchkey-notify")

	resp, err := t.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("notify: twilio: %w", scrubSecrets(redactURLError(err), t.cfg.AuthToken))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("notify: twilio: reading response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		pe := &ProviderError{Provider: "twilio", HTTPStatus: resp.StatusCode}
		var te twilioError
		if json.Unmarshal(body, &te) == nil {
			pe.Code = te.Code
			if strings.HasPrefix(te.MoreInfo, "https://") && len(te.MoreInfo) < 200 {
				pe.MoreInfo = te.MoreInfo
			}
		}
		return "", pe
	}
	var ok struct {
		SID    string `json:"sid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &ok); err != nil {
		return "", fmt.Errorf("notify: twilio: HTTP %d with an undecodable body: %w", resp.StatusCode, err)
	}
	if !reMessageSID.MatchString(ok.SID) {
		return "", fmt.Errorf("notify: twilio: HTTP %d without a message SID", resp.StatusCode)
	}
	if ok.Status == "failed" || ok.Status == "undelivered" {
		return "", fmt.Errorf("notify: twilio: message %s has status %q", ok.SID, ok.Status)
	}
	t.logger.DebugContext(ctx, "sms queued", slog.String("provider", "twilio"),
		slog.String("sid", ok.SID), slog.String("status", ok.Status), slog.String("to", MaskPhone(m.To)))
	return ok.SID, nil
}

// TwilioAccount is what CheckCredentials read from the account resource.
type TwilioAccount struct {
	SID string
	// Status is "active", "suspended" or "closed".
	Status string
	// Type is "Trial" or "Full"; a trial account only sends to verified numbers.
	Type         string
	FriendlyName string
}

// CheckCredentials proves the credentials without sending anything: an
// authenticated GET of the account resource,
// GET {base_url}/2010-04-01/Accounts/{AccountSid}.json. A refusal is a
// *ProviderError (401/20003: wrong account_sid or auth_token; 404/20404: no
// such account). Twilio's answer also holds the auth token; it is neither
// kept nor returned. An API key (APIKeySID) may not read the account
// resource on Twilio; the check then reports its refusal.
func (t *Twilio) CheckCredentials(ctx context.Context) (TwilioAccount, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	u := strings.TrimSuffix(t.endpoint, "/Messages.json") + ".json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return TwilioAccount{}, fmt.Errorf("notify: twilio: %w", err)
	}
	user := t.cfg.AccountSID
	if t.cfg.APIKeySID != "" {
		user = t.cfg.APIKeySID
	}
	req.SetBasicAuth(user, t.cfg.AuthToken)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "latchkey-notify")
	resp, err := t.client.Do(req)
	if err != nil {
		return TwilioAccount{}, fmt.Errorf("notify: twilio: %w", scrubSecrets(redactURLError(err), t.cfg.AuthToken))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return TwilioAccount{}, fmt.Errorf("notify: twilio: reading response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		pe := &ProviderError{Provider: "twilio", HTTPStatus: resp.StatusCode}
		var te twilioError
		if json.Unmarshal(body, &te) == nil {
			pe.Code = te.Code
			if strings.HasPrefix(te.MoreInfo, "https://") && len(te.MoreInfo) < 200 {
				pe.MoreInfo = te.MoreInfo
			}
		}
		return TwilioAccount{}, pe
	}
	var a struct {
		SID          string `json:"sid"`
		Status       string `json:"status"`
		Type         string `json:"type"`
		FriendlyName string `json:"friendly_name"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.SID != t.cfg.AccountSID {
		return TwilioAccount{}, fmt.Errorf("notify: twilio: HTTP %d without the account %s", resp.StatusCode, t.cfg.AccountSID)
	}
	return TwilioAccount{SID: a.SID, Status: a.Status, Type: a.Type, FriendlyName: a.FriendlyName}, nil
}
