package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

//go:embed demo.yaml
var demoConfig string

// The demo's script: the stand-in UE answers fast, then slowly for a
// while, then fast again.
const (
	demoGoodLatency = 10 * time.Millisecond
	demoBadLatency  = 150 * time.Millisecond
	demoBadFrom     = 8 * time.Second
	demoBadUntil    = 26 * time.Second
	demoTimeout     = 90 * time.Second
)

// cmdDemo runs the whole job on an embedded default: the built-in QoD
// simulator, a local stand-in UE whose latency is scripted, and the daemon
// deciding. It ends once the session it bought has been ended again.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("verbose", false, "show every log line of the daemon")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, stdout, *verbose); err != nil {
		fmt.Fprintf(stderr, "qodwatch demo: %v\n", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, out io.Writer, verbose bool) error {
	start := time.Now()
	say := func(format string, a ...any) {
		fmt.Fprintf(out, "%5.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}

	sim := qodsim.NewServer(qodsim.Options{})
	defer sim.Close()

	var delay atomic.Int64
	delay.Store(int64(demoGoodLatency))
	ue, err := serveLoopback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(delay.Load())) // the scripted network, not a wait for readiness
		_, _ = io.WriteString(w, "ok\n")
	}))
	if err != nil {
		return err
	}
	defer ue.Close()

	notifyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	stateDir, err := os.MkdirTemp("", "qodwatch-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	yaml := strings.NewReplacer(
		"{api}", sim.URL,
		"{notify_url}", "http://"+notifyLn.Addr().String(),
		"{notify_listen}", notifyLn.Addr().String(),
		"{ue_url}", "http://"+ue.Addr().String()+"/",
		"{state_dir}", stateDir,
	).Replace(demoConfig)
	cfg, err := config.Parse("demo.yaml", []byte(yaml))
	if err != nil {
		return fmt.Errorf("embedded config: %w", err)
	}

	var logHandler slog.Handler = &demoLog{out: out, start: start, verbose: verbose}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: slog.New(logHandler), ShutdownGrace: 10 * time.Second})
	if err != nil {
		return err
	}
	rcv := &http.Server{Handler: d.NotificationReceiver(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = rcv.Serve(notifyLn) }()
	defer rcv.Close()

	fmt.Fprintf(out, `qodwatch demo: one UE, "camera-7", watched by an HTTP probe every 200ms.
Rule "low-latency": buy QOS_E when latency p95 > 80ms for 3s; end it when p95 < 40ms and loss < 1%% for 6s.
QoD API: the built-in simulator at %s (DevEdge v1.1.2 contract).
Script: the UE's latency is %v, then %v from %v to %v, then %v again.

`, sim.URL, demoGoodLatency, demoBadLatency, demoBadFrom, demoBadUntil, demoGoodLatency)

	runCtx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(runCtx); err != nil {
			say("daemon: %v", err)
		}
	}()

	// The script and a line of what the daemon sees every two seconds.
	phase := 0
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Duration(0)
	done := false
	for !done {
		select {
		case <-runCtx.Done():
			done = true
			continue
		case <-tick.C:
		}
		el := time.Since(start)
		switch {
		case phase == 0 && el >= demoBadFrom:
			phase = 1
			delay.Store(int64(demoBadLatency))
			say("script: camera-7's network degrades: latency now %v", demoBadLatency)
		case phase == 1 && el >= demoBadUntil:
			phase = 2
			delay.Store(int64(demoGoodLatency))
			say("script: camera-7's network recovers: latency now %v", demoGoodLatency)
		}
		if el-lastReport >= 2*time.Second {
			lastReport = el
			say("%s", demoStatusLine(d))
		}
		if phase == 2 && sim.Creates() > 0 && len(sim.Sessions()) == 0 && idle(d) {
			done = true
		}
	}
	cancel()
	wg.Wait()

	fmt.Fprintln(out)
	creates, deletes := 0, 0
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/sessions") && r.Status < 300 {
			creates++
		}
		if r.Method == http.MethodDelete && r.Status < 300 {
			deletes++
		}
	}
	fmt.Fprintf(out, "The simulator saw %d session created and %d ended; %d still open.\n", creates, deletes, len(sim.Sessions()))
	if creates != 1 || deletes != 1 || len(sim.Sessions()) != 0 {
		return fmt.Errorf("expected exactly one session bought and ended")
	}
	fmt.Fprintln(out, "Next: copy config.example.yaml, fill in your operator account and UEs, then qodwatch check FILE and qodwatch run --config.file FILE.")
	return nil
}

func idle(d *daemon.Daemon) bool {
	for _, st := range d.Statuses() {
		if st.HasSession || st.State == policy.StateRequesting || st.State == policy.StateReleasing {
			return false
		}
	}
	return true
}

func demoStatusLine(d *daemon.Daemon) string {
	now := time.Now()
	var b strings.Builder
	for _, st := range d.Statuses() {
		s, _ := d.Monitor().Stats(st.UE, now)
		fmt.Fprintf(&b, "%s: p95 %v, loss %s, state %s", st.UE, s.LatencyP95.Round(time.Millisecond), policy.FormatRatio(s.Loss), st.State)
		if st.HasSession {
			fmt.Fprintf(&b, ", session %s (%s)", short(st.Session.ID), st.Session.QoS)
		}
		if st.Waiting != "" {
			fmt.Fprintf(&b, " — %s", st.Waiting)
		}
	}
	return b.String()
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func serveLoopback(h http.Handler) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln, nil
}

// demoLog shows the daemon's decisions and API calls as short lines.
type demoLog struct {
	out     io.Writer
	start   time.Time
	verbose bool
	attrs   []slog.Attr
	mu      sync.Mutex
}

var demoKeys = []string{"ue", "decision", "qos", "session_id", "reason", "transaction_id", "err"}

func (h *demoLog) Enabled(_ context.Context, l slog.Level) bool {
	return h.verbose || l >= slog.LevelInfo
}

func (h *demoLog) Handle(_ context.Context, r slog.Record) error {
	if !h.verbose && (r.Message == "qodwatch running" || r.Message == "notification received") {
		return nil
	}
	vals := map[string]string{}
	for _, a := range h.attrs {
		vals[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { vals[a.Key] = a.Value.String(); return true })
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs  qodwatch: %s", r.Time.Sub(h.start).Seconds(), r.Message)
	for _, k := range demoKeys {
		if v, ok := vals[k]; ok && v != "" {
			if k == "session_id" || k == "transaction_id" {
				v = short(v)
			}
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintln(h.out, b.String())
	return err
}

func (h *demoLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &demoLog{out: h.out, start: h.start, verbose: h.verbose, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *demoLog) WithGroup(string) slog.Handler { return h }
