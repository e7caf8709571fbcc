package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

// noAPI is a SessionAPI nothing is asked of.
type noAPI struct{}

func (noAPI) Create(context.Context, qodclient.CreateSessionRequest) (*qodclient.SessionInfo, error) {
	return nil, errors.New("not in this test")
}
func (noAPI) Get(context.Context, string) (*qodclient.SessionInfo, error) {
	return nil, errors.New("not in this test")
}
func (noAPI) Delete(context.Context, string) error { return errors.New("not in this test") }

// series lists the series of one family as "k=v,k=v value", sorted.
func series(t *testing.T, d *Daemon, name string) []string {
	t.Helper()
	mfs, err := d.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			out = append(out, fmt.Sprintf("%s %g", strings.Join(ls, ","), value(m)))
		}
	}
	slices.Sort(out)
	return out
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestLabelledCountersStartAtZero: every label value the config makes
// known has its series at 0 before its first event, so increase() sees
// that event (a single lost create alerts, issue 9); a reload adds the
// values it brings and drops the series of a ue_sd source it removes.
func TestLabelledCountersStartAtZero(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	write := func(rule, override, sd string) {
		y := fmt.Sprintf(`api: {base_url: "http://127.0.0.1:1/qod/v1", dialect: camara-v1, auth: {type: none}}
defaults: {application_server: {ipv4: 203.0.113.10}, window: 1h, rule: fast, probes: [{tcp: {address: "127.0.0.1:1", interval: 1h}}]}
ues:
  - {name: ue-1, ipv4: 10.0.0.1}
  - {name: ue-2, ipv4: 10.0.0.2, rule_override: %s}
rules:
  fast:
    breach: {any: ["latency_p95 > 80ms"], for: 5s}
    recover: {all: ["latency_p95 < 40ms"], for: 5s}
    duration: 10m
    %s
state_dir: %q
%s`, override, rule, filepath.Join(dir, "state"), sd)
		if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sd := fmt.Sprintf(`ue_sd:
  - name: cams
    file_sd: {files: [%q], refresh_interval: 1h}
    template: {name: "cam-{{target}}", ipv4: "{{target}}"}
`, filepath.Join(dir, "sd", "*.json"))
	write("qos: QOS_S\n    escalate: {to: QOS_L, after: 1m}", "{qos: QOS_M}", sd)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Config: cfg, ConfigFile: file, API: noAPI{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	has := func(name string, want ...string) {
		t.Helper()
		got := series(t, d, name)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s lacks {%s}; has %q", name, w, got)
			}
		}
	}
	api := series(t, d, "qodwatch_api_calls_total")
	if len(api) != 5*10 {
		t.Errorf("%d qodwatch_api_calls_total series, want 5 operations × 10 outcomes: %q", len(api), api)
	}
	has("qodwatch_api_calls_total", "operation=create,outcome=unknown_outcome 0", "operation=delete,outcome=unauthorized 0",
		"operation=retrieve,outcome=ok 0", "operation=extend,outcome=error 0")
	has("qodwatch_decisions_total", "decision=request 0", "decision=renew 0", "decision=escalate 0", "decision=release 0")
	// The rule's profile, its escalation's, and a rule_override's.
	has("qodwatch_sessions_opened_total", "qos=QOS_S 0", "qos=QOS_L 0", "qos=QOS_M 0")
	has("qodwatch_sessions_ended_total", "reason=released 0", "reason=terminated 0", "reason=expired 0")
	has("qodwatch_notifications_total", "result=confirmed 0")
	has("qodwatch_reconciliations_total", "result=adopted,trigger=unknown_outcome 0", "result=error,trigger=start 0")
	for _, name := range []string{"qodwatch_sd_ues", "qodwatch_sd_vanished_ues", "qodwatch_sd_refreshes_total",
		"qodwatch_sd_refresh_failures_total", "qodwatch_sd_invalid_entries_total"} {
		has(name, "source=cams 0")
	}

	// A reload with another profile and without the source.
	write("qos: QOS_E", "{}", "")
	if _, err := d.ReloadReport(); err != nil {
		t.Fatal(err)
	}
	has("qodwatch_sessions_opened_total", "qos=QOS_E 0")
	if got := series(t, d, "qodwatch_sd_ues"); len(got) != 0 {
		t.Errorf("qodwatch_sd_ues after its source was removed: %q", got)
	}
	if got := series(t, d, "qodwatch_sd_refresh_failures_total"); len(got) != 0 {
		t.Errorf("qodwatch_sd_refresh_failures_total after its source was removed: %q", got)
	}
}

