package daemon

import (
	"runtime"
	"testing"
	"time"
)

// TestStatusPageReadsOnlyItsUEs: a page's cost follows the page, not the
// fleet. Ordering the UEs reads a brief of each (tens of bytes); the full
// status, with its formatted texts, is built for the page's UEs only
// (issue 12). Building every UE's status took about 2 KiB a UE.
func TestStatusPageReadsOnlyItsUEs(t *testing.T) {
	const n = 4000
	d := benchDaemon(t, n, time.Now)
	d.statusOf(statusQuery{page: 1, perPage: 1}) // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v := d.statusOf(statusQuery{page: 3, perPage: 1})
	runtime.ReadMemStats(&after)
	// By name: ue-0, ue-1, ue-10.
	if v.TotalUEs != n || len(v.UEs) != 1 || v.UEs[0].UE != "ue-10" {
		t.Fatalf("page 3 of 1: %d UEs in all, page %+v", v.TotalUEs, v.UEs)
	}
	perUE := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per UE of the fleet for a page of one", perUE)
	if perUE > 300 {
		t.Errorf("one page of one UE allocated %.0f bytes per UE of the fleet; want under 300", perUE)
	}
}
