package monitor

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// TestFleetRTTIsNativeForProtobufScrapes: the fleet histogram counts every
// round trip per kind; a protobuf scrape (Prometheus with native
// histograms) gets it as a native histogram together with the per-UE
// families, a text scrape gets its classic buckets.
func TestFleetRTTIsNativeForProtobufScrapes(t *testing.T) {
	m, _ := newTestMonitor(t, Options{FleetRTTHistogram: true, ICMP: func([]ICMPTarget) {}})
	if err := m.SetUEs([]UE{{Name: "cam-7", Addr: "127.0.0.7", Probes: []Probe{ICMP{Interval: time.Second}}}}); err != nil {
		t.Fatal(err)
	}
	for i, rtt := range []float64{1, 2, 40, 41} {
		m.Record(Result{UE: "cam-7", Probe: KindICMP, At: at(time.Duration(i) * time.Second), RTT: ms(rtt)})
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.FleetRTTCollector())
	h := m.MetricsHandler(reg)

	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !bytes.Contains([]byte(ct), []byte("encoding=delimited")) {
		t.Fatalf("content type %q, want protobuf", ct)
	}
	dec := expfmt.NewDecoder(rec.Body, expfmt.NewFormat(expfmt.TypeProtoDelim))
	got := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got[mf.GetName()] = &mf
	}
	fleet := got[FleetRTTName]
	var hist *dto.Histogram
	if fleet != nil {
		for _, mt := range fleet.Metric {
			if mt.GetLabel()[0].GetValue() == "icmp" {
				hist = mt.GetHistogram()
			}
		}
	}
	if hist == nil {
		t.Fatalf("no %s{probe=icmp} in the protobuf answer", FleetRTTName)
	}
	if hist.GetSampleCount() != 4 || hist.Schema == nil || len(hist.PositiveSpan) == 0 {
		t.Errorf("fleet histogram %v: want 4 samples in native buckets", hist)
	}
	if got["qodwatch_window_samples"] == nil || got["qodwatch_ue_info"] == nil {
		t.Error("the per-UE families are missing from the protobuf answer")
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !bytes.Contains(rec.Body.Bytes(), []byte(FleetRTTName+`_bucket{probe="icmp",le="0.05"} 4`)) {
		t.Errorf("text answer lacks the classic buckets:\n%s", rec.Body)
	}
}
