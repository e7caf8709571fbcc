package monitor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeProbe is a scheduled probe whose runs the test observes.
type fakeProbe struct {
	ID       string
	Interval time.Duration
	runs     chan fakeRun // nil: just return an RTT
	block    bool         // wait for ctx to end
}

type fakeRun struct {
	ue, id string
	at     time.Time
}

func (fakeProbe) Kind() string { return KindTCP }

func (p fakeProbe) bind(ue *UE) (boundProbe, error) {
	return &fakeBound{p: p, ue: ue.Name}, nil
}

type fakeBound struct {
	p  fakeProbe
	ue string
}

func (b *fakeBound) every() time.Duration { return b.p.Interval }
func (b *fakeBound) exclusive() bool      { return false }
func (b *fakeBound) passive() bool        { return false }
func (b *fakeBound) run(ctx context.Context, e *env) outcome {
	if b.p.runs != nil {
		b.p.runs <- fakeRun{ue: b.ue, id: b.p.ID, at: e.now()}
	}
	if b.p.block {
		<-ctx.Done()
	}
	return outcome{Result: Result{RTT: 7 * time.Millisecond}}
}

func newTestMonitor(t *testing.T, opts Options) (*Monitor, *fakeClock) {
	t.Helper()
	clk := newFakeClock(base)
	opts.Clock = clk
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, clk
}

// runMonitor runs m until the test ends and fails it if Run errs or hangs.
func runMonitor(t *testing.T, m *Monitor) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return cancel
}

func nextRun(t *testing.T, runs <-chan fakeRun) fakeRun {
	t.Helper()
	select {
	case r := <-runs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no probe run")
		return fakeRun{}
	}
}

func noRun(t *testing.T, runs <-chan fakeRun, clk *fakeClock) {
	t.Helper()
	// Once the scheduler waits on the clock it has dispatched every due run.
	waitFor(t, func() bool { return clk.pending() > 0 })
	select {
	case r := <-runs:
		t.Fatalf("unexpected run %+v", r)
	default:
	}
}

