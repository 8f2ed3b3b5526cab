package timingleak

import (
	"fmt"
	"math"
	"slices"
)

// The enumeration timing check (e2e TestEnumerationTiming) in two stages,
// so that chance alone almost never fails a CI run while a leak worth
// fixing is still caught:
//
//   - First stage: FirstRounds samples per name. A comparison fails when
//     the held-out accuracy is above MaxAccuracy or the medians differ by
//     more than MaxDeltaP50Ms and by at least MinZFirst standard errors.
//   - Only when the first stage fails: one retry on RetryRounds fresh
//     samples with a new seed. The check fails only if the retry fails too.
//
// False alarm (no leak at all, checked by TestSchemeFalseAlarm on i.i.d.
// samples): about 0.04 % per comparison at the first stage (10 in 20,000
// simulated), and none in the simulated retries (the held-out accuracy of
// 2,400+2,400 samples scored both ways has a standard deviation under
// 0.8 %, more than 6 sd to the limit): far below 10⁻⁶ per CI run of 20
// comparisons. Counting the padder's designed tail (5 % of real answers
// may pass the p95 hold) as a leak-free difference: the first stage fails
// 0.8 % per comparison (157 in 20,000 simulated), the retry none of 4,000
// (mean 52.1 %, about 4 sd from the limit), so the whole check below
// 20 × 0.008 / 4,000 = 4 × 10⁻⁵ per run: rarer than 1 run in 1,000 either
// way.
//
// Power (TestSchemePower, the real account against two others as in the
// e2e test): a leak a single-threshold classifier tells 60 % of the time
// (20 % of answers 20 ms late, or a normal shift) is caught in every one of
// the simulated runs, and its first stage misses in about 1 in 10,000 (2 in
// 20,000 simulated); one of 57.5 % in 97-98 %; a leak of 55 % itself only
// in about a third (no test of this size tells 55 % from 52 %). Before the
// accuracy was scored both ways, the first stage missed the 60 % leak about
// 6 times as often, and a CI run did miss it once (54.2 %: a threshold
// picked in the bulk of the training half).
//
// The median at the retry: a median difference over MaxDeltaP50Ms fails
// the retry only when it is also at least MinZ standard errors (each
// median's standard error read from the distribution-free 95 % interval of
// its order statistics). On a quiet machine that changes nothing: the
// standard error of the difference of two medians of 2,400 answers is
// 0.05-0.15 ms here, so a difference just over 1 ms is 7 or more of them.
// On a machine so loaded that answers spread over tens of milliseconds
// (a CI run beside a benchmark, load average 8 on 2 cores: the AD reset
// start's median 29 ms, p99 95 ms) the medians of two names with no leak
// moved 1.8 ms apart at the retry, 2.4 standard errors: no sample of this
// size tells a 1 ms leak from chance at such a load, and the retry now
// says so in its log instead of failing. TestSchemeMedianUnderLoad checks
// both by simulation.
//
// The median at the first stage: over MaxDeltaP50Ms and at least
// MinZFirst (2) standard errors. The retry only passes a difference of
// MinZ standard errors of its own samples (four times as many: half the
// standard error), that is 2 of the first stage's, so a first-stage
// difference under 2 standard errors that the retry would catch is rare
// (TestSchemeMedianUnderLoad: the 1.5 ms leak on a quiet machine is caught
// as often as before), while each needless retry costs four times the
// first stage: 2.5 minutes for the AD reset start in a loaded CI run,
// where the first stage's medians of two leak-free names were 1.25 ms
// apart at 1.3 standard errors. On a quiet machine the gate changes
// nothing (600 answers: 0.1-0.3 ms, so 1 ms is over 3 standard errors).
const (
	FirstRounds   = 600
	RetryRounds   = 2400
	MaxAccuracy   = 0.55
	MaxDeltaP50Ms = 1.0
	MinZ          = 4.0
	MinZFirst     = 2.0
)

