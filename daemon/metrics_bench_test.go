package daemon_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMetrics scrapes /metrics of a daemon with 10,000 and 100,000
// UEs: fresh (no UE measured yet, 10,000 only) and with full windows,
// plain and gzipped as Prometheus asks; web.per_ue_metrics auto (on at
// 10,000, off at 100,000) and on at 100,000. It reports the time and size of a
// scrape and the bytes per UE: what a Prometheus stores per scrape
// (issue 13: /metrics for 100,000 UEs ≤ 200 ms, a size a Prometheus can
// scrape).
//
//	go test -run='^$' -bench=Metrics -benchtime=3x ./daemon
func BenchmarkMetrics(b *testing.B) {
	for _, c := range []struct {
		n       int
		samples int
		name    string
		perUE   string // web.per_ue_metrics
	}{{10000, 0, "fresh", "auto"}, {10000, 10, "measured", "auto"}, {100000, 10, "measured", "auto"}, {100000, 10, "measured", "on"}} {
		var d interface{ Handler() http.Handler }
		for _, enc := range []string{"identity", "gzip"} {
			b.Run(fmt.Sprintf("ues=%d/%s/per_ue=%s/%s", c.n, c.name, c.perUE, enc), func(b *testing.B) {
				if d == nil { // one daemon for both encodings: 100,000 UEs take a while to set up
					d = tcpBenchDaemonWindow(b, c.n, c.samples, "1h", "web: {per_ue_metrics: "+c.perUE+"}\napi: {base_url: \"http://127.0.0.1:1/qod/v1\", auth: {type: none}}",
						`{any: ["latency_p95 > 80ms", "loss > 2%"], for: 5s}`, `{all: ["latency_p95 < 40ms", "loss < 1%"], for: 5s}`)
				}
				h := d.Handler()
				var size int
				for b.Loop() {
					w := &countingWriter{header: http.Header{}}
					req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					req.Header.Set("Accept-Encoding", enc)
					h.ServeHTTP(w, req)
					if w.code != http.StatusOK {
						b.Fatal(w.code)
					}
					size = w.n
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/scrape")
				b.ReportMetric(float64(size)/1024, "KiB/scrape")
				b.ReportMetric(float64(size)/float64(c.n), "bytes/UE")
			})
		}
	}
}

// countingWriter is a ResponseWriter that counts the body and keeps
// nothing: a recorder's buffer growing to tens of MB would be timed too,
// where a server writes to the socket.
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header { return w.header }

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}
