package monitor

import (
	"math"
	"slices"
	"time"
)

// Stats is what one UE's window says at one moment. A UE with no
// measurements in the window has Samples+Lost == 0: that is "no data", which
// the policy must tell apart from "bad" (every packet lost is Lost > 0).
type Stats struct {
	Window time.Duration // length of the window these figures cover

	// LatencyProbe is the probe kind whose round trips feed the latency
	// figures: icmp if the UE has it, else tcp, else http; "" if none.
	LatencyProbe string
	Samples      int     // answered measurements (round trips) in the window
	Lost         int     // unanswered measurements in the window
	Loss         float64 // Lost / (Samples+Lost), 0..1; 0 without measurements

	LatencyMean time.Duration
	LatencyP50  time.Duration // nearest-rank quantiles over the answered round trips
	LatencyP95  time.Duration
	LatencyMax  time.Duration
	// LatencyP50Lost, LatencyP95Lost and LatencyMaxLost count each lost
	// measurement as an endless round trip: Endless when the quantile
	// falls on one. Rules read these (issue 10): the first probes lost to
	// a degradation are its first evidence, and a step of four lost and
	// one quick answer is not a 1 ms p95.
	LatencyP50Lost, LatencyP95Lost, LatencyMaxLost time.Duration
	// Jitter is the RFC 3550 interarrival jitter estimate over consecutive
	// round trips: J += (|D| - J) / 16.
	Jitter time.Duration

	// Throughput is the mean of the throughput samples (bytes per second)
	// taken within the throughput window, which is at least twice the
	// throughput probe's interval so a slow probe always has a sample in view.
	// ThroughputP10 and ThroughputP50 are their nearest-rank quantiles.
	Throughput        float64
	ThroughputP10     float64
	ThroughputP50     float64
	ThroughputSamples int

	// Covered is how far back before now the UE's measurements reach, up to
	// the length these figures cover: the policy counts a `for` as held
	// only as far back as measurements show it (issue 10).
	Covered time.Duration

	// LastSample is when the last measurement of any kind (answered, lost or
	// a throughput or query sample) completed; zero if there never was one.
	LastSample time.Time

	// Values holds the last value of each prometheus probe, in probe order.
	Values []Value
}

// Endless is the round trip of a lost measurement in the *Lost quantiles.
const Endless = time.Duration(math.MaxInt64)

// Value is the last sample read by one prometheus probe.
type Value struct {
	Name  string    // the probe's name
	Value float64   // NaN until the first successful query
	At    time.Time // zero until the first successful query
}

// Fixed memory bounds of a window.
const (
	maxBuckets = 60   // buckets of a window longer than a minute: 1/60 of it each
	minRing    = 8    // round trips
	maxRing    = 1024 // round trips: 8 KiB
	minTput    = 4    // throughput samples kept, at least
	maxTput    = 64
)

// tickNS is the time resolution of a ring entry: the spans shorter than the
// window (a step, a `for`) slide by it.
const tickNS = int64(10 * time.Millisecond)

// window keeps the measurements of one UE over a sliding time window in
// fixed memory, sized from the window length and the latency probe's rate:
// 10,000 UEs must fit in a few MiB (issue 3).
//
// Its core is a ring of the most recent measurements, 8 bytes each: the
// round trip in µs (or "lost") and when it completed, to 10 ms. The window
// figures count time slices of a 60th of the window: the slices in view
// cover between 59/60 of the window and all of it at any moment (whole-second slices left a 1 s window holding
// only what came since the second began, often nothing). The ring holds a
// whole window at the probe's rate and a second to spare, so every figure
// is exact: counts, loss, mean, max and the quantiles, over the
// measurements whose slice is within the window. (Probes never measure
// faster than their rate; if something did, the figures would cover its
// newest measurements.) Round trips are kept to the µs, so the latency
// figures are exact to the µs.
//
// A rate too high for the ring (more than maxRing measurements a window)
// adds buckets: one per time slice with counts, sum and max, which keep
// Samples, Lost, Loss, LatencyMean and LatencyMax exact, while the quantiles
// come from the newest maxRing measurements in the window.
type window struct {
	span  int64 // window length, ns
	width int64 // time slice, ns

	ring   []entry // oldest overwritten first
	next   int32   // next write position in ring
	filled int32   // entries written so far, up to len(ring)

	buckets []bucket // only for rates the ring cannot hold; indexed by slice mod len
	head    int64    // newest slice of the buckets

	jitter   float64 // ns
	prevRTT  int64   // ns; valid when havePrev
	havePrev bool
	last     int64 // UnixNano of the last measurement; 0 if none

	tputSpan int64
	tputN    int32        // how many throughput samples to keep
	tput     []tputSample // allocated by the first throughput sample
	tputNext int32
}

