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
// slice; the round-trip ring holds recent round trips for the quantiles.
const (
	maxBuckets    = 60
	minSampleRing = 8
	maxSampleRing = 1024
	tputRing      = 4
)

// noEpoch marks a bucket ring that was never written.
const noEpoch = math.MinInt64

// window keeps the measurements of one UE over a sliding time window in
// fixed memory, sized from the window length and the latency probe's rate
// (issue 3: 10,000 UEs in a few MiB):
//   - a ring of time buckets (1 s each up to a 60 s window) with exact
//     counts, sum and max, which give Samples, Lost, Loss, LatencyMean and
//     LatencyMax;
//   - a ring of the most recent round trips (4 bytes each), big enough for
//     the whole window at the probe's rate, for the quantiles.
//
// Round trips are kept to the µs, so every latency figure is exact to the
// µs (the mean is that of the round trips cut to the µs).
//
// The round-trip ring carries no times: the samples in the window are the
// newest ones, as many as the window's buckets count (after skipping those
// counted in buckets newer than the time asked about). Measurements arrive
// in time order, except for microseconds around a bucket edge, which can
// move one sample across the window's edge in the quantiles only.
type window struct {
	span  int64 // window length, ns
	width int64 // bucket width, ns
	head  int64 // epoch of the newest bucket; the ring holds head-len+1..head

	buckets []bucket // indexed by epoch mod len; empty without a latency probe
	rtts    []uint32 // ring of round trips, µs, oldest overwritten first
	next    int32    // next write position in rtts
	filled  int32    // round trips written so far, up to len(rtts)

	jitter   float64 // ns
	prevRTT  int64   // ns; valid when havePrev
	havePrev bool
	last     int64 // UnixNano of the last measurement; 0 if none

	tputSpan int64
	tput     *[tputRing]tputSample // allocated by the first throughput sample
	tputNext int32
}

// bucket is one time slice of the window, 16 bytes. Round trips are kept
// to the µs, as in the round-trip ring. The counts saturate; the bucket
// width keeps them below that at the window's rate (see bucketWidth).
type bucket struct {
	n, lost uint16
	maxUS   uint32
	sumUS   uint64
}

// maxPerBucket is what a bucket counts of answered (or of lost)
// measurements.
const maxPerBucket = math.MaxUint16

type tputSample struct {
	at  int64 // UnixNano; 0 if empty
	bps float64
}

// newWindow sizes a window of length span for round trips arriving at about
// rate per second and throughput samples every tputEvery.
func newWindow(span time.Duration, rate float64, tputEvery time.Duration) *window {
	w := &window{span: int64(span), head: noEpoch}
	w.resizeSamples(rate)
	w.tputSpan = max(int64(span), 2*int64(tputEvery))
	return w
}

// bucketWidth is 1 s, or a 60th of a window longer than a minute; narrower
// (more buckets) if a bucket would otherwise count more than maxPerBucket
// at rate per second, but never under 1 s.
func bucketWidth(span int64, rate float64) int64 {
	w := int64(time.Second)
	if span > maxBuckets*int64(time.Second) {
		w = (span + maxBuckets - 1) / maxBuckets
	}
	if rate > 0 {
		if fit := int64(maxPerBucket / rate * float64(time.Second)); fit < w {
			w = max(fit/int64(time.Second)*int64(time.Second), int64(time.Second))
		}
	}
	return w
}

func (w *window) bucketsInSpan() int64 {
	return (w.span + w.width - 1) / w.width
}

// ringSize is how many round trips the window holds at rate per second: one
// second more than the window's buckets cover, since a probe's packets of
// one interval may all land in one bucket.
func (w *window) ringSize(rate float64) int {
	if rate <= 0 {
		return 0
	}
	covered := float64(w.bucketsInSpan()*w.width) / float64(time.Second)
	n := math.Ceil(rate*covered) + math.Ceil(rate)
	return int(min(max(n, minSampleRing), maxSampleRing))
}

