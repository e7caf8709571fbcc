package policy

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var inf = math.Inf(1)

// lowLatency is the sketch's rule, valid.
func lowLatency() RuleSpec {
	return RuleSpec{
		Breach:   CondSpec{Any: []string{"latency_p95 > 80ms", "loss > 2%"}, For: "20s"},
		Recover:  CondSpec{All: []string{"latency_p95 < 50ms", "loss < 0.5%"}, For: "60s"},
		QoS:      "QOS_E",
		Duration: "10m",
	}
}

func videoUplink() RuleSpec {
	return RuleSpec{
		Breach:   CondSpec{Any: []string{"throughput < 5Mbps"}, For: "15s"},
		Recover:  CondSpec{All: []string{"throughput > 8Mbps"}, For: "60s"},
		QoS:      "QOS_M",
		Escalate: &EscalateSpec{To: "QOS_L", After: "3m"},
		Duration: "30m",
	}
}

func mustRule(t testing.TB, name string, spec RuleSpec) *Rule {
	t.Helper()
	r, err := CompileRule(name, spec)
	if err != nil {
		t.Fatalf("CompileRule(%s): %v", name, err)
	}
	return r
}

func TestCompileRuleGood(t *testing.T) {
	r := mustRule(t, "low-latency", lowLatency())
	if r.QoS != "QOS_E" || r.Duration != 10*time.Minute || r.Escalate != nil {
		t.Errorf("compiled %+v", r)
	}
	if got, want := r.Metrics(), []string{"latency_p95", "loss"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Metrics() = %v, want %v", got, want)
	}
	v := mustRule(t, "video-uplink", videoUplink())
	if v.Escalate == nil || v.Escalate.To != "QOS_L" || v.Escalate.After != 3*time.Minute {
		t.Errorf("escalation %+v", v.Escalate)
	}
	p := RuleSpec{
		Breach:   CondSpec{All: []string{"prom.app_bitrate < 3e6", "jitter >= 30ms"}, For: "10s"},
		Recover:  CondSpec{Any: []string{"prom.app_bitrate>=4e6"}, For: "30s"},
		QoS:      "QOS_S",
		Duration: "86400s",
	}
	pr := mustRule(t, "prom", p)
	if got, want := pr.Metrics(), []string{"prom.app_bitrate", "jitter"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Metrics() = %v, want %v", got, want)
	}
	if !strings.Contains(pr.String(), `"prom.app_bitrate >= 4e6"`) {
		t.Errorf("String() = %s; want normalised conditions", pr.String())
	}
}

