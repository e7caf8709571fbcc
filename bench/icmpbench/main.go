// Command icmpbench measures the ICMP engine (monitor/icmp) against
// thousands of distinct loopback addresses at one echo request per second
// per UE, and Debian's fping on the first size for comparison (issue 3).
// Each size runs in a child process of its own, so that its peak RSS is its
// own. bench/icmp.sh builds and runs it; it prints a table.
//
// The engine records into a monitor.Monitor, as in the daemon, unless
// -recorder=count, which isolates the engine's own cost (the /metrics
// figures then come from a Monitor filled afterwards). /metrics is rendered
// by Monitor.MetricsHandler, as the daemon serves it; -registry renders it
// through client_golang's registry too, for comparison.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qodwatch/qodwatch/monitor"
	"github.com/qodwatch/qodwatch/monitor/icmp"
)

// figures is what one run measured; children print it as JSON.
type figures struct {
	Kind     string  `json:"kind"` // "qodwatch" or "fping"
	UEs      int     `json:"ues"`
	Seconds  float64 `json:"seconds"`
	Mode     string  `json:"mode,omitempty"`
	Recorder string  `json:"recorder,omitempty"`

	Sent      uint64  `json:"sent"`       // by the prober's own count, during the window
	OutEchos  uint64  `json:"out_echos"`  // kernel Icmp OutEchos (+ Icmp6 OutEchos) delta
	CPUSecs   float64 `json:"cpu_s"`      // user+system during the window
	PeakRSS   uint64  `json:"peak_rss"`   // VmHWM bytes
	Received  uint64  `json:"received"`   // whole run
	Lost      uint64  `json:"lost"`       // whole run
	Late      uint64  `json:"late"`       // whole run
	Delayed   uint64  `json:"delayed"`    // sends > 10 ms behind schedule, whole run (with the scrapes)
	DelayedIn uint64  `json:"delayed_in"` // the same during the measured time only
	MaxDelay  float64 `json:"max_delay_ms"`
	SendCalls uint64  `json:"send_calls"`
	RecvCalls uint64  `json:"recv_calls"`

	MetricsBytes int     `json:"metrics_bytes"`
	MetricsMs    float64 `json:"metrics_ms"`  // Monitor.MetricsHandler, uncompressed
	GzipBytes    int     `json:"gzip_bytes"`  // the same page gzipped, as Prometheus asks for it
	GzipMs       float64 `json:"gzip_ms"`     //
	ProbeRSS     uint64  `json:"probe_rss"`   // VmHWM at the end of the measured time, before any scrape
	MonitorRSS   uint64  `json:"monitor_rss"` // VmHWM once a Monitor of the UEs exists and was scraped
	// RegistryMs is the page through client_golang's registry (the Monitor
	// registered as a Collector), with -registry; RegistryRSS the VmHWM after.
	RegistryMs  float64 `json:"registry_ms,omitempty"`
	RegistryRSS uint64  `json:"registry_rss,omitempty"`
}

func main() {
	sizes := flag.String("sizes", "1000,10000,30000", "comma-separated numbers of UEs, one run each")
	duration := flag.Duration("duration", time.Minute, "measured time per run")
	fping := flag.String("fping", "", "path of fping, to compare on the first size (empty: skip)")
	recorder := flag.String("recorder", "count", "where results go: count (the engine's cost alone) or monitor (a monitor.Monitor, as in the daemon)")
	child := flag.Int("child", 0, "internal: run one size and print JSON")
	fpingChild := flag.Int("fping-child", 0, "internal: run fping on this many UEs and print JSON")
	coalesce := flag.Duration("coalesce", 0, "icmp.Options.Coalesce (0: the engine's default)")
	registry := flag.Bool("registry", false, "also render /metrics through client_golang's registry, after the RSS figures (for comparison)")
	cpuProfile := flag.String("cpuprofile", "", "with -child: write a CPU profile of the run here")
	flag.StringVar(&memProfile, "memprofile", "", "with -child: write a heap profile here once /metrics was scraped")
	flag.Parse()
	if memProfile != "" {
		runtime.MemProfileRate = 4096
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(pf)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "icmpbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	var err error
	switch {
	case *child > 0:
		err = printJSON(runEngine(*child, *duration, *recorder, *coalesce, *registry))
	case *fpingChild > 0:
		err = printJSON(runFping(*fping, *fpingChild, *duration))
	default:
		err = runAll(*sizes, *duration, *fping, *recorder, *coalesce, *registry)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "icmpbench:", err)
		os.Exit(1)
	}
}

