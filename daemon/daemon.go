// Package daemon is qodwatch's control loop: it joins the monitor, the
// policy engine and the QoD client, keeps every session it opens in a
// durable state file, and serves metrics, a status page and the
// notification receiver.
//
// The loop is level-triggered: the policy compares a UE's statistics and
// session with its rule and says what is missing; the daemon starts that
// API call in the background (one per UE at a time, so probing never waits
// for the API) and reports the outcome back to the policy. A repeated
// evaluation asks for nothing new while a call is in flight. A UE is
// evaluated when a sample of it arrives and when its policy state is due
// to change by the clock (the end of a `for`), and every UE at each tick
// (see loop.go).
//
// Each create sends notificationUrl = notifications.public_url +
// "/tx/{transaction id}", so the operator calls
// {public_url}/tx/{transaction id}/notifications: the transaction id ties
// the end of a session whose create answer was lost to the intent that
// made it. A proxy in front must forward every path under public_url.
//
// Session times are kept on this host's clock (see grantedDuration): the
// operator's clock may differ by more than a session's length.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/monitor"
	"github.com/qodwatch/qodwatch/monitor/icmp"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

// SessionAPI is what the daemon needs of the QoD API; *qodclient.Client has it.
type SessionAPI interface {
	Create(ctx context.Context, req qodclient.CreateSessionRequest) (*qodclient.SessionInfo, error)
	Get(ctx context.Context, id string) (*qodclient.SessionInfo, error)
	Delete(ctx context.Context, id string) error
}

// Options configure a Daemon.
type Options struct {
	Config *config.Config
	// ConfigFile is reread on Reload; "" disables reloading.
	ConfigFile string
	Logger     *slog.Logger
	// Registry gets the daemon's and the monitor's metrics; nil makes one.
	Registry *prometheus.Registry
	// API replaces the client built from the config (tests, the demo).
	API SessionAPI
	// Now replaces time.Now.
	Now func() time.Time
	// ICMPMode chooses the ICMP socket kind (default: unprivileged, then raw).
	ICMPMode icmp.Mode
	// Adjust, if set, changes every config loaded from ConfigFile on
	// reload as the caller changed Config (command-line flags that
	// override the file), so a reload compares like with like.
	Adjust func(*config.Config) error
	// ShutdownGrace bounds how long calls in flight and releases on shutdown
	// may take (default 30s).
	ShutdownGrace time.Duration
	// WebLimits and NotifyLimits bound what clients may hold of the web
	// server and the notification receiver; a zero field takes its default
	// (DefaultWebLimits, DefaultNotifyLimits).
	WebLimits, NotifyLimits ServerLimits
	// EnableLifecycle serves POST /-/reload (--web.enable-lifecycle, as in
	// Prometheus): without it anyone who reaches the web server could make
	// the daemon reread its config, so only SIGHUP reloads.
	EnableLifecycle bool
	// EnablePprof serves Go's profiles at /debug/pprof/ (--web.enable-pprof).
	EnablePprof bool
	// Shard is the part of the fleet this daemon watches (--shard.count,
	// --shard.index); the zero value is all of it.
	Shard config.Shard
	// Handover is how long a UE gained in a reshard counts as possibly
	// holding its previous owner's session (0: not at all).
	Handover time.Duration
}

