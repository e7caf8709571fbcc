package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rttBuckets are the upper bounds of the round-trip histogram, seconds:
// from loopback-fast to a stalled radio link.
var rttBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// rttHistogram is a per-UE round-trip histogram kept under the UE's lock
// and exported at scrape time, so Record allocates nothing.
type rttHistogram struct {
	counts [len(rttBuckets)]uint64 // not cumulative
	count  uint64
	sum    float64
}

func (h *rttHistogram) observe(d time.Duration) {
	s := d.Seconds()
	for i, ub := range rttBuckets {
		if s <= ub {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += s
}

var (
	labelsUE      = []string{"ue"}
	labelsUEProbe = []string{"ue", "probe"}

	descUEs = prometheus.NewDesc("qodwatch_ues",
		"Number of UEs being watched.", nil, nil)
	descSent = prometheus.NewDesc("qodwatch_probe_sent_total",
		"Measurements attempted per UE and probe kind (echo requests, connections, queries).", labelsUEProbe, nil)
	descReceived = prometheus.NewDesc("qodwatch_probe_received_total",
		"Measurements answered per UE and probe kind.", labelsUEProbe, nil)
	descRTT = prometheus.NewDesc("qodwatch_probe_rtt_seconds",
		"Round trips per UE and probe kind: echo, TCP connect, HTTP time to first byte.", labelsUEProbe, nil)
	descErrors = prometheus.NewDesc("qodwatch_probe_errors_total",
		"Probe runs that could not measure at all, by probe kind and reason.", []string{"probe", "reason"}, nil)
	descSkipped = prometheus.NewDesc("qodwatch_probe_skipped_total",
		"Probe runs skipped because the UE was busy with a throughput run or the previous run had not finished.", []string{"probe"}, nil)
	descDropped = prometheus.NewDesc("qodwatch_icmp_dropped_results_total",
		"ICMP results dropped because they overlapped a throughput run of their UE.", nil, nil)
	descTransferred = prometheus.NewDesc("qodwatch_probe_transferred_bytes_total",
		"Bytes moved by throughput probes per UE (mobile data spent on measuring).", labelsUE, nil)
	descHTTPStatus = prometheus.NewDesc("qodwatch_probe_http_status_code",
		"Last HTTP status seen by an http or throughput probe of the UE.", labelsUE, nil)
	descValue = prometheus.NewDesc("qodwatch_probe_value",
		"Last value read by a prometheus probe of the UE.", []string{"ue", "query"}, nil)

	descLatMean = prometheus.NewDesc("qodwatch_window_latency_mean_seconds",
		"Mean round trip over the UE's window.", labelsUE, nil)
	descLatP50 = prometheus.NewDesc("qodwatch_window_latency_p50_seconds",
		"Median round trip over the UE's window.", labelsUE, nil)
	descLatP95 = prometheus.NewDesc("qodwatch_window_latency_p95_seconds",
		"95th percentile round trip over the UE's window.", labelsUE, nil)
	descLatMax = prometheus.NewDesc("qodwatch_window_latency_max_seconds",
		"Longest round trip in the UE's window.", labelsUE, nil)
	descJitter = prometheus.NewDesc("qodwatch_window_jitter_seconds",
		"RFC 3550 jitter of the UE's round trips.", labelsUE, nil)
	descLoss = prometheus.NewDesc("qodwatch_window_loss_ratio",
		"Share of the UE's measurements in the window that got no answer.", labelsUE, nil)
	descThroughput = prometheus.NewDesc("qodwatch_window_throughput_bytes_per_second",
		"Mean throughput of the UE's throughput samples in the window.", labelsUE, nil)
	descSamples = prometheus.NewDesc("qodwatch_window_samples",
		"Answered round trips in the UE's window.", labelsUE, nil)
	descLost = prometheus.NewDesc("qodwatch_window_lost",
		"Unanswered measurements in the UE's window.", labelsUE, nil)
	descLast = prometheus.NewDesc("qodwatch_window_last_sample_timestamp_seconds",
		"When the UE's last measurement completed, Unix time.", labelsUE, nil)
)

// Describe implements prometheus.Collector. The Monitor is an unchecked
// collector: qodwatch_ue_info carries the UE labels of the config, whose
// names change with it.
func (m *Monitor) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. It reads the windows at scrape
// time, so recording never touches a metric.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	set := m.set.Load()
	now := m.clock.Now()
	ch <- prometheus.MustNewConstMetric(descUEs, prometheus.GaugeValue, float64(len(set.list)))
	for k := range numKinds {
		probe := kindNames[k]
		for r := range numReasons {
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(m.errors[k][r].Load()), probe, reasonNames[r])
		}
		ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(m.skipped[k].Load()), probe)
	}
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(m.dropped.Load()))

	infoDesc := prometheus.NewDesc("qodwatch_ue_info",
		"The UEs being watched, with their address and config labels; join on ue.",
		append([]string{"ue", "addr"}, set.infoLabels...), nil)
	infoValues := make([]string, 2+len(set.infoLabels))

	var snap ueSnapshot
	for _, st := range set.list {
		st.snapshot(now, &snap)
		ue := st.name
		infoValues[0], infoValues[1] = ue, snap.addr
		for i, k := range set.infoLabels {
			infoValues[2+i] = snap.labels[k]
		}
		ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, infoValues...)

		for k := range numKinds {
			if !snap.kinds[k] {
				continue
			}
			c := &snap.counters[k]
			probe := kindNames[k]
			ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(c.sent), ue, probe)
			ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(c.received), ue, probe)
			if snap.hasHist[k] {
				h := &snap.hists[k]
				buckets := make(map[float64]uint64, len(rttBuckets))
				var cum uint64
				for i, ub := range rttBuckets {
					cum += h.counts[i]
					buckets[ub] = cum
				}
				ch <- prometheus.MustNewConstHistogram(descRTT, h.count, h.sum, buckets, ue, probe)
			}
		}
		if snap.kinds[kThroughput] {
			ch <- prometheus.MustNewConstMetric(descTransferred, prometheus.CounterValue, float64(snap.bytes), ue)
		}
		if snap.status != 0 {
			ch <- prometheus.MustNewConstMetric(descHTTPStatus, prometheus.GaugeValue, float64(snap.status), ue)
		}
		for _, v := range snap.values {
			if !v.At.IsZero() {
				ch <- prometheus.MustNewConstMetric(descValue, prometheus.GaugeValue, v.Value, ue, v.Name)
			}
		}

		s := &snap.stats
		if s.LatencyProbe != "" {
			ch <- prometheus.MustNewConstMetric(descSamples, prometheus.GaugeValue, float64(s.Samples), ue)
			ch <- prometheus.MustNewConstMetric(descLost, prometheus.GaugeValue, float64(s.Lost), ue)
			if s.Samples+s.Lost > 0 {
				ch <- prometheus.MustNewConstMetric(descLoss, prometheus.GaugeValue, s.Loss, ue)
			}
			// No latency without answers: absent, not zero.
			if s.Samples > 0 {
				ch <- prometheus.MustNewConstMetric(descLatMean, prometheus.GaugeValue, s.LatencyMean.Seconds(), ue)
				ch <- prometheus.MustNewConstMetric(descLatP50, prometheus.GaugeValue, s.LatencyP50.Seconds(), ue)
				ch <- prometheus.MustNewConstMetric(descLatP95, prometheus.GaugeValue, s.LatencyP95.Seconds(), ue)
				ch <- prometheus.MustNewConstMetric(descLatMax, prometheus.GaugeValue, s.LatencyMax.Seconds(), ue)
				ch <- prometheus.MustNewConstMetric(descJitter, prometheus.GaugeValue, s.Jitter.Seconds(), ue)
			}
		}
		if s.ThroughputSamples > 0 {
			ch <- prometheus.MustNewConstMetric(descThroughput, prometheus.GaugeValue, s.Throughput, ue)
		}
		if !s.LastSample.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, float64(s.LastSample.UnixNano())/1e9, ue)
		}
	}
}

// ueSnapshot is one UE copied under its lock for a scrape; reused across
// UEs so a scrape allocates little beyond the metrics themselves.
type ueSnapshot struct {
	addr     string
	labels   map[string]string
	kinds    [numKinds]bool
	counters [numKinds]kindCounters
	hasHist  [numKinds]bool
	hists    [numKinds]rttHistogram
	bytes    uint64
	status   int
	values   []Value
	stats    Stats
}

func (st *ueState) snapshot(now time.Time, s *ueSnapshot) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s.addr, s.labels = st.cfg.Addr, st.cfg.Labels
	s.kinds, s.counters = st.kinds, st.counters
	for k := range numKinds {
		s.hasHist[k] = st.counters[k].hist != nil
		if s.hasHist[k] {
			s.hists[k] = *st.counters[k].hist
		}
	}
	s.bytes, s.status = st.bytes, st.status
	s.values = append(s.values[:0], st.values...)
	s.stats = Stats{}
	st.win.stats(now, &s.stats)
	if st.hasLat {
		s.stats.LatencyProbe = kindNames[st.latency]
	}
}
