package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/monitor"
)

// BenchmarkSampleEvaluations10k is the cost of deciding on every sample:
// 10,000 UEs pinged 3 times a second (packets 100 ms apart), full 30 s
// windows, all well. Each op is one second of that traffic: 30,000 replies
// recorded into the monitor (which marks their UEs dirty) and a pass every
// 5 ms evaluating the UEs marked since the last one, on a simulated clock.
// "evals-%core" is the share of one core the passes take, the figure the
// event-driven loop must keep to a few percent; "mark-ns/sample" is what
// the hook adds to each reply.
func BenchmarkSampleEvaluations10k(b *testing.B) {
	const (
		n       = 10_000
		packets = 3
		passes  = int(time.Second / passGap)
	)
	sim := time.Now()
	d := benchDaemon(b, n, func() time.Time { return sim })
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ue-%d", i)
	}
	reply := func(i int, at time.Time) monitor.Result {
		return monitor.Result{UE: names[i], Probe: "icmp", At: at, RTT: time.Duration(10+i%7) * time.Millisecond}
	}
	// Full windows first, then one tick so every UE has been evaluated.
	for s := 30 * packets; s > 0; s-- {
		at := sim.Add(-time.Duration(s) * time.Second / packets)
		for i := range n {
			d.mon.Record(reply(i, at))
		}
	}
	d.dirty.take(nil)
	d.Tick()

	var batch []*dirtyFlag
	var evalTime, markTime time.Duration
	samples := 0
	b.ResetTimer()
	for b.Loop() {
		// One second: UE i's packets go out at phase i/n of each third of
		// a second, so every 5 ms slot sees 150 replies of 150 UEs.
		for slot := range passes {
			sim = sim.Add(passGap)
			lo, hi := slot*n*packets/passes, (slot+1)*n*packets/passes
			start := time.Now()
			for k := lo; k < hi; k++ {
				d.mon.Record(reply(k%n, sim))
			}
			markTime += time.Since(start)
			samples += hi - lo
			start = time.Now()
			batch = d.dirty.take(batch[:0])
			d.pass(batch)
			clear(batch)
			evalTime += time.Since(start)
		}
	}
	seconds := float64(b.N)
	b.ReportMetric(100*evalTime.Seconds()/seconds, "evals-%core")
	b.ReportMetric(float64(evalTime.Nanoseconds())/float64(samples), "eval-ns/sample")
	b.ReportMetric(float64(markTime.Nanoseconds())/float64(samples), "record+mark-ns/sample")
}

// BenchmarkMarkDirty is the hook alone: what every reply pays to mark its
// UE dirty. It must not allocate.
func BenchmarkMarkDirty(b *testing.B) {
	const n = 10_000
	d := benchDaemon(b, n, time.Now)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ue-%d", i)
	}
	var batch []*dirtyFlag
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.dirty.mark(names[i%n])
		i++
		if i%150 == 0 {
			batch = d.dirty.take(batch[:0])
		}
	}
}

// benchDaemon is a daemon with n UEs probed by ICMP every second, not
// running: the benchmark feeds its monitor and drives its loop by hand.
func benchDaemon(b testing.TB, n int, now func() time.Time) *Daemon {
	b.Helper()
	dir := b.TempDir()
	var y strings.Builder
	fmt.Fprintf(&y, "api: {base_url: \"http://127.0.0.1:1/qod/v1\", auth: {type: none}}\n")
	fmt.Fprintf(&y, "defaults: {application_server: {ipv4: 203.0.113.10}, window: 30s, rule: fast, probes: [{icmp: {interval: 1s, packets: 3, spacing: 100ms}}]}\nues:\n")
	for i := range n {
		fmt.Fprintf(&y, "  - {name: ue-%d, ipv4: 10.%d.%d.%d, target: 127.0.0.1}\n", i, i>>16&255, i>>8&255, i&255)
	}
	fmt.Fprintf(&y, "rules:\n  fast:\n    breach: {any: [\"latency_p95 > 80ms\", \"loss > 5%%\"], for: 5s}\n    recover: {all: [\"latency_p95 < 40ms\", \"loss < 1%%\"], for: 5s}\n    qos: QOS_E\n    duration: 10m\n")
	fmt.Fprintf(&y, "state_dir: %q\n", filepath.Join(dir, "state"))
	cfg, err := config.Parse(filepath.Join(dir, "bench.yaml"), []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		b.Fatal(err)
	}
	return d
}
