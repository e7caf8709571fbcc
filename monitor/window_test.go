package monitor

import (
	"math"
	"math/rand/v2"
	"slices"
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
	// Counting the lost one as an endless round trip (what rules read):
	// the median is still an answer, the p95 and the max are the loss.
	within(t, "p50 with lost", s.LatencyP50Lost, ms(30), 0)
	if s.LatencyP95Lost != Endless || s.LatencyMaxLost != Endless {
		t.Errorf("p95/max with lost = %v/%v, want Endless", s.LatencyP95Lost, s.LatencyMaxLost)
	}
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
	w := newWindow(30*time.Second, 4, 0) // ring of 124
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
	w := newWindow(10*time.Second, 10, 0) // ring of 111
	for i := range 100 {
		w.addRTT(at(time.Duration(i)*50*time.Millisecond).UnixNano(), ms(float64(i+1)))
	}
	w.resize(1) // ring of 12: the 12 newest stay
	var s Stats
	w.stats(at(5*time.Second), &s)
	if s.Samples != 12 {
		t.Errorf("samples after shrink = %d, want 12", s.Samples)
	}
	within(t, "p50 after shrink", s.LatencyP50, ms(94), 0) // 89..100, 6th
	within(t, "max after shrink", s.LatencyMax, ms(100), 0)
	within(t, "mean after shrink", s.LatencyMean, ms(94.5), 0)
	w.resize(10)
	s = Stats{}
	w.stats(at(5*time.Second), &s)
	within(t, "p50 after grow", s.LatencyP50, ms(94), 0)
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
	// 3 a second over 30 s of slices, a second to spare, and one.
	if w.buckets != nil || len(w.ring) != 94 {
		t.Errorf("%d buckets, ring of %d; want none and 94", len(w.buckets), len(w.ring))
	}
}

// TestWindowMatchesReference drives a window with a random series (5%
// lost, RTTs from 100 µs to 2 s) and checks every figure against a plain
// computation over all samples in the window's 60 half-second slices (the
// current one and the 59 before): with the ring alone
// (3 a second) and with buckets (30 a second).
func TestWindowMatchesReference(t *testing.T) {
	t.Run("ring", func(t *testing.T) { testWindowMatchesReference(t, 3) })
	t.Run("buckets", func(t *testing.T) { testWindowMatchesReference(t, 30) })
}

