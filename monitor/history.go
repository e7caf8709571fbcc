package monitor

import (
	"math"
	"time"
)

// HistoryPoint is one time slice of a UE's window: what the status page
// draws as a sparkline. It is read from the window itself, so keeping a
// history costs no memory.
type HistoryPoint struct {
	Samples, Lost int
	Mean, Max     time.Duration // of the answered round trips; 0 without
}

// History returns the window of ue ending at now as its time slices
// (a 60th of the window each, or narrower for fast probes), oldest first,
// appended to dst; the width of a slice; and false if the UE is not in the
// set. Without a latency probe every point is empty.
func (m *Monitor) History(ue string, now time.Time, dst []HistoryPoint) ([]HistoryPoint, time.Duration, bool) {
	st := m.set.Load().byName[ue]
	if st == nil {
		return dst, 0, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	out, width := st.win.history(now, dst)
	return out, width, true
}

func (w *window) history(now time.Time, dst []HistoryPoint) ([]HistoryPoint, time.Duration) {
	if w.width == 0 {
		return dst, 0
	}
	cur := w.slice(now.UnixNano())
	span := w.slicesInSpan()
	start := len(dst)
	for range span {
		dst = append(dst, HistoryPoint{})
	}
	pts := dst[start:]
	sums := make([]uint64, span)
	if w.buckets != nil && w.head != noSlice {
		nb := int64(len(w.buckets))
		for sl := max(w.head-nb+1, cur-span+1); sl <= min(w.head, cur); sl++ {
			b := &w.buckets[mod(sl, nb)]
			p := &pts[span-1-(cur-sl)]
			p.Samples, p.Lost = int(b.n), int(b.lost)
			p.Max = time.Duration(b.maxUS) * time.Microsecond
			sums[span-1-(cur-sl)] = b.sumUS
		}
	} else {
		nowTick := floorDiv(now.UnixNano(), tickNS)
		for _, e := range w.ring[:w.filled] {
			ticks := uint32(nowTick) - e.tick
			if ticks > math.MaxUint32/2 { // recorded after now
				continue
			}
			age := cur - w.slice((nowTick-int64(ticks))*tickNS)
			if age >= span {
				continue
			}
			p := &pts[span-1-age]
			if e.rttUS == lost {
				p.Lost++
				continue
			}
			p.Samples++
			sums[span-1-age] += uint64(e.rttUS)
			p.Max = max(p.Max, time.Duration(e.rttUS)*time.Microsecond)
		}
	}
	for i := range pts {
		if pts[i].Samples > 0 {
			pts[i].Mean = time.Duration(sums[i]/uint64(pts[i].Samples)) * time.Microsecond
		}
	}
	return dst, time.Duration(w.width)
}
