package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// metric names one statistic a condition can test.
type metric uint8

const (
	metricLatencyMean metric = iota
	metricLatencyP50
	metricLatencyP95
	metricLatencyMax
	metricJitter
	metricLoss
	metricThroughput
	metricThroughputP10
	metricThroughputP50
	metricProm // a named prometheus-source metric
)

var metricNames = [...]string{
	metricLatencyMean:   "latency_mean",
	metricLatencyP50:    "latency_p50",
	metricLatencyP95:    "latency_p95",
	metricLatencyMax:    "latency_max",
	metricJitter:        "jitter",
	metricLoss:          "loss",
	metricThroughput:    "throughput",
	metricThroughputP10: "throughput_p10",
	metricThroughputP50: "throughput_p50",
}

// promPrefix introduces a prometheus-source metric: "prom.app_bitrate".
// Prometheus names never contain a dot, so the prefix cannot be ambiguous.
const promPrefix = "prom."

const knownMetrics = "latency_mean, latency_p50, latency_p95, latency_max, jitter, loss, throughput, throughput_p10, throughput_p50, prom.<name>"

// isThroughput reports whether m is a rate in bytes per second.
func (m metric) isThroughput() bool {
	return m == metricThroughput || m == metricThroughputP10 || m == metricThroughputP50
}

// source says which statistics a condition reads (see Observation).
type source uint8

const (
	// srcStep: the statistics of the newest step; the condition's own
	// timer counts how long it has held without a break.
	srcStep source = iota
	// srcSpan: the statistics over the last `for` of the condition's list
	// (loss: a ratio means nothing over a few packets); the condition has
	// held as long as those measurements reach back, up to the `for`.
	srcSpan
	// srcWindow: the window's statistics (over: window), timed as srcStep.
	srcWindow
)

type op uint8

const (
	opLT op = iota
	opLE
	opGT
	opGE
)

var opText = [...]string{opLT: "<", opLE: "<=", opGT: ">", opGE: ">="}

// condition is one compiled "metric op threshold".
type condition struct {
	text      string // normalised: "latency_p95 > 80ms"
	metric    metric
	prom      string // the prometheus name when metric == metricProm
	op        op
	threshold float64 // base unit: seconds, ratio, bytes per second, number
	raw       string  // the threshold as written: "80ms"
	src       source
}

func (c *condition) name() string {
	if c.metric == metricProm {
		return promPrefix + c.prom
	}
	return metricNames[c.metric]
}

// holds reports whether the measured value v meets the condition.
func (c *condition) holds(v float64) bool {
	switch c.op {
	case opLT:
		return v < c.threshold
	case opLE:
		return v <= c.threshold
	case opGT:
		return v > c.threshold
	default:
		return v >= c.threshold
	}
}

// format writes a measured value of this condition's metric for people.
func (c *condition) format(v float64) string {
	switch c.metric {
	case metricLoss:
		return FormatRatio(v)
	case metricThroughput, metricThroughputP10, metricThroughputP50:
		return FormatRate(v)
	case metricProm:
		return strconv.FormatFloat(v, 'g', 4, 64)
	default:
		return formatSeconds(v)
	}
}

// parseCondition compiles "latency_p95 > 80ms", "loss > 2%",
// "throughput < 5Mbps", "prom.app_bitrate < 3e6".
func parseCondition(s string) (condition, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexAny(t, "<>=!")
	if i < 0 {
		return condition{}, fmt.Errorf("no comparison: write metric, operator, threshold, e.g. \"latency_p95 > 80ms\"")
	}
	name := strings.TrimSpace(t[:i])
	rest := t[i:]
	var c condition
	switch {
	case strings.HasPrefix(rest, "<="):
		c.op, rest = opLE, rest[2:]
	case strings.HasPrefix(rest, ">="):
		c.op, rest = opGE, rest[2:]
	case strings.HasPrefix(rest, "<"):
		c.op, rest = opLT, rest[1:]
	case strings.HasPrefix(rest, ">"):
		c.op, rest = opGT, rest[1:]
	default:
		return condition{}, fmt.Errorf("operator must be <, <=, > or >= (equality of measured values is never exact)")
	}
	if strings.ContainsAny(rest, "<>=!") {
		return condition{}, fmt.Errorf("one comparison per condition; combine several with any/all")
	}
	val := strings.TrimSpace(rest)
	if name == "" {
		return condition{}, fmt.Errorf("no metric before %q (known: %s)", opText[c.op], knownMetrics)
	}
	if val == "" {
		return condition{}, fmt.Errorf("no threshold after %q", opText[c.op])
	}
	if err := c.setMetric(name); err != nil {
		return condition{}, err
	}
	var err error
	switch c.metric {
	case metricLoss:
		c.threshold, err = ParseRatio(val)
	case metricThroughput, metricThroughputP10, metricThroughputP50:
		c.threshold, err = ParseRate(val)
	case metricProm:
		c.threshold, err = ParseNumber(val)
	default:
		var d time.Duration
		d, err = ParseDuration(val)
		c.threshold = d.Seconds()
	}
	if err != nil {
		return condition{}, fmt.Errorf("threshold of %s: %w", c.name(), err)
	}
	c.raw = val
	c.text = c.name() + " " + opText[c.op] + " " + val
	iv := c.interval()
	switch dom := domainOf(c.metric); {
	case iv.empty():
		return condition{}, fmt.Errorf("can never hold (%s is never %s %s)", c.name(), opText[c.op], val)
	case iv == dom:
		return condition{}, fmt.Errorf("always holds (%s is always %s %s)", c.name(), opText[c.op], val)
	}
	return c, nil
}

