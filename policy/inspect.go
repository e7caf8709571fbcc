package policy

import (
	"strconv"
	"time"
)

// What a rule reads, for people and dashboards: the status page shows each
// condition's measured value beside its threshold (issue 12).

// CondSetInfo is one side of a rule, breach or recover.
type CondSetInfo struct {
	All        bool          // all of the conditions must hold; else any one
	For        time.Duration // how long they must hold
	Conditions []ConditionInfo
}

// ConditionInfo is one compiled condition.
type ConditionInfo struct {
	Text      string  // normalised: "latency_p95 > 80ms"
	Metric    string  // "latency_p95", "prom.app_bitrate"
	Op        string  // <, <=, >, >=
	Threshold float64 // base unit: seconds, ratio, bytes per second, number
	Raw       string  // the threshold as written: "80ms"
}

// Breach describes the rule's breach conditions.
func (r *Rule) Breach() CondSetInfo { return r.breach.info() }

// Recover describes the rule's recovery conditions.
func (r *Rule) Recover() CondSetInfo { return r.recover.info() }

func (s *condSet) info() CondSetInfo {
	out := CondSetInfo{All: s.all, For: s.hold, Conditions: make([]ConditionInfo, len(s.conds))}
	for i := range s.conds {
		c := &s.conds[i]
		out.Conditions[i] = ConditionInfo{Text: c.text, Metric: c.name(), Op: opText[c.op], Threshold: c.threshold, Raw: c.raw}
	}
	return out
}

// Holds reports whether the measured value v meets the condition.
func (c ConditionInfo) Holds(v float64) bool {
	switch c.Op {
	case "<":
		return v < c.Threshold
	case "<=":
		return v <= c.Threshold
	case ">":
		return v > c.Threshold
	default:
		return v >= c.Threshold
	}
}

// Value is what the observation measures for metric ("latency_p95",
// "prom.app_bitrate"), in its base unit, as the rules read it by default:
// the step's figures, and loss over the breach's `for` (BreachSpan, or the
// step's loss if that is empty); ok is false for no data (or an unknown
// metric). With every probe lost, latency and jitter are +Inf.
func (o *Observation) Value(metric string, staleAfter time.Duration) (v float64, ok bool) {
	var c condition
	if err := c.setMetric(metric); err != nil {
		return 0, false
	}
	lat := &o.Latency
	if c.metric == metricLoss && o.BreachSpan.Samples > 0 {
		lat = &o.BreachSpan
	}
	return o.value(c.metric, c.prom, lat, &o.Throughput, staleAfter)
}

// FormatValue writes a measured value of metric for people: "112ms", "2%",
// "4.8Mbps"; a round trip that never came is "no reply".
func FormatValue(metric string, v float64) string {
	var c condition
	if err := c.setMetric(metric); err != nil {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return c.format(v)
}
