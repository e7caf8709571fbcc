package daemon

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// health is what /-/ready, the status page and the metrics say about the
// daemon's own footing: whether the start's restore is done (until then
// the daemon does not know what it holds), and whether the state file can
// be written (if not, a crash loses what was bought since).
type health struct {
	mu        sync.Mutex
	restored  bool
	writeErr  error // the last state file write's error; nil after a good one
	writeErrs prometheus.Counter
	writeOK   prometheus.Gauge
}

func newHealth() *health {
	h := &health{
		writeErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qodwatch_state_file_write_errors_total",
			Help: "Writes of the state file that failed: what they recorded is lost if the daemon stops before a write succeeds.",
		}),
		writeOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "qodwatch_state_file_last_write_successful",
			Help: "Whether the last write of the state file succeeded (1) or failed (0).",
		}),
	}
	h.writeOK.Set(1)
	return h
}

func (h *health) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.writeErrs, h.writeOK}
}

// wrote records the outcome of one state file write.
func (h *health) wrote(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writeErr = err
	if err != nil {
		h.writeErrs.Inc()
		h.writeOK.Set(0)
		return
	}
	h.writeOK.Set(1)
}

// failing reports whether the last state file write failed.
func (h *health) failing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writeErr != nil
}

// retryStateWrite writes the state file again (with the budget of now)
// while its last write failed, so that a fixed disk is noticed, and the
// daemon is ready again, without waiting for the next thing to record.
// The caller holds d.mu.
func (d *Daemon) retryStateWrite() {
	if d.store == nil || d.cfg.DryRun || d.retryingWrite || !d.health.failing() {
		return
	}
	d.retryingWrite = true
	d.ops.goWrite(func() {
		_, err := d.store.Update(func(s *State) error { s.setBudget(d.Usage()); return nil })
		d.mu.Lock()
		d.retryingWrite = false
		d.mu.Unlock()
		if err == nil {
			d.log.Info("state file writable again")
		}
	})
}

func (h *health) restoreDone() {
	h.mu.Lock()
	h.restored = true
	h.mu.Unlock()
}

// problem is why the daemon is not ready, or "".
func (h *health) problem() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.restored:
		return "restoring: the stored sessions are being checked"
	case h.writeErr != nil:
		return "state file not writable: " + h.writeErr.Error()
	}
	return ""
}

// stateFileError is the last state file write's error, for the status page.
func (h *health) stateFileError() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.writeErr == nil {
		return ""
	}
	return h.writeErr.Error()
}

// NotReady says why the daemon is not ready ("" when it is): /-/ready
// answers 503 with it.
func (d *Daemon) NotReady() string { return d.health.problem() }

// serveReady is /-/ready: 200 once the stored sessions are checked and the
// state file is writable, else 503 with the reason.
func (d *Daemon) serveReady(w http.ResponseWriter, _ *http.Request) {
	if why := d.NotReady(); why != "" {
		w.Header().Set("Retry-After", "1")
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("OK\n"))
}
