package monitor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// metricsMonitor has two UEs with some of everything recorded.
func metricsMonitor(t testing.TB, histogram bool) *Monitor {
	clk := newFakeClock(base)
	m, err := New(Options{Clock: clk, RTTHistogram: histogram, ICMP: func([]ICMPTarget) {}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.SetUEs([]UE{
		{Name: "cam-7", Addr: "127.0.0.7", Labels: map[string]string{"site": "pier-3"}, Probes: []Probe{
			ICMP{Interval: time.Second},
			Throughput{URL: "http://{{ue.addr}}:8080/blob", Interval: time.Minute},
		}},
		{Name: "robot-2", Addr: "127.0.0.12", Probes: []Probe{
			TCP{Address: "{{ue.addr}}:22", Interval: time.Second},
			Prometheus{Name: "bitrate", ServerURL: "http://127.0.0.1:9090", Query: "x", Interval: time.Minute},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, rtt := range []float64{10, 20, 30, 40} {
		m.Record(Result{UE: "cam-7", Probe: KindICMP, At: at(time.Duration(i) * time.Second), RTT: ms(rtt)})
	}
	m.Record(Result{UE: "cam-7", Probe: KindICMP, At: at(4 * time.Second), Lost: true})
	m.Record(Result{UE: "cam-7", Probe: KindICMP, Err: context.DeadlineExceeded})
	st := m.set.Load().byName["cam-7"]
	m.recordOutcome(st, st.tasks[0], &outcome{Result: Result{At: at(4 * time.Second), BytesPerSecond: 2.5e6}, bytes: 2 << 20, status: 206})
	robot := m.set.Load().byName["robot-2"]
	m.recordOutcome(robot, robot.tasks[1], &outcome{Result: Result{At: at(3 * time.Second), Value: 1.5e6}})
	clk.Advance(5 * time.Second)
	return m
}

func TestMetricsAreLintCleanAndRight(t *testing.T) {
	m := metricsMonitor(t, true)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	want := `
# HELP qodwatch_window_latency_p95_seconds 95th percentile round trip over the UE's window.
# TYPE qodwatch_window_latency_p95_seconds gauge
qodwatch_window_latency_p95_seconds{ue="cam-7"} 0.04
# HELP qodwatch_window_loss_ratio Share of the UE's measurements in the window that got no answer.
# TYPE qodwatch_window_loss_ratio gauge
qodwatch_window_loss_ratio{ue="cam-7"} 0.2
# HELP qodwatch_window_throughput_bytes_per_second Mean throughput of the UE's throughput samples in the window.
# TYPE qodwatch_window_throughput_bytes_per_second gauge
qodwatch_window_throughput_bytes_per_second{ue="cam-7"} 2.5e+06
# HELP qodwatch_probe_sent_total Measurements attempted per UE and probe kind (echo requests, connections, queries).
# TYPE qodwatch_probe_sent_total counter
qodwatch_probe_sent_total{probe="icmp",ue="cam-7"} 5
qodwatch_probe_sent_total{probe="prometheus",ue="robot-2"} 1
qodwatch_probe_sent_total{probe="tcp",ue="robot-2"} 0
qodwatch_probe_sent_total{probe="throughput",ue="cam-7"} 1
# HELP qodwatch_probe_value Last value read by a prometheus probe of the UE.
# TYPE qodwatch_probe_value gauge
qodwatch_probe_value{query="bitrate",ue="robot-2"} 1.5e+06
# HELP qodwatch_ue_info The UEs being watched, with their address and config labels; join on ue.
# TYPE qodwatch_ue_info gauge
qodwatch_ue_info{addr="127.0.0.12",site="",ue="robot-2"} 1
qodwatch_ue_info{addr="127.0.0.7",site="pier-3",ue="cam-7"} 1
# HELP qodwatch_window_last_sample_timestamp_seconds When the UE's last measurement completed, Unix time; 0 while it has none (its probes never measured since it was added).
# TYPE qodwatch_window_last_sample_timestamp_seconds gauge
qodwatch_window_last_sample_timestamp_seconds{ue="cam-7"} 1.772366404e+09
qodwatch_window_last_sample_timestamp_seconds{ue="robot-2"} 1.772366403e+09
`
	err = testutil.GatherAndCompare(reg, strings.NewReader(want),
		"qodwatch_window_latency_p95_seconds", "qodwatch_window_loss_ratio", "qodwatch_window_throughput_bytes_per_second",
		"qodwatch_probe_sent_total", "qodwatch_probe_value", "qodwatch_ue_info", "qodwatch_window_last_sample_timestamp_seconds")
	if err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(errorsCounter(m, "icmp", "timeout")); got != 1 {
		t.Errorf("icmp timeout errors = %v, want 1", got)
	}
	// robot-2 has no answers yet: its latency is absent, not zero.
	if n, _ := testutil.GatherAndCount(reg, "qodwatch_window_latency_mean_seconds"); n != 1 {
		t.Errorf("%d latency series, want only cam-7's", n)
	}
	if n, _ := testutil.GatherAndCount(reg, "qodwatch_probe_rtt_seconds"); n != 2 {
		t.Errorf("%d rtt histograms, want icmp of cam-7 and tcp of robot-2", n)
	}

	off := prometheus.NewPedanticRegistry()
	off.MustRegister(metricsMonitor(t, false))
	if n, _ := testutil.GatherAndCount(off, "qodwatch_probe_rtt_seconds"); n != 0 {
		t.Errorf("%d rtt histograms with RTTHistogram off", n)
	}
}

// TestNeverMeasuredUEHasALastSampleOfZero: a UE whose probes never
// measured has its last-sample series at 0 from the moment it is added,
// so the no-data alert sees it (issue 9); it gets its time with its first
// measurement, and the series goes with the UE. Both ways out (client_golang
// and the text writer) agree.
func TestNeverMeasuredUEHasALastSampleOfZero(t *testing.T) {
	clk := newFakeClock(base)
	m, err := New(Options{Clock: clk, ICMP: func([]ICMPTarget) {}})
	if err != nil {
		t.Fatal(err)
	}
	tcp := []Probe{TCP{Address: "{{ue.addr}}:22", Interval: time.Second}}
	if err := m.SetUEs([]UE{{Name: "mute-1", Addr: "127.0.0.1", Probes: tcp}, {Name: "talks-2", Addr: "127.0.0.2", Probes: tcp}}); err != nil {
		t.Fatal(err)
	}
	m.Record(Result{UE: "mute-1", Probe: KindTCP, At: at(time.Second), Err: syscall.ECONNREFUSED})
	m.Record(Result{UE: "talks-2", Probe: KindTCP, At: at(time.Second), RTT: ms(3)})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	check := func(want string) {
		t.Helper()
		const name = "qodwatch_window_last_sample_timestamp_seconds"
		head := "# HELP " + name + " When the UE's last measurement completed, Unix time; 0 while it has none (its probes never measured since it was added).\n# TYPE " + name + " gauge\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(head+want), name); err != nil {
			t.Error(err)
		}
		var buf bytes.Buffer
		if err := m.WriteMetrics(&buf); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.HasPrefix(l, name+"{") {
				lines = append(lines, l)
			}
		}
		if got := strings.Join(lines, "\n") + "\n"; got != want {
			t.Errorf("WriteMetrics:\n%s\nwant\n%s", got, want)
		}
	}
	check("qodwatch_window_last_sample_timestamp_seconds{ue=\"mute-1\"} 0\n" +
		"qodwatch_window_last_sample_timestamp_seconds{ue=\"talks-2\"} 1.772366401e+09\n")
	m.Record(Result{UE: "mute-1", Probe: KindTCP, At: at(2 * time.Second), RTT: ms(3)})
	if err := m.SetUEs([]UE{{Name: "mute-1", Addr: "127.0.0.1", Probes: tcp}}); err != nil {
		t.Fatal(err)
	}
	check("qodwatch_window_last_sample_timestamp_seconds{ue=\"mute-1\"} 1.772366402e+09\n")
}

// errorsCounter picks one qodwatch_probe_errors_total series.
func errorsCounter(m *Monitor, probe, reason string) prometheus.Collector {
	k, _ := kindOf(probe)
	for r, name := range reasonNames {
		if name == reason {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return float64(m.errorCount(k, r)) })
		}
	}
	return nil
}

// needPromtool finds promtool: missing, the test fails under CI (.ci/run
// installs it) and is skipped elsewhere.
func needPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("promtool not installed, and CI is set (.ci/run installs it)")
	}
	t.Skip("promtool not installed (apt-get install prometheus)")
	return ""
}

