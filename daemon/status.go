package daemon

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
	"github.com/qodwatch/qodwatch/policy"
)

// The status page (/) and /status.json: per UE what the rules read beside
// their thresholds, the window as a sparkline, the session and its age, the
// failing probes and the last decisions (issue 12). Both are paginated so
// a fleet of any size costs one page's worth: the UEs that need attention
// (not idle, holding a session, or with a failing probe) come first, then
// the others, each group by name.

const (
	defaultPerPage = 100
	maxPerPage     = 1000
	// refreshEvery is how often the page reloads itself: in place with
	// JavaScript (the scroll position stays), by a meta refresh without.
	refreshEvery = 5 * time.Second
)

type statusView struct {
	Now            time.Time `json:"now" doc:"when the page was made"`
	Version        string    `json:"version" doc:"qodwatch version"`
	DryRun         bool      `json:"dry_run" doc:"true: decisions are made and shown, no session is bought"`
	NotReady       string    `json:"not_ready,omitempty" doc:"why /-/ready answers 503: the start's check of the stored sessions is not done, or the state file cannot be written"`
	StateFileError string    `json:"state_file_error,omitempty" doc:"the last state file write's error: what was bought since is lost if qodwatch stops now"`
	Sessions       int       `json:"sessions" doc:"sessions held, asked for or possibly held, counted against max_sessions"`
	MaxSessions    int       `json:"max_sessions" doc:"guards.max_sessions; 0: no cap"`
	BudgetUsed     string    `json:"budget_used" doc:"session time charged today (UTC)"`
	Budget         string    `json:"daily_budget" doc:"guards.daily_budget, or unlimited"`
	TotalUEs       int       `json:"total_ues" doc:"UEs matching the filter, on all pages"`
	Attention      int       `json:"attention" doc:"of those, UEs not idle, holding a session or with a failing probe; they come first"`
	Page           int       `json:"page" doc:"this page, from 1 (query parameter page)"`
	PerPage        int       `json:"per_page" doc:"UEs per page (query parameter per_page, 1..1000, default 100)"`
	Pages          int       `json:"pages" doc:"number of pages"`
	Filter         string    `json:"filter,omitempty" doc:"query parameter ue: only UEs whose name contains it"`
	RefreshSeconds int       `json:"refresh_seconds" doc:"how often the HTML page reloads itself"`
	UEs            []ueView  `json:"ues" doc:"the UEs of this page"`
}

type ueView struct {
	UE    string `json:"ue" doc:"UE name"`
	Rule  string `json:"rule" doc:"its rule"`
	State string `json:"state" doc:"policy state: idle, pending, requesting, active, recovering, renewing, releasing, cooldown, backoff, failed, uncertain"`
	// Since is when the state began; a renewal does not reset it.
	Since     time.Time `json:"since,omitzero" doc:"when the state began (with a session: when the run of sessions began; renewals do not reset it); absent if the UE never changed state"`
	SessionID string    `json:"session_id,omitempty" doc:"the QoD session held"`
	QoS       string    `json:"qos,omitempty" doc:"its QoS profile"`
	HeldSince time.Time `json:"session_since,omitzero" doc:"when this run of sessions began: renewals and escalations replace the session, not the run"`
	// Improvement: issue 10's efficacy, as on qodwatch_session_improvement_ratio.
	Improvement []improvementView `json:"improvement,omitempty" doc:"while a session is held: per metric of the rule's breach, its value before the session (over the breach for), during it (since its profile was granted, up to the window) and the ratio, how many times better (1: no change)"`
	ExpiresAt   time.Time         `json:"expires_at,omitzero" doc:"when the session held runs out unless renewed"`
	Waiting     string            `json:"waiting,omitempty" doc:"what the UE is waiting for now"`
	Decision    string            `json:"last_decision,omitempty" doc:"the kind of the last decision"`
	Reason      string            `json:"reason,omitempty" doc:"its reason, with the values measured"`
	DecidedAt   time.Time         `json:"decided_at,omitzero" doc:"when it was made"`
	// Decisions are the last few, newest first.
	Decisions []decisionRecord `json:"decisions,omitempty" doc:"the last decisions, newest first: kind, at, qos, session_id, reason"`
	Failing   []probeFailure   `json:"failing,omitempty" doc:"the probes that cannot measure now: probe, reason (as on qodwatch_probe_errors_total), text, error, since, last, errors"`
	Figures   []figureView     `json:"figures,omitempty" doc:"per metric the rule reads: metric, value (base unit; absent: no data), text, and the breach and recover conditions on it with whether each holds now"`
	Window    float64          `json:"window_seconds,omitempty" doc:"length of the statistics window"`
	Samples   int              `json:"samples" doc:"latency measurements in the window, answered or lost"`
	LastAt    time.Time        `json:"last_sample,omitzero" doc:"when the last measurement of any kind completed"`
	History   *historyView     `json:"history,omitempty" doc:"the window by time slice, oldest first: slice_seconds, mean_seconds and max_seconds (null: no answer in the slice), lost"`
	Removed   bool             `json:"removed,omitempty" doc:"removed from the config; shown until its session is gone"`

	spark template.HTML
}

