package monitor

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Monitor. Zero values take the defaults noted.
type Options struct {
	// Window is the length of each UE's sliding window (default 30 s).
	Window time.Duration
	// Step is the shortest span StatsOver's step covers (default 1 s): a
	// UE's step is this or a round of its latency probe and a quarter more,
	// whichever is longer, so it always holds a round (see StatsOver).
	Step time.Duration
	// MaxConcurrent bounds the tcp, http, throughput and prometheus probes
	// running at once (default 64). ICMP is not counted: the engine sends it.
	MaxConcurrent int
	// RTTHistogram exports a round-trip histogram per UE and probe kind.
	// Leave it off for large fleets: the window gauges stay.
	RTTHistogram bool
	// FleetRTTHistogram keeps one round-trip histogram per probe kind for
	// all UEs, native for the scrapers that take native histograms; see
	// FleetRTTCollector.
	FleetRTTHistogram bool
	// ICMP receives the complete list of ICMP targets whenever it changes
	// (UE set replaced, a name resolved to a new address). Wire it to the
	// shared engine's SetTargets; nil refuses UEs with ICMP probes.
	ICMP func([]ICMPTarget)
	// ResolveTTL is how long a resolved UE name is used (default 30 s).
	ResolveTTL time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock defaults to the system clock; tests pass a fake one.
	Clock Clock
	// Recorded, if set, is called with the UE's name after a measurement
	// entered its window, so a caller can re-evaluate that UE at once
	// instead of at its next tick. It runs on the probes' hot path: it must
	// be cheap and must not block.
	Recorded func(ue string)
}

// Clock is the time source of the scheduler and the windows.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Monitor runs the probes of a set of UEs and keeps a sliding window of
// statistics per UE. It is a Recorder (the ICMP engine records into it) and
// a prometheus.Collector. All methods are safe for concurrent use.
type Monitor struct {
	opts  Options
	log   *slog.Logger
	clock Clock
	env   *env

	set   atomic.Pointer[ueSet] // replaced whole by SetUEs; read lock-free
	setMu sync.Mutex            // serialises SetUEs

	sched     sync.Mutex // guards queue
	queue     taskHeap
	wake      chan struct{} // the queue changed
	icmpWake  chan struct{} // the ICMP targets may have changed
	sem       chan struct{}
	running   atomic.Bool
	icmpState icmpState
	icmpForce atomic.Bool // hand the targets over even if unchanged

	errLog   logLimiter              // bounds the log lines about probe errors
	skipped  [numKinds]atomic.Uint64 // runs skipped: UE busy or previous run still going
	dropped  atomic.Uint64           // ICMP results dropped during a throughput run
	unknownU atomic.Uint64           // Results for UEs not in the set

	registeredTwice atomic.Bool // warned that MetricsHandler's registry holds the Monitor too

	fleet   *fleetRTT            // with Options.FleetRTTHistogram only
	selfReg *prometheus.Registry // the Monitor alone, for protobuf scrapes

	selector atomic.Pointer[func() func(ue string) bool] // SelectUEs
}

// ueSet is an immutable snapshot of the UEs; Record reads it without locks.
type ueSet struct {
	list   []*ueState
	sorted []*ueState // by name, the order of the series on /metrics
	byName map[string]*ueState
	// infoLabels is the union of UE label names, sorted, for qodwatch_ue_info.
	infoLabels []string
	hasICMP    bool
}

// ueState is everything kept per UE. It survives a config reload when the
// UE keeps its name.
type ueState struct {
	name string
	cfg  UE // as last set; Probes are the specs, for comparing on reload

	// excl is held exclusively by a running throughput probe; the UE's other
	// active probes take it shared and skip their run if they cannot.
	excl      sync.RWMutex
	exclusive atomic.Bool // set while a throughput probe runs

	mu        sync.Mutex // guards the fields below
	win       window
	step      time.Duration // latency figures of StatsOver(0)
	tputStep  time.Duration // throughput figures of StatsOver(0)
	latency   kind          // which kind feeds the window's latency
	hasLat    bool
	kinds     [numKinds]bool // kinds configured
	counters  [numKinds]kindCounters
	hists     *[numKinds]*rttHistogram // with Options.RTTHistogram only
	values    []Value                  // one per prometheus probe
	bytes     uint64                   // moved by throughput probes
	status    int                      // last HTTP status seen by an http probe
	icmpProbe *icmpBound
	tasks     []*task
	errs      *ueErrors // nil until the UE's first probe error
}

type kindCounters struct {
	sent, received uint64
}

