package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Efficacy (issue 10): does a session help? The daemon gives the engine,
// while a UE holds a session, the UE's figures just before it (over the
// breach `for` that bought it) and during it (since its profile was
// granted, up to the window); Improvements compares them per metric of the
// rule's breach, and a rule's if_no_improvement ends (or escalates) a
// session that has not helped after a while, so money is not spent where
// the bottleneck is not the radio.

// Figures are a UE's statistics over some span.
type Figures struct {
	Latency    LatencyStats
	Throughput ThroughputStats
}

// NoImprovementSpec is a rule's if_no_improvement as written.
type NoImprovementSpec struct {
	After string `yaml:"after"` // how long a profile has to show an improvement
	Then  string `yaml:"then"`  // release | escalate
	// MinRatio is the least improvement ratio (see Improvement) that counts
	// as helping; default 1.1.
	MinRatio string `yaml:"min_ratio,omitempty"`
}

// NoImprovement is a compiled NoImprovementSpec.
type NoImprovement struct {
	After    time.Duration
	Escalate bool // then: escalate (to the rule's escalate.to, else release)
	MinRatio float64
}

// DefaultMinRatio is if_no_improvement.min_ratio's default: a tenth better.
const DefaultMinRatio = 1.1

// MaxRatio bounds an improvement ratio: from an endless round trip or a
// zero rate to a finite one is "MaxRatio times better", and the ratio
// stays a number in JSON.
const MaxRatio = 1000.0

func compileNoImprovement(s NoImprovementSpec, bad reportFunc) *NoImprovement {
	out := &NoImprovement{MinRatio: DefaultMinRatio}
	switch d, err := ParseDuration(s.After); {
	case s.After == "":
		bad("if_no_improvement.after", "", "is missing: how long a session has to show an improvement, e.g. 60s")
	case err != nil:
		bad("if_no_improvement.after", s.After, "%v", err)
	case d <= 0:
		bad("if_no_improvement.after", s.After, "must be above zero")
	default:
		out.After = d
	}
	switch s.Then {
	case "release":
	case "escalate":
		out.Escalate = true
	default:
		bad("if_no_improvement.then", s.Then, "must be release or escalate")
	}
	if s.MinRatio != "" {
		v, err := strconv.ParseFloat(s.MinRatio, 64)
		if err != nil || !(v > 1) || v > MaxRatio {
			bad("if_no_improvement.min_ratio", s.MinRatio, "must be a number above 1 (1.5: a half better), at most %g", MaxRatio)
		} else {
			out.MinRatio = v
		}
	}
	return out
}

func (n *NoImprovement) String() string {
	then := "release"
	if n.Escalate {
		then = "escalate"
	}
	return fmt.Sprintf("if no improvement %g after %s then %s", n.MinRatio, n.After, then)
}

// Improvement compares one metric of a rule's breach during a session with
// just before it. Ratio is how many times better it got: before/during for
// a metric the breach finds too high (latency, jitter, loss), during/before
// for one it finds too low (throughput). 1 is no change, 2 twice as good,
// 0.5 twice as bad; within [1/MaxRatio, MaxRatio].
type Improvement struct {
	Metric         string // "latency_p95"
	Before, During float64
	Ratio          float64
}

// Improvements appends to dst the improvement of each metric of r's
// breach with figures before and during (once per metric; prometheus
// metrics have no figures over a span and are left out, as are metrics
// with no data on either side).
func (r *Rule) Improvements(before, during *Figures, dst []Improvement) []Improvement {
	var none Observation
	start := len(dst)
	for i := range r.breach.conds {
		c := &r.breach.conds[i]
		if c.metric == metricProm {
			continue
		}
		name := c.name()
		seen := false
		for _, x := range dst[start:] {
			seen = seen || x.Metric == name
		}
		if seen {
			continue
		}
		b, okB := none.value(c.metric, "", &before.Latency, &before.Throughput, 0)
		d, okD := none.value(c.metric, "", &during.Latency, &during.Throughput, 0)
		if !okB || !okD {
			continue
		}
		worse, better := b, d // the breach finds high values bad
		if c.op == opLT || c.op == opLE {
			worse, better = d, b
		}
		dst = append(dst, Improvement{Metric: name, Before: b, During: d, Ratio: ratio(worse, better)})
	}
	return dst
}

// ratio is hi/lo for non-negative values, +Inf allowed, bounded.
func ratio(hi, lo float64) float64 {
	switch {
	case hi == lo: // 0/0, Inf/Inf: no change
		return 1
	case lo == 0 || math.IsInf(hi, 1):
		return MaxRatio
	case math.IsInf(lo, 1):
		return 1 / MaxRatio
	}
	return min(max(hi/lo, 1/MaxRatio), MaxRatio)
}

// helped reports whether some improvement reaches min, and whether there
// was anything to judge by.
func helped(imps []Improvement, min float64) (yes, known bool) {
	for _, x := range imps {
		if x.Ratio >= min {
			return true, true
		}
	}
	return false, len(imps) > 0
}

// FormatImprovements is imps for a log line or a reason:
// "latency_p95 120ms → 30ms (4×)".
func FormatImprovements(imps []Improvement) string {
	var b strings.Builder
	for i, x := range imps {
		if i > 0 {
			b.WriteString(", ")
		}
		f := func(v float64) string { return FormatValue(x.Metric, v) }
		fmt.Fprintf(&b, "%s %s → %s (%s×)", x.Metric, f(x.Before), f(x.During), strconv.FormatFloat(x.Ratio, 'g', 3, 64))
	}
	return b.String()
}