// TestCompileRuleErrors checks every config mistake names the rule and the
// field, with the text `qodwatch check` will print.
func TestCompileRuleErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*RuleSpec)
		field string
		want  string
	}{
		{"unknown metric", func(s *RuleSpec) { s.Breach.Any[0] = "latency_p99 > 80ms" }, "breach.any[0]",
			`rules.r.breach.any[0]: "latency_p99 > 80ms" unknown metric "latency_p99" (known: latency_mean, latency_p50, latency_p95, latency_max, jitter, loss, throughput, throughput_p10, throughput_p50, prom.<name>)`},
		{"unparsable unit", func(s *RuleSpec) { s.Breach.Any[0] = "latency_p95 > 80" }, "breach.any[0]",
			`threshold of latency_p95: "80" has no unit (write e.g. 80ms or 80s)`},
		{"ratio without percent", func(s *RuleSpec) { s.Breach.Any[1] = "loss > 2" }, "breach.any[1]",
			`"2" is not a percentage`},
		{"rate unit", func(s *RuleSpec) { s.Breach.Any[0] = "throughput < 5 mbit" }, "breach.any[0]",
			`unknown rate unit "mbit"`},
		{"equality", func(s *RuleSpec) { s.Breach.Any[0] = "latency_p95 == 80ms" }, "breach.any[0]",
			"operator must be <, <=, > or >="},
		{"no operator", func(s *RuleSpec) { s.Breach.Any[0] = "latency_p95 high" }, "breach.any[0]",
			"no comparison"},
		{"two operators", func(s *RuleSpec) { s.Breach.Any[0] = "50ms < latency_p95 < 80ms" }, "breach.any[0]",
			"one comparison per condition"},
		{"bad prom name", func(s *RuleSpec) { s.Breach.Any[0] = "prom.9x < 3" }, "breach.any[0]",
			"not a prometheus metric name"},
		{"never holds", func(s *RuleSpec) { s.Breach.Any[1] = "loss > 100%" }, "breach.any[1]",
			"can never hold"},
		{"always holds", func(s *RuleSpec) { s.Breach.Any[0] = "latency_p95 >= 0s" }, "breach.any[0]",
			"always holds"},
		{"recovery on the wrong side", func(s *RuleSpec) { s.Recover.All[0] = "latency_p95 < 90ms" }, "recover.all[0]",
			`rules.r.recover.all[0]: "latency_p95 < 90ms" does not recover from breach "latency_p95 > 80ms": both hold between 80ms and 90ms (recovery must be at least as strict as the breach: latency_p95 <= 80ms or stricter)`},
		{"recovery pointing the same way", func(s *RuleSpec) { s.Recover.All[0] = "latency_p95 > 100ms" }, "recover.all[0]",
			`does not recover from breach "latency_p95 > 80ms": both hold above 100ms`},
		{"recovery touching breach", func(s *RuleSpec) {
			s.Breach.Any[0] = "latency_p95 >= 80ms"
			s.Recover.All[0] = "latency_p95 <= 80ms"
		}, "recover.all[0]", "both hold at 80ms"},
		{"recovery ignores a breach metric", func(s *RuleSpec) { s.Recover.All = []string{"latency_p95 < 50ms"} }, "recover",
			`rules.r.recover: can hold while breach "loss > 2%" holds: add a condition on loss to recover.all (e.g. "loss <= 2%")`},
		{"recovery any of two metrics", func(s *RuleSpec) {
			s.Recover = CondSpec{Any: []string{"latency_p95 < 50ms", "loss < 0.5%"}, For: "60s"}
		}, "recover.any", `can hold while breach "loss > 2%" holds, and with any it alone would end the session`},
		{"breach for zero", func(s *RuleSpec) { s.Breach.For = "0s" }, "breach.for",
			`rules.r.breach.for: "0s" must be above zero: it is how long the breach must last before a session is requested`},
		{"recover for missing", func(s *RuleSpec) { s.Recover.For = "" }, "recover.for", "is missing"},
		{"for unparsable", func(s *RuleSpec) { s.Breach.For = "20" }, "breach.for", `"20" has no unit`},
		{"no conditions", func(s *RuleSpec) { s.Breach.Any = nil }, "breach", "has no conditions"},
		{"any and all", func(s *RuleSpec) { s.Breach.All = []string{"jitter > 30ms"} }, "breach", "has both any and all"},
		{"unknown qos", func(s *RuleSpec) { s.QoS = "QOS_X" }, "qos",
			`rules.r.qos: "QOS_X" is not a known QoS profile (QOS_S < QOS_M < QOS_L; QOS_E)`},
		{"missing qos", func(s *RuleSpec) { s.QoS = "" }, "qos", "is missing"},
		{"duration too long", func(s *RuleSpec) { s.Duration = "25h" }, "duration", "is outside 1s..24h ("},
		{"duration too short", func(s *RuleSpec) { s.Duration = "500ms" }, "duration", "is outside"},
		{"duration fraction", func(s *RuleSpec) { s.Duration = "1.5s" }, "duration", "not a whole number of seconds"},
		{"duration missing", func(s *RuleSpec) { s.Duration = "" }, "duration", "is missing"},
		{"escalate to same", func(s *RuleSpec) { s.QoS = "QOS_M"; s.Escalate = &EscalateSpec{To: "QOS_M", After: "3m"} }, "escalate.to",
			"is the rule's own qos"},
		{"escalate to weaker", func(s *RuleSpec) { s.QoS = "QOS_M"; s.Escalate = &EscalateSpec{To: "QOS_S", After: "3m"} }, "escalate.to",
			`rules.r.escalate.to: "QOS_S" is weaker than qos QOS_M`},
		{"escalate across ladders", func(s *RuleSpec) { s.Escalate = &EscalateSpec{To: "QOS_L", After: "3m"} }, "escalate.to",
			"cannot be compared with qos QOS_E"},
		{"escalate after zero", func(s *RuleSpec) { s.QoS = "QOS_S"; s.Escalate = &EscalateSpec{To: "QOS_L", After: "0s"} }, "escalate.after",
			"must be above zero"},
		{"on_missing_data", func(s *RuleSpec) { s.OnMissingData = "ignore" }, "on_missing_data", "must be hold or breach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := lowLatency()
			tc.edit(&spec)
			_, err := CompileRule("r", spec)
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *FieldError", err, err)
			}
			if fe.Rule != "r" || !strings.HasPrefix(fe.Field, tc.field) {
				t.Errorf("error names rule %q field %q, want r and %s", fe.Rule, fe.Field, tc.field)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestCompileRuleJoinsErrors(t *testing.T) {
	_, err := CompileRule("r", RuleSpec{Breach: CondSpec{Any: []string{"foo > 1"}}, QoS: "nope"})
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v is not joined", err)
	}
	var fields []string
	for _, e := range j.Unwrap() {
		fields = append(fields, e.(*FieldError).Field)
	}
	want := []string{"breach.any[0]", "breach.for", "recover", "recover.for", "qos", "duration"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %v, want %v", fields, want)
	}
}

func TestCustomProfiles(t *testing.T) {
	p := Profiles{{"voice", "video"}}
	spec := lowLatency()
	spec.QoS = "voice"
	spec.Escalate = &EscalateSpec{To: "video", After: "1m"}
	if _, err := p.CompileRule("r", spec); err != nil {
		t.Fatal(err)
	}
	if _, err := CompileRule("r", spec); err == nil {
		t.Fatal("default profiles accepted a CAMARA v1 profile")
	}
}

func TestCompileGuards(t *testing.T) {
	g, err := CompileGuards(GuardsSpec{})
	if err != nil {
		t.Fatal(err)
	}
	want := Guards{MinSession: time.Minute, Cooldown: 5 * time.Minute, RenewBefore: time.Minute, OnMissingData: MissingHold}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("defaults %+v, want %+v", g, want)
	}
	g, err = CompileGuards(GuardsSpec{MaxSessions: 20, MaxSessionsPerGroup: map[string]int{"pier-3": 2},
		MinSession: "2m", Cooldown: "5m", DailyBudget: "40h", RenewBefore: "90s", StaleAfter: "2m", OnMissingData: "breach"})
	if err != nil {
		t.Fatal(err)
	}
	if g.DailyBudget != 40*time.Hour || g.MaxSessionsPerGroup["pier-3"] != 2 || g.OnMissingData != MissingBreach || g.RenewBefore != 90*time.Second {
		t.Errorf("compiled %+v", g)
	}
	for _, tc := range []struct {
		spec GuardsSpec
		want string
	}{
		{GuardsSpec{MaxSessions: -1}, `guards.max_sessions: "-1" must not be negative`},
		{GuardsSpec{MaxSessionsPerGroup: map[string]int{"cams": -2}}, `guards.max_sessions_per_group.cams: "-2" must not be negative`},
		{GuardsSpec{Cooldown: "5"}, `guards.cooldown: "5" has no unit`},
		{GuardsSpec{DailyBudget: "0h"}, `guards.daily_budget: "0h" is zero`},
		{GuardsSpec{RenewBefore: "0s"}, `guards.renew_before: "0s" must be above zero`},
		{GuardsSpec{OnMissingData: "skip"}, `guards.on_missing_data: "skip" must be hold or breach`},
	} {
		_, err := CompileGuards(tc.spec)
		var fe *FieldError
		if err == nil || !errors.As(err, &fe) || fe.Rule != "" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CompileGuards(%+v) = %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestMergeRuleSpec(t *testing.T) {
	base := videoUplink()
	got := MergeRuleSpec(base, RuleSpec{Breach: CondSpec{For: "30s"}, Duration: "5m"})
	if got.Breach.For != "30s" || !reflect.DeepEqual(got.Breach.Any, base.Breach.Any) || got.Duration != "5m" || got.QoS != "QOS_M" {
		t.Errorf("merge of for and duration: %+v", got)
	}
	got = MergeRuleSpec(base, RuleSpec{Recover: CondSpec{Any: []string{"throughput > 10Mbps"}}})
	if !reflect.DeepEqual(got.Recover, CondSpec{Any: []string{"throughput > 10Mbps"}, For: "60s"}) {
		t.Errorf("merge of a condition list: %+v", got.Recover)
	}
	got = MergeRuleSpec(base, RuleSpec{Escalate: &EscalateSpec{After: "1m"}})
	if *got.Escalate != (EscalateSpec{To: "QOS_L", After: "1m"}) {
		t.Errorf("merge of escalate.after: %+v", got.Escalate)
	}
	got = MergeRuleSpec(base, RuleSpec{Escalate: &EscalateSpec{}})
	if got.Escalate != nil {
		t.Errorf("empty escalate should remove it: %+v", got.Escalate)
	}
	got = MergeRuleSpec(base, RuleSpec{})
	got.Breach.Any[0] = "changed"
	got.Escalate.To = "changed"
	if base.Breach.Any[0] == "changed" || base.Escalate.To == "changed" {
		t.Error("merge result shares memory with the base")
	}
	if _, err := CompileRule("v", MergeRuleSpec(base, RuleSpec{QoS: "QOS_S"})); err != nil {
		t.Errorf("merged spec does not compile: %v", err)
	}
}

func TestConditionEval(t *testing.T) {
	obs := Observation{
		Latency:    LatencyStats{Samples: 10, P95: 112 * time.Millisecond, Loss: 0.1},
		Throughput: ThroughputStats{Samples: 1, BytesPerSecond: 400000},
		Prom:       map[string]PromSample{"app_bitrate": {Value: 2e6}, "nan": {Value: math.NaN()}},
	}
	for _, tc := range []struct {
		cond string
		want tri
	}{
		{"latency_p95 > 80ms", triTrue},
		{"latency_p95 < 80ms", triFalse},
		{"latency_p95 >= 112ms", triTrue},
		{"loss > 2%", triTrue},
		{"loss <= 10%", triTrue},
		{"throughput < 5Mbps", triTrue},
		{"throughput > 3.2Mbps", triFalse},
		{"prom.app_bitrate < 3e6", triTrue},
		{"prom.missing < 3e6", triUnknown},
		{"prom.nan < 3e6", triUnknown},
	} {
		c, err := parseCondition(tc.cond)
		if err != nil {
			t.Fatal(err)
		}
		s := condSet{conds: []condition{c}}
		if got := s.eval(&obs, 0); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.cond, got, tc.want)
		}
	}
	// Every probe lost: latency is +Inf, past any threshold.
	lost := Observation{Latency: LatencyStats{Samples: 3, Loss: 1}}
	if v, ok := lost.value(metricLatencyP95, "", &lost.Latency, &lost.Throughput, 0); !ok || v != inf {
		t.Errorf("latency with 100%% loss = %v, %v; want +Inf", v, ok)
	}
	// Stale data is no data.
	old := Observation{Latency: LatencyStats{Samples: 3, Age: 3 * time.Minute}}
	if _, ok := old.value(metricLoss, "", &old.Latency, &old.Throughput, 2*time.Minute); ok {
		t.Error("3m old sample with stale_after 2m counted")
	}
	if _, ok := old.value(metricLoss, "", &old.Latency, &old.Throughput, 0); !ok {
		t.Error("stale_after 0 should not age data out")
	}
}

