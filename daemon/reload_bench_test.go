package daemon_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
)

// BenchmarkReload100k: a reload of a 100,000-UE config (issue 13's goal:
// load, reload and discovery of 100,000 UEs within 2 s), read from the file
// and applied to a daemon already holding them. Each reload changes one
// UE's label, so there is something to apply.
func BenchmarkReload100k(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	file := filepath.Join(dir, "fleet.yaml")
	write := func(site string) {
		var y strings.Builder
		fmt.Fprintf(&y, "state_dir: %q\ndry_run: true\n", filepath.Join(dir, "state"))
		y.WriteString("defaults: {application_server: {ipv4: 203.0.113.10}, rule: low-latency, probes: [{icmp: {interval: 1s}}]}\nues:\n")
		for i := range n {
			fmt.Fprintf(&y, "  - {name: ue-%d, ipv4: 10.%d.%d.%d, labels: {site: %s}}\n", i, i>>16&255, i>>8&255, i&255, site)
		}
		y.WriteString("rules:\n  low-latency:\n    breach: {any: [\"latency_p95 > 80ms\"], for: 20s}\n    recover: {all: [\"latency_p95 < 50ms\"], for: 1m}\n    qos: QOS_E\n    duration: 10m\n")
		if err := os.WriteFile(file, []byte(y.String()), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	write("a")
	cfg, err := config.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Config: cfg, ConfigFile: file, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	sites := []string{"b", "a"}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		write(sites[i%2])
		b.StartTimer()
		if err := d.Reload(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/reload")
}
