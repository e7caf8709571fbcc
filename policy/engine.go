package policy

import (
	"errors"
	"fmt"
	"time"
)

// Engine holds the state machine of every UE and the shared limits
// (concurrent sessions, daily budget). It is level-triggered: each
// Evaluate/Tick compares the UE's observation with its rule and its session
// and returns the one decision needed now, if any. Feedback about what the
// API did comes back through Opened, Failed and Ended.
//
// An Engine is not safe for concurrent use; the daemon serialises calls.
// Every method takes the current time: the engine never reads a clock.
type Engine struct {
	g    Guards
	ues  map[string]*ue
	list []*ue // in SetUE order: Tick's order, which decides who gets a free slot first
	gone int   // entries of list dropped since the last compaction
	// sweepAt is where the next Sweep starts in list; list is compacted
	// only when a sweep ends, so the position stays meaningful.
	sweepAt int

	groupIdx   map[string]int
	groupNames []string
	groupCount []int
	groupLimit []int
	sessions   int

	budgetDay  int64 // days since the Unix epoch, UTC
	budgetUsed time.Duration

	due []*ue // min-heap of the UEs with a due time, by due (see due.go)
}

// NewEngine returns an engine with no UEs.
func NewEngine(g Guards) *Engine {
	e := &Engine{ues: map[string]*ue{}, groupIdx: map[string]int{}}
	e.SetGuards(g)
	return e
}

// SetGuards replaces the guards (config reload). Sessions already held are
// kept even if a new limit is below their number; no new ones are asked for
// until they drop below it.
func (e *Engine) SetGuards(g Guards) {
	e.g = g
	for i, name := range e.groupNames {
		e.groupLimit[i] = g.MaxSessionsPerGroup[name]
	}
}

type opKind uint8

const (
	opNone opKind = iota
	opRequest
	opRenew // Renew or Escalate
	opRelease
)

// charge is budget time charged on one UTC day.
type charge struct {
	day int64
	d   time.Duration
}

// timer measures how long a condition has held. Paused, it does not run:
// missing data with on_missing_data hold neither advances nor resets it.
type timer struct{ since, paused time.Time }

func (t *timer) on(now time.Time) {
	switch {
	case t.since.IsZero():
		t.since, t.paused = now, time.Time{}
	case !t.paused.IsZero():
		t.since = t.since.Add(now.Sub(t.paused))
		t.paused = time.Time{}
	}
}

// onBack is on for a condition that has held since back before now (it
// reads measurements reaching that far back).
func (t *timer) onBack(now time.Time, back time.Duration) {
	t.on(now)
	if start := now.Add(-back); start.Before(t.since) {
		t.since = start
	}
}

func (t *timer) off() { *t = timer{} }

func (t *timer) pause(now time.Time) {
	if !t.since.IsZero() && t.paused.IsZero() {
		t.paused = now
	}
}

func (t *timer) running() bool { return !t.since.IsZero() }

// doneAt is when a running, unpaused timer reaches hold: exactly the moment
// held(now) >= hold starts to be true, so an evaluation at that time fires.
func (t *timer) doneAt(hold time.Duration) time.Time {
	if t.since.IsZero() || !t.paused.IsZero() {
		return time.Time{}
	}
	return t.since.Add(hold)
}

func (t *timer) held(now time.Time) time.Duration {
	if t.since.IsZero() {
		return 0
	}
	end := now
	if !t.paused.IsZero() {
		end = t.paused
	}
	return max(0, end.Sub(t.since))
}

type waitCode uint8

const (
	waitNothing waitCode = iota
	waitBreachFor
	waitRecoverFor
	waitNoData
	waitCooldown
	waitBackoff
	waitFailed
	waitMaxSessions
	waitGroupLimit
	waitBudget
	waitInFlight
	waitMinSession
	waitRenewal
	waitUncertain
	waitNoImprovement
)

// wait records why a UE got no decision, formatted only when asked for so
// the steady path does not allocate. due is when the wait can end by the
// clock alone (zero: only new data or an API outcome ends it).
type wait struct {
	code       waitCode
	until      time.Time
	due        time.Time
	held, need time.Duration
	group      int
}

// ue is one UE's state machine. Fields read on every tick come first so a
// tick over many UEs touches few cache lines; the rest is read on changes.
type ue struct {
	rule         *Rule
	state        State
	op           opKind
	removed      bool
	gone         bool
	has          bool
	slot         bool // counted in sessions and groupCount
	blocked      bool
	escalated    bool
	noEscalation bool  // the escalation profile was refused in this episode
	duePos       int32 // 1 + index in Engine.due; 0 when not in it

	due            time.Time // when to evaluate again without new data (zero: no need); see due.go
	breach, recov  forClock
	since          time.Time
	wait           wait
	uncertainUntil time.Time
	cooldownUntil  time.Time
	retryAt        time.Time
	activeSince    time.Time // first session of this run of renewals: min_session and escalation count from it
	profileSince   time.Time // when the session's profile was granted: if_no_improvement counts from it
	futile         bool      // a session ended for not improving: none again until the breach episode ends
	imps           []Improvement
	sess           Session

	name            string
	groups          []int
	last            *Decision
	charge          charge
	opKind          Kind
	opQoS           string
	opDur           time.Duration
	opCharge        charge
	opSession       string
	failures        int
	blockErr        string
	uncertainCharge charge
}

