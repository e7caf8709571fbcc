package icmp

import (
	"container/heap"
	"sort"
)

// All times inside the engine are int64 nanoseconds since the engine was
// created ("mono"): cheap to compare and store, and immune to wall-clock steps.

// target is the engine's state for one Target.
type target struct {
	cfg  Target
	sock *socket

	sa    [sizeofSockaddrInet6]byte // destination, ready for sendmmsg
	saLen uint32
	addr  [16]byte // destination address bytes, to check a reply's source

	interval, spacing int64
	timeout           int64
	packets           int

	phase       int64 // cycle starts are ≡ phase (mod interval)
	cycleStart  int64 // start of the current cycle
	sentInCycle int   // packets of the current cycle already sent
	due         int64 // when the next packet is due
	heapIndex   int   // position in the send queue, -1 when not queued
	removed     bool  // dropped by SetTargets: its late answers are not recorded
}

func newTarget(cfg Target, sock *socket, phase int64) (*target, error) {
	t := &target{
		cfg:       cfg,
		sock:      sock,
		interval:  int64(cfg.Interval),
		spacing:   int64(cfg.Spacing),
		timeout:   int64(cfg.Timeout),
		packets:   cfg.Packets,
		phase:     phase,
		heapIndex: -1,
	}
	n, err := putSockaddr(t.sa[:], cfg.Addr)
	if err != nil {
		return nil, err
	}
	t.saLen = n
	t.addr = cfg.Addr.As16()
	return t, nil
}

// start schedules the first cycle: the first moment at or after now that is
// in phase.
func (t *target) start(now int64) {
	t.cycleStart = firstCycle(now, t.phase, t.interval)
	t.sentInCycle = 0
	t.due = t.cycleStart
}

func firstCycle(now, phase, interval int64) int64 {
	c := phase + (now-phase)/interval*interval
	if c < now {
		c += interval
	}
	return c
}

// advance moves t past the packet that was due at t.due and sent at now.
// When the engine has fallen more than a whole cycle behind (a stopped
// process, an overloaded host) it skips the missed cycles instead of
// sending them in a burst, keeping the phase.
func (t *target) advance(now int64) {
	t.sentInCycle++
	if t.sentInCycle < t.packets {
		t.due = t.cycleStart + int64(t.sentInCycle)*t.spacing
		return
	}
	t.sentInCycle = 0
	t.cycleStart += t.interval
	if behind := now - t.cycleStart; behind >= t.interval {
		t.cycleStart += behind / t.interval * t.interval
	}
	t.due = t.cycleStart
}

// fromTarget reports whether the source address of a reply (in 16-byte
// form, IPv4 mapped) is t's address.
func (t *target) fromTarget(src [16]byte) bool { return src == t.addr }

// sendQueue is a min-heap of targets by due time: the next send is at the
// top, so one timer set to the top's due time drives all sends.
type sendQueue []*target

func (q sendQueue) less(i, j int) bool { return q[i].due < q[j].due }

func (q sendQueue) swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].heapIndex = i
	q[j].heapIndex = j
}

func (q *sendQueue) push(t *target) {
	t.heapIndex = len(*q)
	*q = append(*q, t)
	q.up(t.heapIndex)
}

// init restores the heap after any number of due times changed.
func (q sendQueue) init() {
	for i := len(q)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}

// fix restores the heap after the due time of the target at i changed.
func (q sendQueue) fix(i int) {
	if !q.down(i) {
		q.up(i)
	}
}

func (q *sendQueue) remove(t *target) {
	i := t.heapIndex
	if i < 0 || i >= len(*q) || (*q)[i] != t {
		return
	}
	last := len(*q) - 1
	if i != last {
		q.swap(i, last)
	}
	(*q)[last] = nil
	*q = (*q)[:last]
	if i != last {
		q.fix(i)
	}
	t.heapIndex = -1
}

func (q sendQueue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q sendQueue) down(i int) bool {
	start := i
	n := len(q)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.swap(i, m)
		i = m
	}
	return i > start
}

// deadline is the moment the packet with serial times out.
type deadline struct {
	at     int64
	serial uint64
}

// deadlineQueue is a min-heap of packet deadlines. Packets of targets with
// equal timeouts are pushed in increasing order, which costs the heap almost
// nothing on push.
type deadlineQueue []deadline

func (q *deadlineQueue) push(d deadline) {
	*q = append(*q, d)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (q *deadlineQueue) pop() deadline {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	*q = h
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].at < h[l].at {
			m = r
		}
		if h[i].at <= h[m].at {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top
}

// spreadPhases returns n phases in [0, interval) for new targets that share
// the interval with targets already at the phases taken. With nothing taken
// the phases are exactly even; otherwise each new phase goes into the
// largest remaining gap, so a config reload keeps the send times even
// without moving the targets that did not change.
func spreadPhases(taken []int64, n int, interval int64) []int64 {
	out := make([]int64, 0, n)
	if n <= 0 {
		return out
	}
	if len(taken) == 0 {
		for i := 0; i < n; i++ {
			out = append(out, int64(i)*interval/int64(n))
		}
		return out
	}
	sorted := append([]int64(nil), taken...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	gaps := make(gapHeap, len(sorted))
	for i, p := range sorted {
		next := interval + sorted[0]
		if i+1 < len(sorted) {
			next = sorted[i+1]
		}
		gaps[i] = gap{start: p, length: next - p}
	}
	heap.Init(&gaps)
	for i := 0; i < n; i++ {
		gaps[0].points++
		heap.Fix(&gaps, 0)
	}
	// Emit in order of position so that phases follow the input order.
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].start < gaps[j].start })
	for _, g := range gaps {
		for k := 1; k <= g.points; k++ {
			p := g.start + g.length*int64(k)/int64(g.points+1)
			out = append(out, p%interval)
		}
	}
	return out
}

type gap struct {
	start, length int64
	points        int // new phases placed inside
}

// gapHeap is a max-heap of gaps by the size of the pieces they would be cut
// into with one more point.
type gapHeap []gap

func (h gapHeap) Len() int { return len(h) }
func (h gapHeap) Less(i, j int) bool {
	// length_i/(points_i+1) > length_j/(points_j+1), without division.
	return h[i].length*int64(h[j].points+1) > h[j].length*int64(h[i].points+1)
}
func (h gapHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *gapHeap) Push(x any)   { *h = append(*h, x.(gap)) }
func (h *gapHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
