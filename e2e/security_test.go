package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/internal/blackbox"
	"github.com/latchkeyhq/latchkey/internal/timingleak"
)

const highLimits = `limits:
  starts_per_account: 100000
  starts_per_ip: 100000
  starts_total: 10000000
  sign_ins_per_ip: 100000
  sends_per_account: 100000
  sends_per_destination: 100000
  code_failures_per_account: 100000
`

// TestEnumerationTiming compares, over many interleaved requests in a
// random order, how long each anonymous step takes for an eligible user with
// methods (carol), an ineligible user and a name that does not exist. A
// comparison fails when the medians differ by more than 1 ms, or when a
// single-request threshold classifier tells carol from the other name better
// than 55 % of the time (the targets in docs/security.md). The classifier's
// threshold is chosen on one half of the samples and scored on the other,
// both ways: picking it on the very samples it is scored on reports 55-58 %
// even for two identical distributions.
//
// False alarms and power (internal/timingleak/scheme.go, checked by
// simulation in its tests): 600 rounds per name; a failing subtest is
// measured once more on 2,400 fresh rounds with a new seed and fails only if
// that fails too. No leak: far below 10⁻⁶ of runs fail (4 × 10⁻⁵ counting
// the padder's designed p95 tail); a 60 % leak was caught in every
// simulated run, a 57.5 % one in 97-98 %.
// TestEnumerationTimingCatchesAPlantedLeak shows the whole measurement
// failing on a planted 60 % leak.
//
// The order is one shuffle of all the measured requests, from a seed drawn
// for the run and logged (LATCHKEY_TIMING_SEED repeats it). A real code
// leaves 3-503 ms after the answer, so its work (the gateway's and
// mailpit's) lands on some later request; in one shuffle of the whole
// sequence the name of that request does not depend on carol's (after
// carol comes carol a third of the time, as any name), so the carry-over
// is noise for every name alike, not a difference. Shuffling round by
// round put another name after carol 3.5 times as often as carol herself,
// the same way in every run.
//
// Each directory's steps run in two groups at the same time (the reset
// start and a wrong code; the passwords and sending a code), each group on a directory server and a
// gateway of its own: the gateway holds every anonymous answer to the
// real work's usual time, so a measurement mostly waits (Samba AD about
// 20 ms an answer with the machine 60 % idle). The flows the code steps
// need are started before their sequence, untimed, four at a time: when
// each send started its own flow within the sequence, sending a code took
// twice as long as any other step. (A third group per directory was tried,
// beside other engineers' tests: with three Samba DCs at once the AD reset
// start took 113 s instead of about 50, and groups waited for a Samba
// slot.) The other group's requests, and those
// untimed starts, are noise that falls on every name alike (each sequence
// is shuffled): they cost power, not false alarms, as the rates above hold
// for any noise that does not depend on the name. Within a group the steps
// run in turn on one gateway: carol's wrong passwords reach its bind
// budget in the sign-in step, and two gateways' budgets together would
// pass the directory's lockout threshold. Every step measures whatever
// state the earlier ones left, the same for every name, so each may run
// alone (-run).
func TestEnumerationTiming(t *testing.T) {
	alone(t)
	names := []string{"carol", "erin", "no-such-user"}
	for _, d := range directories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			// startSteps starts a directory server and a gateway for a
			// group of steps, with carol's email registered, and returns
			// the gateway with carol's method id
			startSteps := func(t *testing.T) (*env, string) {
				srv := d.start(t)
				mail, sms := startMail(t)
				// back-pressure off (outbox.max_wait at its longest): the
				// steps compare the answers of the names at each turn, and a
				// queue turning busy between two turns (the same for every
				// name) would read as a difference between them
				e := startGateway(t, srv, mail, sms, params{Limits: highLimits + "outbox:\n  max_wait: 1h\n"})
				mid, _ := e.register("carol", "carol.timing@example.net", "")
				// start from a quiet mail server (the registration's mail)
				e.mailCount()
				e.clearMail()
				return e, mid
			}
			t.Run("starts and wrong codes", func(t *testing.T) {
				t.Parallel()
				e, mid := startSteps(t)
				t.Run("reset start", func(t *testing.T) {
					e.t = t
					enumerationTiming(t, names, timingStep{do: func(n string) (time.Duration, int) {
						start := time.Now()
						r := e.api("POST", "/api/v1/reset", "", map[string]string{"username": n})
						return time.Since(start), r.Status
					}})
				})
				t.Run("a wrong code", func(t *testing.T) {
					e.t = t
					// a code dies at its fifth wrong try: each name gets a
					// flow with a code sent for every four tries, made
					// before the sequence
					var flows map[string][]timingFlow
					tries := map[string]int{}
					enumerationTiming(t, names, timingStep{
						prepare: func(perName int) {
							flows = startTimingFlows(t, e, names, mid, (perName+3)/4, true)
							clear(tries)
						},
						do: func(n string) (time.Duration, int) {
							f := flows[n][tries[n]/4]
							tries[n]++
							start := time.Now()
							r := e.api("POST", "/api/v1/reset/verify", "", map[string]string{"flow": f.id, "method": f.method, "code": "00000000"})
							return time.Since(start), r.Status
						},
					})
				})
			})
			t.Run("passwords and sends", func(t *testing.T) {
				t.Parallel()
				e, mid := startSteps(t)
				t.Run("sign-in with a wrong password", func(t *testing.T) {
					e.t = t
					// carol's wrong passwords soon reach the gateway's bind
					// budget: a throttled real account must look like a
					// missing one too
					enumerationTiming(t, names, timingStep{do: func(n string) (time.Duration, int) {
						start := time.Now()
						r := e.api("POST", "/api/v1/session", "", map[string]string{"username": n, "password": "Wrong-Password-1!"})
						return time.Since(start), r.Status
					}})
				})
				t.Run("change with a wrong password", func(t *testing.T) {
					e.t = t
					enumerationTiming(t, names, timingStep{do: func(n string) (time.Duration, int) {
						start := time.Now()
						r := e.api("POST", "/api/v1/change", "", map[string]string{"username": n, "old_password": "Wrong-Password-1!", "new_password": "Another-Long-Pass-9"})
						return time.Since(start), r.Status
					}})
				})
				t.Run("send a code", func(t *testing.T) {
					e.t = t
					var flows map[string][]timingFlow
					used := map[string]int{}
					enumerationTiming(t, names, timingStep{
						prepare: func(perName int) {
							flows = startTimingFlows(t, e, names, mid, perName, false)
							clear(used)
						},
						do: func(n string) (time.Duration, int) {
							f := flows[n][used[n]]
							used[n]++
							start := time.Now()
							r := e.api("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.id, "method": f.method})
							return time.Since(start), r.Status
						},
					})
				})
			})
		})
	}
}

