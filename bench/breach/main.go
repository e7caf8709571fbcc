// Command breach measures how fast qodwatch buys a session once a UE goes
// bad (issue 5): with many UEs on loopback, the time from the moment a UE's
// latency turns bad to the POST /sessions the simulator receives for it,
// minus the rule's `for`. The goal is at most one probe interval + 50 ms.
//
//	go run ./bench/breach                      # 1,000 UEs, 200 breaching, tick 1s,100ms,50ms
//	go run ./bench/breach -bin ./qodwatch      # a binary built beforehand
//	go run ./bench/breach -ticks 100ms -ues 2000
//
// The real qodwatch binary runs as a child process (built from ./cmd/qodwatch
// unless -bin is given) against the QoD simulator and 1,000 loopback HTTP
// targets in this process, one per UE, each on its own 127.20.x.y address.
//
// Why http probes: the benchmark must decide each UE's latency, per UE and
// at a known moment. An HTTP target does that exactly: it holds its answer
// for the scripted time, and the http probe measures the time to the first
// byte. Loopback ICMP and TCP connects are answered by the kernel at once;
// delaying them per address would need tc netem, which this host lacks (tbf
// shapes rate, not delay).
//
// What the lag is made of, per UE (each column of the breakdown):
//
//	wait    breach -> the first probe that sees it: uniform in 0..interval,
//	        since the probes of 1,000 UEs are spread over the interval
//	rtt     that probe's own round trip: the bad latency itself; no
//	        prober can know a reply is late before it is late
//	decide  reply -> the decision, minus `for`: the window statistic must
//	        cross the threshold (here one bad sample does it: with a 10 s
//	        window and a 1 s probe there are 10 samples, and p95 of 10 is
//	        their maximum; the 200 ms threshold is far above any loopback
//	        reply, so a CPU-starved good reply rarely trips it), then the
//	        control loop must see it. The daemon evaluates a UE when the
//	        monitor reports its sample (passes at most 5 ms apart), so the
//	        breach timer starts then, and a timer fires it at exactly
//	        since + for: a few ms, whatever the tick. If the monitor does
//	        not report a probe kind's samples, the first tick after the
//	        reply sees the breach instead: 0..1 tick
//	act     decision -> POST at the simulator: the intent's fsync'd state
//	        file write (shared with creates decided at the same time), then
//	        the API call
//
// The raw lag is wait + rtt + decide + act. The daemon's share, what it can
// improve, is decide + act.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

type params struct {
	ues, breaching int
	interval       time.Duration
	window         time.Duration
	hold           time.Duration // the rule's `for`
	threshold, bad time.Duration
	stagger        time.Duration
	bin            string
	keep           bool
}

func main() {
	var p params
	ticks := flag.String("ticks", "1s,100ms,50ms", "control loop intervals to measure, one run each")
	flag.IntVar(&p.ues, "ues", 1000, "UEs probed")
	flag.IntVar(&p.breaching, "breaching", 200, "UEs made bad, at staggered moments")
	flag.DurationVar(&p.interval, "interval", time.Second, "http probe interval")
	flag.DurationVar(&p.window, "window", 10*time.Second, "statistics window")
	flag.DurationVar(&p.hold, "for", 2*time.Second, "the rule's breach `for`")
	flag.DurationVar(&p.threshold, "threshold", 200*time.Millisecond, "breach when latency_p95 is above this")
	flag.DurationVar(&p.bad, "bad", 250*time.Millisecond, "latency of a bad UE (good UEs answer at once)")
	flag.DurationVar(&p.stagger, "stagger", 50*time.Millisecond, "mean time between two UEs' breaches")
	flag.StringVar(&p.bin, "bin", "", "qodwatch binary (default: build ./cmd/qodwatch)")
	flag.BoolVar(&p.keep, "keep", false, "keep the temporary directory (config, state, daemon log)")
	flag.Parse()
	if err := run(p, *ticks); err != nil {
		fmt.Fprintln(os.Stderr, "breach:", err)
		os.Exit(1)
	}
}