// Daemon is one running qodwatch.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	reg     *prometheus.Registry
	monReg  *prometheus.Registry // the monitor alone, for Gatherer
	metrics *metrics
	mon     *monitor.Monitor
	store   *StateFile // nil in dry-run mode without a state dir
	dirLock *StateDirLock
	life    lifecycle // readiness and the watchdog's view of the loop
	health  *health

	reloadMu sync.Mutex
	sd       *discovery // ue_sd sources and what they found
	icmpMu   sync.Mutex
	icmpEng  *icmp.Engine
	runCtx   context.Context
	dirty    dirtyUEs      // UEs with samples not yet evaluated
	wake     chan struct{} // wakes the loop: a UE turned dirty, or an API outcome

	// mu guards everything below: the engine is not safe for concurrent use,
	// and API outcomes arrive from their own goroutines.
	mu            sync.Mutex
	cfg           *config.Config
	api           SessionAPI
	engine        *policy.Engine
	busy          map[string]uint64 // UE -> the number of its API call in flight
	opSeq         uint64
	polling       map[string]bool // session ids with a GET in flight
	retryingWrite bool            // a state file write after a failed one is in flight
	confirming    map[string]bool // session ids with a notification's GET in flight
	lastPoll      time.Time
	syncing       bool                 // a state file sync is in flight
	syncs         int                  // state file syncs done (for tests)
	gone          map[string]time.Time // session ids seen ended (and when), never adopted again
	heldTx        map[string]heldTx    // session id -> its UE and its create's transaction id
	receiver      *NotificationReceiver
	strays        map[string]string // session id -> UE: sessions to end that a DELETE failed for
	suspects      map[string]string // UE -> transaction id of another process's create it is suspected for
	lastPrune     time.Time
	pollSlots     chan struct{} // bounds the GETs of one poll round in flight at once
	nextExpiry    time.Time     // when expireHeld next has work; zero: no session held
	notifyToken   string
	decisions     []policy.Decision
	dueNames      []string
	obsProm       map[string]map[string]policy.PromSample
	obsSpans      map[string]spans // UE -> how far back its rule's loss conditions read (see observe.go)
	eff           map[string]*efficacy
	dryRunSeq     int
	abortErr      error          // why the daemon is stopping on a failure; sessions are then kept
	v1            camaraState    // qosStatus of held sessions (CAMARA v1)
	v1metrics     *camaraMetrics // what only CAMARA v1 has
	profileCaps   profileCaps    // the QoS profiles' maxDuration (CAMARA v1)

	history decisionLog // the last decisions per UE, for the status page

	ops    *opTracker
	opsCtx context.Context // API calls; outlives the run context by the grace period
	stopOp context.CancelFunc
}

