// Command closedloop is the driver of bench/closedloop/run.sh (issue 10).
// It runs inside the server namespace the script made: it serves the QoD
// simulator, starts the real qodwatch binary against it, sends a bulk UDP
// flow to each latency UE, plays one episode per UE by changing the tbf
// rates of its link, and reports per episode what the money went on:
// onset→POST minus breach `for`, clean→DELETE minus recover `for`,
// sessions bought, paid session-seconds against degraded seconds, false
// sessions. It exits 1 if a goal of the issue is missed.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// Rule timings, as in the testbed.
const (
	breachFor  = 5 * time.Second
	recoverFor = 10 * time.Second
	minSession = 20 * time.Second
	icmpEvery  = 200 * time.Millisecond // 5 packets a second
	tputEvery  = 2 * time.Second
	warmup     = 10 * time.Second // clean measurements before the episodes
)

// episode is what one UE goes through: the spans its link is degraded.
type episode struct {
	name      string
	kind      string // latency | throughput
	degraded  []span // offsets from the start of the episodes
	terminate bool   // the network ends the session 10 s after its POST
	real      bool   // has a degradation at least breach for long: a session is expected
}

type span struct{ from, to time.Duration }

func (s span) len() time.Duration { return s.to - s.from }

// episodes are the episodes of a run, one UE each: all of them, or only
// the blips with the clean control (to run them at another window).
func episodes(reduced bool, which string) ([]episode, error) {
	long, flap, term, tput, blips := 60*time.Second, 60*time.Second, 60*time.Second, 60*time.Second, 5
	if reduced {
		long, flap, term, tput, blips = 25*time.Second, 36*time.Second, 30*time.Second, 25*time.Second, 3
	}
	var flapping, blipping []span
	for t := time.Duration(0); t < flap; t += 6 * time.Second {
		flapping = append(flapping, span{t, t + 3*time.Second})
	}
	for i := range blips {
		t := time.Duration(i) * 12 * time.Second
		blipping = append(blipping, span{t, t + 2*time.Second})
	}
	blips2 := episode{name: "blips 2s", kind: "latency", degraded: blipping}
	blips35 := episode{name: "blips 3.5s", kind: "latency", degraded: []span{{0, 3500 * time.Millisecond}, {15 * time.Second, 18500 * time.Millisecond}}}
	control := episode{name: "clean control", kind: "latency"}
	switch which {
	case "all":
		return []episode{
			{name: "long degrade", kind: "latency", degraded: []span{{0, long}}, real: true},
			{name: "flapping 3s/3s", kind: "latency", degraded: flapping},
			blips2,
			control,
			{name: "network ends the session", kind: "latency", degraded: []span{{0, term}}, terminate: true, real: true},
			{name: "rate drop (throughput rule)", kind: "throughput", degraded: []span{{0, tput}}, real: true},
			blips35,
		}, nil
	case "blips":
		return []episode{blips2, blips35, control}, nil
	}
	return nil, fmt.Errorf("episodes %q: want all or blips", which)
}

func main() {
	bin := flag.String("bin", "", "the qodwatch binary")
	dir := flag.String("dir", "", "a directory for the config, state and logs")
	nUEs := flag.Int("ues", 7, "UE namespaces the script made")
	reduced := flag.Bool("reduced", false, "shorter episodes, for CI")
	which := flag.String("episodes", "all", "all, or blips (the blips and the control only)")
	win := flag.String("window", "30s", "defaults.window: a duration, or default to leave it unset (the daemon's default)")
	count := flag.Bool("count", false, "print how many UE namespaces the episodes need, and exit")
	serve := flag.String("serve", "", "internal: serve throughput bytes on this address (in a UE namespace)")
	flag.Parse()
	if *serve != "" {
		serveBytes(*serve)
		return
	}
	eps, err := episodes(*reduced, *which)
	if err != nil {
		log.Fatal(err)
	}
	if *count {
		fmt.Println(len(eps))
		return
	}
	if *win != "default" {
		if _, err := time.ParseDuration(*win); err != nil {
			log.Fatalf("-window: %v", err)
		}
	}
	if *nUEs != len(eps) {
		log.Fatalf("closedloop: %d UE namespaces for %d episodes", *nUEs, len(eps))
	}
	if !run(*bin, *dir, *win, eps) {
		os.Exit(1)
	}
}

func ueAddr(i int) string  { return fmt.Sprintf("198.18.10.%d", 4*(i+1)+2) }
func srvAddr(i int) string { return fmt.Sprintf("198.18.10.%d", 4*(i+1)+1) }
func ueName(i int) string  { return fmt.Sprintf("ue%d", i+1) }

// serveBytes answers every GET with up to 4 MiB of random bytes.
func serveBytes(addr string) {
	blob := make([]byte, 4<<20)
	rand.Read(blob)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "blob", time.Time{}, strings.NewReader(string(blob)))
	})))
}

