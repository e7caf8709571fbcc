package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMetrics10k scrapes /metrics of a daemon with 10,000 UEs: fresh
// (no UE measured yet) and with full windows. It reports the page size,
// what a Prometheus stores per scrape (issue 13: per-UE series must stay
// cheap).
//
//	go test -run='^$' -bench=Metrics10k -benchtime=5x ./daemon
func BenchmarkMetrics10k(b *testing.B) {
	const n = 10000
	for _, c := range []struct {
		name    string
		samples int
	}{{"fresh", 0}, {"measured", 10}} {
		b.Run(c.name, func(b *testing.B) {
			d := tcpBenchDaemon(b, n, c.samples, "api: {base_url: \"http://127.0.0.1:1/qod/v1\", auth: {type: none}}",
				`{any: ["latency_p95 > 80ms", "loss > 2%"], for: 5s}`, `{all: ["latency_p95 < 40ms", "loss < 1%"], for: 5s}`)
			h := d.Handler()
			var size int
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size)/1024, "KiB/scrape")
			b.ReportMetric(float64(size)/n, "bytes/UE")
		})
	}
}
