package monitor

import (
	"cmp"
	"math"
	"slices"
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

// family is one metric family of the Monitor. Both ways out, Collect
// (client_golang) and WriteMetrics (the text format, straight), walk the
// same families over the same snapshot, so they cannot disagree.
type family struct {
	name, help string
	kind       familyKind
	labels     []string // variable label names, sorted as the text format has them
	desc       *prometheus.Desc
	// write emits the family's series from a scrape's snapshot.
	write func(sc *scrape, f *family, out sink)
}

type familyKind uint8

const (
	gauge familyKind = iota
	counter
	histogram
)

func (k familyKind) String() string { return [...]string{"gauge", "counter", "histogram"}[k] }

// sink receives the series of one scrape. Label values come in the order
// of family.labels; l1 is unused by families with fewer than two labels.
type sink interface {
	sample(f *family, v float64, l0, l1 string)
	// sample3 is sample for the families with three labels.
	sample3(f *family, v float64, l0, l1, l2 string)
	histogram(f *family, h *rttHistogram, l0, l1 string)
	// fleetHistogram is a histogram without labels.
	fleetHistogram(f *family, h *fleetHistogram)
	// info is qodwatch_ue_info, whose label names follow the config.
	info(f *family, names, values []string)
}

// families are sorted by name, the order of the text format's output.
// The qodwatch_fleet_ ones cover every UE; the others with a ue label only
// the UEs SelectUEs picks.
var families = []*family{
	{name: "qodwatch_fleet_ues_never_measured", kind: gauge,
		help: "UEs whose probes never measured since they were added (their last sample is 0).",
		write: func(sc *scrape, f *family, out sink) {
			out.sample(f, float64(sc.fleet.neverMeasured), "", "")
		}},
	{name: "qodwatch_fleet_window_last_sample_age_seconds", kind: histogram,
		help:  "Age of each measured UE's last sample, across UEs (a UE never measured is left out: qodwatch_fleet_ues_never_measured).",
		write: func(sc *scrape, f *family, out sink) { out.fleetHistogram(f, &sc.fleet.age) }},
	{name: "qodwatch_fleet_window_latency_p95_seconds", kind: histogram,
		help:  "95th percentile round trip of each UE's window, across the UEs with answers in their window.",
		write: func(sc *scrape, f *family, out sink) { out.fleetHistogram(f, &sc.fleet.p95) }},
	{name: "qodwatch_fleet_window_loss_ratio", kind: histogram,
		help:  "Loss ratio of each UE's window, across the UEs with measurements in their window.",
		write: func(sc *scrape, f *family, out sink) { out.fleetHistogram(f, &sc.fleet.loss) }},
	{name: "qodwatch_fleet_window_throughput_bytes_per_second", kind: histogram,
		help:  "Mean throughput of each UE's window, across the UEs with throughput samples in their window.",
		write: func(sc *scrape, f *family, out sink) { out.fleetHistogram(f, &sc.fleet.tput) }},
	{name: "qodwatch_icmp_dropped_results_total", kind: counter,
		help: "ICMP results dropped because they overlapped a throughput run of their UE.",
		write: func(sc *scrape, f *family, out sink) {
			out.sample(f, float64(sc.dropped), "", "")
		}},
	{name: "qodwatch_probe_errors_total", kind: counter, labels: []string{"probe", "reason", "ue"},
		help: "Probe runs that could not measure at all, per UE, probe kind and reason; a series appears with its first error.",
		write: func(sc *scrape, f *family, out sink) {
			// Only UEs that ever failed, and only the reasons seen: one
			// series per UE, kind and reason would make a healthy fleet's
			// /metrics ten times longer. So this counter's first error is
			// no increase: alert on qodwatch_probe_failing_since_timestamp_seconds
			// (present from the first error) or on a last sample of 0.
			var c [numKinds][numReasons]uint64
			for _, st := range sc.ues {
				st.mu.Lock()
				ok := st.errs != nil
				if ok {
					c = st.errs.counts
				}
				st.mu.Unlock()
				if !ok {
					continue
				}
				for _, k := range kindsByName {
					for _, r := range reasonsByName {
						if c[k][r] > 0 {
							out.sample3(f, float64(c[k][r]), kindNames[k], reasonNames[r], st.name)
						}
					}
				}
			}
		}},
	{name: "qodwatch_probe_failing_since_timestamp_seconds", kind: gauge, labels: labelsProbeUE,
		help: "When the current run of errors of the UE's probe began, Unix time; absent while the probe measures.",
		write: func(sc *scrape, f *family, out sink) {
			var since [numKinds]int64
			for _, st := range sc.ues {
				st.mu.Lock()
				ok := st.errs != nil
				if ok {
					for k := range numKinds {
						since[k] = 0
						if st.kinds[k] {
							since[k] = st.errs.cur[k].since
						}
					}
				}
				st.mu.Unlock()
				if !ok {
					continue
				}
				for _, k := range kindsByName {
					if since[k] != 0 {
						out.sample(f, float64(since[k])/1e9, kindNames[k], st.name)
					}
				}
			}
		}},
	{name: "qodwatch_probe_http_status_code", kind: gauge, labels: labelsUE,
		help: "Last HTTP status seen by an http or throughput probe of the UE.",
		write: func(sc *scrape, f *family, out sink) {
			for _, st := range sc.ues {
				st.mu.Lock()
				status := st.status
				st.mu.Unlock()
				if status != 0 {
					out.sample(f, float64(status), st.name, "")
				}
			}
		}},
	{name: "qodwatch_probe_received_total", kind: counter, labels: labelsProbeUE,
		help: "Measurements answered per UE and probe kind.",
		write: func(sc *scrape, f *family, out sink) {
			for _, st := range sc.ues {
				kinds, c := st.counts()
				for _, k := range kindsByName {
					if kinds[k] {
						out.sample(f, float64(c[k].received), kindNames[k], st.name)
					}
				}
			}
		}},
	{name: "qodwatch_probe_rtt_seconds", kind: histogram, labels: labelsProbeUE,
		help: "Round trips per UE and probe kind: echo, TCP connect, HTTP time to first byte.",
		write: func(sc *scrape, f *family, out sink) {
			if !sc.histograms {
				return
			}
			var h rttHistogram
			for _, st := range sc.ues {
				for _, k := range kindsByName {
					st.mu.Lock()
					ok := st.hists != nil && st.hists[k] != nil
					if ok {
						h = *st.hists[k]
					}
					st.mu.Unlock()
					if ok {
						out.histogram(f, &h, kindNames[k], st.name)
					}
				}
			}
		}},
	{name: "qodwatch_probe_sent_total", kind: counter, labels: labelsProbeUE,
		help: "Measurements attempted per UE and probe kind (echo requests, connections, queries).",
		write: func(sc *scrape, f *family, out sink) {
			for _, st := range sc.ues {
				kinds, c := st.counts()
				for _, k := range kindsByName {
					if kinds[k] {
						out.sample(f, float64(c[k].sent), kindNames[k], st.name)
					}
				}
			}
		}},
	{name: "qodwatch_probe_skipped_total", kind: counter, labels: []string{"probe"},
		help: "Probe runs skipped because the UE was busy with a throughput run or the previous run had not finished.",
		write: func(sc *scrape, f *family, out sink) {
			for _, k := range kindsByName {
				out.sample(f, float64(sc.skipped[k]), kindNames[k], "")
			}
		}},
	{name: "qodwatch_probe_transferred_bytes_total", kind: counter, labels: labelsUE,
		help: "Bytes moved by throughput probes per UE (mobile data spent on measuring).",
		write: func(sc *scrape, f *family, out sink) {
			for _, st := range sc.ues {
				st.mu.Lock()
				tput, bytes := st.kinds[kThroughput], st.bytes
				st.mu.Unlock()
				if tput {
					out.sample(f, float64(bytes), st.name, "")
				}
			}
		}},
	{name: "qodwatch_probe_value", kind: gauge, labels: []string{"query", "ue"},
		help: "Last value read by a prometheus probe of the UE.",
		write: func(sc *scrape, f *family, out sink) {
			var values []Value
			for _, st := range sc.ues {
				st.mu.Lock()
				values = append(values[:0], st.values...)
				st.mu.Unlock()
				for _, v := range values {
					if !v.At.IsZero() {
						out.sample(f, v.Value, v.Name, st.name)
					}
				}
			}
		}},
	{name: "qodwatch_ue_info", kind: gauge,
		help: "The UEs being watched, with their address and config labels; join on ue.",
		write: func(sc *scrape, f *family, out sink) {
			// Label names sorted: addr, the config's, ue (config labels may
			// be neither addr nor ue).
			names := make([]string, 0, 2+len(sc.infoLabels))
			names = append(names, "addr")
			names = append(names, sc.infoLabels...)
			names = append(names, "ue")
			slices.Sort(names)
			values := make([]string, len(names))
			for _, st := range sc.ues {
				st.mu.Lock()
				addr, labels := st.cfg.Addr, st.cfg.Labels // the config's: never written to
				st.mu.Unlock()
				for j, n := range names {
					switch n {
					case "addr":
						values[j] = addr
					case "ue":
						values[j] = st.name
					default:
						values[j] = labels[n]
					}
				}
				out.info(f, names, values)
			}
		}},
	{name: "qodwatch_ues", kind: gauge,
		help: "Number of UEs being watched.",
		write: func(sc *scrape, f *family, out sink) {
			out.sample(f, float64(sc.total), "", "")
		}},
	{name: "qodwatch_window_jitter_seconds", kind: gauge, labels: labelsUE,
		help:  "RFC 3550 jitter of the UE's round trips.",
		write: withLatency(func(w *winFigures) float64 { return w.jitter.Seconds() })},
	{name: "qodwatch_window_last_sample_timestamp_seconds", kind: gauge, labels: labelsUE,
		help: "When the UE's last measurement completed, Unix time; 0 while it has none (its probes never measured since it was added).",
		// 0, not absent, for a UE that never measured: an alert on
		// "no data" must see the UEs that never had any (issue 9).
		write: perWindow(func(w *winFigures) (float64, bool) { return float64(w.last) / 1e9, true })},
	{name: "qodwatch_window_latency_max_seconds", kind: gauge, labels: labelsUE,
		help:  "Longest round trip in the UE's window.",
		write: withLatency(func(w *winFigures) float64 { return w.max.Seconds() })},
	{name: "qodwatch_window_latency_mean_seconds", kind: gauge, labels: labelsUE,
		help:  "Mean round trip over the UE's window.",
		write: withLatency(func(w *winFigures) float64 { return w.mean.Seconds() })},
	{name: "qodwatch_window_latency_p50_seconds", kind: gauge, labels: labelsUE,
		help:  "Median round trip over the UE's window.",
		write: withLatency(func(w *winFigures) float64 { return w.p50.Seconds() })},
	{name: "qodwatch_window_latency_p95_seconds", kind: gauge, labels: labelsUE,
		help:  "95th percentile round trip over the UE's window.",
		write: withLatency(func(w *winFigures) float64 { return w.p95.Seconds() })},
	{name: "qodwatch_window_loss_ratio", kind: gauge, labels: labelsUE,
		help: "Share of the UE's measurements in the window that got no answer.",
		write: perWindow(func(w *winFigures) (float64, bool) {
			n := w.samples + w.lost
			if !w.hasLat || n == 0 {
				return 0, false
			}
			return float64(w.lost) / float64(n), true // as window.stats has it
		})},
	{name: "qodwatch_window_lost", kind: gauge, labels: labelsUE,
		help:  "Unanswered measurements in the UE's window.",
		write: perWindow(func(w *winFigures) (float64, bool) { return float64(w.lost), w.hasLat })},
	{name: "qodwatch_window_samples", kind: gauge, labels: labelsUE,
		help:  "Answered round trips in the UE's window.",
		write: perWindow(func(w *winFigures) (float64, bool) { return float64(w.samples), w.hasLat })},
	{name: "qodwatch_window_throughput_bytes_per_second", kind: gauge, labels: labelsUE,
		help:  "Mean throughput of the UE's throughput samples in the window.",
		write: perWindow(func(w *winFigures) (float64, bool) { return w.throughput, w.tputSamples > 0 })},
}

var (
	labelsUE      = []string{"ue"}
	labelsProbeUE = []string{"probe", "ue"}

	// kindsByName and reasonsByName order series as the text format sorts
	// label values.
	kindsByName   = sortedIndexes(kindNames[:], func(k int) kind { return kind(k) })
	reasonsByName = sortedIndexes(reasonNames[:], func(r int) int { return r })

	familyNames = map[string]bool{}
)

func init() {
	for _, f := range families {
		familyNames[f.name] = true
		if f.name != "qodwatch_ue_info" { // its labels follow the config
			f.desc = prometheus.NewDesc(f.name, f.help, f.labels, nil)
		}
	}
}

func sortedIndexes[T any](names []string, conv func(int) T) []T {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(names[a], names[b]) })
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = conv(j)
	}
	return out
}

