package monitor

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

func TestRecordedHookSeesEveryMeasurementOfKnownUEs(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	m, err := New(Options{Recorded: func(ue string) {
		mu.Lock()
		seen = append(seen, ue)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetUEs([]UE{{Name: "cam-1", Addr: "127.0.0.1", Probes: []Probe{TCP{Address: "127.0.0.1:9", Interval: time.Second}}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.Record(Result{UE: "cam-1", Probe: KindTCP, At: now, RTT: time.Millisecond})
	m.Record(Result{UE: "cam-1", Probe: KindTCP, At: now, Lost: true})
	m.Record(Result{UE: "other", Probe: KindTCP, At: now, RTT: time.Millisecond})      // not configured
	m.Record(Result{UE: "cam-1", Probe: KindTCP, At: now, Err: errors.New("refused")}) // no measurement
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "cam-1" || seen[1] != "cam-1" {
		t.Fatalf("Recorded saw %v, want cam-1 twice", seen)
	}
}

// Scheduled probes (tcp here) record through the scheduler, not through
// Record: the hook must fire for them too.
func TestRecordedHookSeesScheduledProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hits := make(chan string, 16)
	m, err := New(Options{Recorded: func(ue string) {
		select {
		case hits <- ue:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetUEs([]UE{{Name: "cam-1", Addr: "127.0.0.1", Probes: []Probe{TCP{Address: ln.Addr().String(), Interval: 100 * time.Millisecond}}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	select {
	case ue := <-hits:
		if ue != "cam-1" {
			t.Fatalf("hook got %q", ue)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Recorded call for a scheduled tcp probe within 10s")
	}
}
