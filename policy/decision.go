package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is where a UE is in its session lifecycle.
type State uint8

const (
	StateIdle       State = iota // no session, no breach going on
	StatePending                 // breach going on; waiting for its `for`, or held back by a guard (limit, budget)
	StateBackoff                 // breach held; the last request failed and the retry time has not come
	StateFailed                  // the last request failed for good; no new one until the breach ends or the rule changes
	StateRequesting              // Request decided; waiting for Opened or Failed
	StateActive                  // session held; the UE has not recovered
	StateRecovering              // session held; recovery going on, waiting for its `for` (and min_session)
	StateRenewing                // Renew or Escalate decided; waiting for Opened or Failed
	StateReleasing               // Release decided; waiting for Ended (or Failed)
	StateCooldown                // a session ended recently; no new request until the cooldown is over
	StateUncertain               // a session may exist that the engine does not know; no request until it would have expired
)

var stateNames = [...]string{
	StateIdle: "idle", StatePending: "pending", StateBackoff: "backoff", StateFailed: "failed",
	StateRequesting: "requesting", StateActive: "active", StateRecovering: "recovering",
	StateRenewing: "renewing", StateReleasing: "releasing", StateCooldown: "cooldown",
	StateUncertain: "uncertain",
}

// String is the state's name, fit for a metric label.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// States lists every state, so metrics can publish a zero for the others.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// Kind is what a Decision asks the daemon to do.
type Kind uint8

const (
	None     Kind = iota // nothing; the zero Decision
	Request              // open a session: QoS, Duration
	Renew                // replace SessionID before it expires: with an extend where the API has one, else end it and open a new one (QoS, Duration) back to back, never two at once
	Escalate             // replace SessionID by a session of the stronger QoS, the same way as Renew
	Release              // end SessionID
)