// perWindow makes a family of one window figure per UE, where ok.
func perWindow(value func(w *winFigures) (v float64, ok bool)) func(*scrape, *family, sink) {
	return func(sc *scrape, f *family, out sink) {
		for i, st := range sc.ues {
			if v, ok := value(&sc.win[i]); ok {
				out.sample(f, v, st.name, "")
			}
		}
	}
}

// withLatency is a latency figure of the UEs with answers in their window:
// without answers it is absent, not zero.
func withLatency(value func(w *winFigures) float64) func(*scrape, *family, sink) {
	return perWindow(func(w *winFigures) (float64, bool) {
		return value(w), w.hasLat && w.samples > 0
	})
}

// scrape is what one scrape reads: the UEs, and their window figures,
// computed once per UE since they take a sort. The other figures are read
// family by family under each UE's lock, so a scrape holds little more
// than the window figures (72 bytes a UE).
type scrape struct {
	ues        []*ueState   // sorted by name; those SelectUEs picks
	win        []winFigures // the figures of ues[i]'s window
	total      int          // UEs in all
	fleet      fleetFigures // over all UEs
	infoLabels []string
	histograms bool
	skipped    [numKinds]uint64
	dropped    uint64
}

// winFigures is one UE's window as exported.
type winFigures struct {
	samples, lost, tputSamples int32
	hasLat                     bool
	mean, p50, p95, max        time.Duration
	jitter                     time.Duration
	throughput                 float64
	last                       int64 // UnixNano; 0 if none
}

