package config

import (
	"fmt"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
	"github.com/qodwatch/qodwatch/policy"
)

// warnBlips warns about every rule and probe combination of the UEs that
// lets a degradation shorter than the breach's `for` buy (issue 10), once
// per rule and message.
func (r *resolver) warnBlips(ues []UE) {
	seen := map[string]bool{}
	for i := range ues {
		u := &ues[i]
		if u.Rule == nil {
			continue
		}
		for _, w := range u.Rule.BlipWarnings(probingOf(u)) {
			path := joinPath(joinPath("rules", u.RuleName), w.Field)
			if u.RuleOverridden {
				// The override's field if it set it, else the shared rule's.
				op := fmt.Sprintf("ues[%d].rule_override", i)
				for f := w.Field; f != ""; f = parentPath(f) {
					if r.d.has(joinPath(op, f)) {
						path = joinPath(op, f)
						break
					}
				}
			}
			if seen[path+w.Msg] {
				continue
			}
			seen[path+w.Msg] = true
			r.warnAt(path, "%s", w.Msg)
		}
	}
}

// probingOf is what the UE's probes make of its figures: the latency step
// of its latency probe (icmp, else tcp, else http) and how long one
// throughput run stands for the link.
func probingOf(u *UE) policy.Probing {
	p := policy.Probing{Window: u.Window}
	var every [3]time.Duration // icmp, tcp, http
	for _, pr := range u.Probes {
		switch pr.Kind {
		case "icmp":
			every[0] = max(every[0], pr.Interval)
		case "tcp":
			every[1] = max(every[1], pr.Interval)
		case "http":
			every[2] = max(every[2], pr.Interval)
		case "throughput":
			p.Throughput = max(p.Throughput, pr.Interval+pr.Interval/2)
		}
	}
	for _, e := range every {
		if e > 0 {
			p.Step = monitor.StepOf(monitor.DefaultStep, e)
			break
		}
	}
	return p
}