func (u *ue) setState(s State, now time.Time) {
	if u.state != s {
		u.state, u.since = s, now
	}
}

// SetUE sets the rule and groups of a UE, adding it if new. On a config
// reload the UE keeps its state and session; if the rule's behaviour changed
// the breach and recovery clocks restart under the new conditions, a
// failure that blocked requests is forgotten, and the session is kept as is:
// its QoS and duration change at the next renewal. An escalated session
// stays escalated only if the new rule escalates to the same profile.
func (e *Engine) SetUE(name string, r *Rule, groups ...string) error {
	if name == "" {
		return errors.New("set ue: empty name")
	}
	if r == nil {
		return fmt.Errorf("set ue %q: no rule (compile one with CompileRule)", name)
	}
	gi := make([]int, 0, len(groups))
	for _, g := range groups {
		i, ok := e.groupIdx[g]
		if !ok {
			i = len(e.groupNames)
			e.groupIdx[g] = i
			e.groupNames = append(e.groupNames, g)
			e.groupCount = append(e.groupCount, 0)
			e.groupLimit = append(e.groupLimit, e.g.MaxSessionsPerGroup[g])
		}
		gi = append(gi, i)
	}
	u, ok := e.ues[name]
	if !ok {
		u = &ue{name: name, rule: r, groups: gi}
		u.breach.reset(len(r.breach.conds))
		u.recov.reset(len(r.recover.conds))
		e.ues[name] = u
		e.list = append(e.list, u)
		return nil
	}
	if u.slot {
		e.count(u, -1)
		u.groups = gi
		e.count(u, +1)
	}
	u.groups = gi
	u.removed = false
	if u.rule.key != r.key {
		u.breach.reset(len(r.breach.conds))
		u.recov.reset(len(r.recover.conds))
		u.blocked, u.noEscalation, u.futile = false, false, false
		u.escalated = u.has && r.escalatesTo(u.sess.QoS)
	}
	u.rule = r
	return nil
}

// RemoveUE takes a UE out of the config. If it holds a session the returned
// decision releases it (min_session does not apply); if a call is in flight
// or a session possibly exists, the UE stays, shown as Removed, until that
// settles: Tick keeps evaluating it and releases what turns up.
func (e *Engine) RemoveUE(now time.Time, name string) Decision {
	u, ok := e.ues[name]
	if !ok {
		return Decision{}
	}
	u.removed = true
	d := e.evalRemoved(now, u)
	e.schedule(now, u)
	return d
}

func (e *Engine) evalRemoved(now time.Time, u *ue) Decision {
	if u.has && u.op == opNone && !now.Before(u.retryAt) {
		return e.release(now, u, nil, "ue removed from the config")
	}
	e.maybeDrop(u)
	return Decision{}
}

func (e *Engine) maybeDrop(u *ue) {
	if u.removed && !u.slot && !u.gone {
		delete(e.ues, u.name)
		u.gone = true
		e.gone++
		e.setDue(u, time.Time{})
	}
}

// Evaluate runs one tick for one UE and returns what to do now (the zero
// Decision, Kind None, when nothing). Call it every tick with fresh
// statistics; it is also what Tick calls.
func (e *Engine) Evaluate(now time.Time, name string, obs Observation) (Decision, error) {
	u, ok := e.ues[name]
	if !ok {
		return Decision{}, fmt.Errorf("evaluate ue %q: not known to the engine (SetUE first)", name)
	}
	return e.eval(now, u, &obs), nil
}

// Tick evaluates every UE, in the order they were added, with the
// observation observe returns for it (not called for removed UEs), and
// appends the decisions other than None to dst.
func (e *Engine) Tick(now time.Time, observe func(ue string) Observation, dst []Decision) []Decision {
	e.sweepAt = 0
	dst, _ = e.Sweep(now, observe, len(e.list), dst)
	return dst
}

// Sweep is Tick for at most n UEs: it goes on from where the last Sweep
// stopped, in the same order, and stops at the end of the list (the next
// one starts over). It reports how many it evaluated. A large fleet is
// swept over several calls, so one call does not hold the caller for
// every UE: what changes a UE's state is evaluated at once by Evaluate (a
// sample) and DueUEs (the clock); the sweep is the safety net.
func (e *Engine) Sweep(now time.Time, observe func(ue string) Observation, n int, dst []Decision) ([]Decision, int) {
	done := 0
	for ; done < n && e.sweepAt < len(e.list); e.sweepAt++ {
		u := e.list[e.sweepAt]
		if u.gone {
			continue
		}
		done++
		var obs Observation
		if !u.removed && observe != nil {
			obs = observe(u.name)
		}
		if d := e.eval(now, u, &obs); d.Kind != None {
			dst = append(dst, d)
		}
	}
	if e.sweepAt >= len(e.list) {
		e.sweepAt = 0
		e.compact()
	}
	return dst, done
}

