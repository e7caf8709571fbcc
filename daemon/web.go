package daemon

import (
	"encoding/json"
	"html/template"
	"net/http"
	"time"

	"github.com/qodwatch/qodwatch/policy"
)

// Handler serves /metrics, the status page (/ and /status.json),
// /-/reload (POST), /-/healthy and /-/ready.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.mon.MetricsHandler(d.reg))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK\n")) })
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK\n")) })
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := d.Reload(); err != nil {
			http.Error(w, "reload refused: "+err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("reloaded\n"))
	})
	mux.HandleFunc("/status.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d.statusView())
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, d.statusView()); err != nil {
			d.log.Warn("status page", "err", err)
		}
	})
	return mux
}

type ueView struct {
	UE        string    `json:"ue"`
	Rule      string    `json:"rule"`
	State     string    `json:"state"`
	Since     time.Time `json:"since,omitzero"`
	SessionID string    `json:"session_id,omitempty"`
	QoS       string    `json:"qos,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Waiting   string    `json:"waiting,omitempty"`
	Decision  string    `json:"last_decision,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// Failing are the probes of the UE that cannot measure now.
	Failing []probeFailureView `json:"failing,omitempty"`
}

// probeFailureView is one failing probe: "tcp: connection refused since 09:14".
type probeFailureView struct {
	Probe  string    `json:"probe"`
	Reason string    `json:"reason"` // bounded, as on qodwatch_probe_errors_total
	Text   string    `json:"text"`   // the reason for people
	Error  string    `json:"error"`  // the latest error
	Since  time.Time `json:"since"`
	Last   time.Time `json:"last"`
	Errors uint64    `json:"errors"` // in this run of errors
}

type statusView struct {
	Now         time.Time `json:"now"`
	Version     string    `json:"version"`
	DryRun      bool      `json:"dry_run"`
	Sessions    int       `json:"sessions"`
	MaxSessions int       `json:"max_sessions"`
	BudgetUsed  string    `json:"budget_used"`
	Budget      string    `json:"daily_budget"`
	UEs         []ueView  `json:"ues"`
}

func (d *Daemon) statusView() statusView {
	d.mu.Lock()
	now := d.now()
	statuses := d.engine.Statuses(nil)
	usage := d.engine.Usage(now)
	v := statusView{Now: now, Version: Version(), DryRun: d.cfg.DryRun, Sessions: usage.Sessions,
		MaxSessions: d.cfg.Guards.MaxSessions, BudgetUsed: usage.BudgetUsed.Round(time.Second).String(), Budget: "unlimited"}
	d.mu.Unlock()
	if usage.DailyBudget > 0 {
		v.Budget = usage.DailyBudget.String()
	}
	for _, st := range statuses {
		u := ueView{UE: st.UE, Rule: st.Rule, State: st.State.String(), Since: st.Since, Waiting: st.Waiting}
		if st.HasSession {
			u.SessionID, u.QoS, u.ExpiresAt = st.Session.ID, st.Session.QoS, st.Session.ExpiresAt
		}
		if st.Last.Kind != policy.None {
			u.Decision, u.Reason, u.DecidedAt = st.Last.Kind.String(), st.Last.Reason, st.Last.At
		}
		for _, f := range d.mon.Failures(st.UE) {
			u.Failing = append(u.Failing, probeFailureView{Probe: f.Probe, Reason: f.Reason, Text: f.Text, Error: f.Err, Since: f.Since, Last: f.Last, Errors: f.Errors})
		}
		v.UEs = append(v.UEs, u)
	}
	return v
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"hm": func(t time.Time) string { return t.UTC().Format("15:04") },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>qodwatch</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}.active,.recovering,.renewing{color:#0a6}.pending,.requesting,.uncertain,.backoff{color:#b60}.failed{color:#c00}</style>
</head><body>
<h1>qodwatch</h1>
<p>{{.Version}}{{if .DryRun}} — <b>dry run</b>: no session is bought{{end}} · sessions {{.Sessions}}{{if .MaxSessions}} of {{.MaxSessions}}{{end}} · budget used today {{.BudgetUsed}} of {{.Budget}} · <a href="/metrics">metrics</a> · <a href="/status.json">json</a></p>
<table><tr><th>UE</th><th>rule</th><th>state</th><th>since</th><th>session</th><th>waiting for</th><th>probes failing</th><th>last decision</th></tr>
{{range .UEs}}<tr><td>{{.UE}}</td><td>{{.Rule}}</td><td class="{{.State}}">{{.State}}</td><td>{{ts .Since}}</td><td>{{if .SessionID}}{{.QoS}} {{.SessionID}}<br>until {{ts .ExpiresAt}}{{end}}</td><td>{{.Waiting}}</td><td>{{range .Failing}}<span class="failed" title="{{.Error}}">{{.Probe}}: {{.Text}} since {{hm .Since}}</span><br>{{end}}</td><td>{{if .Decision}}{{.Decision}} at {{ts .DecidedAt}}: {{.Reason}}{{end}}</td></tr>
{{end}}</table></body></html>
`))
