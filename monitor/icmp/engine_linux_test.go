package icmp

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Root tests run the engine against loopback in the root network namespace
// in whatever mode ModeAuto picks there (raw on hosts where ping sockets are
// off); the unprivileged path is tested in its own namespace (netns_test.go).

func TestLoopbackManyTargets(t *testing.T) {
	requireRoot(t)
	targets, ues := loopbackTargets(500, 3, Target{
		Interval: 500 * time.Millisecond, Packets: 2, Spacing: 100 * time.Millisecond, Timeout: time.Second,
	})
	e, col := runEngine(t, ModeAuto, targets)
	col.waitFor(t, 15*time.Second, "4 replies from each of 500 targets", func() bool {
		return col.every(ues, func(u ueTally) bool { return u.replies >= 4 })
	})
	for _, ue := range ues {
		u := col.tally(ue)
		if u.lost != 0 || u.errs != 0 {
			t.Fatalf("%s: %d lost, %d errors (last %v)", ue, u.lost, u.errs, u.lastErr)
		}
		if u.maxRTT <= 0 || u.maxRTT >= time.Second {
			t.Fatalf("%s: max RTT %v, want within (0, 1s)", ue, u.maxRTT)
		}
	}
	c := e.Counters()
	if c.Lost != 0 || c.Late != 0 || c.Duplicates != 0 || c.SendErrors != 0 {
		t.Fatalf("counters %+v: want no loss, late, duplicate or send error", c)
	}
	if c.Received < 2000 || c.Sent < c.Received {
		t.Fatalf("counters %+v: want Received >= 2000 and Sent >= Received", c)
	}
	if c.SendCalls == 0 || c.RecvCalls == 0 {
		t.Fatalf("counters %+v: syscalls not counted", c)
	}
	t.Logf("mode %v, counters %+v", e.Mode(), c)
}

func TestIPv6Loopback(t *testing.T) {
	requireRoot(t)
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	// Two UEs on the same address: replies are told apart by serial.
	tmpl := Target{Addr: netip.IPv6Loopback(), Interval: 100 * time.Millisecond, Packets: 3, Spacing: 10 * time.Millisecond}
	a, b := tmpl, tmpl
	a.UE, b.UE = "v6-a", "v6-b"
	e, col := runEngine(t, ModeAuto, []Target{a, b})
	ues := []string{"v6-a", "v6-b"}
	col.waitFor(t, 10*time.Second, "6 replies from each IPv6 target", func() bool {
		return col.every(ues, func(u ueTally) bool { return u.replies >= 6 })
	})
	if c := e.Counters(); c.Lost != 0 || c.SendErrors != 0 || c.Duplicates != 0 {
		t.Fatalf("counters %+v: want no loss, send error or duplicate", c)
	}
	for _, ue := range ues {
		if rtt := col.tally(ue).maxRTT; rtt <= 0 || rtt >= time.Second {
			t.Fatalf("%s: max RTT %v, want within (0, 1s)", ue, rtt)
		}
	}
}

func TestSourceAddressSocket(t *testing.T) {
	requireRoot(t)
	tmpl := Target{Interval: 100 * time.Millisecond, Packets: 2, Spacing: 20 * time.Millisecond}
	any, anyUEs := loopbackTargets(10, 6, tmpl)
	tmpl.Source = netip.MustParseAddr("127.0.0.1")
	bound, boundUEs := loopbackTargets(10, 7, tmpl)
	e, col := runEngine(t, ModeAuto, append(any, bound...))
	ues := append(anyUEs, boundUEs...)
	col.waitFor(t, 10*time.Second, "4 replies from each target", func() bool {
		return col.every(ues, func(u ueTally) bool { return u.replies >= 4 })
	})
	e.mu.Lock()
	sockets := len(e.opened)
	e.mu.Unlock()
	if sockets != 2 {
		t.Fatalf("%d sockets open, want 2 (any source, and 127.0.0.1)", sockets)
	}
	// A raw socket bound to 127.0.0.1 and the wildcard one both get the
	// replies to packets sent from 127.0.0.1; neither copy may count twice.
	if c := e.Counters(); c.Duplicates != 0 || c.Lost != 0 || c.SendErrors != 0 {
		t.Fatalf("counters %+v: want no duplicate, loss or send error", c)
	}
}

