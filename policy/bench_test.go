package policy

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkEvaluate is one UE's evaluation in one tick on the steady path
// (no decision): goal <= 1µs and no allocation.
func BenchmarkEvaluate(b *testing.B) {
	for _, tc := range []struct {
		name string
		obs  Observation
		prep func(e *Engine, now time.Time)
	}{
		{"idle", obsGood, nil},
		{"active-in-breach", obsBad, func(e *Engine, now time.Time) {
			if err := e.Adopt(now, "cam", Session{ID: "s", QoS: "QOS_E", ExpiresAt: now.Add(100_000 * time.Hour)}); err != nil {
				b.Fatal(err)
			}
		}},
		{"prom-metric", Observation{Prom: map[string]PromSample{"app_bitrate": {Value: 5e6}}}, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			spec := lowLatency()
			if tc.name == "prom-metric" {
				spec.Breach = CondSpec{Any: []string{"prom.app_bitrate < 3e6"}, For: "10s"}
				spec.Recover = CondSpec{Any: []string{"prom.app_bitrate > 4e6"}, For: "30s"}
			}
			e := NewEngine(defaultGuards())
			if err := e.SetUE("cam", mustRule(b, "r", spec), "g"); err != nil {
				b.Fatal(err)
			}
			now := t0
			if tc.prep != nil {
				tc.prep(e, now)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				now = now.Add(time.Second)
				d, err := e.Evaluate(now, "cam", tc.obs)
				if err != nil || d.Kind != None {
					b.Fatalf("tick %d: %v %v", i, d, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/ue")
		})
	}
}

// BenchmarkTick100k is one tick over 100,000 UEs, a tenth of them in
// breach and holding sessions (renewed as they run out), the rest well:
// goal <= 100ms per tick. "map-lookup" finds each UE's observation by name
// in a map, as a daemon would; "engine-only" takes them in Tick's order
// from a slice, leaving the engine's own cost.
func BenchmarkTick100k(b *testing.B) {
	for _, byName := range []bool{true, false} {
		name := "engine-only"
		if byName {
			name = "map-lookup"
		}
		b.Run(name, func(b *testing.B) { benchTick(b, byName) })
	}
}

func benchTick(b *testing.B, byName bool) {
	const n = 100_000
	g := defaultGuards()
	g.MaxSessions = n
	e := NewEngine(g)
	rules := []*Rule{mustRule(b, "low-latency", lowLatency()), mustRule(b, "video-uplink", videoUplink())}
	obs := make(map[string]*Observation, n)
	list := make([]Observation, n)
	for i := range n {
		name := fmt.Sprintf("ue-%06d", i)
		r := rules[i%2]
		o := obsGood
		if i%2 == 1 {
			o = tput(20)
		}
		if i%10 == 0 {
			o = obsBad
			if i%2 == 1 {
				o = tput(3)
			}
		}
		list[i] = o
		obs[name] = &list[i]
		if err := e.SetUE(name, r, fmt.Sprint("site-", i%100)); err != nil {
			b.Fatal(err)
		}
	}
	next := 0
	observe := func(string) Observation { next++; return list[next-1] }
	if byName {
		observe = func(ue string) Observation { return *obs[ue] }
	}
	now := t0
	id := 0
	var dst []Decision
	tick := func() {
		now = now.Add(time.Second)
		next = 0
		dst = e.Tick(now, observe, dst[:0])
		for _, d := range dst {
			if d.Kind == Release {
				_ = e.Ended(now, d.UE, d.SessionID, EndReleased)
				continue
			}
			id++
			_ = e.Opened(now, d.UE, Session{ID: fmt.Sprint(id), QoS: d.QoS, ExpiresAt: now.Add(d.Duration)})
		}
	}
	// Warm up past the breach `for` so sessions are held.
	for range 30 {
		tick()
	}
	if u := e.Usage(now); u.Sessions != n/10 {
		b.Fatalf("%d sessions after warm-up, want %d", u.Sessions, n/10)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tick()
	}
	perTick := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perTick/1e6, "ms/tick")
	b.ReportMetric(perTick/n, "ns/ue")
}