func run(p params, tickList string) error {
	if p.breaching > p.ues || p.breaching < 1 {
		return fmt.Errorf("-breaching must be 1..%d", p.ues)
	}
	var ticks []time.Duration
	for _, s := range strings.Split(tickList, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-ticks: %w", err)
		}
		ticks = append(ticks, d)
	}
	dir, err := os.MkdirTemp("", "qodwatch-breach-")
	if err != nil {
		return err
	}
	if p.keep {
		fmt.Fprintln(os.Stderr, "keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if p.bin == "" {
		p.bin = filepath.Join(dir, "qodwatch")
		fmt.Fprintln(os.Stderr, "building ./cmd/qodwatch ...")
		if out, err := exec.Command("go", "build", "-o", p.bin, "./cmd/qodwatch").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/qodwatch (run from the module root): %w\n%s", err, out)
		}
	}
	targets, err := startTargets(p.ues, p.bad)
	if err != nil {
		return err
	}
	defer targets.close()

	var results []result
	for i, tick := range ticks {
		fmt.Fprintf(os.Stderr, "run %d/%d: tick %v, %d UEs, %d breaching ...\n", i+1, len(ticks), tick, p.ues, p.breaching)
		res, err := measure(p, tick, targets, filepath.Join(dir, fmt.Sprintf("run-%d", i+1)))
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	write, err := stateWriteCost(filepath.Join(dir, "statecost"), p.breaching)
	if err != nil {
		return err
	}
	report(os.Stdout, p, results)
	fmt.Fprintf(os.Stdout, "\nOne intent write alone (daemon.StateFile.Update holding %d sessions, fsync'd): p50 %v, max %v of 50.\n",
		p.breaching, ms2(q(write, .5)), ms2(q(write, 1)))
	return nil
}

