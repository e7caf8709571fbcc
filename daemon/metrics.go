package daemon

import (
	"errors"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
)

// metrics are the daemon's own: what it decided, what it bought and what
// the API answered. Per-UE state is read from the engine at scrape time.
type metrics struct {
	d *Daemon

	decisions      *prometheus.CounterVec
	apiCalls       *prometheus.CounterVec
	sessionsOpened *prometheus.CounterVec
	sessionsEnded  *prometheus.CounterVec
	notifications  *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadTime     prometheus.Gauge
	evaluations    *prometheus.CounterVec
	evalSample     prometheus.Counter // children of evaluations, looked up once
	evalDue        prometheus.Counter
	evalTick       prometheus.Counter

	ueState     *prometheus.Desc
	threshold   *prometheus.Desc
	ueSession   *prometheus.Desc
	byState     *prometheus.Desc
	held        *prometheus.Desc
	budgetUsed  *prometheus.Desc
	budgetLimit *prometheus.Desc
	buildInfo   *prometheus.Desc
	improvement *prometheus.Desc
	perProfile  *prometheus.Desc
	perGroup    *prometheus.Desc
	perUE       *prometheus.Desc
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		d: d,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_decisions_total", Help: "Decisions made by the policy, by kind (request, renew, escalate, release).",
		}, []string{"decision"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_api_calls_total", Help: "QoD API calls by operation and outcome (retries inside one call not counted).",
		}, []string{"operation", "outcome"}),
		sessionsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_sessions_opened_total", Help: "QoD sessions opened, by QoS profile.",
		}, []string{"qos"}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_sessions_ended_total", Help: "QoD sessions ended, by why (released, terminated, expired).",
		}, []string{"reason"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_notifications_total",
			Help: "Notifications received, by what became of them: confirmed, contradicted (the API says the session is live: kept), unconfirmed (the check failed: kept), ignored, already_ended, or why they were rejected.",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "qodwatch_config_last_reload_successful", Help: "Whether the last configuration reload succeeded (1) or was refused (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "qodwatch_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful configuration load.",
		}),
		ueState: prometheus.NewDesc("qodwatch_ue_state",
			"The policy state of each UE: 1 for its current state; rule names its rule as on qodwatch_rule_threshold.", []string{"rule", "state", "ue"}, nil),
		threshold: prometheus.NewDesc("qodwatch_rule_threshold",
			"Threshold of each condition of each rule, in the base unit of the metric it tests (seconds, ratio, bytes per second); join on rule with qodwatch_ue_state. A UE with a rule_override has a rule of its own, named RULE/UE.",
			[]string{"metric", "op", "rule", "set"}, nil),
		ueSession: prometheus.NewDesc("qodwatch_ue_session_active",
			"Whether the UE holds a QoD session (1) or not (0).", []string{"ue"}, nil),
		byState: prometheus.NewDesc("qodwatch_policy_ues",
			"UEs in each policy state.", []string{"state"}, nil),
		held: prometheus.NewDesc("qodwatch_sessions",
			"QoD sessions held, asked for or possibly held (lost create answers), counted against max_sessions.", nil, nil),
		budgetUsed: prometheus.NewDesc("qodwatch_budget_used_seconds",
			"Session time charged today (UTC) against the daily budget.", nil, nil),
		budgetLimit: prometheus.NewDesc("qodwatch_budget_limit_seconds",
			"The daily budget of session time; 0 when unlimited.", nil, nil),
		improvement: prometheus.NewDesc("qodwatch_session_improvement_ratio",
			"For a UE holding a session, how many times better each metric of its rule's breach is since the session's profile was granted than over the breach before it (1: no change, 2: twice as good; 0.001..1000). Absent for sessions adopted at start.", []string{"metric", "ue"}, nil),
		perProfile: prometheus.NewDesc("qodwatch_sessions_per_profile",
			"QoD sessions held (or being renewed or released), by QoS profile.", []string{"qos"}, nil),
		perGroup: prometheus.NewDesc("qodwatch_sessions_per_group",
			"QoD sessions held, asked for or possibly held, by group of UEs (as max_sessions_per_group counts them).", []string{"group"}, nil),
		perUE: prometheus.NewDesc("qodwatch_metrics_per_ue",
			"Whether /metrics has the per-UE series of every UE (1) or only of the UEs holding or asking for a session or whose request failed (0); web.per_ue_metrics.", nil, nil),
		buildInfo: prometheus.NewDesc("qodwatch_build_info",
			"Build information; always 1.", []string{"version", "goversion"}, nil),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_policy_evaluations_total",
			Help: "UE evaluations by the policy, by what triggered them: a new sample, a due time (the end of a for, cooldown, backoff, renewal), or the tick.",
		}, []string{"trigger"}),
	}
	m.evalSample = m.evaluations.WithLabelValues("sample")
	m.evalDue = m.evaluations.WithLabelValues("due")
	m.evalTick = m.evaluations.WithLabelValues("tick")
	return m
}