// timingFlow is a reset flow started for a timing step, with the method
// it offers the name (carol's real one, the first fake one for the
// others).
type timingFlow struct{ id, method string }

// startTimingFlows starts n reset flows for each name, four at a time,
// and with send asks each flow's method for a code. It is untimed work
// done before a step's sequence; it fails the test on any unexpected
// answer.
func startTimingFlows(t *testing.T, e *env, names []string, mid string, n int, send bool) map[string][]timingFlow {
	t.Helper()
	type job struct {
		name string
		i    int
	}
	flows := map[string][]timingFlow{}
	for _, name := range names {
		flows[name] = make([]timingFlow, n)
	}
	jobs := make(chan job)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	c := &blackbox.Client{Bases: []string{e.base}, HTTP: httpClient}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				f, err := startTimingFlow(c, j.name, mid, send)
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				flows[j.name][j.i] = f // each job its own element
			}
		}()
	}
	for i := range n {
		for _, name := range names {
			jobs <- job{name, i}
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, fs := range flows {
		for _, f := range fs {
			e.secrets = append(e.secrets, f.id)
		}
	}
	return flows
}

func startTimingFlow(c *blackbox.Client, name, mid string, send bool) (timingFlow, error) {
	a, err := c.Do("POST", "/api/v1/reset", "", map[string]string{"username": name})
	if err != nil {
		return timingFlow{}, err
	}
	if a.Status != 200 {
		return timingFlow{}, fmt.Errorf("reset start %s: status %d: %s", name, a.Status, a.Body)
	}
	r := resp{a}
	f := timingFlow{id: r.str("flow")}
	methods, _ := r.JSON["methods"].([]any)
	for _, m := range methods {
		if id, _ := m.(map[string]any)["id"].(string); id == mid || f.method == "" {
			f.method = id
		}
	}
	if f.id == "" || f.method == "" {
		return timingFlow{}, fmt.Errorf("reset start %s: no flow or method: %s", name, a.Body)
	}
	if send {
		a, err := c.Do("POST", "/api/v1/reset/send", "", map[string]string{"flow": f.id, "method": f.method})
		if err != nil {
			return timingFlow{}, err
		}
		if a.Status != 202 {
			return timingFlow{}, fmt.Errorf("send %s: status %d: %s", name, a.Status, a.Body)
		}
	}
	return f, nil
}

// TestEnumerationTimingCatchesAPlantedLeak: the measurement of
// TestEnumerationTiming (real requests to a running gateway, shuffled, two
// stages) with a leak planted in carol's answers: a fifth of them 20 ms late
// (a single threshold tells carol from the others 60 % of the time). The
// check must report it, after its retry. The requests are GET /healthz, so
// that the two stages (9,000 requests) take seconds, not minutes; the noise
// is the same machine's, with TestEnumerationTiming running beside it (the
// two share alone's window), so the leak is caught under that load too. A leak of this size is missed in 0.3 % of runs
// (TestSchemePower) and only if both stages miss it; a miss here means the
// measurement no longer sees what it is for. The same planted leak on the
// reset start itself (LATCHKEY_PLANTED_LEAK_PATH=/api/v1/reset) was caught
// too when measured by hand (the closing note of the CI issue).
func TestEnumerationTimingCatchesAPlantedLeak(t *testing.T) {
	alone(t)
	srv := dirtest.StartOpenLDAP(t)
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{Limits: highLimits})
	names := []string{"carol", "erin", "no-such-user"}
	path := "/healthz"
	if p := os.Getenv("LATCHKEY_PLANTED_LEAK_PATH"); p != "" {
		path = p
	}
	rng := rand.New(rand.NewPCG(timingSeed(t), 1))
	measure := func() []string {
		comparisons, leaks := measureTiming(t, names, timingStep{do: func(n string) (time.Duration, int) {
			start := time.Now()
			var r resp
			if path == "/healthz" {
				r = e.api("GET", path, "", nil)
			} else {
				r = e.api("POST", path, "", map[string]string{"username": n})
			}
			if n == "carol" && rng.Float64() < 0.2 {
				time.Sleep(20 * time.Millisecond)
			}
			return time.Since(start), r.Status
		}})
		for _, c := range comparisons {
			t.Log(c)
		}
		return leaks
	}
	leaks := measure()
	if len(leaks) == 0 {
		// A miss is measured once more from scratch (new seeds) and the
		// test fails only if that misses too: a CI run is not failed by
		// the rare chance miss (about 1 in 10,000 for the first stage in
		// simulation, and once seen in CI before the accuracy was scored
		// both ways), while a measurement that has gone blind misses both.
		t.Log("the planted leak was not reported: measuring it once more with new seeds")
		leaks = measure()
	}
	if len(leaks) == 0 {
		t.Fatal("a 60 % leak planted in carol's answers was not reported, twice")
	}
	t.Logf("reported: %s", strings.Join(leaks, "; "))
}

