package main

// The end-to-end harness: the real qodwatch binary, built once per test run,
// run as a subprocess against the QoD simulator in the test process and
// against loopback HTTP targets whose latency each test scripts. The
// simulator's request log is the judge of what the daemon bought.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// The binaries under test: the shipped one, and one built with the
// failpoints the kill -9 suite crashes at (-tags qodwatch_failpoints).
var (
	shipped    binary
	failpoints = binary{tags: "qodwatch_failpoints"}
	binDir     string
	binDirErr  error
	binDirOnce sync.Once
)

type binary struct {
	tags string
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// qodwatchBinary builds the shipped binary on first use (with -race when
// the tests run with it) and returns its path. Tests that need no
// subprocess never pay for the build.
func qodwatchBinary(t *testing.T) string { return shipped.build(t) }

// qodwatchFailpointBinary is qodwatchBinary with the failpoints in.
func qodwatchFailpointBinary(t *testing.T) string { return failpoints.build(t) }

func (b *binary) build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the qodwatch binary")
	}
	binDirOnce.Do(func() { binDir, binDirErr = os.MkdirTemp("", "qodwatch-e2e-bin-") })
	if binDirErr != nil {
		t.Fatalf("build qodwatch: %v", binDirErr)
	}
	b.once.Do(func() {
		b.path = filepath.Join(binDir, "qodwatch")
		args := []string{"build"}
		if b.tags != "" {
			b.path += "-" + b.tags
			args = append(args, "-tags", b.tags)
		}
		args = append(args, "-o", b.path)
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool(), append(args, ".")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build qodwatch: %v", b.err)
	}
	return b.path
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// --- scripted UE targets ------------------------------------------------

// badDelay makes every probe of a bad UE time out (the probes' timeout is
// 100ms), so "bad" is loss, which no scheduling hiccup of a loaded CI
// machine can fake for long.
const badDelay = 250 * time.Millisecond

// target stands in for one UE: an HTTP server on 127.0.0.1 whose answers
// the test delays. The delay is the scripted network, not a wait.
type target struct {
	srv   *httptest.Server
	delay atomic.Int64
}

func newTarget(t *testing.T) *target {
	tg := &target{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(tg.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) setBad(bad bool) {
	if bad {
		tg.delay.Store(int64(badDelay))
	} else {
		tg.delay.Store(0)
	}
}

// --- one scenario's world -------------------------------------------------

// rigOptions shape the config of a rig.
type rigOptions struct {
	UEs        int    // default 2: ue-a is scripted, ue-b stays good
	Duration   string // rule duration, default 60s
	MinSession string // default 0s
	Cooldown   string // default 0s
	// KeepOnShutdown turns release_on_shutdown off.
	KeepOnShutdown bool
	// RunFlags are added to every `qodwatch run` of the rig.
	RunFlags []string
	// Failpoints runs the binary built with the failpoints (the kill -9
	// suite); the shipped one ignores QODWATCH_FAILPOINT.
	Failpoints bool
}

type rigUE struct {
	Name, IPv4, URL string
	target          *target
}

// rig is a simulator, UE targets, a config file and a state directory,
// shared by the daemon processes a test starts one after another.
type rig struct {
	t          *testing.T
	bin        string
	dir        string
	cfgFile    string
	stateDir   string
	sim        *qodsim.Server
	ues        []*rigUE
	host       string // a loopback address of this rig alone
	webAddr    string
	notifyAddr string
	opts       rigOptions
}

var rigSeq atomic.Int32

func newRig(t *testing.T, opts rigOptions) *rig {
	t.Helper()
	bin := qodwatchBinary(t)
	if opts.Failpoints {
		bin = qodwatchFailpointBinary(t)
	}
	if opts.UEs == 0 {
		opts.UEs = 2
	}
	if opts.Duration == "" {
		opts.Duration = "60s"
	}
	if opts.MinSession == "" {
		opts.MinSession = "0s"
	}
	if opts.Cooldown == "" {
		opts.Cooldown = "0s"
	}
	sim := qodsim.NewServer(qodsim.Options{NotifyBackoff: 50 * time.Millisecond})
	t.Cleanup(sim.Close)
	dir := t.TempDir()
	// Listeners go on an address of their own in 127.0.0.0/8: the probes'
	// outgoing connections take ephemeral ports on 127.0.0.1, so a port
	// picked here can never be taken by them before the daemon binds it.
	n := rigSeq.Add(1)
	host := fmt.Sprintf("127.83.%d.%d", os.Getpid()%250+1, n%250+1)
	r := &rig{
		t: t, bin: bin, dir: dir, sim: sim, host: host, opts: opts,
		cfgFile:    filepath.Join(dir, "qodwatch.yaml"),
		stateDir:   filepath.Join(dir, "state"),
		webAddr:    freeAddr(t, host),
		notifyAddr: freeAddr(t, host),
	}
	for i := range opts.UEs {
		tg := newTarget(t)
		r.ues = append(r.ues, &rigUE{
			Name: "ue-" + string(rune('a'+i)), IPv4: fmt.Sprintf("198.51.100.%d", i+1),
			URL: tg.srv.URL + "/", target: tg,
		})
	}
	r.writeConfig(r.config())
	return r
}

func freeAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatalf("pick a port on %s: %v", host, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

var configTemplate = template.Must(template.New("config").Parse(`# written by the end-to-end test
api:
  base_url: {{.API}}
  dialect: devedge
  auth: {type: none}
  timeout: 2s
  poll_interval: 1s
  max_retries: 1
notifications:
  public_url: http://{{.Notify}}/callbacks
  listen: {{.Notify}}
web:
  listen: {{.Web}}
log: {level: debug, format: text}
defaults:
  application_server: {ipv4: 203.0.113.10}
  window: 1s
  rule: e2e
ues:
{{- range .UEs}}
  - name: {{.Name}}
    ipv4: {{.IPv4}}
    target: 127.0.0.1
    probes:
      - http: {url: "{{.URL}}", interval: 100ms, timeout: 100ms}
{{- end}}
rules:
  e2e:
    breach: {any: ["loss > 50%", "latency_p50 > 60ms"], for: 500ms}
    recover: {all: ["loss < 20%", "latency_p50 < 30ms"], for: 500ms}
    qos: QOS_E
    duration: {{.Duration}}
guards:
  min_session: {{.MinSession}}
  cooldown: {{.Cooldown}}
  renew_before: 1s
  release_on_shutdown: {{not .KeepOnShutdown}}
state_dir: {{.StateDir}}
tick: 50ms
`))

type configData struct {
	API, Notify, Web, StateDir     string
	Duration, MinSession, Cooldown string
	KeepOnShutdown                 bool
	UEs                            []*rigUE
}

func (r *rig) config() configData {
	return configData{
		API: r.sim.URL, Notify: r.notifyAddr, Web: r.webAddr, StateDir: r.stateDir,
		Duration: r.opts.Duration, MinSession: r.opts.MinSession, Cooldown: r.opts.Cooldown,
		KeepOnShutdown: r.opts.KeepOnShutdown, UEs: r.ues,
	}
}

// writeConfig replaces the config file atomically, as an editor or a
// config management tool would, so a reload never reads half a file.
func (r *rig) writeConfig(c configData) {
	r.t.Helper()
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c); err != nil {
		r.t.Fatal(err)
	}
	r.writeConfigText(b.String())
}

func (r *rig) writeConfigText(s string) {
	r.t.Helper()
	tmp := r.cfgFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.cfgFile); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) ue(name string) *rigUE {
	for _, u := range r.ues {
		if u.Name == name {
			return u
		}
	}
	r.t.Fatalf("no UE %q in the rig", name)
	return nil
}

// --- the daemon process -----------------------------------------------

// proc is one qodwatch process.
type proc struct {
	r     *rig
	name  string
	cmd   *exec.Cmd
	out   *logBuffer
	done  chan struct{}
	state *os.ProcessState
}

// start runs `qodwatch run` on the rig's config with extra environment
// variables (a failpoint), and waits until its web server answers.
func (r *rig) start(name string, env ...string) *proc {
	r.t.Helper()
	p := r.startNoWait(name, env...)
	p.waitHealthy()
	return p
}

func (r *rig) startNoWait(name string, env ...string) *proc {
	r.t.Helper()
	return r.startFile(name, r.cfgFile, env...)
}

// startFile runs `qodwatch run` on another config file without waiting.
func (r *rig) startFile(name, cfgFile string, env ...string) *proc {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"run", "--config.file", cfgFile}, r.opts.RunFlags...)...)
	cmd.Env = append(cleanEnv(), env...)
	p := &proc{r: r, name: name, cmd: cmd, out: &logBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	r.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if r.t.Failed() {
			r.t.Logf("--- output of %s (%s) ---\n%s", name, p.stateString(), p.out.String())
		}
		if p.out.Contains("WARNING: DATA RACE") {
			r.t.Errorf("%s: the race detector reported a data race:\n%s", name, p.out.String())
		}
	})
	return p
}