// New prepares a daemon: it opens the state file and builds the monitor,
// the engine and the API client, but starts nothing.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil {
		return nil, errors.New("daemon: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	if err := opts.Shard.Validate(); err != nil && !opts.Shard.Whole() {
		return nil, err
	}
	cfg, err := opts.Config.ForShard(opts.Shard)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Now,
		reg:        opts.Registry,
		cfg:        cfg,
		api:        opts.API,
		busy:       map[string]uint64{},
		polling:    map[string]bool{},
		confirming: map[string]bool{},
		gone:       map[string]time.Time{},
		heldTx:     map[string]heldTx{},
		strays:     map[string]string{},
		suspects:   map[string]string{},
		ops:        newOpTracker(),
		pollSlots:  make(chan struct{}, pollConcurrency),
		obsProm:    map[string]map[string]policy.PromSample{},
		obsSpans:   map[string]spans{},
		eff:        map[string]*efficacy{},
		wake:       make(chan struct{}, 1),
		life:       newLifecycle(),
		health:     newHealth(),
	}
	d.dirty.wake = d.wake
	d.dirty.setUEs(ueNames(cfg))
	d.opsCtx, d.stopOp = context.WithCancel(context.Background())
	if cfg.StateDir != "" {
		// First of all: a second daemon on this state directory must stop
		// here, before it reads, writes or ends anything of the first one's.
		lock, err := LockStateDir(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		d.dirLock = lock
		st, err := OpenStateFile(cfg.StateDir)
		if err != nil {
			lock.Release()
			return nil, err
		}
		st.onWrite = d.health.wrote
		d.store = st
	} else if !cfg.DryRun {
		return nil, errors.New("daemon: state_dir is required unless dry_run is set")
	}
	ok := false
	defer func() {
		if !ok {
			d.dirLock.Release()
		}
	}()
	if d.api == nil && !cfg.DryRun {
		c, err := NewClient(cfg.API)
		if err != nil {
			return nil, err
		}
		d.api = c
	}
	mon, err := monitor.New(monitor.Options{
		Window:   window(cfg),
		Logger:   d.log,
		ICMP:     d.setICMPTargets,
		Recorded: d.recorded,
		// One round-trip histogram per probe kind for the fleet, native
		// for Prometheus servers with native histograms on; the per-UE
		// classic one would cost 15 series per UE.
		FleetRTTHistogram: true,
	})
	if err != nil {
		return nil, err
	}
	d.mon = mon
	mon.SelectUEs(d.metricsUEs)
	ues, err := monitorUEs(cfg)
	if err != nil {
		return nil, err
	}
	if err := mon.SetUEs(ues); err != nil {
		return nil, err
	}
	d.engine = policy.NewEngine(cfg.Guards.Guards)
	for i := range cfg.UEs {
		if err := d.engine.SetUE(cfg.UEs[i].Name, cfg.UEs[i].Rule, groups(&cfg.UEs[i])...); err != nil {
			return nil, err
		}
		d.obsSpans[cfg.UEs[i].Name] = spansOf(cfg.UEs[i].Rule)
	}
	d.metrics = newMetrics(d)
	d.sd = newDiscovery(d, cfg)
	if err := d.sd.metrics.register(d.reg); err != nil {
		return nil, err
	}
	// The config of the start is the first successful load: a fresh daemon
	// must not look like one whose reload failed.
	d.metrics.reloadSucceeded(d.now())
	if err := d.reg.Register(d.metrics); err != nil {
		return nil, err
	}
	if err := registerRuntimeCollectors(d.reg); err != nil {
		return nil, err
	}
	if err := d.reg.Register(mon.FleetRTTCollector()); err != nil {
		return nil, err
	}
	if err := d.reg.Register(newICMPCollector(d)); err != nil {
		return nil, err
	}
	d.v1metrics = newCamaraMetrics(d)
	for _, c := range d.v1metrics.collectors() {
		if err := d.reg.Register(c); err != nil {
			return nil, err
		}
	}
	d.initMetricLabels(cfg)
	// The monitor's per-UE families are written straight in the text format
	// on /metrics (client_golang's path costs ~10x the time and memory at
	// 10,000 UEs); it sits in a registry of its own for Gatherer.
	d.monReg = prometheus.NewRegistry()
	if err := d.monReg.Register(mon); err != nil {
		return nil, err
	}
	if err := d.loadNotifyToken(); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// Close releases the state directory of a daemon that will not Run (its
// start failed after New). Run releases it itself when it returns.
func (d *Daemon) Close() { d.dirLock.Release() }

// Registry is where the daemon's own metrics are registered; /metrics
// serves it together with the monitor's.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Gatherer gathers everything /metrics shows: the registry and the monitor.
func (d *Daemon) Gatherer() prometheus.Gatherer { return prometheus.Gatherers{d.reg, d.monReg} }

// Monitor is the daemon's monitor (for tests and the demo).
func (d *Daemon) Monitor() *monitor.Monitor { return d.mon }

// NotificationReceiver answers the operator's callbacks with the token the
// daemon hands out. There is one per daemon: its log limit is shared by
// every server that serves it.
func (d *Daemon) NotificationReceiver() *NotificationReceiver {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.receiver == nil {
		d.receiver = &NotificationReceiver{Token: d.notifyToken, Logger: d.log, Mode: d.cfg.Notifications.AuthMode,
			Handle: d.handleNotice, Count: d.countNotice, Now: d.now}
	}
	return d.receiver
}

func window(cfg *config.Config) time.Duration {
	// The monitor keeps one window length; UEs may differ only in theory
	// (defaults.window), so the longest one is used.
	var w time.Duration
	for _, ue := range cfg.UEs {
		if ue.Window > w {
			w = ue.Window
		}
	}
	return w
}

func ueNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.UEs))
	for i := range cfg.UEs {
		names[i] = cfg.UEs[i].Name
	}
	return names
}

