// Package icmp is qodwatch's ICMP echo engine (issue 3). It pings thousands
// of UEs over one shared socket per address family and source address: one
// socket and goroutine per target would make the kernel copy every reply to
// every socket and keep both cores busy from about 2,000 targets.
//
// Sending: one goroutine (Run) keeps a min-heap of due sends and one of
// packet timeouts, and sleeps on one timer until the earliest. Target starts
// are spread evenly over their interval. Everything due within
// Options.Coalesce of a wakeup goes out in one sendmmsg per socket.
//
// Receiving: one goroutine per socket reads with recvmmsg and matches each
// reply by id, sequence, a random per-engine token and a unique serial in the
// payload, through a slot table indexed by serial: no allocation, map lookup
// or goroutine per packet. RTTs come from the kernel's receive timestamps, so
// they do not depend on when a reply is read. That lets the reader run once
// per sender wakeup instead of once per reply: at a thousand targets the
// wakeups, not the packets, are what costs. A packet times out only once
// every reply that reached the kernel before its deadline has been matched.
package icmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
)

// Mode chooses the kind of ICMP socket.
type Mode int

const (
	// ModeAuto tries an unprivileged ping socket first and falls back to a
	// raw socket.
	ModeAuto Mode = iota
	// ModeUnprivileged uses datagram ICMP ("ping") sockets, allowed for the
	// groups in sysctl net.ipv4.ping_group_range.
	ModeUnprivileged
	// ModeRaw uses raw ICMP sockets, which need CAP_NET_RAW.
	ModeRaw
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeUnprivileged:
		return "unprivileged"
	case ModeRaw:
		return "raw"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults for the zero fields of a Target.
const (
	DefaultInterval = time.Second
	DefaultPackets  = 3
	DefaultSpacing  = 100 * time.Millisecond // capped at Interval/Packets
	DefaultTimeout  = time.Second
)

// DefaultCoalesce is the default of Options.Coalesce.
const DefaultCoalesce = 10 * time.Millisecond

// DelayedSendThreshold is how late a send may be before Counters counts it
// in DelayedSends.
const DelayedSendThreshold = 10 * time.Millisecond

const (
	probeName      = "icmp"
	socketRetry    = 5 * time.Second  // between attempts to open a failed socket
	maxKernelAge   = 10 * time.Second // beyond this a kernel timestamp is not believed
	initialSlots   = 4096
	logEvery       = 10 * time.Second // rate limit of repeated warnings
	idleWakeupTime = time.Hour
	// While a reply may be waiting to be matched, timeouts wait (so that
	// a reply that came in time is judged by its kernel timestamp, however
	// late the receive goroutine runs), checking again after expiryRetry,
	// but never longer than maxExpiryDefer. At 100,000 echoes a second the
	// queue is never empty, so timeouts wait the whole of it, woken every
	// expiryRetry: 5 s cost a tenth more CPU than 1 s (bench/icmp.sh,
	// 51.8 % against 38.7–46.8 % of a core). Replies a starved reader
	// loses to a full queue are told apart by the kernel's drop count.
	expiryRetry    = time.Millisecond
	maxExpiryDefer = time.Second
	// maxReadDelay bounds how long a reply waits to be read while the
	// engine is otherwise idle (see receive).
	maxReadDelay = 20 * time.Millisecond
)

// Options configure an Engine.
type Options struct {
	// Recorder gets one Result per packet: {UE, Probe: "icmp", At, RTT} for
	// a matched reply, {UE, Probe, At, Lost: true} when its timeout passes,
	// {UE, Probe, At, Err} when it could not be sent.
	Recorder monitor.Recorder
	Mode     Mode
	Logger   *slog.Logger // nil: slog.Default()
	// Coalesce lets sends due within this much of the earliest go out with
	// it, up to this much early, in one wakeup and one sendmmsg: fewer
	// wakeups per packet at a cost in send-time precision that is small
	// next to an interval of seconds. 0 means DefaultCoalesce; negative
	// turns it off.
	Coalesce time.Duration
	// Now replaces time.Now in tests. With it, RTTs are measured with Now
	// only (kernel receive timestamps are not used).
	Now func() time.Time
}

// Target is one UE to ping.
type Target struct {
	UE       string
	Addr     netip.Addr    // IPv4 or IPv6 (with zone for link-local)
	Source   netip.Addr    // source address (hosts with several modems); zero = any
	Interval time.Duration // one cycle per interval (default 1s)
	Packets  int           // echo requests per cycle (default 3)
	Spacing  time.Duration // between the packets of a cycle (default 100ms, at most Interval/Packets)
	Timeout  time.Duration // per packet (default 1s)
	// TOS marks its echo requests (IP TOS / IPv6 traffic class); targets
	// with different marks get sockets of their own. 0: unmarked.
	TOS uint8
}

// Validate reports whether t is usable, with the defaults applied.
func (t Target) Validate() error {
	_, err := t.normalize()
	return err
}

// normalize applies defaults and checks meaning. The result is the
// target's identity: SetTargets keeps the phase of targets whose normalized
// form did not change.
func (t Target) normalize() (Target, error) {
	if t.UE == "" {
		return t, errors.New("icmp target: empty UE name")
	}
	if !t.Addr.IsValid() {
		return t, fmt.Errorf("icmp target %q: no address", t.UE)
	}
	t.Addr = t.Addr.Unmap()
	if t.Source.IsValid() {
		t.Source = t.Source.Unmap()
		if t.Source.Is4() != t.Addr.Is4() {
			return t, fmt.Errorf("icmp target %q: source %s and address %s are of different IP versions", t.UE, t.Source, t.Addr)
		}
	}
	switch {
	case t.Interval < 0:
		return t, fmt.Errorf("icmp target %q: negative interval %v", t.UE, t.Interval)
	case t.Packets < 0:
		return t, fmt.Errorf("icmp target %q: negative packet count %d", t.UE, t.Packets)
	case t.Spacing < 0:
		return t, fmt.Errorf("icmp target %q: negative spacing %v", t.UE, t.Spacing)
	case t.Timeout < 0:
		return t, fmt.Errorf("icmp target %q: negative timeout %v", t.UE, t.Timeout)
	}
	if t.Interval == 0 {
		t.Interval = DefaultInterval
	}
	if t.Packets == 0 {
		t.Packets = DefaultPackets
	}
	if t.Timeout == 0 {
		t.Timeout = DefaultTimeout
	}
	if t.Spacing == 0 {
		t.Spacing = min(DefaultSpacing, t.Interval/time.Duration(t.Packets))
	}
	if t.Packets > 1 && time.Duration(t.Packets-1)*t.Spacing >= t.Interval {
		return t, fmt.Errorf("icmp target %q: %d packets %v apart do not fit in the interval %v", t.UE, t.Packets, t.Spacing, t.Interval)
	}
	return t, nil
}

// Counters are the engine's totals since New.
type Counters struct {
	Sent       uint64 // echo requests the kernel accepted
	Received   uint64 // replies matched within their timeout
	Lost       uint64 // packets whose timeout passed without a reply
	Late       uint64 // replies after their timeout (also counted in Lost)
	Duplicates uint64 // second replies to an answered packet
	Unmatched  uint64 // echo replies that are not ours (other pingers, forged, garbled)
	SendErrors uint64 // packets that could not be sent
	// HostDrops counts replies the kernel dropped because a socket's queue
	// was full (this host read too late); Unjudged, packets that timed
	// out meanwhile and are not counted as lost, nor recorded.
	HostDrops uint64
	Unjudged  uint64

	// DelayedSends counts sends made more than DelayedSendThreshold after
	// they were due; MaxSendDelay is the worst delay seen.
	DelayedSends uint64
	MaxSendDelay time.Duration

	// System calls, to show how well sends and receives are batched.
	SendCalls uint64
	RecvCalls uint64
}

// Engine pings a set of targets. Create it with New, give it targets with
// SetTargets (before or while Run runs) and call Run once. Sockets are
// opened as targets need them and closed when Run returns.
type Engine struct {
	rec       monitor.Recorder
	log       *slog.Logger
	clock     func() time.Time
	realClock bool
	start     time.Time
	mode      Mode // resolved: ModeUnprivileged or ModeRaw
	coalesce  int64
	token     uint64
	rawID     uint16

	ready   chan struct{}
	poke    chan struct{}
	stop    chan struct{} // closed when Run ends
	closing atomic.Bool
	wg      sync.WaitGroup

	setMu sync.Mutex // serialises SetTargets; see there

	mu        sync.Mutex
	running   bool
	targets   map[Target]*target
	sends     sendQueue
	deadlines deadlineQueue
	slots     slotTable
	serial    uint64
	sockets   map[socketKey]*socket
	opened    []*socket
	toStart   []*socket // opened, receive goroutine not started yet
	c         Counters

	// Owned by the Run goroutine.
	lostResults []monitor.Result
	errResults  []monitor.Result
	flushing    []*socket
	kicking     []*socket
	lastWarn    time.Time
}

// New checks that ICMP sockets can be opened in opts.Mode (resolving
// ModeAuto) and returns an engine without targets. When permission is
// lacking the error is a *PermissionError naming the sysctl or capability
// to grant.
func New(opts Options) (*Engine, error) {
	if opts.Recorder == nil {
		return nil, errors.New("icmp engine: no Recorder")
	}
	switch opts.Mode {
	case ModeAuto, ModeUnprivileged, ModeRaw:
	default:
		return nil, fmt.Errorf("icmp engine: unknown mode %d", int(opts.Mode))
	}
	e := &Engine{
		rec:     opts.Recorder,
		log:     opts.Logger,
		clock:   opts.Now,
		token:   rand.Uint64(),
		rawID:   uint16(rand.Uint32()),
		serial:  uint64(rand.Uint32()), // random starting sequence
		ready:   make(chan struct{}),
		poke:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		targets: map[Target]*target{},
		sockets: map[socketKey]*socket{},
		slots:   newSlotTable(initialSlots),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	switch {
	case opts.Coalesce == 0:
		e.coalesce = int64(DefaultCoalesce)
	case opts.Coalesce > 0:
		e.coalesce = int64(opts.Coalesce)
	}
	if e.clock == nil {
		e.clock = time.Now
		e.realClock = true
	}
	e.start = e.clock()
	mode, err := resolveMode(opts.Mode, e.rawID)
	if err != nil {
		return nil, err
	}
	e.mode = mode
	return e, nil
}

// resolveMode finds the first mode whose socket opens: ModeAuto tries
// unprivileged, then raw. A family the host lacks (no IPv4) is skipped.
func resolveMode(want Mode, rawID uint16) (Mode, error) {
	try := []Mode{want}
	if want == ModeAuto {
		try = []Mode{ModeUnprivileged, ModeRaw}
	}
	var errs []error
	onlyPermission := true
	for _, m := range try {
		for _, v6 := range []bool{false, true} {
			s := &socket{key: socketKey{v6: v6}}
			err := s.open(m, rawID)
			if err == nil {
				s.close()
				return m, nil
			}
			errs = append(errs, err)
			if isPermission(err) {
				break // the other family needs the same permission
			}
			onlyPermission = false
		}
	}
	if onlyPermission {
		return 0, newPermissionError(want, errs[len(errs)-1])
	}
	return 0, fmt.Errorf("icmp engine: %w", errors.Join(errs...))
}

// Mode returns the socket mode in use: ModeUnprivileged or ModeRaw.
func (e *Engine) Mode() Mode { return e.mode }

// Ready is closed once Run has opened the sockets of the targets set so far
// and is sending.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Counters returns the totals so far.
func (e *Engine) Counters() Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.c
}

// SetTargets replaces the whole target set. Targets that did not change
// keep their schedule; new ones are placed in the largest gaps of the
// schedule of their interval; removed ones stop at once (their answers
// still in flight are counted but not recorded). Invalid targets are logged
// and skipped (use Target.Validate to refuse them earlier). Safe to call
// while Run runs.
func (e *Engine) SetTargets(ts []Target) {
	// The diff, the phases and the new targets are worked out outside
	// e.mu, which the sender and the receivers need for every packet: with
	// 250,000 targets this work takes a second or more, and a sender held
	// that long sends late and expires unread replies as losses. setMu
	// keeps a second SetTargets out, so e.targets (written only here, under
	// both locks) may be read under setMu alone.
	e.setMu.Lock()
	defer e.setMu.Unlock()
	type fresh struct {
		cfg Target
		key socketKey
		t   *target // made once its phase is known
	}
	var added []fresh
	keep := make(map[Target]*target, len(ts))
	for _, raw := range ts {
		cfg, err := raw.normalize()
		if err != nil {
			e.log.Warn("icmp: target skipped", "ue", raw.UE, "err", err)
			continue
		}
		if _, dup := keep[cfg]; dup {
			continue
		}
		if old, ok := e.targets[cfg]; ok {
			keep[cfg] = old
			continue
		}
		keep[cfg] = nil // reserved; created below
		added = append(added, fresh{cfg: cfg, key: socketKey{v6: cfg.Addr.Is6(), source: cfg.Source, tos: cfg.TOS}})
	}
	var removed []*target
	for cfg, t := range e.targets {
		if keep[cfg] != t {
			removed = append(removed, t)
		}
	}

	// Phases of the new targets, per interval, around those that stay.
	taken := map[time.Duration][]int64{}
	for _, t := range keep {
		if t != nil {
			taken[t.cfg.Interval] = append(taken[t.cfg.Interval], t.phase)
		}
	}
	byInterval := map[time.Duration][]int{}
	var intervals []time.Duration
	for i, a := range added {
		iv := a.cfg.Interval
		if byInterval[iv] == nil {
			intervals = append(intervals, iv)
		}
		byInterval[iv] = append(byInterval[iv], i)
	}
	for _, iv := range intervals {
		idx := byInterval[iv]
		phases := spreadPhases(taken[iv], len(idx), int64(iv))
		for k, i := range idx {
			a := &added[i]
			t, err := newTarget(a.cfg, nil, phases[k])
			if err != nil {
				delete(keep, a.cfg)
				e.log.Warn("icmp: target skipped", "ue", a.cfg.UE, "err", err)
				continue // a.t stays nil
			}
			keep[a.cfg] = t
			a.t = t
		}
	}
	if len(removed) == 0 && len(added) == 0 {
		return // the same targets: nothing for the sender to change
	}

	e.mu.Lock()
	for _, t := range removed {
		t.removed = true
		t.sock.targets--
		e.sends.remove(t)
	}
	now := e.mono()
	for _, a := range added {
		if a.t == nil {
			continue // skipped above
		}
		s := e.sockets[a.key]
		if s == nil {
			s = &socket{key: a.key, kick: make(chan struct{}, 1)}
			e.sockets[a.key] = s
		}
		a.t.sock = s
		s.targets++
		a.t.start(now)
		e.sends.push(a.t)
	}
	e.targets = keep
	e.mu.Unlock()
	select {
	case e.poke <- struct{}{}:
	default:
	}
}

// Run sends and receives until ctx is done, then closes the sockets and
// returns nil. It returns an error only if called more than once.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("icmp engine: Run called more than once")
	}
	e.running = true
	now := e.mono()
	for _, s := range e.sockets {
		e.openSocket(s, now)
	}
	// Targets set before Run start from now, in phase, rather than all
	// at once for the cycles that passed meanwhile.
	for _, t := range e.sends {
		t.start(now)
	}
	e.sends.init()
	e.mu.Unlock()
	defer e.shutdown()
	e.startReceivers()
	e.log.Info("icmp engine running", "mode", e.mode.String())
	close(e.ready)

	timer := time.NewTimer(idleWakeupTime)
	defer timer.Stop()
	for {
		timer.Reset(e.step())
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-e.poke:
		}
	}
}

