package daemon_test

import (
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/policy"
)

// A breach is decided when the probe that shows it returns, and its `for`
// fires at exactly since + for, whatever the tick: with a 5 s tick and a
// probe every second, the POST comes within for + one probe interval (plus
// slack for a loaded machine) of the moment the UE went bad. Were the UE
// evaluated only at ticks it would take up to 10 s; only on samples, up to
// a probe interval more than for after the first bad reply.
func TestE2EBreachDecidedOnSampleNotTick(t *testing.T) {
	t.Parallel()
	const (
		hold     = 500 * time.Millisecond
		interval = time.Second
		slow     = 300 * time.Millisecond // far above the threshold, far below the timeout
		slack    = 300 * time.Millisecond
	)
	e := newEnv(t, envOptions{})
	e.spec.tick = "5s"
	e.spec.interval = interval.String()
	e.spec.timeout = "900ms" // a loaded machine must not turn the bad reply into a lost one
	e.spec.window = "3s"
	e.spec.breachFor = hold.String()
	e.spec.breach = "latency_max > 150ms" // the first bad reply crosses it
	e.spec.recover = "latency_max < 100ms"
	r := e.start(e.spec.parse(t), "")
	// Good samples first: the breach must be seen by a sample, not by the
	// window's first fill, nor by a good reply that a loaded machine made
	// slow (the first one, with its connection set up, can be).
	e.eventually("only fast samples in the window, and the UE idle", func() bool {
		s, ok := r.d.Monitor().Stats("ue-1", time.Now())
		return ok && s.Samples >= 2 && s.LatencyMax < 100*time.Millisecond && r.status("ue-1").State == policy.StateIdle
	})
	if n := r.metric(t, "qodwatch_policy_evaluations_total", "trigger", "sample"); n == 0 {
		t.Fatal("no evaluation triggered by a sample: the monitor does not report them through Options.Recorded")
	}
	if got := e.tally(); got.posts != 0 {
		t.Fatalf("a POST before the UE went bad (a good reply slower than 150ms?): %s", got)
	}
	wentBad := time.Now()
	e.ue(1).slow(slow)
	e.eventually("a POST /sessions", func() bool { return e.tally().posts > 0 })
	post := e.tally().postTimes[0]
	firstBad := e.ue(1).firstBadReply()
	if firstBad.IsZero() {
		t.Fatal("a POST, but the target never answered late")
	}
	t.Logf("POST %v after the UE went bad, %v after its first bad reply", post.Sub(wentBad), post.Sub(firstBad))
	if lag := post.Sub(wentBad); lag > hold+interval+slow+slack {
		t.Errorf("POST %v after the UE went bad; want at most for %v + probe interval %v + its latency %v + %v",
			lag, hold, interval, slow, slack)
	}
	// The for counts from the sample, and the due time fires it: not a
	// probe interval later, and never early.
	if lag := post.Sub(firstBad); lag < hold || lag > hold+slack {
		t.Errorf("POST %v after the first bad reply; want for %v .. for + %v", lag, hold, slack)
	}
	if n := r.metric(t, "qodwatch_policy_evaluations_total", "trigger", "due"); n == 0 {
		t.Errorf("no evaluation triggered by a due time")
	}
}