// resizeSamples sizes the round-trip ring for rate per second, keeping the
// newest samples. Without a latency probe the ring is empty.
func (w *window) resizeSamples(rate float64) {
	// Buckets of another width would mix times: start them afresh (only
	// when a reload multiplies a probe's rate).
	if width := bucketWidth(w.span, rate); width != w.width || rate > 0 && len(w.buckets) == 0 {
		w.width = width
		w.buckets = nil
		if rate > 0 {
			w.buckets = make([]bucket, w.bucketsInSpan())
		}
		w.head = noEpoch
		w.rtts, w.next, w.filled = nil, 0, 0
	}
	n := w.ringSize(rate)
	if n == len(w.rtts) {
		return
	}
	old := w.ordered()
	if len(old) > n {
		old = old[len(old)-n:]
	}
	w.rtts = make([]uint32, n)
	copy(w.rtts, old)
	w.filled = int32(len(old))
	w.next = int32(len(old) % max(n, 1))
}

// ordered returns the written round trips oldest first (allocates; reload
// only).
func (w *window) ordered() []uint32 {
	if int(w.filled) < len(w.rtts) {
		return slices.Clone(w.rtts[:w.filled])
	}
	out := make([]uint32, 0, len(w.rtts))
	out = append(out, w.rtts[w.next:]...)
	return append(out, w.rtts[:w.next]...)
}

func (w *window) epoch(ns int64) int64 {
	e := ns / w.width
	if ns < 0 && ns%w.width != 0 {
		e--
	}
	return e
}

// bucket returns the bucket of epoch e, moving the ring forward (and
// clearing what it passes) when e is newer than any before; nil when e is
// older than the ring holds.
func (w *window) bucket(e int64) *bucket {
	n := int64(len(w.buckets))
	if n == 0 {
		return nil
	}
	if w.head == noEpoch || e-w.head >= n {
		clear(w.buckets)
		w.head = e
	}
	for w.head < e {
		w.head++
		w.buckets[mod(w.head, n)] = bucket{}
	}
	if e <= w.head-n {
		return nil
	}
	return &w.buckets[mod(e, n)]
}

func mod(a, n int64) int64 { return ((a % n) + n) % n }

// addRTT records an answered measurement completed at ns.
func (w *window) addRTT(ns int64, rtt time.Duration) {
	d := max(int64(rtt), 0)
	us := uint32(min(d/1000, math.MaxUint32))
	if b := w.bucket(w.epoch(ns)); b != nil && b.n < maxPerBucket {
		b.n++
		b.sumUS += uint64(us)
		b.maxUS = max(b.maxUS, us)
		if len(w.rtts) > 0 {
			w.rtts[w.next] = us
			w.next++
			if int(w.next) == len(w.rtts) {
				w.next = 0
			}
			w.filled = min(w.filled+1, int32(len(w.rtts)))
		}
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
	if b := w.bucket(w.epoch(ns)); b != nil && b.lost < maxPerBucket {
		b.lost++
	}
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
	cur := w.epoch(ns)
	oldest := cur - w.bucketsInSpan() + 1
	s.Window = time.Duration(w.span)

	// in counts the round trips in the window, newer those in buckets after
	// now (a sample recorded while now was being read).
	var in, newer, lost, sumUS uint64
	var maxUS uint32
	if n := int64(len(w.buckets)); n > 0 && w.head != noEpoch {
		for e := max(w.head-n+1, oldest); e <= w.head; e++ {
			b := &w.buckets[mod(e, n)]
			if e > cur {
				newer += uint64(b.n)
				continue
			}
			in += uint64(b.n)
			lost += uint64(b.lost)
			sumUS += b.sumUS
			maxUS = max(maxUS, b.maxUS)
		}
	}
	s.Samples, s.Lost = int(in), int(lost)
	if in+lost > 0 {
		s.Loss = float64(lost) / float64(in+lost)
	}
	if in > 0 {
		s.LatencyMean = time.Duration(sumUS * 1000 / in)
		s.LatencyMax = time.Duration(maxUS) * time.Microsecond
	}

	// The window's round trips are the ring's newest, past the newer ones.
	filled := uint64(w.filled)
	k := min(in, filled-min(newer, filled))
	if k > 0 {
		var buf [maxSampleRing]uint32
		rtts := buf[:k]
		size := int64(len(w.rtts))
		start := int64(w.next) - int64(min(newer, filled)) - int64(k)
		for i := range rtts {
			rtts[i] = w.rtts[mod(start+int64(i), size)]
		}
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