// compact drops the UEs that are gone from list, between sweeps.
func (e *Engine) compact() {
	if e.gone == 0 {
		return
	}
	kept := e.list[:0]
	for _, u := range e.list {
		if !u.gone {
			kept = append(kept, u)
		}
	}
	clear(e.list[len(kept):])
	e.list, e.gone = kept, 0
}

// eval evaluates u and sets its due time from what it waits for next.
func (e *Engine) eval(now time.Time, u *ue, obs *Observation) Decision {
	d := e.step(now, u, obs)
	e.schedule(now, u)
	return d
}

func (e *Engine) step(now time.Time, u *ue, obs *Observation) Decision {
	e.roll(now)
	if !u.uncertainUntil.IsZero() && !now.Before(u.uncertainUntil) {
		u.uncertainUntil, u.uncertainCharge = time.Time{}, charge{}
	}
	if u.has && u.op == opNone && !now.Before(u.sess.ExpiresAt) {
		e.endSession(now, u, EndExpired)
	}
	e.sync(u)
	if u.removed {
		return e.evalRemoved(now, u)
	}

	r := u.rule
	missing := r.OnMissingData
	if missing == MissingInherit {
		missing = e.g.OnMissingData
	}
	bMissing, rMissing := triUnknown, triUnknown
	if missing == MissingBreach {
		bMissing, rMissing = triTrue, triFalse
	}
	b := u.breach.track(now, &r.breach, obs, e.g.StaleAfter, bMissing)
	rc := triFalse
	fresh := true
	switch b {
	case triUnknown:
		u.recov.pause(now)
		fresh = false
	case triTrue:
		u.recov.off()
	default:
		u.blocked, u.noEscalation, u.futile = false, false, false // the breach episode is over
		rc = u.recov.track(now, &r.recover, obs, e.g.StaleAfter, rMissing)
		if rc == triUnknown {
			fresh = false
		}
	}

	switch {
	case u.op != opNone:
		u.wait = wait{code: waitInFlight}
		return Decision{}
	case u.has:
		return e.evalSession(now, u, obs, b, rc, fresh)
	}
	return e.evalNoSession(now, u, obs, b)
}

func (e *Engine) evalNoSession(now time.Time, u *ue, obs *Observation, b tri) Decision {
	r := u.rule
	held := u.breach.held(now, r.breach.all)
	switch {
	case !u.uncertainUntil.IsZero():
		u.setState(StateUncertain, now)
		u.wait = wait{code: waitUncertain, until: u.uncertainUntil, due: u.uncertainUntil}
	case now.Before(u.cooldownUntil):
		u.setState(StateCooldown, now)
		u.wait = wait{code: waitCooldown, until: u.cooldownUntil, due: u.cooldownUntil}
	case b == triFalse:
		u.setState(StateIdle, now)
		u.wait = wait{}
	case b == triUnknown:
		if u.breach.running() {
			u.setState(StatePending, now)
		} else {
			u.setState(StateIdle, now)
		}
		u.wait = wait{code: waitNoData}
	case u.blocked:
		u.setState(StateFailed, now)
		u.wait = wait{code: waitFailed}
	case u.futile:
		u.setState(StatePending, now)
		u.wait = wait{code: waitNoImprovement}
	case held < r.breach.hold:
		u.setState(StatePending, now)
		u.wait = wait{code: waitBreachFor, held: held, need: r.breach.hold, due: u.breach.doneAt(r.breach.hold, r.breach.all)}
	case now.Before(u.retryAt):
		u.setState(StateBackoff, now)
		u.wait = wait{code: waitBackoff, until: u.retryAt, due: u.retryAt}
	case e.g.MaxSessions > 0 && e.sessions >= e.g.MaxSessions:
		u.setState(StatePending, now)
		u.wait = wait{code: waitMaxSessions}
	case e.groupFull(u) >= 0:
		u.setState(StatePending, now)
		u.wait = wait{code: waitGroupLimit, group: e.groupFull(u)}
	case !e.affords(r.Duration):
		u.setState(StatePending, now)
		u.wait = wait{code: waitBudget, need: r.Duration, due: e.nextBudgetDay()}
	default:
		return e.request(now, u, obs, held)
	}
	return Decision{}
}

// evalSession decides for a UE holding a session: release on recovery,
// and, while the breach goes on, end or escalate a session that does not
// help (if_no_improvement), escalate, renew.
func (e *Engine) evalSession(now time.Time, u *ue, obs *Observation, b, rc tri, fresh bool) Decision {
	d, checkAt := e.judge(now, u, obs, b, fresh)
	if d.Kind != None {
		return d
	}
	d = e.keepSession(now, u, obs, b, rc, fresh)
	if d.Kind == None && !checkAt.IsZero() && (u.wait.due.IsZero() || checkAt.Before(u.wait.due)) {
		u.wait.due = checkAt
	}
	return d
}

