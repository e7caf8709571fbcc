package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RuleSpec is a rule as the user writes it in YAML; the config package
// decodes into it and calls CompileRule. Durations and thresholds stay
// strings here so that every mistake is reported with the field it is in.
type RuleSpec struct {
	Breach   CondSpec      `yaml:"breach"`
	Recover  CondSpec      `yaml:"recover"`
	QoS      string        `yaml:"qos"`      // QoS profile, e.g. QOS_E
	Duration string        `yaml:"duration"` // session duration asked for, 1s..86400s, whole seconds
	Escalate *EscalateSpec `yaml:"escalate,omitempty"`
	// OnMissingData overrides Guards.OnMissingData for this rule: "hold",
	// "breach", or "" to inherit.
	OnMissingData string `yaml:"on_missing_data,omitempty"`
	// IfNoImprovement ends (or escalates) a session that has not made the
	// UE better after a while (see efficacy.go).
	IfNoImprovement *NoImprovementSpec `yaml:"if_no_improvement,omitempty"`
}

// CondSpec is a list of conditions such as "latency_p95 > 80ms" that must
// hold, any or all of them, for For. Exactly one of Any and All is given.
type CondSpec struct {
	Any []string `yaml:"any,omitempty"`
	All []string `yaml:"all,omitempty"`
	For string   `yaml:"for"`
	// Over is "" (the default: each condition reads the measurements since
	// its `for` began, see Observation) or "window": the conditions read
	// the whole window's statistics, so a short degradation holds them
	// for as long as it stays in the window.
	Over string `yaml:"over,omitempty"`
}

// EscalateSpec moves a session to a stronger profile when the breach goes
// on for After with a session active.
type EscalateSpec struct {
	To    string `yaml:"to"`
	After string `yaml:"after"`
}

// FieldError is a mistake in one field of a rule or of the guards. Field is
// the YAML path inside the rule or guards ("recover.all[0]",
// "escalate.to", "max_sessions_per_group.cams"), so the config package can
// point at the node's file:line:column.
type FieldError struct {
	Rule  string // rule name; empty for the guards
	Field string
	Value string // the value as written, if any
	Msg   string
}

// Path is the field's full YAML path: "rules.low-latency.recover.all[0]" or
// "guards.cooldown".
func (e *FieldError) Path() string {
	if e.Rule == "" {
		return "guards." + e.Field
	}
	return "rules." + e.Rule + "." + e.Field
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Path() + ": " + e.Msg
	}
	return e.Path() + ": " + strconv.Quote(e.Value) + " " + e.Msg
}

// Profiles names the QoS profiles rules may use. Each ladder lists profiles
// from weakest to strongest; escalation climbs within one ladder.
type Profiles [][]string

// DefaultProfiles are the DevEdge / CAMARA v0.8.1 profiles: throughput
// S < M < L, and QOS_E (low latency) on its own, which nothing outranks.
func DefaultProfiles() Profiles {
	return Profiles{{"QOS_S", "QOS_M", "QOS_L"}, {"QOS_E"}}
}

// rank finds a profile: its ladder and its place on it.
func (p Profiles) rank(qos string) (ladder, step int, ok bool) {
	for l, ps := range p {
		if i := slices.Index(ps, qos); i >= 0 {
			return l, i, true
		}
	}
	return 0, 0, false
}

func (p Profiles) String() string {
	var parts []string
	for _, l := range p {
		parts = append(parts, strings.Join(l, " < "))
	}
	return strings.Join(parts, "; ")
}

// MissingData says what a tick with no data for a rule's conditions means.
type MissingData uint8

const (
	MissingInherit MissingData = iota // rule: use the guards' setting; guards: hold
	MissingHold                       // nothing starts or ends; the for-clocks pause
	MissingBreach                     // count as breach (and never as recovery)
)

func (m MissingData) String() string {
	switch m {
	case MissingHold:
		return "hold"
	case MissingBreach:
		return "breach"
	}
	return "inherit"
}

func parseMissing(s string) (MissingData, bool) {
	switch s {
	case "":
		return MissingInherit, true
	case "hold":
		return MissingHold, true
	case "breach":
		return MissingBreach, true
	}
	return 0, false
}

// Rule is a compiled, valid rule. It is immutable and may be shared by any
// number of UEs.
type Rule struct {
	Name          string
	QoS           string
	Duration      time.Duration
	Escalate      *Escalation // nil: no escalation
	OnMissingData MissingData
	NoImprovement *NoImprovement // nil: a session is judged by recovery only

	breach, recover condSet
	key             string // canonical form: equal keys mean equal behaviour
}

