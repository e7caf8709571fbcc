package daemon

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qodwatch/qodwatch/config"
)

// lifecycle is what a service manager asks of the daemon: when it is ready
// (systemd's READY=1, Kubernetes' startup probe) and whether its control
// loop still runs (the watchdog).
type lifecycle struct {
	ready     chan struct{} // closed once ready
	readyOnce sync.Once
	done      atomic.Bool // the first probe cycle is over: seen needs no lock

	mu      sync.Mutex
	pending map[string]bool // UEs not measured yet in the first cycle

	loopAt atomic.Int64 // wall clock (unix ns) of the control loop's last wake
}

func newLifecycle() lifecycle {
	return lifecycle{ready: make(chan struct{}), pending: map[string]bool{}}
}

// firstCyclePoll is how often the first cycle looks for UEs whose probes
// failed (a failure is not a sample, so the Recorded hook does not see it).
const firstCyclePoll = 100 * time.Millisecond

// Ready is closed once the daemon knows what it holds (stored sessions
// restored and reconciled with the API) and has finished its first probe
// cycle: every UE has measured once (a sample, a lost packet included, or
// a probe failure), or the longest first run of any probe has had its
// time. Before that a decision would rest on no data and a supervisor
// should not count the service as up.
func (d *Daemon) Ready() <-chan struct{} { return d.life.ready }

// LoopAt is when the control loop last ran (wall clock; zero before it
// starts). A watchdog pings only while this moves.
func (d *Daemon) LoopAt() time.Time {
	ns := d.life.loopAt.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// TickInterval is the control loop's tick now (config tick, reloadable).
func (d *Daemon) TickInterval() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.Tick
}

func (d *Daemon) loopAlive() { d.life.loopAt.Store(time.Now().UnixNano()) }

// recorded is the monitor's hook for every measurement.
func (d *Daemon) recorded(ue string) {
	d.dirty.mark(ue)
	if d.life.done.Load() {
		return
	}
	d.life.mu.Lock()
	delete(d.life.pending, ue)
	d.life.mu.Unlock()
}

// startFirstCycle notes the UEs that must measure before the daemon is
// ready. Called before the monitor runs, so no sample is missed.
func (d *Daemon) startFirstCycle() (bound time.Duration) {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	d.life.mu.Lock()
	for _, ue := range cfg.UEs {
		d.life.pending[ue.Name] = true
	}
	d.life.mu.Unlock()
	return firstCycleBound(cfg)
}

// awaitFirstCycle closes Ready when every UE has measured or failed, or
// when bound has passed (a UE whose first probe neither answered nor
// failed by then, a hung HTTP probe say, does not hold back the rest).
func (d *Daemon) awaitFirstCycle(ctx context.Context, bound time.Duration) {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	poll := time.NewTicker(firstCyclePoll)
	defer poll.Stop()
	// The monitor's Recorded hook takes life.mu on every sample until
	// ready, so the failures are looked up with it released: holding it
	// over every UE's Failing stalled the ICMP receivers for seconds with
	// 250,000 UEs, and the replies they could not read counted as losses.
	var waiting, failed []string
	d.life.mu.Lock()
	for ue := range d.life.pending {
		waiting = append(waiting, ue)
	}
	d.life.mu.Unlock()
	for {
		failed = failed[:0]
		for _, ue := range waiting {
			if d.mon.Failing(ue) {
				failed = append(failed, ue)
			}
		}
		d.life.mu.Lock()
		for _, ue := range failed {
			delete(d.life.pending, ue)
		}
		// Keep only the UEs still waiting: the list shrinks as they measure.
		waiting = slices.DeleteFunc(waiting, func(ue string) bool { return !d.life.pending[ue] })
		left := len(d.life.pending)
		d.life.mu.Unlock()
		if left == 0 {
			d.setReady(0)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			d.setReady(left)
			return
		case <-poll.C:
		}
	}
}

func (d *Daemon) setReady(unmeasured int) {
	d.life.readyOnce.Do(func() {
		d.life.done.Store(true)
		if unmeasured > 0 {
			d.log.Warn("ready before every UE measured: the first probe cycle is over", "unmeasured_ues", unmeasured)
		} else {
			d.log.Info("ready: sessions restored and every UE measured once")
		}
		close(d.life.ready)
	})
}

// firstCycleBound is the longest a UE's first measurement can take: the
// scheduler spreads first runs over a probe's interval, and the run itself
// lasts up to its timeout (each packet's, after the last one is sent, for
// ICMP; max_time for throughput).
func firstCycleBound(cfg *config.Config) time.Duration {
	var bound time.Duration
	for _, ue := range cfg.UEs {
		for _, p := range ue.Probes {
			run := max(p.Timeout, p.MaxTime)
			if p.Packets > 1 {
				run += time.Duration(p.Packets-1) * p.Spacing
			}
			bound = max(bound, p.Interval+run)
		}
	}
	return bound
}
