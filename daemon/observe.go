package daemon

import (
	"strings"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
	"github.com/qodwatch/qodwatch/policy"
)

// spans is how far back a rule's breach and recovery loss conditions read
// (policy.Rule.Spans); 0 where the list has none. window is whether the
// rule needs the window's figures: a list over: window, or a prometheus
// metric, whose values come with them. Most rules need neither, and the
// window's percentiles are the dearest figures to compute on every sample.
type spans struct {
	breach, recover time.Duration
	window          bool
}

func spansOf(r *policy.Rule) spans {
	if r == nil {
		return spans{}
	}
	b, rc := r.Spans()
	return spans{breach: b, recover: rc, window: r.ReadsWindow() || readsProm(r)}
}

func readsProm(r *policy.Rule) bool {
	for _, m := range r.Metrics() {
		if strings.HasPrefix(m, "prom.") {
			return true
		}
	}
	return false
}

// observe turns the monitor's figures into the policy's observation: the
// newest step, which the policy times each `for` with; the last `for` of
// the lists whose loss conditions read it; and the window, for lists with
// over: window (issue 10).
func (d *Daemon) observe(ue string) policy.Observation {
	now := d.now()
	step, ok := d.mon.StatsOver(ue, now, 0)
	if !ok {
		return policy.Observation{}
	}
	var obs policy.Observation
	obs.Latency, obs.Throughput = latencyOf(&step, now), throughputOf(&step, now)
	sp := d.obsSpans[ue]
	if sp.breach > 0 {
		s, _ := d.mon.StatsOver(ue, now, sp.breach)
		obs.BreachSpan = latencyOf(&s, now)
	}
	if sp.recover > 0 {
		s, _ := d.mon.StatsOver(ue, now, sp.recover)
		obs.RecoverSpan = latencyOf(&s, now)
	}
	if !sp.window {
		return obs
	}
	win, _ := d.mon.Stats(ue, now)
	obs.Window.Latency, obs.Window.Throughput = latencyOf(&win, now), throughputOf(&win, now)
	if len(win.Values) > 0 {
		prom := d.obsProm[ue]
		if prom == nil {
			prom = make(map[string]policy.PromSample, len(win.Values))
			d.obsProm[ue] = prom
		}
		for _, v := range win.Values {
			if v.At.IsZero() {
				delete(prom, v.Name)
				continue
			}
			prom[v.Name] = policy.PromSample{Value: v.Value, Age: now.Sub(v.At)}
		}
		obs.Prom = prom
	}
	return obs
}

func ageOf(s *monitor.Stats, now time.Time) time.Duration {
	if s.LastSample.IsZero() {
		return 0
	}
	return now.Sub(s.LastSample)
}

// latencyOf gives rules the quantiles that count a lost probe as an
// endless round trip (issue 10: the first probes lost to a degradation are
// its first evidence).
func latencyOf(s *monitor.Stats, now time.Time) policy.LatencyStats {
	return policy.LatencyStats{
		Samples: s.Samples + s.Lost, Age: ageOf(s, now), Covered: s.Covered,
		Mean: s.LatencyMean, P50: endless(s.LatencyP50Lost), P95: endless(s.LatencyP95Lost), Max: endless(s.LatencyMaxLost),
		Jitter: s.Jitter, Loss: s.Loss,
	}
}

func endless(d time.Duration) time.Duration {
	if d == monitor.Endless {
		return policy.Endless
	}
	return d
}

func throughputOf(s *monitor.Stats, now time.Time) policy.ThroughputStats {
	return policy.ThroughputStats{
		Samples: s.ThroughputSamples, Age: ageOf(s, now),
		BytesPerSecond: s.Throughput, P10: s.ThroughputP10, P50: s.ThroughputP50,
	}
}