// scrape reads the window of every UE as of now.
func (m *Monitor) scrape(now time.Time) *scrape {
	set := m.set.Load()
	keep := m.selected()
	sc := &scrape{ues: set.sorted, total: len(set.sorted),
		fleet: newFleetFigures(), infoLabels: set.infoLabels, histograms: m.opts.RTTHistogram}
	if keep != nil {
		// Only the picked UEs' figures are kept: 100,000 UEs' would be 7 MB
		// a scrape for the fleet families alone.
		sc.ues = make([]*ueState, 0, 64)
		sc.win = make([]winFigures, 0, 64)
	} else {
		sc.win = make([]winFigures, 0, len(set.sorted))
	}
	for k := range numKinds {
		sc.skipped[k] = m.skipped[k].Load()
	}
	sc.dropped = m.dropped.Load()
	var s Stats
	for _, st := range set.sorted {
		st.mu.Lock()
		s = Stats{}
		st.win.stats(now, &s)
		hasLat := st.hasLat
		st.mu.Unlock()
		w := winFigures{
			samples: int32(min(s.Samples, math.MaxInt32)), lost: int32(min(s.Lost, math.MaxInt32)), tputSamples: int32(s.ThroughputSamples),
			hasLat: hasLat, mean: s.LatencyMean, p50: s.LatencyP50, p95: s.LatencyP95, max: s.LatencyMax, jitter: s.Jitter,
			throughput: s.Throughput,
		}
		if !s.LastSample.IsZero() {
			w.last = s.LastSample.UnixNano()
		}
		sc.fleet.add(&w, now)
		if keep == nil {
			sc.win = append(sc.win, w)
		} else if keep(st.name) {
			sc.ues = append(sc.ues, st)
			sc.win = append(sc.win, w)
		}
	}
	return sc
}