// judge applies the rule's if_no_improvement: once the session's profile
// has had After while the breach goes on, and no metric of the breach is
// MinRatio better than before the session, it escalates (then: escalate,
// with a stronger profile in the rule not yet tried) or releases the
// session, and buys none again until the breach episode ends. checkAt is
// when the judgement comes due (zero: not pending).
func (e *Engine) judge(now time.Time, u *ue, obs *Observation, b tri, fresh bool) (d Decision, checkAt time.Time) {
	r := u.rule
	n := r.NoImprovement
	if n == nil || u.profileSince.IsZero() || b != triTrue || !fresh || !u.uncertainUntil.IsZero() {
		return Decision{}, time.Time{}
	}
	if at := u.profileSince.Add(n.After); now.Before(at) {
		return Decision{}, at
	}
	u.imps = r.Improvements(&obs.Before, &obs.During, u.imps[:0])
	if yes, known := helped(u.imps, n.MinRatio); yes || !known {
		return Decision{}, time.Time{}
	}
	why := fmt.Sprintf("no improvement of %g× in %s: %s", n.MinRatio, formatSpan(now.Sub(u.profileSince)), FormatImprovements(u.imps))
	if n.Escalate && r.Escalate != nil && !u.escalated && !u.noEscalation && e.affords(r.Duration) {
		d = e.replace(now, u, obs, Escalate, r.Escalate.To, 0)
		d.Reason = fmt.Sprintf("escalate %s to %s: %s", u.sess.QoS, r.Escalate.To, why)
		*u.last = d
		return d, time.Time{}
	}
	u.futile = true
	return e.release(now, u, obs, "release: "+why), time.Time{}
}

func (e *Engine) keepSession(now time.Time, u *ue, obs *Observation, b, rc tri, fresh bool) Decision {
	r := u.rule
	if b == triFalse && rc == triTrue {
		u.setState(StateRecovering, now)
		held := u.recov.held(now, r.recover.all)
		minEnd := u.activeSince.Add(e.g.MinSession)
		switch {
		case held < r.recover.hold:
			u.wait = wait{code: waitRecoverFor, held: held, need: r.recover.hold, due: u.recov.doneAt(r.recover.hold, r.recover.all)}
		case now.Before(minEnd):
			u.wait = wait{code: waitMinSession, until: minEnd, due: minEnd}
		case now.Before(u.retryAt):
			u.wait = wait{code: waitBackoff, until: u.retryAt, due: u.retryAt}
		default:
			return e.release(now, u, obs, "")
		}
		return Decision{}
	}
	u.setState(StateActive, now)
	switch {
	case !fresh:
		u.wait = wait{code: waitNoData}
		return Decision{}
	case !u.uncertainUntil.IsZero():
		// A replacement may exist already; another would be a duplicate.
		u.wait = wait{code: waitUncertain, until: u.uncertainUntil, due: u.uncertainUntil}
		return Decision{}
	case u.blocked:
		u.wait = wait{code: waitFailed}
		return Decision{}
	case now.Before(u.retryAt):
		u.wait = wait{code: waitBackoff, until: u.retryAt, due: u.retryAt}
		return Decision{}
	}
	var escalateAt time.Time
	if esc := r.Escalate; esc != nil && b == triTrue && !u.escalated && !u.noEscalation {
		held := min(u.breach.held(now, r.breach.all), now.Sub(u.activeSince))
		if held >= esc.After {
			if e.affords(r.Duration) {
				return e.replace(now, u, obs, Escalate, esc.To, held)
			}
			u.wait = wait{code: waitBudget, need: r.Duration, due: e.nextBudgetDay()}
			return Decision{}
		}
		// Both the breach and the session must have lasted esc.After.
		escalateAt = u.activeSince.Add(esc.After)
		if at := u.breach.doneAt(esc.After, r.breach.all); at.After(escalateAt) {
			escalateAt = at
		}
	}
	renewAt := u.sess.ExpiresAt.Add(-e.renewBefore(u))
	if now.Before(renewAt) {
		u.wait = wait{code: waitRenewal, until: renewAt, due: renewAt}
		if !escalateAt.IsZero() && escalateAt.Before(renewAt) {
			u.wait.due = escalateAt
		}
		return Decision{}
	}
	if !e.affords(r.Duration) {
		u.wait = wait{code: waitBudget, need: r.Duration, due: e.nextBudgetDay()}
		return Decision{}
	}
	qos := r.QoS
	if u.escalated {
		qos = r.Escalate.To
	}
	return e.replace(now, u, obs, Renew, qos, 0)
}