// TestOutcomesAreKnown: every outcome a call can have is among the label
// values that start at 0.
func TestOutcomesAreKnown(t *testing.T) {
	for _, err := range []error{nil, qodclient.ErrUnknownOutcome, qodclient.ErrNotFound, qodclient.ErrConflict,
		qodclient.ErrRateLimited, qodclient.ErrUnauthorized, qodclient.ErrForbidden, qodclient.ErrInvalid,
		qodclient.ErrUnavailable, errors.New("other")} {
		if o := outcome(err); !slices.Contains(apiOutcomes, o) {
			t.Errorf("outcome(%v) = %q, not in apiOutcomes", err, o)
		}
	}
}

// TestPerUEMetrics: web.per_ue_metrics off leaves out the per-UE series of
// UEs that neither hold a session nor failed to get one, keeps the ones
// that do, and the fleet families count every UE; auto is on for a small
// fleet (issue 13).
func TestPerUEMetrics(t *testing.T) {
	for _, mode := range []string{"off", "auto"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "c.yaml")
			y := fmt.Sprintf(`api: {base_url: "http://127.0.0.1:1/qod/v1", auth: {type: none}}
web: {per_ue_metrics: %s}
defaults: {application_server: {ipv4: 203.0.113.10}, window: 1h, rule: fast, group: cams, probes: [{tcp: {address: "127.0.0.1:1", interval: 1h}}]}
ues:
  - {name: ue-1, ipv4: 10.0.0.1}
  - {name: ue-2, ipv4: 10.0.0.2}
  - {name: ue-3, ipv4: 10.0.0.3}
rules:
  fast:
    breach: {any: ["latency_p95 > 80ms"], for: 5s}
    recover: {all: ["latency_p95 < 40ms"], for: 5s}
    duration: 10m
    qos: QOS_E
state_dir: %q
`, mode, filepath.Join(dir, "state"))
			if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			d, err := New(Options{Config: cfg, ConfigFile: file, API: noAPI{}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			now := d.now()
			d.mu.Lock()
			err = d.engine.Adopt(now, "ue-2", policy.Session{ID: "s-1", QoS: "QOS_E", ExpiresAt: now.Add(time.Hour)})
			d.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			wantUEs := []string{"ue=ue-2"}
			perUE := "0"
			if mode == "auto" {
				wantUEs, perUE = []string{"ue=ue-1", "ue=ue-2", "ue=ue-3"}, "1"
			}
			for _, name := range []string{"qodwatch_ue_session_active", "qodwatch_window_last_sample_timestamp_seconds", "qodwatch_ue_info"} {
				var ues []string
				for _, s := range series(t, d, name) {
					for _, l := range strings.Split(strings.Fields(s)[0], ",") {
						if strings.HasPrefix(l, "ue=") {
							ues = append(ues, l)
						}
					}
				}
				if !slices.Equal(ues, wantUEs) {
					t.Errorf("%s has %q, want %q", name, ues, wantUEs)
				}
			}
			for name, want := range map[string][]string{
				"qodwatch_metrics_per_ue":           {" " + perUE},
				"qodwatch_ues":                      {" 3"},
				"qodwatch_fleet_ues_never_measured": {" 3"},
				"qodwatch_sessions_per_profile":     {"qos=QOS_E 1"},
				"qodwatch_sessions_per_group":       {"group=cams 1"},
				"qodwatch_policy_ues":               {"state=idle 2"},
			} {
				got := series(t, d, name)
				for _, w := range want {
					if !slices.Contains(got, w) {
						t.Errorf("%s lacks %q; has %q", name, w, got)
					}
				}
			}
			// A reload applies the setting at once (no restart).
			if err := os.WriteFile(file, []byte(strings.Replace(y, "per_ue_metrics: "+mode, "per_ue_metrics: on", 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := d.ReloadReport()
			if err != nil || len(rep.Restart) != 0 {
				t.Fatalf("reload: %v, restart %q", err, rep.Restart)
			}
			if got := series(t, d, "qodwatch_ue_session_active"); len(got) != 3 {
				t.Errorf("after a reload to on: %q", got)
			}
		})
	}
}
