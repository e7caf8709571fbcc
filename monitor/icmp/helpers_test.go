package icmp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
)

// collector is a Recorder that keeps per-UE tallies and wakes waiters on
// every result, so tests wait for conditions instead of sleeping.
type collector struct {
	mu      sync.Mutex
	byUE    map[string]*ueTally
	changed chan struct{}
}

type ueTally struct {
	replies, lost, errs int
	maxRTT              time.Duration
	lastAt              time.Time
	lastErr             error
	at                  []time.Time // At of every reply
}

func newCollector() *collector {
	return &collector{byUE: map[string]*ueTally{}, changed: make(chan struct{}, 1)}
}

func (c *collector) Record(r monitor.Result) {
	c.mu.Lock()
	u := c.byUE[r.UE]
	if u == nil {
		u = &ueTally{}
		c.byUE[r.UE] = u
	}
	switch {
	case r.Err != nil:
		u.errs++
		u.lastErr = r.Err
	case r.Lost:
		u.lost++
	default:
		u.replies++
		u.maxRTT = max(u.maxRTT, r.RTT)
		u.at = append(u.at, r.At)
	}
	if r.Probe != "icmp" {
		u.errs++
		u.lastErr = fmt.Errorf("probe %q", r.Probe)
	}
	u.lastAt = r.At
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// tally returns a copy of the tally of ue.
func (c *collector) tally(ue string) ueTally {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.byUE[ue]; u != nil {
		cp := *u
		cp.at = append([]time.Time(nil), u.at...)
		return cp
	}
	return ueTally{}
}

// waitFor returns once cond holds, failing the test after timeout. It
// re-checks cond whenever a result arrives.
func (c *collector) waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// every reports whether f holds for the tallies of all ues.
func (c *collector) every(ues []string, f func(ueTally) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ue := range ues {
		u := c.byUE[ue]
		if u == nil {
			u = &ueTally{}
		}
		if !f(*u) {
			return false
		}
	}
	return true
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runEngine creates an engine with targets, runs it until the test ends
// and waits until it is ready.
func runEngine(t *testing.T, mode Mode, targets []Target) (*Engine, *collector) {
	t.Helper()
	col := newCollector()
	e, err := New(Options{Recorder: col, Mode: mode, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.SetTargets(targets)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-e.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("engine not ready after 5s")
	}
	return e, col
}

// loopbackTargets returns n targets at distinct addresses of 127.0.0.0/8
// starting at 127.<second>.0.1.
func loopbackTargets(n int, second byte, tmpl Target) ([]Target, []string) {
	ts := make([]Target, 0, n)
	ues := make([]string, 0, n)
	for i := 0; i < n; i++ {
		t := tmpl
		t.UE = fmt.Sprintf("ue-%d-%d", second, i)
		t.Addr = netip.AddrFrom4([4]byte{127, second, byte(i / 250), byte(i%250 + 1)})
		ts = append(ts, t)
		ues = append(ues, t.UE)
	}
	return ts, ues
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (raw sockets, network namespaces)")
	}
}
