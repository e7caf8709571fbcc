package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The property test runs the engine against a simulated network over random
// metric series, with random, delayed API answers (failures, lost answers
// whose session exists anyway, network terminations, expiries, reloads),
// and checks after every step:
//   - never two sessions for one UE in the network;
//   - never more sessions than max_sessions, globally and per group;
//   - never more session time charged or used per UTC day than the budget;
//   - never a Release while the breach condition holds;
//   - no flapping: within one breach episode, a second Request only after
//     something outside the engine interrupted the first (a failure, a lost
//     answer, a termination or expiry, a reload).

type simSession struct {
	id      string
	created time.Time
	expires time.Time
	known   bool // the engine was told of it (false: lost answer)
	day     int64
}

type simUE struct {
	name     string
	groups   []string
	rule     *Rule
	specs    []RuleSpec
	class    int // 0 good, 1 band, 2 bad, 3 no data
	net      *simSession
	breach   bool // last known state of the breach condition
	requests int  // Requests in this episode
	broken   bool // interrupted since the last Request
}

type sim struct {
	t       testing.TB
	rng     *rand.Rand
	e       *Engine
	g       Guards
	now     time.Time
	ues     []*simUE
	byName  map[string]*simUE
	later   []delayed
	nextID  int
	used    map[int64]time.Duration // actual session time per UTC day of creation
	missing MissingData
	stats   struct{ requests, episodes, releases, renewals, escalations int }
}

type delayed struct {
	at time.Time
	do func()
}

var simSpecs = []RuleSpec{
	{
		Breach:   CondSpec{Any: []string{"latency_p95 > 80ms", "loss > 2%"}, For: "10s"},
		Recover:  CondSpec{All: []string{"latency_p95 < 50ms", "loss < 0.5%"}, For: "20s"},
		QoS:      "QOS_E",
		Duration: "90s",
	},
	{
		Breach:   CondSpec{All: []string{"latency_p95 > 80ms", "jitter > 30ms"}, For: "5s"},
		Recover:  CondSpec{Any: []string{"latency_p95 <= 80ms"}, For: "15s"},
		QoS:      "QOS_E",
		Duration: "2m",
	},
	{
		Breach:   CondSpec{Any: []string{"throughput < 5Mbps"}, For: "8s"},
		Recover:  CondSpec{All: []string{"throughput > 8Mbps"}, For: "20s"},
		QoS:      "QOS_S",
		Escalate: &EscalateSpec{To: "QOS_L", After: "40s"},
		Duration: "3m",
	},
	{
		Breach:   CondSpec{Any: []string{"prom.app_bitrate < 3e6"}, For: "6s"},
		Recover:  CondSpec{Any: []string{"prom.app_bitrate > 4e6"}, For: "12s"},
		QoS:      "QOS_M",
		Escalate: &EscalateSpec{To: "QOS_L", After: "30s"},
		Duration: "60s",
	},
}

func newSim(t testing.TB, seed uint64, knobs uint8) *sim {
	s := &sim{
		t:      t,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		byName: map[string]*simUE{},
		used:   map[int64]time.Duration{},
		// Start an hour before midnight so budget days roll over.
		now: time.Date(2026, 5, 1, 23, 0, 0, 0, time.UTC).Add(time.Duration(seed%3600) * time.Second),
	}
	s.missing = MissingHold
	if knobs&1 != 0 {
		s.missing = MissingBreach
	}
	s.g = Guards{
		MaxSessions:         2 + int(knobs>>1&3),
		MaxSessionsPerGroup: map[string]int{"even": 1 + int(knobs>>3&1)},
		MinSession:          time.Duration(knobs>>4&3) * 15 * time.Second,
		Cooldown:            time.Duration(knobs>>6&3) * 20 * time.Second,
		DailyBudget:         30 * time.Minute,
		RenewBefore:         20 * time.Second,
		OnMissingData:       s.missing,
	}
	s.e = NewEngine(s.g)
	for i := range 8 {
		u := &simUE{name: fmt.Sprint("ue", i), specs: simSpecs}
		if i%2 == 0 {
			u.groups = []string{"even"}
		}
		spec := simSpecs[s.rng.IntN(len(simSpecs))]
		u.rule = mustRule(t, fmt.Sprint("rule", i), spec)
		if err := s.e.SetUE(u.name, u.rule, u.groups...); err != nil {
			t.Fatal(err)
		}
		s.ues = append(s.ues, u)
		s.byName[u.name] = u
	}
	return s
}

