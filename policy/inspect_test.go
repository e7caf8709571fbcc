package policy

import (
	"math"
	"testing"
	"time"
)

// TestHeldSinceSurvivesRenewal: the status page's session age counts from
// the first session of a run; a renewal replaces the session, not the run.
func TestHeldSinceSurvivesRenewal(t *testing.T) {
	g := defaultGuards()
	g.RenewBefore = 30 * time.Second
	h := newHarness(t, g)
	spec := lowLatency()
	spec.Duration = "2m"
	h.ue("cam", spec)
	h.run(250*time.Second, one(series(phase{0, obsBad})))
	if len(h.log) != 3 || h.log[2] != "3m20s cam renew QOS_E" {
		t.Fatalf("decisions %v, want a request and two renewals", h.log)
	}
	st, _ := h.e.Status("cam")
	if !st.HasSession || st.Session.ID != "s3" || !st.HeldSince.Equal(t0.Add(20*time.Second)) {
		t.Errorf("after two renewals: session %q held since %v, want s3 held since the first open at %v", st.Session.ID, st.HeldSince, t0.Add(20*time.Second))
	}
	if !st.Since.After(st.HeldSince) {
		t.Errorf("state since %v: expected the renewal to restart the state's own clock", st.Since)
	}
}

// TestRuleInspection: the conditions a rule reads, with thresholds in base
// units, and the values an observation gives them.
func TestRuleInspection(t *testing.T) {
	r := mustRule(t, "low", lowLatency())
	b := r.Breach()
	if b.All || b.For != 20*time.Second || len(b.Conditions) != 2 {
		t.Fatalf("breach %+v", b)
	}
	c := b.Conditions[0]
	if c.Metric != "latency_p95" || c.Op != ">" || c.Threshold != 0.08 || c.Raw != "80ms" || c.Text != "latency_p95 > 80ms" {
		t.Errorf("first breach condition %+v", c)
	}
	if !c.Holds(0.112) || c.Holds(0.08) {
		t.Error("Holds disagrees with >")
	}
	if rc := r.Recover(); !rc.All || rc.For != time.Minute || rc.Conditions[1].Metric != "loss" || rc.Conditions[1].Threshold != 0.005 {
		t.Errorf("recover %+v", rc)
	}
	if v, ok := obsBad.Value("latency_p95", 0); !ok || v != 0.112 {
		t.Errorf("latency_p95 of obsBad = %v, %v", v, ok)
	}
	if _, ok := obsNone.Value("latency_p95", 0); ok {
		t.Error("no data has a value")
	}
	if v, ok := obsLost.Value("latency_p95", 0); !ok || !math.IsInf(v, 1) || FormatValue("latency_p95", v) != "no reply" {
		t.Errorf("all lost: %v %v %q", v, ok, FormatValue("latency_p95", v))
	}
	if _, ok := obsBad.Value("nonsense", 0); ok {
		t.Error("an unknown metric has a value")
	}
	if got := FormatValue("loss", 0.02); got != "2%" {
		t.Errorf("FormatValue(loss, 0.02) = %q", got)
	}
}