func printJSON(f figures, err error) error {
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}

// runAll runs every size and fping in child processes and prints the table.
func runAll(sizeList string, d time.Duration, fping, recorder string, coalesce time.Duration, registry bool) error {
	var sizes []int
	for _, s := range strings.Split(sizeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad size %q", s)
		}
		sizes = append(sizes, n)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var rows []figures
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "qodwatch engine, %d UEs, %v ...\n", n, d)
		f, err := runChild(self, "-child", strconv.Itoa(n), "-duration", d.String(), "-recorder", recorder, "-coalesce", coalesce.String(),
			"-registry="+strconv.FormatBool(registry))
		if err != nil {
			return fmt.Errorf("%d UEs: %w", n, err)
		}
		rows = append(rows, f)
	}
	var fp *figures
	if fping != "" {
		n := sizes[0]
		fmt.Fprintf(os.Stderr, "fping, %d UEs, %v ...\n", n, d)
		f, err := runChild(self, "-fping-child", strconv.Itoa(n), "-duration", d.String(), "-fping", fping)
		if err != nil {
			return fmt.Errorf("fping: %w", err)
		}
		fp = &f
	}
	printTable(os.Stdout, rows, fp)
	return nil
}

func runChild(self string, args ...string) (figures, error) {
	var out bytes.Buffer
	cmd := exec.Command(self, args...)
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return figures{}, err
	}
	var f figures
	err := json.Unmarshal(out.Bytes(), &f)
	return f, err
}

func printTable(w io.Writer, rows []figures, fp *figures) {
	registry := false
	for _, f := range rows {
		registry = registry || f.RegistryMs > 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "prober\tUEs\tsent/s (own)\tsent/s (OutEchos)\tCPU µs/packet\t% of a core\tpeak RSS MiB\treplies matched\tloss %\tsends >10ms late (measured/run)\t/metrics KiB\trender ms\tgzip KiB\tgzip ms\t+monitor RSS MiB\t"
	if registry {
		header += "registry ms\tRSS after MiB\t"
	}
	fmt.Fprintln(tw, header)
	for _, f := range append(rows, deref(fp)...) {
		name := f.Kind
		if f.Mode != "" {
			name += " (" + f.Mode + ")"
		}
		metricsKiB, render, gzipKiB, gzipMs := "-", "-", "-", "-"
		if f.MetricsBytes > 0 {
			metricsKiB = fmt.Sprintf("%.0f", float64(f.MetricsBytes)/1024)
			render = fmt.Sprintf("%.0f", f.MetricsMs)
			gzipKiB = fmt.Sprintf("%.0f", float64(f.GzipBytes)/1024)
			gzipMs = fmt.Sprintf("%.0f", f.GzipMs)
		}
		delayed, rss, monRSS := "-", "-", "-"
		if f.Kind == "qodwatch" {
			delayed = fmt.Sprintf("%d/%d", f.DelayedIn, f.Delayed)
			rss = fmt.Sprintf("%.1f", float64(f.PeakRSS)/(1<<20))
		}
		if f.MonitorRSS > 0 {
			monRSS = fmt.Sprintf("%.1f", float64(f.MonitorRSS)/(1<<20))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%.1f\t%s\t%d\t%.4f\t%s\t%s\t%s\t%s\t%s\t%s\t",
			name, f.UEs, float64(f.Sent)/f.Seconds, float64(f.OutEchos)/f.Seconds,
			cpuPerPacket(f)*1e6, 100*f.CPUSecs/f.Seconds, rss,
			f.Received, lossPct(f), delayed, metricsKiB, render, gzipKiB, gzipMs, monRSS)
		if registry {
			regMs, regRSS := "-", "-"
			if f.RegistryMs > 0 {
				regMs = fmt.Sprintf("%.0f", f.RegistryMs)
				regRSS = fmt.Sprintf("%.1f", float64(f.RegistryRSS)/(1<<20))
			}
			fmt.Fprintf(tw, "%s\t%s\t", regMs, regRSS)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if fp != nil && len(rows) > 0 && rows[0].UEs == fp.UEs && cpuPerPacket(*fp) > 0 {
		fmt.Fprintf(w, "\nCPU per packet sent, qodwatch/fping at %d UEs: %.2f\n", fp.UEs, cpuPerPacket(rows[0])/cpuPerPacket(*fp))
	}
	if len(rows) > 0 {
		rss := "peak RSS: the engine recording into a Monitor, with the scrape"
		if rows[0].Recorder == "count" {
			rss = "peak RSS: the engine alone; +monitor RSS: with a Monitor of full windows built and scraped afterwards"
		}
		if registry {
			rss += "; registry ms: the same page through client_golang's registry, after the RSS figures"
		}
		fmt.Fprintf(w, "(%.0f s per run; recorder %s; loss = lost/(matched+lost) over the run; packets per second from the prober's count and the kernel's OutEchos;\n"+
			" /metrics: Monitor.MetricsHandler with the Go and process collectors, scraped over loopback, best of 3; %s)\n",
			rows[0].Seconds, rows[0].Recorder, rss)
	}
}

func deref(f *figures) []figures {
	if f == nil {
		return nil
	}
	return []figures{*f}
}

func cpuPerPacket(f figures) float64 {
	if f.Sent == 0 {
		return 0
	}
	return f.CPUSecs / float64(f.Sent)
}

func lossPct(f figures) float64 {
	if f.Received+f.Lost == 0 {
		return 0
	}
	return 100 * float64(f.Lost) / float64(f.Received+f.Lost)
}

// loopbackAddrs returns n distinct addresses of 127.0.0.0/8 from 127.1.0.1.
func loopbackAddrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{127, byte(1 + i/(256*250)), byte(i / 250 % 256), byte(i%250 + 1)})
	}
	return out
}