func TestSchedulerSpreadsStartsOverTheInterval(t *testing.T) {
	m, clk := newTestMonitor(t, Options{})
	runs := make(chan fakeRun, 100)
	var ues []UE
	for _, n := range []string{"a", "b", "c", "d"} {
		ues = append(ues, UE{Name: n, Addr: "127.0.0.1", Probes: []Probe{fakeProbe{ID: "p", Interval: time.Second, runs: runs}}})
	}
	if err := m.SetUEs(ues); err != nil {
		t.Fatal(err)
	}
	<-m.wake // so the scheduler waits on the clock exactly once per step
	runMonitor(t, m)

	// Starts 250 ms apart, one UE at a time, then the same order again.
	var order []string
	for step := range 8 {
		r := nextRun(t, runs)
		if want := at(time.Duration(step) * 250 * time.Millisecond); !r.at.Equal(want) {
			t.Fatalf("run %d at %v, want %v", step, r.at.Sub(base), want.Sub(base))
		}
		order = append(order, r.ue)
		noRun(t, runs, clk)
		settled(t, m)
		clk.Advance(250 * time.Millisecond)
	}
	if want := []string{"a", "b", "c", "d", "a", "b", "c", "d"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if n := m.skipped[kTCP].Load(); n != 0 {
		t.Errorf("%d runs skipped as still going", n)
	}
}

// settled waits until no probe run is in flight. The fake clock moves as
// fast as the test goes: a run it outpaced (received, but still recording)
// would be skipped as still going when next due, the scheduler's rule for
// slow runs in real time, not what these tests are about.
func settled(t *testing.T, m *Monitor) {
	t.Helper()
	waitFor(t, func() bool {
		for _, st := range m.set.Load().list {
			st.mu.Lock()
			busy := slices.ContainsFunc(st.tasks, func(k *task) bool { return k.running.Load() })
			st.mu.Unlock()
			if busy {
				return false
			}
		}
		return true
	})
}

func TestSchedulerCancellationEndsRunsInFlight(t *testing.T) {
	m, _ := newTestMonitor(t, Options{})
	runs := make(chan fakeRun, 1)
	err := m.SetUEs([]UE{{Name: "a", Addr: "127.0.0.1", Probes: []Probe{fakeProbe{ID: "p", Interval: time.Second, runs: runs, block: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	nextRun(t, runs) // blocked inside the probe
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// A run cut short by shutdown is not a measurement.
	s, _ := m.Stats("a", base)
	if s.Samples+s.Lost != 0 {
		t.Errorf("cancelled run recorded %+v", s)
	}
}

func TestSchedulerBoundsConcurrency(t *testing.T) {
	m, _ := newTestMonitor(t, Options{MaxConcurrent: 2})
	runs := make(chan fakeRun, 10)
	var ues []UE
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		// Same phase: all due at once.
		ues = append(ues, UE{Name: n, Addr: "127.0.0.1", Probes: []Probe{fakeProbe{ID: n, Interval: time.Second, runs: runs, block: true}}})
	}
	if err := m.SetUEs(ues); err != nil {
		t.Fatal(err)
	}
	m.sched.Lock()
	for _, tk := range m.queue {
		tk.next = base
	}
	m.sched.Unlock()
	runMonitor(t, m)
	nextRun(t, runs)
	nextRun(t, runs)
	// The other three wait for a slot; their goroutines are parked on the
	// semaphore, so nothing else can arrive until a run ends.
	waitFor(t, func() bool { return len(m.sem) == 2 })
	select {
	case r := <-runs:
		t.Fatalf("third concurrent run %+v with MaxConcurrent 2", r)
	default:
	}
}

// waitFor polls cond (readiness, not a fixed sleep).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReloadKeepsWindowsAndPhases(t *testing.T) {
	var mu sync.Mutex
	var pushed [][]ICMPTarget
	m, clk := newTestMonitor(t, Options{ICMP: func(ts []ICMPTarget) {
		mu.Lock()
		pushed = append(pushed, ts)
		mu.Unlock()
	}})
	icmp := ICMP{Interval: time.Second}
	tcpA := fakeProbe{ID: "a", Interval: 10 * time.Second}
	first := []UE{
		{Name: "a", Addr: "127.0.0.2", Probes: []Probe{icmp, tcpA}},
		{Name: "b", Addr: "127.0.0.3", Probes: []Probe{icmp}},
	}
	if err := m.SetUEs(first); err != nil {
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second)
	for i := range 6 {
		m.Record(Result{UE: "a", Probe: KindICMP, At: at(time.Duration(i) * 400 * time.Millisecond), RTT: ms(20)})
	}
	m.Record(Result{UE: "a", Probe: KindICMP, At: at(2500 * time.Millisecond), Lost: true})
	before, _ := m.Stats("a", clk.Now())
	phase := m.set.Load().byName["a"].tasks[0].next

	// b leaves, c arrives, a is unchanged.
	second := []UE{first[0], {Name: "c", Addr: "127.0.0.4", Probes: []Probe{icmp, fakeProbe{ID: "c", Interval: 10 * time.Second}}}}
	if err := m.SetUEs(second); err != nil {
		t.Fatal(err)
	}
	after, ok := m.Stats("a", clk.Now())
	if !ok || after.Samples != 6 || after.Lost != 1 || after.LatencyP95 != before.LatencyP95 || after.Jitter != before.Jitter {
		t.Errorf("a after reload = %+v, want %+v", after, before)
	}
	if got := m.set.Load().byName["a"].tasks[0].next; !got.Equal(phase) {
		t.Errorf("a's phase moved from %v to %v", phase, got)
	}
	if _, ok := m.Stats("b", clk.Now()); ok {
		t.Error("b still there after reload")
	}
	if got := m.UEs(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("UEs = %v", got)
	}
	// Results for a removed UE (late answers) are dropped quietly.
	m.Record(Result{UE: "b", Probe: KindICMP, At: clk.Now(), RTT: ms(1)})

	// A changed probe restarts its phase but keeps the window.
	changed := []UE{{Name: "a", Addr: "127.0.0.2", Probes: []Probe{icmp, fakeProbe{ID: "a", Interval: 20 * time.Second}}}}
	if err := m.SetUEs(changed); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Stats("a", clk.Now()); s.Samples != 6 {
		t.Errorf("window lost on probe change: %+v", s)
	}
	if got := m.set.Load().byName["a"].tasks[0].next; !got.Equal(clk.Now()) {
		t.Errorf("changed probe starts at %v, want now", got)
	}

	// The engine gets the targets once Run starts, and again on change.
	runMonitor(t, m)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(pushed) == 1 })
	mu.Lock()
	got := pushed[0]
	mu.Unlock()
	want := []ICMPTarget{{UE: "a", Addr: mustAddr("127.0.0.2"), Interval: time.Second, Packets: 3, Spacing: 100 * time.Millisecond, Timeout: time.Second}}
	if !slices.Equal(got, want) {
		t.Errorf("icmp targets = %+v, want %+v", got, want)
	}
	if err := m.SetUEs(second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(pushed) == 2 })
	mu.Lock()
	if len(pushed[1]) != 2 || pushed[1][1].UE != "c" {
		t.Errorf("icmp targets after reload = %+v", pushed[1])
	}
	mu.Unlock()

	// An engine created later asks for the same targets again.
	m.ResendICMPTargets()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(pushed) == 3 })
	mu.Lock()
	if !slices.Equal(pushed[2], pushed[1]) {
		t.Errorf("resent targets %+v, want %+v", pushed[2], pushed[1])
	}
	mu.Unlock()
}