func testWindowMatchesReference(t *testing.T, rate float64) {
	type rec struct {
		at   time.Time
		rtt  time.Duration
		lost bool
	}
	rng := rand.New(rand.NewPCG(3, 7))
	// Sized for a third more, so the random gaps never bring more round
	// trips than the ring holds (see TestWindowFasterThanItsRate for that).
	w := newWindow(30*time.Second, rate*4/3, 0)
	if (w.buckets != nil) != (rate > 10) {
		t.Fatalf("%d buckets at %v a second", len(w.buckets), rate)
	}
	var all []rec
	check := func(now time.Time) {
		t.Helper()
		const slice = int64(500 * time.Millisecond)
		cur := now.UnixNano() / slice
		var rtts []time.Duration
		lost := 0
		var sum, mx time.Duration
		for i := len(all) - 1; i >= 0; i-- { // all is in time order
			r := all[i]
			e := r.at.UnixNano() / slice
			if e < cur-59 {
				break
			}
			if e > cur {
				continue
			}
			if r.lost {
				lost++
				continue
			}
			us := r.rtt.Truncate(time.Microsecond) // the window's resolution
			rtts = append(rtts, us)
			sum += us
			mx = max(mx, us)
		}
		var s Stats
		w.stats(now, &s)
		if s.Samples != len(rtts) || s.Lost != lost {
			t.Fatalf("at %v: samples/lost = %d/%d, want %d/%d", now.Sub(base), s.Samples, s.Lost, len(rtts), lost)
		}
		if len(rtts) == 0 {
			return
		}
		slices.Sort(rtts)
		p50 := rtts[rank(len(rtts), 0.5)]
		p95 := rtts[rank(len(rtts), 0.95)]
		if s.LatencyMean != sum/time.Duration(len(rtts)) || s.LatencyMax != mx || s.LatencyP50 != p50 || s.LatencyP95 != p95 {
			t.Fatalf("at %v: mean/max/p50/p95 = %v/%v/%v/%v, want %v/%v/%v/%v", now.Sub(base),
				s.LatencyMean, s.LatencyMax, s.LatencyP50, s.LatencyP95, sum/time.Duration(len(rtts)), mx, p50, p95)
		}
		withLost := func(q float64) time.Duration { // the lost sort last, endless
			if i := rank(len(rtts)+lost, q); i < len(rtts) {
				return rtts[i]
			}
			return Endless
		}
		if s.LatencyP50Lost != withLost(0.5) || s.LatencyP95Lost != withLost(0.95) || s.LatencyMaxLost != withLost(1) {
			t.Fatalf("at %v: p50/p95/max with lost = %v/%v/%v, want %v/%v/%v", now.Sub(base),
				s.LatencyP50Lost, s.LatencyP95Lost, s.LatencyMaxLost, withLost(0.5), withLost(0.95), withLost(1))
		}
	}
	now := base
	seconds := 200.0
	if rate > 10 {
		seconds = 80 // sorting ~1000 round trips per check is slow with -race
	}
	for i := range int(seconds * rate) {
		now = now.Add(time.Duration(rng.Int64N(int64(2 * float64(time.Second) / rate))))
		if i%int(25*rate) == 50 {
			now = now.Add(20 * time.Second) // a silence shorter than the window
		}
		r := rec{at: now, rtt: time.Duration(100_000 + rng.Int64N(int64(2*time.Second)))}
		r.lost = rng.IntN(20) == 0
		all = append(all, r)
		if r.lost {
			w.addLost(r.at.UnixNano())
		} else {
			w.addRTT(r.at.UnixNano(), r.rtt)
		}
		check(now)
		check(now.Add(time.Duration(rng.Int64N(int64(40 * time.Second)))))
	}
	// Asked about a moment before the newest sample: that sample is not in
	// the window yet, and does not push an older one out of the quantiles.
	w.addRTT(now.Add(time.Second).UnixNano(), 5*time.Second)
	all = append(all, rec{at: now.Add(time.Second), rtt: 5 * time.Second})
	check(now)
	check(now.Add(time.Second))
}

func TestWindowForgetsAfterSilence(t *testing.T) {
	w := newWindow(30*time.Second, 1, 0)
	for i := range 30 {
		w.addRTT(at(time.Duration(i)*time.Second).UnixNano(), ms(100))
	}
	// Two minutes of nothing, then two fast answers.
	w.addRTT(at(150*time.Second).UnixNano(), ms(1))
	w.addRTT(at(151*time.Second).UnixNano(), ms(2))
	var s Stats
	w.stats(at(151*time.Second), &s)
	if s.Samples != 2 || s.LatencyP95 != ms(2) || s.LatencyMax != ms(2) {
		t.Errorf("stats = %+v, want only the two new answers", s)
	}
}

func TestWindowFasterThanItsRate(t *testing.T) {
	// Sized for 1 a second (a ring of 32), fed 10 a second, as no probe
	// does: the figures cover the newest 32 measurements.
	w := newWindow(30*time.Second, 1, 0)
	for i := range 300 {
		w.addRTT(at(time.Duration(i)*100*time.Millisecond).UnixNano(), ms(float64(i+1)))
	}
	var s Stats
	w.stats(at(30*time.Second), &s)
	if s.Samples != 32 {
		t.Fatalf("samples = %d, want 32", s.Samples)
	}
	within(t, "max", s.LatencyMax, ms(300), 0)
	within(t, "mean", s.LatencyMean, ms(284.5), 0)
	within(t, "p50", s.LatencyP50, ms(284), 0) // 269..300, 16th
}

