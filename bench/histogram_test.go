package bench

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	prevHi := int64(-1)
	for i := range histBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d]: bucketOf(lo)=%d bucketOf(hi)=%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
	}
	if got := bucketOf(math.MaxInt64); got != histBuckets-1 {
		t.Fatalf("bucketOf(MaxInt64) = %d, want the last bucket", got)
	}
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h Histogram
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if h.Min() != 1 || h.Max() != 100 || h.Count() != 100 {
		t.Errorf("min %v max %v count %d", h.Min(), h.Max(), h.Count())
	}
	if h.Mean() != 50 { // 5050/100 = 50.5, truncated
		t.Errorf("mean %v", h.Mean())
	}
}

func TestHistogramPercentilesWithinOnePercent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 200_000)
	for i := range vals {
		// Log-uniform from 1 µs to 1 s, like latencies.
		vals[i] = int64(math.Exp(r.Float64()*math.Log(1e6)) * 1e3)
		h.Record(time.Duration(vals[i]))
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
		got := float64(h.Quantile(q))
		if rel := math.Abs(got-want) / want; rel > 0.01 {
			t.Errorf("Quantile(%v) = %v, exact %v: off by %.2f%%", q, got, want, rel*100)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) {
		t.Errorf("max %v, want %v exactly", h.Max(), vals[len(vals)-1])
	}
}

func TestHistogramEmptyAndHuge(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Mean() != 0 || h.Min() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5) // clamped to 0
	h.Record(100 * time.Hour)
	if h.Min() != 0 || h.Max() != 100*time.Hour {
		t.Fatalf("min %v max %v", h.Min(), h.Max())
	}
	if got := h.Quantile(1); got > 100*time.Hour || got < 9*time.Hour {
		t.Fatalf("Quantile(1) = %v: want clamped into the last bucket, at most the max", got)
	}
	s := h.Summary()
	if s.Count != 2 || s.Max != float64(100*time.Hour)/float64(time.Millisecond) {
		t.Fatalf("summary %+v", s)
	}
}

func TestHistogramConcurrentAndMerge(t *testing.T) {
	var a, b Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10_000 {
				a.Record(time.Duration(g*10_000 + i + 1))
			}
		}()
	}
	wg.Wait()
	if a.Count() != 40_000 || a.Max() != 40_000 || a.Min() != 1 {
		t.Fatalf("count %d max %v min %v", a.Count(), a.Max(), a.Min())
	}
	b.Record(time.Second)
	b.Merge(&a)
	if b.Count() != 40_001 || b.Max() != time.Second || b.Min() != 1 {
		t.Fatalf("merged: count %d max %v min %v", b.Count(), b.Max(), b.Min())
	}
	if p50 := b.Quantile(0.5); math.Abs(float64(p50)-20_000)/20_000 > 0.01 {
		t.Fatalf("merged p50 %v, want about 20µs", p50)
	}
}