// probeFailure is one failing probe: "tcp: connection refused since 09:14".
// improvementView is one policy.Improvement, its values as people read
// them ("no reply" has no JSON number).
type improvementView struct {
	Metric string  `json:"metric"`
	Before string  `json:"before"`
	During string  `json:"during"`
	Ratio  float64 `json:"ratio"`
}

func improvementViews(imps []policy.Improvement) []improvementView {
	var out []improvementView
	for _, x := range imps {
		out = append(out, improvementView{x.Metric, policy.FormatValue(x.Metric, x.Before), policy.FormatValue(x.Metric, x.During), x.Ratio})
	}
	return out
}

type probeFailure struct {
	Probe  string    `json:"probe"`
	Reason string    `json:"reason"`
	Text   string    `json:"text"`
	Error  string    `json:"error"`
	Since  time.Time `json:"since"`
	Last   time.Time `json:"last"`
	Errors uint64    `json:"errors"`
}

type figureView struct {
	Metric  string         `json:"metric"`
	Value   *float64       `json:"value,omitempty"`
	Text    string         `json:"text"`
	Breach  []thresholdUse `json:"breach,omitempty"`
	Recover []thresholdUse `json:"recover,omitempty"`
}

type thresholdUse struct {
	Condition string  `json:"condition"`
	Op        string  `json:"op"`
	Threshold float64 `json:"threshold"`
	Text      string  `json:"text"`
	Holds     *bool   `json:"holds,omitempty"` // absent: no data
}

type historyView struct {
	Slice float64    `json:"slice_seconds"`
	Mean  []*float64 `json:"mean_seconds"`
	Max   []*float64 `json:"max_seconds"`
	Lost  []int      `json:"lost"`

	points []monitor.HistoryPoint
}

// statusQuery is what the page was asked for.
type statusQuery struct {
	page, perPage int
	filter        string
}