// renewBefore is Guards.RenewBefore, at most half the session's length so a
// short session is not renewed the moment it opens.
func (e *Engine) renewBefore(u *ue) time.Duration {
	rb := e.g.RenewBefore
	if l := u.sess.ExpiresAt.Sub(u.sess.StartedAt); l > 0 && rb > l/2 {
		rb = l / 2
	}
	return rb
}

// groupFull returns the index of a group of u at its limit, or -1.
func (e *Engine) groupFull(u *ue) int {
	for _, g := range u.groups {
		if lim := e.groupLimit[g]; lim > 0 && e.groupCount[g] >= lim {
			return g
		}
	}
	return -1
}

func (e *Engine) request(now time.Time, u *ue, obs *Observation, held time.Duration) Decision {
	r := u.rule
	u.op, u.opKind, u.opQoS, u.opDur = opRequest, Request, r.QoS, r.Duration
	u.opCharge = e.spend(r.Duration)
	e.sync(u)
	d := Decision{Kind: Request, UE: u.name, Rule: r.Name, QoS: r.QoS, Duration: r.Duration, At: now}
	d.Causes = causes(&r.breach, obs, e.g.StaleAfter, true)
	d.Reason = fmt.Sprintf("breach %s%s held for %s", allOf(&r.breach), joinCauses(d.Causes), formatSpan(held))
	return e.decided(now, u, d, StateRequesting)
}

func (e *Engine) replace(now time.Time, u *ue, obs *Observation, k Kind, qos string, held time.Duration) Decision {
	r := u.rule
	u.op, u.opKind, u.opQoS, u.opDur, u.opSession = opRenew, k, qos, r.Duration, u.sess.ID
	u.opCharge = e.spend(r.Duration)
	d := Decision{Kind: k, UE: u.name, Rule: r.Name, QoS: qos, Duration: r.Duration, SessionID: u.sess.ID, At: now}
	breaching := r.breach.eval(obs, e.g.StaleAfter) != triFalse
	if breaching {
		d.Causes = causes(&r.breach, obs, e.g.StaleAfter, true)
	} else {
		d.Causes = causes(&r.recover, obs, e.g.StaleAfter, false)
	}
	if k == Escalate {
		d.Reason = fmt.Sprintf("escalate %s to %s: breach %s%s held for %s with a session active",
			u.sess.QoS, qos, allOf(&r.breach), joinCauses(d.Causes), formatSpan(held))
	} else {
		state := "breach " + allOf(&r.breach) + joinCauses(d.Causes) + " goes on"
		if !breaching {
			state = "not recovered: " + joinCauses(d.Causes) + " not met"
		}
		d.Reason = fmt.Sprintf("renew session %s (%s) expiring %s: %s", u.sess.ID, u.sess.QoS,
			u.sess.ExpiresAt.UTC().Format(time.RFC3339), state)
	}
	return e.decided(now, u, d, StateRenewing)
}

func (e *Engine) release(now time.Time, u *ue, obs *Observation, why string) Decision {
	r := u.rule
	u.op, u.opKind, u.opSession = opRelease, Release, u.sess.ID
	d := Decision{Kind: Release, UE: u.name, Rule: r.Name, QoS: u.sess.QoS, SessionID: u.sess.ID, At: now}
	if why != "" {
		d.Reason = why
	} else {
		d.Causes = causes(&r.recover, obs, e.g.StaleAfter, true)
		d.Reason = fmt.Sprintf("recover %s%s held for %s; session held %s", allOf(&r.recover),
			joinCauses(d.Causes), formatSpan(u.recov.held(now, r.recover.all)), formatSpan(now.Sub(u.activeSince)))
	}
	return e.decided(now, u, d, StateReleasing)
}

func (e *Engine) decided(now time.Time, u *ue, d Decision, s State) Decision {
	u.setState(s, now)
	u.wait = wait{code: waitInFlight}
	u.last = &d
	return d
}

func allOf(s *condSet) string {
	if s.all && len(s.conds) > 1 {
		return "all of "
	}
	return ""
}

// causes lists the conditions of s with their values: for an all-list every
// condition; for an any-list those whose outcome is want (or, if none, those
// with no data, which is what made the list count).
func causes(s *condSet, obs *Observation, staleAfter time.Duration, want bool) []Cause {
	var out []Cause
	var missing []Cause
	for i := range s.conds {
		c := &s.conds[i]
		v, ok := s.value(c, obs, staleAfter)
		cause := Cause{Condition: c.text, Metric: c.name(), Value: v, Threshold: c.threshold, NoData: !ok}
		switch {
		case !ok:
			missing = append(missing, cause)
			if s.all {
				out = append(out, cause)
			}
		case s.all || c.holds(v) == want:
			out = append(out, cause)
		}
	}
	if len(out) == 0 {
		return missing
	}
	return out
}

