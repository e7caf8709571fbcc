package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
)

// closedPort is a loopback port nothing listens on: connecting is refused.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestStatusPageShowsWhatTheRulesRead runs a dry-run daemon with a slow UE
// (it gets a session), a UE whose probe is refused and a quiet one, and
// reads the status page and /status.json: the figures beside their
// thresholds, the sparkline, the session and its age, the failing probe
// with its reason, the decisions; no zero times; pages.
func TestStatusPageShowsWhatTheRulesRead(t *testing.T) {
	slow := newTarget(t)
	slow.slow(60 * time.Millisecond)
	quiet := newTarget(t)
	refused := closedPort(t)
	yaml := fmt.Sprintf(`dry_run: true
web: {listen: "127.0.0.1:0"}
defaults:
  application_server: {ipv4: 203.0.113.10}
  window: 3s
  rule: fast
ues:
  - name: slow-1
    ipv4: 10.0.0.1
    target: 127.0.0.1
    probes: [{http: {url: %q, interval: 200ms, timeout: 150ms}}]
  - name: down-2
    ipv4: 10.0.0.2
    target: 127.0.0.1
    probes: [{tcp: {address: %q, interval: 200ms, timeout: 150ms}}]
  - name: quiet-3
    ipv4: 10.0.0.3
    target: 127.0.0.1
    probes: [{http: {url: %q, interval: 200ms, timeout: 150ms}}]
rules:
  fast:
    breach: {any: ["latency_p50 > 40ms", "loss > 50%%"], for: 500ms}
    recover: {all: ["latency_p50 < 20ms", "loss < 10%%"], for: 500ms}
    qos: QOS_E
    duration: 1h
tick: 100ms
`, slow.srv.URL, refused, quiet.srv.URL)
	cfg, err := config.Parse("status.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	h := d.Handler()
	get := func(path string) (*httptest.ResponseRecorder, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		return rec, rec.Body.String()
	}
	type ueJSON struct {
		UE, State    string
		Since        *time.Time
		SessionID    string     `json:"session_id"`
		SessionSince *time.Time `json:"session_since"`
		Failing      []struct{ Probe, Reason, Text, Error string }
		Figures      []struct {
			Metric, Text string
			Value        *float64
			Breach       []struct {
				Condition string
				Holds     *bool
			}
		}
		Decisions []struct{ Kind, Reason string }
		History   *struct {
			Mean []*float64 `json:"mean_seconds"`
		}
	}
	var status struct {
		TotalUEs  int `json:"total_ues"`
		Attention int
		Pages     int
		UEs       []ueJSON
	}
	byName := map[string]ueJSON{}
	deadline := time.Now().Add(waitLong)
	for {
		_, body := get("/status.json")
		if err := json.Unmarshal([]byte(body), &status); err != nil {
			t.Fatalf("status.json: %v\n%s", err, body)
		}
		clear(byName)
		for _, u := range status.UEs {
			byName[u.UE] = u
		}
		if byName["slow-1"].SessionID != "" && len(byName["down-2"].Failing) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session for slow-1 or no failure for down-2 within %v:\n%s", waitLong, body)
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness
	}

	slowUE, down, q := byName["slow-1"], byName["down-2"], byName["quiet-3"]
	if status.TotalUEs != 3 || status.Attention != 2 || status.UEs[2].UE != "quiet-3" {
		t.Errorf("total %d, attention %d, order %v: want the two UEs needing attention first", status.TotalUEs, status.Attention, status.UEs)
	}
	if f := down.Failing[0]; f.Probe != "tcp" || f.Reason != "refused" || f.Text != "connection refused" || !strings.Contains(f.Error, refused) {
		t.Errorf("down-2 failing %+v", down.Failing)
	}
	if q.Since != nil {
		t.Errorf("quiet-3 never changed state, yet since = %v", q.Since)
	}
	if slowUE.SessionSince == nil || len(slowUE.Decisions) == 0 || slowUE.Decisions[0].Kind != "request" {
		t.Errorf("slow-1: session since %v, decisions %+v", slowUE.SessionSince, slowUE.Decisions)
	}
	var p50 bool
	for _, f := range slowUE.Figures {
		if f.Metric == "latency_p50" {
			p50 = f.Value != nil && *f.Value > 0.04 && strings.HasSuffix(f.Text, "ms") &&
				len(f.Breach) == 1 && f.Breach[0].Holds != nil && *f.Breach[0].Holds
		}
	}
	if !p50 || slowUE.History == nil || len(slowUE.History.Mean) == 0 {
		t.Errorf("slow-1 figures %+v, history %v: want latency_p50 over its 40ms breach threshold", slowUE.Figures, slowUE.History)
	}

	rec, page := get("/")
	if f := os.Getenv("STATUS_PAGE_OUT"); f != "" {
		_ = os.WriteFile(f, []byte(page), 0o644)
	}
	for _, want := range []string{
		"<svg class=\"spark\"", "tcp: connection refused since ", "latency_p50", "breach &gt; 40ms", "recover &lt; 20ms",
		slowUE.SessionID, "held for ", "request", "data-metric=\"loss\"", "<noscript><meta http-equiv=\"refresh\"",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(page, "http://") && !strings.Contains(page, slow.srv.URL) {
		t.Error("status page refers to something outside")
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("CSP %q", csp)
	}

	// Pages: one UE a page, the second is down-2 or slow-1, never quiet-3.
	_, body := get("/status.json?per_page=1&page=2")
	var p2 struct {
		Pages int
		UEs   []ueJSON
	}
	if err := json.Unmarshal([]byte(body), &p2); err != nil || p2.Pages != 3 || len(p2.UEs) != 1 || p2.UEs[0].UE == "quiet-3" {
		t.Errorf("page 2 of 1 per page: %v %s", err, body)
	}
	// The standard families of every exporter, beside the per-UE error.
	_, metrics := get("/metrics")
	for _, want := range []string{"go_goroutines ", "go_memstats_heap_inuse_bytes ", "process_resident_memory_bytes ", "process_start_time_seconds ",
		`qodwatch_probe_errors_total{probe="tcp",reason="refused",ue="down-2"} `, `qodwatch_probe_failing_since_timestamp_seconds{probe="tcp",ue="down-2"} `} {
		if !strings.Contains(metrics, "\n"+want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Every field is documented.
	_, doc := get("/status.json?doc")
	for _, line := range strings.Split(strings.TrimSpace(doc), "\n")[3:] {
		if name, text, _ := strings.Cut(line, "\t"); strings.TrimSpace(text) == "" {
			t.Errorf("field %s has no doc", name)
		}
	}
	for _, f := range []string{"ues[].session_since", "ues[].figures", "ues[].failing", "ues[].history", "per_page"} {
		if !strings.Contains(doc, f+"\t") {
			t.Errorf("doc lacks %s:\n%s", f, doc)
		}
	}
}