// entry is one measurement: the 10 ms tick it completed in (its low 32
// bits: they wrap after 497 days) and its round trip in µs, or lost.
type entry struct {
	tick  uint32
	rttUS uint32
}

// lost marks an unanswered measurement in entry.rttUS; round trips are
// capped one below (71 minutes).
const lost = math.MaxUint32

// bucket is one time slice when the ring cannot hold a window, 16 bytes.
// The counts saturate; the slice width keeps them below that at the
// window's rate (see sliceWidth).
type bucket struct {
	n, lost uint16
	maxUS   uint32
	sumUS   uint64
}

// maxPerBucket is what a bucket counts of answered (or of lost)
// measurements.
const maxPerBucket = math.MaxUint16

// noSlice marks buckets never written.
const noSlice = math.MinInt64

type tputSample struct {
	at  int64 // UnixNano; 0 if empty
	bps float64
}

// newWindow sizes a window of length span for measurements arriving at
// about rate per second and throughput samples every tputEvery.
func newWindow(span time.Duration, rate float64, tputEvery time.Duration) *window {
	w := new(window)
	w.init(span, rate, tputEvery)
	return w
}

// init sets up a zero window as newWindow does.
func (w *window) init(span time.Duration, rate float64, tputEvery time.Duration) {
	w.span, w.head = int64(span), noSlice
	w.resize(rate)
	w.setThroughput(tputEvery)
}

// setThroughput sizes the throughput samples for a probe every tputEvery:
// the throughput window's worth, for its quantiles.
func (w *window) setThroughput(tputEvery time.Duration) {
	w.tputSpan = max(w.span, 2*int64(tputEvery))
	n := int32(minTput)
	if tputEvery > 0 {
		n = int32(min(max(w.tputSpan/int64(tputEvery)+2, minTput), maxTput))
	}
	if n != w.tputN {
		old, oldNext := w.tput, int(w.tputNext)
		w.tputN, w.tput, w.tputNext = n, nil, 0
		for i := range old { // oldest first: from the old write position on
			if t := old[(oldNext+i)%len(old)]; t.at != 0 {
				w.addThroughputSample(t)
			}
		}
	}
}

// sliceWidth is a 60th of the window; for a window longer than a minute,
// narrower (more buckets) if a bucket would otherwise count more than
// maxPerBucket at rate per second, but never under 1 s.
func sliceWidth(span int64, rate float64) int64 {
	w := max((span+maxBuckets-1)/maxBuckets, 1)
	if rate > 0 && w > int64(time.Second) {
		if fit := int64(maxPerBucket / rate * float64(time.Second)); fit < w {
			w = max(fit/int64(time.Second)*int64(time.Second), int64(time.Second))
		}
	}
	return w
}

func (w *window) slicesInSpan() int64 {
	return (w.span + w.width - 1) / w.width
}

// ringSize is how many measurements a window holds at rate per second: its
// slices' worth and a second more, since a probe's packets of one interval
// may all land in one slice. Above maxRing the window needs buckets.
func (w *window) ringSize(rate float64) int {
	if rate <= 0 {
		return 0
	}
	// To the µs: the few ns a rounded-up slice width adds are no room for
	// another measurement.
	covered := math.Round(float64(w.slicesInSpan()*w.width)/1e3) / 1e6
	return int(max(math.Ceil(rate*covered)+math.Ceil(rate)+1, minRing))
}

// resize sizes the window for measurements at rate per second, keeping the
// newest ones. Without a latency probe (rate 0) it keeps none.
func (w *window) resize(rate float64) {
	// Slices of another width would mix times: start afresh (only when a
	// reload multiplies a probe's rate in a long window).
	if width := sliceWidth(w.span, rate); width != w.width {
		w.width = width
		w.ring, w.next, w.filled = nil, 0, 0
		w.buckets, w.head = nil, noSlice
	}
	n := w.ringSize(rate)
	switch {
	case n > maxRing && w.buckets == nil:
		// A second more than the span (at least a slice), as the ring
		// has: a measurement recorded just after a reader took its time
		// must not wipe the window of that reader.
		spare := max((int64(time.Second)+w.width-1)/w.width, 1)
		w.buckets, w.head = make([]bucket, w.slicesInSpan()+spare), noSlice
	case n <= maxRing:
		w.buckets, w.head = nil, noSlice
	}
	n = min(n, maxRing)
	if n == len(w.ring) {
		return
	}
	old := w.ordered()
	if len(old) > n {
		old = old[len(old)-n:]
	}
	w.ring = make([]entry, n)
	copy(w.ring, old)
	w.filled = int32(len(old))
	w.next = int32(len(old) % max(n, 1))
}