func TestSetTargetsWhileRunning(t *testing.T) {
	requireRoot(t)
	tmpl := Target{Interval: 100 * time.Millisecond, Packets: 1, Timeout: 500 * time.Millisecond}
	first, firstUEs := loopbackTargets(20, 8, tmpl)
	e, col := runEngine(t, ModeAuto, first)
	col.waitFor(t, 10*time.Second, "2 replies from each first target", func() bool {
		return col.every(firstUEs, func(u ueTally) bool { return u.replies >= 2 })
	})

	kept, removed := first[:10], firstUEs[10:]
	e.mu.Lock()
	before := map[string]*target{}
	phases := map[string]int64{}
	for _, tg := range e.targets {
		before[tg.cfg.UE], phases[tg.cfg.UE] = tg, tg.phase
	}
	e.mu.Unlock()

	added, addedUEs := loopbackTargets(10, 9, tmpl)
	e.SetTargets(append(append([]Target(nil), kept...), added...))
	setAt := time.Now()
	keptReplies := map[string]int{}
	for _, tg := range kept {
		keptReplies[tg.UE] = col.tally(tg.UE).replies
	}
	col.waitFor(t, 10*time.Second, "3 replies from each added and 3 more from each kept target", func() bool {
		return col.every(addedUEs, func(u ueTally) bool { return u.replies >= 3 }) &&
			func() bool {
				for ue, n := range keptReplies {
					if col.tally(ue).replies < n+3 {
						return false
					}
				}
				return true
			}()
	})

	for _, ue := range removed {
		for _, at := range col.tally(ue).at {
			if at.After(setAt) {
				t.Fatalf("%s: reply recorded at %v, after it was removed at %v", ue, at, setAt)
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.targets) != 20 || len(e.sends) != 20 {
		t.Fatalf("%d targets, %d queued; want 20", len(e.targets), len(e.sends))
	}
	var all []int64
	for _, tg := range e.targets {
		all = append(all, tg.phase)
		if old, ok := before[tg.cfg.UE]; ok {
			if old != tg || tg.phase != phases[tg.cfg.UE] {
				t.Fatalf("%s: kept target replaced or moved (phase %v -> %v)", tg.cfg.UE, time.Duration(phases[tg.cfg.UE]), time.Duration(tg.phase))
			}
		}
	}
	for _, ue := range removed {
		if tg := before[ue]; !tg.removed || tg.heapIndex != -1 {
			t.Fatalf("%s: still scheduled after removal", ue)
		}
	}
	slices.Sort(all)
	// Kept at 0, 5, ..., 45 ms of the 100 ms interval; the added ones fill
	// the other half 5 ms apart.
	if gap := maxGap(all, int64(100*time.Millisecond)); gap > int64(5*time.Millisecond) {
		t.Fatalf("largest gap between phases %v, want 5ms: %v", time.Duration(gap), all)
	}
}

func TestLateRepliesAreNotMatched(t *testing.T) {
	requireRoot(t)
	// No loopback reply comes back within a nanosecond.
	targets, ues := loopbackTargets(5, 10, Target{Interval: 100 * time.Millisecond, Packets: 1, Timeout: time.Nanosecond})
	e, col := runEngine(t, ModeAuto, targets)
	col.waitFor(t, 10*time.Second, "3 losses per target", func() bool {
		return col.every(ues, func(u ueTally) bool { return u.lost >= 3 })
	})
	for _, ue := range ues {
		if u := col.tally(ue); u.replies != 0 || u.errs != 0 {
			t.Fatalf("%s: %d replies, %d errors; want only losses", ue, u.replies, u.errs)
		}
	}
	c := e.Counters()
	if c.Received != 0 || c.Late == 0 || c.Late > c.Lost {
		t.Fatalf("counters %+v: want no match and late replies among the lost", c)
	}
}

func TestRunOnlyOnce(t *testing.T) {
	requireRoot(t)
	e, _ := runEngine(t, ModeAuto, nil)
	if err := e.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil || err.Error() != "icmp engine: no Recorder" {
		t.Fatalf("no recorder: %v", err)
	}
	if _, err := New(Options{Recorder: newCollector(), Mode: 9}); err == nil || err.Error() != "icmp engine: unknown mode 9" {
		t.Fatalf("bad mode: %v", err)
	}
}
