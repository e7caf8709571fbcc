package monitor

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// task is one scheduled probe of one UE. Its phase (next) survives a reload
// when the UE keeps the probe unchanged.
type task struct {
	ue       *ueState
	spec     Probe
	kind     kind
	r        runner
	interval time.Duration
	valueIdx int // index into ue.values for prometheus probes

	next    time.Time   // guarded by Monitor.sched
	index   int         // position in the heap; guarded by Monitor.sched
	running atomic.Bool // a run is in flight
	removed atomic.Bool // dropped by a reload; an in-flight run records nothing
}

// taskHeap orders tasks by their next run.
type taskHeap []*task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h taskHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *taskHeap) Push(x any) {
	t := x.(*task)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
func (h *taskHeap) push(t *task) { heap.Push(h, t) }

// spread gives new tasks their first run: tasks of the same interval start
// evenly spaced over one interval from now, so a fleet is never probed in a
// burst.
func spread(fresh []*task, now time.Time) {
	groups := map[time.Duration][]*task{}
	var order []time.Duration
	for _, t := range fresh {
		if _, ok := groups[t.interval]; !ok {
			order = append(order, t.interval)
		}
		groups[t.interval] = append(groups[t.interval], t)
	}
	for _, iv := range order {
		ts := groups[iv]
		for i, t := range ts {
			t.next = now.Add(time.Duration(int64(iv) * int64(i) / int64(len(ts))))
		}
	}
}

// idleWait is how long the scheduler sleeps with nothing queued; SetUEs
// wakes it early.
const idleWait = time.Hour

// Run runs the probes until ctx ends, then waits for the runs in flight and
// returns nil. The ICMP targets are handed to Options.ICMP from here, and
// re-resolved names are handed on as they change.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("monitor: Run is already running")
	}
	defer m.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	if m.opts.ICMP != nil {
		wg.Go(func() { m.icmpLoop(ctx) })
	}
	var due []*task
	for {
		now := m.clock.Now()
		m.sched.Lock()
		due = m.popDue(now, due[:0])
		wait := idleWait
		if len(m.queue) > 0 {
			wait = m.queue[0].next.Sub(now)
		}
		m.sched.Unlock()

		for _, t := range due {
			if !t.running.CompareAndSwap(false, true) {
				m.skipped[t.kind].Add(1) // previous run still going
				continue
			}
			wg.Go(func() {
				defer t.running.Store(false)
				m.execute(ctx, t)
			})
		}
		clear(due)

		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-m.clock.After(wait):
		}
	}
}

// popDue returns the tasks due at now and moves each to its next run,
// keeping its phase even when the scheduler fell behind.
func (m *Monitor) popDue(now time.Time, due []*task) []*task {
	for len(m.queue) > 0 && !m.queue[0].next.After(now) {
		t := m.queue[0]
		t.next = t.next.Add(t.interval)
		if !t.next.After(now) {
			behind := now.Sub(t.next)
			t.next = t.next.Add(behind - behind%t.interval + t.interval)
		}
		heap.Fix(&m.queue, 0)
		due = append(due, t)
	}
	return due
}

// execute runs one task within the concurrency bound and records what it
// measured.
func (m *Monitor) execute(ctx context.Context, t *task) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-m.sem }()

	st := t.ue
	if !t.r.passive() {
		if t.r.exclusive() {
			st.excl.Lock()
			st.exclusive.Store(true)
			defer func() {
				st.exclusive.Store(false)
				st.excl.Unlock()
			}()
		} else {
			if !st.excl.TryRLock() {
				m.skipped[t.kind].Add(1) // the UE is busy with a throughput run
				return
			}
			defer st.excl.RUnlock()
		}
	}
	if ctx.Err() != nil || t.removed.Load() {
		return
	}
	o := t.r.run(ctx, m.env)
	if ctx.Err() != nil || t.removed.Load() {
		return // shutting down or reloaded: not a measurement
	}
	o.UE, o.Probe = st.name, kindNames[t.kind]
	if o.At.IsZero() {
		o.At = m.clock.Now()
	}
	m.recordOutcome(st, t, &o)
}

func (m *Monitor) recordOutcome(st *ueState, t *task, o *outcome) {
	st.mu.Lock()
	if o.status != 0 {
		st.status = o.status
	}
	st.bytes += uint64(max(o.bytes, 0))
	if o.Err != nil {
		logf := m.recordError(st, t.kind, o.Err, o.At.UnixNano())
		st.mu.Unlock()
		if logf != nil {
			logf()
		}
		return
	}
	if t.kind == kPrometheus && t.valueIdx >= 0 && t.valueIdx < len(st.values) {
		st.values[t.valueIdx].Value = o.Value
		st.values[t.valueIdx].At = o.At
	}
	st.record(t.kind, &o.Result, m.fleet)
	var logf func()
	if st.errs != nil {
		logf = m.recovered(st, t.kind, o.At.UnixNano())
	}
	st.mu.Unlock()
	if logf != nil {
		logf()
	}
	if m.opts.Recorded != nil {
		m.opts.Recorded(st.name)
	}
}