func parseStatusQuery(r *http.Request) statusQuery {
	q := statusQuery{page: 1, perPage: defaultPerPage, filter: r.URL.Query().Get("ue")}
	if n, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && n > 0 {
		q.page = n
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && n > 0 {
		q.perPage = min(n, maxPerPage)
	}
	return q
}

// statusOf builds the view of one page. Ordering the UEs needs only each
// one's brief (name, state, session), read under the lock without
// formatting anything; the full status, figures, history and failures are
// read for the page's UEs only, so a refresh costs one page's worth
// whatever the fleet's size and holds the control loop's lock briefly.
func (d *Daemon) statusOf(q statusQuery) statusView {
	d.mu.Lock()
	now := d.now()
	briefs := d.engine.Briefs(make([]policy.Brief, 0, len(d.cfg.UEs)))
	usage := d.engine.Usage(now)
	v := statusView{Now: now, Version: Version(), DryRun: d.cfg.DryRun, NotReady: d.health.problem(), StateFileError: d.health.stateFileError(), Sessions: usage.Sessions,
		MaxSessions: d.cfg.Guards.MaxSessions, BudgetUsed: usage.BudgetUsed.Round(time.Second).String(), Budget: "unlimited",
		RefreshSeconds: int(refreshEvery / time.Second), Filter: q.filter, Page: q.page, PerPage: q.perPage}
	d.mu.Unlock()
	if usage.DailyBudget > 0 {
		v.Budget = usage.DailyBudget.String()
	}

	type entry struct {
		b         *policy.Brief
		attention bool
	}
	list := make([]entry, 0, len(briefs))
	for i := range briefs {
		b := &briefs[i]
		if q.filter != "" && !strings.Contains(b.UE, q.filter) {
			continue
		}
		att := b.State != policy.StateIdle || b.HasSession || d.mon.Failing(b.UE)
		if att {
			v.Attention++
		}
		list = append(list, entry{b, att})
	}
	slices.SortFunc(list, func(a, b entry) int {
		if a.attention != b.attention {
			if a.attention {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.b.UE, b.b.UE)
	})
	v.TotalUEs = len(list)
	v.Pages = max(1, (len(list)+q.perPage-1)/q.perPage)
	from := min((q.page-1)*q.perPage, len(list))
	list = list[from:min(from+q.perPage, len(list))]

	// The statuses and rules of the page's UEs, the rules in one pass over
	// the config. A UE gone since the briefs were read is left out.
	rules := make(map[string]*policy.Rule, len(list))
	for _, e := range list {
		rules[e.b.UE] = nil
	}
	statuses := make([]policy.Status, 0, len(list))
	d.mu.Lock()
	for _, e := range list {
		if st, ok := d.engine.Status(e.b.UE); ok {
			statuses = append(statuses, st)
		}
	}
	for i := range d.cfg.UEs {
		if _, ok := rules[d.cfg.UEs[i].Name]; ok {
			rules[d.cfg.UEs[i].Name] = d.cfg.UEs[i].Rule
		}
	}
	d.mu.Unlock()
	v.UEs = make([]ueView, 0, len(statuses))
	for i := range statuses {
		v.UEs = append(v.UEs, d.ueViewOf(now, &statuses[i], rules[statuses[i].UE]))
	}
	return v
}

func (d *Daemon) ueViewOf(now time.Time, st *policy.Status, rule *policy.Rule) ueView {
	u := ueView{UE: st.UE, Rule: st.Rule, State: st.State.String(), Since: st.Since, Waiting: st.Waiting, Removed: st.Removed}
	if st.HasSession {
		u.SessionID, u.QoS, u.ExpiresAt, u.HeldSince = st.Session.ID, st.Session.QoS, st.Session.ExpiresAt, st.HeldSince
		// Active and renewing alternate at each renewal: the run of
		// sessions is what the operator means by "since".
		if (st.State == policy.StateActive || st.State == policy.StateRenewing) && !st.HeldSince.IsZero() && st.HeldSince.Before(u.Since) {
			u.Since = st.HeldSince
		}
	}
	if st.Last.Kind != policy.None {
		u.Decision, u.Reason, u.DecidedAt = st.Last.Kind.String(), st.Last.Reason, st.Last.At
	}
	u.Decisions = d.history.last(st.UE)
	for _, f := range d.mon.Failures(st.UE) {
		u.Failing = append(u.Failing, probeFailure{Probe: f.Probe, Reason: f.Reason, Text: f.Text, Error: f.Err, Since: f.Since, Last: f.Last, Errors: f.Errors})
	}

	d.mu.Lock()
	obs := d.observe(st.UE)
	stale := d.cfg.Guards.StaleAfter
	if st.HasSession {
		u.Improvement = improvementViews(d.improvements(st.UE, nil))
	}
	d.mu.Unlock()
	if s, ok := d.mon.Stats(st.UE, now); ok {
		u.Window, u.Samples = s.Window.Seconds(), s.Samples+s.Lost
		if !s.LastSample.IsZero() {
			u.LastAt = s.LastSample
		}
	}
	if rule != nil {
		u.Figures = figuresOf(rule, &obs, stale)
	}
	if pts, width, ok := d.mon.History(st.UE, now, nil); ok && width > 0 {
		u.History = historyOf(pts, width)
		breach, recover := latencyThresholds(rule)
		u.spark = sparkline(st.UE, u.History, breach, recover)
	}
	return u
}

// figuresOf lists each metric the rule reads, its value now and the
// conditions on it.
func figuresOf(rule *policy.Rule, obs *policy.Observation, stale time.Duration) []figureView {
	var out []figureView
	find := func(metric string) *figureView {
		for i := range out {
			if out[i].Metric == metric {
				return &out[i]
			}
		}
		f := figureView{Metric: metric, Text: "no data"}
		if v, ok := obs.Value(metric, stale); ok {
			f.Value, f.Text = jsonFloat(v), policy.FormatValue(metric, v)
		}
		out = append(out, f)
		return &out[len(out)-1]
	}
	use := func(c policy.ConditionInfo, f *figureView) thresholdUse {
		t := thresholdUse{Condition: c.Text, Op: c.Op, Threshold: c.Threshold, Text: c.Raw}
		if f.Value != nil {
			h := c.Holds(*f.Value)
			t.Holds = &h
		}
		return t
	}
	for _, c := range rule.Breach().Conditions {
		f := find(c.Metric)
		f.Breach = append(f.Breach, use(c, f))
	}
	for _, c := range rule.Recover().Conditions {
		f := find(c.Metric)
		f.Recover = append(f.Recover, use(c, f))
	}
	return out
}

// jsonFloat is v for JSON, which has no infinity: a round trip that never
// came is shown by its text only.
func jsonFloat(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}

func historyOf(pts []monitor.HistoryPoint, width time.Duration) *historyView {
	h := &historyView{Slice: width.Seconds(), Mean: make([]*float64, len(pts)), Max: make([]*float64, len(pts)), Lost: make([]int, len(pts)), points: pts}
	for i, p := range pts {
		if p.Samples > 0 {
			mean, mx := p.Mean.Seconds(), p.Max.Seconds()
			h.Mean[i], h.Max[i] = &mean, &mx
		}
		h.Lost[i] = p.Lost
	}
	return h
}

// latencyThresholds are the thresholds of the rule's latency conditions,
// seconds, drawn across the sparkline.
func latencyThresholds(rule *policy.Rule) (breach, recover []float64) {
	if rule == nil {
		return nil, nil
	}
	for _, c := range rule.Breach().Conditions {
		if strings.HasPrefix(c.Metric, "latency_") {
			breach = append(breach, c.Threshold)
		}
	}
	for _, c := range rule.Recover().Conditions {
		if strings.HasPrefix(c.Metric, "latency_") {
			recover = append(recover, c.Threshold)
		}
	}
	return breach, recover
}

// Sparkline size, CSS pixels.
const sparkW, sparkH = 180, 40

// sparkline draws the window: the mean round trip of each slice as a line
// (broken where a slice has no answer), its max as a faint line, lost
// measurements as red ticks at the bottom, and the rule's latency
// thresholds dashed (breach red, recover green). Only numbers go into the
// markup besides the escaped UE name.
func sparkline(ue string, h *historyView, breach, recover []float64) template.HTML {
	pts := h.points
	top := 0.0
	for _, p := range pts {
		top = max(top, p.Max.Seconds())
	}
	for _, t := range append(slices.Clone(breach), recover...) {
		top = max(top, t*1.25)
	}
	if top == 0 {
		top = 0.001
	}
	n := len(pts)
	x := func(i int) float64 { return (float64(i) + 0.5) * sparkW / float64(max(n, 1)) }
	y := func(s float64) float64 { return (sparkH - 2) - min(s/top, 1)*(sparkH-4) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="round trips of %s over the window, up to %s">`,
		sparkW, sparkH, sparkW, sparkH, html.EscapeString(ue), html.EscapeString(policy.FormatValue("latency_max", top)))
	fmt.Fprintf(&b, `<title>%s: mean and max round trip per %s over the window; red ticks: lost</title>`, html.EscapeString(ue), time.Duration(h.Slice*float64(time.Second)))
	for _, t := range breach {
		fmt.Fprintf(&b, `<line x1="0" x2="%d" y1="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="3,3" stroke-width="1"/>`, sparkW, y(t), y(t))
	}
	for _, t := range recover {
		fmt.Fprintf(&b, `<line x1="0" x2="%d" y1="%.1f" y2="%.1f" stroke="#0a6" stroke-dasharray="3,3" stroke-width="1"/>`, sparkW, y(t), y(t))
	}
	// Probes slower than a slice leave empty slices between answers: the
	// line joins the answers across them; a dot marks each.
	line := func(value func(monitor.HistoryPoint) float64, style string, dots bool) {
		var seg []string
		for i, p := range pts {
			if p.Samples == 0 {
				continue
			}
			seg = append(seg, fmt.Sprintf("%.1f,%.1f", x(i), y(value(p))))
			if dots {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.5" fill="#036"/>`, x(i), y(value(p)))
			}
		}
		if len(seg) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" %s points="%s"/>`, style, strings.Join(seg, " "))
		}
	}
	line(func(p monitor.HistoryPoint) float64 { return p.Max.Seconds() }, `stroke="#9ab" stroke-width="1"`, false)
	line(func(p monitor.HistoryPoint) float64 { return p.Mean.Seconds() }, `stroke="#036" stroke-width="1.5"`, true)
	for i, p := range pts {
		if p.Lost > 0 {
			fmt.Fprintf(&b, `<line class="lost" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#c00" stroke-width="2"/>`, x(i), x(i), sparkH, sparkH-8)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: built from numbers and escaped text
}

func (d *Daemon) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	if _, ok := r.URL.Query()["doc"]; ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(statusFieldsDoc))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(d.statusOf(parseStatusQuery(r)))
}

func (d *Daemon) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	v := d.statusOf(parseStatusQuery(r))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing from outside: the style and the one script are inline,
	// the sparklines are inline SVG.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src '"+refreshScriptHash+"'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'")
	if err := statusPage.Execute(w, pageData{statusView: v, WindowText: d.mon.Window().String(), Script: template.JS(refreshScriptText), Query: r.URL.Query()}); err != nil {
		d.log.Warn("status page", "err", err)
	}
}

