package daemon_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

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
	d := tcpBenchDaemon(b, n, 100, "dry_run: true",
		`{any: ["latency_p95 > 80ms", "loss > 2%"], for: 5s}`, `{all: ["latency_p95 < 40ms", "loss < 1%"], for: 5s}`)
	now := time.Now()
	for i := 0; i < n; i += 10 {
		d.Monitor().Record(monitor.Result{UE: fmt.Sprintf("ue-%d", i), Probe: "tcp", At: now, Err: syscall.ECONNREFUSED})
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