func TestTriLogic(t *testing.T) {
	mk := func(all bool, conds ...string) condSet {
		s := condSet{all: all}
		for _, c := range conds {
			pc, err := parseCondition(c)
			if err != nil {
				t.Fatal(err)
			}
			s.conds = append(s.conds, pc)
		}
		return s
	}
	obs := Observation{Latency: LatencyStats{Samples: 1, P95: 100 * time.Millisecond}}
	for _, tc := range []struct {
		set  condSet
		want tri
	}{
		{mk(false, "latency_p95 > 80ms", "throughput < 5Mbps"), triTrue},    // one true decides any
		{mk(false, "latency_p95 < 80ms", "throughput < 5Mbps"), triUnknown}, // false or unknown
		{mk(true, "latency_p95 < 80ms", "throughput < 5Mbps"), triFalse},    // one false decides all
		{mk(true, "latency_p95 > 80ms", "throughput < 5Mbps"), triUnknown},  // true and unknown
		{mk(true, "latency_p95 > 80ms", "latency_p95 < 200ms"), triTrue},    // all true
		{mk(false, "latency_p95 < 80ms", "latency_p95 > 200ms"), triFalse},  // all false
	} {
		if got := tc.set.eval(&obs, 0); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.set.String(), got, tc.want)
		}
	}
}
