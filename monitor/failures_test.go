package monitor

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestProbeErrorsPerUE: an error is counted for its UE, kind and reason,
// is the UE's current failure until the kind measures again, and is logged
// with its text, not once per error.
func TestProbeErrorsPerUE(t *testing.T) {
	var logs bytes.Buffer
	clk := newFakeClock(base)
	m, err := New(Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = m.SetUEs([]UE{
		{Name: "cam-7", Addr: "127.0.0.7", Probes: []Probe{TCP{Address: "{{ue.addr}}:22", Interval: time.Second}}},
		{Name: "robot-2", Addr: "127.0.0.12", Probes: []Probe{TCP{Address: "{{ue.addr}}:22", Interval: time.Second}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	refused := fmt.Errorf("connect to 127.0.0.7:22: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	for i := range 30 {
		m.Record(Result{UE: "cam-7", Probe: KindTCP, At: at(time.Duration(i) * time.Second), Err: refused})
	}
	m.Record(Result{UE: "robot-2", Probe: KindTCP, At: at(0), RTT: ms(3)})

	f := m.Failures("cam-7")
	if len(f) != 1 || f[0].Probe != "tcp" || f[0].Reason != "refused" || f[0].Text != "connection refused" ||
		!f[0].Since.Equal(at(0)) || !f[0].Last.Equal(at(29*time.Second)) || f[0].Errors != 30 || !strings.Contains(f[0].Err, "127.0.0.7:22") {
		t.Errorf("failures of cam-7: %+v", f)
	}
	if f := m.Failures("robot-2"); f != nil {
		t.Errorf("robot-2 measures, yet failures %+v", f)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	want := `
# HELP qodwatch_probe_errors_total Probe runs that could not measure at all, per UE, probe kind and reason; a series appears with its first error.
# TYPE qodwatch_probe_errors_total counter
qodwatch_probe_errors_total{probe="tcp",reason="refused",ue="cam-7"} 30
# HELP qodwatch_probe_failing_since_timestamp_seconds When the current run of errors of the UE's probe began, Unix time; absent while the probe measures.
# TYPE qodwatch_probe_failing_since_timestamp_seconds gauge
qodwatch_probe_failing_since_timestamp_seconds{probe="tcp",ue="cam-7"} 1.7723664e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "qodwatch_probe_errors_total", "qodwatch_probe_failing_since_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	// The first error is logged with its text; the 29 that follow within
	// a minute are not.
	if n := strings.Count(logs.String(), "probe failed"); n != 1 {
		t.Errorf("%d log lines about the failing probe, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "ue=cam-7") {
		t.Errorf("log line lacks the error text or the UE:\n%s", logs.String())
	}
	// Still failing 5 minutes on: a reminder.
	m.Record(Result{UE: "cam-7", Probe: KindTCP, At: at(5*time.Minute + time.Second), Err: refused})
	if n := strings.Count(logs.String(), "probe failed"); n != 2 || !strings.Contains(logs.String(), "errors=31") {
		t.Errorf("no reminder after 5 minutes:\n%s", logs.String())
	}

	// A measurement ends the failure: gone from the status and the gauge,
	// kept in the counter.
	m.Record(Result{UE: "cam-7", Probe: KindTCP, At: at(5*time.Minute + 2*time.Second), Lost: true})
	if f := m.Failures("cam-7"); f != nil {
		t.Errorf("cam-7 measures again, yet failures %+v", f)
	}
	if !strings.Contains(logs.String(), "probe measures again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
	if n, _ := testutil.GatherAndCount(reg, "qodwatch_probe_failing_since_timestamp_seconds"); n != 0 {
		t.Errorf("%d failing-since series after recovery", n)
	}
	if got := m.errorCount(kTCP, reasonRefused); got != 31 {
		t.Errorf("refused errors %d, want 31", got)
	}
}

// TestProbeErrorLogIsBounded: a whole fleet failing at once writes a
// bounded number of lines, and says how many it left out.
func TestProbeErrorLogIsBounded(t *testing.T) {
	var logs bytes.Buffer
	clk := newFakeClock(base)
	m, err := New(Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var ues []UE
	for i := range 1000 {
		ues = append(ues, UE{Name: fmt.Sprintf("ue-%d", i), Addr: "127.0.0.1", Probes: []Probe{TCP{Address: "{{ue.addr}}:22", Interval: time.Second}}})
	}
	if err := m.SetUEs(ues); err != nil {
		t.Fatal(err)
	}
	for _, u := range ues {
		m.Record(Result{UE: u.Name, Probe: KindTCP, At: at(0), Err: syscall.ECONNREFUSED})
	}
	if n := strings.Count(logs.String(), "probe failed"); n != errLogBurst {
		t.Errorf("%d lines for 1000 UEs failing at once, want %d", n, errLogBurst)
	}
	m.Record(Result{UE: "ue-0", Probe: KindTCP, At: at(time.Second), RTT: ms(1)})
	if !strings.Contains(logs.String(), "probe measures again") || !strings.Contains(logs.String(), "other_lines_suppressed=980") {
		t.Errorf("a second later the limiter still refuses:\n%s", logs.String()[len(logs.String())-300:])
	}
}
