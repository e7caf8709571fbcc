package monitor

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fleet makes n UEs with an ICMP probe (3 packets a second) and fills each
// window with a full window of answers.
func fleet(b *testing.B, n int, histogram bool) (*Monitor, *fakeClock) {
	b.Helper()
	clk := newFakeClock(base)
	m, err := New(Options{Clock: clk, RTTHistogram: histogram, ICMP: func([]ICMPTarget) {}})
	if err != nil {
		b.Fatal(err)
	}
	ues := make([]UE, n)
	for i := range ues {
		ues[i] = UE{Name: fmt.Sprintf("ue-%05d", i), Addr: fmt.Sprintf("127.%d.%d.%d", i>>16&255, i>>8&255, i&255+1),
			Probes: []Probe{ICMP{Interval: time.Second}}}
	}
	if err := m.SetUEs(ues); err != nil {
		b.Fatal(err)
	}
	for s := range 30 {
		for p := range 3 {
			t := at(time.Duration(s)*time.Second + time.Duration(p)*100*time.Millisecond)
			for i := range ues {
				m.Record(Result{UE: ues[i].Name, Probe: KindICMP, At: t, RTT: time.Duration(1000+i+s*p) * time.Microsecond})
			}
		}
	}
	clk.Advance(30 * time.Second)
	return m, clk
}

// BenchmarkRecord is the ICMP hot path: 30,000 UEs recorded from parallel
// goroutines, as the engine's receivers do.
func BenchmarkRecord(b *testing.B) {
	const n = 30000
	m, _ := fleet(b, n, false)
	names := m.UEs()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			m.Record(Result{UE: names[i%n], Probe: KindICMP, At: at(31 * time.Second), RTT: time.Millisecond})
		}
	})
}

// BenchmarkScrape renders /metrics for 10,000 UEs, with and without the
// per-UE histograms, through client_golang's registry (Collect) and
// straight (WriteMetrics); it reports the page size.
func BenchmarkScrape(b *testing.B) {
	for _, path := range []string{"registry", "text"} {
		for _, hist := range []bool{false, true} {
			b.Run(fmt.Sprintf("ues=10000/%s/histogram=%t", path, hist), func(b *testing.B) {
				m, _ := fleet(b, 10000, hist)
				reg := prometheus.NewRegistry()
				reg.MustRegister(m)
				var buf bytes.Buffer
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					buf.Reset()
					var err error
					if path == "registry" {
						err = render(reg, &buf)
					} else {
						err = m.WriteMetrics(&buf)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(buf.Len()), "page-bytes")
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/scrape")
			})
		}
	}
}

// BenchmarkStatsAll is the policy's read of every window.
func BenchmarkStatsAll(b *testing.B) {
	m, clk := fleet(b, 10000, false)
	now := clk.Now()
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range m.All(now) {
			if s.Samples == 0 {
				b.Fatal("empty window")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/10k-UEs")
}

// BenchmarkMemoryPerUE reports the heap held per UE with an ICMP probe.
func BenchmarkMemoryPerUE(b *testing.B) {
	const n = 10000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m, _ := fleet(b, n, false)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/UE")
		runtime.KeepAlive(m)
	}
}
