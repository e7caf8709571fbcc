package monitor

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// awkwardMonitor adds a UE whose name and labels need escaping to the
// monitor of metricsMonitor.
func awkwardMonitor(t *testing.T, histogram bool) *Monitor {
	t.Helper()
	m := metricsMonitor(t, histogram)
	ues := []UE{}
	for _, st := range m.set.Load().list {
		ues = append(ues, st.cfg)
	}
	ues = append(ues, UE{Name: "odd \"one\"\\\nü", Addr: "127.0.0.99", Labels: map[string]string{"site": "a \"quoted\"\\ site\nline 2"},
		Probes: []Probe{ICMP{Interval: time.Second}}})
	if err := m.SetUEs(ues); err != nil {
		t.Fatal(err)
	}
	now := m.clock.Now()
	m.Record(Result{UE: ues[2].Name, Probe: KindICMP, At: now.Add(-time.Second), RTT: 1234567 * time.Nanosecond})
	m.Record(Result{UE: ues[2].Name, Probe: KindICMP, At: now.Add(-time.Second), Lost: true})
	return m
}

// TestWriteMetricsEqualsCollect checks the straight text against what
// client_golang's registry makes of Collect: same families, help, types,
// series and values.
func TestWriteMetricsEqualsCollect(t *testing.T) {
	for _, c := range []struct{ hist, selected bool }{{false, false}, {true, false}, {true, true}} {
		hist := c.hist
		t.Run(fmt.Sprintf("histogram=%t/selected=%t", hist, c.selected), func(t *testing.T) {
			m := awkwardMonitor(t, hist)
			if c.selected {
				m.SelectUEs(func() func(string) bool { return func(ue string) bool { return ue == "cam-7" } })
			}
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(m)
			want, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := m.WriteMetrics(&buf); err != nil {
				t.Fatal(err)
			}
			got := parseText(t, buf.Bytes())
			if d := diffFamilies(canonical(want), canonical(got)); d != "" {
				t.Errorf("WriteMetrics differs from Collect:\n%s\ntext:\n%s", d, buf.String())
			}
			if !hist && strings.Contains(buf.String(), "qodwatch_probe_rtt_seconds") {
				t.Error("histograms written while switched off")
			}
			// Families in name order, each once.
			var names []string
			for _, line := range strings.Split(buf.String(), "\n") {
				if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
					names = append(names, strings.Fields(name)[0])
				}
			}
			if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
				t.Errorf("families not sorted or repeated: %v", names)
			}
			problems, err := promlint.New(bytes.NewReader(buf.Bytes())).Lint()
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
		})
	}
}

func TestMetricsHandlerMergesTheRegistry(t *testing.T) {
	m := awkwardMonitor(t, true)
	reg := prometheus.NewPedanticRegistry()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "qodwatch_build_info", Help: "Build.", ConstLabels: prometheus.Labels{"version": "x"}})
	build.Set(1)
	early := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_first_total", Help: "Sorts first."})
	late := prometheus.NewCounter(prometheus.CounterOpts{Name: "zz_last_total", Help: "Sorts last."})
	reg.MustRegister(build, early, late)
	h := m.MetricsHandler(reg)

	for _, enc := range []string{"", "gzip", "gzip;q=0"} {
		t.Run("accept-encoding="+enc, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept-Encoding", enc)
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rr.Code, rr.Body)
			}
			if ct := rr.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Errorf("content type %q", ct)
			}
			body := rr.Body.Bytes()
			gzipped := rr.Header().Get("Content-Encoding") == "gzip"
			if gzipped != (enc == "gzip") {
				t.Fatalf("Content-Encoding %q for Accept-Encoding %q", rr.Header().Get("Content-Encoding"), enc)
			}
			if gzipped {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			got := parseText(t, body)
			want := prometheus.NewPedanticRegistry()
			want.MustRegister(build, early, late, m)
			wantMFs, err := want.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if d := diffFamilies(canonical(wantMFs), canonical(got)); d != "" {
				t.Errorf("handler output differs from one registry with everything:\n%s", d)
			}
			text := string(body)
			if i, j := strings.Index(text, "# HELP a_first_total"), strings.Index(text, "# HELP zz_last_total"); i != 0 || j < strings.Index(text, "# TYPE qodwatch_window_samples") {
				t.Errorf("families not merged in name order (a_first at %d, zz_last at %d)", i, j)
			}
		})
	}
}