func groups(ue *config.UE) []string {
	if ue.Group == "" {
		return nil
	}
	return []string{ue.Group}
}

// loadNotifyToken reads the configured notification token, or the one
// kept in the state directory (see NotificationToken).
func (d *Daemon) loadNotifyToken() error {
	tok, _, err := NotificationToken(d.cfg)
	if err != nil {
		return err
	}
	d.notifyToken = tok
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run probes, decides and acts until ctx ends, then shuts down: it waits for
// calls in flight and, with release_on_shutdown, ends every session held.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.dirLock.Release()
	d.mu.Lock()
	d.icmpMu.Lock()
	d.runCtx = ctx // read by reloads, which may come at any time
	d.icmpMu.Unlock()
	d.mu.Unlock()
	if err := d.startICMPIfNeeded(); err != nil {
		return err
	}
	caps, err := checkProfiles(ctx, d.cfg, d.api, d.log)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.profileCaps = caps
	d.mu.Unlock()
	// Discovered UEs first: a session stored for one is adopted, not ended
	// as belonging to an unknown UE.
	if err := d.sd.start(ctx); err != nil {
		return err
	}
	gained, err := d.restore(ctx)
	if err != nil {
		return err
	}
	d.reconcileAtStart(ctx)
	d.reconcileGained(ctx, gained)
	firstCycle := d.startFirstCycle()
	// Ready only once what is held is known: restored and reconciled.
	d.health.restoreDone()
	monDone := make(chan error, 1)
	go func() { monDone <- d.mon.Run(ctx) }()
	go d.awaitFirstCycle(ctx, firstCycle)

	d.mu.Lock()
	d.log.Info("qodwatch running", "ues", len(d.cfg.UEs), "dry_run", d.cfg.DryRun, "tick", d.cfg.Tick)
	d.mu.Unlock()
	d.loop(ctx)
	<-monDone
	if err := d.shutdown(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.abortErr
}

// Abort marks the run as failed (a server it needs stopped): the caller
// then ends Run's context. Run keeps every session, release_on_shutdown
// or not, and returns err: a daemon that failed ends nothing it may not
// own, and the restart its supervisor makes (Restart=on-failure) adopts
// them.
func (d *Daemon) Abort(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.abortErr == nil {
		d.abortErr = err
	}
}

func (d *Daemon) setICMPTargets(ts []monitor.ICMPTarget) {
	d.icmpMu.Lock()
	eng := d.icmpEng
	d.icmpMu.Unlock()
	if eng != nil {
		eng.SetTargets(icmpTargets(ts))
	}
}

// startICMPIfNeeded opens the shared ICMP sockets once some UE has an ICMP
// probe. It fails with the exact missing permission.
func (d *Daemon) startICMPIfNeeded() error {
	d.mu.Lock()
	need := hasICMP(d.cfg)
	d.mu.Unlock()
	d.icmpMu.Lock()
	if !need || d.icmpEng != nil {
		d.icmpMu.Unlock()
		return nil
	}
	eng, err := icmp.New(icmp.Options{Recorder: d.mon, Mode: d.opts.ICMPMode, Logger: d.log})
	if err != nil {
		d.icmpMu.Unlock()
		return fmt.Errorf("icmp probes: %w", err)
	}
	d.icmpEng = eng
	d.icmpMu.Unlock()
	go func() {
		if err := eng.Run(d.runCtx); err != nil && d.runCtx.Err() == nil {
			d.log.Error("icmp engine stopped", "err", err)
		}
	}()
	// The monitor hands over targets only when they change; an engine
	// started after SetUEs (first start, or a reload adding ICMP) asks.
	d.mon.ResendICMPTargets()
	return nil
}

// Tick evaluates every UE and does the periodic work (polling sessions,
// reading the state file). Running it again at once is harmless: what is
// in flight is not asked for twice.
func (d *Daemon) Tick() { d.tick(0) }

// sweepPerTick is how many UEs the control loop's tick evaluates: every UE
// up to this many, else this many a tick, going round the fleet (250,000
// UEs: once every 25 ticks). A sample or a due time evaluates a UE at once
// in any case; the sweep is the safety net, and evaluating 250,000 UEs
// every second took a third of a core.
const sweepPerTick = 10_000

// tick is Tick evaluating the next n UEs of the sweep (0: every UE).
func (d *Daemon) tick(n int) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneGone(now)
	if d.receiver != nil {
		d.receiver.FlushLog()
	}
	d.decide(now, func() {
		if n == 0 {
			d.decisions = d.engine.Tick(now, d.observe, d.decisions)
			d.metrics.evalTick.Add(float64(len(d.cfg.UEs)))
			return
		}
		var swept int
		d.decisions, swept = d.engine.Sweep(now, d.observe, n, d.decisions)
		d.metrics.evalTick.Add(float64(swept))
	})
	if d.api != nil && d.cfg.API.PollInterval > 0 && now.Sub(d.lastPoll) >= d.cfg.API.PollInterval {
		d.lastPoll = now
		d.pollHeld()
		d.syncFromStateFile()
		d.retryStateWrite()
	}
}

