// Package timingleak measures how well response times tell two kinds of
// request apart (an existing name from an unknown one): the accuracy of
// the best single threshold, chosen on half of the samples and scored on
// the other half (both ways). 0.5 means the times tell nothing. Used by the e2e timing
// test and by latchkey-bench, so both judge a leak the same way.
package timingleak

import (
	"cmp"
	"slices"
)

// HeldOutAccuracy is the two-fold held-out accuracy of the best rule "a is
// at or below x" (or above): the rule is chosen on the even-numbered
// samples of a and b and scored on the odd-numbered ones, then chosen on
// the odd and scored on the even, and the two scores are pooled. One split
// alone lets a threshold picked by chance in the bulk of the times (where
// it tells nothing) stand for the whole sample; with both, a lucky pick
// has to happen twice. With no held-out samples it returns 0.5.
func HeldOutAccuracy(a, b []float64) float64 {
	half := func(xs []float64, odd int) []float64 {
		var out []float64
		for i := odd; i < len(xs); i += 2 {
			out = append(out, xs[i])
		}
		return out
	}
	right, total := 0, 0
	for fold := range 2 {
		x, aBelow := BestThreshold(half(a, fold), half(b, fold))
		ta, tb := half(a, 1-fold), half(b, 1-fold)
		total += len(ta) + len(tb)
		for _, v := range ta {
			if (v <= x) == aBelow {
				right++
			}
		}
		for _, v := range tb {
			if (v <= x) != aBelow {
				right++
			}
		}
	}
	if total == 0 {
		return 0.5
	}
	return float64(right) / float64(total)
}

// BestThreshold returns the threshold x and the direction (a at or below x
// when aBelow) that classify a against b best on these samples.
func BestThreshold(a, b []float64) (x float64, aBelow bool) {
	type pt struct {
		v float64
		a bool
	}
	all := make([]pt, 0, len(a)+len(b))
	for _, v := range a {
		all = append(all, pt{v, true})
	}
	for _, v := range b {
		all = append(all, pt{v, false})
	}
	slices.SortFunc(all, func(p, q pt) int { return cmp.Compare(p.v, q.v) })
	best, na, nb := -1, 0, 0
	for i, p := range all {
		if p.a {
			na++
		} else {
			nb++
		}
		if i+1 < len(all) && all[i+1].v == p.v {
			continue
		}
		if right := na + len(b) - nb; right > best {
			best, x, aBelow = right, p.v, true
		}
		if right := nb + len(a) - na; right > best {
			best, x, aBelow = right, p.v, false
		}
	}
	return x, aBelow
}
