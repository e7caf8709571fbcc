package monitor

import "time"

// The fleet families: what every UE's window says, as histograms across
// UEs, so a fleet of 100,000 is watched in a few hundred series whether or
// not its per-UE series are exported (issue 13). They are summed from the
// window figures a scrape computes anyway, so they cost no work of their
// own on the probes' path.

// Bucket bounds across UEs: latency as the round-trip histogram's; loss
// from none to all; throughput from a stalled link to a fast one; the age
// of the last sample from fresh to an hour.
var (
	lossBuckets = []float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1}
	tputBuckets = []float64{12500, 125000, 625000, 1.25e6, 2.5e6, 6.25e6, 12.5e6, 62.5e6, 125e6} // 0.1 to 1,000 Mbit/s
	ageBuckets  = []float64{1, 5, 15, 30, 60, 120, 300, 900, 3600}
)

// fleetHistogram is a classic histogram counted once per scrape.
type fleetHistogram struct {
	bounds []float64
	counts []uint64 // not cumulative
	count  uint64
	sum    float64
}

func newFleetHistogram(bounds []float64) fleetHistogram {
	return fleetHistogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *fleetHistogram) observe(v float64) {
	for i, ub := range h.bounds {
		if v <= ub {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += v
}

// fleetFigures are the fleet families of one scrape.
type fleetFigures struct {
	p95, loss, tput, age fleetHistogram
	neverMeasured        int
}

func newFleetFigures() fleetFigures {
	return fleetFigures{p95: newFleetHistogram(rttBuckets[:]), loss: newFleetHistogram(lossBuckets),
		tput: newFleetHistogram(tputBuckets), age: newFleetHistogram(ageBuckets)}
}

// add counts one UE's window as the per-UE families export it: a figure
// absent there is left out here.
func (f *fleetFigures) add(w *winFigures, now time.Time) {
	if w.hasLat && w.samples > 0 {
		f.p95.observe(w.p95.Seconds())
	}
	if n := w.samples + w.lost; w.hasLat && n > 0 {
		f.loss.observe(float64(w.lost) / float64(n))
	}
	if w.tputSamples > 0 {
		f.tput.observe(w.throughput)
	}
	if w.last == 0 {
		f.neverMeasured++
	} else {
		f.age.observe(max(0, float64(now.UnixNano()-w.last)/1e9))
	}
}

// SelectUEs sets what picks, once per scrape, the UEs whose per-UE series
// /metrics has: sel returns a predicate on UE names, or nil for all UEs.
// The fleet families and qodwatch_ues cover every UE regardless. A daemon
// with 100,000 UEs keeps the few that hold a session (issue 13).
func (m *Monitor) SelectUEs(sel func() func(ue string) bool) {
	if sel == nil {
		m.selector.Store(nil)
		return
	}
	m.selector.Store(&sel)
}

// selected is the selector's predicate for one scrape; nil picks all.
func (m *Monitor) selected() func(ue string) bool {
	if sel := m.selector.Load(); sel != nil {
		return (*sel)()
	}
	return nil
}
