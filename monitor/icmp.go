package monitor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// ICMP sends Packets echo requests to the UE every Interval, Spacing apart,
// each lost when unanswered within Timeout. The packets are sent by the
// shared ICMP engine (package monitor/icmp), which records one Result per
// packet into the Monitor; this probe only tells the engine whom to ping.
type ICMP struct {
	Interval time.Duration
	Packets  int           // per interval; default 3
	Spacing  time.Duration // between the packets of one interval; default 100 ms, at most Interval/Packets
	Timeout  time.Duration // per packet; default 1 s
	// Source is the local address to send from (hosts with several
	// modems); zero lets the kernel choose.
	Source netip.Addr
	TOS    uint8 // IP TOS / traffic class of its packets; 0 leaves them unmarked
}

// ICMP defaults.
const (
	DefaultICMPPackets = 3
	maxICMPPackets     = 100
)

// Kind implements Probe.
func (ICMP) Kind() string { return KindICMP }

func (p ICMP) bind(ue *UE) (boundProbe, error) {
	if err := checkInterval("icmp", p.Interval); err != nil {
		return nil, err
	}
	b := icmpBound(p)
	if b.Packets == 0 {
		b.Packets = DefaultICMPPackets
	}
	if b.Packets < 0 || b.Packets > maxICMPPackets {
		return nil, fmt.Errorf("packets %d: want 1 to %d", b.Packets, maxICMPPackets)
	}
	if b.Spacing == 0 && b.Packets > 1 {
		b.Spacing = min(100*time.Millisecond, b.Interval/time.Duration(b.Packets))
	}
	if b.Spacing < 0 {
		return nil, fmt.Errorf("spacing %v is negative", b.Spacing)
	}
	if b.Spacing*time.Duration(b.Packets-1) >= b.Interval {
		return nil, fmt.Errorf("%d packets %v apart do not fit in the interval %v", b.Packets, b.Spacing, b.Interval)
	}
	if b.Timeout == 0 {
		b.Timeout = time.Second
	}
	if b.Timeout < 0 {
		return nil, fmt.Errorf("timeout %v is negative", b.Timeout)
	}
	if b.Source.IsValid() {
		b.Source = b.Source.Unmap()
		if a, err := netip.ParseAddr(ue.Addr); err == nil && a.Unmap().Is4() != b.Source.Is4() {
			return nil, fmt.Errorf("source %v and UE address %v are of different IP versions", b.Source, ue.Addr)
		}
	}
	return &b, nil
}

// icmpBound is an ICMP probe with its defaults filled in.
type icmpBound ICMP

func (b *icmpBound) every() time.Duration { return b.Interval }

// ICMPTarget is one UE as the ICMP engine needs it, with the UE's name
// resolved and the defaults filled in. Its fields match monitor/icmp.Target
// one for one, so the daemon converts each with icmp.Target(t). (Package
// monitor cannot import monitor/icmp: that package imports this one.)
type ICMPTarget struct {
	UE       string
	Addr     netip.Addr
	Source   netip.Addr
	Interval time.Duration
	Packets  int
	Spacing  time.Duration
	Timeout  time.Duration
	TOS      uint8
}

// icmpState is what icmpLoop last handed to the engine.
type icmpState struct {
	last []ICMPTarget
	sent bool
}

// icmpLoop hands the ICMP targets to the engine now, whenever the UE set
// changes, and every resolve TTL when names may resolve differently.
func (m *Monitor) icmpLoop(ctx context.Context) {
	for {
		force := m.icmpForce.Swap(false)
		targets := m.icmpTargets(ctx)
		if ctx.Err() != nil {
			return
		}
		if force || !m.icmpState.sent || !slices.Equal(targets, m.icmpState.last) {
			m.opts.ICMP(targets)
			m.icmpState.last, m.icmpState.sent = targets, true
		}
		select {
		case <-ctx.Done():
			return
		case <-m.icmpWake:
		case <-m.clock.After(m.opts.ResolveTTL):
		}
	}
}

// ResendICMPTargets hands the ICMP targets to Options.ICMP again, even if
// unchanged: for an engine created after the last hand-off (say, when a
// reload brings the first ICMP probe). It returns at once; Run does the work.
func (m *Monitor) ResendICMPTargets() {
	m.icmpForce.Store(true)
	notify(m.icmpWake)
}

// resolveTimeout bounds one name lookup for the ICMP targets.
const resolveTimeout = 2 * time.Second

// icmpTargets lists the targets of every UE with an ICMP probe, resolving
// names through the cache. A UE whose name does not resolve is left out
// (counted as a resolve error) until it does.
func (m *Monitor) icmpTargets(ctx context.Context) []ICMPTarget {
	set := m.set.Load()
	if !set.hasICMP {
		return nil
	}
	targets := make([]ICMPTarget, 0, len(set.list))
	for _, st := range set.list {
		st.mu.Lock()
		p, host := st.icmpProbe, st.cfg.Addr
		st.mu.Unlock()
		if p == nil {
			continue
		}
		addr, err := netip.ParseAddr(host)
		if err == nil {
			addr = addr.Unmap()
		} else { // a name: no timer per UE for the (usual) literal address
			rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			addr, err = m.env.resolver.resolve(rctx, host)
			cancel()
		}
		if err == nil && p.Source.IsValid() && p.Source.Is4() != addr.Is4() {
			err = fmt.Errorf("source %v and resolved address %v are of different IP versions", p.Source, addr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Counted and logged (rate-limited) as the UE's icmp error;
			// the target is left out until the name resolves.
			st.mu.Lock()
			logf := m.recordError(st, kICMP, withReason(reasonResolve, fmt.Errorf("icmp target left out: %w", err)), m.clock.Now().UnixNano())
			st.mu.Unlock()
			if logf != nil {
				logf()
			}
			continue
		}
		targets = append(targets, ICMPTarget{
			UE: st.name, Addr: addr, Source: p.Source,
			Interval: p.Interval, Packets: p.Packets, Spacing: p.Spacing, Timeout: p.Timeout, TOS: p.TOS,
		})
	}
	return targets
}