// Label values known up front. A labelled series that appears with its
// first event shows no increase for it: increase() and rate() need a
// sample before the event, so a single lost create would never alert
// (issue 9). These series start at 0 instead.
var (
	// apiOperations are the operations of every dialect; camara-v1 adds
	// camaraOperations.
	apiOperations    = []string{"create", "get", "delete"}
	camaraOperations = []string{"extend", "retrieve"}
	// apiOutcomes are every value outcome returns.
	apiOutcomes = []string{"ok", "unknown_outcome", "not_found", "conflict", "rate_limited",
		"unauthorized", "forbidden", "invalid", "unavailable", "error"}
	// reconcileTriggers and reconcileResults label qodwatch_reconciliations_total.
	reconcileTriggers = []string{"unknown_outcome", "conflict", "start", "reshard"}
	reconcileResults  = []string{"adopted", "none", "error"}
)

// initLabels gives every label value the config makes known its series at
// 0: decisions, API calls of the dialect's operations, sessions opened per
// QoS profile the rules may ask for, ends per reason, notifications per
// result. It runs at start and on each reload (a new profile, a new
// dialect); series of values no longer configured stay, they are few and
// may have counted already. It does nothing per UE.
func (m *metrics) initLabels(cfg *config.Config) {
	for _, k := range []policy.Kind{policy.Request, policy.Renew, policy.Escalate, policy.Release} {
		m.decisions.WithLabelValues(k.String())
	}
	ops := apiOperations
	if cfg.API.Dialect == "camara-v1" {
		ops = append(slices.Clip(ops), camaraOperations...)
	}
	if !cfg.DryRun {
		for _, op := range ops {
			for _, o := range apiOutcomes {
				m.apiCalls.WithLabelValues(op, o)
			}
		}
	}
	profiles := func(r *policy.Rule) {
		m.sessionsOpened.WithLabelValues(r.QoS)
		if r.Escalate != nil {
			m.sessionsOpened.WithLabelValues(r.Escalate.To)
		}
	}
	for _, r := range cfg.Rules {
		profiles(r)
	}
	for i := range cfg.UEs {
		if cfg.UEs[i].RuleOverridden {
			profiles(cfg.UEs[i].Rule)
		}
	}
	for _, r := range []policy.EndReason{policy.EndReleased, policy.EndTerminated, policy.EndExpired} {
		m.sessionsEnded.WithLabelValues(r.String())
	}
	for _, r := range notificationResults {
		m.notifications.WithLabelValues(r)
	}
}

// initMetricLabels is initLabels for the daemon's metrics and CAMARA v1's.
func (d *Daemon) initMetricLabels(cfg *config.Config) {
	d.metrics.initLabels(cfg)
	if cfg.API.Dialect == "camara-v1" && !cfg.DryRun {
		for _, t := range reconcileTriggers {
			for _, r := range reconcileResults {
				d.v1metrics.reconciled.WithLabelValues(t, r)
			}
		}
	}
}

func (m *metrics) reloadSucceeded(at time.Time) {
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(at.Unix()))
}

func (m *metrics) reloadFailed() { m.reloadOK.Set(0) }

