package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// The round trips of the whole fleet per probe kind, as one histogram a
// kind: a native histogram for scrapers that take them (protobuf), with
// the classic buckets of the per-UE histogram for the others (issue 12).
// The per-UE classic histogram (Options.RTTHistogram) costs 15 series per
// UE and kind; this one costs nothing per UE, and a native histogram's
// resolution (about 10 % per bucket) stays fine wherever the round trips
// fall.

// FleetRTTName is the family of the fleet round-trip histogram.
const FleetRTTName = "qodwatch_fleet_rtt_seconds"

// fleetRTT holds the histograms of the kinds that measure round trips.
type fleetRTT struct {
	vec   *prometheus.HistogramVec
	kinds [numKinds]prometheus.Observer // looked up once: Observe is on the hot path
}

func newFleetRTT() *fleetRTT {
	f := &fleetRTT{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: FleetRTTName,
		Help: "Round trips of all UEs per probe kind (echo, TCP connect, HTTP time to first byte); a native histogram where the scraper takes them.",
		// Classic buckets, as the per-UE histogram's, for text scrapes.
		Buckets:                         rttBuckets[:],
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
		NativeHistogramZeroThreshold:    1e-6, // a µs: the windows' resolution
	}, []string{"probe"})}
	for k := range numKinds {
		if k.measuresLatency() {
			f.kinds[k] = f.vec.WithLabelValues(kindNames[k])
		}
	}
	return f
}

func (f *fleetRTT) observe(k kind, rtt time.Duration) {
	if o := f.kinds[k]; o != nil {
		o.Observe(max(rtt, 0).Seconds())
	}
}

// FleetRTTCollector is the fleet round-trip histogram, nil unless
// Options.FleetRTTHistogram is set. Register it in the registry passed to
// MetricsHandler.
func (m *Monitor) FleetRTTCollector() prometheus.Collector {
	if m.fleet == nil {
		return nil
	}
	return m.fleet.vec
}

// wantsProtobuf reports whether the scraper asked for the protobuf
// format, which is how Prometheus takes native histograms.
func wantsProtobuf(accept string) bool {
	h := make(map[string][]string, 1)
	h["Accept"] = []string{accept}
	return expfmt.Negotiate(h).FormatType() == expfmt.TypeProtoDelim
}