func run(bin, dir, window string, eps []episode) bool {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sim := qodsim.New(qodsim.Options{})
	defer sim.Close()
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go http.Serve(simLn, sim)

	// The throughput UE serves bytes from its own namespace.
	for i, ep := range eps {
		if ep.kind != "throughput" {
			continue
		}
		self, _ := os.Executable()
		cmd := exec.Command("ip", "netns", "exec", fmt.Sprintf("q10-ue%d", i+1), self, "-serve", ueAddr(i)+":8080")
		out, err := cmd.StdoutPipe()
		must(err)
		cmd.Stderr = os.Stderr
		must(cmd.Start())
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		buf := make([]byte, 6)
		if _, err := io.ReadFull(out, buf); err != nil {
			log.Fatalf("throughput server: %v", err)
		}
	}

	// A bulk flow to each latency UE: harmless at 100 Mbit/s, a full
	// queue (tbf latency 200 ms) at 2 Mbit/s.
	for i, ep := range eps {
		if ep.kind == "latency" {
			go blast(ctx, ueAddr(i))
		}
	}

	web := freeAddr()
	notify := freeAddr()
	cfgPath := filepath.Join(dir, "config.yaml")
	must(os.WriteFile(cfgPath, []byte(config(simLn.Addr().String(), web, notify, dir, window, eps)), 0o600))
	logf, err := os.Create(filepath.Join(dir, "qodwatch.log"))
	must(err)
	defer logf.Close()
	daemon := exec.Command(bin, "run", "--config.file", cfgPath)
	daemon.Stdout, daemon.Stderr = logf, logf
	daemon.Env = append(os.Environ(), "Q10_NOTIFY_TOKEN=closedloop-notify-token")
	must(daemon.Start())
	stopped := false
	defer func() {
		if !stopped {
			_ = daemon.Process.Kill()
			_ = daemon.Wait()
		}
	}()
	waitReady(web)
	w := watch(ctx, sim, eps)
	// Clean measurements first: a UE's `for` reads the newest ones only.
	time.Sleep(warmup)

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	terminated := map[string]time.Time{} // session id -> when the network ended it
	var testbed []error
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := play(start, i, ep); err != nil {
				mu.Lock()
				testbed = append(testbed, err)
				mu.Unlock()
			}
		}()
		if ep.terminate {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if id, at := terminateAfter(sim, ueAddr(i), 10*time.Second, start.Add(ep.degraded[0].to)); id != "" {
					mu.Lock()
					terminated[id] = at
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	// Recovery: recover for, min_session and a margin after the last clean;
	// with no real degradation, only as long as a late POST could take.
	tail := breachFor + 3*time.Second
	for _, ep := range eps {
		if ep.real {
			tail = recoverFor + minSession/2 + 3*time.Second
		}
	}
	time.Sleep(tail)
	end := time.Now()
	_ = daemon.Process.Signal(syscall.SIGTERM)
	_ = daemon.Wait()
	stopped = true

	ok := report(w.sessions(sim, end, terminated), start, window, eps)
	for _, err := range testbed {
		fmt.Println(err)
		ok = false
	}
	return ok
}

// play applies the episode's degradations to UE i's link at their times.
// A degraded link must still carry traffic (the bulk flow or the probe's):
// a testbed fault, such as a tbf that can no longer send its queue, would
// otherwise be blamed on the daemon.
func play(start time.Time, i int, ep episode) error {
	ns, dev := link(i, ep.kind)
	for _, s := range ep.degraded {
		time.Sleep(time.Until(start.Add(s.from)))
		shape(i, ep.kind, true)
		before := sentBytes(ns, dev)
		time.Sleep(time.Until(start.Add(s.to)))
		after := sentBytes(ns, dev)
		shape(i, ep.kind, false)
		if after <= before {
			return fmt.Errorf("testbed: %s in %s sent nothing while degraded at %s..%s", dev, ns, s.from, s.to)
		}
	}
	return nil
}

// link is the device shaped for an episode of kind and its namespace: for
// latency, the server side (the bulk flow goes to the UE); for throughput,
// the UE side (the probe downloads from the UE).
func link(i int, kind string) (ns, dev string) {
	if kind == "throughput" {
		return fmt.Sprintf("q10-ue%d", i+1), fmt.Sprintf("q10u%d", i+1)
	}
	return "q10-srv", fmt.Sprintf("q10s%d", i+1)
}

// sentBytes is what the link's root qdisc has sent so far.
func sentBytes(ns, dev string) int64 {
	out, err := exec.Command("tc", "-s", "-n", ns, "qdisc", "show", "dev", dev, "root").Output()
	if err != nil {
		log.Fatalf("tc -s on %s: %v", dev, err)
	}
	var n int64
	if i := strings.Index(string(out), "Sent "); i >= 0 {
		fmt.Sscanf(string(out[i:]), "Sent %d bytes", &n)
	}
	return n
}

// shape degrades or restores UE i's link: for latency, the server side's
// tbf to 2 Mbit/s under the bulk flow (a 200 ms queue); for throughput,
// the UE side's to 4 Mbit/s.
func shape(i int, kind string, bad bool) {
	ns, dev := link(i, kind)
	rate, burst, latency := "100mbit", "64kb", "200ms"
	if kind == "throughput" {
		latency = "300ms"
	}
	if bad {
		rate, burst = "2mbit", "8kb"
		if kind == "throughput" {
			rate = "4mbit"
		}
	}
	out, err := exec.Command("tc", "-n", ns, "qdisc", "change", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "latency", latency).CombinedOutput()
	if err != nil {
		log.Fatalf("tc change on %s: %v: %s", dev, err, out)
	}
}

// blast sends 1000-byte UDP datagrams to addr at 4 Mbit/s until ctx ends,
// from an unconnected socket, so the UE's port-unreachable answers are
// ignored rather than failing writes.
func blast(ctx context.Context, addr string) {
	c, err := net.ListenPacket("udp", ":0")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	to := &net.UDPAddr{IP: net.ParseIP(addr), Port: 9}
	buf := make([]byte, 1000)
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = c.WriteTo(buf, to)
		}
	}
}