func (s *sim) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("at %s: %s", s.now.Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

func (s *sim) must(err error) {
	s.t.Helper()
	if err != nil {
		s.fail("%v", err)
	}
}

// observe draws the UE's metrics from its class, which moves as a sticky
// Markov chain so breaches come in episodes of varying length.
func (s *sim) observe(u *simUE) Observation {
	if s.rng.IntN(100) < 4 {
		u.class = s.rng.IntN(4)
		if u.class == 3 && s.rng.IntN(2) == 0 {
			u.class = 2
		}
	}
	j := func(lo, hi float64) float64 { return lo + s.rng.Float64()*(hi-lo) }
	ms := func(lo, hi float64) time.Duration { return time.Duration(j(lo, hi) * float64(time.Millisecond)) }
	var o Observation
	switch u.class {
	case 0: // good
		o.Latency = LatencyStats{Samples: 10, P95: ms(5, 45), Jitter: ms(0, 10), Loss: j(0, 0.004)}
		o.Throughput = ThroughputStats{Samples: 1, BytesPerSecond: j(9, 20) * 1e6 / 8}
		o.Prom = map[string]PromSample{"app_bitrate": {Value: j(4.1e6, 9e6)}}
	case 1: // between breach and recovery
		o.Latency = LatencyStats{Samples: 10, P95: ms(50, 80), Jitter: ms(0, 40), Loss: j(0.005, 0.02)}
		o.Throughput = ThroughputStats{Samples: 1, BytesPerSecond: j(5, 8) * 1e6 / 8}
		o.Prom = map[string]PromSample{"app_bitrate": {Value: j(3e6, 4e6)}}
	case 2: // bad
		o.Latency = LatencyStats{Samples: 10, P95: ms(81, 400), Jitter: ms(31, 100), Loss: j(0.021, 0.3)}
		o.Throughput = ThroughputStats{Samples: 1, BytesPerSecond: j(0.1, 4.9) * 1e6 / 8}
		o.Prom = map[string]PromSample{"app_bitrate": {Value: j(0, 2.9e6)}}
	}
	// Now and then one source drops out alone.
	if s.rng.IntN(50) == 0 {
		o.Throughput = ThroughputStats{}
	}
	return o
}

func (s *sim) step(dt time.Duration) {
	s.now = s.now.Add(dt)
	// The network: sessions run out; some are terminated.
	for _, u := range s.ues {
		if n := u.net; n != nil && !n.expires.After(s.now) {
			s.endNet(u)
			if n.known {
				u.broken = true
				if s.rng.IntN(2) == 0 {
					id := n.id
					s.must(s.e.Ended(s.now, u.name, id, EndExpired))
				}
			}
		} else if n != nil && n.known && s.rng.IntN(1000) == 0 {
			s.endNet(u)
			u.broken = true
			id := n.id
			s.after(s.rng.IntN(3), func() { s.must(s.e.Ended(s.now, u.name, id, EndTerminated)) })
		}
	}
	// Answers of the API that are due.
	due := s.later
	s.later = nil
	for _, d := range due {
		if d.at.After(s.now) {
			s.later = append(s.later, d)
		} else {
			d.do()
		}
	}
	// A reload now and then changes a UE's rule.
	if s.rng.IntN(400) == 0 {
		u := s.ues[s.rng.IntN(len(s.ues))]
		u.rule = mustRule(s.t, u.rule.Name+"'", simSpecs[s.rng.IntN(len(simSpecs))])
		s.must(s.e.SetUE(u.name, u.rule, u.groups...))
		u.broken = true
	}

	obs := make(map[string]Observation, len(s.ues))
	for _, u := range s.ues {
		o := withSpans(s.observe(u))
		obs[u.name] = o
		if b := s.breachOf(u, &o); b != triUnknown {
			if b == triTrue && !u.breach {
				u.requests, u.broken = 0, false
				s.stats.episodes++
			}
			u.breach = b == triTrue
		}
	}
	for _, d := range s.e.Tick(s.now, func(ue string) Observation { return obs[ue] }, nil) {
		u := s.byName[d.UE]
		o := obs[d.UE]
		s.check(u, d, &o)
		s.answer(u, d)
	}
	s.invariants()
	// Due times: the heap is intact, and every UE just evaluated is due
	// later (or now, if an API answer just came).
	checkDueHeap(s.t, s.e)
	for _, u := range s.e.list {
		if !u.due.IsZero() && u.due.Before(s.now) {
			s.fail("%s: due at %v, before the tick that evaluated it", u.name, u.due)
		}
	}
}

// breachOf is the breach condition of u's rule as the engine reads it.
func (s *sim) breachOf(u *simUE, o *Observation) tri {
	b := u.rule.breach.eval(o, s.g.StaleAfter)
	if b == triUnknown && s.missing == MissingBreach {
		b = triTrue
	}
	return b
}

func (s *sim) check(u *simUE, d Decision, o *Observation) {
	switch d.Kind {
	case Request:
		s.stats.requests++
		if u.requests > 0 && !u.broken {
			s.fail("%s: second request in one breach episode with nothing interrupting the first (flapping): %s", u.name, d)
		}
		u.requests++
		u.broken = false
		if s.breachOf(u, o) != triTrue {
			s.fail("%s: request without a breach: %s", u.name, d)
		}
	case Release:
		s.stats.releases++
		if b := s.breachOf(u, o); b != triFalse {
			s.fail("%s: release while the breach condition is %v: %s", u.name, b, d)
		}
	case Renew:
		s.stats.renewals++
	case Escalate:
		s.stats.escalations++
	}
}

func (s *sim) after(ticks int, f func()) {
	if ticks == 0 {
		f()
		return
	}
	s.later = append(s.later, delayed{at: s.now.Add(time.Duration(ticks) * time.Second), do: f})
}

// create opens a session in the network, refusing a second one for a UE.
func (s *sim) create(u *simUE, d Decision, known bool) Session {
	if u.net != nil {
		s.fail("%s: a second session in the network: %s while %s (known %v) lives", u.name, d, u.net.id, u.net.known)
	}
	s.nextID++
	n := &simSession{id: fmt.Sprint("s", s.nextID), created: s.now, expires: s.now.Add(d.Duration), known: known, day: dayOf(s.now)}
	u.net = n
	return Session{ID: n.id, QoS: d.QoS, ExpiresAt: n.expires}
}

func (s *sim) endNet(u *simUE) {
	n := u.net
	u.net = nil
	end := s.now
	if n.expires.Before(end) {
		end = n.expires
	}
	s.used[n.day] += end.Sub(n.created)
}

var errSim = errors.New("simulated failure")

// answer plays the API: after 0..2 ticks it does what d asks, or fails.
func (s *sim) answer(u *simUE, d Decision) {
	r := s.rng.IntN(100)
	s.after(s.rng.IntN(3), func() {
		switch d.Kind {
		case Request:
			switch {
			case r < 70:
				s.must(s.e.Opened(s.now, u.name, s.create(u, d, true)))
			case r < 80:
				u.broken = true
				s.must(s.e.Failed(s.now, u.name, Failure{Err: errSim, Retryable: true}))
			case r < 85:
				u.broken = true
				s.must(s.e.Failed(s.now, u.name, Failure{Err: errSim}))
			case r < 95: // lost answer; the session exists
				u.broken = true
				s.create(u, d, false)
				s.must(s.e.Failed(s.now, u.name, Failure{Err: errSim, Uncertain: true}))
			default: // lost answer; no session
				u.broken = true
				s.must(s.e.Failed(s.now, u.name, Failure{Err: errSim, Uncertain: true}))
			}
		case Renew, Escalate:
			if r < 30 && u.net != nil && u.net.id == d.SessionID {
				// Extend (CAMARA v1): same session, new expiry.
				s.endNet(u)
				sess := s.create(u, d, true)
				u.net.id = d.SessionID
				sess.ID = d.SessionID
				s.must(s.e.Opened(s.now, u.name, sess))
				return
			}
			// DevEdge: end the old one, then open the new one.
			if u.net != nil && u.net.id == d.SessionID {
				s.endNet(u)
			}
			s.must(s.e.Ended(s.now, u.name, d.SessionID, EndReleased))
			switch {
			case r < 85:
				s.must(s.e.Opened(s.now, u.name, s.create(u, d, true)))
			case r < 95:
				u.broken = true
				s.must(s.e.Failed(s.now, u.name, Failure{Err: errSim, Retryable: true}))
			default:
				u.broken = true
				s.create(u, d, false)
				s.must(s.e.Failed(s.now, u.name, Failure{Err: errSim, Uncertain: true}))
			}
		case Release:
			if r < 85 {
				if u.net != nil && u.net.id == d.SessionID {
					s.endNet(u)
				}
				s.must(s.e.Ended(s.now, u.name, d.SessionID, EndReleased))
				return
			}
			s.must(s.e.Failed(s.now, u.name, Failure{Err: errSim, Retryable: true}))
		}
	})
}

func (s *sim) invariants() {
	total, groups := 0, map[string]int{}
	for _, u := range s.ues {
		if u.net == nil {
			continue
		}
		total++
		for _, g := range u.groups {
			groups[g]++
		}
	}
	if total > s.g.MaxSessions {
		s.fail("%d sessions in the network, max_sessions %d", total, s.g.MaxSessions)
	}
	for g, n := range groups {
		if lim := s.g.MaxSessionsPerGroup[g]; lim > 0 && n > lim {
			s.fail("%d sessions in group %s, limit %d", n, g, lim)
		}
	}
	if u := s.e.Usage(s.now); u.Sessions > s.g.MaxSessions || u.BudgetUsed > s.g.DailyBudget || u.BudgetUsed < 0 {
		s.fail("engine usage %+v beyond the guards", u)
	}
	for day, used := range s.used {
		if used > s.g.DailyBudget {
			s.fail("day %d: %s of session time, budget %s", day, used, s.g.DailyBudget)
		}
	}
}

func runSim(t testing.TB, seed uint64, knobs uint8, ticks int) *sim {
	s := newSim(t, seed, knobs)
	for range ticks {
		s.step(time.Second)
	}
	for _, u := range s.ues {
		if u.net != nil {
			s.endNet(u)
		}
	}
	s.invariants()
	return s
}

func TestProperties(t *testing.T) {
	var total struct{ requests, episodes, releases, renewals, escalations int }
	for seed := range uint64(12) {
		s := runSim(t, seed, uint8(seed*37), 2*3600)
		total.requests += s.stats.requests
		total.episodes += s.stats.episodes
		total.releases += s.stats.releases
		total.renewals += s.stats.renewals
		total.escalations += s.stats.escalations
	}
	t.Logf("%+v", total)
	// The test must exercise what it checks.
	if total.requests < 100 || total.releases < 50 || total.renewals < 50 || total.escalations < 10 {
		t.Errorf("the simulation hardly ran the engine: %+v", total)
	}
}

func FuzzEngine(f *testing.F) {
	for _, seed := range []uint64{1, 7, 42, 1 << 40} {
		f.Add(seed, uint8(seed))
	}
	f.Fuzz(func(t *testing.T, seed uint64, knobs uint8) {
		runSim(t, seed, knobs, 1800)
	})
}