func (m *metrics) counters() []prometheus.Collector {
	return append([]prometheus.Collector{m.decisions, m.apiCalls, m.sessionsOpened, m.sessionsEnded, m.notifications, m.reloadOK, m.reloadTime, m.evaluations},
		m.d.health.collectors()...)
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.counters() {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{m.ueState, m.threshold, m.ueSession, m.byState, m.held, m.budgetUsed, m.budgetLimit, m.buildInfo, m.improvement,
		m.perProfile, m.perGroup, m.perUE} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters() {
		c.Collect(ch)
	}
	d := m.d
	d.mu.Lock()
	// Briefs, not Statuses: a scrape must not format every UE's status
	// under the loop's lock.
	bp := briefPool.Get().(*[]policy.Brief)
	defer briefPool.Put(bp)
	briefs := d.engine.Briefs((*bp)[:0])
	*bp = briefs
	usage := d.engine.Usage(d.now())
	ruleOf, rules := ruleKeys(d.cfg)
	var imps []policy.Improvement
	var impUE []string // the UE of each of imps
	for _, st := range briefs {
		if st.HasSession {
			n := len(imps)
			imps = d.improvements(st.UE, imps)
			for range imps[n:] {
				impUE = append(impUE, st.UE)
			}
		}
	}
	all := d.cfg.Web.PerUE(len(d.cfg.UEs))
	d.mu.Unlock()
	for i, x := range imps {
		ch <- prometheus.MustNewConstMetric(m.improvement, prometheus.GaugeValue, x.Ratio, x.Metric, impUE[i])
	}
	for key, r := range rules {
		for _, set := range []struct {
			name string
			info policy.CondSetInfo
		}{{"breach", r.Breach()}, {"recover", r.Recover()}} {
			for _, c := range set.info.Conditions {
				ch <- prometheus.MustNewConstMetric(m.threshold, prometheus.GaugeValue, c.Threshold, c.Metric, c.Op, key, set.name)
			}
		}
	}
	count := map[policy.State]int{}
	profiles := map[string]int{}
	for _, r := range rules { // every profile the rules may ask for, at 0 without sessions
		profiles[r.QoS] += 0
		if r.Escalate != nil {
			profiles[r.Escalate.To] += 0
		}
	}
	for _, st := range briefs {
		count[st.State]++
		if st.QoS != "" {
			profiles[st.QoS]++
		}
		if !all && !keepPerUE(st) {
			continue
		}
		rule := ruleOf[st.UE]
		if rule == "" {
			rule = st.Rule // removed from the config, session still held
		}
		ch <- prometheus.MustNewConstMetric(m.ueState, prometheus.GaugeValue, 1, rule, st.State.String(), st.UE)
		ch <- prometheus.MustNewConstMetric(m.ueSession, prometheus.GaugeValue, boolFloat(st.HasSession), st.UE)
	}
	for _, s := range policy.States() {
		ch <- prometheus.MustNewConstMetric(m.byState, prometheus.GaugeValue, float64(count[s]), s.String())
	}
	for qos, n := range profiles {
		ch <- prometheus.MustNewConstMetric(m.perProfile, prometheus.GaugeValue, float64(n), qos)
	}
	for g, n := range usage.PerGroup {
		ch <- prometheus.MustNewConstMetric(m.perGroup, prometheus.GaugeValue, float64(n), g)
	}
	ch <- prometheus.MustNewConstMetric(m.perUE, prometheus.GaugeValue, boolFloat(all))
	ch <- prometheus.MustNewConstMetric(m.held, prometheus.GaugeValue, float64(usage.Sessions))
	ch <- prometheus.MustNewConstMetric(m.budgetUsed, prometheus.GaugeValue, usage.BudgetUsed.Seconds())
	ch <- prometheus.MustNewConstMetric(m.budgetLimit, prometheus.GaugeValue, usage.DailyBudget.Seconds())
	ch <- prometheus.MustNewConstMetric(m.buildInfo, prometheus.GaugeValue, 1, Version(), runtime.Version())
}

// keepPerUE picks the UEs whose per-UE series /metrics keeps when
// web.per_ue_metrics leaves the others out: those holding or asking for a
// session, or whose request failed. They are few (max_sessions bounds the
// first two), they cost money, and QodwatchUERequestFailing names them.
func keepPerUE(b policy.Brief) bool {
	return b.HasSession || b.State == policy.StateFailed || b.State == policy.StateRequesting
}

// metricsUEs is the monitor's selector (monitor.SelectUEs): nil while
// /metrics has every UE's series, else keepPerUE's UEs.
func (d *Daemon) metricsUEs() func(ue string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.Web.PerUE(len(d.cfg.UEs)) {
		return nil
	}
	bp := briefPool.Get().(*[]policy.Brief)
	defer briefPool.Put(bp)
	*bp = d.engine.Briefs((*bp)[:0])
	keep := map[string]bool{}
	for _, b := range *bp {
		if keepPerUE(b) {
			keep[b.UE] = true
		}
	}
	return func(ue string) bool { return keep[ue] }
}

// briefPool holds the briefs a scrape reads (6 MB at 100,000 UEs): reused
// rather than made twice a scrape.
var briefPool = sync.Pool{New: func() any { return new([]policy.Brief) }}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Version is the module version the binary was built from.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// registerRuntimeCollectors adds the go_* and process_* families every
// exporter has and dashboards and alerts expect (issue 12). A registry
// that has them already (a caller's) is fine.
func registerRuntimeCollectors(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// ruleKeys names the rule of each UE as the metrics do: the rule's name, or
// RULE/UE for a UE with a rule_override (its thresholds are its own).
func ruleKeys(cfg *config.Config) (byUE map[string]string, rules map[string]*policy.Rule) {
	byUE = make(map[string]string, len(cfg.UEs))
	rules = map[string]*policy.Rule{}
	for i := range cfg.UEs {
		u := &cfg.UEs[i]
		if u.Rule == nil {
			continue
		}
		key := u.RuleName
		if u.RuleOverridden {
			key = u.RuleName + "/" + u.Name
		}
		byUE[u.Name] = key
		rules[key] = u.Rule
	}
	return byUE, rules
}
