package monitor

import (
	"testing"
	"time"
)

// TestHistoryIsTheWindowBySlice: a 30 s window has 60 slices of 0.5 s;
// each measurement lands in its slice, the newest last, and what left the
// window is gone.
func TestHistoryIsTheWindowBySlice(t *testing.T) {
	m, _ := newTestMonitor(t, Options{ICMP: func([]ICMPTarget) {}})
	if err := m.SetUEs([]UE{{Name: "cam-7", Addr: "127.0.0.7", Probes: []Probe{ICMP{Interval: time.Second}}}}); err != nil {
		t.Fatal(err)
	}
	m.Record(Result{UE: "cam-7", Probe: KindICMP, At: at(0), RTT: ms(99)}) // out of the window at 40s
	m.Record(Result{UE: "cam-7", Probe: KindICMP, At: at(20 * time.Second), RTT: ms(10)})
	m.Record(Result{UE: "cam-7", Probe: KindICMP, At: at(20*time.Second + 100*time.Millisecond), RTT: ms(30)})
	m.Record(Result{UE: "cam-7", Probe: KindICMP, At: at(39*time.Second + 600*time.Millisecond), Lost: true})
	pts, width, ok := m.History("cam-7", at(40*time.Second), nil)
	if !ok || width != 500*time.Millisecond || len(pts) != 60 {
		t.Fatalf("history: ok %v, width %v, %d points", ok, width, len(pts))
	}
	// 40s is slice 80; the window is slices 21..80; 20s is slice 40, index 19; 39.6s is slice 79, index 58.
	want := map[int]HistoryPoint{19: {Samples: 2, Mean: ms(20), Max: ms(30)}, 58: {Lost: 1}}
	for i, p := range pts {
		if p != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, p, want[i])
		}
	}
	if _, _, ok := m.History("nobody", at(0), nil); ok {
		t.Error("history of an unknown UE")
	}
}