func TestWindowWithBuckets(t *testing.T) {
	// 100 a second over 30 s is more than the ring holds: the buckets keep
	// the counts, mean and max; the quantiles cover the newest 1024.
	w := newWindow(30*time.Second, 100, 0)
	if len(w.buckets) != 62 || len(w.ring) != maxRing {
		t.Fatalf("%d buckets, ring of %d; want 62 and %d", len(w.buckets), len(w.ring), maxRing)
	}
	for i := range 4000 { // 40 s
		at := at(time.Duration(i) * 10 * time.Millisecond).UnixNano()
		if i%10 == 0 {
			w.addLost(at)
			continue
		}
		w.addRTT(at, ms(float64(1+i%100)))
	}
	var s Stats
	w.stats(at(39*time.Second+999*time.Millisecond), &s) // 10 s .. 39.999 s
	if s.Samples != 2700 || s.Lost != 300 || s.Loss != 0.1 {
		t.Fatalf("samples/lost/loss = %d/%d/%v, want 2700/300/0.1", s.Samples, s.Lost, s.Loss)
	}
	within(t, "max", s.LatencyMax, ms(100), 0)
	within(t, "mean", s.LatencyMean, ms(51), 0) // 1..100 without 1, 11, ..., 91
	if s.LatencyP50 < ms(45) || s.LatencyP50 > ms(56) || s.LatencyP95 < ms(90) {
		t.Errorf("p50/p95 = %v/%v, want about 51ms/95ms", s.LatencyP50, s.LatencyP95)
	}
}

func TestSliceWidth(t *testing.T) {
	for _, c := range []struct {
		span time.Duration
		rate float64
		want time.Duration
	}{
		{30 * time.Second, 3, 500 * time.Millisecond},
		{30 * time.Second, 0, 500 * time.Millisecond},
		{time.Second, 10, 16666667}, // rounded up: 60 slices cover the window
		{2 * time.Minute, 1, 2 * time.Second},
		{time.Hour, 100, time.Minute},
		// 10,000 a second (the config's most) would count 600,000 in a
		// minute: 6 s buckets count 60,000.
		{time.Hour, 10000, 6 * time.Second},
		{30 * time.Second, 1e6, 500 * time.Millisecond}, // never under a 60th: the counts saturate
		{time.Hour, 1e6, time.Second},                   // nor under 1 s
	} {
		if got := time.Duration(sliceWidth(int64(c.span), c.rate)); got != c.want {
			t.Errorf("sliceWidth(%v, %v/s) = %v, want %v", c.span, c.rate, got, c.want)
		}
	}
}

func TestWindowRateBeyondItsBuckets(t *testing.T) {
	w := newWindow(time.Hour, 1, 0) // 1 min buckets
	w.addRTT(at(0).UnixNano(), ms(1))
	w.resize(10000) // a reload: now 6 s buckets, started afresh
	if w.width != int64(6*time.Second) || len(w.buckets) != 601 {
		t.Fatalf("width %v, %d buckets; want 6s and 601", time.Duration(w.width), len(w.buckets))
	}
	for i := range 70000 {
		w.addRTT(at(time.Minute+time.Duration(i)*50*time.Microsecond).UnixNano(), ms(2))
	}
	var s Stats
	w.stats(at(2*time.Minute), &s)
	// 3.5 s of 20,000 a second land in one 6 s bucket: it counts up to its
	// limit rather than wrap.
	if s.Samples != maxPerBucket || s.LatencyMax != ms(2) || s.LatencyMean != ms(2) {
		t.Errorf("samples %d, max %v, mean %v; want %d of 2ms", s.Samples, s.LatencyMax, s.LatencyMean, maxPerBucket)
	}
}

