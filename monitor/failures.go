package monitor

import (
	"sync"
	"time"
)

// Probe errors per UE (issue 12): a probe that cannot measure at all is
// counted per UE, probe kind and bounded reason, logged with its error text
// (rate-limited), and kept as the UE's current failure until the kind
// measures again, for the status page: "tcp: connection refused since 09:14".

// ueErrors is what the failing probes of one UE left. It is allocated at
// the UE's first error, so a fleet of healthy UEs pays a nil pointer each.
type ueErrors struct {
	counts [numKinds][numReasons]uint64
	cur    [numKinds]failure
}

// failure is the current run of errors of one probe kind of a UE.
type failure struct {
	since  int64 // UnixNano of the run's first error; 0: the kind measures
	at     int64 // UnixNano of the run's latest error
	n      uint64
	reason int
	text   string
	logged int64 // UnixNano of the last log line about this run
	quiet  uint64
}

// Log limits: a run of errors of one probe of one UE is logged when it
// starts, when its error changes (at most every errLogMin) and every
// errLogEvery while it lasts; across all UEs at most errLogBurst lines at
// once and errLogRate a second. A fleet whose probes all fail at once (the
// probe server is down) must not drown the log.
const (
	errLogMin   = 10 * time.Second
	errLogEvery = 5 * time.Minute
	errLogBurst = 20
	errLogRate  = 5 // lines per second, refilled
)

// logLimiter is a token bucket on the time of the events, so fake clocks
// drive it in tests.
type logLimiter struct {
	mu         sync.Mutex
	tokens     float64
	last       int64
	suppressed uint64 // lines left out since the last one written
}

// allow takes a token at ns; when it returns true, also how many lines were
// left out before.
func (l *logLimiter) allow(ns int64) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == 0 {
		l.tokens = errLogBurst
	} else if ns > l.last {
		l.tokens = min(errLogBurst, l.tokens+float64(ns-l.last)/1e9*errLogRate)
	}
	l.last = max(l.last, ns)
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	s := l.suppressed
	l.suppressed = 0
	return true, s
}

// recordError counts err for kind k of the UE at ns and logs it when the
// limits let it. The caller holds st.mu; logging happens after, through
// the returned function (nil: nothing to log).
func (m *Monitor) recordError(st *ueState, k kind, err error, ns int64) func() {
	reason := classify(err)
	text := err.Error()
	if st.errs == nil {
		st.errs = new(ueErrors)
	}
	st.errs.counts[k][reason]++
	f := &st.errs.cur[k]
	fresh := f.since == 0
	if fresh {
		*f = failure{since: ns}
	}
	changed := !fresh && (f.reason != reason || f.text != text)
	f.at, f.reason, f.text = ns, reason, text
	f.n++
	due := fresh || (changed && ns-f.logged >= int64(errLogMin)) || ns-f.logged >= int64(errLogEvery)
	if !due {
		f.quiet++
		return nil
	}
	n, quiet, since := f.n, f.quiet, f.since
	f.logged, f.quiet = ns, 0
	return func() {
		ok, dropped := m.errLog.allow(ns)
		if !ok {
			return
		}
		args := []any{"ue", st.name, "probe", kindNames[k], "reason", reasonNames[reason], "err", text}
		if !fresh {
			args = append(args, "failing_since", time.Unix(0, since).UTC().Format(time.RFC3339), "errors", n, "not_logged", quiet)
		}
		if dropped > 0 {
			args = append(args, "other_lines_suppressed", dropped)
		}
		m.log.Warn("probe failed", args...)
	}
}

// recovered ends the current run of errors of kind k, if any, and returns
// the log line to write (nil: none). The caller holds st.mu.
func (m *Monitor) recovered(st *ueState, k kind, ns int64) func() {
	if st.errs == nil || st.errs.cur[k].since == 0 {
		return nil
	}
	f := st.errs.cur[k]
	st.errs.cur[k] = failure{}
	return func() {
		ok, dropped := m.errLog.allow(ns)
		if !ok {
			return
		}
		args := []any{"ue", st.name, "probe", kindNames[k],
			"failed_for", time.Duration(ns - f.since).Round(time.Millisecond).String(), "errors", f.n, "last_err", f.text}
		if dropped > 0 {
			args = append(args, "other_lines_suppressed", dropped)
		}
		m.log.Info("probe measures again", args...)
	}
}

// ProbeFailure is a probe kind of a UE that cannot measure now.
type ProbeFailure struct {
	Probe  string    // probe kind: icmp, tcp, http, throughput, prometheus
	Reason string    // the bounded reason, as on qodwatch_probe_errors_total
	Text   string    // the reason for people: "connection refused"
	Err    string    // the latest error
	Since  time.Time // the first error of this run
	Last   time.Time // the latest error
	Errors uint64    // errors in this run
}

// reasonTexts say the reasons for people.
var reasonTexts = [numReasons]string{
	reasonOther:       "error",
	reasonResolve:     "name does not resolve",
	reasonRefused:     "connection refused",
	reasonUnreachable: "unreachable",
	reasonTimeout:     "timed out",
	reasonTLS:         "TLS failed",
	reasonHTTPStatus:  "HTTP error status",
	reasonPermission:  "permission denied",
	reasonQuery:       "query failed",
	reasonCanceled:    "canceled",
}

// Failures returns the probe kinds of ue that fail now (their latest run
// ended in an error), in kind order; nil when all measure.
func (m *Monitor) Failures(ue string) []ProbeFailure {
	st := m.set.Load().byName[ue]
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.errs == nil {
		return nil
	}
	var out []ProbeFailure
	for k := range numKinds {
		f := &st.errs.cur[k]
		if f.since == 0 || !st.kinds[k] {
			continue
		}
		out = append(out, ProbeFailure{
			Probe: kindNames[k], Reason: reasonNames[f.reason], Text: reasonTexts[f.reason], Err: f.text,
			Since: time.Unix(0, f.since), Last: time.Unix(0, f.at), Errors: f.n,
		})
	}
	return out
}

// Failing reports whether some probe of ue cannot measure now: cheaper
// than Failures, for sorting a fleet.
func (m *Monitor) Failing(ue string) bool {
	st := m.set.Load().byName[ue]
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.errs == nil {
		return false
	}
	for k := range numKinds {
		if st.errs.cur[k].since != 0 && st.kinds[k] {
			return true
		}
	}
	return false
}

// errorCount sums the errors of kind k for reason r over the UEs (tests).
func (m *Monitor) errorCount(k kind, r int) uint64 {
	var n uint64
	for _, st := range m.set.Load().list {
		st.mu.Lock()
		if st.errs != nil {
			n += st.errs.counts[k][r]
		}
		st.mu.Unlock()
	}
	return n
}