// cleanEnv is the test's environment without a failpoint left over from
// the caller's shell.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QODWATCH_FAILPOINT=") {
			out = append(out, kv)
		}
	}
	return out
}

func (p *proc) stateString() string {
	if p.state == nil {
		return "running"
	}
	return p.state.String()
}

func (p *proc) url(path string) string { return "http://" + p.r.webAddr + path }

func (p *proc) waitHealthy() {
	p.r.t.Helper()
	waitFor(p.r.t, 20*time.Second, p.name+" answers /-/healthy", func() bool {
		if p.exited() {
			p.r.t.Fatalf("%s exited before it was ready: %s\n%s", p.name, p.stateString(), p.out.String())
		}
		resp, err := httpClient.Get(p.url("/-/healthy"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits for the process to end and returns how it ended.
func (p *proc) waitExit(timeout time.Duration) *os.ProcessState {
	p.r.t.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(timeout):
		p.r.t.Fatalf("%s did not exit within %v\n%s", p.name, timeout, p.out.String())
		return nil
	}
}

// stop sends SIGTERM and requires a clean exit 0.
func (p *proc) stop() {
	p.r.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.r.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	st := p.waitExit(30 * time.Second)
	if st.ExitCode() != 0 {
		p.r.t.Fatalf("%s exited with %s after SIGTERM, want exit 0\n%s", p.name, st, p.out.String())
	}
}

// kill9 kills the process with SIGKILL, as the OOM killer would.
func (p *proc) kill9() {
	p.r.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.r.t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	wantKilled(p.r.t, p.name, p.waitExit(10*time.Second))
}

func wantKilled(t *testing.T, name string, st *os.ProcessState) {
	t.Helper()
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s ended with %s, want killed by SIGKILL", name, st)
	}
}

// ueStatus is one UE in /status.json.
type ueStatus struct {
	UE        string `json:"ue"`
	State     string `json:"state"`
	SessionID string `json:"session_id"`
	Decision  string `json:"last_decision"`
}

func (p *proc) status() map[string]ueStatus {
	p.r.t.Helper()
	var v struct {
		UEs []ueStatus `json:"ues"`
	}
	if err := getJSON(p.url("/status.json"), &v); err != nil {
		p.r.t.Fatalf("%s /status.json: %v", p.name, err)
	}
	out := map[string]ueStatus{}
	for _, u := range v.UEs {
		out[u.UE] = u
	}
	return out
}

// waitState polls /status.json until ue is in one of the given states.
func (p *proc) waitState(ue string, timeout time.Duration, states ...string) ueStatus {
	p.r.t.Helper()
	var last ueStatus
	waitFor(p.r.t, timeout, fmt.Sprintf("%s: %s in state %v", p.name, ue, states), func() bool {
		last = p.status()[ue]
		for _, s := range states {
			if last.State == s {
				return true
			}
		}
		return false
	})
	return last
}

// metric returns the value of an unlabelled metric (or the first series
// whose labels contain labels) from /metrics.
func (p *proc) metric(name, labels string) (float64, bool) {
	p.r.t.Helper()
	resp, err := httpClient.Get(p.url("/metrics"))
	if err != nil {
		p.r.t.Fatalf("%s /metrics: %v", p.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, lbls, _ := strings.Cut(series, "{")
		if metric != name || !strings.Contains(lbls, labels) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			p.r.t.Fatalf("%s /metrics: %q: %v", p.name, line, err)
		}
		return f, true
	}
	return 0, false
}

// --- the judge: simulator log and state file --------------------------

var httpClient = &http.Client{Timeout: 5 * time.Second}

func getJSON(url string, v any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// apiCalls counts the simulator's requests of one method on paths with
// the given suffix ("" for any).
func (r *rig) apiCalls(method string) (all, ok int) {
	for _, q := range r.sim.Requests() {
		if q.Method != method || !strings.Contains(q.Path, "/sessions") {
			continue
		}
		all++
		if q.Status >= 200 && q.Status < 300 {
			ok++
		}
	}
	return all, ok
}

func (r *rig) posts() int { n, _ := r.apiCalls(http.MethodPost); return n }

// postsFor counts the POST /sessions naming the rig UE ue.
func (r *rig) postsFor(ue string) int {
	ip := `"` + r.ue(ue).IPv4 + `"`
	n := 0
	for _, q := range r.sim.Requests() {
		if q.Method == http.MethodPost && strings.Contains(q.Path, "/sessions") && bytes.Contains(q.Body, []byte(ip)) {
			n++
		}
	}
	return n
}

// liveFor returns the simulator's live sessions of the rig UE named ue.
func (r *rig) liveFor(ue string) []qodsim.Session {
	ip := r.ue(ue).IPv4
	var out []qodsim.Session
	for _, s := range r.sim.Sessions() {
		if s.UE.IPv4Addr == ip {
			out = append(out, s)
		}
	}
	return out
}

func (r *rig) ueOf(s qodsim.Session) string {
	for _, u := range r.ues {
		if u.IPv4 == s.UE.IPv4Addr {
			return u.Name
		}
	}
	return "?" + s.UE.IPv4Addr
}

func (r *rig) state() daemon.State {
	r.t.Helper()
	sf, err := daemon.OpenStateFile(r.stateDir)
	if err != nil {
		r.t.Fatal(err)
	}
	st, err := sf.Load()
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// requireAllKnown is the kill -9 invariant: every session live at the
// operator is one the daemon knows, by id in its state file, or suspects,
// by an open create intent for its UE; and no UE holds two.
func (r *rig) requireAllKnown(when string) {
	r.t.Helper()
	st := r.state()
	now := time.Now()
	perUE := map[string]int{}
	for _, s := range r.sim.Sessions() {
		ue := r.ueOf(s)
		perUE[ue]++
		if perUE[ue] > 1 {
			r.t.Errorf("%s: the simulator holds %d live sessions for %s", when, perUE[ue], ue)
		}
		if _, ok := sessionByID(st, s.ID); ok {
			continue
		}
		if in, ok := st.IntentFor(ue); ok && now.Before(in.Until) {
			continue
		}
		r.t.Errorf("%s: session %s of %s is live at the operator but unknown to the daemon (state file: %+v)", when, s.ID, ue, st)
	}
}

// sessionFor is the state file's session for ue.
func (r *rig) sessionFor(ue string) (daemon.Session, bool) {
	st := r.state()
	return st.SessionFor(ue)
}

func sessionByID(st daemon.State, id string) (daemon.Session, bool) {
	for _, s := range st.Sessions {
		if s.ID == id {
			return s, true
		}
	}
	return daemon.Session{}, false
}

// cli runs a qodwatch command to completion and returns its output and
// exit code.
func (r *rig) cli(env []string, args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	return runBinary(r.t, r.bin, env, args...)
}

func runBinary(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("qodwatch %s: %v", strings.Join(args, " "), err)
	}
	if strings.Contains(e.String(), "WARNING: DATA RACE") {
		t.Errorf("qodwatch %s: data race:\n%s", strings.Join(args, " "), e.String())
	}
	return o.String(), e.String(), code
}

// --- small helpers ----------------------------------------------------

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// holdsFor requires cond to stay true for d, checking it as often as
// waitFor does: "nothing is bought while ..." is a claim over time.
func holdsFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
		<-tick.C
	}
}

// logBuffer collects a process's output for assertions and post-mortems.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) Contains(s string) bool { return strings.Contains(l.String(), s) }
