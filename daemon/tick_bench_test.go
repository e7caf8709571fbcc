package daemon_test

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/monitor"
)

// BenchmarkTick1000 measures one control-loop pass over 1,000 UEs with full
// windows and no decision to make: the time the loop holds the daemon's
// lock, during which API outcomes and scrapes wait.
func BenchmarkTick1000(b *testing.B) {
	d := tcpBenchDaemon(b, 1000, 50,
		"api: {base_url: \"http://127.0.0.1:1/qod/v1\", auth: {type: none}}",
		`{any: ["latency_p95 > 80ms"], for: 5s}`, `{all: ["latency_p95 < 40ms"], for: 5s}`)
	b.ResetTimer()
	for b.Loop() {
		d.Tick()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/tick")
}

// tcpBenchDaemon is a daemon, not running, with n UEs named ue-N, each
// probed by TCP and with samples fast round trips 100 ms apart in its
// window, under the rule "fast" with the given breach and recover lists;
// head is the config's first line.
func tcpBenchDaemon(b *testing.B, n, samples int, head, breach, recover string) *daemon.Daemon {
	b.Helper()
	return tcpBenchDaemonWindow(b, n, samples, "10s", head, breach, recover)
}

// tcpBenchDaemonWindow is tcpBenchDaemon with a window of its own. The
// monitor's windows follow the wall clock: a window longer than the set-up
// keeps what was recorded (100,000 UEs take longer than 10 s to fill).
func tcpBenchDaemonWindow(b *testing.B, n, samples int, window, head, breach, recover string) *daemon.Daemon {
	b.Helper()
	dir := b.TempDir()
	var y strings.Builder
	fmt.Fprintf(&y, "%s\n", head)
	fmt.Fprintf(&y, "defaults: {application_server: {ipv4: 203.0.113.10}, window: %s, rule: fast}\nues:\n", window)
	for i := range n {
		fmt.Fprintf(&y, "  - {name: ue-%d, ipv4: 10.%d.%d.%d, target: 127.0.0.1, probes: [{tcp: {address: \"127.0.0.1:1\", interval: 1s}}]}\n", i, i>>16&255, i>>8&255, i&255)
	}
	fmt.Fprintf(&y, "rules:\n  fast:\n    breach: %s\n    recover: %s\n    qos: QOS_E\n    duration: 10m\n", breach, recover)
	fmt.Fprintf(&y, "state_dir: %q\n", filepath.Join(dir, "state"))
	cfg, err := config.Parse(filepath.Join(dir, "bench.yaml"), []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	// The daemon's clock stands still at the newest sample, so every run
	// reads the same windows: with the wall clock they drain as the
	// benchmark runs, and a slower run would draw less.
	now := time.Now()
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		ue := fmt.Sprintf("ue-%d", i)
		for s := range samples {
			d.Monitor().Record(monitor.Result{UE: ue, Probe: "tcp", At: now.Add(-time.Duration(s) * 100 * time.Millisecond), RTT: time.Duration(10+s%7) * time.Millisecond})
		}
	}
	return d
}