var kindNames = [...]string{None: "none", Request: "request", Renew: "renew", Escalate: "escalate", Release: "release"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Decision is what the engine wants done for one UE, and why. Every
// decision other than None must be answered with Opened, Failed or Ended.
type Decision struct {
	Kind      Kind
	UE        string
	Rule      string
	QoS       string        // Request, Renew, Escalate: the profile to open; Release: the session's
	Duration  time.Duration // Request, Renew, Escalate: the session duration to ask for
	SessionID string        // Renew, Escalate, Release: the session to replace or end
	At        time.Time
	// Causes are the conditions that decided it, with the values measured:
	// breach conditions for Request, Renew and Escalate (recovery conditions
	// that fail when the UE is between the two), recovery conditions for
	// Release.
	Causes []Cause
	// Reason says it for people: `breach "latency_p95 > 80ms"
	// (latency_p95=112ms) held for 20s`.
	Reason string
}

func (d Decision) String() string {
	switch d.Kind {
	case None:
		return "none"
	case Release:
		return fmt.Sprintf("release %s (%s) of %s: %s", d.SessionID, d.QoS, d.UE, d.Reason)
	case Request:
		return fmt.Sprintf("request %s for %s for %s: %s", d.QoS, d.Duration, d.UE, d.Reason)
	}
	return fmt.Sprintf("%s %s of %s to %s for %s: %s", d.Kind, d.SessionID, d.UE, d.QoS, d.Duration, d.Reason)
}

// Cause is one condition and what was measured for it. Values are in base
// units: seconds, ratio 0..1, bytes per second, or the plain number.
type Cause struct {
	Condition string // as normalised: "latency_p95 > 80ms"
	Metric    string // "latency_p95", "prom.app_bitrate"
	Value     float64
	Threshold float64
	NoData    bool // no value; counted as breach by on_missing_data: breach
}

func (c Cause) String() string {
	if c.NoData {
		return strconv.Quote(c.Condition) + " (" + c.Metric + ": no data)"
	}
	return strconv.Quote(c.Condition) + " (" + c.Metric + "=" + c.value() + ")"
}

func (c Cause) value() string {
	m := condition{}
	if err := m.setMetric(c.Metric); err != nil {
		return strconv.FormatFloat(c.Value, 'g', 4, 64)
	}
	return m.format(c.Value)
}

func joinCauses(cs []Cause) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// Session is a QoD session as the API reported it.
type Session struct {
	ID        string
	QoS       string
	StartedAt time.Time // zero: when the engine learns of it
	ExpiresAt time.Time
}

// Failure reports a Request, Renew, Escalate or Release that did not
// happen.
type Failure struct {
	Err error // what went wrong, shown on the status page
	// Retryable failures are tried again after RetryAfter (0: the engine's
	// backoff, 10s doubling up to 5m). A Request or Renew that failed for
	// good is not tried again until the breach ends or the rule changes; an
	// Escalate that failed for good is not tried again in this breach
	// episode, and the UE goes on at the rule's own profile. A failed
	// Release is always retried.
	Retryable  bool
	RetryAfter time.Duration
	// Uncertain says the answer was lost (timeout, connection reset): the
	// session may exist. The engine then holds the UE as possibly holding a
	// session for the requested duration, counts it against the limits, and
	// never requests another one for it meanwhile. The daemon may settle
	// it earlier with Opened (found) or PossiblyHolds(ue, zero time) (gone).
	// A 409 on create (a session exists for the UE already) is Uncertain
	// too, followed by PossiblyHolds up to that session's latest expiry.
	Uncertain bool
	// Until is, with Uncertain, the latest the possible session can end:
	// the daemon's intent deadline, so that the policy, the log and the
	// status page say the same time (issue 8). Zero: now plus the
	// requested duration.
	Until time.Time
}

// EndReason says why a session ended.
type EndReason uint8

const (
	EndReleased   EndReason = iota // our Release went through (a 404 on delete counts: it is gone)
	EndTerminated                  // the network ended it (SESSION_TERMINATED notification, or found missing)
	EndExpired                     // its duration ran out
)

func (r EndReason) String() string {
	switch r {
	case EndReleased:
		return "released"
	case EndTerminated:
		return "terminated"
	case EndExpired:
		return "expired"
	}
	return "end(" + strconv.Itoa(int(r)) + ")"
}

// Status is what the engine knows about one UE, for metrics and the status
// page.
type Status struct {
	UE         string
	Rule       string
	Groups     []string
	State      State
	Since      time.Time // when State began
	Session    Session   // valid when HasSession
	HasSession bool
	// HeldSince is when the first session of this run of sessions began:
	// renewals and escalations replace the session, not the run. Zero
	// without a session.
	HeldSince time.Time
	// CooldownUntil is when the cooldown after the UE's last session ends
	// (zero or past: none), kept in the state file across restarts.
	CooldownUntil time.Time
	// UncertainUntil is, for a UE possibly holding a session unknown to
	// the engine, the latest that session can end.
	UncertainUntil time.Time
	Escalated      bool     // the session is at the rule's escalation profile
	Waiting        string   // what the UE is waiting for now, for people
	Last           Decision // the last decision other than None (zero if none yet)
	Removed        bool     // removed from the config; kept until its session is gone
	// Due is when the UE should be evaluated again even if its statistics
	// do not change: the end of a breach's or a recovery's `for` (exactly
	// since + for: an evaluation at that instant fires), of a cooldown,
	// backoff, min_session or possible session, a renewal, an escalation,
	// an expiry, the next budget day; or, right after an API outcome or an
	// adoption, the time of that change. Zero: nothing is timed. The
	// earliest across UEs is Engine.NextDue.
	Due time.Time
}

// Usage is the engine's spending now.
type Usage struct {
	Sessions    int            // sessions held or asked for, including possible ones
	PerGroup    map[string]int // the same per group
	BudgetUsed  time.Duration  // charged today (reserved, minus refunds)
	DailyBudget time.Duration  // 0: no cap
	BudgetDay   time.Time      // UTC midnight starting the day BudgetUsed is for
}