// escalatesTo reports whether qos is the rule's escalation profile.
func (r *Rule) escalatesTo(qos string) bool { return r.Escalate != nil && r.Escalate.To == qos }

// Escalation is a compiled EscalateSpec.
type Escalation struct {
	To    string
	After time.Duration
}

// String is the rule in one line, for logs and the status page.
func (r *Rule) String() string {
	s := fmt.Sprintf("%s: breach %s; recover %s; %s for %s", r.Name, r.breach.String(), r.recover.String(), r.QoS, r.Duration)
	if r.Escalate != nil {
		s += fmt.Sprintf("; escalate to %s after %s", r.Escalate.To, r.Escalate.After)
	}
	if r.NoImprovement != nil {
		s += "; " + r.NoImprovement.String()
	}
	return s
}

// Metrics lists the metrics the rule reads ("latency_p95", "prom.app_bitrate"),
// so the daemon can check the UE has probes for them and scrape what it needs.
func (r *Rule) Metrics() []string {
	var out []string
	for _, s := range []*condSet{&r.breach, &r.recover} {
		for i := range s.conds {
			if n := s.conds[i].name(); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// Spans returns how far back the statistics of Observation.BreachSpan and
// Observation.RecoverSpan must reach for this rule: the `for` of a list
// with a condition that reads its span (loss), else 0 (leave it empty).
func (r *Rule) Spans() (breach, recover time.Duration) {
	return r.breach.span(), r.recover.span()
}

// BreachFor is the breach list's `for`.
func (r *Rule) BreachFor() time.Duration { return r.breach.hold }

// ReadsWindow tells whether a list of the rule reads Observation.Window
// (over: window); for other rules it may be left empty.
func (r *Rule) ReadsWindow() bool { return r.breach.window || r.recover.window }

func (s *condSet) span() time.Duration {
	for i := range s.conds {
		if s.conds[i].src == srcSpan {
			return s.hold
		}
	}
	return 0
}

// CompileRule checks spec against the DefaultProfiles and compiles it. Every
// mistake is a *FieldError; when there are several they come joined
// (errors.Join) in field order.
func CompileRule(name string, spec RuleSpec) (*Rule, error) {
	return DefaultProfiles().CompileRule(name, spec)
}

// Largest and smallest session duration the QoD APIs accept.
const (
	MinDuration = time.Second
	MaxDuration = 86400 * time.Second
)

// CompileRule checks spec against the profiles p and compiles it.
func (p Profiles) CompileRule(name string, spec RuleSpec) (*Rule, error) {
	var errs []error
	bad := func(field, value, format string, args ...any) {
		errs = append(errs, &FieldError{Rule: name, Field: field, Value: value, Msg: fmt.Sprintf(format, args...)})
	}
	r := &Rule{Name: name}
	if name == "" {
		bad("", "", "rule has no name")
	}
	r.breach = compileCondSpec("breach", spec.Breach, bad)
	r.recover = compileCondSpec("recover", spec.Recover, bad)
	r.recover.recover = true
	if len(r.breach.conds) > 0 && len(r.recover.conds) > 0 && len(errs) == 0 {
		checkHysteresis(spec, &r.breach, &r.recover, bad)
	}

	switch _, _, ok := p.rank(spec.QoS); {
	case spec.QoS == "":
		bad("qos", "", "is missing: the QoS profile to ask for (%s)", p)
	case !ok:
		bad("qos", spec.QoS, "is not a known QoS profile (%s)", p)
	default:
		r.QoS = spec.QoS
	}

	if spec.Duration == "" {
		bad("duration", "", "is missing: how long a session is asked for, 1s..24h")
	} else if d, err := ParseDuration(spec.Duration); err != nil {
		bad("duration", "", "%v", err)
	} else if d < MinDuration || d > MaxDuration {
		bad("duration", spec.Duration, "is outside 1s..24h (1..86400 seconds, what the QoD API accepts)")
	} else if d%time.Second != 0 {
		bad("duration", spec.Duration, "is not a whole number of seconds (the QoD API counts in seconds)")
	} else {
		r.Duration = d
	}

	if e := spec.Escalate; e != nil {
		r.Escalate = compileEscalation(p, spec.QoS, *e, bad)
	}

	if n := spec.IfNoImprovement; n != nil {
		r.NoImprovement = compileNoImprovement(*n, bad)
	}

	if m, ok := parseMissing(spec.OnMissingData); ok {
		r.OnMissingData = m
	} else {
		bad("on_missing_data", spec.OnMissingData, "must be hold or breach")
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.key = r.String() + "; missing " + r.OnMissingData.String()
	return r, nil
}

type reportFunc func(field, value, format string, args ...any)

func compileCondSpec(field string, c CondSpec, bad reportFunc) condSet {
	var s condSet
	list, which := c.Any, "any"
	switch {
	case len(c.Any) > 0 && len(c.All) > 0:
		bad(field, "", "has both any and all; use one (split the rule, or move conditions into one list)")
		return s
	case len(c.All) > 0:
		list, which, s.all = c.All, "all", true
	case len(c.Any) == 0:
		bad(field, "", "has no conditions: give any: [...] or all: [...], e.g. any: [\"latency_p95 > 80ms\"]")
	}
	switch c.Over {
	case "":
	case "window":
		s.window = true
	default:
		bad(field+".over", c.Over, "must be window, or left out (each condition then reads the measurements of its `for`)")
	}
	for i, text := range list {
		cond, err := parseCondition(text)
		if err != nil {
			bad(fmt.Sprintf("%s.%s[%d]", field, which, i), text, "%v", err)
			continue
		}
		switch {
		case s.window:
			cond.src = srcWindow
		case cond.metric == metricLoss:
			cond.src = srcSpan
		}
		s.conds = append(s.conds, cond)
	}
	what := "breach must last before a session is requested (a single bad sample would buy a session)"
	if field == "recover" {
		what = "recovery must last before the session ends (a single good sample would end a paid session)"
	}
	if c.For == "" {
		bad(field+".for", "", "is missing: how long the %s", what)
	} else if d, err := ParseDuration(c.For); err != nil {
		bad(field+".for", "", "%v", err)
	} else if d <= 0 {
		bad(field+".for", c.For, "must be above zero: it is how long the %s", what)
	} else {
		s.hold = d
	}
	return s
}

func compileEscalation(p Profiles, qos string, e EscalateSpec, bad reportFunc) *Escalation {
	out := &Escalation{To: e.To}
	ok := true
	toLadder, toStep, known := p.rank(e.To)
	fromLadder, fromStep, fromKnown := p.rank(qos)
	switch {
	case e.To == "":
		bad("escalate.to", "", "is missing: the stronger QoS profile to move to (%s)", p)
		ok = false
	case !known:
		bad("escalate.to", e.To, "is not a known QoS profile (%s)", p)
		ok = false
	case !fromKnown:
		// qos itself is reported; nothing to compare with.
	case e.To == qos:
		bad("escalate.to", e.To, "is the rule's own qos; escalation needs a stronger profile (%s)", p)
		ok = false
	case toLadder != fromLadder:
		bad("escalate.to", e.To, "cannot be compared with qos %s: they are not on one ladder (%s)", qos, p)
		ok = false
	case toStep < fromStep:
		bad("escalate.to", e.To, "is weaker than qos %s (%s)", qos, p)
		ok = false
	}
	if e.After == "" {
		bad("escalate.after", "", "is missing: how long the breach must go on with a session active before escalating")
		ok = false
	} else if d, err := ParseDuration(e.After); err != nil {
		bad("escalate.after", "", "%v", err)
		ok = false
	} else if d <= 0 {
		bad("escalate.after", e.After, "must be above zero")
		ok = false
	} else {
		out.After = d
	}
	if !ok {
		return nil
	}
	return out
}

// checkHysteresis refuses a recovery that can hold while the breach holds:
// such a rule could end a session while the UE is still bad, and buy the
// next one a moment later. With every condition an interval on one metric,
// breach AND recover is satisfiable exactly when some conjunct of the
// breach's disjunctive form is compatible with some conjunct of the
// recovery's: any = one conjunct per condition, all = one conjunct of all.
func checkHysteresis(spec RuleSpec, breach, recover *condSet, bad reportFunc) {
	conjuncts := func(s *condSet) [][]int {
		var out [][]int
		if s.all {
			all := make([]int, len(s.conds))
			for i := range all {
				all[i] = i
			}
			return [][]int{all}
		}
		for i := range s.conds {
			out = append(out, []int{i})
		}
		return out
	}
	recWhich := "any"
	if recover.all {
		recWhich = "all"
	}
	for _, rc := range conjuncts(recover) {
		for _, bc := range conjuncts(breach) {
			if !compatible(breach, bc, recover, rc) {
				continue
			}
			// Blame the recovery condition that overlaps a breach condition
			// on the same metric if there is one; else the recovery lacks a
			// condition on the breach's metric.
			for _, bi := range bc {
				b := &breach.conds[bi]
				for _, ri := range rc {
					r := &recover.conds[ri]
					if r.name() != b.name() {
						continue
					}
					both := b.interval().intersect(r.interval())
					if both.empty() {
						continue
					}
					bad(fmt.Sprintf("recover.%s[%d]", recWhich, ri), r.text,
						"does not recover from breach %q: both hold %s (recovery must be at least as strict as the breach: %s or stricter)",
						b.text, describe(b, both), strictest(b))
					return
				}
			}
			b := &breach.conds[bc[0]]
			if len(rc) == 1 && !recover.all {
				r := &recover.conds[rc[0]]
				bad(fmt.Sprintf("recover.any[%d]", rc[0]), r.text,
					"can hold while breach %q holds, and with any it alone would end the session; use all, or add a condition on %s", b.text, b.name())
				return
			}
			bad("recover", "", "can hold while breach %q holds: add a condition on %s to recover.%s (e.g. %q)", b.text, b.name(), recWhich, strictest(b))
			return
		}
	}
}

// compatible reports whether the breach conjunct bc and the recovery
// conjunct rc can hold at once.
func compatible(breach *condSet, bc []int, recover *condSet, rc []int) bool {
	ivs := map[string]interval{}
	add := func(c *condition) {
		iv, ok := ivs[c.name()]
		if !ok {
			iv = domainOf(c.metric)
		}
		ivs[c.name()] = iv.intersect(c.interval())
	}
	for _, i := range bc {
		add(&breach.conds[i])
	}
	for _, i := range rc {
		add(&recover.conds[i])
	}
	for _, iv := range ivs {
		if iv.empty() {
			return false
		}
	}
	return true
}

// describe writes where breach condition b and an overlapping recovery
// interval both hold, e.g. "between 80ms and 90ms".
func describe(b *condition, iv interval) string {
	f := b.format
	switch {
	case iv.lo == iv.hi:
		return "at " + f(iv.lo)
	case iv.hi == domainOf(b.metric).hi:
		return "above " + f(iv.lo)
	case iv.lo == domainOf(b.metric).lo:
		return "below " + f(iv.hi)
	}
	return "between " + f(iv.lo) + " and " + f(iv.hi)
}

// strictest is the weakest recovery condition that excludes breach b.
func strictest(b *condition) string {
	var o string
	switch b.op {
	case opGT:
		o = "<="
	case opGE:
		o = "<"
	case opLT:
		o = ">="
	default:
		o = ">"
	}
	return b.name() + " " + o + " " + b.raw
}

// MergeRuleSpec applies a per-UE override to a shared rule: every field the
// override sets replaces the base's. A condition list (any or all) replaces
// both of the base's lists, since a CondSpec has one; For merges on its own.
// An override Escalate with neither To nor After set removes the base's
// escalation; one with some fields set merges field by field.
func MergeRuleSpec(base, override RuleSpec) RuleSpec {
	out := base
	out.Breach = mergeCond(base.Breach, override.Breach)
	out.Recover = mergeCond(base.Recover, override.Recover)
	if override.QoS != "" {
		out.QoS = override.QoS
	}
	if override.Duration != "" {
		out.Duration = override.Duration
	}
	if override.OnMissingData != "" {
		out.OnMissingData = override.OnMissingData
	}
	if override.IfNoImprovement != nil {
		n := *override.IfNoImprovement
		out.IfNoImprovement = &n
	} else if base.IfNoImprovement != nil {
		n := *base.IfNoImprovement
		out.IfNoImprovement = &n
	}
	switch o := override.Escalate; {
	case o == nil:
		if base.Escalate != nil {
			e := *base.Escalate
			out.Escalate = &e
		}
	case o.To == "" && o.After == "":
		out.Escalate = nil
	default:
		var e EscalateSpec
		if base.Escalate != nil {
			e = *base.Escalate
		}
		if o.To != "" {
			e.To = o.To
		}
		if o.After != "" {
			e.After = o.After
		}
		out.Escalate = &e
	}
	return out
}

func mergeCond(base, o CondSpec) CondSpec {
	out := CondSpec{Any: slices.Clone(base.Any), All: slices.Clone(base.All), For: base.For, Over: base.Over}
	if len(o.Any) > 0 || len(o.All) > 0 {
		out.Any, out.All = slices.Clone(o.Any), slices.Clone(o.All)
	}
	if o.For != "" {
		out.For = o.For
	}
	if o.Over != "" {
		out.Over = o.Over
	}
	return out
}
