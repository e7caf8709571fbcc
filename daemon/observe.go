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
	rule            *policy.Rule
}

func spansOf(r *policy.Rule) spans {
	if r == nil {
		return spans{}
	}
	b, rc := r.Spans()
	return spans{breach: b, recover: rc, window: r.ReadsWindow() || readsProm(r), rule: r}
}

// efficacy is what the daemon knows to tell whether a UE's session helps
// (issue 10): its figures over the breach `for` before the request, and
// when the session's profile was granted (zero until it is). Kept in
// memory only: a session adopted at start has none, so it is not judged.
type efficacy struct {
	before policy.Figures
	since  time.Time
}

// noteRequest keeps the UE's figures over its breach `for` as the
// baseline of the session being requested. The caller holds d.mu.
func (d *Daemon) noteRequest(ue string) {
	sp := d.obsSpans[ue]
	if sp.rule == nil {
		return
	}
	now := d.now()
	s, ok := d.mon.StatsOver(ue, now, sp.rule.BreachFor())
	if !ok {
		return
	}
	d.eff[ue] = &efficacy{before: policy.Figures{Latency: latencyOf(&s, now), Throughput: throughputOf(&s, now)}}
}

// noteGranted starts the session's time to help: a new session or a new
// profile (escalation); a renewal at the same profile goes on. The caller
// holds d.mu.
func (d *Daemon) noteGranted(ue string, kind policy.Kind) {
	if e := d.eff[ue]; e != nil && (e.since.IsZero() || kind == policy.Request || kind == policy.Escalate) {
		e.since = d.now()
	}
}

// improvements compares the UE's figures since its profile was granted
// (up to the window) with its baseline; nil when not known. The caller
// holds d.mu.
func (d *Daemon) improvements(ue string, dst []policy.Improvement) []policy.Improvement {
	e, sp := d.eff[ue], d.obsSpans[ue]
	if e == nil || e.since.IsZero() || sp.rule == nil {
		return dst
	}
	before, during := e.before, d.during(ue, e)
	return sp.rule.Improvements(&before, &during, dst)
}

func (d *Daemon) during(ue string, e *efficacy) policy.Figures {
	now := d.now()
	s, ok := d.mon.StatsOver(ue, now, max(now.Sub(e.since), time.Nanosecond))
	if !ok {
		return policy.Figures{}
	}
	return policy.Figures{Latency: latencyOf(&s, now), Throughput: throughputOf(&s, now)}
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
	if e := d.eff[ue]; e != nil && !e.since.IsZero() && sp.rule != nil && sp.rule.NoImprovement != nil {
		obs.Before, obs.During = e.before, d.during(ue, e)
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