// Opened reports that the UE now holds session s: the answer to a Request,
// Renew or Escalate (for a Renew done as end-then-open it replaces the old
// session whether or not its end was reported first). It is also accepted
// with nothing in flight, for a session found later (a lost answer), and
// then replaces the "possibly holds" mark. An s for a UE that already holds
// a different session, with nothing in flight, is refused: it is a second
// session, and the daemon should end it.
func (e *Engine) Opened(now time.Time, name string, s Session) error {
	u, ok := e.ues[name]
	switch {
	case !ok:
		return fmt.Errorf("session %q opened for ue %q: ue not known to the engine", s.ID, name)
	case s.ID == "":
		return fmt.Errorf("session opened for ue %q: no session id", name)
	case s.ExpiresAt.IsZero():
		return fmt.Errorf("session %q opened for ue %q: no expiry time", s.ID, name)
	}
	if s.StartedAt.IsZero() {
		s.StartedAt = now
	}
	e.roll(now)
	switch u.op {
	case opRequest:
		// min_session counts on our clock, not the operator's.
		u.charge, u.activeSince, u.profileSince = u.opCharge, now, now
	case opRenew:
		if u.opKind == Escalate || u.profileSince.IsZero() {
			u.profileSince = now // a new profile has its own time to help
		}
		if u.has {
			e.refund(&u.charge, u.sess.ExpiresAt.Sub(now))
		}
		if u.activeSince.IsZero() {
			u.activeSince = now
		}
		u.charge = u.opCharge
	case opRelease:
		if u.has && u.sess.ID == s.ID {
			u.sess.ExpiresAt = s.ExpiresAt
			e.touch(now, u)
			return nil
		}
		return fmt.Errorf("session %q opened for ue %q while its session %q is being released", s.ID, name, u.opSession)
	default:
		if u.has && u.sess.ID != s.ID {
			return fmt.Errorf("session %q opened for ue %q, which already holds session %q: a second session for one UE; end it", s.ID, name, u.sess.ID)
		}
		if !u.has {
			u.charge, u.activeSince, u.profileSince = u.uncertainCharge, now, now
		}
	}
	u.sess, u.has = s, true
	u.escalated = u.rule.escalatesTo(s.QoS)
	u.op, u.opSession = opNone, ""
	u.failures, u.retryAt, u.blocked = 0, time.Time{}, false
	u.uncertainUntil, u.uncertainCharge = time.Time{}, charge{}
	u.setState(StateActive, now)
	e.sync(u)
	e.touch(now, u)
	return nil
}

// Failed reports that the Request, Renew, Escalate or Release in flight did
// not happen. After a failed Renew or Escalate the old session, unless its
// end was reported, is still held.
func (e *Engine) Failed(now time.Time, name string, f Failure) error {
	u, ok := e.ues[name]
	if !ok {
		return fmt.Errorf("failure for ue %q: ue not known to the engine", name)
	}
	e.roll(now)
	msg := "unknown error"
	if f.Err != nil {
		msg = f.Err.Error()
	}
	switch u.op {
	case opRequest, opRenew:
		if f.Uncertain {
			u.uncertainUntil, u.uncertainCharge = now.Add(u.opDur), u.opCharge
			if f.Until.After(now) {
				u.uncertainUntil = f.Until
			}
		} else {
			e.refund(&u.opCharge, u.opCharge.d)
		}
		switch {
		case u.opKind == Escalate && !f.Retryable && !f.Uncertain:
			// The stronger profile is refused: go on at the rule's own.
			u.noEscalation = true
		case !f.Retryable && !f.Uncertain:
			u.blocked, u.blockErr = true, msg
		default:
			e.backoff(now, u, f.RetryAfter)
		}
	case opRelease:
		e.backoff(now, u, f.RetryAfter)
	default:
		return fmt.Errorf("failure for ue %q: nothing in flight (%s)", name, msg)
	}
	u.op, u.opSession, u.opCharge = opNone, "", charge{}
	switch {
	case u.has:
		u.setState(StateActive, now)
	case !u.uncertainUntil.IsZero():
		u.setState(StateUncertain, now)
	case u.blocked:
		u.setState(StateFailed, now)
	default:
		u.setState(StateBackoff, now)
	}
	e.sync(u)
	e.touch(now, u)
	e.maybeDrop(u)
	return nil
}

// Backoff of retryable failures without a RetryAfter.
const (
	firstBackoff = 10 * time.Second
	maxBackoff   = 5 * time.Minute
)

func (e *Engine) backoff(now time.Time, u *ue, after time.Duration) {
	u.failures++
	if after <= 0 {
		after = maxBackoff
		if u.failures < 6 {
			after = min(maxBackoff, firstBackoff<<(u.failures-1))
		}
	}
	u.retryAt = now.Add(after)
}

