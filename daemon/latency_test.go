package daemon_test

import (
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/policy"
)

// A breach is decided when the probe that shows it returns, and its `for`
// fires at exactly since + for, whatever the tick. The tick is longer than
// the test, so only a sample or a due time can decide: were the UE
// evaluated only at ticks, no POST would come at all; only on samples, it
// would come up to a probe interval more than for after the first bad
// reply instead of for after it.
func TestE2EBreachDecidedOnSampleNotTick(t *testing.T) {
	t.Parallel()
	// The slack is what a loaded machine may add between the target's
	// reply and the POST (335ms seen); the probe interval is well beyond
	// for + slack, so a POST waiting for the next sample cannot pass.
	const (
		hold     = 500 * time.Millisecond
		interval = 2 * time.Second
		slow     = 300 * time.Millisecond // far above the threshold, far below the timeout
		slack    = 700 * time.Millisecond
	)
	e := newEnv(t, envOptions{})
	e.spec.tick = "1m"
	e.spec.interval = interval.String()
	e.spec.timeout = "1900ms" // a loaded machine must not turn the bad reply into a lost one
	e.spec.window = "5s"
	e.spec.breachFor = hold.String()
	e.spec.breach = "latency_max > 150ms" // the first bad reply crosses it
	e.spec.recover = "latency_max < 100ms"
	r := e.start(e.spec.parse(t), "")
	// Good samples first: the breach must be seen by a sample, not by the
	// window's first fill. A loaded machine can make a good reply slower
	// than the threshold (the first one, with its connection set up, most
	// of all) and the daemon then rightly buys a session: wait until it has
	// ended it and the window holds fast replies only.
	e.eventually("only fast samples in the window, the UE idle and holding no session", func() bool {
		s, ok := r.d.Monitor().Stats("ue-1", time.Now())
		st := r.status("ue-1")
		return ok && s.Samples >= 2 && s.LatencyMax < 100*time.Millisecond &&
			st.State == policy.StateIdle && !st.HasSession && len(e.live()) == 0
	})
	if n := r.metric(t, "qodwatch_policy_evaluations_total", "trigger", "sample"); n == 0 {
		t.Fatal("no evaluation triggered by a sample: the monitor does not report them through Options.Recorded")
	}
	before := e.tally().posts
	if before != 0 {
		t.Logf("%d POST before the UE went bad: a good reply slower than 150ms on a loaded machine", before)
	}
	wentBad := time.Now()
	e.ue(1).slow(slow)
	e.eventually("a POST /sessions", func() bool { return e.tally().posts > before })
	post := e.tally().postTimes[before]
	firstBad := e.ue(1).firstBadReply()
	if firstBad.IsZero() {
		t.Fatal("a POST, but the target never answered late")
	}
	t.Logf("POST %v after the UE went bad, %v after its first bad reply", post.Sub(wentBad), post.Sub(firstBad))
	// The for counts from the sample, and the due time fires it: not a
	// probe interval later, and never early.
	if lag := post.Sub(firstBad); lag < hold || lag > hold+slack {
		t.Errorf("POST %v after the first bad reply; want for %v .. for + %v", lag, hold, slack)
	}
	if n := r.metric(t, "qodwatch_policy_evaluations_total", "trigger", "due"); n == 0 {
		t.Errorf("no evaluation triggered by a due time")
	}
}

// A degradation whose first evidence is lost probes (a queue longer than
// the probe's timeout) starts `for` at the first loss: a lost probe is an
// endless round trip in the quantiles rules read (issue 10). Before, a
// step's p95 ignored its lost probes unless every one was lost, so `for`
// began only once the last quick answer had left the step, a step (1 s)
// after the UE went bad: the closed loop's 1.3 s onset→POST − for.
func TestE2EBreachCountsLostProbesFromTheFirst(t *testing.T) {
	t.Parallel()
	const (
		hold     = 300 * time.Millisecond
		interval = 100 * time.Millisecond
		timeout  = 100 * time.Millisecond
		step     = time.Second // the monitor's default: 10 probes
		// What a loaded machine may add between the first loss and the POST.
		slack = 500 * time.Millisecond
	)
	e := newEnv(t, envOptions{})
	e.spec.tick = "1m"
	e.spec.interval = interval.String()
	e.spec.timeout = timeout.String()
	e.spec.window = "5s"
	e.spec.breachFor = hold.String()
	e.spec.breach = "latency_p95 > 80ms"
	e.spec.recover = "latency_p95 < 40ms"
	r := e.start(e.spec.parse(t), "")
	e.eventually("the UE idle with answers in its step and no session", func() bool {
		s, ok := r.d.Monitor().StatsOver("ue-1", time.Now(), 0)
		st := r.status("ue-1")
		return ok && s.Samples >= 5 && s.Lost == 0 && st.State == policy.StateIdle && !st.HasSession && len(e.live()) == 0
	})
	before := e.tally().posts
	wentBad := time.Now()
	e.ue(1).slow(10 * time.Second) // every probe from now on is lost at its timeout
	e.eventually("a POST /sessions", func() bool { return e.tally().posts > before })
	lag := e.tally().postTimes[before].Sub(wentBad)
	// The first probe sent after wentBad is lost by interval + timeout; the
	// old reading could not hold before the quick answers left the step.
	want := interval + timeout + hold + slack
	t.Logf("POST %v after the UE went bad (want ≤ %v; waiting for the step to empty of answers takes ≥ %v)", lag, want, step+hold)
	if lag > want {
		t.Errorf("POST %v after the UE went bad, want ≤ %v: the lost probes did not start `for`", lag, want)
	}
}