type pageData struct {
	statusView
	WindowText string
	Script     template.JS
	Query      map[string][]string
}

// refreshScript reloads the page's dynamic part in place, so the scroll
// position and any text being read stay. Errors are kept on the body
// (data-errors) for tests and shown, never thrown.
const refreshScript = `(function(){
  var n = 0;
  function show(msg){ var b=document.body; b.dataset.errors=(b.dataset.errors||"")+msg+"\n"; var e=document.getElementById("refresh-error"); if(e){e.textContent="refresh failed: "+msg;} }
  window.addEventListener("error", function(ev){ show(String(ev.message)); });
  function tick(){
    fetch(location.href, {cache: "no-store", credentials: "same-origin"}).then(function(r){
      if(!r.ok){ throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function(t){
      var doc = new DOMParser().parseFromString(t, "text/html");
      var fresh = doc.getElementById("live"), cur = document.getElementById("live");
      if(fresh && cur){ cur.replaceWith(fresh); }
      n++; document.body.dataset.refreshes = String(n);
      var e=document.getElementById("refresh-error"); if(e){e.textContent="";}
    }).catch(function(err){ show(String(err)); }).finally(function(){ setTimeout(tick, REFRESH_MS); });
  }
  document.body.dataset.refreshes = "0";
  setTimeout(tick, REFRESH_MS);
})();`