// expireHeld ends sessions whose time has run out, without waiting for a
// poll or a notification: the operator ends them at that moment too. It
// must see each expiry before the engine's Tick does (the engine would end
// the session on its own, unseen by the state file), and it looks at the
// sessions only once the earliest expiry has come: listing every UE each
// tick was most of a tick's time with many UEs.
func (d *Daemon) expireHeld(now time.Time) {
	if d.nextExpiry.IsZero() || now.Before(d.nextExpiry) {
		return
	}
	d.nextExpiry = time.Time{}
	for _, st := range d.engine.Holding(nil) {
		if st.Session.ExpiresAt.IsZero() {
			continue
		}
		if now.Before(st.Session.ExpiresAt) || d.isBusy(st.UE) {
			// A call in flight settles a due one; look again next tick.
			d.noteExpiry(st.Session.ExpiresAt)
			continue
		}
		d.log.Info("session expired", "ue", st.UE, "session_id", st.Session.ID, "qos", st.Session.QoS)
		d.ended(now, st.UE, st.Session.ID, policy.EndExpired)
	}
}

// noteExpiry makes expireHeld look at the sessions at t. The caller holds d.mu.
func (d *Daemon) noteExpiry(t time.Time) {
	if d.nextExpiry.IsZero() || t.Before(d.nextExpiry) {
		d.nextExpiry = t
	}
}

// opened tells the engine the UE holds s, made by the create with
// transaction id txid; every session the engine learns of goes through
// here or adopt, so expireHeld knows its expiry and the notification
// receiver the path its notifications must come on. The caller holds d.mu.
func (d *Daemon) opened(now time.Time, ue string, s policy.Session, txid string) error {
	if err := d.engine.Opened(now, ue, s); err != nil {
		return err
	}
	d.noteExpiry(s.ExpiresAt)
	d.heldTx[s.ID] = heldTx{ue: ue, txid: txid}
	d.kick()
	return nil
}

// adopt is opened for a session found at start. The caller holds d.mu.
func (d *Daemon) adopt(now time.Time, ue string, s policy.Session, txid string) error {
	if err := d.engine.Adopt(now, ue, s); err != nil {
		return err
	}
	d.noteExpiry(s.ExpiresAt)
	d.heldTx[s.ID] = heldTx{ue: ue, txid: txid}
	return nil
}

