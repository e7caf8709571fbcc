package main

// What an operator sees, checked with the tools an operator uses (issue
// 12): the real binary on a small config, scraped by Debian's prometheus
// server, which must find every metric that deploy/prometheus and the
// Grafana dashboard name; and the status page in headless Chromium.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// needTool finds a program the test needs: missing, the test fails in CI
// (which installs it) and is skipped elsewhere.
func needTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed; CI must install it (.ci/run)", names[0])
	}
	t.Skipf("%s not installed (apt-get install %s)", names[0], names[0])
	return ""
}

// observeConfig: ue-a is probed over HTTP (the rig scripts its latency)
// and measures throughput; ue-b's TCP probe is refused; ue-c's HTTP probe
// gets 503 every time, so ue-c never measures (a refused connect can still
// time out on a loaded machine, which counts as a lost measurement).
const observeConfig = `api:
  base_url: %s
  dialect: devedge
  auth: {type: none}
  timeout: 2s
  poll_interval: 1s
  max_retries: 1
web:
  listen: %s
defaults:
  application_server: {ipv4: 203.0.113.10}
  window: 2s
  rule: e2e
ues:
  - name: ue-a
    ipv4: 198.51.100.1
    target: 127.0.0.1
    probes:
      - http: {url: %q, interval: 100ms, timeout: 100ms}
      - throughput: {url: %q, interval: 1s, max_bytes: 256KiB, max_time: 500ms}
  - name: ue-b
    ipv4: 198.51.100.2
    target: 127.0.0.1
    probes:
      - tcp: {address: %q, interval: 200ms, timeout: 100ms}
  - name: ue-c
    ipv4: 198.51.100.3
    target: 127.0.0.1
    probes:
      - http: {url: %q, interval: 2s, timeout: 2s}
rules:
  e2e:
    breach: {any: ["loss > 50%%", "latency_p50 > 60ms"], for: 500ms}
    recover: {all: ["loss < 20%%", "latency_p50 < 30ms"], for: 500ms}
    qos: QOS_E
    duration: 60s
guards:
  min_session: 0s
  cooldown: 0s
state_dir: %s
tick: 100ms
`

func TestOperatorViewInPrometheusAndChromium(t *testing.T) {
	t.Parallel()
	promBin := needTool(t, "prometheus")
	chromium := needTool(t, "chromium", "chromium-browser")

	r := newRig(t, rigOptions{UEs: 1})
	a := r.ue("ue-a")
	blob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(make([]byte, 1<<20))
	}))
	t.Cleanup(blob.Close)
	refused := freeAddr(t, "127.0.0.1") // nothing listens there
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	r.writeConfigText(fmt.Sprintf(observeConfig, r.sim.URL, r.webAddr, a.URL, blob.URL+"/blob", refused, unavailable.URL, r.stateDir))

	prom := startPrometheus(t, promBin, r.webAddr)
	// A second server takes native histograms: it scrapes protobuf.
	native := startPrometheus(t, promBin, r.webAddr, "--enable-feature=native-histograms")
	d := r.start("qodwatch")

	a.target.setBad(true)
	held := d.waitState("ue-a", 15*time.Second, "active")
	waitFor(t, 10*time.Second, "ue-b's refused probe on /status.json", func() bool {
		return strings.Contains(get(t, d.url("/status.json")), `"reason":"refused"`)
	})

	t.Run("status page in chromium", func(t *testing.T) {
		dom, console := dumpDOM(t, chromium, d.url("/"))
		for _, want := range []string{
			held.SessionID, "QOS_E", "held for ", // the session with its age
			`data-metric="latency_p50"`, "breach &gt; 60ms", "recover &lt; 30ms", // figures beside thresholds
			`class="small reason">breach `, "held for 500ms", // the reason of the decision
			"tcp: connection refused since ", // the failing probe
			`<svg class="spark"`,
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("the rendered page lacks %q", want)
			}
		}
		// The page refreshed itself (in place), without an error.
		m := regexp.MustCompile(`data-refreshes="(\d+)"`).FindStringSubmatch(dom)
		if m == nil || m[1] == "0" {
			t.Errorf("the page did not refresh itself (data-refreshes %v)", m)
		}
		if strings.Contains(dom, "data-errors=") {
			t.Errorf("the page's script reported errors: %s", regexp.MustCompile(`data-errors="[^"]*"`).FindString(dom))
		}
		for _, line := range strings.Split(console, "\n") {
			if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Refused to") || strings.Contains(line, "Uncaught") {
				t.Errorf("browser console: %s", line)
			}
		}
		if t.Failed() {
			t.Logf("DOM:\n%s", dom)
		}
	})

	// A release, so the counters of ended sessions have a series too.
	a.target.setBad(false)
	d.waitState("ue-a", 15*time.Second, "idle", "cooldown")

	t.Run("prometheus finds every metric the rules and the dashboard name", func(t *testing.T) {
		names := namedMetrics(t)
		if len(names) < 10 {
			t.Fatalf("only %d metric names found in deploy/: %v", len(names), names)
		}
		t.Logf("%d metric names: %v", len(names), names)
		var missing []string
		deadline := time.Now().Add(30 * time.Second)
		for {
			missing = missing[:0]
			if h := prom.targetHealth(t); h != "up" {
				missing = append(missing, "target health "+h)
			}
			for _, n := range names {
				if !prom.has(t, n) {
					missing = append(missing, n)
				}
			}
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30s prometheus still lacks: %v", missing)
			}
			time.Sleep(500 * time.Millisecond) // polling prometheus, which scrapes every 1s
		}
		// The server with native histograms got everything over protobuf,
		// the fleet's round trips as a native histogram.
		waitFor(t, 30*time.Second, "the native-histogram prometheus to see the fleet histogram and the per-UE figures", func() bool {
			return native.targetHealth(t) == "up" &&
				native.query(t, `histogram_count(qodwatch_fleet_rtt_seconds{probe="http"}) > 0`) &&
				native.query(t, `qodwatch_window_loss_ratio{ue="ue-a"}`)
		})
		// The alert rules loaded and evaluate without error.
		for _, rule := range prom.rules(t) {
			if rule.Health != "ok" && rule.Health != "unknown" {
				t.Errorf("alert %s: health %s: %s", rule.Name, rule.Health, rule.LastError)
			}
		}
		// Issue 9: ue-c never measured: the never-measured alert is
		// pending for it (firing after its for), not for ue-a; and the
		// counter of lost creates is there at 0 before any was lost, so
		// the first one is an increase.
		waitFor(t, 30*time.Second, "QodwatchUENeverMeasured pending for ue-c", func() bool {
			return prom.query(t, `ALERTS{alertname="QodwatchUENeverMeasured",alertstate="pending",ue="ue-c"}`)
		})
		if prom.query(t, `ALERTS{alertname="QodwatchUENeverMeasured",ue="ue-a"}`) {
			t.Error("QodwatchUENeverMeasured for ue-a, which measures")
		}
		if !prom.query(t, `qodwatch_api_calls_total{operation="create",outcome="unknown_outcome"} == 0`) {
			t.Error(`qodwatch_api_calls_total{operation="create",outcome="unknown_outcome"} is not there at 0`)
		}
	})
	d.stop()
}