// ordered returns the written entries oldest first (allocates; reload
// only).
func (w *window) ordered() []entry {
	if int(w.filled) < len(w.ring) {
		return slices.Clone(w.ring[:w.filled])
	}
	out := make([]entry, 0, len(w.ring))
	out = append(out, w.ring[w.next:]...)
	return append(out, w.ring[:w.next]...)
}

func (w *window) slice(ns int64) int64 { return floorDiv(ns, w.width) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a < 0 && a%b != 0 {
		q--
	}
	return q
}

// add records a measurement completed at ns: a round trip in µs, or lost.
func (w *window) add(ns int64, rttUS uint32) {
	s := w.slice(ns)
	if w.buckets != nil {
		b := w.bucket(s)
		if b == nil {
			return // older than the buckets hold
		}
		switch {
		case rttUS == lost:
			b.lost = min(b.lost+1, maxPerBucket)
		case b.n < maxPerBucket:
			b.n++
			b.sumUS += uint64(rttUS)
			b.maxUS = max(b.maxUS, rttUS)
		}
	}
	if len(w.ring) == 0 {
		return
	}
	w.ring[w.next] = entry{tick: uint32(floorDiv(ns, tickNS)), rttUS: rttUS}
	w.next++
	if int(w.next) == len(w.ring) {
		w.next = 0
	}
	w.filled = min(w.filled+1, int32(len(w.ring)))
}

// bucket returns the bucket of slice s, moving the buckets forward (and
// clearing what they pass) when s is newer than any before; nil when s is
// older than they hold.
func (w *window) bucket(s int64) *bucket {
	n := int64(len(w.buckets))
	if w.head == noSlice || s-w.head >= n {
		clear(w.buckets)
		w.head = s
	}
	for w.head < s {
		w.head++
		w.buckets[mod(w.head, n)] = bucket{}
	}
	if s <= w.head-n {
		return nil
	}
	return &w.buckets[mod(s, n)]
}

func mod(a, n int64) int64 { return ((a % n) + n) % n }

// addRTT records an answered measurement completed at ns.
func (w *window) addRTT(ns int64, rtt time.Duration) {
	d := max(int64(rtt), 0)
	w.add(ns, uint32(min(d/1000, lost-1)))
	if w.havePrev {
		diff := math.Abs(float64(d - w.prevRTT))
		w.jitter += (diff - w.jitter) / 16
	}
	w.prevRTT, w.havePrev = d, true
	w.last = max(w.last, ns)
}

// addLost records an unanswered measurement that timed out at ns.
func (w *window) addLost(ns int64) {
	w.add(ns, lost)
	w.last = max(w.last, ns)
}

func (w *window) addThroughput(ns int64, bps float64) {
	w.addThroughputSample(tputSample{at: ns, bps: bps})
	w.last = max(w.last, ns)
}

func (w *window) addThroughputSample(t tputSample) {
	if w.tput == nil {
		w.tput = make([]tputSample, max(w.tputN, minTput))
	}
	w.tput[w.tputNext] = t
	w.tputNext = (w.tputNext + 1) % int32(len(w.tput))
}

// touch notes a measurement that feeds no window figure (a query value).
func (w *window) touch(ns int64) { w.last = max(w.last, ns) }

// stats fills s with the figures of the window ending at now. It does not
// allocate.
func (w *window) stats(now time.Time, s *Stats) { w.statsOver(now, 0, 0, s) }

