package daemon

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
)

// The budget figure in the state file is the one when it is written, not
// when the write was asked for: an older figure must never overwrite a
// newer one (issue 8).
func TestBudgetWrittenAsOfTheWrite(t *testing.T) {
	dir := t.TempDir()
	y := `api: {base_url: "http://127.0.0.1:1/qod/v1", auth: {type: none}}
defaults: {application_server: {ipv4: 203.0.113.10}, window: 30s, rule: fast, probes: [{tcp: {address: "127.0.0.1:1", interval: 10s}}]}
ues: [{name: ue-1, ipv4: 10.0.0.1, target: 127.0.0.1}]
rules:
  fast:
    breach: {any: ["latency_p95 > 80ms"], for: 5s}
    recover: {all: ["latency_p95 < 40ms"], for: 5s}
    qos: QOS_E
    duration: 10m
guards: {daily_budget: 1h}
state_dir: "` + filepath.Join(dir, "state") + `"
`
	cfg, err := config.Parse(filepath.Join(dir, "q.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Another process holds the file: the write waits.
	unlock, err := d.store.lock()
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.persistAsync(func(*State) {})
	d.mu.Unlock()
	// Meanwhile the engine charges more.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d.mu.Lock()
	d.engine.RestoreBudget(today, 10*time.Minute)
	d.mu.Unlock()
	unlock()
	d.ops.wait()
	st, err := d.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.Budget == nil || st.Budget.UsedSeconds != 600 {
		t.Fatalf("budget in the state file %+v, want the 600s charged when it was written", st.Budget)
	}
}
