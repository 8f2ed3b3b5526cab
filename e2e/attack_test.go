package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestAttacks runs the black-box attacks of the security issue against the
// real binary with a real slapd and a real Samba AD DC: races, token
// swapping, cross-site posts and headers on every kind of answer.
func TestAttacks(t *testing.T) {
	parallel(t)
	for _, d := range directories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			runAttackSuite(t, d.start(t))
		})
	}
}

func runAttackSuite(t *testing.T, srv *dirtest.Server) {
	mail, sms := startMail(t)
	for _, u := range []string{"frank", "grace"} {
		addToGroup(t, srv, u, "staff")
	}
	e := startGateway(t, srv, mail, sms, params{})

	t.Run("twenty concurrent redemptions and completions", func(t *testing.T) {
		e.t = t
		raceRedeemAndComplete(t, e, srv)
	})

	t.Run("swapping flows and codes between two users", func(t *testing.T) {
		e.t = t
		fm, _ := e.register("frank", "frank.swap@example.net", "")
		gm, _ := e.register("grace", "grace.swap@example.net", "")
		ff, _ := e.startReset("frank")
		gf, _ := e.startReset("grace")
		// frank proves his own method, then tries to use it on grace's flow
		e.must(200, e.verifyByEmail(&ff, fm, "frank.swap@example.net"), "frank verifies")
		f3, _ := e.startReset("frank")
		e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f3.ID, "method": fm}), "send")
		code := e.mailCode("frank.swap@example.net")
		for _, try := range []map[string]string{
			{"flow": gf.ID, "method": fm, "code": code},
			{"flow": gf.ID, "method": gm, "code": code},
		} {
			if r := e.api("POST", "/api/v1/reset/verify", "", try); r.Status == 200 {
				t.Fatalf("a code of frank's flow verified grace's: %s", r.Body)
			}
		}
		// grace's flow cannot be completed, and frank's verified flow only sets frank's password
		if r := e.complete(gf, "Stolen-Password-99"); r.Status == 200 {
			t.Fatal("grace's unverified flow completed")
		}
		e.must(200, e.complete(ff, "Orchard-Lamp-Trellis-4"), "frank completes")
		if srv.UserBind("grace", "Orchard-Lamp-Trellis-4") == nil || srv.UserBind("frank", "Orchard-Lamp-Trellis-4") != nil {
			t.Fatal("the wrong account changed")
		}
		// and grace's method id in a flow of frank's is refused
		f2, _ := e.startReset("frank")
		if r := e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f2.ID, "method": gm}); r.Status != 400 {
			t.Fatalf("another user's method accepted: %d", r.Status)
		}
	})

	t.Run("cross-site form posts are refused", func(t *testing.T) {
		e.t = t
		jar := newJar()
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Get(e.base + "/reset")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		for name, hdr := range map[string]map[string]string{
			"foreign origin":  {"Origin": "https://evil.example"},
			"cross-site":      {"Sec-Fetch-Site": "cross-site"},
			"no token at all": {},
		} {
			req, _ := http.NewRequest("POST", e.base+"/reset", strings.NewReader(url.Values{"username": {"carol"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 403 {
				t.Fatalf("%s: %d", name, res.StatusCode)
			}
		}
	})

	t.Run("headers on every kind of answer", func(t *testing.T) {
		e.t = t
		for _, rq := range []struct{ method, path, body string }{
			{"GET", "/", ""}, {"GET", "/reset", ""}, {"GET", "/register", ""}, {"GET", "/nope", ""},
			{"POST", "/api/v1/reset", `{"username":"x"}`}, {"POST", "/api/v1/reset", `{"bad":1}`},
			{"GET", "/api/v1/methods", ""}, {"TRACE", "/", ""}, {"GET", "/healthz", ""}, {"GET", "/readyz", ""},
			{"GET", "/reset/methods", ""},
		} {
			req, _ := http.NewRequest(rq.method, e.base+rq.path, strings.NewReader(rq.body))
			req.Header.Set("Content-Type", "application/json")
			res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			h := res.Header
			if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" || h.Get("Server") != "" ||
				h.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("%s %s (%d): headers %v", rq.method, rq.path, res.StatusCode, h)
			}
			if rq.method == "TRACE" && res.StatusCode < 400 {
				t.Fatalf("TRACE answered %d", res.StatusCode)
			}
		}
	})
}

// race runs f n times at once and counts the statuses.
// raceRedeemAndComplete registers carol's email, then sends twenty
// concurrent redemptions of one code, then twenty concurrent completions
// of the flow with different passwords: exactly one of each succeeds, and
// the winner's password is the one in force.
func raceRedeemAndComplete(t *testing.T, e *env, srv *dirtest.Server) {
	mid, _ := e.register("carol", "carol.race@example.net", "")
	f, _ := e.startReset("carol")
	e.must(202, e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.ID, "method": mid}), "send")
	code := e.mailCode("carol.race@example.net")
	var next string
	var mu sync.Mutex
	statuses := race(20, func(i int) int {
		r := e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": f.ID, "method": mid, "code": code})
		if r.Status == 200 {
			mu.Lock()
			next = r.str("flow")
			mu.Unlock()
		}
		return r.Status
	})
	// one success; the others lose either on the code or, once the
	// winner has renamed the flow, on the flow
	if statuses[200] != 1 || statuses[422]+statuses[410] != 19 {
		t.Fatalf("redemptions: %v", statuses)
	}
	f.ID = next
	pws := make([]string, 20)
	for i := range pws {
		pws[i] = "Racing-Password-" + string(rune('A'+i)) + "-77"
	}
	winner := -1
	statuses = race(20, func(i int) int {
		st := e.complete(f, pws[i]).Status
		if st == 200 {
			mu.Lock()
			winner = i
			mu.Unlock()
		}
		return st
	})
	if statuses[200] != 1 {
		t.Fatalf("completions: %v", statuses)
	}
	// the winner's password is the one in force: no other write came after
	// (binding with the losers would trip the directory's lockout)
	if err := srv.UserBind("carol", pws[winner]); err != nil {
		t.Fatalf("the winning password does not bind: %v", err)
	}
}

func race(n int, f func(i int) int) map[int]int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	out := map[int]int{}
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			st := f(i)
			mu.Lock()
			out[st]++
			mu.Unlock()
		}(i)
	}
	close(start)
	wg.Wait()
	return out
}