// Ended reports that session id of the UE is gone: released by us, ended by
// the network, or expired. A notice about a session the UE no longer holds
// (one replaced by a renewal) is ignored. A cooldown follows unless the end
// is part of a Renew or Escalate in flight.
func (e *Engine) Ended(now time.Time, name, id string, why EndReason) error {
	u, ok := e.ues[name]
	if !ok {
		return fmt.Errorf("session %q of ue %q ended (%s): ue not known to the engine", id, name, why)
	}
	e.roll(now)
	switch {
	case u.has && u.sess.ID == id:
		e.endSession(now, u, why)
		if u.op == opRelease {
			u.op, u.opSession = opNone, ""
		}
		if u.op == opNone {
			u.setState(StateCooldown, now)
		}
		e.touch(now, u)
	case u.op == opRelease && u.opSession == id:
		u.op, u.opSession = opNone, ""
		u.setState(StateCooldown, now)
		e.touch(now, u)
	}
	e.sync(u)
	e.maybeDrop(u)
	return nil
}

func (e *Engine) endSession(now time.Time, u *ue, why EndReason) {
	if why != EndExpired {
		e.refund(&u.charge, u.sess.ExpiresAt.Sub(now))
	}
	u.has, u.sess, u.charge = false, Session{}, charge{}
	u.recov.off()
	if u.op != opRenew {
		u.cooldownUntil = now.Add(e.g.Cooldown)
		u.escalated, u.activeSince, u.profileSince = false, time.Time{}, time.Time{}
		u.retryAt = time.Time{}
	}
}

// Adopt tells the engine the UE holds session s already, e.g. one read from
// the state file at start. It counts against the limits at once; its time is
// not charged to the budget (restore that with RestoreBudget).
func (e *Engine) Adopt(now time.Time, name string, s Session) error {
	u, ok := e.ues[name]
	switch {
	case !ok:
		return fmt.Errorf("adopt session %q for ue %q: ue not known to the engine", s.ID, name)
	case s.ID == "" || s.ExpiresAt.IsZero():
		return fmt.Errorf("adopt session for ue %q: session needs an id and an expiry time", name)
	case u.op != opNone:
		return fmt.Errorf("adopt session %q for ue %q: a %s is in flight", s.ID, name, u.opKind)
	case u.has && u.sess.ID != s.ID:
		return fmt.Errorf("adopt session %q for ue %q: it already holds session %q", s.ID, name, u.sess.ID)
	}
	if s.StartedAt.IsZero() {
		s.StartedAt = now
	}
	if !u.has {
		u.charge, u.activeSince, u.profileSince = charge{}, s.StartedAt, now
	}
	u.sess, u.has = s, true
	u.escalated = u.rule.escalatesTo(s.QoS)
	u.uncertainUntil, u.uncertainCharge = time.Time{}, charge{}
	u.setState(StateActive, now)
	e.sync(u)
	e.touch(now, u)
	return nil
}

// RestoreTimes gives back what a restart would otherwise forget (issue 8):
// heldSince, when the run of sessions the UE holds began (min_session
// counts from it; only earlier than the adopted session's start is
// taken), and cooldownUntil, the end of the cooldown after its last
// session (only a later one than the engine's is taken). Zero times change
// nothing.
func (e *Engine) RestoreTimes(now time.Time, name string, heldSince, cooldownUntil time.Time) error {
	u, ok := e.ues[name]
	if !ok {
		return fmt.Errorf("restore times of ue %q: ue not known to the engine", name)
	}
	if u.has && !heldSince.IsZero() && heldSince.Before(u.activeSince) {
		u.activeSince = heldSince
	}
	if cooldownUntil.After(u.cooldownUntil) {
		u.cooldownUntil = cooldownUntil
		if !u.has && u.op == opNone && u.uncertainUntil.IsZero() && now.Before(cooldownUntil) {
			u.setState(StateCooldown, now)
		}
	}
	e.touch(now, u)
	return nil
}

// PossiblyHolds marks the UE as possibly holding a session the engine does
// not know until the time until (a crash between create and the state
// write): no request is made for it before then, and it counts against the
// limits. A zero until (or one in the past) clears the mark.
func (e *Engine) PossiblyHolds(now time.Time, name string, until time.Time) error {
	u, ok := e.ues[name]
	if !ok {
		return fmt.Errorf("mark ue %q as possibly holding a session: ue not known to the engine", name)
	}
	if !until.After(now) {
		until = time.Time{}
	}
	u.uncertainUntil = until
	if u.uncertainUntil.IsZero() {
		u.uncertainCharge = charge{}
	} else if !u.has && u.op == opNone {
		u.setState(StateUncertain, now)
	}
	e.sync(u)
	e.touch(now, u)
	e.maybeDrop(u)
	return nil
}

// sync keeps the session counts in step with whether u holds a slot: a
// session, a call in flight, or a possible session.
func (e *Engine) sync(u *ue) {
	want := u.has || u.op != opNone || !u.uncertainUntil.IsZero()
	switch {
	case want && !u.slot:
		e.count(u, +1)
	case !want && u.slot:
		e.count(u, -1)
	}
	u.slot = want
}

func (e *Engine) count(u *ue, delta int) {
	e.sessions += delta
	for _, g := range u.groups {
		e.groupCount[g] += delta
	}
}

func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}

// roll starts a new budget day at UTC midnight.
func (e *Engine) roll(now time.Time) {
	if d := dayOf(now); d != e.budgetDay {
		e.budgetDay, e.budgetUsed = d, 0
	}
}

