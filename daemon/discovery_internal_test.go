package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/qodwatch/qodwatch/config"
)

// sdDaemon is a dry-run daemon, not running, with one http_sd source at
// url; now is its clock.
func sdDaemon(t *testing.T, url, grace string, now func() time.Time) *Daemon {
	t.Helper()
	dir := t.TempDir()
	y := fmt.Sprintf(`dry_run: true
defaults: {application_server: {ipv4: 203.0.113.10}, window: 1h, rule: fast, probes: [{tcp: {address: "127.0.0.1:1", interval: 1h}}]}
rules:
  fast:
    breach: {any: ["latency_p95 > 80ms"], for: 5s}
    recover: {all: ["latency_p95 < 40ms"], for: 5s}
    qos: QOS_E
    duration: 10m
ue_sd:
  - name: fleet
    http_sd: {url: %q, refresh_interval: 1h, timeout: 1m, authorization: {credentials: "${QODTEST_SD_TOKEN}"}}
    grace: %s
    template: {name: "{{labels.name}}", ipv4: "{{target}}"}
`, url, grace)
	t.Setenv("QODTEST_SD_TOKEN", "sd-token-value")
	cfg, err := config.Parse(filepath.Join(dir, "c.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d.sd.restartSources(context.Background(), cfg.Discovery)
	d.sd.stop() // the test refreshes by hand
	return d
}

func groupsJSON(n int, bad int) []byte {
	gs := make([]config.TargetGroup, n)
	for i := range gs {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if i == bad {
			ip = "10.0.0.300"
		}
		gs[i] = config.TargetGroup{Targets: []string{ip}, Labels: map[string]string{"name": fmt.Sprintf("ue-%d", i)}}
	}
	b, _ := json.Marshal(gs)
	return b
}

// An HTTP source that answers 200,000 UEs (largeSD), then fails, then times out:
// the UEs stay through the failures, and each failure is counted.
func TestHTTPDiscoveryLargeErrorsTimeout(t *testing.T) {
	var mu sync.Mutex
	mode := "ok"
	body := groupsJSON(largeSD, 7)
	release := make(chan struct{})
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		m := mode
		auth = r.Header.Get("Authorization")
		mu.Unlock()
		switch m {
		case "ok":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		case "error":
			http.Error(w, "inventory down", http.StatusInternalServerError)
		case "hang":
			select { // until the client gives up (its timeout) or the test ends
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	d := sdDaemon(t, srv.URL+"/sd?token=in-query", "1m", time.Now)
	src := d.sd.sources["fleet"]
	ctx := context.Background()

	if err := d.sd.fetchHTTP(ctx, src); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer sd-token-value" {
		t.Errorf("Authorization %q", auth)
	}
	start := time.Now()
	cfg := d.sd.merged()
	t.Logf("%d UEs resolved and merged in %v", largeSD, time.Since(start))
	if len(cfg.UEs) != largeSD-1 {
		t.Fatalf("%d UEs, want %d (one is invalid)", len(cfg.UEs), largeSD-1)
	}
	if got := testCounter(d.sd.metrics.invalid.WithLabelValues("fleet")); got != 1 {
		t.Errorf("invalid entries %v, want 1", got)
	}
	src.spec.Timeout = 200 * time.Millisecond // the hanging server never answers
	for _, m := range []string{"error", "hang"} {
		mu.Lock()
		mode = m
		mu.Unlock()
		err := d.sd.fetchHTTP(ctx, src)
		want := map[string]string{"error": "500 Internal Server Error", "hang": "context deadline exceeded"}[m]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", m, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "in-query") {
			t.Errorf("the error shows the URL's query: %v", err)
		}
		if cfg := d.sd.merged(); len(cfg.UEs) != largeSD-1 {
			t.Errorf("%s: %d UEs after a failed fetch, want %d kept", m, len(cfg.UEs), largeSD-1)
		}
	}
}

// A UE gone from its source stays for the grace period (a flap within it
// changes nothing), then leaves. Clock faked.
func TestDiscoveryGracePeriod(t *testing.T) {
	var mu sync.Mutex
	n := 3
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(groupsJSON(n, -1))
	}))
	defer srv.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	setN := func(v int) { mu.Lock(); n = v; mu.Unlock() }
	d := sdDaemon(t, srv.URL, "1m", clock)
	src := d.sd.sources["fleet"]
	round := func() int {
		t.Helper()
		if err := d.sd.fetchHTTP(context.Background(), src); err != nil {
			t.Fatal(err)
		}
		return len(d.sd.merged().UEs)
	}
	if got := round(); got != 3 {
		t.Fatalf("%d UEs, want 3", got)
	}
	setN(2)
	if got := round(); got != 3 {
		t.Errorf("just vanished: %d UEs, want 3 (grace)", got)
	}
	advance(59 * time.Second)
	if got := round(); got != 3 {
		t.Errorf("59s after: %d UEs, want 3", got)
	}
	if end := d.sd.nextGraceEnd(); !end.Equal(clock().Add(time.Second)) {
		t.Errorf("grace ends %v, want %v", end, clock().Add(time.Second))
	}
	setN(3) // back within the grace period: a flap
	advance(30 * time.Second)
	round()
	setN(2)
	round()
	advance(59 * time.Second)
	if got := round(); got != 3 {
		t.Errorf("vanished again 59s ago: %d UEs, want 3 (the flap restarted the grace)", got)
	}
	advance(time.Second)
	if got := round(); got != 2 {
		t.Errorf("grace over: %d UEs, want 2", got)
	}
}

func testCounter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}