// countRecorder only counts, to isolate the engine's cost.
type countRecorder struct{ n atomic.Uint64 }

func (c *countRecorder) Record(monitor.Result) { c.n.Add(1) }

// runEngine runs the engine on n loopback UEs and measures it.
func runEngine(n int, d time.Duration, recorder string, coalesce time.Duration, registry bool) (figures, error) {
	f := figures{Kind: "qodwatch", UEs: n, Recorder: recorder}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var eng *icmp.Engine
	var mon *monitor.Monitor
	var rec monitor.Recorder
	var engineReady = make(chan struct{})
	switch recorder {
	case "count":
		rec = &countRecorder{}
	case "monitor":
		var err error
		mon, err = monitor.New(monitor.Options{
			Logger:            log,
			FleetRTTHistogram: true, // as in the daemon
			ICMP: func(ts []monitor.ICMPTarget) {
				<-engineReady
				targets := make([]icmp.Target, len(ts))
				for i, t := range ts {
					targets[i] = icmp.Target(t)
				}
				eng.SetTargets(targets)
			},
		})
		if err != nil {
			return f, err
		}
		rec = mon
	default:
		return f, fmt.Errorf("unknown recorder %q", recorder)
	}
	eng, err := icmp.New(icmp.Options{Recorder: rec, Logger: log, Coalesce: coalesce})
	if err != nil {
		return f, err
	}
	close(engineReady)
	f.Mode = eng.Mode().String()

	addrs := loopbackAddrs(n)
	probe := monitor.ICMP{Interval: time.Second, Packets: 1, Timeout: time.Second}
	stopMon := func() {}
	if mon != nil {
		if err := mon.SetUEs(monitorUEs(addrs, probe)); err != nil {
			return f, err
		}
		monCtx, stopMonitor := context.WithCancel(ctx)
		defer stopMonitor()
		monDone := make(chan error, 1)
		go func() { monDone <- mon.Run(monCtx) }()
		// Before the engine stops: no more target lists from the Monitor.
		stopMon = func() { stopMonitor(); <-monDone }
	} else {
		ts := make([]icmp.Target, n)
		for i, a := range addrs {
			ts[i] = icmp.Target{UE: fmt.Sprintf("ue-%05d", i), Addr: a, Interval: probe.Interval, Packets: 1, Timeout: probe.Timeout}
		}
		eng.SetTargets(ts)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- eng.Run(ctx) }()
	<-eng.Ready()

	// Warm up for one full cycle (every UE pinged once), then measure.
	if err := waitUntil(10*time.Second, func() bool { return eng.Counters().Sent >= uint64(n) }); err != nil {
		return f, fmt.Errorf("warm-up: %w (counters %+v)", err, eng.Counters())
	}
	c0, cpu0, echos0, t0 := eng.Counters(), cpuTime(), outEchos(), time.Now()
	timer := time.NewTimer(d)
	<-timer.C
	c1, cpu1, echos1, t1 := eng.Counters(), cpuTime(), outEchos(), time.Now()
	f.Seconds = t1.Sub(t0).Seconds()
	f.Sent = c1.Sent - c0.Sent
	f.CPUSecs = cpu1 - cpu0
	f.OutEchos = echos1 - echos0
	f.SendCalls = c1.SendCalls - c0.SendCalls
	f.RecvCalls = c1.RecvCalls - c0.RecvCalls
	f.DelayedIn = c1.DelayedSends - c0.DelayedSends

	f.ProbeRSS = vmHWM()
	if mon != nil { // the Monitor the engine recorded into, as the daemon serves it
		scrape(&f, mon)
		f.MonitorRSS = vmHWM()
		if err := writeHeapProfile(); err != nil {
			return f, err
		}
	}

	// Stop sending and let the packets in flight be answered or time out.
	stopMon()
	eng.SetTargets(nil)
	_ = waitUntil(5*time.Second, func() bool {
		c := eng.Counters()
		return c.Received+c.Lost+c.SendErrors >= c.Sent && c.Sent > 0
	})
	end := eng.Counters()
	f.Received, f.Lost, f.Late = end.Received, end.Lost, end.Late
	f.Delayed, f.MaxDelay = end.DelayedSends, float64(end.MaxSendDelay)/1e6
	f.PeakRSS = vmHWM()

	// The /metrics page of a Monitor with n UEs whose windows are full.
	if mon == nil {
		var err error
		if mon, err = filledMonitor(addrs, probe, log); err != nil {
			return f, err
		}
		scrape(&f, mon)
		f.MonitorRSS = vmHWM()
	}
	if registry { // last: it costs far more memory than anything above
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), mon)
		_, _, f.RegistryMs = render(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), "")
		f.RegistryRSS = vmHWM()
	}
	cancel()
	<-runDone
	return f, nil
}