// counts copies the UE's configured kinds and their counters.
func (st *ueState) counts() ([numKinds]bool, [numKinds]kindCounters) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.kinds, st.counters
}

// Describe implements prometheus.Collector. The Monitor is an unchecked
// collector: qodwatch_ue_info carries the UE labels of the config, whose
// names change with it.
func (m *Monitor) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. It reads the windows at scrape
// time, so recording never touches a metric. For thousands of UEs serve
// MetricsHandler instead: client_golang builds several objects per series.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	sc := m.scrape(m.clock.Now())
	out := &collectSink{ch: ch}
	for _, f := range families {
		f.write(sc, f, out)
	}
}

// collectSink turns series into client_golang metrics.
type collectSink struct {
	ch       chan<- prometheus.Metric
	infoDesc *prometheus.Desc
}

func (c *collectSink) sample(f *family, v float64, l0, l1 string) {
	t := prometheus.GaugeValue
	if f.kind == counter {
		t = prometheus.CounterValue
	}
	switch len(f.labels) {
	case 0:
		c.ch <- prometheus.MustNewConstMetric(f.desc, t, v)
	case 1:
		c.ch <- prometheus.MustNewConstMetric(f.desc, t, v, l0)
	default:
		c.ch <- prometheus.MustNewConstMetric(f.desc, t, v, l0, l1)
	}
}

func (c *collectSink) sample3(f *family, v float64, l0, l1, l2 string) {
	t := prometheus.GaugeValue
	if f.kind == counter {
		t = prometheus.CounterValue
	}
	c.ch <- prometheus.MustNewConstMetric(f.desc, t, v, l0, l1, l2)
}

func (c *collectSink) histogram(f *family, h *rttHistogram, l0, l1 string) {
	buckets := make(map[float64]uint64, len(rttBuckets))
	var cum uint64
	for i, ub := range rttBuckets {
		cum += h.counts[i]
		buckets[ub] = cum
	}
	c.ch <- prometheus.MustNewConstHistogram(f.desc, h.count, h.sum, buckets, l0, l1)
}

func (c *collectSink) fleetHistogram(f *family, h *fleetHistogram) {
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, ub := range h.bounds {
		cum += h.counts[i]
		buckets[ub] = cum
	}
	c.ch <- prometheus.MustNewConstHistogram(f.desc, h.count, h.sum, buckets)
}

func (c *collectSink) info(f *family, names, values []string) {
	if c.infoDesc == nil {
		c.infoDesc = prometheus.NewDesc(f.name, f.help, names, nil)
	}
	c.ch <- prometheus.MustNewConstMetric(c.infoDesc, prometheus.GaugeValue, 1, values...)
}