// nextBudgetDay is when the budget starts afresh: the next UTC midnight.
func (e *Engine) nextBudgetDay() time.Time {
	return time.Unix((e.budgetDay+1)*86400, 0)
}

func (e *Engine) affords(d time.Duration) bool {
	return e.g.DailyBudget <= 0 || e.budgetUsed+d <= e.g.DailyBudget
}

func (e *Engine) spend(d time.Duration) charge {
	e.budgetUsed += d
	return charge{day: e.budgetDay, d: d}
}

// refund gives back up to amount of c, if it was charged today.
func (e *Engine) refund(c *charge, amount time.Duration) {
	if c.day != e.budgetDay || amount <= 0 {
		return
	}
	amount = min(amount, c.d)
	c.d -= amount
	e.budgetUsed = max(0, e.budgetUsed-amount)
}

// RestoreBudget sets what was charged on the UTC day holding day, e.g. from
// the state file at start, so a restart does not reset the daily budget.
func (e *Engine) RestoreBudget(day time.Time, used time.Duration) {
	e.budgetDay, e.budgetUsed = dayOf(day), max(0, used)
}

// Usage reports the sessions counted against the limits and the budget
// spent on the UTC day of now.
func (e *Engine) Usage(now time.Time) Usage {
	e.roll(now)
	u := Usage{
		Sessions:    e.sessions,
		PerGroup:    make(map[string]int, len(e.groupNames)),
		BudgetUsed:  e.budgetUsed,
		DailyBudget: e.g.DailyBudget,
		BudgetDay:   time.Unix(e.budgetDay*86400, 0).UTC(),
	}
	for i, n := range e.groupNames {
		u.PerGroup[n] = e.groupCount[i]
	}
	return u
}

// Status reports one UE.
func (e *Engine) Status(name string) (Status, bool) {
	u, ok := e.ues[name]
	if !ok {
		return Status{}, false
	}
	return e.status(u), true
}

// Statuses appends the status of every UE, in SetUE order, to dst.
func (e *Engine) Statuses(dst []Status) []Status {
	for _, u := range e.list {
		if !u.gone {
			dst = append(dst, e.status(u))
		}
	}
	return dst
}

// Holding appends the status of every UE that holds a session, in SetUE
// order, to dst: the few a poll or an expiry looks at, without building the
// status of every UE of a large fleet.
func (e *Engine) Holding(dst []Status) []Status {
	for _, u := range e.list {
		if !u.gone && u.has {
			dst = append(dst, e.status(u))
		}
	}
	return dst
}

func (e *Engine) status(u *ue) Status {
	s := Status{
		UE: u.name, Rule: u.rule.Name, State: u.state, Since: u.since,
		Session: u.sess, HasSession: u.has, Escalated: u.escalated,
		Removed: u.removed, Due: u.due,
	}
	if u.last != nil {
		s.Last = *u.last
	}
	s.CooldownUntil, s.UncertainUntil = u.cooldownUntil, u.uncertainUntil
	if u.has {
		s.HeldSince = u.activeSince
		if s.HeldSince.IsZero() {
			s.HeldSince = u.sess.StartedAt
		}
	}
	for _, g := range u.groups {
		s.Groups = append(s.Groups, e.groupNames[g])
	}
	s.Waiting = e.describeWait(u)
	return s
}

func (e *Engine) describeWait(u *ue) string {
	w := u.wait
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch w.code {
	case waitBreachFor:
		return fmt.Sprintf("breach held %s of %s", formatSpan(w.held), w.need)
	case waitRecoverFor:
		return fmt.Sprintf("recovery held %s of %s", formatSpan(w.held), w.need)
	case waitNoData:
		return "no data: holding the current state"
	case waitCooldown:
		return "cooldown until " + at(w.until)
	case waitBackoff:
		return "retry after a failure at " + at(w.until)
	case waitFailed:
		return "request failed for good (" + u.blockErr + "); waiting for the breach to end or the rule to change"
	case waitMaxSessions:
		return fmt.Sprintf("max_sessions %d reached", e.g.MaxSessions)
	case waitGroupLimit:
		name := e.groupNames[w.group]
		return fmt.Sprintf("max_sessions_per_group %s: %d reached", name, e.groupLimit[w.group])
	case waitBudget:
		return fmt.Sprintf("daily_budget: %s of %s used, a session needs %s", formatSpan(e.budgetUsed), e.g.DailyBudget, w.need)
	case waitInFlight:
		return "waiting for the API"
	case waitMinSession:
		return "recovered; min_session keeps the session until " + at(w.until)
	case waitRenewal:
		return "session renews at " + at(w.until) + " unless recovered"
	case waitUncertain:
		return "may hold a session unknown to qodwatch until " + at(w.until)
	case waitNoImprovement:
		return "the last session did not improve the UE (if_no_improvement); none is bought until the breach ends"
	}
	return ""
}