// memProfile is where -memprofile writes the heap profile.
var memProfile string

// writeHeapProfile writes the heap profile for -memprofile, and what the Go
// runtime holds, to see how the peak RSS comes about.
func writeHeapProfile() error {
	if memProfile == "" {
		return nil
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stderr, "heap: alloc %.1f MiB, inuse %.1f MiB, sys %.1f MiB, released %.1f MiB; stacks %.1f MiB; total sys %.1f MiB; %d GCs; VmHWM %.1f MiB\n",
		mib(ms.HeapAlloc), mib(ms.HeapInuse), mib(ms.HeapSys), mib(ms.HeapReleased), mib(ms.StackSys), mib(ms.Sys), ms.NumGC, mib(vmHWM()))
	runtime.GC() // the profile is as of the last GC: let it include the scrape
	pf, err := os.Create(memProfile)
	if err != nil {
		return err
	}
	defer pf.Close()
	return pprof.Lookup("heap").WriteTo(pf, 0)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// scrape renders the Monitor's /metrics as the daemon serves it:
// MetricsHandler over a registry with the Go and process collectors.
func scrape(f *figures, mon *monitor.Monitor) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c := mon.FleetRTTCollector(); c != nil {
		reg.MustRegister(c)
	}
	h := mon.MetricsHandler(reg)
	f.MetricsBytes, _, f.MetricsMs = render(h, "")
	_, f.GzipBytes, f.GzipMs = render(h, "gzip")
}

func monitorUEs(addrs []netip.Addr, probe monitor.ICMP) []monitor.UE {
	ues := make([]monitor.UE, len(addrs))
	for i, a := range addrs {
		ues[i] = monitor.UE{Name: fmt.Sprintf("ue-%05d", i), Addr: a.String(), Probes: []monitor.Probe{probe}}
	}
	return ues
}

// filledMonitor returns a Monitor of the UEs with a full window of ICMP
// results each (one per second), as after a while in the daemon.
func filledMonitor(addrs []netip.Addr, probe monitor.ICMP, log *slog.Logger) (*monitor.Monitor, error) {
	mon, err := monitor.New(monitor.Options{Logger: log, ICMP: func([]monitor.ICMPTarget) {}})
	if err != nil {
		return nil, err
	}
	ues := monitorUEs(addrs, probe)
	if err := mon.SetUEs(ues); err != nil {
		return nil, err
	}
	now := time.Now()
	window := mon.Window()
	for s := window; s > 0; s -= time.Second {
		at := now.Add(-s)
		for i, u := range ues {
			r := monitor.Result{UE: u.Name, Probe: monitor.KindICMP, At: at, RTT: time.Duration(200+i%300) * time.Microsecond}
			if (i+int(s/time.Second))%97 == 0 {
				r.Lost, r.RTT = true, 0
			}
			mon.Record(r)
		}
	}
	return mon, nil
}

