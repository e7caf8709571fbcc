package policy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestImprovements(t *testing.T) {
	r := mustRule(t, "r", RuleSpec{
		Breach:  CondSpec{Any: []string{"latency_p95 > 80ms", "latency_p95 > 200ms", "throughput_p50 < 5Mbps", "loss > 2%"}, For: "5s"},
		Recover: CondSpec{All: []string{"latency_p95 < 40ms", "throughput_p50 > 8Mbps", "loss < 1%"}, For: "10s"},
		QoS:     "QOS_E", Duration: "10m",
	})
	before := Figures{Latency: LatencyStats{Samples: 10, P95: 200 * time.Millisecond, Loss: 0.1}, Throughput: ThroughputStats{Samples: 2, P50: 2e6 / 8}}
	during := Figures{Latency: LatencyStats{Samples: 10, P95: 50 * time.Millisecond}, Throughput: ThroughputStats{Samples: 2, P50: 1e6 / 8}}
	got := r.Improvements(&before, &during, nil)
	want := map[string]float64{"latency_p95": 4, "throughput_p50": 0.5, "loss": MaxRatio}
	if len(got) != len(want) {
		t.Fatalf("improvements %+v, want one per metric of %v", got, want)
	}
	for _, x := range got {
		if math.Abs(x.Ratio-want[x.Metric]) > 1e-9 {
			t.Errorf("%s: ratio %v, want %v", x.Metric, x.Ratio, want[x.Metric])
		}
	}
	// An endless round trip before and after is no change; from endless to
	// finite is the most; no data on one side is left out.
	before.Latency.P95, during.Latency.P95 = Endless, Endless
	during.Throughput.Samples = 0
	got = r.Improvements(&before, &during, got[:0])
	if len(got) != 2 || got[0].Metric != "latency_p95" || got[0].Ratio != 1 {
		t.Errorf("endless both sides, throughput without data: %+v", got)
	}
	if s := FormatImprovements(got); !strings.Contains(s, "latency_p95 no reply → no reply (1×)") {
		t.Errorf("formatted %q", s)
	}
}

// if_no_improvement, on a fake clock: a session that does not make the UE
// better is ended after `after` (or escalated first), and none is bought
// again while the breach goes on; one that helps is kept.
func TestIfNoImprovement(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	bad := func(p95 time.Duration) Observation {
		return Observation{Latency: LatencyStats{Samples: 5, P95: p95}}
	}
	spec := func(then string, escalate bool) RuleSpec {
		s := RuleSpec{
			Breach:  CondSpec{Any: []string{"latency_p95 > 80ms"}, For: "5s"},
			Recover: CondSpec{All: []string{"latency_p95 < 40ms"}, For: "10s"},
			QoS:     "QOS_E", Duration: "10m",
			IfNoImprovement: &NoImprovementSpec{After: "30s", Then: then},
		}
		if escalate {
			s.QoS, s.Escalate = "QOS_M", &EscalateSpec{To: "QOS_L", After: "1h"}
		}
		return s
	}
	// The daemon's figures: before = the breach before the request, during
	// = since the profile; here the step stands for both.
	withFigures := func(before time.Duration, during func(qos string) time.Duration) func(*harness, string, time.Duration) Observation {
		return func(h *harness, _ string, at time.Duration) Observation {
			st, _ := h.e.Status("cam")
			if !st.HasSession {
				return bad(before)
			}
			d := during(st.Session.QoS)
			o := bad(d)
			o.Before = Figures{Latency: LatencyStats{Samples: 25, P95: before}}
			o.During = Figures{Latency: LatencyStats{Samples: 25, P95: d}}
			return o
		}
	}
	for _, tc := range []struct {
		name string
		spec RuleSpec
		obs  func(*harness, string, time.Duration) Observation
		want []string
	}{
		{
			name: "no improvement: released after `after`, not bought again while the breach goes on",
			spec: spec("release", false),
			obs:  withFigures(ms(200), func(string) time.Duration { return ms(190) }),
			want: []string{"5s cam request QOS_E", "35s cam release QOS_E"},
		},
		{
			name: "a session that helps but not enough to recover is kept",
			spec: spec("release", false),
			obs:  withFigures(ms(200), func(string) time.Duration { return ms(100) }),
			want: []string{"5s cam request QOS_E"},
		},
		{
			name: "escalate: the stronger profile gets its own `after`, then release",
			spec: spec("escalate", true),
			obs:  withFigures(ms(200), func(string) time.Duration { return ms(195) }),
			want: []string{"5s cam request QOS_M", "35s cam escalate QOS_L", "1m5s cam release QOS_L"},
		},
		{
			name: "escalate helps: kept",
			spec: spec("escalate", true),
			obs: withFigures(ms(200), func(qos string) time.Duration {
				if qos == "QOS_L" {
					return ms(90)
				}
				return ms(195)
			}),
			want: []string{"5s cam request QOS_M", "35s cam escalate QOS_L"},
		},
		{
			name: "escalate without a stronger profile in the rule releases",
			spec: spec("escalate", false),
			obs:  withFigures(ms(200), func(string) time.Duration { return ms(190) }),
			want: []string{"5s cam request QOS_E", "35s cam release QOS_E"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := defaultGuards()
			g.MinSession, g.Cooldown = time.Minute, 10*time.Second
			h := newHarness(t, g)
			h.ue("cam", tc.spec)
			h.run(100*time.Second, func(ue string, at time.Duration) Observation { return tc.obs(h, ue, at) })
			if !equalStrings(h.log, tc.want) {
				t.Errorf("decisions\n  %q\nwant\n  %q", h.log, tc.want)
			}
		})
	}
	// The reason says what was compared, and the UE says why it waits.
	g := defaultGuards()
	g.Cooldown = 10 * time.Second
	h := newHarness(t, g)
	h.ue("cam", spec("release", false))
	obs := withFigures(ms(200), func(string) time.Duration { return ms(190) })
	h.run(50*time.Second, func(ue string, at time.Duration) Observation { return obs(h, ue, at) })
	st, _ := h.e.Status("cam")
	if !strings.Contains(st.Last.Reason, "no improvement of 1.1× in 30s: latency_p95 200ms → 190ms (1.05×)") {
		t.Errorf("last decision %+v", st.Last)
	}
	if !strings.Contains(st.Waiting, "did not improve") {
		t.Errorf("waiting %q", st.Waiting)
	}
}

func TestNoImprovementSpecErrors(t *testing.T) {
	base := RuleSpec{
		Breach:  CondSpec{Any: []string{"latency_p95 > 80ms"}, For: "5s"},
		Recover: CondSpec{All: []string{"latency_p95 < 40ms"}, For: "10s"},
		QoS:     "QOS_E", Duration: "10m",
	}
	for _, tc := range []struct {
		spec NoImprovementSpec
		want string
	}{
		{NoImprovementSpec{Then: "release"}, "if_no_improvement.after"},
		{NoImprovementSpec{After: "1m", Then: "stop"}, "if_no_improvement.then"},
		{NoImprovementSpec{After: "1m", Then: "release", MinRatio: "0.9"}, "if_no_improvement.min_ratio"},
	} {
		s := base
		s.IfNoImprovement = &tc.spec
		_, err := CompileRule("r", s)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.want {
			t.Errorf("%+v: error %v, want one at %s", tc.spec, err, tc.want)
		}
	}
}
