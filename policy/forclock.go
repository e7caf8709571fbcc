package policy

import "time"

// forClock measures how long a condition list has held, one timer per
// condition (issue 10). A condition that reads the newest step holds as
// long as its timer has run without a break; one that reads the
// measurements of the last `for` (loss) has held as far back as they reach,
// so its timer starts backdated by that much. A list holds for
// any: the longest of its true conditions, all: the shortest of them all.
//
// So a degradation shorter than `for` cannot hold a list for `for`: no step
// statistic outlasts the degradation by more than a step, and no window
// statistic is read unless the rule asks for it (over: window).
type forClock struct {
	t []timer // per condition; allocated once per rule
}

func (c *forClock) reset(n int) {
	if cap(c.t) >= n {
		c.t = c.t[:n]
		clear(c.t)
		return
	}
	c.t = make([]timer, n)
}

// track updates the timers from obs at now and returns the list's outcome.
// Unknown conditions pause their timers, or count as missing says.
func (c *forClock) track(now time.Time, s *condSet, obs *Observation, staleAfter time.Duration, missing tri) tri {
	if len(c.t) != len(s.conds) {
		c.reset(len(s.conds))
	}
	unknown, anyTrue, anyFalse := false, false, false
	for i := range s.conds {
		t := &c.t[i]
		r := s.evalCond(i, obs, staleAfter)
		if r == triUnknown {
			r = missing
		}
		switch r {
		case triTrue:
			anyTrue = true
			var back time.Duration
			switch c := &s.conds[i]; {
			case c.src == srcSpan:
				back = min(s.hold, spanOf(s, obs).Covered)
			case s.recover && c.src == srcStep && !c.metric.isThroughput() && c.metric != metricProm:
				// A step that meets a recovery condition shows the link
				// good since the step began: recovery counts from there,
				// not a step later (issue 10: clean→DELETE ≈ recover for).
				back = min(s.hold, obs.Latency.Covered)
			}
			t.onBack(now, back)
		case triFalse:
			anyFalse = true
			t.off()
		default:
			unknown = true
			t.pause(now)
		}
	}
	switch {
	case s.all && anyFalse:
		return triFalse
	case !s.all && anyTrue:
		return triTrue
	case unknown:
		return triUnknown
	case s.all:
		return triTrue
	}
	return triFalse
}

func spanOf(s *condSet, o *Observation) *LatencyStats {
	if s.recover {
		return &o.RecoverSpan
	}
	return &o.BreachSpan
}

// off stops every timer.
func (c *forClock) off() { clear(c.t) }

// pause pauses every running timer.
func (c *forClock) pause(now time.Time) {
	for i := range c.t {
		c.t[i].pause(now)
	}
}

// running reports whether any condition's timer runs (or is paused).
func (c *forClock) running() bool {
	for i := range c.t {
		if c.t[i].running() {
			return true
		}
	}
	return false
}

// held is how long the list has held at now, given the outcome of the last
// track: any: the longest running timer; all: the shortest timer.
func (c *forClock) held(now time.Time, all bool) time.Duration {
	var h time.Duration
	for i := range c.t {
		t := &c.t[i]
		switch {
		case all && !t.running():
			return 0
		case all:
			if d := t.held(now); i == 0 || d < h {
				h = d
			}
		case t.running() && t.paused.IsZero():
			h = max(h, t.held(now))
		}
	}
	return h
}

// doneAt is when the list reaches hold by the clock alone (zero: it needs
// new data): any: the first running timer to reach it; all: the last.
func (c *forClock) doneAt(hold time.Duration, all bool) time.Time {
	var at time.Time
	for i := range c.t {
		d := c.t[i].doneAt(hold)
		switch {
		case all && d.IsZero():
			return time.Time{}
		case all:
			if d.After(at) {
				at = d
			}
		case !d.IsZero() && (at.IsZero() || d.Before(at)):
			at = d
		}
	}
	return at
}