func TestMetricsPassPromtool(t *testing.T) {
	promtool := needPromtool(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metricsMonitor(t, true))
	var buf bytes.Buffer
	if err := render(reg, &buf); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// render writes the text exposition format, as /metrics serves it.
func render(g prometheus.Gatherer, buf *bytes.Buffer) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// TestFleetFamiliesCoverEveryUE: with SelectUEs picking one UE, the per-UE
// families have that UE's series only, while qodwatch_ues and the fleet
// histograms count every UE (issue 13: 100,000 UEs watched without their
// per-UE series).
func TestFleetFamiliesCoverEveryUE(t *testing.T) {
	m := metricsMonitor(t, false)
	picks := 0
	m.SelectUEs(func() func(string) bool {
		picks++
		return func(ue string) bool { return ue == "cam-7" }
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if picks != 1 {
		t.Errorf("selector called %d times in a scrape, want once", picks)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	for _, mf := range mfs {
		for _, s := range mf.Metric {
			for _, l := range s.Label {
				if l.GetName() == "ue" && l.GetValue() != "cam-7" {
					t.Errorf("%s has a series of %s, not selected", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	if v := got["qodwatch_ues"].Metric[0].GetGauge().GetValue(); v != 2 {
		t.Errorf("qodwatch_ues = %v, want 2", v)
	}
	// cam-7: p95 40 ms, loss 0.2, 2.5 MB/s; robot-2: no round trips yet,
	// a prometheus value 1 s old.
	for _, c := range []struct {
		name  string
		count uint64
		le    float64 // the smallest bucket holding every observation
	}{
		{"qodwatch_fleet_window_latency_p95_seconds", 1, 0.05},
		{"qodwatch_fleet_window_loss_ratio", 1, 0.25},
		{"qodwatch_fleet_window_throughput_bytes_per_second", 1, 2.5e6},
		{"qodwatch_fleet_window_last_sample_age_seconds", 2, 5},
	} {
		mf := got[c.name]
		if mf == nil {
			t.Errorf("%s missing", c.name)
			continue
		}
		h := mf.Metric[0].GetHistogram()
		if h.GetSampleCount() != c.count {
			t.Errorf("%s count = %d, want %d", c.name, h.GetSampleCount(), c.count)
		}
		for _, b := range h.Bucket {
			if full := b.GetCumulativeCount() == c.count; full != (b.GetUpperBound() >= c.le) {
				t.Errorf("%s bucket le=%v holds %d of %d", c.name, b.GetUpperBound(), b.GetCumulativeCount(), c.count)
			}
		}
	}
	if v := got["qodwatch_fleet_ues_never_measured"].Metric[0].GetGauge().GetValue(); v != 0 {
		t.Errorf("never measured = %v, want 0", v)
	}
}
