package policy

import (
	"math"
	"time"
)

// Observation is what the policy knows about one UE at one tick. The daemon
// fills it from the monitor. A source with no samples (or, with
// Guards.StaleAfter set, a newest sample older than that) is "no data", and
// so is every condition on it.
//
// A condition reads the statistics that make its `for` mean "the UE has
// been bad (or good) for that long" (issue 10):
//   - latency_*, jitter, throughput*: Latency and Throughput, the newest
//     step (the last second or so, at least one round of the probe); each
//     condition's own clock counts how long it has held without a break.
//   - loss: BreachSpan or RecoverSpan, the measurements of the last `for`
//     of its list; it has held for as far back as they reach.
//   - any condition of a list with over: window: Window, timed as a step.
//
// It is passed by value and holds no pointers except Prom, so building one
// per UE per tick costs nothing; reuse one Prom map per UE.
type Observation struct {
	Latency    LatencyStats
	Throughput ThroughputStats
	// BreachSpan and RecoverSpan are the latency probes' statistics over
	// the last `for` of the rule's breach and recovery (see Rule.Spans);
	// LatencyStats.Covered says how far back they reach.
	BreachSpan, RecoverSpan LatencyStats
	// Window holds the window's statistics, for lists with over: window.
	Window struct {
		Latency    LatencyStats
		Throughput ThroughputStats
	}
	// Prom holds the prometheus-source metrics by name (the NAME in a
	// condition "prom.NAME > 3"). A missing key, or a NaN value, is no data.
	Prom map[string]PromSample
	// Before and During are, while the UE holds a session, its figures
	// over the breach `for` before the session was requested and since its
	// profile was granted (up to the window); empty otherwise, or when not
	// known (a session adopted at start). Read by if_no_improvement.
	Before, During Figures
}

// LatencyStats are the statistics of the latency probes (icmp, tcp, http)
// over some span. A lost probe is an endless round trip, slower than any
// threshold: P50, P95 and Max count it so, and are Endless (read as +Inf)
// when they fall on one; Mean and Jitter are over the answered probes,
// and +Inf too when every probe was lost (Loss == 1).
type LatencyStats struct {
	Samples int           // probes in the span, answered or lost; 0 means no data
	Age     time.Duration // since the newest sample
	Covered time.Duration // how far back before now the UE's measurements reach, up to the span
	Mean    time.Duration
	P50     time.Duration
	P95     time.Duration
	Max     time.Duration
	Jitter  time.Duration
	Loss    float64 // lost / Samples, 0..1
}

// Endless is the round trip of a lost probe in LatencyStats' P50, P95 and
// Max.
const Endless = time.Duration(math.MaxInt64)

// ThroughputStats are the statistics of the throughput probe's runs in a
// span: the mean and nearest-rank quantiles of their rates.
type ThroughputStats struct {
	Samples        int           // 0 means no data
	Age            time.Duration // since the newest sample
	BytesPerSecond float64
	P10, P50       float64 // bytes per second
}

// PromSample is one value read from the prometheus source.
type PromSample struct {
	Value float64
	Age   time.Duration // since it was scraped
}

// value returns the measured value of m in its base unit (seconds, ratio,
// bytes per second, plain number) from lat, tput or o.Prom, or ok=false
// when there is no data.
func (o *Observation) value(m metric, prom string, lat *LatencyStats, tput *ThroughputStats, staleAfter time.Duration) (v float64, ok bool) {
	fresh := func(samples int, age time.Duration) bool {
		return samples > 0 && (staleAfter <= 0 || age <= staleAfter)
	}
	switch m {
	case metricThroughput, metricThroughputP10, metricThroughputP50:
		if !fresh(tput.Samples, tput.Age) {
			return 0, false
		}
		switch m {
		case metricThroughputP10:
			return tput.P10, true
		case metricThroughputP50:
			return tput.P50, true
		}
		return tput.BytesPerSecond, true
	case metricProm:
		s, found := o.Prom[prom]
		if !found || math.IsNaN(s.Value) || (staleAfter > 0 && s.Age > staleAfter) {
			return 0, false
		}
		return s.Value, true
	}
	l := lat
	if !fresh(l.Samples, l.Age) {
		return 0, false
	}
	if m == metricLoss {
		return l.Loss, true
	}
	if l.Loss >= 1 {
		return math.Inf(1), true
	}
	var d time.Duration
	switch m {
	case metricLatencyMean:
		d = l.Mean
	case metricLatencyP50:
		d = l.P50
	case metricLatencyP95:
		d = l.P95
	case metricLatencyMax:
		d = l.Max
	case metricJitter:
		d = l.Jitter
	}
	if d == Endless {
		return math.Inf(1), true
	}
	return d.Seconds(), true
}
