package policy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// Observations against lowLatency: breach above 80ms p95 or 2% loss,
// recovery below 50ms and 0.5%; "band" is neither.
var (
	obsGood = Observation{Latency: LatencyStats{Samples: 10, P95: 30 * time.Millisecond}}
	obsBad  = Observation{Latency: LatencyStats{Samples: 10, P95: 112 * time.Millisecond}}
	obsBand = Observation{Latency: LatencyStats{Samples: 10, P95: 65 * time.Millisecond}}
	obsNone = Observation{}
	obsLost = Observation{Latency: LatencyStats{Samples: 10, Loss: 1}}
)

// withSpans gives loss conditions, which read the span of their `for`, the
// latency figures of o, reaching back no further than now: the tests of the
// engine's clocks count `for` on these as on step figures.
func withSpans(o Observation) Observation {
	if o.BreachSpan.Samples == 0 && o.RecoverSpan.Samples == 0 {
		o.BreachSpan, o.RecoverSpan = o.Latency, o.Latency
		o.BreachSpan.Covered, o.RecoverSpan.Covered = 0, 0
	}
	return o
}

func tput(mbps float64) Observation {
	return Observation{Throughput: ThroughputStats{Samples: 1, BytesPerSecond: mbps * 1e6 / 8}}
}

// phase is one stretch of a metric series: obs until the offset `until`.
type phase struct {
	until time.Duration
	obs   Observation
}

func series(ps ...phase) func(time.Duration) Observation {
	return func(at time.Duration) Observation {
		for _, p := range ps {
			if at < p.until {
				return p.obs
			}
		}
		return ps[len(ps)-1].obs
	}
}

// harness drives an engine with a fake clock, one tick a second, and a fake
// API that answers each decision.
type harness struct {
	t     *testing.T
	e     *Engine
	start time.Time // offsets in the log are from here
	now   time.Time
	next  int // session ids
	log   []string
	// api answers a decision; nil answers every one with success at once.
	api func(h *harness, d Decision)
}

func newHarness(t *testing.T, g Guards) *harness {
	return &harness{t: t, e: NewEngine(g), start: t0, now: t0}
}

func (h *harness) at() time.Duration { return h.now.Sub(h.start) }

func (h *harness) ue(name string, spec RuleSpec, groups ...string) {
	h.t.Helper()
	if err := h.e.SetUE(name, mustRule(h.t, "r-"+name, spec), groups...); err != nil {
		h.t.Fatal(err)
	}
}

// succeed is the API that does everything asked at once.
func succeed(h *harness, d Decision) {
	switch d.Kind {
	case Release:
		h.must(h.e.Ended(h.now, d.UE, d.SessionID, EndReleased))
	default:
		h.open(d)
	}
}

func (h *harness) open(d Decision) {
	h.next++
	h.must(h.e.Opened(h.now, d.UE, Session{ID: fmt.Sprint("s", h.next), QoS: d.QoS, ExpiresAt: h.now.Add(d.Duration)}))
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("at %s: %v", h.at(), err)
	}
}

// run ticks every second from the current time to `until` (offset from t0).
func (h *harness) run(until time.Duration, obs func(ue string, at time.Duration) Observation) {
	for ; h.at() <= until; h.now = h.now.Add(time.Second) {
		ds := h.e.Tick(h.now, func(ue string) Observation { return withSpans(obs(ue, h.at())) }, nil)
		for _, d := range ds {
			h.log = append(h.log, fmt.Sprintf("%s %s %s %s", h.at(), d.UE, d.Kind, d.QoS))
			api := h.api
			if api == nil {
				api = succeed
			}
			api(h, d)
		}
	}
}

func one(f func(time.Duration) Observation) func(string, time.Duration) Observation {
	return func(_ string, at time.Duration) Observation { return f(at) }
}

func defaultGuards() Guards {
	return Guards{MinSession: time.Minute, Cooldown: 5 * time.Minute, RenewBefore: time.Minute, OnMissingData: MissingHold}
}

