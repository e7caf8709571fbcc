package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Prometheus is a passive probe: an instant PromQL query against a
// Prometheus server's HTTP API (/api/v1/query) that must select one value
// for the UE, e.g. the bitrate an application already exports per client.
// The last value is kept per UE under Name (Stats.Values, and the metric
// qodwatch_probe_value{query=Name}).
type Prometheus struct {
	Name      string // names the value; unique per UE
	ServerURL string // base URL of the server, e.g. http://127.0.0.1:9090
	// Query may use {{ue.name}} and {{ue.addr}}; they are escaped for a
	// PromQL string, e.g. rate(app_bytes_total{client="{{ue.name}}"}[1m]).
	Query    string
	Interval time.Duration
	Timeout  time.Duration // default: the interval, at most 10 s
}

// Kind implements Probe.
func (Prometheus) Kind() string { return KindPrometheus }

func (p Prometheus) bind(ue *UE) (boundProbe, error) {
	if p.Name == "" || len(p.Name) > 64 || !utf8.ValidString(p.Name) {
		return nil, fmt.Errorf("name %q: want 1 to 64 characters of UTF-8", p.Name)
	}
	for _, q := range ue.Probes {
		if o, ok := q.(Prometheus); ok && o != p && o.Name == p.Name {
			return nil, fmt.Errorf("name %q is used by another prometheus probe of the UE", p.Name)
		}
	}
	if err := checkInterval("prometheus "+p.Name, p.Interval); err != nil {
		return nil, err
	}
	if strings.TrimSpace(p.Query) == "" {
		return nil, fmt.Errorf("%s: empty query", p.Name)
	}
	u, err := parseProbeURL(p.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("%s: server %w", p.Name, err)
	}
	u = u.JoinPath("api", "v1", "query")
	esc := &UE{Name: promqlEscape(ue.Name), Addr: promqlEscape(ue.Addr)}
	q := expand(p.Query, esc, false)
	b := &prometheusBound{name: p.Name, interval: p.Interval, timeout: timeoutFor(p.Timeout, p.Interval)}
	if b.timeout > b.interval {
		return nil, fmt.Errorf("%s: timeout %v is longer than the interval %v", p.Name, b.timeout, b.interval)
	}
	u.RawQuery = url.Values{"query": {q}}.Encode()
	b.url = u.String()
	return b, nil
}

// promqlEscape makes s safe inside a double-quoted PromQL string.
func promqlEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

type prometheusBound struct {
	name              string
	url               string
	interval, timeout time.Duration
}

func (b *prometheusBound) every() time.Duration { return b.interval }
func (b *prometheusBound) exclusive() bool      { return false }
func (b *prometheusBound) passive() bool        { return true }

// maxQueryAnswer bounds what we read from the server: one sample per UE is
// tiny, a runaway query is not.
const maxQueryAnswer = 1 << 20

type queryAnswer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

func (b *prometheusBound) run(ctx context.Context, e *env) outcome {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	v, err := b.query(ctx, e)
	if err != nil {
		return outcome{Result: Result{Err: fmt.Errorf("prometheus query %s: %w", b.name, err)}}
	}
	return outcome{Result: Result{Value: v}}
}

func (b *prometheusBound) query(ctx context.Context, e *env) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := e.apiClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxQueryAnswer))
	if err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	var a queryAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		if resp.StatusCode != http.StatusOK {
			return 0, withReason(reasonHTTPStatus, fmt.Errorf("status %s", resp.Status))
		}
		return 0, withReason(reasonQuery, fmt.Errorf("decode answer: %w", err))
	}
	if a.Status != "success" {
		return 0, withReason(reasonQuery, fmt.Errorf("server says %s: %s", a.ErrorType, truncate(a.Error, 200)))
	}
	switch a.Data.ResultType {
	case "scalar":
		var pair []json.RawMessage
		if err := json.Unmarshal(a.Data.Result, &pair); err != nil {
			return 0, withReason(reasonQuery, fmt.Errorf("decode scalar: %w", err))
		}
		return sampleValue(pair)
	case "vector":
		var series []struct {
			Value []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(a.Data.Result, &series); err != nil {
			return 0, withReason(reasonQuery, fmt.Errorf("decode vector: %w", err))
		}
		switch len(series) {
		case 0:
			return 0, withReason(reasonQuery, fmt.Errorf("no series (nothing matches the query for this UE)"))
		case 1:
			return sampleValue(series[0].Value)
		default:
			return 0, withReason(reasonQuery, fmt.Errorf("%d series; the query must select one per UE", len(series)))
		}
	default:
		return 0, withReason(reasonQuery, fmt.Errorf("result type %q; want vector or scalar", a.Data.ResultType))
	}
}

// sampleValue decodes [<unix time>, "<value>"].
func sampleValue(pair []json.RawMessage) (float64, error) {
	if len(pair) != 2 {
		return 0, withReason(reasonQuery, fmt.Errorf("sample has %d elements, want 2", len(pair)))
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, withReason(reasonQuery, fmt.Errorf("sample value: %w", err))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, withReason(reasonQuery, fmt.Errorf("sample value: %w", err))
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
