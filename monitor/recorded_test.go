package monitor

import (
	"errors"
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