var (
	refreshScriptText = strings.ReplaceAll(refreshScript, "REFRESH_MS", strconv.Itoa(int(refreshEvery/time.Millisecond)))
	refreshScriptHash = func() string {
		sum := sha256.Sum256([]byte(refreshScriptText))
		return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	}()
)

// statusFieldsDoc documents /status.json, made from the doc tags of the
// views so it cannot fall behind them.
var statusFieldsDoc = func() string {
	var b strings.Builder
	b.WriteString("/status.json: the status page's data. Query parameters: page (from 1), per_page (1..1000, default 100), ue (name contains).\n")
	b.WriteString("Times are RFC 3339; a time that never happened is left out, not zero. Values are in base units: seconds, ratios 0..1, bytes per second.\n\n")
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			fmt.Fprintf(&b, "%s%s\t%s\n", prefix, name, f.Tag.Get("doc"))
			if f.Type.Kind() == reflect.Slice && f.Type.Elem() == reflect.TypeFor[ueView]() {
				walk(f.Type.Elem(), prefix+name+"[].")
			}
		}
	}
	walk(reflect.TypeFor[statusView](), "")
	return b.String()
}()

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"hm": func(t time.Time) string { return t.UTC().Format("15:04") },
	"age": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return formatAge(now.Sub(t))
	},
	"in": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return formatAge(t.Sub(now))
	},
	"spark": func(u ueView) template.HTML { return u.spark },
	"holds": func(t thresholdUse) string {
		switch {
		case t.Holds == nil:
			return "nodata"
		case *t.Holds:
			return "holds"
		}
		return "nothold"
	},
	"pageURL": func(q map[string][]string, page int) string {
		v := make(map[string][]string, len(q))
		for k, vs := range q {
			v[k] = vs
		}
		v["page"] = []string{strconv.Itoa(page)}
		return "?" + encodeQuery(v)
	},
	"add": func(a, b int) int { return a + b },
}).Parse(statusTemplate))

