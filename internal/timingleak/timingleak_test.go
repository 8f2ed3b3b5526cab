package timingleak

import (
	"math/rand/v2"
	"testing"
)

func TestSeparatedSamplesAreFound(t *testing.T) {
	var a, b []float64
	for i := 0; i < 200; i++ {
		a = append(a, 1+float64((i/2)%10)/100) // 1.00-1.09, each twice in a row
		b = append(b, 2+float64((i/2)%10)/100)
	}
	if acc := HeldOutAccuracy(a, b); acc != 1 {
		t.Fatalf("accuracy %v on separated samples, want 1", acc)
	}
	if acc := HeldOutAccuracy(b, a); acc != 1 {
		t.Fatalf("accuracy %v with a above b, want 1", acc)
	}
}

func TestSameDistributionIsNearChance(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a, b []float64
	for i := 0; i < 4000; i++ {
		a = append(a, r.NormFloat64())
		b = append(b, r.NormFloat64())
	}
	if acc := HeldOutAccuracy(a, b); acc < 0.45 || acc > 0.55 {
		t.Fatalf("accuracy %v on one distribution, want about 0.5", acc)
	}
	if acc := HeldOutAccuracy(nil, nil); acc != 0.5 {
		t.Fatalf("no samples: %v", acc)
	}
}