func (c *condition) setMetric(name string) error {
	if p, ok := strings.CutPrefix(name, promPrefix); ok {
		if !validPromName(p) {
			return fmt.Errorf("%q is not a prometheus metric name (letters, digits, _ and :, not starting with a digit)", p)
		}
		c.metric, c.prom = metricProm, p
		return nil
	}
	for m, n := range metricNames {
		if n == name {
			c.metric = metric(m)
			return nil
		}
	}
	return fmt.Errorf("unknown metric %q (known: %s)", name, knownMetrics)
}

func validPromName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// interval is a set of values on the real line, used to check at compile
// time whether a breach and a recovery condition can both hold.
type interval struct {
	lo, hi         float64
	loOpen, hiOpen bool
}

func (a interval) empty() bool {
	return a.lo > a.hi || (a.lo == a.hi && (a.loOpen || a.hiOpen))
}

func (a interval) intersect(b interval) interval {
	r := a
	if b.lo > r.lo || (b.lo == r.lo && b.loOpen) {
		r.lo, r.loOpen = b.lo, b.loOpen
	}
	if b.hi < r.hi || (b.hi == r.hi && b.hiOpen) {
		r.hi, r.hiOpen = b.hi, b.hiOpen
	}
	return r
}

// domainOf is the range a metric's values can take: latencies reach +Inf
// when every probe is lost.
func domainOf(m metric) interval {
	switch m {
	case metricLoss:
		return interval{lo: 0, hi: 1}
	case metricProm:
		return interval{lo: math.Inf(-1), hi: math.Inf(1)}
	default:
		return interval{lo: 0, hi: math.Inf(1)}
	}
}

// interval is the set of values of the metric's domain where c holds.
func (c *condition) interval() interval {
	inf := math.Inf(1)
	var iv interval
	switch c.op {
	case opLT:
		iv = interval{lo: -inf, hi: c.threshold, hiOpen: true}
	case opLE:
		iv = interval{lo: -inf, hi: c.threshold}
	case opGT:
		iv = interval{lo: c.threshold, hi: inf, loOpen: true}
	default:
		iv = interval{lo: c.threshold, hi: inf}
	}
	return domainOf(c.metric).intersect(iv)
}

// tri is a three-valued truth: a condition on a source with no data is
// unknown, and any/all combine it the way SQL and Kleene logic do.
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

// condSet is a compiled any/all list with its `for`.
type condSet struct {
	all     bool
	recover bool // the recovery list: its span statistics are Observation.RecoverSpan
	window  bool // over: window
	conds   []condition
	hold    time.Duration // the `for`
}

// value returns what condition c of s reads in o.
func (s *condSet) value(c *condition, o *Observation, staleAfter time.Duration) (float64, bool) {
	lat, tput := &o.Latency, &o.Throughput
	switch c.src {
	case srcWindow:
		lat, tput = &o.Window.Latency, &o.Window.Throughput
	case srcSpan:
		lat = &o.BreachSpan
		if s.recover {
			lat = &o.RecoverSpan
		}
	}
	return o.value(c.metric, c.prom, lat, tput, staleAfter)
}

// evalCond is the three-valued outcome of condition i of s.
func (s *condSet) evalCond(i int, o *Observation, staleAfter time.Duration) tri {
	c := &s.conds[i]
	v, ok := s.value(c, o, staleAfter)
	switch {
	case !ok:
		return triUnknown
	case c.holds(v):
		return triTrue
	}
	return triFalse
}

func (s *condSet) eval(o *Observation, staleAfter time.Duration) tri {
	unknown := false
	for i := range s.conds {
		switch s.evalCond(i, o, staleAfter) {
		case triUnknown:
			unknown = true
		case triTrue:
			if !s.all {
				return triTrue // any: one true decides
			}
		default:
			if s.all {
				return triFalse // all: one false decides
			}
		}
	}
	switch {
	case unknown:
		return triUnknown
	case s.all:
		return triTrue
	default:
		return triFalse
	}
}

func (s *condSet) String() string {
	var b strings.Builder
	if s.all {
		b.WriteString("all of ")
	} else if len(s.conds) > 1 {
		b.WriteString("any of ")
	}
	for i := range s.conds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s.conds[i].text))
	}
	fmt.Fprintf(&b, " for %s", s.hold)
	if s.window {
		b.WriteString(" over the window")
	}
	return b.String()
}