func TestSetUEsRefusesBadConfigWhole(t *testing.T) {
	m, _ := newTestMonitor(t, Options{})
	good := UE{Name: "a", Addr: "127.0.0.1", Probes: []Probe{TCP{Address: "{{ue.addr}}:22", Interval: time.Second}}}
	if err := m.SetUEs([]UE{good}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ue   UE
		want string
	}{
		{UE{Addr: "127.0.0.1"}, "ue without a name"},
		{UE{Name: "x"}, `ue "x": no address`},
		{UE{Name: "x", Addr: "a b"}, `ue "x": address "a b" is neither an IP address nor a host name`},
		{UE{Name: "x", Addr: "h", Labels: map[string]string{"ue": "y"}}, `ue "x": label name "ue" is not allowed`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{ICMP{Interval: time.Second}}}, `ue "x": icmp probe configured but no ICMP engine is wired`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{TCP{Address: "h", Interval: time.Second}}}, `ue "x": tcp probe: address "h": address h: missing port in address`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{TCP{Address: "h:1"}}}, `ue "x": tcp probe: tcp: interval must be positive, got 0s`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{HTTP{URL: "ftp://h/", Interval: time.Second}}}, `ue "x": http probe: url "ftp://h/": scheme must be http or https`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{HTTP{URL: "http://u:secret@h/", Interval: time.Second}}}, `ue "x": http probe: url "http://u:xxxxx@h/": user info is not supported`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{Throughput{URL: "http://h/", Interval: 3 * time.Second}}}, `ue "x": throughput probe: max time 3s leaves no room in the interval 3s`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{Throughput{URL: "http://h/", Interval: time.Minute, MaxBytes: 10}}}, `ue "x": throughput probe: max bytes 10 is too small`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{Prometheus{ServerURL: "http://p", Query: "up", Interval: time.Second}}}, `ue "x": prometheus probe: name "": want 1 to 64 characters`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{
			Prometheus{Name: "v", ServerURL: "http://p", Query: "a", Interval: time.Second},
			Prometheus{Name: "v", ServerURL: "http://p", Query: "b", Interval: time.Second},
		}}, `ue "x": prometheus probe: name "v" is used by another prometheus probe of the UE`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{nil}}, `ue "x": probe 0: nil probe`},
		{UE{Name: "x", Addr: "h", Probes: []Probe{(*TCP)(nil)}}, `ue "x": probe 0: nil *monitor.TCP probe`},
		{UE{Name: "x\xff", Addr: "h"}, `ue "x\xff": name is not valid UTF-8`},
	}
	for _, c := range cases {
		err := m.SetUEs([]UE{good, c.ue})
		if err == nil || !startsWith(err.Error(), c.want) {
			t.Errorf("SetUEs(%+v) = %v, want %q", c.ue, err, c.want)
		}
	}
	if err := m.SetUEs([]UE{good, good}); err == nil || err.Error() != `ue "a": defined twice` {
		t.Errorf("duplicate: %v", err)
	}
	if got := m.UEs(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a refused config changed the set: %v", got)
	}
}

func startsWith(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

func TestPlaceholders(t *testing.T) {
	v6 := &UE{Name: "cam-7", Addr: "::1"}
	for _, c := range []struct {
		in   string
		host bool
		want string
	}{
		{"{{ue.addr}}:22", true, "[::1]:22"},
		{"http://[{{ue.addr}}]:8080/{{ue.name}}", true, "http://[::1]:8080/cam-7"},
		{`up{ue="{{ue.name}}",addr="{{ue.addr}}"}`, false, `up{ue="cam-7",addr="::1"}`},
	} {
		if got := expand(c.in, v6, c.host); got != c.want {
			t.Errorf("expand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