// TestShortWindowSlides: a window of a second covers the last second at
// any moment, not the calendar second begun: just after a second began it
// still holds the measurements of the one before, and never more than the
// window's length.
func TestShortWindowSlides(t *testing.T) {
	for _, rate := range []float64{10, 1000} { // the ring alone; with buckets
		w := newWindow(time.Second, rate, 0)
		if (w.buckets != nil) != (rate > 10) {
			t.Fatalf("%d buckets at %v a second", len(w.buckets), rate)
		}
		for i := 1; i <= 9; i++ { // 0.1 s .. 0.9 s
			w.addRTT(at(time.Duration(i)*100*time.Millisecond).UnixNano(), ms(float64(i)))
		}
		for _, c := range []struct {
			now       time.Duration
			samples   int
			p50, maxi time.Duration
		}{
			{1050 * time.Millisecond, 9, ms(5), ms(9)}, // (0.05 s, 1.05 s]
			{1500 * time.Millisecond, 4, ms(7), ms(9)}, // (0.5 s, 1.5 s]: 0.6 .. 0.9
			{1950 * time.Millisecond, 0, 0, 0},         // (0.95 s, 1.95 s]
		} {
			var s Stats
			w.stats(at(c.now), &s)
			if s.Samples != c.samples || s.LatencyP50 != c.p50 || s.LatencyMax != c.maxi {
				t.Errorf("%v a second, at %v: samples %d, p50 %v, max %v; want %d, %v, %v",
					rate, c.now, s.Samples, s.LatencyP50, s.LatencyMax, c.samples, c.p50, c.maxi)
			}
		}
	}
}

// Issue 10: a span shorter than the window slides by 10 ms ticks and sees
// only its own measurements; Covered says how far back the UE's
// measurements reach.
func TestWindowStatsOverShortSpan(t *testing.T) {
	w := newWindow(30*time.Second, 5, 0)
	// 5 a second: 10 ms for 10 s, then 150 ms for 2 s, then 10 ms again.
	for i := range 100 {
		rtt := ms(10)
		if i >= 50 && i < 60 {
			rtt = ms(150)
		}
		w.addRTT(at(time.Duration(i)*200*time.Millisecond).UnixNano(), rtt)
	}
	for _, c := range []struct {
		now, span     time.Duration
		samples       int
		p95           time.Duration
		covered       time.Duration
		wholeWindowed bool
	}{
		{11 * time.Second, time.Second, 5, ms(150), time.Second, false},                     // (10 s, 11 s]: the blip
		{12*time.Second + 900*time.Millisecond, time.Second, 5, ms(10), time.Second, false}, // (11.9 s, 12.9 s]: after it
		{12*time.Second + 100*time.Millisecond, 5 * time.Second, 25, ms(150), 5 * time.Second, false},
		{19 * time.Second, 0, 96, ms(150), 19 * time.Second, true}, // the window still shows it
	} {
		var s Stats
		w.statsOver(at(c.now), c.span, 0, &s)
		if s.Samples != c.samples || s.LatencyP95 != c.p95 || s.Covered != c.covered {
			t.Errorf("at %v over %v: samples %d, p95 %v, covered %v; want %d, %v, %v",
				c.now, c.span, s.Samples, s.LatencyP95, s.Covered, c.samples, c.p95, c.covered)
		}
	}
}

func TestWindowThroughputQuantilesAndNewestRun(t *testing.T) {
	w := newWindow(30*time.Second, 0, 2*time.Second) // 17 runs kept
	for i, bps := range []float64{8, 9, 1, 7, 6, 2, 8, 9, 10, 3} {
		w.addThroughput(at(time.Duration(i)*2*time.Second).UnixNano(), bps)
	}
	var s Stats
	w.statsOver(at(19*time.Second), 0, 0, &s)
	if s.ThroughputSamples != 10 || s.ThroughputP10 != 1 || s.ThroughputP50 != 7 || s.Throughput != 6.3 {
		t.Errorf("window: %d runs, p10 %v, p50 %v, mean %v; want 10, 1, 7, 6.3", s.ThroughputSamples, s.ThroughputP10, s.ThroughputP50, s.Throughput)
	}
	s = Stats{}
	w.statsOver(at(19*time.Second), 0, 3*time.Second, &s) // a step: the newest run alone
	if s.ThroughputSamples != 1 || s.Throughput != 3 || s.ThroughputP10 != 3 || s.ThroughputP50 != 3 {
		t.Errorf("step: %d runs, mean %v, p10 %v, p50 %v; want the newest run, 3", s.ThroughputSamples, s.Throughput, s.ThroughputP10, s.ThroughputP50)
	}
}