// formatAge is a duration for people: 45s, 12m, 3h05m, 2d4h.
func formatAge(d time.Duration) string {
	if d < 0 {
		return "-" + formatAge(-d)
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func encodeQuery(v map[string][]string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		for _, s := range v[k] {
			parts = append(parts, template.URLQueryEscaper(k)+"="+template.URLQueryEscaper(s))
		}
	}
	return strings.Join(parts, "&")
}

const statusTemplate = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qodwatch</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="{{.RefreshSeconds}}"></noscript>
<style>
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
.ues>tbody>tr>td:first-child{white-space:nowrap}
table.ues{border-collapse:collapse;width:100%}
.ues>tbody>tr>td,.ues>thead>tr>th{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
.ues>thead>tr>th{background:#f4f4f4;position:sticky;top:0}
table.fig td{padding:0 .4em 0 0;border:0;white-space:nowrap}
.active,.recovering,.renewing{color:#0a6}.pending,.requesting,.uncertain,.backoff,.releasing,.cooldown{color:#b60}.failed,.failing{color:#c00}
.holds{font-weight:bold}.nothold{color:#777}.nodata{color:#b60}
.small{font-size:.85em;color:#555}.val{font-variant-numeric:tabular-nums;font-weight:600}
ol.dec{margin:0;padding-left:1.2em}
</style>
</head><body>
<h1>qodwatch</h1>
<form method="get" action="/"><label>UE name contains <input name="ue" value="{{.Filter}}"></label> <button>show</button></form>
<div id="live">
{{if .StateFileError}}<p class="failed"><b>state file not writable</b>: {{.StateFileError}} — sessions bought now are lost if qodwatch stops</p>{{else if .NotReady}}<p><b>not ready</b>: {{.NotReady}}</p>{{end}}
<p>{{.Version}}{{if .DryRun}} — <b>dry run</b>: no session is bought{{end}} · sessions {{.Sessions}}{{if .MaxSessions}} of {{.MaxSessions}}{{end}} · budget used today {{.BudgetUsed}} of {{.Budget}} · <a href="/metrics">metrics</a> · <a href="/status.json">json</a> (<a href="/status.json?doc">fields</a>)</p>
<p class="small">As of <time id="now" datetime="{{ts .Now}}">{{ts .Now}}</time>, refreshed every {{.RefreshSeconds}}s. {{.TotalUEs}} UEs{{if .Filter}} matching “{{.Filter}}”{{end}}, {{.Attention}} needing attention (shown first) · page {{.Page}} of {{.Pages}}, {{.PerPage}} per page{{if gt .Page 1}} · <a href="{{pageURL .Query (add .Page -1)}}">previous</a>{{end}}{{if lt .Page .Pages}} · <a href="{{pageURL .Query (add .Page 1)}}">next</a>{{end}} <span id="refresh-error" class="failed"></span></p>
<table class="ues"><thead><tr><th>UE</th><th>state</th><th>figures now (window {{.WindowText}})</th><th>round trips</th><th>session</th><th>probes</th><th>last decisions</th></tr></thead>
<tbody>
{{- $now := .Now}}
{{range .UEs}}<tr id="ue-{{.UE}}" class="ue">
<td><b>{{.UE}}</b><br><span class="small">rule {{.Rule}}{{if .Removed}} · removed from the config{{end}}</span></td>
<td><span class="state {{.State}}">{{.State}}</span>{{if not .Since.IsZero}}<br><span class="small" title="{{ts .Since}}">for {{age $now .Since}}</span>{{end}}{{if .Waiting}}<br><span class="small">{{.Waiting}}</span>{{end}}</td>
<td><table class="fig">{{range .Figures}}<tr class="figure" data-metric="{{.Metric}}"><td>{{.Metric}}</td><td class="val">{{.Text}}</td>
<td>{{range .Breach}}<span class="{{holds .}}" title="breach {{.Condition}}">breach {{.Op}} {{.Text}}</span> {{end}}</td>
<td>{{range .Recover}}<span class="{{holds .}}" title="recover {{.Condition}}">recover {{.Op}} {{.Text}}</span> {{end}}</td></tr>{{end}}</table>
<span class="small">{{.Samples}} measurements{{if not .LastAt.IsZero}}, last {{age $now .LastAt}} ago{{end}}</span></td>
<td>{{spark .}}</td>
<td class="session">{{if .SessionID}}<b>{{.QoS}}</b> <span class="small">{{.SessionID}}</span><br>held for {{age $now .HeldSince}}<span class="small"> (since {{ts .HeldSince}})</span><br><span class="small">ends in {{in $now .ExpiresAt}} unless renewed</span>{{range .Improvement}}<br><span class="small">{{.Metric}} {{printf "%.3g" .Ratio}}× better</span>{{end}}{{else}}<span class="small">none</span>{{end}}</td>
<td>{{range .Failing}}<div class="failing" title="{{.Error}}">{{.Probe}}: {{.Text}} since {{hm .Since}}<br><span class="small">{{.Errors}} errors; last: {{.Error}}</span></div>{{else}}<span class="small">measuring</span>{{end}}</td>
<td>{{if .Decisions}}<ol class="dec">{{range .Decisions}}<li><b>{{.Kind}}</b>{{if .QoS}} {{.QoS}}{{end}} <span class="small">{{ts .At}}</span><br><span class="small reason">{{.Reason}}</span></li>{{end}}</ol>{{else if .Decision}}<b>{{.Decision}}</b> <span class="small">{{ts .DecidedAt}}</span><br><span class="small reason">{{.Reason}}</span>{{else}}<span class="small">none yet</span>{{end}}</td>
</tr>
{{end}}</tbody></table>
</div>
<script>{{.Script}}</script>
</body></html>
`