// New returns a Monitor with no UEs. Call SetUEs, then Run.
func New(opts Options) (*Monitor, error) {
	if opts.Window == 0 {
		opts.Window = 30 * time.Second
	}
	if opts.Window < time.Second {
		return nil, fmt.Errorf("monitor: window %v is shorter than 1s", opts.Window)
	}
	if opts.Step == 0 {
		opts.Step = DefaultStep
	}
	if opts.Step < 0 {
		return nil, fmt.Errorf("monitor: step %v is negative", opts.Step)
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = 64
	}
	if opts.MaxConcurrent < 0 {
		return nil, fmt.Errorf("monitor: max concurrent probes %d is negative", opts.MaxConcurrent)
	}
	if opts.ResolveTTL == 0 {
		opts.ResolveTTL = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	m := &Monitor{
		opts:     opts,
		log:      opts.Logger,
		clock:    opts.Clock,
		wake:     make(chan struct{}, 1),
		icmpWake: make(chan struct{}, 1),
		sem:      make(chan struct{}, opts.MaxConcurrent),
	}
	if opts.FleetRTTHistogram {
		m.fleet = newFleetRTT()
	}
	m.selfReg = prometheus.NewRegistry()
	if err := m.selfReg.Register(m); err != nil {
		return nil, err
	}
	m.env = newEnv(newResolver(opts.ResolveTTL, nil, opts.Clock.Now), opts.Clock.Now)
	m.set.Store(&ueSet{byName: map[string]*ueState{}})
	return m, nil
}

// Window is the length of the UE windows.
func (m *Monitor) Window() time.Duration { return m.opts.Window }

// SetUEs replaces the set of UEs. It checks every UE first and changes
// nothing if one is wrong. A UE that keeps its name keeps its window,
// counters and the phase of every probe whose configuration is unchanged.
func (m *Monitor) SetUEs(ues []UE) error {
	type plan struct {
		ue    UE
		bound []boundProbe
	}
	plans := make([]plan, len(ues))
	seen := make(map[string]bool, len(ues))
	for i := range ues {
		u := ues[i]
		if err := u.validate(); err != nil {
			return err
		}
		if seen[u.Name] {
			return fmt.Errorf("ue %q: defined twice", u.Name)
		}
		seen[u.Name] = true
		u.Probes = append([]Probe(nil), u.Probes...)
		plans[i].ue = u
		nICMP := 0
		for j := range u.Probes {
			p, err := normalize(u.Probes[j])
			if err != nil {
				return fmt.Errorf("ue %q: probe %d: %w", u.Name, j, err)
			}
			u.Probes[j] = p
			b, err := p.bind(&u)
			if err != nil {
				return fmt.Errorf("ue %q: %s probe: %w", u.Name, p.Kind(), err)
			}
			if _, ok := b.(*icmpBound); ok {
				nICMP++
				if m.opts.ICMP == nil {
					return fmt.Errorf("ue %q: icmp probe configured but no ICMP engine is wired", u.Name)
				}
				if nICMP > 1 {
					return fmt.Errorf("ue %q: more than one icmp probe", u.Name)
				}
			}
			plans[i].bound = append(plans[i].bound, b)
		}
	}

	m.setMu.Lock()
	defer m.setMu.Unlock()
	old := m.set.Load()
	now := m.clock.Now()
	next := &ueSet{list: make([]*ueState, 0, len(plans)), byName: make(map[string]*ueState, len(plans))}
	labelSet := map[string]bool{}
	var fresh []*task
	var all []*task
	for _, p := range plans {
		st := old.byName[p.ue.Name]
		if st == nil {
			st = &ueState{name: p.ue.Name}
		}
		fresh = append(fresh, st.configure(p.ue, p.bound, m.opts)...)
		all = append(all, st.tasks...)
		next.list = append(next.list, st)
		next.byName[st.name] = st
		for k := range p.ue.Labels {
			labelSet[k] = true
		}
		if st.icmpProbe != nil {
			next.hasICMP = true
		}
	}
	for k := range labelSet {
		next.infoLabels = append(next.infoLabels, k)
	}
	slices.Sort(next.infoLabels)
	next.sorted = slices.Clone(next.list)
	slices.SortFunc(next.sorted, func(a, b *ueState) int { return strings.Compare(a.name, b.name) })
	spread(fresh, now)

	m.sched.Lock()
	m.queue = m.queue[:0]
	for _, t := range all {
		m.queue.push(t)
	}
	m.sched.Unlock()
	m.set.Store(next)
	notify(m.wake)
	notify(m.icmpWake)
	return nil
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// configure applies a (validated) UE config and returns the probe tasks
// that are new and need a phase.
func (st *ueState) configure(u UE, bound []boundProbe, opts Options) []*task {
	st.mu.Lock()
	defer st.mu.Unlock()

	// Tasks whose spec and address are unchanged keep their phase.
	keep := map[Probe][]*task{}
	if st.cfg.Addr == u.Addr {
		for _, t := range st.tasks {
			keep[t.spec] = append(keep[t.spec], t)
		}
	}
	var fresh []*task
	st.tasks = st.tasks[:0:0]
	st.kinds = [numKinds]bool{}
	st.icmpProbe = nil
	oldValues := st.values
	st.values = nil
	rate := 0.0
	latency, hasLat := kind(0), false
	var tputEvery time.Duration
	for i, b := range bound {
		spec := u.Probes[i]
		k, _ := kindOf(spec.Kind())
		st.kinds[k] = true
		if k.measuresLatency() && (!hasLat || k < latency) {
			latency, hasLat = k, true
		}
		if ib, ok := b.(*icmpBound); ok {
			st.icmpProbe = ib
			continue
		}
		r := b.(runner)
		if k == kThroughput {
			tputEvery = max(tputEvery, r.every())
		}
		valueIdx := -1
		if pb, ok := r.(*prometheusBound); ok {
			valueIdx = len(st.values)
			v := Value{Name: pb.name, Value: math.NaN()}
			for _, ov := range oldValues {
				if ov.Name == pb.name {
					v = ov
				}
			}
			st.values = append(st.values, v)
		}
		var t *task
		if ts := keep[spec]; len(ts) > 0 {
			t, keep[spec] = ts[0], ts[1:]
		} else {
			t = &task{ue: st, spec: spec, kind: k, r: r, interval: r.every()}
			fresh = append(fresh, t)
		}
		t.valueIdx = valueIdx
		st.tasks = append(st.tasks, t)
	}
	for _, ts := range keep {
		for _, t := range ts {
			t.removed.Store(true)
		}
	}
	if hasLat {
		rate = latencyRate(latency, bound, u.Probes)
	}
	st.step, st.tputStep = StepOf(opts.Step, latencyEvery(latency, hasLat, bound, u.Probes)), 0
	if tputEvery > 0 {
		st.tputStep = tputEvery + tputEvery/2
	}

	if st.win.span == 0 || st.hasLat != hasLat || st.latency != latency {
		st.win = window{}
		st.win.init(opts.Window, rate, tputEvery)
	} else {
		st.win.resize(rate)
		st.win.setThroughput(tputEvery)
	}
	st.latency, st.hasLat = latency, hasLat
	var hists [numKinds]*rttHistogram
	withHists := false
	for k := range numKinds {
		if opts.RTTHistogram && st.kinds[k] && k.measuresLatency() {
			if st.hists != nil {
				hists[k] = st.hists[k]
			}
			if hists[k] == nil {
				hists[k] = new(rttHistogram)
			}
			withHists = true
		}
	}
	st.hists = nil
	if withHists {
		st.hists = &hists
	}
	st.cfg = u
	return fresh
}

// DefaultStep is Options.Step's default.
const DefaultStep = time.Second

// StepOf is the step of a UE whose latency probe measures a round every
// latencyEvery (0: none), with Options.Step min: the latency figures the
// policy times a `for` with (issue 10). A quarter more than a round, so a
// round that comes a little late still finds the last one in view.
func StepOf(min, latencyEvery time.Duration) time.Duration {
	return max(min, latencyEvery+latencyEvery/4)
}

// latencyEvery is the longest interval of the probes of latency kind k.
func latencyEvery(k kind, has bool, bound []boundProbe, specs []Probe) time.Duration {
	var d time.Duration
	for i, b := range bound {
		if kk, _ := kindOf(specs[i].Kind()); has && kk == k {
			d = max(d, b.every())
		}
	}
	return d
}

// latencyRate is how many round trips per second the latency kind produces.
func latencyRate(k kind, bound []boundProbe, specs []Probe) float64 {
	r := 0.0
	for i, b := range bound {
		if kk, _ := kindOf(specs[i].Kind()); kk != k {
			continue
		}
		n := 1.0
		if ib, ok := b.(*icmpBound); ok {
			n = float64(ib.Packets)
		}
		r += n / b.every().Seconds()
	}
	return r
}

// Record takes one Result into its UE's window and counters. It does not
// allocate and holds only the UE's own lock. Results for unknown UEs are
// dropped (a UE removed by a reload may still have answers in flight).
func (m *Monitor) Record(r Result) {
	st := m.set.Load().byName[r.UE]
	if st == nil {
		m.unknownU.Add(1)
		return
	}
	k, ok := kindOf(r.Probe)
	if !ok {
		return
	}
	if r.At.IsZero() {
		r.At = m.clock.Now()
	}
	if r.Err != nil {
		st.mu.Lock()
		logf := m.recordError(st, k, r.Err, r.At.UnixNano())
		st.mu.Unlock()
		if logf != nil {
			logf()
		}
		return
	}
	// An echo that overlapped a throughput run measured our own load.
	if k == kICMP && st.exclusive.Load() {
		m.dropped.Add(1)
		return
	}
	st.mu.Lock()
	st.record(k, &r, m.fleet)
	var logf func()
	if st.errs != nil {
		logf = m.recovered(st, k, r.At.UnixNano())
	}
	st.mu.Unlock()
	if logf != nil {
		logf()
	}
	if m.opts.Recorded != nil {
		m.opts.Recorded(r.UE)
	}
}

func (st *ueState) record(k kind, r *Result, fleet *fleetRTT) {
	ns := r.At.UnixNano()
	c := &st.counters[k]
	switch {
	case k == kThroughput:
		c.sent++
		c.received++
		st.win.addThroughput(ns, r.BytesPerSecond)
	case k == kPrometheus:
		c.sent++
		c.received++
		st.win.touch(ns)
	case r.Lost:
		c.sent++
		if st.hasLat && k == st.latency {
			st.win.addLost(ns)
		}
	default:
		c.sent++
		c.received++
		if st.hists != nil && st.hists[k] != nil {
			st.hists[k].observe(r.RTT)
		}
		if fleet != nil {
			fleet.observe(k, r.RTT)
		}
		if st.hasLat && k == st.latency {
			st.win.addRTT(ns, r.RTT)
		}
	}
}

// Stats returns the window figures of one UE as of now, and false if the UE
// is not in the set.
func (m *Monitor) Stats(ue string, now time.Time) (Stats, bool) {
	st := m.set.Load().byName[ue]
	if st == nil {
		return Stats{}, false
	}
	var s Stats
	st.stats(now, &s)
	return s, true
}

// StatsOver returns the figures of one UE over the last span before now,
// or with span 0 over its newest step, and false if the UE is not in the
// set. The step's latency figures cover the step (Options.Step, or a round
// of the latency probe and a quarter more if longer); its throughput
// figures are the newest run within an interval and a half of the probe.
// A span is at least the step; one at least the window's is the window.
func (m *Monitor) StatsOver(ue string, now time.Time, span time.Duration) (Stats, bool) {
	st := m.set.Load().byName[ue]
	if st == nil {
		return Stats{}, false
	}
	var s Stats
	st.mu.Lock()
	tspan := span
	if span == 0 {
		span, tspan = st.step, st.tputStep
	}
	// A ratio over fewer packets than a step's is noise: one late answer
	// in a 500 ms span of two probes would be 50 % loss.
	span = max(span, st.step)
	st.win.statsOver(now, span, tspan, &s)
	if st.hasLat {
		s.LatencyProbe = kindNames[st.latency]
	}
	st.mu.Unlock()
	return s, true
}

func (st *ueState) stats(now time.Time, s *Stats) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.win.stats(now, s)
	if st.hasLat {
		s.LatencyProbe = kindNames[st.latency]
	}
	if len(st.values) > 0 {
		s.Values = append([]Value(nil), st.values...)
	}
}

// All yields every UE's name and Stats as of now, in config order.
func (m *Monitor) All(now time.Time) iter.Seq2[string, Stats] {
	return func(yield func(string, Stats) bool) {
		for _, st := range m.set.Load().list {
			var s Stats
			st.stats(now, &s)
			if !yield(st.name, s) {
				return
			}
		}
	}
}

// UEs returns the names of the UEs in config order.
func (m *Monitor) UEs() []string {
	list := m.set.Load().list
	names := make([]string, len(list))
	for i, st := range list {
		names[i] = st.name
	}
	return names
}

// Reasons a probe could not measure; a bounded label on
// qodwatch_probe_errors_total.
const (
	reasonOther = iota
	reasonResolve
	reasonRefused
	reasonUnreachable
	reasonTimeout
	reasonTLS
	reasonHTTPStatus
	reasonPermission
	reasonQuery
	reasonCanceled
	numReasons
)

var reasonNames = [numReasons]string{"other", "resolve", "refused", "unreachable", "timeout", "tls", "http_status", "permission", "query", "canceled"}

// probeError carries a reason chosen where the error is made.
type probeError struct {
	reason int
	err    error
}

func (e *probeError) Error() string { return e.err.Error() }
func (e *probeError) Unwrap() error { return e.err }

func withReason(reason int, err error) error { return &probeError{reason: reason, err: err} }

// classify picks the bounded reason for err.
func classify(err error) int {
	var pe *probeError
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return pe.reason
	case errors.As(err, &dnsErr):
		return reasonResolve
	case errors.Is(err, syscall.ECONNREFUSED):
		return reasonRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return reasonUnreachable
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EPERM):
		return reasonPermission
	case errors.Is(err, context.Canceled):
		return reasonCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	}
	return reasonOther
}
