// Package policy turns a UE's windowed statistics into decisions to open,
// renew, escalate and end QoD sessions. It is pure and deterministic: no
// goroutines, no I/O, and the clock is passed in.
//
// # Rules
//
// The config package decodes each rule into a RuleSpec and compiles it with
// CompileRule; per-UE overrides are applied first with MergeRuleSpec. A rule
// has a breach and a recovery condition list (any or all of conditions such
// as "latency_p95 > 80ms", "loss > 2%", "throughput < 5Mbps",
// "prom.app_bitrate < 3e6"), each with a `for`; a QoS profile, a session
// duration, and optionally an escalation to a stronger profile. Recovery
// must be at least as strict as the breach (the two can never hold at
// once), so a session never ends while the UE is still bad. Mistakes come
// back as *FieldError naming the rule and the YAML field.
//
// Units: latencies and jitter are durations (80ms, 1.5s); loss is a
// percentage (2%); throughput is a rate in bits per second (5Mbps) compared
// with the monitor's bytes per second; prometheus metrics are plain
// numbers. ParseDuration, ParseRatio, ParseRate and ParseNumber are the
// parsers, for the config package's other fields too.
//
// # Engine
//
// An Engine holds one state machine per UE (see State) and the shared
// guards (Guards: session limits globally and per group, min_session,
// cooldown, daily budget, renewal time). Each tick the daemon calls Tick
// (or Evaluate per UE) with the UE's Observation and carries out the
// returned Decisions: Request, Renew, Escalate, Release. It reports what
// the API did with Opened, Failed and Ended; until then the UE waits in
// requesting, renewing or releasing and counts against the limits. A Renew
// or Escalate replaces a session: with an extend where the API has one,
// otherwise (DevEdge) by ending the old session and opening the new one
// back to back, never two at once.
//
// Evaluation is cheap and repeatable, so the daemon evaluates a UE whenever
// a sample of it arrives, not only at ticks. Status.Due says when a UE's
// state next changes by the clock alone (a breach's `for` ends at exactly
// since + for, a cooldown or backoff is over, a renewal comes); NextDue is
// the earliest across UEs, kept in a heap, and DueUEs lists those due, so
// one timer suffices to act at those moments.
//
// No data (an empty or, with stale_after, an old window) makes conditions
// unknown; any/all combine them in three-valued logic. With
// on_missing_data: hold (default) an unknown breach starts and ends
// nothing: the for-clocks pause, a held session is neither released nor
// renewed (it runs to its expiry). With breach, no data counts as breach
// and never as recovery.
//
// The budget charges a session's full requested duration to the UTC day of
// the request, and refunds the unused part if it ends early on that same
// day; so the day's total can never exceed the budget even if the daemon
// stops answering. Possible sessions (a lost answer, a crash between create
// and the state write: PossiblyHolds) stay charged and counted until they
// would have expired.
//
// On a config reload, SetUE with a new rule keeps the UE's state and
// session; the breach and recovery clocks restart if the rule's behaviour
// changed, and the session takes the new profile and duration at its next
// renewal. RemoveUE releases the UE's session.
package policy