// step does what is due: expire timed-out packets and send due ones. It
// returns how long to sleep until something is due again.
func (e *Engine) step() time.Duration {
	e.mu.Lock()
	for _, s := range e.flushing {
		c := s.sendCalls()
		e.c.SendCalls += c - s.sendCallsIn
		s.sendCallsIn = c
	}
	e.flushing = e.flushing[:0]
	now := e.mono()
	deferred := e.expire(now)
	full := e.collect(now)
	next := now + int64(idleWakeupTime)
	if len(e.sends) > 0 {
		next = min(next, e.sends[0].due)
	}
	if deferred {
		next = min(next, now+max(int64(expiryRetry), e.coalesce))
	} else if len(e.deadlines) > 0 {
		next = min(next, e.deadlines[0].at)
	}
	// Sockets with packets in flight get read after this wakeup, and
	// wakeups come at least every maxReadDelay while there are any.
	e.kicking = e.kicking[:0]
	for _, s := range e.opened {
		if s.pending > 0 {
			e.kicking = append(e.kicking, s)
			next = min(next, now+int64(maxReadDelay))
		}
	}
	if full {
		next = now
	}
	e.mu.Unlock()

	e.startReceivers()
	e.recordAll(&e.lostResults)
	for _, s := range e.flushing {
		if failed := s.flush(); len(failed) > 0 {
			e.sendFailed(s, failed)
		}
		s.resetBatch()
	}
	e.recordAll(&e.errResults)
	for _, s := range e.kicking {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return max(0, time.Duration(next-e.mono()))
}

// recordAll hands results to the Recorder and empties the buffer, keeping
// its capacity.
func (e *Engine) recordAll(rs *[]monitor.Result) {
	for i := range *rs {
		e.rec.Record((*rs)[i])
		(*rs)[i] = monitor.Result{}
	}
	*rs = (*rs)[:0]
}

// expire turns pending packets whose deadline has passed into losses, but
// only once every reply that reached the kernel before the deadline has
// been matched: a reply that came in time is judged by its kernel
// timestamp, however late the receive goroutine runs. It reports whether
// due deadlines had to wait.
//
// A socket is known to be drained up to its watermark (set by its receive
// goroutine), or up to now when quiet: quiet first sees no message queued,
// then no message read but unmatched. A reply queued before the deadline
// that is gone from the queue was taken by a receive that set the reading
// flag first, and the flag is cleared only after matching, under e.mu,
// which we hold. After maxExpiryDefer deadlines expire regardless.
func (e *Engine) expire(now int64) (deferred bool) {
	if len(e.deadlines) == 0 || e.deadlines[0].at > now {
		return false
	}
	limit := now
	for _, s := range e.opened {
		if s.watermark < e.deadlines[0].at && !s.quiet() {
			limit = min(limit, s.watermark)
		}
	}
	limit = max(limit, now-int64(maxExpiryDefer))
	for len(e.deadlines) > 0 && e.deadlines[0].at <= limit {
		d := e.deadlines.pop()
		sl := e.slots.at(d.serial)
		if sl.serial != d.serial || sl.state != slotPending {
			continue
		}
		sl.state = slotExpired
		sl.t.sock.pending--
		if s := sl.t.sock; s.hostDrops > 0 && sl.sentAt <= s.overflowAt {
			// Its reply may be one the kernel dropped on our full
			// queue: the host's loss, not the UE's, so no sample.
			e.c.Unjudged++
			continue
		}
		e.c.Lost++
		if !sl.t.removed {
			e.lostResults = append(e.lostResults, monitor.Result{
				UE: sl.t.cfg.UE, Probe: probeName, At: e.timeAt(d.at), Lost: true,
			})
		}
	}
	return len(e.deadlines) > 0 && e.deadlines[0].at <= now
}

// collect queues every send due by now; true when a batch filled up and
// more may be due.
func (e *Engine) collect(now int64) bool {
	// Nothing goes early unless the first send is due: a wakeup for other
	// reasons must not break up the batches.
	sending := false
	for len(e.sends) > 0 {
		t := e.sends[0]
		if t.due > now+e.coalesce || !sending && t.due > now {
			return false
		}
		sending = true
		s := t.sock
		if !s.opened && !e.openSocket(s, now) {
			e.c.SendErrors++
			e.errResults = append(e.errResults, monitor.Result{
				UE: t.cfg.UE, Probe: probeName, At: e.timeAt(now), Err: s.err,
			})
			t.advance(now)
			e.sends.fix(0)
			continue
		}
		if s.batched() == maxSendBatch {
			return true
		}
		serial := e.serial
		e.serial++
		*e.slots.claim(serial) = slot{serial: serial, sentAt: now, t: t, state: slotPending}
		e.deadlines.push(deadline{at: now + t.timeout, serial: serial})
		if s.batched() == 0 {
			e.flushing = append(e.flushing, s)
		}
		s.queue(t, echo{id: s.id, serial: serial, token: e.token, sent: now})
		s.pending++
		e.c.Sent++
		if late := time.Duration(now - t.due); late > DelayedSendThreshold {
			e.c.DelayedSends++
			e.c.MaxSendDelay = max(e.c.MaxSendDelay, late)
		} else if late > e.c.MaxSendDelay {
			e.c.MaxSendDelay = late
		}
		t.advance(now)
		e.sends.fix(0)
	}
	return false
}

// sendFailed undoes the accounting of the messages the kernel refused.
func (e *Engine) sendFailed(s *socket, failed []sendFailure) {
	at := e.timeAt(e.mono())
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range failed {
		t, serial := s.batchEntry(f.index)
		if sl := e.slots.at(serial); sl.serial == serial && sl.state == slotPending {
			sl.state = slotFree
			s.pending--
		}
		e.c.Sent--
		e.c.SendErrors++
		if !t.removed {
			e.errResults = append(e.errResults, monitor.Result{
				UE: t.cfg.UE, Probe: probeName, At: at,
				Err: fmt.Errorf("send echo request to %s: %w", t.cfg.Addr, f.err),
			})
		}
	}
	if now := e.clock(); now.Sub(e.lastWarn) >= logEvery {
		e.lastWarn = now
		e.log.Warn("icmp: echo requests not sent", "socket", s.key.String(), "count", len(failed), "err", failed[0].err)
	}
}

// openSocket opens s unless it failed recently; called with e.mu held.
func (e *Engine) openSocket(s *socket, now int64) bool {
	if s.opened {
		return true
	}
	if now < s.retryAt || e.closing.Load() {
		return false
	}
	if err := s.open(e.mode, e.rawID); err != nil {
		s.err = err
		s.retryAt = now + int64(socketRetry)
		e.log.Warn("icmp: cannot open socket; retrying", "socket", s.key.String(), "in", socketRetry, "err", err)
		return false
	}
	s.err = nil
	if s.rcvBuf < minGoodRcvBuf {
		e.log.Warn("icmp: small socket receive buffer; raise net.core.rmem_max or grant CAP_NET_ADMIN",
			"socket", s.key.String(), "bytes", s.rcvBuf)
	}
	e.log.Debug("icmp: socket open", "socket", s.key.String(), "mode", e.mode.String(), "id", s.id, "rcvbuf", s.rcvBuf)
	e.opened = append(e.opened, s)
	e.toStart = append(e.toStart, s)
	return true
}

func (e *Engine) startReceivers() {
	e.mu.Lock()
	start := e.toStart
	e.toStart = nil
	e.mu.Unlock()
	for _, s := range start {
		e.wg.Add(1)
		go e.receive(s)
	}
}

// shutdown closes the sockets and waits for the receive goroutines.
func (e *Engine) shutdown() {
	e.closing.Store(true)
	close(e.stop)
	e.mu.Lock()
	for _, s := range e.opened {
		s.wake()
	}
	e.toStart = nil
	e.mu.Unlock()
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.opened {
		if err := s.close(); err != nil {
			e.log.Warn("icmp: close socket", "socket", s.key.String(), "err", err)
		}
	}
	e.opened = nil
}

// receive reads and matches the replies arriving on s until s is closed.
//
// While s has targets or packets in flight, the Run goroutine wakes up
// anyway (to send, to expire, and at least every maxReadDelay while packets
// are in flight) and kicks this goroutine after each wakeup that left
// packets in flight; it then reads what has arrived without waiting.
// Replies so pile up into batches and the engine wakes up once per batch
// instead of once per reply, which is most of the cost per packet at a
// thousand targets. RTTs are unaffected: they come from the kernel's receive
// timestamps, and timeouts wait for replies not yet read (expire). With
// neither targets nor packets in flight it waits in the kernel for late or
// stray replies.
func (e *Engine) receive(s *socket) {
	defer e.wg.Done()
	r := receiver{e: e, s: s, results: make([]monitor.Result, 0, maxRecvBatch)}
	e.mu.Lock()
	active := s.active()
	e.mu.Unlock()
	for {
		if !active {
			before := e.mono()
			n, err := s.read()
			if !r.handle(n, err, before, &active) {
				return
			}
			continue
		}
		select {
		case <-s.kick:
		case <-e.stop:
			return
		}
		for {
			before := e.mono()
			n, err := s.readNow()
			if !r.handle(n, err, before, &active) {
				return
			}
			if n < maxRecvBatch {
				break
			}
		}
	}
}

// receiver is the state of one receive goroutine.
type receiver struct {
	e        *Engine
	s        *socket
	results  []monitor.Result
	callsIn  uint64
	lastWarn time.Time
}

// handle matches the n messages of a read that started at before and
// records the results. It returns false when the socket is closed, and
// reports in active whether the socket has packets in flight.
func (r *receiver) handle(n int, err error, before int64, active *bool) bool {
	e, s := r.e, r.s
	if err != nil {
		e.mu.Lock()
		s.doneReading()
		*active = s.active()
		e.mu.Unlock()
		if errors.Is(err, net.ErrClosed) || e.closing.Load() {
			return false
		}
		if now := time.Now(); now.Sub(r.lastWarn) >= logEvery {
			r.lastWarn = now
			e.log.Warn("icmp: receive failed", "socket", s.key.String(), "err", err)
		}
		return true
	}
	wall := e.clock()
	mono := int64(wall.Sub(e.start))
	e.mu.Lock()
	calls := s.recvCalls()
	e.c.RecvCalls += calls - r.callsIn
	r.callsIn = calls
	for i := 0; i < n; i++ {
		data, from, fromOK, kernelNs, drops := s.message(i)
		if drops > s.hostDrops {
			// The kernel dropped replies since the last we saw: the
			// queue was full because this host did not read in time.
			e.c.HostDrops += uint64(drops - s.hostDrops)
			s.hostDrops, s.overflowAt = drops, mono
		}
		recv, at := mono, wall
		if e.realClock && kernelNs > 0 {
			// The kernel stamped the reply on arrival, in wall time;
			// move our monotonic reading back by its age.
			if age := wall.UnixNano() - kernelNs; age >= 0 && age < int64(maxKernelAge) {
				recv -= age
				at = wall.Add(-time.Duration(age))
			}
		}
		if res, ok := e.match(s, data, from, fromOK, recv, at); ok {
			r.results = append(r.results, res)
		}
	}
	if n < maxRecvBatch {
		// That read emptied the queue: every reply that arrived before
		// it started has now been matched.
		s.watermark = before
	}
	s.doneReading()
	*active = s.active()
	e.mu.Unlock()
	for i := range r.results {
		e.rec.Record(r.results[i])
		r.results[i] = monitor.Result{}
	}
	r.results = r.results[:0]
	return true
}

// match accounts for one received message; called with e.mu held. It
// returns the Result to record: the RTT of a reply matched in time, or a
// loss for a reply that came after its timeout before the timeout was
// processed (so a packet's fate does not depend on which goroutine ran first).
func (e *Engine) match(s *socket, data []byte, from [16]byte, fromOK bool, recv int64, at time.Time) (monitor.Result, bool) {
	m, seq, ok := parseEchoReply(data, s.v6, s.withIPHeader)
	if !ok || m.token != e.token || seq != uint16(m.serial) || (s.checkID && m.id != s.id) {
		e.c.Unmatched++
		return monitor.Result{}, false
	}
	sl := e.slots.at(m.serial)
	if sl.serial != m.serial {
		if sl.state != slotFree && m.serial < sl.serial && m.serial < e.serial {
			e.c.Late++ // ours, but so old that its slot was reused
		} else {
			e.c.Unmatched++
		}
		return monitor.Result{}, false
	}
	if sl.t.sock != s {
		// A raw socket bound to an address and the wildcard one both get
		// the reply to a packet sent from that address: only the sender's
		// copy counts.
		return monitor.Result{}, false
	}
	if !fromOK || !sl.t.fromTarget(from) || m.sent != sl.sentAt {
		e.c.Unmatched++
		return monitor.Result{}, false
	}
	switch sl.state {
	case slotPending:
	case slotExpired:
		e.c.Late++
		return monitor.Result{}, false
	case slotAnswered:
		e.c.Duplicates++
		return monitor.Result{}, false
	default:
		e.c.Unmatched++
		return monitor.Result{}, false
	}
	rtt := max(0, recv-sl.sentAt)
	if rtt > sl.t.timeout {
		// Arrived after its timeout, before the timeout was processed.
		sl.state = slotExpired
		s.pending--
		e.c.Lost++
		e.c.Late++
		if sl.t.removed {
			return monitor.Result{}, false
		}
		return monitor.Result{UE: sl.t.cfg.UE, Probe: probeName, At: e.timeAt(sl.sentAt + sl.t.timeout), Lost: true}, true
	}
	sl.state = slotAnswered
	s.pending--
	e.c.Received++
	if sl.t.removed {
		return monitor.Result{}, false
	}
	return monitor.Result{UE: sl.t.cfg.UE, Probe: probeName, At: at, RTT: time.Duration(rtt)}, true
}

// mono is the engine's clock: nanoseconds since New.
func (e *Engine) mono() int64 { return int64(e.clock().Sub(e.start)) }

// timeAt turns an engine time into a time.Time.
func (e *Engine) timeAt(mono int64) time.Time { return e.start.Add(time.Duration(mono)) }