// namedMetrics lists the metric names used in the alert rules and in the
// dashboard's queries (targets, variables, annotations).
func namedMetrics(t *testing.T) []string {
	t.Helper()
	var exprs []string
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	raw, err = os.ReadFile("../../deploy/grafana/qodwatch-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	name := regexp.MustCompile(`\b(?:qodwatch|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]\b`)
	var out []string
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			// A histogram's series are named by their family's.
			for _, suffix := range []string{"_bucket"} {
				n = strings.TrimSuffix(n, suffix)
			}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// promServer is a running Debian prometheus scraping qodwatch.
type promServer struct{ base string }

func startPrometheus(t *testing.T, bin, target string, flags ...string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("../../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: qodwatch
    static_configs: [{targets: [%q]}]
`, rules, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t, "127.0.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"--config.file=" + cfgFile, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--log.level=warn"}, flags...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("--- prometheus output ---\n%s", out.String())
		}
	})
	p := &promServer{base: "http://" + addr}
	waitFor(t, 30*time.Second, "prometheus ready", func() bool {
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		resp, err := httpClient.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func (p *promServer) api(t *testing.T, path string, data any) {
	t.Helper()
	var env struct {
		Status string
		Error  string
		Data   json.RawMessage
	}
	if err := json.Unmarshal([]byte(get(t, p.base+path)), &env); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
	if env.Status != "success" {
		t.Fatalf("prometheus %s: %s", path, env.Error)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
}

func (p *promServer) targetHealth(t *testing.T) string {
	var v struct {
		ActiveTargets []struct {
			Health    string
			LastError string
		}
	}
	p.api(t, "/api/v1/targets?state=active", &v)
	if len(v.ActiveTargets) != 1 {
		return fmt.Sprintf("%d targets", len(v.ActiveTargets))
	}
	if v.ActiveTargets[0].LastError != "" {
		return v.ActiveTargets[0].Health + " (" + v.ActiveTargets[0].LastError + ")"
	}
	return v.ActiveTargets[0].Health
}

// has reports whether prometheus holds a series of the metric now (for a
// histogram scraped as text, of its _count).
func (p *promServer) has(t *testing.T, name string) bool {
	return p.query(t, `group({__name__=~"`+name+`|`+name+`_count"})`)
}

// query reports whether the PromQL query has a result now.
func (p *promServer) query(t *testing.T, q string) bool {
	var v struct{ Result []json.RawMessage }
	p.api(t, "/api/v1/query?query="+url.QueryEscape(q), &v)
	return len(v.Result) > 0
}

type promRule struct {
	Name, Health, LastError string
}

func (p *promServer) rules(t *testing.T) []promRule {
	var v struct {
		Groups []struct{ Rules []promRule }
	}
	p.api(t, "/api/v1/rules", &v)
	var out []promRule
	for _, g := range v.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("prometheus loaded no alert rules")
	}
	return out
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := httpClient.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	return string(b)
}

// dumpDOM loads u in headless Chromium long enough (in virtual time) for
// the page to refresh itself twice, and returns the DOM and the browser's
// log, where console messages and policy violations appear.
func dumpDOM(t *testing.T, chromium, u string) (dom, console string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	budget := strconv.Itoa(int((2*5*time.Second + 2*time.Second) / time.Millisecond))
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0",
		"--virtual-time-budget="+budget, "--dump-dom", u)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return stdout.String(), stderr.String()
}
