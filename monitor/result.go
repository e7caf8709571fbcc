// Package monitor runs the probes of each UE and keeps its windowed
// statistics: what the policy reads to decide whether a UE is doing badly.
package monitor

import "time"

// Result is one measurement by one probe for one UE. Probes emit Results;
// the per-UE window turns them into statistics. It is passed by value on the
// hot path (tens of thousands per second for ICMP), so it holds no pointers
// that would need allocating per measurement.
type Result struct {
	UE    string    // UE name from the config
	Probe string    // probe kind: icmp, tcp, http, throughput, prometheus
	At    time.Time // when the measurement completed (or timed out)

	// RTT is the latency for icmp (echo round trip), tcp (connect) and http
	// (time to first byte). Meaningless when Lost.
	RTT time.Duration
	// Lost is set when an echo or connection got no answer within its timeout.
	// A lost packet is a measurement (it counts towards loss), not an error.
	Lost bool
	// BytesPerSecond is the throughput measured by the throughput probe.
	BytesPerSecond float64
	// Value is the sample read from a passive source (prometheus).
	Value float64
	// Err is set when the probe could not measure at all (DNS failure,
	// permission denied, bad URL). It is neither a loss nor a sample.
	Err error
}

// Recorder receives Results. Implementations must be safe for concurrent use
// and must not block: probes call Record from their receive loops.
type Recorder interface {
	Record(Result)
}

// RecorderFunc adapts a function to the Recorder interface.
type RecorderFunc func(Result)

// Record calls f(r).
func (f RecorderFunc) Record(r Result) { f(r) }