// statsOver fills s with the figures of the measurements of the last span
// before now, or of the window if span is 0 or not shorter; the throughput
// figures cover tputSpan: 0 is the throughput window, a shorter one holds
// only the newest run in it (one run stands for the link until the next;
// an older one would hide a change). Spans shorter than the
// window slide by 10 ms ticks over the ring: with buckets (a rate the ring
// cannot hold a window of) they cover at most its newest measurements. It
// does not allocate.
func (w *window) statsOver(now time.Time, span, tputSpan time.Duration, s *Stats) {
	ns := now.UnixNano()
	whole := span <= 0 || int64(span) >= w.span
	if whole {
		span = time.Duration(w.span)
	}
	newestRun := tputSpan > 0 && int64(tputSpan) < w.tputSpan
	if tputSpan <= 0 {
		tputSpan = time.Duration(w.tputSpan)
	}
	s.Window = span
	nowTick := floorDiv(ns, tickNS)
	cur := w.slice(ns)
	slicesIn := w.slicesInSpan()
	// Oldest tick in a short span: measurements completed after now-span.
	fromTick := floorDiv(ns-int64(span), tickNS) + 1

	// The measurements in the span up to now; later ones (recorded while
	// now was being read) are not in it yet.
	var buf [maxRing]uint32
	rtts := buf[:0]
	var n, nLost, sumUS uint64
	var ringLost int // lost in rtts' span: the quantiles' lost tail
	var maxUS uint32
	oldest := int64(math.MaxInt64)
	for _, e := range w.ring[:w.filled] {
		age := uint32(nowTick) - e.tick // ticks; a future entry wraps past half the range
		if age > math.MaxUint32/2 {
			continue
		}
		tick := nowTick - int64(age)
		oldest = min(oldest, tick)
		if whole {
			if cur-w.slice(tick*tickNS) >= slicesIn {
				continue
			}
		} else if tick < fromTick {
			continue
		}
		if e.rttUS == lost {
			nLost++
			ringLost++
			continue
		}
		rtts = append(rtts, e.rttUS)
		n++
		sumUS += uint64(e.rttUS)
		maxUS = max(maxUS, e.rttUS)
	}
	if whole && w.buckets != nil && w.head != noSlice {
		n, nLost, sumUS, maxUS = 0, 0, 0, 0
		nb := int64(len(w.buckets))
		for sl := max(w.head-nb+1, cur-slicesIn+1); sl <= min(w.head, cur); sl++ {
			b := &w.buckets[mod(sl, nb)]
			n += uint64(b.n)
			nLost += uint64(b.lost)
			sumUS += b.sumUS
			maxUS = max(maxUS, b.maxUS)
		}
	}
	s.Samples, s.Lost = int(n), int(nLost)
	if n+nLost > 0 {
		s.Loss = float64(nLost) / float64(n+nLost)
		s.Covered = min(span, time.Duration(ns-oldest*tickNS))
	}
	if n > 0 {
		s.LatencyMean = time.Duration(sumUS * 1000 / n)
		s.LatencyMax = time.Duration(maxUS) * time.Microsecond
	}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		s.LatencyP50 = time.Duration(rtts[rank(len(rtts), 0.50)]) * time.Microsecond
		s.LatencyP95 = time.Duration(rtts[rank(len(rtts), 0.95)]) * time.Microsecond
	}
	if all := len(rtts) + ringLost; all > 0 {
		// The lost ones sort after every answer.
		q := func(p float64) time.Duration {
			if i := rank(all, p); i < len(rtts) {
				return time.Duration(rtts[i]) * time.Microsecond
			}
			return Endless
		}
		s.LatencyP50Lost, s.LatencyP95Lost, s.LatencyMaxLost = q(0.50), q(0.95), q(1)
	}
	s.Jitter = time.Duration(w.jitter)

	if w.tput != nil {
		var tbuf [maxTput]float64
		rates := tbuf[:0]
		var tsum float64
		var newest int64
		for _, t := range w.tput {
			if t.at == 0 || t.at <= ns-int64(tputSpan) || t.at > ns {
				continue
			}
			if newestRun {
				if t.at > newest {
					newest, tsum, rates = t.at, t.bps, append(rates[:0], t.bps)
				}
				continue
			}
			tsum += t.bps
			rates = append(rates, t.bps)
		}
		if s.ThroughputSamples = len(rates); len(rates) > 0 {
			s.Throughput = tsum / float64(len(rates))
			slices.Sort(rates)
			s.ThroughputP10 = rates[rank(len(rates), 0.10)]
			s.ThroughputP50 = rates[rank(len(rates), 0.50)]
		}
	}
	if w.last != 0 {
		s.LastSample = time.Unix(0, w.last)
	}
}

// rank is the index of the nearest-rank q-quantile in n sorted values.
func rank(n int, q float64) int {
	i := int(math.Ceil(q*float64(n))) - 1
	return min(max(i, 0), n-1)
}