func TestMetricsHandlerWithTheMonitorRegisteredToo(t *testing.T) {
	var logs bytes.Buffer
	m := awkwardMonitor(t, false)
	m.log = slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	rr := httptest.NewRecorder()
	m.MetricsHandler(reg).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if n := strings.Count(rr.Body.String(), "# TYPE qodwatch_window_samples "); n != 1 {
		t.Errorf("qodwatch_window_samples written %d times", n)
	}
	parseText(t, rr.Body.Bytes())
	if !strings.Contains(logs.String(), "unregister it") {
		t.Errorf("no warning about the double registration; logs: %s", logs.String())
	}
}

func TestMetricsHandlerGatherError(t *testing.T) {
	m := awkwardMonitor(t, false)
	m.log = slog.New(slog.DiscardHandler)
	failing := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return nil, errors.New("collector for qodwatch_x failed")
	})
	rr := httptest.NewRecorder()
	m.MetricsHandler(failing).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusInternalServerError || !strings.Contains(rr.Body.String(), "qodwatch_x failed") {
		t.Errorf("status %d, body %q; want 500 with the error", rr.Code, rr.Body)
	}
}

func TestWriteMetricsPassesPromtool(t *testing.T) {
	promtool := needPromtool(t)
	var buf bytes.Buffer
	if err := awkwardMonitor(t, true).WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"": false, "gzip": true, "identity": false, "deflate, gzip;q=1.0, *;q=0.5": true,
		"gzip;q=0": false, "gzip; q=0.000": false, "gzip;q=0.1": true, "x-gzip": false,
	} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %t, want %t", h, got, want)
		}
	}
}

func TestAppendValueMatchesExpfmt(t *testing.T) {
	for _, v := range []float64{0, 1, -1, 0.5, 1e6, 1234567, 1.772366404e+09, 2.5e-05, 123456789012, 1e21} {
		mf := &dto.MetricFamily{Name: new("x"), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: new(v)}}}}
		var want bytes.Buffer
		if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
			t.Fatal(err)
		}
		got := "# TYPE x gauge\nx " + string(appendValue(nil, v)) + "\n"
		if got != want.String() {
			t.Errorf("%v: got %q, want %q", v, got, want.String())
		}
	}
}

func parseText(t *testing.T, text []byte) []*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	var out []*dto.MetricFamily
	for _, mf := range byName {
		out = append(out, mf)
	}
	return out
}

// canonical renders families as sorted lines, one per series, with the
// family's help and type, so two sources compare whatever their order.
func canonical(mfs []*dto.MetricFamily) []string {
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			slices.Sort(labels)
			var value string
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				value = fmt.Sprint(m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				value = fmt.Sprint(m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				value = fmt.Sprintf("count=%d sum=%v", h.GetSampleCount(), h.GetSampleSum())
				for _, b := range h.GetBucket() {
					if b.GetUpperBound() < 1e300 { // +Inf is the count
						value += fmt.Sprintf(" le%v=%d", b.GetUpperBound(), b.GetCumulativeCount())
					}
				}
			default:
				value = "unexpected type " + mf.GetType().String()
			}
			out = append(out, fmt.Sprintf("%s (%s, %q) {%s} %s", mf.GetName(), mf.GetType(), mf.GetHelp(), strings.Join(labels, ","), value))
		}
	}
	slices.Sort(out)
	return out
}

func diffFamilies(want, got []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "+ %s\n", g)
		}
	}
	if b.Len() == 0 && len(want) != len(got) {
		fmt.Fprintf(&b, "%d series, want %d", len(got), len(want))
	}
	return b.String()
}

// TestScrapeWhileRecordingAndReloading is for the race detector: scrapes
// both ways while results arrive and the UE set changes.
func TestScrapeWhileRecordingAndReloading(t *testing.T) {
	m := awkwardMonitor(t, true)
	var ues []UE
	for _, st := range m.set.Load().list {
		ues = append(ues, st.cfg)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	h := m.MetricsHandler(nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m.Record(Result{UE: ues[i%len(ues)].Name, Probe: KindICMP, At: at(time.Duration(i) * time.Millisecond), RTT: ms(float64(i % 50))})
		}
	})
	wg.Go(func() {
		for i := range 20 {
			select {
			case <-stop:
				return
			default:
			}
			if err := m.SetUEs(ues[:1+i%len(ues)]); err != nil {
				t.Error(err)
			}
		}
	})
	for range 20 {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		parseText(t, rr.Body.Bytes())
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
