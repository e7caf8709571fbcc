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
	LatencyP50  time.Duration // nearest-rank quantiles over the window
	LatencyP95  time.Duration
	LatencyMax  time.Duration
	// Jitter is the RFC 3550 interarrival jitter estimate over consecutive
	// round trips: J += (|D| - J) / 16.
	Jitter time.Duration

	// Throughput is the mean of the throughput samples (bytes per second)
	// taken within the throughput window, which is at least twice the
	// throughput probe's interval so a slow probe always has a sample in view.
	Throughput        float64
	ThroughputSamples int

	// LastSample is when the last measurement of any kind (answered, lost or
	// a throughput or query sample) completed; zero if there never was one.
	LastSample time.Time

	// Values holds the last value of each prometheus probe, in probe order.
	Values []Value
}

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
	tputRing   = 4
)

// window keeps the measurements of one UE over a sliding time window in
// fixed memory, sized from the window length and the latency probe's rate:
// 10,000 UEs must fit in a few MiB (issue 3).
//
// Its core is a ring of the most recent measurements, 8 bytes each: the
// round trip in µs (or "lost") and the time slice it completed in, a 60th
// of the window. The slices in view cover between 59/60 of the window and
// all of it at any moment (whole-second slices left a 1 s window holding
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
	tput     *[tputRing]tputSample // allocated by the first throughput sample
	tputNext int32
}

// entry is one measurement: the time slice it completed in (its low 32
// bits: they wrap after 2 years with the shortest window, 1 s) and its
// round trip in µs, or lost.
type entry struct {
	slice uint32
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
	w.tputSpan = max(int64(span), 2*int64(tputEvery))
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

func (w *window) slice(ns int64) int64 {
	s := ns / w.width
	if ns < 0 && ns%w.width != 0 {
		s--
	}
	return s
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
	w.ring[w.next] = entry{slice: uint32(s), rttUS: rttUS}
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
	if w.tput == nil {
		w.tput = new([tputRing]tputSample)
	}
	w.tput[w.tputNext] = tputSample{at: ns, bps: bps}
	w.tputNext = (w.tputNext + 1) % tputRing
	w.last = max(w.last, ns)
}

// touch notes a measurement that feeds no window figure (a query value).
func (w *window) touch(ns int64) { w.last = max(w.last, ns) }

// stats fills s with the figures of the window ending at now. It does not
// allocate.
func (w *window) stats(now time.Time, s *Stats) {
	ns := now.UnixNano()
	cur := w.slice(ns)
	span := w.slicesInSpan()
	s.Window = time.Duration(w.span)

	// The measurements whose slice is one of the span's up to cur; later
	// ones (recorded while now was being read) are not in it yet.
	var buf [maxRing]uint32
	rtts := buf[:0]
	var n, nLost, sumUS uint64
	var maxUS uint32
	for _, e := range w.ring[:w.filled] {
		if age := uint32(cur) - e.slice; age >= uint32(span) {
			continue
		}
		if e.rttUS == lost {
			nLost++
			continue
		}
		rtts = append(rtts, e.rttUS)
		n++
		sumUS += uint64(e.rttUS)
		maxUS = max(maxUS, e.rttUS)
	}
	if w.buckets != nil && w.head != noSlice {
		n, nLost, sumUS, maxUS = 0, 0, 0, 0
		nb := int64(len(w.buckets))
		for sl := max(w.head-nb+1, cur-span+1); sl <= min(w.head, cur); sl++ {
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
	s.Jitter = time.Duration(w.jitter)

	if w.tput != nil {
		var tsum float64
		for _, t := range w.tput {
			if t.at != 0 && t.at > ns-w.tputSpan && t.at <= ns {
				tsum += t.bps
				s.ThroughputSamples++
			}
		}
		if s.ThroughputSamples > 0 {
			s.Throughput = tsum / float64(s.ThroughputSamples)
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
