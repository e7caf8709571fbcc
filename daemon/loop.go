package daemon

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qodwatch/qodwatch/policy"
)

// The control loop decides on events, and keeps the tick as a safety net.
//
//   - A sample: the monitor calls markDirty when a measurement enters a UE's
//     window; the next pass evaluates that UE. A breach is seen when the
//     probe that shows it returns, not at the next tick.
//   - A due time: the policy says when a UE's state next changes by the
//     clock alone (a `for` ends, a cooldown, a backoff, a renewal); one
//     timer wakes the loop at the earliest, and the pass evaluates the UEs
//     due. A breach's `for` fires at exactly since + for.
//   - The tick (config `tick`) evaluates every UE, or the next
//     sweepPerTick of a larger fleet, and does what is periodic: polling
//     sessions, reading the state file, pruning.
//
// Every trigger runs the same level-triggered evaluation, so an extra one
// is harmless; a pass evaluates each UE at most once, and passes are at
// least passGap apart, so a flood of samples is evaluated in batches.

// passGap is the least time between two passes over dirty UEs: samples that
// arrive meanwhile are evaluated together, each UE once. It bounds the
// evaluations to one per UE per passGap and adds at most passGap to the
// time to decide.
const passGap = 5 * time.Millisecond

// dirtyUEs are the UEs with a sample not yet evaluated. mark runs on the
// monitor's hot path (every ICMP reply: tens of thousands a second with
// large fleets): a lock-free map lookup and an atomic flag, and a lock only
// when a UE turns dirty. It does not allocate once the queue has grown.
type dirtyUEs struct {
	flags atomic.Pointer[map[string]*dirtyFlag] // replaced whole on reload
	mu    sync.Mutex
	queue []*dirtyFlag
	wake  chan<- struct{}
}

type dirtyFlag struct {
	name  string
	dirty atomic.Bool
}

// setUEs makes the UEs named those that can be marked, keeping the flags of
// UEs already known.
func (s *dirtyUEs) setUEs(names []string) {
	var old map[string]*dirtyFlag
	if p := s.flags.Load(); p != nil {
		old = *p
	}
	m := make(map[string]*dirtyFlag, len(names))
	for _, n := range names {
		f := old[n]
		if f == nil {
			f = &dirtyFlag{name: n}
		}
		m[n] = f
	}
	s.flags.Store(&m)
}

// mark notes a new sample of ue and wakes the loop if it was idle.
func (s *dirtyUEs) mark(ue string) {
	p := s.flags.Load()
	if p == nil {
		return
	}
	f := (*p)[ue]
	if f == nil || f.dirty.Load() || !f.dirty.CompareAndSwap(false, true) {
		return // unknown, or queued already
	}
	s.mu.Lock()
	s.queue = append(s.queue, f)
	first := len(s.queue) == 1
	s.mu.Unlock()
	if first {
		wake(s.wake)
	}
}

// take appends the dirty UEs to dst and clears their marks, so that a
// sample arriving while they are evaluated marks them again.
func (s *dirtyUEs) take(dst []*dirtyFlag) []*dirtyFlag {
	s.mu.Lock()
	dst = append(dst, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	s.mu.Unlock()
	for _, f := range dst {
		f.dirty.Store(false)
	}
	return dst
}

// pending reports whether a UE is dirty.
func (s *dirtyUEs) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// wake signals the loop without blocking; one pending signal is enough.
func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// kick makes the loop look again at what is due: the engine has just been
// told of an API outcome, which makes the UE due at once.
func (d *Daemon) kick() { wake(d.wake) }

// loop runs the control loop until ctx ends.
func (d *Daemon) loop(ctx context.Context) {
	d.mu.Lock()
	tick := d.cfg.Tick
	d.mu.Unlock()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	passAt := time.NewTimer(time.Hour)
	passAt.Stop()
	defer passAt.Stop()
	var batch []*dirtyFlag // reused across passes
	var last time.Time     // when the last pass ran
	d.kick()               // UEs adopted at start are due at once
	for {
		d.loopAlive()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			// A part of the fleet: what is dirty is left to the pass.
			d.tick(sweepPerTick)
			d.mu.Lock()
			if d.cfg.Tick != tick { // reloaded
				tick = d.cfg.Tick
				ticker.Reset(tick)
			}
			d.mu.Unlock()
		case <-d.wake:
		case <-passAt.C:
			batch = d.dirty.take(batch[:0])
			d.pass(batch)
			clear(batch)
			last = d.now()
		}
		// The next pass: as soon as the gap allows if a UE is dirty, and at
		// the earliest due time in any case.
		now := d.now()
		var at time.Time
		if d.dirty.pending() {
			at = last.Add(passGap)
		}
		d.mu.Lock()
		due := d.engine.NextDue()
		d.mu.Unlock()
		if !due.IsZero() && (at.IsZero() || due.Before(at)) {
			at = due
		}
		if at.IsZero() {
			passAt.Stop()
		} else {
			passAt.Reset(max(0, at.Sub(now)))
		}
	}
}

// pass evaluates the UEs in dirty (those with new samples), then every UE
// whose due time has come, and carries out what the policy decides, as
// Tick does.
func (d *Daemon) pass(dirty []*dirtyFlag) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.decide(now, func() {
		for _, f := range dirty {
			d.evaluate(now, f.name)
		}
		d.metrics.evalSample.Add(float64(len(dirty)))
		// Those just evaluated are due after now, so none comes twice.
		d.dueNames = d.engine.DueUEs(now, d.dueNames[:0])
		for _, ue := range d.dueNames {
			d.evaluate(now, ue)
		}
		d.metrics.evalDue.Add(float64(len(d.dueNames)))
	})
}

// evaluate runs the policy for one UE and keeps its decision. The caller
// holds d.mu, within decide.
func (d *Daemon) evaluate(now time.Time, ue string) {
	dec, err := d.engine.Evaluate(now, ue, d.observe(ue))
	if err != nil {
		return // not in the config (any more): a sample that raced a reload
	}
	if dec.Kind != policy.None {
		d.decisions = append(d.decisions, dec)
	}
}

// decide runs evaluate, which appends decisions to d.decisions, and starts
// what they ask for. Expired sessions are ended first: the engine must not
// find one expired on its own, unseen by the state file. The caller holds
// d.mu.
func (d *Daemon) decide(now time.Time, evaluate func()) {
	d.expireHeld(now)
	d.decisions = d.decisions[:0]
	evaluate()
	for _, dec := range d.decisions {
		d.dispatch(dec)
	}
}
