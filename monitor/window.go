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

// Fixed memory bounds of a window. The bucket ring holds counts per time
// slice; the sample ring holds recent round trips for the quantiles.
const (
	maxBuckets    = 60
	minSampleRing = 16
	maxSampleRing = 1024
	tputRing      = 4
)

// window keeps the measurements of one UE over a sliding time window in
// fixed memory: a ring of time buckets for counts, mean and max, and a ring
// of the most recent round trips for the quantiles, sized from the latency
// probe's rate so it covers the whole window.
type window struct {
	span    int64 // window length, ns
	width   int64 // bucket width, ns
	buckets []bucket
	samples []sample // ring; the quantiles use those still inside the window
	next    int      // next write position in samples
	filled  int      // samples written so far, up to len(samples)

	jitter   float64 // ns
	prevRTT  int64   // ns; valid when havePrev
	havePrev bool
	last     int64 // UnixNano of the last measurement; 0 if none

	tputSpan int64
	tput     [tputRing]tputSample
	tputNext int
}

type bucket struct {
	epoch int64 // which time slice this bucket holds; stale when older
	n     uint32
	lost  uint32
	sum   int64 // ns
	max   int64 // ns
}

// sample is 8 bytes: the low bits of its bucket epoch and the RTT in µs.
type sample struct {
	epoch uint32
	rttUS uint32
}

type tputSample struct {
	at  int64 // UnixNano; 0 if empty
	bps float64
}

// newWindow sizes a window of length span for round trips arriving at about
// rate per second and throughput samples every tputEvery.
func newWindow(span time.Duration, rate float64, tputEvery time.Duration) *window {
	w := &window{span: int64(span)}
	w.width = int64(time.Second)
	if span > maxBuckets*time.Second {
		w.width = (int64(span) + maxBuckets - 1) / maxBuckets
	}
	w.buckets = make([]bucket, w.bucketsInSpan())
	for i := range w.buckets {
		w.buckets[i].epoch = math.MinInt64
	}
	w.resizeSamples(rate)
	w.tputSpan = max(int64(span), 2*int64(tputEvery))
	return w
}

func (w *window) bucketsInSpan() int64 {
	return (w.span + w.width - 1) / w.width
}

// resizeSamples sizes the quantile ring for round trips at rate per second
// (25% headroom), keeping the newest samples. Without a latency probe the
// ring is empty.
func (w *window) resizeSamples(rate float64) {
	n := 0
	if rate > 0 {
		n = int(math.Ceil(rate * float64(w.span) / float64(time.Second) * 1.25))
		n = min(max(n, minSampleRing), maxSampleRing)
	}
	if n == len(w.samples) {
		return
	}
	old := w.ordered()
	w.samples = make([]sample, n)
	if len(old) > n {
		old = old[len(old)-n:]
	}
	copy(w.samples, old)
	w.filled = len(old)
	w.next = len(old) % max(n, 1)
}

// ordered returns the written samples oldest first (allocates; reload only).
func (w *window) ordered() []sample {
	if w.filled < len(w.samples) {
		return slices.Clone(w.samples[:w.filled])
	}
	out := make([]sample, 0, len(w.samples))
	out = append(out, w.samples[w.next:]...)
	return append(out, w.samples[:w.next]...)
}

func (w *window) epoch(ns int64) int64 {
	e := ns / w.width
	if ns < 0 && ns%w.width != 0 {
		e--
	}
	return e
}

func (w *window) bucket(e int64) *bucket {
	n := int64(len(w.buckets))
	b := &w.buckets[((e%n)+n)%n]
	if b.epoch < e {
		*b = bucket{epoch: e}
	}
	if b.epoch != e {
		return nil // older than everything the ring holds
	}
	return b
}

// addRTT records an answered measurement completed at ns.
func (w *window) addRTT(ns int64, rtt time.Duration) {
	d := int64(rtt)
	d = max(d, 0)
	e := w.epoch(ns)
	if b := w.bucket(e); b != nil {
		b.n++
		b.sum += d
		b.max = max(b.max, d)
	}
	if len(w.samples) > 0 {
		w.samples[w.next] = sample{epoch: uint32(e), rttUS: uint32(min(d/1000, math.MaxUint32))}
		w.next++
		if w.next == len(w.samples) {
			w.next = 0
		}
		w.filled = min(w.filled+1, len(w.samples))
	}
	if w.havePrev {
		diff := math.Abs(float64(d - w.prevRTT))
		w.jitter += (diff - w.jitter) / 16
	}
	w.prevRTT, w.havePrev = d, true
	w.last = max(w.last, ns)
}

// addLost records an unanswered measurement that timed out at ns.
func (w *window) addLost(ns int64) {
	if b := w.bucket(w.epoch(ns)); b != nil {
		b.lost++
	}
	w.last = max(w.last, ns)
}

func (w *window) addThroughput(ns int64, bps float64) {
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
	cur := w.epoch(ns)
	oldest := cur - w.bucketsInSpan() + 1
	s.Window = time.Duration(w.span)

	var n, lost uint32
	var sum, mx int64
	for i := range w.buckets {
		b := &w.buckets[i]
		if b.epoch < oldest || b.epoch > cur {
			continue
		}
		n += b.n
		lost += b.lost
		sum += b.sum
		mx = max(mx, b.max)
	}
	s.Samples, s.Lost = int(n), int(lost)
	if n+lost > 0 {
		s.Loss = float64(lost) / float64(n+lost)
	}
	if n > 0 {
		s.LatencyMean = time.Duration(sum / int64(n))
		s.LatencyMax = time.Duration(mx)
	}

	var buf [maxSampleRing]uint32
	rtts := buf[:0]
	span := uint32(cur - oldest)
	for _, smp := range w.samples[:w.filled] {
		if uint32(cur)-smp.epoch <= span {
			rtts = append(rtts, smp.rttUS)
		}
	}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		s.LatencyP50 = time.Duration(rtts[rank(len(rtts), 0.50)]) * time.Microsecond
		s.LatencyP95 = time.Duration(rtts[rank(len(rtts), 0.95)]) * time.Microsecond
	}
	s.Jitter = time.Duration(w.jitter)

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
	if w.last != 0 {
		s.LastSample = time.Unix(0, w.last)
	}
}

// rank is the index of the nearest-rank q-quantile in n sorted values.
func rank(n int, q float64) int {
	i := int(math.Ceil(q*float64(n))) - 1
	return min(max(i, 0), n-1)
}