// stateWriteCost times what each create waits for before its POST: one
// locked read-modify-write of the state file, fsync'd, with n sessions in
// it. Creates decided together share a write (group commit).
func stateWriteCost(dir string, n int) ([]time.Duration, error) {
	sf, err := daemon.OpenStateFile(dir)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if _, err := sf.Update(func(s *daemon.State) error {
		for i := range n {
			s.AddSession(daemon.Session{UE: ueName(i), ID: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), QoS: "QOS_E",
				Rule: "bench", StartedAt: now, ExpiresAt: now.Add(time.Hour), TransactionID: fmt.Sprintf("tx-%d", i), Origin: "daemon"})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var out []time.Duration
	for i := range 50 {
		start := time.Now()
		txid := fmt.Sprintf("intent-%d", i)
		if _, err := sf.Update(func(s *daemon.State) error {
			s.Intents = append(s.Intents, daemon.Intent{UE: ueName(i), QoS: "QOS_E", Duration: 3600, TransactionID: txid, SentAt: now, Until: now.Add(time.Hour)})
			return nil
		}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
		if _, err := sf.Update(func(s *daemon.State) error { s.DropIntent(txid); return nil }); err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return out, nil
}

func ms2(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

// --- the UEs: one HTTP target per loopback address ----------------------

// ueTarget is one UE's stand-in. bad is when the benchmark made it bad
// (UnixNano, 0: good); firstReq and firstDone are when the first probe
// after that arrived and when its (late) answer was written.
type ueTarget struct {
	addr                     string
	bad, firstReq, firstDone atomic.Int64
	requests                 atomic.Int64
}

type targets struct {
	port    int
	ues     []*ueTarget
	servers []*http.Server
}

// startTargets listens on 127.20.a.b:port for every UE, one port for all
// so that the config can use {{ue.target}}.
func startTargets(n int, bad time.Duration) (*targets, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		first, err := net.Listen("tcp", ueAddr(0)+":0")
		if err != nil {
			return nil, fmt.Errorf("listen on %s (is 127.0.0.0/8 routed to lo?): %w", ueAddr(0), err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for i := 1; i < n && err == nil; i++ {
			var ln net.Listener
			ln, err = net.Listen("tcp", net.JoinHostPort(ueAddr(i), strconv.Itoa(port)))
			if err == nil {
				lns = append(lns, ln)
			}
		}
		if err != nil {
			lastErr = err
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		t := &targets{port: port}
		for i, ln := range lns {
			u := &ueTarget{addr: ueAddr(i)}
			t.ues = append(t.ues, u)
			srv := &http.Server{Handler: u.handler(bad), ReadHeaderTimeout: 5 * time.Second}
			t.servers = append(t.servers, srv)
			go func() { _ = srv.Serve(ln) }()
		}
		return t, nil
	}
	return nil, fmt.Errorf("no port free on every UE address: %w", lastErr)
}

func (t *targets) close() {
	for _, s := range t.servers {
		_ = s.Close()
	}
}

func (t *targets) reset() {
	for _, u := range t.ues {
		u.bad.Store(0)
		u.firstReq.Store(0)
		u.firstDone.Store(0)
		u.requests.Store(0)
	}
}

func ueAddr(i int) string { return fmt.Sprintf("127.20.%d.%d", 1+i/250, 1+i%250) }
func ueIPv4(i int) string { return fmt.Sprintf("10.20.%d.%d", 1+i/250, 1+i%250) }
func ueName(i int) string { return fmt.Sprintf("ue-%04d", i) }

func (u *ueTarget) handler(bad time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		now := time.Now().UnixNano()
		if b := u.bad.Load(); b != 0 && now >= b {
			first := u.firstReq.CompareAndSwap(0, now)
			select { // the scripted network: this UE is slow now
			case <-time.After(bad):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "slow\n")
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			if first {
				u.firstDone.Store(time.Now().UnixNano())
			}
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}

// --- one run ----------------------------------------------------------

type ueLag struct {
	total, wait, rtt, decide, act time.Duration
}

type result struct {
	tick             time.Duration
	breached, bought int
	strays           int // POSTs for UEs that never breached
	early            int // breaching UEs bought for before their breach
	unmeasured       int // breaching UEs whose first bad reply went unrecorded
	lags             []ueLag
	cpu              time.Duration // the daemon's user+system CPU
	wall             time.Duration
}

func measure(p params, tick time.Duration, ts *targets, dir string) (result, error) {
	res := result{tick: tick}
	ts.reset()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return res, err
	}
	sim := qodsim.NewServer(qodsim.Options{MaxRequestLog: 100000})
	defer sim.Close()
	cfgFile := filepath.Join(dir, "qodwatch.yaml")
	if err := os.WriteFile(cfgFile, []byte(config(p, tick, sim.URL, ts.port, dir)), 0o600); err != nil {
		return res, err
	}
	logFile, err := os.Create(filepath.Join(dir, "qodwatch.log"))
	if err != nil {
		return res, err
	}
	defer logFile.Close()

	cmd := exec.Command(p.bin, "run", "--config.file", cfgFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return res, err
	}
	decisions := &decisionLog{at: map[string]time.Time{}}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		decisions.read(io.TeeReader(stderr, logFile))
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-logDone
			_ = cmd.Wait()
		}
	}
	defer stop()

	// Ready when every UE's window is full of good samples.
	need := int64(p.window/p.interval) + 1
	if err := poll(p.window+30*time.Second, "every UE's window to fill", func() bool {
		for _, u := range ts.ues {
			if u.requests.Load() < need {
				return false
			}
		}
		return true
	}); err != nil {
		return res, err
	}

	// Breach p.breaching UEs spread over the index range, one every
	// `stagger` on average, at random phases relative to their probes.
	step := p.ues / p.breaching
	var chosen []int
	for k := 0; k < p.breaching; k++ {
		chosen = append(chosen, k*step)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	next := time.Now()
	for _, i := range chosen {
		next = next.Add(time.Duration(rng.Int64N(int64(2 * p.stagger))))
		time.Sleep(time.Until(next)) // the script's clock, not a wait for readiness
		ts.ues[i].bad.Store(time.Now().UnixNano())
	}
	res.breached = len(chosen)

	// Wait for a POST per breached UE.
	postAt := map[string]time.Time{}
	byIP := map[string]int{}
	for i := range p.ues {
		byIP[ueIPv4(i)] = i
	}
	err = poll(p.hold+10*p.interval+10*tick+30*time.Second, "a POST for every breached UE", func() bool {
		clear(postAt)
		for _, q := range sim.Requests() {
			if q.Method != http.MethodPost || !strings.HasSuffix(q.Path, "/sessions") {
				continue
			}
			var body struct {
				UeID struct {
					IPv4 string `json:"ipv4addr"`
				} `json:"ueId"`
			}
			if json.Unmarshal(q.Body, &body) != nil {
				continue
			}
			if i, ok := byIP[body.UeID.IPv4]; ok {
				if _, seen := postAt[ueName(i)]; !seen {
					postAt[ueName(i)] = q.At
				}
			}
		}
		for _, i := range chosen {
			if _, ok := postAt[ueName(i)]; !ok {
				return false
			}
		}
		return true
	})
	res.wall = time.Since(started)
	stop()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	if err != nil {
		return res, fmt.Errorf("%w (%d of %d UEs got a POST; log in %s, use -keep)", err, len(postAt), len(chosen), dir)
	}
	isChosen := map[string]bool{}
	for _, i := range chosen {
		isChosen[ueName(i)] = true
		u := ts.ues[i]
		post, decided := postAt[ueName(i)], decisions.get(ueName(i))
		bad, req, done := time.Unix(0, u.bad.Load()), time.Unix(0, u.firstReq.Load()), time.Unix(0, u.firstDone.Load())
		switch {
		case !decided.IsZero() && decided.Before(bad):
			// Bought before its breach: a slow good reply tripped the rule.
			res.early++
			continue
		case decided.IsZero() || u.firstDone.Load() == 0:
			fmt.Fprintf(os.Stderr, "%s: breached %s, first bad probe %d, its reply %d, decision %s, POST %s: not measured\n",
				ueName(i), bad.Format(time.StampMicro), u.firstReq.Load(), u.firstDone.Load(), decided.Format(time.StampMicro), post.Format(time.StampMicro))
			res.unmeasured++
			continue
		}
		res.lags = append(res.lags, ueLag{
			total:  post.Sub(bad) - p.hold,
			wait:   req.Sub(bad),
			rtt:    done.Sub(req),
			decide: decided.Sub(done) - p.hold,
			act:    post.Sub(decided),
		})
	}
	for name := range postAt {
		if !isChosen[name] {
			res.strays++
		}
	}
	res.bought = len(postAt)
	return res, nil
}

func config(p params, tick time.Duration, api string, port int, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `api:
  base_url: %s
  auth: {type: none}
  timeout: 10s
  poll_interval: 1h
  max_retries: 0
web: {listen: "127.21.0.1:0"}
log: {level: info, format: json}
defaults:
  application_server: {ipv4: 203.0.113.10}
  window: %s
  rule: bench
  probes:
    - http: {url: "http://{{ue.target}}:%d/", interval: %s, timeout: %s}
rules:
  bench:
    breach: {any: ["latency_p95 > %s"], for: %s}
    recover: {all: ["latency_p95 < %s"], for: 1m}
    qos: QOS_E
    duration: 1h
guards:
  min_session: 1m
  cooldown: 5m
  release_on_shutdown: false
state_dir: %s
tick: %s
ues:
`, api, p.window, port, p.interval, p.interval, p.threshold, p.hold, p.threshold/2, filepath.Join(dir, "state"), tick)
	for i := range p.ues {
		fmt.Fprintf(&b, "  - {name: %s, ipv4: %s, target: %s}\n", ueName(i), ueIPv4(i), ueAddr(i))
	}
	return b.String()
}

// decisionLog keeps the time of each UE's first request decision, read
// from the daemon's JSON log (millisecond timestamps).
type decisionLog struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (d *decisionLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var line struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			UE       string    `json:"ue"`
			Decision string    `json:"decision"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "decision" || line.Decision != "request" {
			continue
		}
		d.mu.Lock()
		if _, ok := d.at[line.UE]; !ok {
			d.at[line.UE] = line.Time
		}
		d.mu.Unlock()
	}
}

func (d *decisionLog) get(ue string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.at[ue]
}

func poll(timeout time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("timed out waiting for " + what)
		case <-t.C:
		}
	}
	return nil
}

// --- the table ------------------------------------------------------------

func report(w io.Writer, p params, rs []result) {
	goal := p.interval + 50*time.Millisecond
	fmt.Fprintf(w, "qodwatch breach-to-POST lag: %d UEs (http probes every %v on 127.20.x.y), %d breaching ~%v apart;\n",
		p.ues, p.interval, p.breaching, p.stagger)
	fmt.Fprintf(w, "rule latency_p95 > %v for %v over a %v window; bad UEs answer in %v. Lag = POST at the simulator - breach - for.\n",
		p.threshold, p.hold, p.window, p.bad)
	fmt.Fprintf(w, "Goal: lag <= one probe interval + 50ms = %v.  (%s)\n\n", goal, strings.Join(append([]string{"go run ./bench/breach"}, os.Args[1:]...), " "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tick\tPOSTs\tstray\tunmeasured\tlag p50\tp95\tmax\tgoal met\tlag-rtt p50\tp95\tmax\tgoal met\tdaemon cpu\t")
	for _, r := range rs {
		tot := pick(r.lags, func(l ueLag) time.Duration { return l.total })
		net := pick(r.lags, func(l ueLag) time.Duration { return l.total - l.rtt })
		fmt.Fprintf(tw, "%v\t%d/%d\t%d\t%d\t%v\t%v\t%v\t%s\t%v\t%v\t%v\t%s\t%.0f%% of a core\t\n", r.tick, r.bought, r.breached, r.strays, r.early+r.unmeasured,
			ms(q(tot, .5)), ms(q(tot, .95)), ms(q(tot, 1)), met(tot, goal),
			ms(q(net, .5)), ms(q(net, .95)), ms(q(net, 1)), met(net, goal),
			100*r.cpu.Seconds()/r.wall.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(w, "lag-rtt leaves out the bad reply's own round trip, which no prober can shorten.")
	fmt.Fprintln(w, "stray: POSTs for UEs never made bad; unmeasured: breaching UEs bought for before their breach or without a recorded bad reply.")
	fmt.Fprintln(w, "\nBreakdown, p50 / p95 / max (see the header of bench/breach/main.go):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tick\twait for a probe\tits rtt\tdecide (stat + loop)\tact (fsync + POST)\tdaemon share\t")
	for _, r := range rs {
		col := func(f func(ueLag) time.Duration) string {
			v := pick(r.lags, f)
			return fmt.Sprintf("%v / %v / %v", ms(q(v, .5)), ms(q(v, .95)), ms(q(v, 1)))
		}
		fmt.Fprintf(tw, "%v\t%s\t%s\t%s\t%s\t%s\t\n", r.tick,
			col(func(l ueLag) time.Duration { return l.wait }),
			col(func(l ueLag) time.Duration { return l.rtt }),
			col(func(l ueLag) time.Duration { return l.decide }),
			col(func(l ueLag) time.Duration { return l.act }),
			col(func(l ueLag) time.Duration { return l.decide + l.act }))
	}
	tw.Flush()
}

// met says whether every UE met the goal, or how many did not.
func met(sorted []time.Duration, goal time.Duration) string {
	if n := countOver(sorted, goal); n > 0 {
		return fmt.Sprintf("no: %d%% over", (100*n+len(sorted)-1)/len(sorted))
	}
	return "yes"
}

func pick(ls []ueLag, f func(ueLag) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ls))
	for i, l := range ls {
		out[i] = f(l)
	}
	slices.Sort(out)
	return out
}

// q is the nearest-rank quantile of sorted values.
func q(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func countOver(sorted []time.Duration, limit time.Duration) int {
	n := 0
	for _, v := range sorted {
		if v > limit {
			n++
		}
	}
	return n
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