// render scrapes h over loopback HTTP as Prometheus would, with the given
// Accept-Encoding, and returns the page's size, its size on the wire and
// the time the scrape took: the best of three, as a warm scrape. The page
// is counted as it streams, not kept.
func render(h http.Handler, encoding string) (size, wire int, ms float64) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	best := time.Duration(1<<63 - 1)
	for range 3 {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		if err != nil {
			return 0, 0, 0
		}
		req.Header.Set("Accept", "text/plain")
		req.Header.Set("Accept-Encoding", encoding) // set: the client leaves the body as sent
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scrape:", err)
			return 0, 0, 0
		}
		counted := &countingReader{r: resp.Body}
		var body io.Reader = counted
		if resp.Header.Get("Content-Encoding") == "gzip" {
			if body, err = gzip.NewReader(counted); err != nil {
				fmt.Fprintln(os.Stderr, "scrape:", err)
				return 0, 0, 0
			}
		}
		n, _ := io.Copy(io.Discard, body)
		resp.Body.Close()
		best = min(best, time.Since(start))
		size, wire = int(n), counted.n
	}
	return size, wire, float64(best) / 1e6
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", timeout)
		}
		<-tick.C
	}
	return nil
}

// cpuTime is the process's user+system CPU seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// outEchos is the kernel's count of echo requests sent (IPv4 and IPv6).
func outEchos() uint64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var total uint64
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "Icmp: ") || !strings.HasPrefix(lines[i+1], "Icmp: ") {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for k, name := range names {
			if name == "OutEchos" && k < len(values) {
				v, _ := strconv.ParseUint(values[k], 10, 64)
				total += v
			}
		}
		break
	}
	if b, err := os.ReadFile("/proc/net/snmp6"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) == 2 && fs[0] == "Icmp6OutEchos" {
				v, _ := strconv.ParseUint(fs[1], 10, 64)
				total += v
			}
		}
	}
	return total
}

// vmHWM is the process's peak resident set size in bytes.
func vmHWM() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			fs := strings.Fields(line)
			if len(fs) >= 2 {
				kb, _ := strconv.ParseUint(fs[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// runFping runs fping on n loopback addresses for d and measures it the
// same way: its CPU from the kernel's rusage of the child, its packets from
// OutEchos and its own summary.
func runFping(path string, n int, d time.Duration) (figures, error) {
	f := figures{Kind: "fping", UEs: n}
	if path == "" {
		return f, fmt.Errorf("no fping path")
	}
	// The targets go on stdin (fping reads them there when none are
	// given): 100,000 of them overflow an argument list.
	var targets strings.Builder
	for _, a := range loopbackAddrs(n) {
		targets.WriteString(a.String())
		targets.WriteByte('\n')
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, "-l", "-p", "1000", "-i", "1", "-q")
	cmd.Stdin = strings.NewReader(targets.String())
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	echos0, t0 := outEchos(), time.Now()
	if err := cmd.Start(); err != nil {
		return f, err
	}
	timer := time.NewTimer(d)
	<-timer.C
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait() // fping exits non-zero after SIGINT
	f.Seconds = time.Since(t0).Seconds()
	f.OutEchos = outEchos() - echos0
	if ps := cmd.ProcessState; ps != nil {
		f.CPUSecs = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	// Summary lines: "127.1.0.1 : xmt/rcv/%loss = 60/60/0%, min/avg/max = ..."
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "xmt/rcv/%loss = ")
		if i < 0 {
			continue
		}
		parts := strings.SplitN(strings.TrimRight(strings.Fields(line[i+len("xmt/rcv/%loss = "):])[0], ","), "/", 3)
		if len(parts) < 2 {
			continue
		}
		x, _ := strconv.ParseUint(parts[0], 10, 64)
		r, _ := strconv.ParseUint(parts[1], 10, 64)
		f.Sent += x
		f.Received += r
		f.Lost += x - r
	}
	if f.Sent == 0 {
		f.Sent = f.OutEchos
	}
	return f, nil
}
