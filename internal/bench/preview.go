package bench

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkeyhq/latchkey/store"
)

// The admin console's impact preview over every bench user: the bench's
// admin (the first reset user; admin.groups is the bench users' group)
// has an authenticator app seeded in the store, signs in to the console
// once, and asks for the preview of scope all against the bench policy
// (scope selected) previewRuns times, one at a time. Issue #16's target
// is 10,000 users in at most 2 s (PreviewTarget): a slower median is a
// check failure.

// PreviewTarget is the slowest median preview the bench accepts.
const PreviewTarget = 2 * time.Second

// previewRuns is how many previews the scenario asks for.
const previewRuns = 5

// adminApp is the bench admin's authenticator app: seeded with the
// store, used by the preview scenario.
type adminApp struct {
	uid, id, secret string
}

// newAdminApp picks the bench's admin among accounts (the lowest reset
// user index) and makes its app's secret.
func (r *run) newAdminApp(accounts map[string]string) (*adminApp, error) {
	uid := userName(r.rst[0])
	id, ok := accounts[uid]
	if !ok {
		return nil, fmt.Errorf("bench admin %s has no account id", uid)
	}
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &adminApp{uid: uid, id: id, secret: base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)}, nil
}

// method is the app as a verified store method.
func (a *adminApp) method(at time.Time) store.Method {
	b := make([]byte, 11)
	_, _ = rand.Read(b)
	return store.Method{ID: hex.EncodeToString(b), AccountID: a.id, Type: "totp", Secret: a.secret, CreatedAt: at}
}

// preview measures the impact preview.
func (r *run) preview(p pids) {
	if r.admin == nil {
		return
	}
	code, err := totp.GenerateCodeCustom(r.admin.secret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		r.rep.Checks.Failures = append(r.rep.Checks.Failures, "preview: "+err.Error())
		return
	}
	a, err := r.api.Must(200, "POST", "/api/v1/admin/session", "", map[string]string{"username": r.admin.uid, "password": r.pw[r.rst[0]], "code": code})
	if err != nil {
		r.rep.Checks.Failures = append(r.rep.Checks.Failures, "preview: admin sign-in: "+err.Error())
		return
	}
	token := a.Str("token")
	a, err = r.api.Must(200, "GET", "/api/v1/admin/settings", token, nil)
	if err != nil {
		r.rep.Checks.Failures = append(r.rep.Checks.Failures, "preview: settings: "+err.Error())
		return
	}
	set, _ := a.JSON["settings"].(map[string]any)
	if pol, ok := set["policy"].(map[string]any); ok {
		pol["scope"] = "all"
	}
	var users float64
	row := r.add(measure(fmt.Sprintf("admin preview (%d users)", r.o.Users), 1, p, func(rec *recorder) {
		closedLoop(rec, 1, limits{dur: time.Minute, max: previewRuns}, func(_, _ int) error {
			a, err := r.api.Must(200, "POST", "/api/v1/admin/preview", token, map[string]any{"settings": set})
			if err != nil {
				return err
			}
			users, _ = a.JSON["users"].(float64)
			return nil
		})
	}))
	if int(users) < r.o.Users {
		r.rep.Checks.Failures = append(r.rep.Checks.Failures, fmt.Sprintf("preview counted %d users, the directory has at least %d", int(users), r.o.Users))
	}
	if row.Ops > 0 && time.Duration(row.P50ms*float64(time.Millisecond)) > PreviewTarget && r.o.Users >= 10000 {
		r.rep.Checks.Failures = append(r.rep.Checks.Failures, fmt.Sprintf("preview of %d users: median %.0f ms, over %v", r.o.Users, row.P50ms, PreviewTarget))
	}
}
