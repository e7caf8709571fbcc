package icmp

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
)

// countdown is a Recorder that closes done after n results.
type countdown struct {
	left atomic.Int64
	done chan struct{}
}

func (c *countdown) Record(monitor.Result) {
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

// BenchmarkLoopback pings 1,000 loopback addresses ten times a second each
// until b.N replies or losses are recorded, and reports what one packet
// costs: CPU, heap allocations and system calls. bench/icmp.sh measures the
// engine at full scale.
func BenchmarkLoopback(b *testing.B) {
	if syscall.Geteuid() != 0 {
		b.Skip("needs root (raw sockets)")
	}
	rec := &countdown{done: make(chan struct{})}
	rec.left.Store(int64(b.N))
	e, err := New(Options{Recorder: rec, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	targets, _ := loopbackTargets(1000, 13, Target{Interval: 100 * time.Millisecond, Packets: 1})
	e.SetTargets(targets)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuSeconds()
	c0 := e.Counters()
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-rec.done
	b.StopTimer()
	c1 := e.Counters()
	cpu1 := cpuSeconds()
	runtime.ReadMemStats(&ms1)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	sent := float64(c1.Sent - c0.Sent)
	if sent == 0 {
		b.Fatal("nothing sent")
	}
	b.ReportMetric((cpu1-cpu0)*1e6/sent, "cpu-µs/packet")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/sent, "allocs/packet")
	b.ReportMetric(float64(c1.SendCalls-c0.SendCalls+c1.RecvCalls-c0.RecvCalls)/sent, "syscalls/packet")
	b.ReportMetric(float64(c1.Lost-c0.Lost)/sent, "lost/packet")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
