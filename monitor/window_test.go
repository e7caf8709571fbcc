package monitor

import (
	"math"
	"testing"
	"time"
)

func TestWindowKnownSeries(t *testing.T) {
	w := newWindow(30*time.Second, 1, 0)
	// One echo a second: 10, 20, 30, 40, 50 ms, then one lost.
	for i := range 5 {
		w.addRTT(at(time.Duration(i)*time.Second+100*time.Millisecond).UnixNano(), ms(float64(10*(i+1))))
	}
	w.addLost(at(5100 * time.Millisecond).UnixNano())

	var s Stats
	w.stats(at(5500*time.Millisecond), &s)
	if s.Samples != 5 || s.Lost != 1 {
		t.Fatalf("samples/lost = %d/%d, want 5/1", s.Samples, s.Lost)
	}
	if math.Abs(s.Loss-1.0/6) > 1e-12 {
		t.Errorf("loss = %v, want 1/6", s.Loss)
	}
	within(t, "mean", s.LatencyMean, ms(30), 0)
	within(t, "p50", s.LatencyP50, ms(30), 0) // nearest rank: 3rd of 5
	within(t, "p95", s.LatencyP95, ms(50), 0) // 5th of 5
	within(t, "max", s.LatencyMax, ms(50), 0)
	// Constant |D| = 10 ms from J = 0: J_n = 10ms * (1 - (15/16)^n), n = 4.
	wantJ := time.Duration(float64(ms(10)) * (1 - math.Pow(15.0/16, 4)))
	within(t, "jitter", s.Jitter, wantJ, time.Nanosecond)
	if !s.LastSample.Equal(at(5100 * time.Millisecond)) {
		t.Errorf("last sample = %v, want the lost packet's time", s.LastSample)
	}

	// 26 s later the first two seconds have left the window.
	s = Stats{}
	w.stats(at(31500*time.Millisecond), &s)
	if s.Samples != 3 || s.Lost != 1 {
		t.Fatalf("after sliding: samples/lost = %d/%d, want 3/1", s.Samples, s.Lost)
	}
	within(t, "mean after sliding", s.LatencyMean, ms(40), 0)
	within(t, "p50 after sliding", s.LatencyP50, ms(40), 0)
	within(t, "max after sliding", s.LatencyMax, ms(50), 0)

	// Long after: no data, but the last sample is still known.
	s = Stats{}
	w.stats(at(time.Minute), &s)
	if s.Samples+s.Lost != 0 || s.Loss != 0 || s.LatencyP95 != 0 {
		t.Errorf("stale window: %+v, want no measurements", s)
	}
	if s.LastSample.IsZero() {
		t.Error("stale window forgot its last sample time")
	}
}

func TestWindowQuantilesOverHundredSamples(t *testing.T) {
	w := newWindow(30*time.Second, 4, 0) // ring of 150
	// 100 RTTs 1..100 ms, shuffled in time order by a fixed stride.
	for i := range 100 {
		v := (i*37)%100 + 1
		w.addRTT(at(time.Duration(i)*200*time.Millisecond).UnixNano(), ms(float64(v)))
	}
	var s Stats
	w.stats(at(20*time.Second), &s)
	if s.Samples != 100 {
		t.Fatalf("samples = %d, want 100", s.Samples)
	}
	within(t, "p50", s.LatencyP50, ms(50), 0)
	within(t, "p95", s.LatencyP95, ms(95), 0)
	within(t, "max", s.LatencyMax, ms(100), 0)
	within(t, "mean", s.LatencyMean, ms(50.5), 0)
}

func TestWindowThroughputSpansTwoIntervals(t *testing.T) {
	w := newWindow(30*time.Second, 0, 30*time.Second) // throughput window 60 s
	w.addThroughput(at(3*time.Second).UnixNano(), 2e6)
	w.addThroughput(at(33*time.Second).UnixNano(), 4e6)
	var s Stats
	w.stats(at(40*time.Second), &s)
	if s.ThroughputSamples != 2 || s.Throughput != 3e6 {
		t.Errorf("throughput = %v over %d samples, want 3e6 over 2", s.Throughput, s.ThroughputSamples)
	}
	s = Stats{}
	w.stats(at(70*time.Second), &s)
	if s.ThroughputSamples != 1 || s.Throughput != 4e6 {
		t.Errorf("later throughput = %v over %d samples, want 4e6 over 1", s.Throughput, s.ThroughputSamples)
	}
	if s.Samples != 0 || s.LatencyProbe != "" {
		t.Errorf("throughput alone produced latency figures: %+v", s)
	}
}

func TestWindowResizeKeepsNewestSamples(t *testing.T) {
	w := newWindow(10*time.Second, 10, 0) // ring of 125
	for i := range 100 {
		w.addRTT(at(time.Duration(i)*50*time.Millisecond).UnixNano(), ms(float64(i+1)))
	}
	w.resizeSamples(1) // ring of 16: the 16 newest stay
	var s Stats
	w.stats(at(5*time.Second), &s)
	within(t, "p50 after shrink", s.LatencyP50, ms(92), 0) // 85..100, 8th
	within(t, "max after shrink", s.LatencyMax, ms(100), 0)
	w.resizeSamples(10)
	s = Stats{}
	w.stats(at(5*time.Second), &s)
	within(t, "p50 after grow", s.LatencyP50, ms(92), 0)
}

func TestWindowIgnoresTooOldAndFutureSamples(t *testing.T) {
	w := newWindow(30*time.Second, 1, 0)
	w.addRTT(at(100*time.Second).UnixNano(), ms(5))
	w.addRTT(at(10*time.Second).UnixNano(), ms(500)) // older than the ring holds
	var s Stats
	w.stats(at(100500*time.Millisecond), &s)
	if s.Samples != 1 || s.LatencyMax != ms(5) || s.LatencyP95 != ms(5) {
		t.Errorf("stats = %+v, want only the 5 ms sample", s)
	}
}

func TestWindowMemoryIsFixed(t *testing.T) {
	w := newWindow(30*time.Second, 3, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		w.addRTT(time.Now().UnixNano(), ms(12))
		w.addLost(time.Now().UnixNano())
	})
	if allocs != 0 {
		t.Errorf("recording allocates %v times", allocs)
	}
	var s Stats
	allocs = testing.AllocsPerRun(100, func() { w.stats(time.Now(), &s) })
	if allocs != 0 {
		t.Errorf("reading stats allocates %v times", allocs)
	}
	if len(w.buckets) != 30 || len(w.samples) != 113 {
		t.Errorf("ring sizes %d buckets, %d samples; want 30 and 113", len(w.buckets), len(w.samples))
	}
}
