package daemon_test

import (
	"strings"
	"testing"
	"time"
)

// Issue 10's efficacy: a session during which the UE is no better (the
// bottleneck is not the radio) shows an improvement ratio of about 1 on
// /metrics, and if_no_improvement ends it after `after` with the
// comparison in the reason and in the end-of-session log line; none is
// bought again while the breach goes on.
func TestE2ESessionThatDoesNotHelpIsEnded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.spec.breach = "latency_p50 > 40ms"
	e.spec.breachFor = "300ms"
	e.spec.recover = "latency_p50 < 20ms"
	e.spec.ruleExtra = "if_no_improvement: {after: 1500ms, then: release}"
	e.spec.cooldown = "200ms"
	r := e.start(e.spec.parse(t), "")
	e.ue(1).bad() // and it stays bad: the session does not help
	e.eventually("a session", func() bool { return e.tally().posts == 1 })
	e.eventually("an improvement ratio on /metrics", func() bool {
		return r.metric(t, "qodwatch_session_improvement_ratio", "ue", "ue-1", "metric", "latency_p50") > 0
	})
	if v := r.metric(t, "qodwatch_session_improvement_ratio", "ue", "ue-1", "metric", "latency_p50"); v < 0.5 || v > 1.5 {
		t.Errorf("improvement ratio %v while the UE stays as bad, want about 1", v)
	}
	e.eventually("the session ended", func() bool { return e.tally().deletes == 1 })
	st := r.status("ue-1")
	// At `after` or, on a loaded machine whose probes left a step empty
	// (no data pauses the judgement), a little later.
	if !strings.Contains(st.Last.Reason, "no improvement of 1.1× in ") || !strings.Contains(st.Last.Reason, ": latency_p50 ") {
		t.Errorf("release reason %q", st.Last.Reason)
	}
	// The simulator counts the DELETE before the daemon has read its answer
	// and logged the end, so the line is waited for, not expected at once.
	e.eventually("the end logged with the improvement", func() bool {
		logs := e.logs.String()
		return strings.Contains(logs, `msg="session ended"`) && strings.Contains(logs, "improvement=\"latency_p50 ")
	})
	// Past the cooldown, with the breach going on: nothing more bought.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if n := e.tally().posts; n != 1 {
			t.Fatalf("%d POSTs: a session was bought again for a breach a session did not help", n)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not a wait for a condition
	}
	if st := r.status("ue-1"); !strings.Contains(st.Waiting, "did not improve") {
		t.Errorf("waiting %q", st.Waiting)
	}
}