// TestRuleFeatures runs one UE through metric series, one feature a case,
// and compares the decisions made, second by second.
func TestRuleFeatures(t *testing.T) {
	withRule := func(edit func(*RuleSpec)) RuleSpec {
		s := lowLatency()
		edit(&s)
		return s
	}
	for _, tc := range []struct {
		name   string
		spec   RuleSpec
		guards func(*Guards)
		obs    func(time.Duration) Observation
		until  time.Duration
		want   []string
	}{
		{
			name: "breach held for its for, then recovery held for its for",
			obs:  series(phase{60 * time.Second, obsBad}, phase{0, obsGood}),
			// breach from 0s: 20s held at 20s; good from 60s: 60s held at 120s.
			until: 200 * time.Second,
			want:  []string{"20s cam request QOS_E", "2m0s cam release QOS_E"},
		},
		{
			name:  "breach shorter than for buys nothing",
			obs:   series(phase{19 * time.Second, obsBad}, phase{0, obsGood}),
			until: 100 * time.Second,
			want:  nil,
		},
		{
			name: "a dip into the band restarts the breach clock",
			obs:  series(phase{15 * time.Second, obsBad}, phase{16 * time.Second, obsBand}, phase{0, obsBad}),
			// second breach from 16s: 20s held at 36s.
			until: 60 * time.Second,
			want:  []string{"36s cam request QOS_E"},
		},
		{
			name:  "loss alone breaches (any)",
			obs:   series(phase{0, Observation{Latency: LatencyStats{Samples: 10, P95: 10 * time.Millisecond, Loss: 0.05}}}),
			until: 30 * time.Second,
			want:  []string{"20s cam request QOS_E"},
		},
		{
			name: "every probe lost counts as latency +Inf",
			spec: withRule(func(s *RuleSpec) {
				s.Breach.Any = []string{"latency_p95 > 80ms"}
				s.Recover.All = []string{"latency_p95 < 50ms"}
			}),
			obs:   series(phase{0, obsLost}),
			until: 30 * time.Second,
			want:  []string{"20s cam request QOS_E"},
		},
		{
			name: "all needs every condition",
			spec: withRule(func(s *RuleSpec) {
				s.Breach = CondSpec{All: []string{"latency_p95 > 80ms", "loss > 2%"}, For: "20s"}
				s.Recover = CondSpec{Any: []string{"latency_p95 < 50ms", "loss < 0.5%"}, For: "60s"}
			}),
			obs: series(phase{30 * time.Second, obsBad},
				phase{0, Observation{Latency: LatencyStats{Samples: 10, P95: 112 * time.Millisecond, Loss: 0.05}}}),
			until: 60 * time.Second,
			want:  []string{"50s cam request QOS_E"},
		},
		{
			name: "a relapse during recovery restarts the recovery clock",
			obs: series(phase{30 * time.Second, obsBad}, phase{70 * time.Second, obsGood},
				phase{71 * time.Second, obsBand}, phase{0, obsGood}),
			// recovery from 71s: 60s held at 131s.
			until: 200 * time.Second,
			want:  []string{"20s cam request QOS_E", "2m11s cam release QOS_E"},
		},
		{
			name:   "min_session keeps a session the UE no longer needs",
			guards: func(g *Guards) { g.MinSession = 5 * time.Minute },
			obs:    series(phase{25 * time.Second, obsBad}, phase{0, obsGood}),
			// opened at 20s; recovered at 85s; min_session ends at 5m20s.
			until: 400 * time.Second,
			want:  []string{"20s cam request QOS_E", "5m20s cam release QOS_E"},
		},
		{
			name: "cooldown after a release delays the next session",
			obs: series(phase{25 * time.Second, obsBad}, phase{90 * time.Second, obsGood},
				phase{0, obsBad}),
			// released at 85s → cooldown until 6m25s; breach from 90s held long before.
			until: 400 * time.Second,
			want:  []string{"20s cam request QOS_E", "1m25s cam release QOS_E", "6m25s cam request QOS_E"},
		},
		{
			name:   "renewal before expiry while the breach goes on",
			spec:   withRule(func(s *RuleSpec) { s.Duration = "2m" }),
			guards: func(g *Guards) { g.RenewBefore = 30 * time.Second },
			obs:    series(phase{0, obsBad}),
			// opened 20s, expires 2m20s → renew at 1m50s; then every 90s.
			until: 250 * time.Second,
			want:  []string{"20s cam request QOS_E", "1m50s cam renew QOS_E", "3m20s cam renew QOS_E"},
		},
		{
			name:   "renewal in the band: not recovered is not released",
			spec:   withRule(func(s *RuleSpec) { s.Duration = "2m" }),
			guards: func(g *Guards) { g.RenewBefore = 30 * time.Second },
			obs:    series(phase{25 * time.Second, obsBad}, phase{0, obsBand}),
			until:  120 * time.Second,
			want:   []string{"20s cam request QOS_E", "1m50s cam renew QOS_E"},
		},
		{
			name: "no renewal while recovering: the session runs out",
			spec: withRule(func(s *RuleSpec) { s.Duration = "2m"; s.Recover.For = "5m" }),
			obs:  series(phase{25 * time.Second, obsBad}, phase{0, obsGood}),
			// expires at 2m20s, cooldown, no breach: nothing more.
			until: 600 * time.Second,
			want:  []string{"20s cam request QOS_E"},
		},
		{
			name:   "renew_before is capped at half a short session",
			spec:   withRule(func(s *RuleSpec) { s.Duration = "60s" }),
			guards: func(g *Guards) { g.RenewBefore = 5 * time.Minute },
			obs:    series(phase{0, obsBad}),
			until:  90 * time.Second,
			want:   []string{"20s cam request QOS_E", "50s cam renew QOS_E", "1m20s cam renew QOS_E"},
		},
		{
			name: "escalation after the breach goes on with a session active",
			spec: videoUplink(),
			obs:  series(phase{0, tput(3)}),
			// opened 15s; breach with session held 3m at 3m15s.
			until: 300 * time.Second,
			want:  []string{"15s cam request QOS_M", "3m15s cam escalate QOS_L"},
		},
		{
			name: "escalated sessions renew at the escalated profile, then release",
			spec: func() RuleSpec { s := videoUplink(); s.Duration = "5m"; return s }(),
			obs:  series(phase{400 * time.Second, tput(3)}, phase{0, tput(9)}),
			// escalated 3m15s, expires 8m15s → renew 7m15s (band/breach? good from 6m40s: recovering → no renew);
			// recovered at 7m40s.
			until: 600 * time.Second,
			want:  []string{"15s cam request QOS_M", "3m15s cam escalate QOS_L", "7m40s cam release QOS_L"},
		},
		{
			name: "a breach interrupted by the band restarts the escalation clock",
			spec: videoUplink(),
			obs:  series(phase{100 * time.Second, tput(3)}, phase{101 * time.Second, tput(6)}, phase{0, tput(3)}),
			// breach again from 101s: escalation at 4m41s.
			until: 300 * time.Second,
			want:  []string{"15s cam request QOS_M", "4m41s cam escalate QOS_L"},
		},
		{
			name: "missing data holds: the breach clock pauses",
			obs:  series(phase{10 * time.Second, obsBad}, phase{40 * time.Second, obsNone}, phase{0, obsBad}),
			// 10s of breach before the gap, 10 more after: 50s.
			until: 60 * time.Second,
			want:  []string{"50s cam request QOS_E"},
		},
		{
			name: "missing data holds a session: no release, no renewal",
			spec: withRule(func(s *RuleSpec) { s.Duration = "2m" }),
			obs:  series(phase{25 * time.Second, obsBad}, phase{0, obsNone}),
			// expires at 2m20s and is not renewed.
			until: 400 * time.Second,
			want:  []string{"20s cam request QOS_E"},
		},
		{
			name:  "missing data as breach (rule setting)",
			spec:  withRule(func(s *RuleSpec) { s.OnMissingData = "breach" }),
			obs:   series(phase{0, obsNone}),
			until: 30 * time.Second,
			want:  []string{"20s cam request QOS_E"},
		},
		{
			name:   "missing data as breach (guards default) never recovers",
			guards: func(g *Guards) { g.OnMissingData = MissingBreach },
			obs:    series(phase{30 * time.Second, obsBad}, phase{0, obsNone}),
			until:  200 * time.Second,
			want:   []string{"20s cam request QOS_E"},
		},
		{
			name:   "stale data is missing data",
			guards: func(g *Guards) { g.StaleAfter = time.Minute },
			obs:    series(phase{0, Observation{Latency: LatencyStats{Samples: 10, Age: 2 * time.Minute, P95: 200 * time.Millisecond}}}),
			until:  60 * time.Second,
			want:   nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := defaultGuards()
			if tc.guards != nil {
				tc.guards(&g)
			}
			spec := tc.spec
			if spec.QoS == "" {
				spec = lowLatency()
			}
			h := newHarness(t, g)
			h.ue("cam", spec)
			h.run(tc.until, one(tc.obs))
			if !reflect.DeepEqual(h.log, tc.want) {
				t.Errorf("decisions\n  %q\nwant\n  %q", h.log, tc.want)
			}
		})
	}
}