// terminateAfter ends the UE's first session `after` its start, as the
// network would, if that is before the degradation ends at deadline.
func terminateAfter(sim *qodsim.Simulator, ip string, after time.Duration, deadline time.Time) (string, time.Time) {
	for time.Now().Before(deadline) {
		for _, s := range sim.Sessions() {
			if s.UE.IPv4Addr == ip {
				time.Sleep(time.Until(s.StartedAt.Add(after)))
				if err := sim.Terminate(s.ID); err != nil {
					log.Printf("terminate %s: %v", s.ID, err)
					return "", time.Time{}
				}
				return s.ID, time.Now()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", time.Time{}
}

func config(api, web, notify, dir, window string, eps []episode) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by bench/closedloop
api:
  base_url: http://%s/qod/v1
  dialect: devedge
  auth: {type: none}
  poll_interval: 1s
notifications:
  public_url: http://%s/cb
  listen: %s
  token: ${Q10_NOTIFY_TOKEN}
web:
  listen: %s
log: {level: info, format: text}
state_dir: %s
`, api, notify, notify, web, filepath.Join(dir, "state"))
	if window != "default" {
		fmt.Fprintf(&b, "defaults:\n  window: %s\n", window)
	}
	b.WriteString("ues:\n")
	for i, ep := range eps {
		fmt.Fprintf(&b, "  - name: %s\n    ipv4: %s\n    application_server: {ipv4: %s}\n", ueName(i), ueAddr(i), srvAddr(i))
		if ep.kind == "throughput" {
			fmt.Fprintf(&b, "    rule: tput\n    probes:\n      - throughput: {url: \"http://%s:8080/blob\", interval: %s, max_time: 1s, max_bytes: 2MiB}\n", ueAddr(i), tputEvery)
			continue
		}
		fmt.Fprintf(&b, "    rule: lat\n    probes:\n      - icmp: {interval: %s, packets: 1, timeout: %s}\n", icmpEvery, icmpEvery)
	}
	fmt.Fprintf(&b, `rules:
  lat:
    breach: {any: ["latency_p95 > 80ms"], for: %[1]s}
    recover: {all: ["latency_p95 < 40ms", "loss < 1%%"], for: %[2]s}
    qos: QOS_E
    duration: 10m
  tput:
    breach: {any: ["throughput_p50 < 10Mbps"], for: %[1]s}
    recover: {all: ["throughput_p50 > 20Mbps"], for: %[2]s}
    qos: QOS_L
    duration: 10m
guards:
  min_session: %[3]s
  cooldown: 10s
  release_on_shutdown: true
`, breachFor, recoverFor, minSession)
	return b.String()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(web string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get("http://" + web + "/-/ready"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatal("qodwatch did not become ready in 30s")
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// session is one session the simulator held, from its create to its end.
type session struct {
	id         string
	ue         int // episode index
	start, end time.Time
	how        string // released | terminated | open at the end
}

// watcher notes every session the simulator holds, polling it every 20 ms:
// the simulator's own start time, and when it was last seen.
type watcher struct {
	mu   sync.Mutex
	seen map[string]*session
}

func watch(ctx context.Context, sim *qodsim.Simulator, eps []episode) *watcher {
	w := &watcher{seen: map[string]*session{}}
	byIP := map[string]int{}
	for i := range eps {
		byIP[ueAddr(i)] = i
	}
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := time.Now()
			w.mu.Lock()
			for _, s := range sim.Sessions() {
				got := w.seen[s.ID]
				if got == nil {
					i, ok := byIP[s.UE.IPv4Addr]
					if !ok {
						continue
					}
					got = &session{id: s.ID, ue: i, start: s.StartedAt}
					w.seen[s.ID] = got
				}
				got.end = now
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// sessions ends each session at its DELETE, its termination by the network,
// or, if still held, at end.
func (w *watcher) sessions(sim *qodsim.Simulator, end time.Time, terminated map[string]time.Time) []session {
	deletes := map[string]time.Time{}
	for _, r := range sim.Requests() {
		if r.Method == http.MethodDelete && r.Status/100 == 2 {
			deletes[r.Path[strings.LastIndex(r.Path, "/")+1:]] = r.At
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []session
	for id, s := range w.seen {
		c := *s
		switch {
		case !deletes[id].IsZero():
			c.end, c.how = deletes[id], "released"
		case !terminated[id].IsZero():
			c.end, c.how = terminated[id], "terminated"
		case end.Sub(c.end) < time.Second:
			c.end, c.how = end, "open at the end"
		default:
			c.how = "gone"
		}
		out = append(out, c)
	}
	return out
}

// report prints one line per episode and checks the goals.
func report(all []session, start time.Time, window string, eps []episode) bool {
	ok := true
	if d, err := time.ParseDuration(window); err == nil && d == 6*breachFor {
		window += " (6x for)"
	} else if window == "default" {
		window = "unset (the default, 30s)"
	}
	fmt.Printf("breach for %s, recover for %s, min_session %s, window %s, icmp every %s, throughput every %s\n",
		breachFor, recoverFor, minSession, window, icmpEvery, tputEvery)
	fmt.Printf("%-40s %8s %14s %15s %9s %9s %6s %s\n", "episode", "sessions", "onset→POST−for", "clean→DEL−recov", "paid s", "degr. s", "false", "goals")
	for i, ep := range eps {
		var ss []session
		for _, s := range all {
			if s.ue == i {
				ss = append(ss, s)
			}
		}
		var paid, degraded time.Duration
		for _, s := range ss {
			paid += s.end.Sub(s.start)
		}
		for _, d := range ep.degraded {
			degraded += d.len()
		}
		probe := icmpEvery
		if ep.kind == "throughput" {
			probe = tputEvery
		}
		onset, clean := "-", "-"
		var miss []string
		if ep.real && len(ep.degraded) > 0 && len(ss) > 0 {
			first := ss[0]
			for _, s := range ss {
				if s.start.Before(first.start) {
					first = s
				}
			}
			lag := first.start.Sub(start.Add(ep.degraded[0].from)) - breachFor
			onset = fmt.Sprintf("%.2fs", lag.Seconds())
			if ep.kind == "latency" && lag > probe+500*time.Millisecond {
				miss = append(miss, fmt.Sprintf("onset→POST−for > %s", probe+500*time.Millisecond))
			}
			last := ss[0]
			for _, s := range ss {
				if s.end.After(last.end) {
					last = s
				}
			}
			if last.how == "released" {
				cl := last.end.Sub(start.Add(ep.degraded[len(ep.degraded)-1].to)) - recoverFor
				clean = fmt.Sprintf("%.2fs", cl.Seconds())
				if !ep.terminate && cl > probe+time.Second {
					miss = append(miss, fmt.Sprintf("clean→DELETE−recover > %s", probe+time.Second))
				}
			}
		}
		falseN := 0
		if !ep.real {
			falseN = len(ss)
		}
		switch {
		case (ep.name == "long degrade" || ep.kind == "throughput") && len(ss) != 1:
			miss = append(miss, "want 1 session")
		case strings.HasPrefix(ep.name, "flapping") && len(ss) > 1:
			miss = append(miss, "want at most 1 session")
		case strings.HasPrefix(ep.name, "blips") && len(ss) > 0, ep.name == "clean control" && len(ss) > 0:
			miss = append(miss, "want 0 sessions")
		case ep.real && len(ss) == 0:
			miss = append(miss, "want a session")
		}
		if limit := time.Duration(1.1*float64(degraded)) + minSession*time.Duration(max(len(ss), 1)); paid > limit && len(ss) > 0 {
			miss = append(miss, fmt.Sprintf("paid > 1.1 x degraded + min_session (%s)", limit))
		}
		verdict := "met"
		if len(miss) > 0 {
			verdict, ok = "MISSED: "+strings.Join(miss, "; "), false
		}
		fmt.Printf("%-40s %8d %14s %15s %9.1f %9.1f %6d %s\n", ep.name, len(ss), onset, clean, paid.Seconds(), degraded.Seconds(), falseN, verdict)
	}
	return ok
}
