package icmp

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func TestSpreadPhasesEvenFromEmpty(t *testing.T) {
	got := spreadPhases(nil, 4, 1000*ms)
	want := []int64{0, 250 * ms, 500 * ms, 750 * ms}
	if !slices.Equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	if got := spreadPhases([]int64{1}, 0, 1000*ms); len(got) != 0 {
		t.Fatalf("0 new phases: %v", got)
	}
}

func TestSpreadPhasesFillLargestGaps(t *testing.T) {
	// Ten targets kept at 0..45 ms of a 100 ms interval: ten new ones go
	// into the empty half, 5 ms apart, leaving no gap above 5 ms.
	var taken []int64
	for i := range 10 {
		taken = append(taken, int64(i)*5*ms)
	}
	got := spreadPhases(taken, 10, 100*ms)
	all := append(slices.Clone(taken), got...)
	slices.Sort(all)
	if gap := maxGap(all, 100*ms); gap > 5*ms {
		t.Fatalf("largest gap %v after adding %v to %v", time.Duration(gap), got, taken)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("new phases out of order: %v", got)
	}

	// Random existing phases: adding n never leaves a gap larger than the
	// largest gap before, cut into as many pieces as points went in.
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		iv := 1000 * ms
		taken := make([]int64, 1+r.IntN(50))
		for i := range taken {
			taken[i] = r.Int64N(iv)
		}
		n := r.IntN(200)
		got := spreadPhases(taken, n, iv)
		if len(got) != n {
			t.Fatalf("%d phases, want %d", len(got), n)
		}
		for _, p := range got {
			if p < 0 || p >= iv {
				t.Fatalf("phase %d outside [0, %d)", p, iv)
			}
		}
		before := slices.Clone(taken)
		slices.Sort(before)
		after := append(slices.Clone(taken), got...)
		slices.Sort(after)
		if n > 0 && maxGap(after, iv) > maxGap(before, iv) {
			t.Fatalf("gap grew from %d to %d", maxGap(before, iv), maxGap(after, iv))
		}
		// Even spread: the largest gap is at most twice the average.
		if n >= len(taken)*4 && maxGap(after, iv) > 2*iv/int64(len(after))+1 {
			t.Fatalf("largest gap %d with %d points over %d", maxGap(after, iv), len(after), iv)
		}
	}
}

func maxGap(sorted []int64, interval int64) int64 {
	g := sorted[0] + interval - sorted[len(sorted)-1]
	for i := 1; i < len(sorted); i++ {
		g = max(g, sorted[i]-sorted[i-1])
	}
	return g
}

func TestFirstCycle(t *testing.T) {
	cases := []struct{ now, phase, interval, want int64 }{
		{0, 0, 1000, 0},
		{0, 300, 1000, 300},
		{300, 300, 1000, 300},
		{301, 300, 1000, 1300},
		{2500, 300, 1000, 3300},
		{2300, 300, 1000, 2300},
	}
	for _, c := range cases {
		if got := firstCycle(c.now, c.phase, c.interval); got != c.want {
			t.Errorf("firstCycle(%d, %d, %d) = %d, want %d", c.now, c.phase, c.interval, got, c.want)
		}
	}
}

func TestTargetAdvance(t *testing.T) {
	tg, err := newTarget(Target{UE: "a", Addr: netip.MustParseAddr("127.0.0.1"),
		Interval: time.Second, Packets: 3, Spacing: 100 * time.Millisecond, Timeout: time.Second}, nil, 250*ms)
	if err != nil {
		t.Fatal(err)
	}
	tg.start(0)
	var dues []int64
	for range 7 {
		dues = append(dues, tg.due)
		tg.advance(tg.due)
	}
	want := []int64{250 * ms, 350 * ms, 450 * ms, 1250 * ms, 1350 * ms, 1450 * ms, 2250 * ms}
	if !slices.Equal(dues, want) {
		t.Fatalf("sends at %v, want %v", dues, want)
	}

	// Sent 3.5 cycles late: the missed cycles are skipped, phase kept.
	tg.start(0)
	tg.advance(250 * ms)
	tg.advance(350 * ms)
	tg.advance(3700 * ms)
	if tg.due != 3250*ms || tg.sentInCycle != 0 {
		t.Fatalf("after falling behind: due %v, packet %d; want 3.25s, 0", time.Duration(tg.due), tg.sentInCycle)
	}
}

func TestSendQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var q sendQueue
	live := map[*target]bool{}
	for i := range 2000 {
		switch op := r.IntN(4); {
		case op < 2 || len(q) == 0:
			tg := &target{due: r.Int64N(1e6), heapIndex: -1}
			q.push(tg)
			live[tg] = true
		case op == 2:
			tg := q[r.IntN(len(q))]
			q.remove(tg)
			delete(live, tg)
			if tg.heapIndex != -1 {
				t.Fatalf("removed target keeps index %d", tg.heapIndex)
			}
		default:
			q[0].due += r.Int64N(1e5)
			q.fix(0)
		}
		checkHeap(t, q, i)
	}
	if len(q) != len(live) {
		t.Fatalf("%d queued, %d live", len(q), len(live))
	}
	for i := range q {
		q[i].due = r.Int64N(1e6)
	}
	q.init()
	checkHeap(t, q, -1)
}

func checkHeap(t *testing.T, q sendQueue, step int) {
	t.Helper()
	for i, tg := range q {
		if tg.heapIndex != i {
			t.Fatalf("step %d: target at %d has index %d", step, i, tg.heapIndex)
		}
		if i > 0 && q[(i-1)/2].due > tg.due {
			t.Fatalf("step %d: heap order broken at %d", step, i)
		}
	}
}

func TestDeadlineQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var q deadlineQueue
	var want []int64
	for range 1000 {
		at := r.Int64N(1e6)
		q.push(deadline{at: at, serial: uint64(at)})
		want = append(want, at)
	}
	slices.Sort(want)
	for i, w := range want {
		d := q.pop()
		if d.at != w || d.serial != uint64(w) {
			t.Fatalf("pop %d: %+v, want at %d", i, d, w)
		}
	}
	if len(q) != 0 {
		t.Fatalf("%d left", len(q))
	}
}

func TestSlotTableGrowKeepsEntries(t *testing.T) {
	st := newSlotTable(4)
	tg := &target{}
	for serial := uint64(100); serial < 110; serial++ {
		sl := st.claim(serial)
		*sl = slot{serial: serial, sentAt: int64(serial), t: tg, state: slotPending}
	}
	if len(st.slots) != 16 {
		t.Fatalf("%d slots for 10 in flight, want 16", len(st.slots))
	}
	for serial := uint64(100); serial < 110; serial++ {
		if sl := st.at(serial); sl.serial != serial || sl.state != slotPending || sl.sentAt != int64(serial) {
			t.Fatalf("serial %d: slot %+v", serial, *sl)
		}
	}
	// Answered slots are reused without growing.
	for serial := uint64(100); serial < 110; serial++ {
		st.at(serial).state = slotAnswered
	}
	for serial := uint64(110); serial < 200; serial++ {
		*st.claim(serial) = slot{serial: serial, state: slotAnswered}
	}
	if len(st.slots) != 16 {
		t.Fatalf("grew to %d slots with nothing in flight", len(st.slots))
	}
}