// TestGuards covers the limits shared by UEs and the API's answers.
func TestGuards(t *testing.T) {
	bad := func(string, time.Duration) Observation { return obsBad }
	t.Run("max_sessions: the second UE waits for the first to release", func(t *testing.T) {
		g := defaultGuards()
		g.MaxSessions = 1
		h := newHarness(t, g)
		h.ue("a", lowLatency())
		h.ue("b", lowLatency())
		h.run(100*time.Second, func(ue string, at time.Duration) Observation {
			if ue == "a" && at >= 30*time.Second {
				return obsGood
			}
			return obsBad
		})
		want := []string{"20s a request QOS_E", "1m30s a release QOS_E", "1m31s b request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
		if s, _ := h.e.Status("b"); s.State != StateActive {
			t.Errorf("b is %s", s.State)
		}
	})
	t.Run("max_sessions_per_group", func(t *testing.T) {
		g := defaultGuards()
		g.MaxSessions = 10
		g.MaxSessionsPerGroup = map[string]int{"pier-3": 1}
		h := newHarness(t, g)
		h.ue("a", lowLatency(), "pier-3", "cams")
		h.ue("b", lowLatency(), "pier-3")
		h.ue("c", lowLatency(), "cams")
		h.run(30*time.Second, bad)
		want := []string{"20s a request QOS_E", "20s c request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
		s, _ := h.e.Status("b")
		if s.State != StatePending || s.Waiting != "max_sessions_per_group pier-3: 1 reached" {
			t.Errorf("b: %s, %q", s.State, s.Waiting)
		}
		u := h.e.Usage(h.now)
		if u.Sessions != 2 || u.PerGroup["pier-3"] != 1 || u.PerGroup["cams"] != 2 {
			t.Errorf("usage %+v", u)
		}
	})
	t.Run("daily_budget: reserved, refunded, reset at UTC midnight", func(t *testing.T) {
		g := defaultGuards()
		g.DailyBudget = 15 * time.Minute
		h := newHarness(t, g)
		h.now = time.Date(2026, 3, 1, 23, 50, 0, 0, time.UTC)
		h.start = h.now
		start := h.now
		h.ue("a", lowLatency()) // 10m sessions
		h.ue("b", lowLatency())
		h.run(h.at()+30*time.Second, bad)
		if want := []string{"20s a request QOS_E"}; !reflect.DeepEqual(h.log, want) {
			t.Fatalf("decisions %q, want %q", h.log, want)
		}
		if s, _ := h.e.Status("b"); s.Waiting != "daily_budget: 10m0s of 15m0s used, a session needs 10m0s" {
			t.Errorf("b waits for %q", s.Waiting)
		}
		// a is released 2m after it opened: 8m refunded.
		h.now = start.Add(140 * time.Second)
		h.must(h.e.Ended(h.now, "a", "s1", EndTerminated))
		if u := h.e.Usage(h.now); u.BudgetUsed != 2*time.Minute {
			t.Errorf("budget used after refund %s, want 2m", u.BudgetUsed)
		}
		h.log = nil
		h.run(h.at()+10*time.Second, bad)
		if want := []string{"2m20s b request QOS_E"}; !reflect.DeepEqual(h.log, want) {
			t.Fatalf("after refund: %q, want %q", h.log, want)
		}
		// Midnight: the budget starts again at zero; time already charged
		// stays with the day it was charged on.
		u := h.e.Usage(time.Date(2026, 3, 2, 0, 0, 1, 0, time.UTC))
		if u.BudgetUsed != 0 || !u.BudgetDay.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("after midnight %+v", u)
		}
	})
	t.Run("daily_budget blocks a renewal; the session runs out", func(t *testing.T) {
		g := defaultGuards()
		g.DailyBudget = 15 * time.Minute
		h := newHarness(t, g)
		h.ue("a", lowLatency())
		h.run(11*time.Minute, bad)
		want := []string{"20s a request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
		if s, _ := h.e.Status("a"); s.HasSession || s.State != StateCooldown {
			t.Errorf("a: %+v", s)
		}
	})
	t.Run("open failed, retryable: engine backoff, then RetryAfter", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		fails := 2
		h.api = func(h *harness, d Decision) {
			if fails > 0 {
				fails--
				after := time.Duration(0)
				if fails == 0 {
					after = 7 * time.Second
				}
				h.must(h.e.Failed(h.now, d.UE, Failure{Err: errors.New("503"), Retryable: true, RetryAfter: after}))
				return
			}
			succeed(h, d)
		}
		h.run(60*time.Second, bad)
		want := []string{"20s a request QOS_E", "30s a request QOS_E", "37s a request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("open failed for good: no retry until the breach ends", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.api = func(h *harness, d Decision) {
			if h.at() < time.Minute {
				h.must(h.e.Failed(h.now, d.UE, Failure{Err: errors.New("400 INVALID_ARGUMENT")}))
				return
			}
			succeed(h, d)
		}
		h.run(120*time.Second, one(series(phase{90 * time.Second, obsBad}, phase{91 * time.Second, obsGood}, phase{0, obsBad})))
		want := []string{"20s a request QOS_E", "1m51s a request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("lost answer: possibly holds a session for its duration", func(t *testing.T) {
		g := defaultGuards()
		g.MaxSessions = 1
		h := newHarness(t, g)
		h.ue("a", lowLatency())
		h.api = func(h *harness, d Decision) {
			if d.Kind == Request && h.at() < time.Minute {
				h.must(h.e.Failed(h.now, d.UE, Failure{Err: errors.New("timeout"), Uncertain: true}))
				return
			}
			succeed(h, d)
		}
		h.run(700*time.Second, bad)
		// 10m after 20s the possible session is gone for sure.
		want := []string{"20s a request QOS_E", "10m20s a request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("network ends the session: cooldown, then a new one", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.run(60*time.Second, bad)
		h.must(h.e.Ended(h.now, "a", "s1", EndTerminated))
		if s, _ := h.e.Status("a"); s.State != StateCooldown {
			t.Errorf("state %s after termination", s.State)
		}
		h.run(400*time.Second, bad)
		want := []string{"20s a request QOS_E", "6m1s a request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("renewal the DevEdge way: end reported before the new session", func(t *testing.T) {
		g := defaultGuards()
		h := newHarness(t, g)
		spec := lowLatency()
		spec.Duration = "3m"
		h.ue("a", spec)
		h.api = func(h *harness, d Decision) {
			if d.Kind == Renew {
				h.must(h.e.Ended(h.now, d.UE, d.SessionID, EndReleased))
				if s, _ := h.e.Status("a"); s.State != StateRenewing || h.e.Usage(h.now).Sessions != 1 {
					t.Errorf("between end and open: %s, %d sessions", s.State, h.e.Usage(h.now).Sessions)
				}
			}
			succeed(h, d)
		}
		h.run(200*time.Second, bad)
		want := []string{"20s a request QOS_E", "2m20s a renew QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
		if s, _ := h.e.Status("a"); s.Session.ID != "s2" || s.State != StateActive {
			t.Errorf("after renewal: %+v", s)
		}
		// The late SESSION_TERMINATED for the replaced session is ignored.
		h.must(h.e.Ended(h.now, "a", "s1", EndTerminated))
		if s, _ := h.e.Status("a"); !s.HasSession {
			t.Error("late notice for the old session ended the new one")
		}
	})
	t.Run("an escalated session renewed the DevEdge way stays escalated", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		spec := videoUplink()
		spec.Duration = "5m"
		h.ue("v", spec)
		h.api = func(h *harness, d Decision) {
			if d.Kind != Request && d.Kind != Release {
				h.must(h.e.Ended(h.now, d.UE, d.SessionID, EndReleased))
			}
			succeed(h, d)
		}
		h.run(600*time.Second, func(string, time.Duration) Observation { return tput(3) })
		// escalated at 3m15s for 5m: renewed 4m later at 7m15s, at QOS_L.
		want := []string{"15s v request QOS_M", "3m15s v escalate QOS_L", "7m15s v renew QOS_L"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
		if s, _ := h.e.Status("v"); !s.Escalated || s.Session.QoS != "QOS_L" {
			t.Errorf("status %+v", s)
		}
	})
	t.Run("an escalation refused for good falls back to the rule's profile", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		spec := videoUplink()
		spec.Duration = "5m"
		h.ue("v", spec)
		h.api = func(h *harness, d Decision) {
			if d.Kind == Escalate {
				h.must(h.e.Failed(h.now, d.UE, Failure{Err: errors.New("403 QOS_L not subscribed")}))
				return
			}
			succeed(h, d)
		}
		h.run(600*time.Second, func(string, time.Duration) Observation { return tput(3) })
		want := []string{"15s v request QOS_M", "3m15s v escalate QOS_L", "4m15s v renew QOS_M", "8m15s v renew QOS_M"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("renewal failed: the old session is kept and renewal retried", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		spec := lowLatency()
		spec.Duration = "3m"
		h.ue("a", spec)
		failed := false
		h.api = func(h *harness, d Decision) {
			if d.Kind == Renew && !failed {
				failed = true
				h.must(h.e.Failed(h.now, d.UE, Failure{Err: errors.New("502"), Retryable: true}))
				return
			}
			succeed(h, d)
		}
		h.run(200*time.Second, bad)
		want := []string{"20s a request QOS_E", "2m20s a renew QOS_E", "2m30s a renew QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("release failed is retried", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		failed := false
		h.api = func(h *harness, d Decision) {
			if d.Kind == Release && !failed {
				failed = true
				h.must(h.e.Failed(h.now, d.UE, Failure{Err: errors.New("500"), Retryable: true}))
				return
			}
			succeed(h, d)
		}
		h.run(150*time.Second, one(series(phase{30 * time.Second, obsBad}, phase{0, obsGood})))
		want := []string{"20s a request QOS_E", "1m30s a release QOS_E", "1m40s a release QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
}

func TestAdoptAndPossiblyHolds(t *testing.T) {
	t.Run("adopted session is released after recovery, min_session from its start", func(t *testing.T) {
		g := defaultGuards()
		g.MinSession = 3 * time.Minute
		g.MaxSessions = 1
		h := newHarness(t, g)
		h.ue("a", lowLatency())
		h.ue("b", lowLatency())
		h.must(h.e.Adopt(h.now, "a", Session{ID: "old", QoS: "QOS_E", StartedAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour)}))
		h.run(150*time.Second, func(ue string, _ time.Duration) Observation {
			if ue == "a" {
				return obsGood
			}
			return obsBad
		})
		// a: recovered at 60s, min_session until 2m; b gets the slot after.
		want := []string{"2m0s a release QOS_E", "2m1s b request QOS_E"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("possibly holding: no request until the mark runs out", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.must(h.e.PossiblyHolds(h.now, "a", t0.Add(90*time.Second)))
		if h.e.Usage(h.now).Sessions != 1 {
			t.Error("a possible session is not counted")
		}
		h.run(100*time.Second, func(string, time.Duration) Observation { return obsBad })
		if want := []string{"1m30s a request QOS_E"}; !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("possibly holding: settled by finding the session", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.must(h.e.PossiblyHolds(h.now, "a", t0.Add(time.Hour)))
		h.must(h.e.Opened(h.now, "a", Session{ID: "found", QoS: "QOS_E", ExpiresAt: t0.Add(time.Hour)}))
		s, _ := h.e.Status("a")
		if !s.HasSession || s.State != StateActive || h.e.Usage(h.now).Sessions != 1 {
			t.Errorf("status %+v", s)
		}
	})
	t.Run("a second session for one UE is refused", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.must(h.e.Adopt(h.now, "a", Session{ID: "one", QoS: "QOS_E", ExpiresAt: t0.Add(time.Hour)}))
		err := h.e.Opened(h.now, "a", Session{ID: "two", QoS: "QOS_E", ExpiresAt: t0.Add(time.Hour)})
		if err == nil || !strings.Contains(err.Error(), "second session") {
			t.Errorf("Opened of a second session: %v", err)
		}
		if err := h.e.Adopt(h.now, "a", Session{ID: "two", ExpiresAt: t0.Add(time.Hour)}); err == nil {
			t.Error("Adopt of a second session accepted")
		}
	})
	t.Run("feedback errors", func(t *testing.T) {
		e := NewEngine(defaultGuards())
		if err := e.Opened(t0, "nope", Session{ID: "x", ExpiresAt: t0}); err == nil {
			t.Error("unknown UE accepted")
		}
		if err := e.SetUE("a", mustRule(t, "r", lowLatency())); err != nil {
			t.Fatal(err)
		}
		if err := e.Failed(t0, "a", Failure{}); err == nil {
			t.Error("failure with nothing in flight accepted")
		}
		if err := e.Opened(t0, "a", Session{ID: "x"}); err == nil {
			t.Error("session without expiry accepted")
		}
		if _, err := e.Evaluate(t0, "nope", obsBad); err == nil {
			t.Error("Evaluate of unknown UE accepted")
		}
		if err := e.SetUE("b", nil); err == nil {
			t.Error("SetUE without rule accepted")
		}
	})
}

func TestReloadAndRemove(t *testing.T) {
	t.Run("a changed rule keeps the session; the new qos comes with the renewal", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		spec := lowLatency()
		spec.Duration = "3m"
		h.ue("a", spec)
		h.run(30*time.Second, func(string, time.Duration) Observation { return obsBad })
		spec2 := spec
		spec2.QoS = "QOS_S"
		spec2.Recover.For = "30s"
		h.ue("a", spec2)
		if s, _ := h.e.Status("a"); !s.HasSession || s.State != StateActive || s.Session.ID != "s1" {
			t.Fatalf("after reload %+v", s)
		}
		h.run(200*time.Second, func(string, time.Duration) Observation { return obsBad })
		want := []string{"20s a request QOS_E", "2m20s a renew QOS_S"}
		if !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("an unchanged rule on reload keeps the clocks", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.run(10*time.Second, func(string, time.Duration) Observation { return obsBad })
		h.ue("a", lowLatency()) // recompiled, same behaviour
		h.run(20*time.Second, func(string, time.Duration) Observation { return obsBad })
		if want := []string{"20s a request QOS_E"}; !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("a changed rule restarts the breach clock", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.run(10*time.Second, func(string, time.Duration) Observation { return obsBad })
		spec := lowLatency()
		spec.Breach.For = "15s"
		h.ue("a", spec)
		h.run(30*time.Second, func(string, time.Duration) Observation { return obsBad })
		if want := []string{"26s a request QOS_E"}; !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
	})
	t.Run("groups move with their counts", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency(), "x")
		h.run(30*time.Second, func(string, time.Duration) Observation { return obsBad })
		h.ue("a", lowLatency(), "y")
		if u := h.e.Usage(h.now); u.PerGroup["x"] != 0 || u.PerGroup["y"] != 1 || u.Sessions != 1 {
			t.Errorf("usage %+v", u)
		}
	})
	t.Run("removing a UE releases its session at once", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		h.run(30*time.Second, func(string, time.Duration) Observation { return obsBad })
		d := h.e.RemoveUE(h.now, "a")
		if d.Kind != Release || d.SessionID != "s1" || d.Reason != "ue removed from the config" {
			t.Fatalf("RemoveUE = %+v", d)
		}
		if s, ok := h.e.Status("a"); !ok || !s.Removed {
			t.Fatalf("removed UE with a session in release: %+v %v", s, ok)
		}
		h.must(h.e.Ended(h.now, "a", "s1", EndReleased))
		if _, ok := h.e.Status("a"); ok {
			t.Error("UE still known after its session ended")
		}
		if h.e.Usage(h.now).Sessions != 0 {
			t.Error("removed UE still counted")
		}
		h.run(40*time.Second, func(string, time.Duration) Observation { return obsBad })
		if len(h.e.list) != 0 {
			t.Errorf("list not compacted: %d", len(h.e.list))
		}
	})
	t.Run("removing a UE with a request in flight releases what it gets", func(t *testing.T) {
		h := newHarness(t, defaultGuards())
		h.ue("a", lowLatency())
		var req Decision
		h.api = func(h *harness, d Decision) {
			if d.Kind == Request {
				req = d
				return // answer comes later
			}
			succeed(h, d)
		}
		h.run(25*time.Second, func(string, time.Duration) Observation { return obsBad })
		if d := h.e.RemoveUE(h.now, "a"); d.Kind != None {
			t.Fatalf("RemoveUE with a request in flight = %v", d)
		}
		h.open(req)
		h.run(27*time.Second, func(string, time.Duration) Observation { return obsBad })
		if want := []string{"20s a request QOS_E", "26s a release QOS_E"}; !reflect.DeepEqual(h.log, want) {
			t.Errorf("decisions %q, want %q", h.log, want)
		}
		if _, ok := h.e.Status("a"); ok {
			t.Error("UE still known")
		}
	})
}

// TestReasons checks the decisions carry the measured values, thresholds
// and a reason a person can read.
func TestReasons(t *testing.T) {
	h := newHarness(t, defaultGuards())
	h.ue("a", lowLatency())
	var got []Decision
	h.api = func(h *harness, d Decision) { got = append(got, d); succeed(h, d) }
	h.run(150*time.Second, one(series(phase{60 * time.Second, obsBad}, phase{0, obsGood})))
	if len(got) != 2 {
		t.Fatalf("decisions %v", got)
	}
	req, rel := got[0], got[1]
	if req.Reason != `breach "latency_p95 > 80ms" (latency_p95=112ms) held for 20s` {
		t.Errorf("request reason %q", req.Reason)
	}
	want := []Cause{{Condition: "latency_p95 > 80ms", Metric: "latency_p95", Value: 0.112, Threshold: 0.08}}
	if !reflect.DeepEqual(req.Causes, want) || req.Rule != "r-a" || req.QoS != "QOS_E" || req.Duration != 10*time.Minute || !req.At.Equal(t0.Add(20*time.Second)) {
		t.Errorf("request %+v", req)
	}
	if rel.Reason != `recover all of "latency_p95 < 50ms" (latency_p95=30ms), "loss < 0.5%" (loss=0%) held for 1m0s; session held 1m40s` {
		t.Errorf("release reason %q", rel.Reason)
	}
	if rel.SessionID != "s1" || len(rel.Causes) != 2 {
		t.Errorf("release %+v", rel)
	}
	if s, _ := h.e.Status("a"); s.Last.Kind != Release || s.State != StateCooldown || !strings.HasPrefix(s.Waiting, "cooldown until 2026-03-01T10:07:00Z") {
		t.Errorf("status %+v", s)
	}

	v := newHarness(t, defaultGuards())
	v.ue("v", videoUplink())
	got = nil
	v.api = func(h *harness, d Decision) { got = append(got, d); succeed(h, d) }
	v.run(200*time.Second, one(series(phase{0, tput(3.2)})))
	if len(got) != 2 || got[1].Reason != `escalate QOS_M to QOS_L: breach "throughput < 5Mbps" (throughput=3.2Mbps) held for 3m0s with a session active` {
		t.Errorf("escalation %v", got)
	}
	if got[0].Causes[0].Value != 400000 || got[0].Causes[0].Threshold != 625000 {
		t.Errorf("throughput cause in bytes/s: %+v", got[0].Causes[0])
	}
	if s := got[1].String(); s != "escalate s1 of v to QOS_L for 30m0s: "+got[1].Reason {
		t.Errorf("String() = %q", s)
	}
}

func TestStatusWaiting(t *testing.T) {
	h := newHarness(t, defaultGuards())
	h.ue("a", lowLatency(), "g")
	h.run(5*time.Second, func(string, time.Duration) Observation { return obsBad })
	s, _ := h.e.Status("a")
	if s.State != StatePending || s.Waiting != "breach held 5s of 20s" || !reflect.DeepEqual(s.Groups, []string{"g"}) {
		t.Errorf("status %+v", s)
	}
	h.run(30*time.Second, func(string, time.Duration) Observation { return obsBand })
	s, _ = h.e.Status("a")
	if s.State != StateIdle || s.Waiting != "" {
		t.Errorf("status %+v", s)
	}
	if got := h.e.Statuses(nil); len(got) != 1 || got[0].UE != "a" {
		t.Errorf("Statuses = %+v", got)
	}
	names := map[string]bool{}
	for _, st := range States() {
		names[st.String()] = true
	}
	if len(names) != 11 || names["state(11)"] {
		t.Errorf("state names %v", names)
	}
}

// TestBriefsAreStatusesInBrief: Briefs lists the UEs Statuses lists, in
// its order, with the same rule, state, session and removal.
func TestBriefsAreStatusesInBrief(t *testing.T) {
	h := newHarness(t, defaultGuards())
	for _, name := range []string{"c", "a", "b", "d"} {
		h.ue(name, lowLatency())
	}
	h.run(time.Minute, func(ue string, _ time.Duration) Observation {
		if ue == "a" || ue == "d" {
			return obsBad
		}
		return obsGood
	})
	if dec := h.e.RemoveUE(h.now, "d"); dec.Kind != Release {
		t.Fatalf("removing d, which holds a session: %+v", dec)
	}
	h.e.RemoveUE(h.now, "b")
	var want []Brief
	for _, s := range h.e.Statuses(nil) {
		b := Brief{UE: s.UE, Rule: s.Rule, State: s.State, HasSession: s.HasSession, Removed: s.Removed}
		if s.HasSession {
			b.QoS = s.Session.QoS
		}
		want = append(want, b)
	}
	got := h.e.Briefs(nil)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Briefs = %+v\nwant (from Statuses) %+v", got, want)
	}
	if len(got) != 3 || !got[1].HasSession || got[1].UE != "a" || !got[2].Removed {
		t.Errorf("Briefs = %+v: want c, a (holding a session) and d (removed, still holding one)", got)
	}
}

// Sweep covers a large fleet over several calls: each UE once a round, in
// SetUE order, n at a time, starting over after the last; a UE that is
// gone is not evaluated and is dropped when a round ends.
func TestSweepGoesRoundInParts(t *testing.T) {
	h := newHarness(t, Guards{})
	for i := range 5 {
		h.ue(fmt.Sprint("ue-", i), lowLatency())
	}
	var seen []string
	observe := func(ue string) Observation {
		seen = append(seen, ue)
		return withSpans(obsGood)
	}
	var counts []int
	for range 4 {
		_, n := h.e.Sweep(h.now, observe, 2, nil)
		counts = append(counts, n)
	}
	if want := []int{2, 2, 1, 2}; !reflect.DeepEqual(counts, want) {
		t.Errorf("UEs per sweep %v, want %v", counts, want)
	}
	if want := strings.Fields("ue-0 ue-1 ue-2 ue-3 ue-4 ue-0 ue-1"); !reflect.DeepEqual(seen, want) {
		t.Errorf("evaluated %v, want %v", seen, want)
	}
	// Tick still evaluates every UE, from the start.
	seen = nil
	h.e.Tick(h.now, observe, nil)
	if len(seen) != 5 || seen[0] != "ue-0" {
		t.Errorf("Tick evaluated %v, want all 5 from ue-0", seen)
	}
	// Holding lists only the UEs with a session.
	h.must(h.e.Adopt(h.now, "ue-3", Session{ID: "s-3", QoS: "QOS_E", ExpiresAt: h.now.Add(time.Hour)}))
	if held := h.e.Holding(nil); len(held) != 1 || held[0].UE != "ue-3" || held[0].Session.ID != "s-3" {
		t.Errorf("Holding = %+v, want ue-3 with s-3 alone", held)
	}
}
