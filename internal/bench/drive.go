package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkeyhq/latchkey/internal/timingleak"
)

// Row is one measured scenario at one concurrency.
type Row struct {
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Ops         int     `json:"ops"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	// GatewayCPUms and SlapdCPUms are CPU milliseconds per operation
	// (utime+stime from /proc, 10 ms ticks); -1 when not applicable.
	GatewayCPUms float64 `json:"gateway_cpu_ms_per_op"`
	SlapdCPUms   float64 `json:"slapd_cpu_ms_per_op"`
	// StoreCPUms is the PostgreSQL server's CPU milliseconds per operation
	// (the postmaster and its backends); -1 with SQLite (which runs inside
	// the gateway) and for the ceiling rows.
	StoreCPUms float64 `json:"store_cpu_ms_per_op"`
	// Ceiling names the raw go-ldap row this one is compared with, Ratio
	// is OpsPerSec / that row's OpsPerSec (same run, same concurrency).
	Ceiling  string             `json:"ceiling,omitempty"`
	Ratio    float64            `json:"ratio,omitempty"`
	FirstErr string             `json:"first_error,omitempty"`
	LoadAvg  string             `json:"load_avg_after"`
	StepsP50 map[string]float64 `json:"steps_p50_ms,omitempty"`
	lat      []time.Duration
	stepLat  map[string][]time.Duration
}

type limits struct {
	dur time.Duration
	max int
}

// recorder collects latencies of one run from many workers.
type recorder struct {
	mu    sync.Mutex
	lat   []time.Duration
	steps map[string][]time.Duration
	errs  int
	first string
}

func (r *recorder) add(d time.Duration) { r.mu.Lock(); r.lat = append(r.lat, d); r.mu.Unlock() }

func (r *recorder) step(name string, d time.Duration) {
	r.mu.Lock()
	if r.steps == nil {
		r.steps = map[string][]time.Duration{}
	}
	r.steps[name] = append(r.steps[name], d)
	r.mu.Unlock()
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	r.errs++
	if r.first == "" {
		r.first = err.Error()
	}
	r.mu.Unlock()
}

// pids are the processes whose CPU a run is charged with: the gateways
// (summed), slapd, and the PostgreSQL server's postmaster (with its
// backends; 0: none).
type pids struct {
	gateways     []int
	slapd, store int
}

func (p pids) gatewayCPU() time.Duration {
	var d time.Duration
	for _, g := range p.gateways {
		d += cpuTime(g)
	}
	return d
}

// measure runs body (which uses rec) and fills a Row with throughput,
// latencies and CPU per operation.
func measure(name string, c int, p pids, body func(rec *recorder)) Row {
	g0, s0, d0 := p.gatewayCPU(), cpuTime(p.slapd), serverCPUTime(p.store)
	rec := &recorder{}
	start := time.Now()
	body(rec)
	el := time.Since(start)
	g1, s1, d1 := p.gatewayCPU(), cpuTime(p.slapd), serverCPUTime(p.store)
	row := Row{Scenario: name, Concurrency: c, Ops: len(rec.lat), Errors: rec.errs, FirstErr: rec.first, Seconds: el.Seconds(),
		lat: rec.lat, stepLat: rec.steps, LoadAvg: loadAvg(), GatewayCPUms: -1, SlapdCPUms: -1, StoreCPUms: -1}
	if row.Ops > 0 {
		row.OpsPerSec = float64(row.Ops) / el.Seconds()
		row.P50ms = ms(quantile(rec.lat, 0.5))
		row.P99ms = ms(quantile(rec.lat, 0.99))
		if len(p.gateways) > 0 {
			row.GatewayCPUms = ms(g1-g0) / float64(row.Ops)
		}
		if p.store > 0 {
			row.StoreCPUms = ms(d1-d0) / float64(row.Ops)
		}
		if p.slapd > 0 {
			row.SlapdCPUms = ms(s1-s0) / float64(row.Ops)
		}
	}
	if len(rec.steps) > 0 {
		row.StepsP50 = map[string]float64{}
		for k, v := range rec.steps {
			row.StepsP50[k] = ms(quantile(v, 0.5))
		}
	}
	return row
}

// closedLoop runs op from c workers until l.dur has passed or l.max
// operations were started; op gets the worker and a global sequence number.
// errUsedUp ends a worker of closedLoop without an error: the scenario has
// no fresh accounts left (each registration needs an account without one).
var errUsedUp = errors.New("no unused accounts left")

func closedLoop(rec *recorder, c int, l limits, op func(w, i int) error) {
	var n atomic.Int64
	deadline := time.Now().Add(l.dur)
	var wg sync.WaitGroup
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := int(n.Add(1)) - 1
				if i >= l.max {
					return
				}
				t0 := time.Now()
				if err := op(w, i); errors.Is(err, errUsedUp) {
					return
				} else if err != nil {
					rec.fail(err)
					continue
				}
				rec.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func quantile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(int(float64(len(s))*q), len(s)-1)]
}

// owned splits a user range among c workers: worker w gets the users
// lo+w, lo+w+c, ... (changes of one account are serial by nature).
type owned struct {
	lo, hi, c int
	next      []int
}

func newOwned(lo, hi, c int) *owned {
	o := &owned{lo: lo, hi: hi, c: c, next: make([]int, c)}
	for w := range c {
		o.next[w] = lo + w
	}
	return o
}

// take returns worker w's next user (round robin over its share).
func (o *owned) take(w int) int {
	u := o.next[w]
	o.next[w] += o.c
	if o.next[w] >= o.hi {
		o.next[w] = o.lo + w
	}
	return u
}

// ---------------------------------------------------------------- enumeration

// Enumeration is the timing comparison of reset starts for existing
// (eligible, with a method) and unknown names.
type Enumeration struct {
	Samples     int     `json:"samples_per_kind"`
	ExistingP50 float64 `json:"existing_p50_ms"`
	UnknownP50  float64 `json:"unknown_p50_ms"`
	ExistingP99 float64 `json:"existing_p99_ms"`
	UnknownP99  float64 `json:"unknown_p99_ms"`
	AbsDeltaP50 float64 `json:"abs_delta_p50_ms"`
	// HeldOut is the accuracy of the best single-request threshold chosen
	// on half of the samples, measured on the other half (0.5 = no leak).
	HeldOut float64 `json:"held_out_classification"`
}

func enumeration(a, b []time.Duration) Enumeration {
	fa, fb := floats(a), floats(b)
	e := Enumeration{Samples: min(len(a), len(b)), ExistingP50: ms(quantile(a, 0.5)), UnknownP50: ms(quantile(b, 0.5)),
		ExistingP99: ms(quantile(a, 0.99)), UnknownP99: ms(quantile(b, 0.99))}
	e.AbsDeltaP50 = abs(e.ExistingP50 - e.UnknownP50)
	e.HeldOut = timingleak.HeldOutAccuracy(fa, fb)
	return e
}

func floats(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func shuffled(n int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 7)) // #nosec G404 -- a reproducible order, not a secret
	p := r.Perm(n)
	return p
}

func fmtMs(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}
