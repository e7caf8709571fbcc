package daemon_test

// Helpers for the in-process end-to-end tests: the real simulator over
// HTTP, loopback stand-ins for UEs whose latency the test scripts, configs
// written as YAML and parsed like a user's, and a judge that reads the
// simulator's request log.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// The scripted network: a stand-in UE answers its HTTP probe at once when
// good and after badLatency when bad. The rule's thresholds sit far from
// both so that a loaded CI machine does not move a UE across them.
const (
	goodLatency = 0
	badLatency  = 70 * time.Millisecond
	// waitLong bounds every wait for the daemon; the scenarios take a few
	// seconds when things work.
	waitLong = 15 * time.Second
)

// target is a loopback HTTP server standing in for a UE.
type target struct {
	srv      *httptest.Server
	delay    atomic.Int64
	firstBad atomic.Int64 // UnixNano when it first answered late
}

func newTarget(t *testing.T) *target {
	tg := &target{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(tg.delay.Load()); d > 0 {
			// The scripted network delay, not a wait for readiness.
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
			tg.firstBad.CompareAndSwap(0, time.Now().UnixNano())
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) bad()  { tg.delay.Store(int64(badLatency)) }
func (tg *target) good() { tg.delay.Store(int64(goodLatency)) }

// slow makes the target answer after d from now on.
func (tg *target) slow(d time.Duration) { tg.delay.Store(int64(d)) }

// firstBadReply is when the target first answered late (zero: never).
func (tg *target) firstBadReply() time.Time {
	if ns := tg.firstBad.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// dialect is an API dialect the end-to-end scenarios run in: each
// scenario that both speak runs once per dialect (eachDialect), against
// the simulator speaking that dialect.
type dialect struct {
	name string // api.dialect
	v1   bool   // CAMARA v1: qosStatus, extend, retrieve-sessions, CloudEvents to an https sink
}

var (
	devedge  = dialect{name: "devedge"}
	camaraV1 = dialect{name: "camara-v1", v1: true}
	dialects = []dialect{devedge, camaraV1}
)

// eachDialect runs scenario once per dialect, in parallel subtests.
func eachDialect(t *testing.T, scenario func(t *testing.T, dl dialect)) {
	for _, dl := range dialects {
		t.Run(dl.name, func(t *testing.T) {
			t.Parallel()
			scenario(t, dl)
		})
	}
}

// spec describes a test config; yaml renders it.
type spec struct {
	dialect      string // api.dialect; "" is devedge
	apiURL       string
	auth         string // YAML flow mapping for api.auth
	apiTimeout   string
	pollInterval string
	maxRetries   int
	notifyURL    string // public_url; "" disables notifications
	notifyListen string
	notifyToken  string // token_file content; "" lets the daemon generate one
	ues          []ueSpec
	breach       string // rule "fast" breach condition
	breachFor    string // its for
	recover      string // rule "fast" recovery condition (all of)
	window       string // statistics window
	interval     string // the http probe's interval
	timeout      string // and its timeout
	tick         string // the control loop's full pass
	duration     string // session duration
	minSession   string
	cooldown     string
	renewBefore  string
	budget       string // daily_budget; "" for none
	release      bool   // release_on_shutdown
	stateDir     string
	dryRun       bool
	extraFiles   string // directory for secret files
	// requestedTimeout is api.requested_timeout (camara-v1); "" for the default.
	requestedTimeout string
	ruleExtra        string // more YAML for rule "fast", one setting a line, unindented
}

type ueSpec struct {
	name string
	ipv4 string
	url  string
	// private and publicPort put the UE behind carrier NAT (camara-v1):
	// ipv4 is then the NAT's public address.
	private    string
	publicPort int
}

// ipv4YAML is the UE's ipv4 setting: the plain form, or the NAT form.
func (u ueSpec) ipv4YAML() string {
	if u.private == "" && u.publicPort == 0 {
		return u.ipv4
	}
	return fmt.Sprintf("{public: %s, private: %s, public_port: %d}", u.ipv4, u.private, u.publicPort)
}

// device is how the simulator tells the UE apart from others: behind one
// NAT, devices share the public address.
func (u ueSpec) device() string { return deviceKey(u.ipv4, u.private, u.publicPort) }

func deviceKey(public, private string, port int) string {
	return fmt.Sprintf("%s|%s|%d", public, private, port)
}

func simDevice(s qodsim.Session) string {
	private := s.UEPrivateIPv4
	if private == s.UE.IPv4Addr {
		private = "" // a device without NAT: v1 sends its address twice
	}
	return deviceKey(s.UE.IPv4Addr, private, s.UEPublicPort)
}

func (s *spec) yaml(t *testing.T) string {
	var b strings.Builder
	if s.apiURL != "" {
		dl := s.dialect
		if dl == "" {
			dl = devedge.name
		}
		fmt.Fprintf(&b, "api:\n  base_url: %q\n  dialect: %s\n  auth: %s\n  timeout: %s\n  poll_interval: %s\n  max_retries: %d\n",
			s.apiURL, dl, s.auth, s.apiTimeout, s.pollInterval, s.maxRetries)
		if s.requestedTimeout != "" {
			fmt.Fprintf(&b, "  requested_timeout: %s\n", s.requestedTimeout)
		}
	}
	if s.notifyURL != "" {
		fmt.Fprintf(&b, "notifications:\n  public_url: %q\n  listen: %q\n", s.notifyURL, s.notifyListen)
		if s.notifyToken != "" {
			f := filepath.Join(s.extraFiles, "notify-token")
			if err := os.WriteFile(f, []byte(s.notifyToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "  token_file: %q\n", f)
		}
	}
	fmt.Fprintf(&b, "web:\n  listen: 127.0.0.1:0\n")
	fmt.Fprintf(&b, "defaults:\n  application_server: {ipv4: 203.0.113.10}\n  window: %s\n  rule: fast\n", s.window)
	b.WriteString("ues:\n")
	for _, u := range s.ues {
		fmt.Fprintf(&b, "  - name: %s\n    ipv4: %s\n    target: 127.0.0.1\n    probes:\n      - http: {url: %q, interval: %s, timeout: %s}\n", u.name, u.ipv4YAML(), u.url, s.interval, s.timeout)
	}
	fmt.Fprintf(&b, `rules:
  fast:
    breach: {any: [%q], for: %s}
    recover: {all: [%q], for: 500ms}
    qos: QOS_E
    duration: %s
`, s.breach, s.breachFor, s.recover, s.duration)
	for _, l := range strings.Split(strings.TrimSpace(s.ruleExtra), "\n") {
		if l != "" {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	fmt.Fprintf(&b, "guards:\n  min_session: %s\n  cooldown: %s\n  release_on_shutdown: %v\n", s.minSession, s.cooldown, s.release)
	if s.budget != "" {
		fmt.Fprintf(&b, "  daily_budget: %s\n", s.budget)
	}
	if s.renewBefore != "" {
		fmt.Fprintf(&b, "  renew_before: %s\n", s.renewBefore)
	}
	if s.stateDir != "" {
		fmt.Fprintf(&b, "state_dir: %q\n", s.stateDir)
	}
	if s.dryRun {
		b.WriteString("dry_run: true\n")
	}
	fmt.Fprintf(&b, "tick: %s\n", s.tick)
	return b.String()
}

func (s *spec) parse(t *testing.T) *config.Config {
	t.Helper()
	text := s.yaml(t)
	cfg, err := config.Parse(filepath.Join(s.extraFiles, "qodwatch.yaml"), []byte(text))
	if err != nil {
		t.Fatalf("test config does not parse: %v\n%s", err, text)
	}
	return cfg
}

// env is one scenario's world: a simulator, stand-in UEs, a state
// directory, optionally a notification receiver, and captured logs.
type env struct {
	t       *testing.T
	sim     *qodsim.Server
	simSkew time.Duration
	targets map[string]*target
	spec    spec
	logs    *syncBuffer

	dialect dialect
	// foreign are sessions the test made behind the daemon's back: the
	// invariants do not expect the daemon to know them.
	foreign  []string
	notifyLn net.Listener
	receiver *atomic.Pointer[http.Handler] // the running daemon's

	mu      sync.Mutex
	running *running
}

type envOptions struct {
	dialect dialect // the zero value is devedge
	sim     qodsim.Options
	simSkew time.Duration // the operator's clock minus ours
	ues     int
	notify  bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.ues == 0 {
		o.ues = 1
	}
	if o.simSkew != 0 {
		skew := o.simSkew
		o.sim.Now = func() time.Time { return time.Now().Add(skew) }
	}
	// The receiver's port outlives daemon restarts, as a proxy in front of
	// the daemon would. CAMARA v1 sends events only to https sinks: there
	// the proxy terminates TLS, with a certificate the simulator trusts.
	var receiver atomic.Pointer[http.Handler]
	var notifySrv *httptest.Server
	if o.notify {
		notifySrv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := receiver.Load()
			if h == nil {
				http.Error(w, "no daemon running", http.StatusServiceUnavailable)
				return
			}
			(*h).ServeHTTP(w, r)
		}))
		if o.dialect.v1 {
			notifySrv.StartTLS()
			o.sim.HTTPClient = notifySrv.Client()
		} else {
			notifySrv.Start()
		}
		t.Cleanup(notifySrv.Close)
	}
	if o.dialect.v1 {
		o.sim.Dialect = qodsim.DialectCAMARAv1
	}
	sim := qodsim.NewServer(o.sim)
	t.Cleanup(sim.Close)
	e := &env{t: t, sim: sim, simSkew: o.simSkew, dialect: o.dialect, targets: map[string]*target{}, logs: &syncBuffer{}, receiver: &receiver}
	dir := t.TempDir()
	e.spec = spec{
		dialect: o.dialect.name,
		apiURL:  sim.URL, auth: "{type: none}", apiTimeout: "2s", pollInterval: "1s", maxRetries: 1,
		breach: "latency_p50 > 40ms", breachFor: "500ms", recover: "latency_p50 < 20ms", window: "1s", interval: "100ms", timeout: "100ms", tick: "50ms",
		duration: "1m", minSession: "0s", cooldown: "1s",
		stateDir: filepath.Join(dir, "state"), extraFiles: dir,
	}
	for i := range o.ues {
		name := fmt.Sprintf("ue-%d", i+1)
		tg := newTarget(t)
		e.targets[name] = tg
		e.spec.ues = append(e.spec.ues, ueSpec{name: name, ipv4: fmt.Sprintf("198.51.100.%d", i+1), url: tg.srv.URL + "/"})
	}
	if notifySrv != nil {
		e.notifyLn = notifySrv.Listener
		e.spec.notifyURL = notifySrv.URL + "/qodwatch"
		e.spec.notifyListen = notifySrv.Listener.Addr().String()
	}
	t.Cleanup(func() {
		e.mu.Lock()
		r := e.running
		e.mu.Unlock()
		if r != nil {
			r.stop(t)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", e.logs.String())
		}
	})
	return e
}

// ue returns the stand-in of the nth UE (1-based).
func (e *env) ue(n int) *target { return e.targets[fmt.Sprintf("ue-%d", n)] }

// running is a daemon started by start.
type running struct {
	d      *daemon.Daemon
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start builds a daemon from cfg and runs it until the test ends or stop.
func (e *env) start(cfg *config.Config, configFile string) *running {
	e.t.Helper()
	d, err := daemon.New(daemon.Options{
		Config: cfg, ConfigFile: configFile, ShutdownGrace: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		e.t.Fatalf("daemon.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
	if e.notifyLn != nil {
		// The receiver's port outlives daemon restarts, as a proxy in
		// front of the daemon would.
		var h http.Handler = d.NotificationReceiver()
		e.receiver.Store(&h)
	}
	go func() { r.done <- d.Run(ctx) }()
	e.mu.Lock()
	e.running = r
	e.mu.Unlock()
	return r
}

// stop cancels the run context and waits for Run to return.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(waitLong):
			t.Errorf("daemon did not stop within %v", waitLong)
		}
	})
	return r.err
}

// status returns the policy's view of one UE.
func (r *running) status(ue string) policy.Status {
	for _, st := range r.d.Statuses() {
		if st.UE == ue {
			return st
		}
	}
	return policy.Status{}
}

// metric reads one counter or gauge of the daemon's registry, 0 if absent.
func (r *running) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.d.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// tally is the simulator's request log summed up.
type tally struct {
	posts     int         // POST /sessions sent
	created   int         // answered 200 (DevEdge), 201 (CAMARA v1) or dropped after creating
	extends   int         // POST /sessions/{id}/extend answered 200
	retrieves int         // POST /retrieve-sessions answered 200
	deletes   int         // DELETE answered 204
	gets      int         // GET /sessions/{id}
	conflicts int         // 409 answers
	failed    int         // injected or auth failures (4xx/5xx other than 404/409)
	postTimes []time.Time // when each POST arrived (simulator clock)
}

func (e *env) tally() tally {
	var t tally
	for _, r := range e.sim.Requests() {
		isSessions := strings.HasSuffix(r.Path, "/sessions")
		switch {
		case r.Method == http.MethodPost && isSessions:
			t.posts++
			t.postTimes = append(t.postTimes, r.At)
			if r.Status == http.StatusOK || r.Status == http.StatusCreated || r.Status == 0 {
				t.created++
			}
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/extend") && r.Status == http.StatusOK:
			t.extends++
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/retrieve-sessions") && r.Status == http.StatusOK:
			t.retrieves++
		case r.Method == http.MethodDelete && r.Status == http.StatusNoContent:
			t.deletes++
		case r.Method == http.MethodGet && strings.Contains(r.Path, "/sessions/"):
			t.gets++
		}
		switch {
		case r.Status == http.StatusConflict:
			t.conflicts++
		case r.Status >= 400 && r.Status != http.StatusNotFound:
			t.failed++
		}
	}
	return t
}

func (t tally) String() string {
	return fmt.Sprintf("posts=%d created=%d extends=%d retrieves=%d deletes=%d gets=%d conflicts=%d failed=%d",
		t.posts, t.created, t.extends, t.retrieves, t.deletes, t.gets, t.conflicts, t.failed)
}

// live returns the simulator's live sessions, leaving out those whose
// time is up but which its sweeper has not ended yet. A CAMARA v1 session
// is live while REQUESTED (bought, no expiry yet) and while UNAVAILABLE
// after the network ended it (it holds the device until deleted).
func (e *env) live() []qodsim.Session {
	now := time.Now().Add(e.simSkew)
	var out []qodsim.Session
	for _, s := range e.sim.Sessions() {
		switch s.QoSStatus {
		case qodsim.StatusRequested, qodsim.StatusUnavailable:
			out = append(out, s)
		default:
			if s.ExpiresAt.After(now) {
				out = append(out, s)
			}
		}
	}
	return out
}

func (e *env) liveIDs() []string {
	var ids []string
	for _, s := range e.live() {
		ids = append(ids, s.ID)
	}
	return ids
}

// state reads the state file.
func (e *env) state() daemon.State {
	e.t.Helper()
	f, err := daemon.OpenStateFile(e.spec.stateDir)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := f.Load()
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// invariants are checked on every poll of eventually: the operator never
// holds two live sessions for one UE, and every live session is known to
// the daemon, in the state file or as an open intent for its UE.
func (e *env) invariants() error {
	before := e.live()
	perUE := map[string][]string{}
	for _, s := range before {
		perUE[simDevice(s)] = append(perUE[simDevice(s)], s.ID)
	}
	for ue, ids := range perUE {
		if len(ids) > 1 {
			return fmt.Errorf("UE %s holds %d live sessions at once: %v", ue, len(ids), ids)
		}
	}
	if e.spec.dryRun || e.spec.stateDir == "" || len(before) == 0 {
		return nil
	}
	f, err := daemon.OpenStateFile(e.spec.stateDir)
	if err != nil {
		return err
	}
	st, err := f.Load()
	if err != nil {
		return err
	}
	after := e.liveIDs()
	for _, s := range before {
		if !slices.Contains(after, s.ID) || slices.Contains(e.foreign, s.ID) || s.QoSStatus == qodsim.StatusUnavailable {
			// Ended meanwhile, or not the daemon's, or ended by the network
			// (CAMARA v1): no QoS, nothing billed; it only blocks the
			// device until deleted, which a 409 would bring to light.
			continue
		}
		known := false
		for _, x := range st.Sessions {
			known = known || x.ID == s.ID
		}
		for _, in := range st.Intents {
			known = known || e.deviceOf(in.UE) == simDevice(s)
		}
		if !known {
			return fmt.Errorf("live session %s of UE %s is neither in the state file nor covered by an intent: %+v", s.ID, s.UE.IPv4Addr, st)
		}
	}
	return nil
}

func (e *env) deviceOf(ue string) string {
	for _, u := range e.spec.ues {
		if u.name == ue {
			return u.device()
		}
	}
	return ""
}

// eventually polls cond until it holds, checking the invariants each time.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		if err := e.invariants(); err != nil {
			e.t.Fatalf("while waiting for %s: %v", what, err)
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s; simulator: %s; live %v; statuses %+v", waitLong, what, e.tally(), e.liveIDs(), e.statuses())
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a wait for a condition
	}
}

// consistently checks that cond holds (and the invariants) for all of d.
func (e *env) consistently(d time.Duration, what string, cond func() bool) {
	e.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if err := e.invariants(); err != nil {
			e.t.Fatalf("while checking %s: %v", what, err)
		}
		if !cond() {
			e.t.Fatalf("%s stopped holding; simulator: %s; live %v; statuses %+v", what, e.tally(), e.liveIDs(), e.statuses())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func (e *env) statuses() []policy.Status {
	e.mu.Lock()
	r := e.running
	e.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.d.Statuses()
}

// waitSession waits until the UE holds a session known to both the daemon
// and the simulator, and returns its id.
func (e *env) waitSession(r *running, ue string) string {
	e.t.Helper()
	var id string
	e.eventually(ue+" holding a session", func() bool {
		st := r.status(ue)
		if !st.HasSession {
			return false
		}
		id = st.Session.ID
		return slices.Contains(e.liveIDs(), id)
	})
	return id
}

// waitNoSession waits until the UE holds no session, is not about to
// (a renewal between its DELETE and its POST holds none for a moment), and
// the simulator has none live.
func (e *env) waitNoSession(r *running, ue string) {
	e.t.Helper()
	e.eventually(ue+" holding no session", func() bool {
		st := r.status(ue)
		switch st.State {
		case policy.StateReleasing, policy.StateRequesting, policy.StateRenewing:
			return false
		}
		return !st.HasSession && len(e.live()) == 0
	})
}

// syncBuffer is an io.Writer safe for the daemon's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMain lets more scenarios run at once than the CPUs (go test's
// default): they spend their time waiting for windows, cooldowns and
// scripted latency, not computing. An explicit -parallel wins.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}
