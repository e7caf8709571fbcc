package monitor_test

import (
	"context"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
	"github.com/qodwatch/qodwatch/monitor/icmp"
)

// TestWithTheICMPEngine wires the shared engine to the Monitor as the
// daemon does and pings loopback UEs, one of them by name.
func TestWithTheICMPEngine(t *testing.T) {
	var eng *icmp.Engine
	mon, err := monitor.New(monitor.Options{Window: 10 * time.Second, RTTHistogram: true, ICMP: func(ts []monitor.ICMPTarget) {
		out := make([]icmp.Target, len(ts))
		for i, tg := range ts {
			out[i] = icmp.Target(tg)
		}
		eng.SetTargets(out)
	}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err = icmp.New(icmp.Options{Recorder: mon})
	if err != nil {
		t.Skipf("no ICMP socket here: %v", err)
	}
	probe := monitor.ICMP{Interval: 200 * time.Millisecond, Packets: 2}
	ues := []monitor.UE{
		{Name: "a", Addr: "127.0.3.1", Probes: []monitor.Probe{probe}},
		{Name: "b", Addr: "127.0.3.2", Probes: []monitor.Probe{probe}},
		{Name: "named", Addr: "localhost", Probes: []monitor.Probe{probe}},
	}
	if err := mon.SetUEs(ues); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- eng.Run(ctx) }()
	go func() { done <- mon.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil && err != context.Canceled {
				t.Errorf("run: %v", err)
			}
		}
	}()

	deadline := time.Now().Add(20 * time.Second)
	for _, ue := range ues {
		for {
			s, _ := mon.Stats(ue.Name, time.Now())
			if s.Samples >= 6 {
				if s.Lost != 0 || s.LatencyP95 <= 0 || s.LatencyMax > 100*time.Millisecond || s.LatencyProbe != "icmp" {
					t.Errorf("%s: %+v, want loopback answers only", ue.Name, s)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %+v after 20 s", ue.Name, s)
			}
			time.Sleep(20 * time.Millisecond) // polling for readiness
		}
	}
	if c := eng.Counters(); c.Sent == 0 || c.Received == 0 {
		t.Errorf("engine counters %+v", c)
	}
}
