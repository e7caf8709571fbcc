package policy

import "time"

// Due times let a caller evaluate a UE at the moment its state can change by
// the clock alone (a breach's `for` ends, a cooldown or backoff is over, a
// renewal or expiry comes) instead of at its next tick. Each evaluation sets
// the UE's due time from what it now waits for; the engine keeps the UEs
// with one in a min-heap, so the earliest across many UEs costs O(1) to read
// and O(log n) to change, and an evaluation that leaves it as it was (the
// steady path) costs nothing.

// NextDue is the earliest due time of any UE (zero: none). A caller that
// evaluates DueUEs at that time sees every timed transition when it is due.
func (e *Engine) NextDue() time.Time {
	if len(e.due) == 0 {
		return time.Time{}
	}
	return e.due[0].due
}

// DueUEs appends to dst the names of the UEs whose due time is at or
// before now, earliest first within each branch of the heap (not sorted).
// Evaluating one moves its due time past now, or clears it.
func (e *Engine) DueUEs(now time.Time, dst []string) []string {
	return e.appendDue(now, 0, dst)
}

func (e *Engine) appendDue(now time.Time, i int, dst []string) []string {
	// Heap order: a node later than now has no child due either.
	if i >= len(e.due) || e.due[i].due.After(now) {
		return dst
	}
	dst = append(dst, e.due[i].name)
	dst = e.appendDue(now, 2*i+1, dst)
	return e.appendDue(now, 2*i+2, dst)
}

// schedule sets u's due time from what the evaluation just done at now left
// it waiting for. Every candidate is after now (the evaluation acted on any
// that was not); one that is not is dropped all the same, since evaluating
// again at once would decide the same. Written without closures: it runs
// on every evaluation.
func (e *Engine) schedule(now time.Time, u *ue) {
	due := u.wait.due
	switch {
	case u.gone:
		due = time.Time{}
	case u.removed:
		due = time.Time{}
		if u.has && u.op == opNone {
			due = u.retryAt
		}
	}
	if !u.gone && u.op == opNone {
		if u.has && (due.IsZero() || u.sess.ExpiresAt.Before(due)) {
			due = u.sess.ExpiresAt
		}
		if t := u.uncertainUntil; !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	if !due.After(now) {
		due = time.Time{}
	}
	e.setDue(u, due)
}

// touch makes u due now: something outside an evaluation (an API outcome,
// an adoption, a reload) changed it, and its next evaluation should come at
// once rather than at its next sample or tick.
func (e *Engine) touch(now time.Time, u *ue) {
	if !u.gone {
		e.setDue(u, now)
	}
}

// setDue moves u to due time t in the heap (zero: out of it).
func (e *Engine) setDue(u *ue, t time.Time) {
	switch {
	case t.Equal(u.due): // the steady path
		return
	case t.IsZero():
		if u.duePos != 0 {
			e.dueRemove(int(u.duePos) - 1)
		}
		u.due = time.Time{}
		return
	case u.duePos == 0:
		u.due = t
		e.due = append(e.due, u)
		u.duePos = int32(len(e.due))
		e.dueUp(len(e.due) - 1)
		return
	}
	earlier := t.Before(u.due)
	u.due = t
	if earlier {
		e.dueUp(int(u.duePos) - 1)
	} else {
		e.dueDown(int(u.duePos) - 1)
	}
}

func (e *Engine) dueRemove(i int) {
	last := len(e.due) - 1
	u := e.due[i]
	if i != last {
		e.dueSwap(i, last)
	}
	e.due[last] = nil
	e.due = e.due[:last]
	u.duePos = 0
	if i != last {
		e.dueDown(i)
		e.dueUp(i)
	}
}

func (e *Engine) dueSwap(i, j int) {
	e.due[i], e.due[j] = e.due[j], e.due[i]
	e.due[i].duePos = int32(i + 1)
	e.due[j].duePos = int32(j + 1)
}

func (e *Engine) dueUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !e.due[i].due.Before(e.due[p].due) {
			return
		}
		e.dueSwap(i, p)
		i = p
	}
}

func (e *Engine) dueDown(i int) {
	n := len(e.due)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && e.due[r].due.Before(e.due[l].due) {
			c = r
		}
		if !e.due[c].due.Before(e.due[i].due) {
			return
		}
		e.dueSwap(i, c)
		i = c
	}
}