// Comparison is the verdict on one pair of samples (times in ms).
type Comparison struct {
	A, B                 string
	P50A, P50B, DeltaP50 float64
	P99A, P99B           float64
	Accuracy             float64
	// SEDeltaP50 is the standard error of DeltaP50 (ms).
	SEDeltaP50 float64
}

// Compare measures a against b.
func Compare(nameA string, a []float64, nameB string, b []float64) Comparison {
	c := Comparison{A: nameA, B: nameB,
		P50A: Quantile(a, 0.5), P50B: Quantile(b, 0.5),
		P99A: Quantile(a, 0.99), P99B: Quantile(b, 0.99),
		Accuracy: HeldOutAccuracy(a, b)}
	c.DeltaP50 = c.P50A - c.P50B
	if c.DeltaP50 < 0 {
		c.DeltaP50 = -c.DeltaP50
	}
	c.SEDeltaP50 = math.Hypot(MedianSE(a), MedianSE(b))
	return c
}

// MedianSE is the standard error of the median of xs, from the
// distribution-free 95 % confidence interval of the median (the order
// statistics n/2 ± 0.98·√n) divided by 2 × 1.96. 0 for fewer than 4
// samples.
func MedianSE(xs []float64) float64 {
	n := len(xs)
	if n < 4 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(math.Ceil(0.98 * math.Sqrt(float64(n))))
	lo, hi := max(n/2-k, 0), min(n/2+k, n-1)
	return (s[hi] - s[lo]) / (2 * 1.96)
}

// Leaks lists what is wrong with c at the first stage (nothing when it
// passes): a median difference over MaxDeltaP50Ms and at least MinZFirst
// standard errors, or an accuracy over MaxAccuracy.
func (c Comparison) Leaks() []string { return c.leaks(false) }

// RetryLeaks is Leaks at the retry: a median difference counts only when
// it is also at least MinZ standard errors.
func (c Comparison) RetryLeaks() []string { return c.leaks(true) }

func (c Comparison) leaks(retry bool) []string {
	var out []string
	z := MinZFirst
	if retry {
		z = MinZ
	}
	if c.DeltaP50 > MaxDeltaP50Ms && c.DeltaP50 >= z*c.SEDeltaP50 {
		out = append(out, fmt.Sprintf("%s and %s differ by %.3f ms at the median (limit %.1f ms; %.1f standard errors)", c.A, c.B, c.DeltaP50, MaxDeltaP50Ms, c.DeltaP50/max(c.SEDeltaP50, 1e-9)))
	}
	if c.Accuracy > MaxAccuracy {
		out = append(out, fmt.Sprintf("a single request tells %s from %s %.1f%% of the time (limit %.0f%%)", c.A, c.B, c.Accuracy*100, MaxAccuracy*100))
	}
	return out
}

func (c Comparison) String() string {
	return fmt.Sprintf("%s vs %s: p50 %.3f / %.3f ms (|Δp50| %.3f ms, standard error %.3f ms), p99 %.3f / %.3f ms, held-out threshold classifier %.1f%%",
		c.A, c.B, c.P50A, c.P50B, c.DeltaP50, c.SEDeltaP50, c.P99A, c.P99B, c.Accuracy*100)
}

// Quantile is the q-quantile of xs (nearest rank below).
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(int(float64(len(s))*q), len(s)-1)]
}

// Check runs the two-stage scheme. measure(rounds, attempt) returns the
// samples of each name for that many rounds (fresh samples on every call;
// attempt 0 is the first stage, 1 the retry); the first name is compared
// with each other one. It returns every comparison made (for the log) and
// the leaks of the stage that decided: none when the first stage passed or
// the retry did.
func Check(names []string, measure func(rounds, attempt int) map[string][]float64) (all []Comparison, leaks []string) {
	for attempt, rounds := range []int{FirstRounds, RetryRounds} {
		samples := measure(rounds, attempt)
		leaks = nil
		for _, other := range names[1:] {
			c := Compare(names[0], samples[names[0]], other, samples[other])
			all = append(all, c)
			leaks = append(leaks, c.leaks(attempt > 0)...)
		}
		if len(leaks) == 0 {
			return all, nil
		}
	}
	return all, leaks
}
