package icmp

import (
	"net"
	"net/netip"
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
}