// ended tells the engine a session is gone and forgets it in the state file.
// The caller holds d.mu.
func (d *Daemon) ended(now time.Time, ue, id string, why policy.EndReason) {
	d.gone[id] = now
	d.v1.forget(id)
	if err := d.engine.Ended(now, ue, id, why); err != nil {
		d.log.Warn("policy refused session end", "ue", ue, "session_id", id, "err", err)
	}
	d.metrics.sessionsEnded.WithLabelValues(why.String()).Inc()
	cool := d.cooldownOf(ue)
	// A stray's DELETE is still to come: the state file keeps it until the
	// DELETE lands (deleteStray forgets it), so a crash meanwhile leaves a
	// session the next start checks, not one nobody knows of.
	_, stray := d.strays[id]
	d.persistAsync(func(s *State) {
		if !stray {
			s.RemoveSession(id)
		}
		s.SetCooldown(ue, cool, d.now())
	})
	d.kick()
}

// cooldownOf is the end of ue's cooldown as the engine has it. The caller
// holds d.mu.
func (d *Daemon) cooldownOf(ue string) time.Time {
	st, _ := d.engine.Status(ue)
	return st.CooldownUntil
}

// noteCooldown records ue's cooldown in the state file once the engine
// has heard of its session's end. The caller holds d.mu.
func (d *Daemon) noteCooldown(ue string) {
	if cool := d.cooldownOf(ue); cool.After(d.now()) {
		d.persistAsync(func(s *State) { s.SetCooldown(ue, cool, d.now()) })
	}
}

// persistAsync writes a change to the state file off the loop. Used only for
// forgetting things: what must be durable before an action is written
// synchronously by the action itself.
func (d *Daemon) persistAsync(change func(*State)) {
	if d.store == nil || d.cfg.DryRun {
		return
	}
	d.ops.goWrite(func() {
		if _, err := d.store.Update(func(s *State) error {
			change(s)
			s.setBudget(d.Usage())
			return nil
		}); err != nil {
			d.log.Error("state file update failed", "err", err)
		}
	})
}

// goneTTL is how long an ended session's id is remembered: long enough
// for the state file to catch up and for late notifications about it.
const goneTTL = time.Hour

// isBusy reports whether ue has an API call in flight. The caller holds d.mu.
func (d *Daemon) isBusy(ue string) bool {
	_, ok := d.busy[ue]
	return ok
}

// pruneGone forgets old ended sessions, so the set does not grow for as
// long as the daemon runs. The caller holds d.mu.
func (d *Daemon) pruneGone(now time.Time) {
	if now.Sub(d.lastPrune) < time.Minute {
		return
	}
	d.lastPrune = now
	for id, at := range d.gone {
		if now.Sub(at) > goneTTL {
			delete(d.gone, id)
		}
	}
	for id, h := range d.heldTx {
		if st, ok := d.engine.Status(h.ue); !ok || !st.HasSession || st.Session.ID != id {
			delete(d.heldTx, id)
		}
	}
}

// Reload rereads the config file. A config with any error is refused and
// the old one keeps running; a valid one applies without dropping the
// sessions or statistics of unchanged UEs. Settings that only apply at a
// restart are logged; ReloadReport names them.
func (d *Daemon) Reload() error {
	_, err := d.ReloadReport()
	return err
}

// ReloadReport is what a reload did.
type ReloadReport struct {
	// Restart lists the changed settings the running daemon cannot take
	// (they apply at the next restart), as "web.listen: OLD -> NEW".
	Restart []string
}

// ReloadReport reloads as Reload does and says which changed settings
// were not applied.
func (d *Daemon) ReloadReport() (ReloadReport, error) {
	if d.opts.ConfigFile == "" {
		return ReloadReport{}, errors.New("reload: the daemon was not started from a config file")
	}
	// SIGHUP and POST /-/reload may come together; one at a time, or the
	// monitor and the engine could end up with different configs.
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg, err := config.Load(d.opts.ConfigFile)
	if err == nil && d.opts.Adjust != nil {
		err = d.opts.Adjust(cfg)
	}
	if err != nil {
		d.metrics.reloadFailed()
		d.log.Error("config reload refused; the old config keeps running", "file", d.opts.ConfigFile, "err", err)
		return ReloadReport{}, err
	}
	rep, err := d.applyFile(cfg)
	if err != nil {
		d.metrics.reloadFailed()
		d.log.Error("config reload refused; the old config keeps running", "file", d.opts.ConfigFile, "err", err)
		return ReloadReport{}, err
	}
	d.metrics.reloadSucceeded(d.now())
	d.log.Info("config reloaded", "file", d.opts.ConfigFile, "ues", len(cfg.UEs))
	return rep, nil
}