// enumerationTiming runs the two-stage timing check (measureTiming) and
// fails the test on the leaks it reports.
func enumerationTiming(t *testing.T, names []string, step timingStep) {
	t.Helper()
	comparisons, leaks := measureTiming(t, names, step)
	for _, c := range comparisons {
		t.Log(c)
	}
	for _, l := range leaks {
		t.Error(l)
	}
}

// timingStep is one measured step: do makes one request for a name and
// returns how long it took and its status; prepare, when set, runs before
// each sequence, untimed, with the number of requests each name will get.
type timingStep struct {
	prepare func(perName int)
	do      func(name string) (time.Duration, int)
}

// measureTiming runs step.do a warm-up of rounds of every name, then rounds
// times every name in one shuffled sequence, and compares the durations of
// the first name (a real, eligible account) with each other name's, in the
// two stages of timingleak.Check: a first sample, and only when it fails a
// larger fresh one with a new seed. Every name's k-th answer must have the
// status of every other name's k-th answer: a budget spent (429 once the
// wrong passwords reach it) must be spent alike by every name.
func measureTiming(t *testing.T, names []string, step timingStep) ([]timingleak.Comparison, []string) {
	t.Helper()
	const warmup = 30
	var statuses []int          // the status of each name's k-th answer
	answers := map[string]int{} // how many answers each name has had
	seed := timingSeed(t)
	return timingleak.Check(names, func(rounds, attempt int) map[string][]float64 {
		if attempt > 0 {
			seed = rand.Uint64()
			t.Logf("the first %d rounds failed: measuring %d fresh rounds with seed %d", timingleak.FirstRounds, rounds, seed)
		}
		if step.prepare != nil {
			step.prepare(rounds + warmup)
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		samples := map[string][]float64{}
		var order []string
		for range rounds + warmup {
			order = append(order, names...)
		}
		shuffle := func(xs []string) { rng.Shuffle(len(xs), func(a, b int) { xs[a], xs[b] = xs[b], xs[a] }) }
		shuffle(order[:warmup*len(names)])
		shuffle(order[warmup*len(names):])
		for i, n := range order {
			d, st := step.do(n)
			k := answers[n]
			answers[n]++
			if k == len(statuses) {
				statuses = append(statuses, st)
			}
			if st != statuses[k] {
				t.Fatalf("%s: status %d at its answer %d, another name's answer %d was %d", n, st, k+1, k+1, statuses[k])
			}
			if i >= warmup*len(names) {
				samples[n] = append(samples[n], d.Seconds()*1000)
			}
		}
		return samples
	})
}

// timingSeed is the run's seed for the order of the timing tests' requests:
// LATCHKEY_TIMING_SEED when set (to repeat a run), else a random one. It is
// logged either way.
func timingSeed(t *testing.T) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("LATCHKEY_TIMING_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("LATCHKEY_TIMING_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("timing seed %d (LATCHKEY_TIMING_SEED=%d repeats this order)", seed, seed)
	return seed
}

// TestHostHeaderIsNeverTrusted sends a reset with a forged Host and
// X-Forwarded-Host and checks what reaches the mail server.
func TestHostHeaderIsNeverTrusted(t *testing.T) {
	parallel(t)
	for _, d := range directories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			hostHeaderIsNeverTrusted(t, d.start(t))
		})
	}
}

func hostHeaderIsNeverTrusted(t *testing.T, srv *dirtest.Server) {
	mail, sms := startMail(t)
	e := startGateway(t, srv, mail, sms, params{})
	emailID, _ := e.register("carol", "carol.host@example.net", "")
	r := e.api("POST", "/api/v1/reset", "", map[string]string{"username": "carol"})
	req, _ := http.NewRequest("POST", e.base+"/api/v1/reset/send", strings.NewReader(fmt.Sprintf(`{"flow":%q,"method":%q}`, r.str("flow"), emailID)))
	req.Host = "evil.example"
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Content-Type", "application/json")
	res, err := httpClient.Do(req)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("send with a forged host: %v %v", res, err)
	}
	res.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := mail.WaitForMessage(ctx, "carol.host@example.net")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mail.Raw(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "evil.example") {
		t.Fatal("the forged host reached the mail")
	}
}
