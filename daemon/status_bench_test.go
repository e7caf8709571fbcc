package daemon_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/monitor"
)

// BenchmarkStatusPage10k renders one page (100 UEs) of the status page and
// of /status.json for 10,000 UEs with full windows, a tenth of them with a
// failing probe: what a refresh every 5 s costs, and how long the daemon's
// lock is held for it.
//
//	go test -run='^$' -bench=StatusPage -benchtime=20x ./daemon
func BenchmarkStatusPage10k(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	var y strings.Builder
	fmt.Fprintf(&y, "dry_run: true\ndefaults: {application_server: {ipv4: 203.0.113.10}, window: 10s, rule: fast}\nues:\n")
	for i := range n {
		fmt.Fprintf(&y, "  - {name: ue-%05d, ipv4: 10.%d.%d.%d, target: 127.0.0.1, probes: [{tcp: {address: \"127.0.0.1:1\", interval: 1s}}]}\n", i, i>>16&255, i>>8&255, i&255)
	}
	fmt.Fprintf(&y, "rules:\n  fast:\n    breach: {any: [\"latency_p95 > 80ms\", \"loss > 2%%\"], for: 5s}\n    recover: {all: [\"latency_p95 < 40ms\", \"loss < 1%%\"], for: 5s}\n    qos: QOS_E\n    duration: 10m\n")
	fmt.Fprintf(&y, "state_dir: %q\n", filepath.Join(dir, "state"))
	cfg, err := config.Parse(filepath.Join(dir, "bench.yaml"), []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		ue := fmt.Sprintf("ue-%05d", i)
		for s := range 100 {
			d.Monitor().Record(monitor.Result{UE: ue, Probe: "tcp", At: now.Add(-time.Duration(s) * 100 * time.Millisecond), RTT: time.Duration(10+s%7) * time.Millisecond})
		}
		if i%10 == 0 {
			d.Monitor().Record(monitor.Result{UE: ue, Probe: "tcp", At: now, Err: syscall.ECONNREFUSED})
		}
	}
	h := d.Handler()
	for _, path := range []string{"/", "/status.json"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			var size int
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
			b.ReportMetric(float64(size)/1024, "KiB/page")
		})
	}
}