// restartOnly lists the settings of cfg that differ from the running
// old's and that only a restart applies: the statistics window, the
// notification receiver, the web server and the logger are built once.
func (d *Daemon) restartOnly(old, cfg *config.Config) []string {
	var out []string
	change := func(name string, was, now any) {
		out = append(out, fmt.Sprintf("%s: %v -> %v", name, was, now))
	}
	if w := window(cfg); w != 0 && w != d.mon.Window() {
		change("defaults.window", d.mon.Window(), w)
	}
	if !reflect.DeepEqual(cfg.Notifications, old.Notifications) {
		out = append(out, "notifications") // holds a token reference: no values
	}
	if cfg.Web.Listen != old.Web.Listen {
		change("web.listen", old.Web.Listen, cfg.Web.Listen)
	}
	if cfg.Web.ConfigFile != old.Web.ConfigFile {
		change("web.config_file", old.Web.ConfigFile, cfg.Web.ConfigFile)
	}
	if cfg.Log.Level != old.Log.Level {
		change("log.level", old.Log.Level, cfg.Log.Level)
	}
	if cfg.Log.Format != old.Log.Format {
		change("log.format", old.Log.Format, cfg.Log.Format)
	}
	return out
}

func (d *Daemon) apply(cfg *config.Config) (ReloadReport, error) {
	cfg, err := cfg.ForShard(d.opts.Shard)
	if err != nil {
		return ReloadReport{}, err
	}
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	if cfg.StateDir != old.StateDir || cfg.DryRun != old.DryRun {
		return ReloadReport{}, errors.New("state_dir and dry_run cannot change on reload; restart the daemon")
	}
	// These are built once, at start; say so rather than seem to apply
	// them. The running daemon keeps the old values.
	rep := ReloadReport{Restart: d.restartOnly(old, cfg)}
	for _, s := range rep.Restart {
		d.log.Warn("reload: a changed setting applies at the next restart", "setting", s)
	}
	// The running daemon keeps what it was built with, so the next reload
	// still reports the difference and status and logs tell the truth.
	// web.per_ue_metrics is read at each scrape: it applies at once.
	perUE := cfg.Web.PerUEMetrics
	cfg.Web, cfg.Log, cfg.Notifications = old.Web, old.Log, old.Notifications
	cfg.Web.PerUEMetrics = perUE
	var api SessionAPI
	if d.opts.API == nil && !cfg.DryRun && !reflect.DeepEqual(cfg.API, old.API) {
		c, err := NewClient(cfg.API)
		if err != nil {
			return ReloadReport{}, err
		}
		api = c
	}
	checkAPI := api
	if checkAPI == nil {
		d.mu.Lock()
		checkAPI = d.api
		d.mu.Unlock()
	}
	caps, err := checkProfiles(d.opsCtx, cfg, checkAPI, d.log)
	if err != nil {
		return ReloadReport{}, err
	}
	ues, err := monitorUEs(cfg)
	if err != nil {
		return ReloadReport{}, err
	}
	// Samples of new UEs may come as soon as the monitor has them.
	d.dirty.setUEs(append(ueNames(cfg), ueNames(old)...))
	if err := d.mon.SetUEs(ues); err != nil {
		return ReloadReport{}, err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.cfg = cfg
	d.profileCaps = caps
	if api != nil {
		d.api = api
	}
	d.engine.SetGuards(cfg.Guards.Guards)
	d.initMetricLabels(cfg)
	keep := map[string]bool{}
	clear(d.obsSpans)
	for i := range cfg.UEs {
		ue := &cfg.UEs[i]
		keep[ue.Name] = true
		d.obsSpans[ue.Name] = spansOf(ue.Rule)
		if err := d.engine.SetUE(ue.Name, ue.Rule, groups(ue)...); err != nil {
			d.log.Error("policy refused UE", "ue", ue.Name, "err", err)
		}
	}
	for _, st := range d.engine.Briefs(make([]policy.Brief, 0, len(keep))) {
		if !keep[st.UE] && !st.Removed {
			if dec := d.engine.RemoveUE(now, st.UE); dec.Kind != policy.None {
				d.dispatch(dec)
			}
			delete(d.obsProm, st.UE)
		}
	}
	d.history.keep(ueNames(cfg))
	if d.runCtx != nil {
		// Outside d.mu's callers: the engine start only touches icmpMu.
		go func() {
			if err := d.startICMPIfNeeded(); err != nil {
				d.log.Error("icmp probes after reload", "err", err)
			}
		}()
	}
	return rep, nil
}

// Statuses reports every UE as the policy sees it.
func (d *Daemon) Statuses() []policy.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.engine.Statuses(nil)
}

