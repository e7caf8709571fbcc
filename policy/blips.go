package policy

import (
	"fmt"
	"time"
)

// Probing is what a UE's probes make of the figures a rule reads, for
// BlipWarnings.
type Probing struct {
	Window time.Duration // the statistics window
	// Step is the span of the latency figures a `for` is timed with
	// (monitor.StepOf); 0 without a latency probe.
	Step time.Duration
	// Throughput is how long one throughput run stands for the link: an
	// interval of the probe and a half; 0 without a throughput probe.
	Throughput time.Duration
}

// BlipWarning is one way a degradation shorter than the breach's `for` can
// buy a session with this rule and these probes (issue 10). Field is the
// YAML path inside the rule, as in FieldError.
type BlipWarning struct {
	Field string
	Msg   string
}

// BlipWarnings lists the ways a degradation shorter than the breach's
// `for` can buy: a breach read over the window; a loss condition that can
// decide the breach alone (loss is a ratio over the last `for`: a short
// outage meets it); a step or a throughput run standing for at least the
// `for` (one bad sample then holds it). Otherwise a degradation holds the
// breach for at most its length and a step, so one shorter than `for`
// minus a step never buys.
func (r *Rule) BlipWarnings(p Probing) []BlipWarning {
	s := &r.breach
	var out []BlipWarning
	which := "any"
	if s.all {
		which = "all"
	}
	if s.window {
		out = append(out, BlipWarning{"breach.over", fmt.Sprintf(
			"window: the breach reads the %s window, so a degradation as short as one bad sample holds it for up to %s: shorter than for (%s) can buy",
			p.Window, p.Window, s.hold)})
		return out
	}
	latency, tput := false, false
	for i := range s.conds {
		c := &s.conds[i]
		switch {
		case c.metric == metricLoss:
			if !s.all || allLoss(s) {
				out = append(out, BlipWarning{fmt.Sprintf("breach.%s[%d]", which, i), fmt.Sprintf(
					"%q reads the loss over the last for (%s): an outage of %s meets it and buys; latency conditions count a lost packet as an endless round trip and see outages step by step (or put the loss in an all-list with them)",
					c.text, s.hold, formatSpan(time.Duration(c.threshold*float64(s.hold))))})
			}
		case c.metric.isThroughput():
			tput = true
		case c.metric != metricProm:
			latency = true
		}
	}
	if latency && p.Step >= s.hold {
		out = append(out, BlipWarning{"breach.for", fmt.Sprintf(
			"%s is not longer than the latency step of %s (a round of the latency probe and a quarter): one bad round holds the breach for it; probe more often or wait longer",
			s.hold, p.Step)})
	}
	if tput && p.Throughput >= s.hold {
		out = append(out, BlipWarning{"breach.for", fmt.Sprintf(
			"%s is not longer than a throughput run stands for (%s, an interval and a half): one slow run, as short as the transfer, holds the breach for it; probe throughput more often or wait longer",
			s.hold, p.Throughput)})
	}
	return out
}

func allLoss(s *condSet) bool {
	for i := range s.conds {
		if s.conds[i].metric != metricLoss {
			return false
		}
	}
	return true
}
