package policy

import (
	"testing"
	"time"
)

// Issue 10: `for` counts what the measurements of the last `for` show.
// These cases feed the engine Observations as the daemon builds them:
// step figures in Latency/Throughput, the last `for` in the spans, the
// window in Window, and compare the decisions second by second.
func TestForSemantics(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	step := func(p95 time.Duration) Observation {
		return Observation{Latency: LatencyStats{Samples: 5, P95: p95}}
	}
	// A window still showing a blip long after it: p95 high for 30 s.
	windowHigh := func(o Observation) Observation {
		o.Window.Latency = LatencyStats{Samples: 150, P95: ms(200)}
		return o
	}
	lossSpan := func(loss float64, covered time.Duration) LatencyStats {
		return LatencyStats{Samples: 100, Loss: loss, Covered: covered}
	}
	latencyRule := RuleSpec{
		Breach:  CondSpec{Any: []string{"latency_p95 > 80ms"}, For: "5s"},
		Recover: CondSpec{All: []string{"latency_p95 < 40ms", "loss < 1%"}, For: "10s"},
		QoS:     "QOS_E", Duration: "10m",
	}
	withOver := latencyRule
	withOver.Breach.Over = "window"
	lossRule := RuleSpec{
		Breach:  CondSpec{Any: []string{"loss > 2%"}, For: "20s"},
		Recover: CondSpec{All: []string{"loss < 0.5%"}, For: "30s"},
		QoS:     "QOS_E", Duration: "10m",
	}
	tputRule := RuleSpec{
		Breach:  CondSpec{Any: []string{"throughput_p10 < 5Mbps"}, For: "5s"},
		Recover: CondSpec{All: []string{"throughput_p10 > 8Mbps", "throughput_p50 > 8Mbps"}, For: "10s"},
		QoS:     "QOS_L", Duration: "10m",
	}
	good := func(o Observation) Observation {
		o.RecoverSpan = lossSpan(0, time.Hour)
		return o
	}
	for _, tc := range []struct {
		name  string
		spec  RuleSpec
		obs   func(time.Duration) Observation
		until time.Duration
		want  []string
	}{
		{
			// The step shows the 3 s blip; the window shows it for 30 s
			// more, which bought a session before issue 10.
			name: "a blip shorter than for buys nothing though the window stays high",
			spec: latencyRule,
			obs: series(phase{10 * time.Second, good(step(ms(10)))},
				phase{13 * time.Second, windowHigh(step(ms(150)))},
				phase{0, good(windowHigh(step(ms(10))))}),
			until: 60 * time.Second,
			want:  nil,
		},
		{
			name: "over: window reads the window: the same blip buys",
			spec: withOver,
			obs: series(phase{10 * time.Second, good(step(ms(10)))},
				phase{13 * time.Second, windowHigh(step(ms(150)))},
				phase{0, good(windowHigh(step(ms(10))))}),
			until: 60 * time.Second,
			want:  []string{"15s cam request QOS_E"},
		},
		{
			// Recovery reads the step and the loss of the last 10 s: it
			// ends the session 10 s after the link is good, window or not.
			name: "recovery counts from the first good step, not from the window",
			spec: latencyRule,
			obs: series(phase{30 * time.Second, windowHigh(step(ms(150)))},
				phase{0, good(windowHigh(step(ms(10))))}),
			until: 120 * time.Second,
			want:  []string{"5s cam request QOS_E", "40s cam release QOS_E"},
		},
		{
			// The first good step covers the second before it: the link
			// has been good since then, and recovery counts from there.
			name: "recovery counts from the start of the first good step",
			spec: latencyRule,
			obs: series(phase{30 * time.Second, step(ms(150))},
				phase{0, func() Observation {
					o := good(step(ms(10)))
					o.Latency.Covered = time.Second
					return o
				}()}),
			until: 120 * time.Second,
			want:  []string{"5s cam request QOS_E", "39s cam release QOS_E"},
		},
		{
			name: "recovery waits for the loss of its whole for",
			spec: latencyRule,
			obs: series(phase{30 * time.Second, step(ms(150))},
				phase{0, func() Observation {
					o := step(ms(10))
					o.RecoverSpan = lossSpan(0.02, 10*time.Second) // losses still in the last 10 s
					return o
				}()}),
			until: 120 * time.Second,
			want:  []string{"5s cam request QOS_E"},
		},
		{
			// Loss over the last `for` that already covers it: the breach
			// holds at once, since the measurements of the last 20 s show it.
			name:  "loss over a covered for breaches at once",
			spec:  lossRule,
			obs:   series(phase{0, Observation{BreachSpan: lossSpan(0.05, 20*time.Second)}}),
			until: 5 * time.Second,
			want:  []string{"0s cam request QOS_E"},
		},
		{
			name:  "loss breaches once its measurements reach back for",
			spec:  lossRule,
			obs:   func(at time.Duration) Observation { return Observation{BreachSpan: lossSpan(0.05, at+8*time.Second)} },
			until: 30 * time.Second,
			want:  []string{"12s cam request QOS_E"},
		},
		{
			name: "throughput quantiles read their own figures",
			spec: tputRule,
			obs: series(
				phase{10 * time.Second, Observation{Throughput: ThroughputStats{Samples: 3, BytesPerSecond: 10e6 / 8, P10: 4e6 / 8, P50: 10e6 / 8}}},
				phase{0, Observation{Throughput: ThroughputStats{Samples: 3, BytesPerSecond: 10e6 / 8, P10: 9e6 / 8, P50: 10e6 / 8}}}),
			until: 40 * time.Second,
			want:  []string{"5s cam request QOS_L", "20s cam release QOS_L"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := defaultGuards()
			g.MinSession = 0
			h := newHarness(t, g)
			h.ue("cam", tc.spec)
			h.run(tc.until, func(_ string, at time.Duration) Observation { return tc.obs(at) })
			if !equalStrings(h.log, tc.want) {
				t.Errorf("decisions\n  %q\nwant\n  %q", h.log, tc.want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Per-condition clocks: an all-list holds for `for` when each condition
// has, whichever turned true first.
func TestForAllListCountsEachCondition(t *testing.T) {
	spec := RuleSpec{
		Breach:  CondSpec{All: []string{"latency_p95 > 80ms", "jitter > 20ms"}, For: "10s"},
		Recover: CondSpec{All: []string{"latency_p95 < 40ms"}, For: "10s"},
		QoS:     "QOS_E", Duration: "10m",
	}
	obs := func(at time.Duration) Observation {
		o := Observation{Latency: LatencyStats{Samples: 5, P95: 150 * time.Millisecond}}
		if at >= 4*time.Second {
			o.Latency.Jitter = 30 * time.Millisecond
		}
		return o
	}
	h := newHarness(t, defaultGuards())
	h.ue("cam", spec)
	h.run(20*time.Second, func(_ string, at time.Duration) Observation { return obs(at) })
	if want := []string{"14s cam request QOS_E"}; !equalStrings(h.log, want) {
		t.Errorf("decisions %q, want %q", h.log, want)
	}
}

func TestRuleSpans(t *testing.T) {
	r := mustRule(t, "r", lowLatency())
	if b, rc := r.Spans(); b != 20*time.Second || rc != 60*time.Second {
		t.Errorf("spans %v, %v; want 20s, 60s (both lists read loss)", b, rc)
	}
	r = mustRule(t, "v", videoUplink())
	if b, rc := r.Spans(); b != 0 || rc != 0 {
		t.Errorf("spans %v, %v; want none without loss", b, rc)
	}
	spec := lowLatency()
	spec.Breach.Over = "window"
	r = mustRule(t, "w", spec)
	if b, _ := r.Spans(); b != 0 {
		t.Errorf("breach over the window has span %v, want 0", b)
	}
	spec.Breach.Over = "forever"
	if _, err := CompileRule("x", spec); err == nil || err.Error() != `rules.x.breach.over: "forever" must be window, or left out (each condition then reads the measurements of its `+"`for`)" {
		t.Errorf("over: forever: %v", err)
	}
}