// Usage reports the sessions held and the budget spent.
func (d *Daemon) Usage() policy.Usage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.engine.Usage(d.now())
}

// shutdown waits for the calls in flight, then ends every session held if
// release_on_shutdown is set; otherwise sessions run on and are adopted at
// the next start. No API call starts once it has begun (notifications that
// arrive meanwhile are settled at the next start), and it returns only
// after every state write it waited for is done.
func (d *Daemon) shutdown() error {
	d.ops.stop()
	deadline := time.AfterFunc(d.opts.ShutdownGrace, d.stopOp)
	defer deadline.Stop()
	defer d.stopOp()
	defer d.ops.finish()
	d.ops.wait()
	d.mu.Lock()
	aborted := d.abortErr != nil
	release := d.cfg.Guards.ReleaseOnShutdown && !d.cfg.DryRun && !aborted
	held := d.engine.Holding(nil)
	d.mu.Unlock()
	if !release || len(held) == 0 {
		if len(held) > 0 && aborted {
			d.log.Warn("stopping after a failure; sessions kept, not released, and adopted at the next start", "sessions", len(held))
		} else if len(held) > 0 {
			d.log.Info("stopping; sessions kept and adopted at the next start", "sessions", len(held))
		}
		return nil
	}
	d.log.Info("stopping; ending sessions (release_on_shutdown)", "sessions", len(held))
	var wg sync.WaitGroup
	for _, st := range held {
		wg.Add(1)
		go func(st policy.Status) {
			defer wg.Done()
			d.mu.Lock()
			api := d.api
			d.mu.Unlock()
			txid := qodclient.NewTransactionID()
			ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
			defer cancel()
			err := api.Delete(ctx, st.Session.ID)
			d.countAPI("delete", err)
			if err != nil {
				d.log.Error("end session on shutdown failed; it stays in the state file", "ue", st.UE, "session_id", st.Session.ID, "transaction_id", txid, "err", err)
				return
			}
			d.log.Info("session ended on shutdown", "ue", st.UE, "session_id", st.Session.ID, "transaction_id", txid)
			d.forget(st.Session.ID)
			d.mu.Lock()
			d.gone[st.Session.ID] = d.now()
			if err := d.engine.Ended(d.now(), st.UE, st.Session.ID, policy.EndReleased); err != nil {
				d.log.Warn("policy refused session end", "ue", st.UE, "session_id", st.Session.ID, "err", err)
			}
			d.metrics.sessionsEnded.WithLabelValues(policy.EndReleased.String()).Inc()
			d.noteCooldown(st.UE)
			d.mu.Unlock()
		}(st)
	}
	wg.Wait()
	d.ops.wait()
	return nil
}
