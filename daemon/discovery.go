package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/qodwatch/qodwatch/config"
)

// UE discovery (ue_sd, issue 13). Each source runs in its own goroutine:
// a file source checks its globs every refresh_interval and rereads a file
// whose size, modification time or inode changed; an HTTP source fetches
// its URL. What a source delivered last is kept per origin (file or URL):
// a file that fails to parse, or a fetch that fails, keeps the UEs it gave
// before. A change makes the manager resolve the origins that changed,
// merge every source behind the static UEs and apply the result as a
// reload does: unchanged UEs keep their probes, statistics and sessions.
//
// A UE that vanishes stays for its source's grace period, then leaves,
// which releases its session (policy.Engine.RemoveUE): a source that
// flaps, or a file caught half-written, does not churn sessions.

// maxSDBody caps an HTTP discovery answer: 200,000 UEs are about 40 MB.
const maxSDBody = 256 << 20

// discovery owns the sources and what they delivered.
type discovery struct {
	d   *Daemon
	log *slog.Logger

	mu      sync.Mutex // guards everything below
	base    *config.Config
	sources map[string]*sdSource
	// kept are discovered UEs by name: present, or vanished and in grace.
	kept    map[string]*keptUE
	left    map[string]bool // merge refusals already logged
	stop    context.CancelFunc
	running sync.WaitGroup

	changed chan struct{} // a source has news, or a poll came (grace check)
	metrics *sdMetrics
}

type keptUE struct {
	ue         config.DiscoveredUE
	vanishedAt time.Time // zero while the source lists it
	grace      time.Duration
}

// sdSource is one source and what its origins delivered.
type sdSource struct {
	spec config.Discovery

	mu      sync.Mutex
	origins map[string]*sdOrigin // by file path or URL
	files   map[string]os.FileInfo
	dirty   bool // origins changed since the last merge
}

type sdOrigin struct {
	groups   []config.TargetGroup
	resolved []config.DiscoveredUE
	fresh    bool // resolved is out of date
}

func newDiscovery(d *Daemon, base *config.Config) *discovery {
	s := &discovery{
		d: d, log: d.log, base: base,
		sources: map[string]*sdSource{},
		kept:    map[string]*keptUE{},
		left:    map[string]bool{},
		changed: make(chan struct{}, 1),
		metrics: newSDMetrics(),
	}
	s.metrics.sources(base.Discovery)
	return s
}

// start reads every source once (so that sessions stored for discovered
// UEs are adopted, not ended as unknown), applies what they gave, and then
// keeps them running until ctx ends.
func (s *discovery) start(ctx context.Context) error {
	s.mu.Lock()
	base := s.base
	s.mu.Unlock()
	if len(base.Discovery) == 0 {
		return nil
	}
	s.restartSources(ctx, base.Discovery)
	var wg sync.WaitGroup
	for _, src := range s.sourceList() {
		wg.Add(1)
		go func() { defer wg.Done(); s.refresh(ctx, src) }()
	}
	wg.Wait()
	if err := s.mergeAndApply(); err != nil {
		return fmt.Errorf("ue_sd: %w", err)
	}
	go s.manage(ctx)
	return nil
}

func (s *discovery) sourceList() []*sdSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*sdSource, 0, len(s.sources))
	for _, src := range s.sources {
		out = append(out, src)
	}
	return out
}

// restartSources replaces the source goroutines with ones for specs.
func (s *discovery) restartSources(ctx context.Context, specs []config.Discovery) {
	s.mu.Lock()
	if s.stop != nil {
		s.stop()
	}
	s.mu.Unlock()
	s.running.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.sources
	s.sources = map[string]*sdSource{}
	for _, spec := range specs {
		src := &sdSource{spec: spec, origins: map[string]*sdOrigin{}, files: map[string]os.FileInfo{}, dirty: true}
		if o := old[spec.Name]; o != nil {
			// What it delivered stays until it delivers anew.
			o.mu.Lock()
			src.origins, src.files = o.origins, o.files
			o.mu.Unlock()
		}
		s.sources[spec.Name] = src
	}
	sctx, cancel := context.WithCancel(ctx)
	s.stop = cancel
	for _, src := range s.sources {
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			s.poll(sctx, src)
		}()
	}
}

// poll refreshes src every refresh interval until ctx ends.
func (s *discovery) poll(ctx context.Context, src *sdSource) {
	t := time.NewTicker(src.spec.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.refresh(ctx, src)
		wake(s.changed) // news, or a chance to end a grace period
	}
}

// refresh reads src once.
func (s *discovery) refresh(ctx context.Context, src *sdSource) {
	var err error
	if src.spec.URL != "" {
		err = s.fetchHTTP(ctx, src)
	} else {
		err = s.readFiles(src)
	}
	s.metrics.refreshes.WithLabelValues(src.spec.Name).Inc()
	if err != nil {
		s.metrics.failures.WithLabelValues(src.spec.Name).Inc()
		s.log.Warn("ue_sd refresh failed; the UEs it gave before stay", "source", src.spec.Name, "err", err)
	}
}

// readFiles rereads the files of src whose size, time or inode changed.
func (s *discovery) readFiles(src *sdSource) error {
	seen := map[string]bool{}
	var errs []error
	for _, g := range src.spec.Files {
		names, _ := filepath.Glob(g) // patterns were checked with the config
		for _, name := range names {
			seen[name] = true
			if err := s.readFile(src, name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	src.mu.Lock()
	for name := range src.origins {
		if !seen[name] {
			delete(src.origins, name)
			delete(src.files, name)
			src.dirty = true
		}
	}
	src.mu.Unlock()
	return errors.Join(errs...)
}

func sameStat(a, b os.FileInfo) bool {
	return a != nil && b != nil && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

func (s *discovery) readFile(src *sdSource, name string) error {
	before, err := os.Stat(name)
	if err != nil {
		return nil // gone since the glob; the next round drops it
	}
	src.mu.Lock()
	last := src.files[name]
	src.mu.Unlock()
	if sameStat(before, last) {
		return nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	after, err := os.Stat(name)
	if err != nil || !sameStat(before, after) {
		return nil // being written: read it when it is still
	}
	var groups []config.TargetGroup
	if filepath.Ext(name) == ".json" {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&groups)
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err = dec.Decode(&groups); errors.Is(err, io.EOF) {
			err = nil // an empty file lists no UEs
		}
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	// Remember the stat even when it failed: the same content fails again;
	// a rewrite changes the stat.
	src.files[name] = after
	if err != nil {
		return fmt.Errorf("%s: not a list of target groups ([{targets: [...], labels: {...}}]): %w", name, err)
	}
	src.origins[name] = &sdOrigin{groups: groups, fresh: true}
	src.dirty = true
	return nil
}

// fetchHTTP gets the target groups from src's URL.
func (s *discovery) fetchHTTP(ctx context.Context, src *sdSource) error {
	spec := src.spec
	client, err := sdClient(spec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "qodwatch")
	req.Header.Set("X-Prometheus-Refresh-Interval-Seconds", strconv.FormatFloat(spec.RefreshInterval.Seconds(), 'f', -1, 64))
	switch {
	case spec.BasicAuth != nil:
		pw, err := spec.BasicAuth.PasswordRef.Read()
		if err != nil {
			return fmt.Errorf("basic_auth.password: %w", err)
		}
		req.SetBasicAuth(spec.BasicAuth.Username, pw)
	case spec.Authorization != nil:
		cred, err := spec.Authorization.CredentialsRef.Read()
		if err != nil {
			return fmt.Errorf("authorization.credentials: %w", err)
		}
		req.Header.Set("Authorization", spec.Authorization.Type+" "+cred)
	}
	origin := config.Origin(spec.URL)
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, query and all
		}
		return fmt.Errorf("GET %s: %w", origin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", origin, resp.Status)
	}
	// The timeout bounds the transfer; decoding is ours and runs after it.
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSDBody+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", origin, err)
	}
	if len(data) > maxSDBody {
		return fmt.Errorf("GET %s: the answer is over %d MiB", origin, maxSDBody>>20)
	}
	var groups []config.TargetGroup
	if err := json.Unmarshal(data, &groups); err != nil {
		return fmt.Errorf("GET %s: not a list of target groups: %w", origin, err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	src.origins = map[string]*sdOrigin{origin: {groups: groups, fresh: true}}
	src.dirty = true
	return nil
}

// sdClient is the HTTP client of an http_sd source.
func sdClient(spec config.Discovery) (*http.Client, error) {
	if spec.CAFile == "" {
		return http.DefaultClient, nil
	}
	pem, err := os.ReadFile(spec.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls_config.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls_config.ca_file %s: no PEM certificate", spec.CAFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// manage merges and applies when a source has news or a grace period ends.
func (s *discovery) manage(ctx context.Context) {
	grace := time.NewTimer(time.Hour)
	defer grace.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			if s.stop != nil {
				s.stop()
			}
			s.mu.Unlock()
			return
		case <-s.changed:
		case <-grace.C:
		}
		if s.due() {
			if err := s.mergeAndApply(); err != nil {
				s.log.Error("ue_sd: discovered UEs not applied", "err", err)
			}
		}
		if next := s.nextGraceEnd(); !next.IsZero() {
			grace.Reset(max(0, next.Sub(s.d.now())))
		}
	}
}

// due reports whether a source changed or a grace period has ended.
func (s *discovery) due() bool {
	for _, src := range s.sourceList() {
		src.mu.Lock()
		dirty := src.dirty
		src.mu.Unlock()
		if dirty {
			return true
		}
	}
	next := s.nextGraceEnd()
	return !next.IsZero() && !s.d.now().Before(next)
}

func (s *discovery) nextGraceEnd() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, k := range s.kept {
		if k.vanishedAt.IsZero() {
			continue
		}
		if end := k.vanishedAt.Add(k.grace); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}

// setBase takes a reloaded config file: every origin is resolved again
// (rules and templates may have changed) and changed sources restart.
func (s *discovery) setBase(ctx context.Context, cfg *config.Config) {
	s.mu.Lock()
	old := s.base
	s.base = cfg
	for _, src := range s.sources {
		src.mu.Lock()
		for _, o := range src.origins {
			o.fresh = true
		}
		src.dirty = true
		src.mu.Unlock()
	}
	s.mu.Unlock()
	if ctx != nil && !config.SameDiscovery(old.Discovery, cfg.Discovery) {
		s.restartSources(ctx, cfg.Discovery)
		if len(old.Discovery) == 0 && len(cfg.Discovery) > 0 {
			go s.manage(ctx)
		}
	}
	// After the restart: a removed source's last refresh is done.
	s.metrics.sources(cfg.Discovery)
}

// merged builds the running config: the file's, plus what the sources
// deliver now, plus vanished UEs still in their grace period.
func (s *discovery) merged() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := s.base
	if len(base.Discovery) == 0 && len(s.kept) == 0 {
		return base
	}
	now := s.d.now()
	present := map[string]bool{}
	var found []config.DiscoveredUE
	for _, spec := range base.Discovery {
		src := s.sources[spec.Name]
		if src == nil {
			continue
		}
		src.mu.Lock()
		names := make([]string, 0, len(src.origins))
		for name := range src.origins {
			names = append(names, name)
		}
		slices.Sort(names) // a stable order: the first of two claims wins, every time
		n, bad := 0, 0
		for _, name := range names {
			o := src.origins[name]
			if o.fresh {
				var errs []config.EntryError
				o.resolved, errs = base.ResolveTargets(spec.Name, name, o.groups)
				o.fresh = false
				for i, e := range errs {
					if i < 10 {
						s.log.Warn("ue_sd: entry skipped", "source", e.Source, "origin", e.Origin, "index", fmt.Sprintf("[%d].targets[%d]", e.Group, e.Target), "err", e.Err)
					} else if i == 10 {
						s.log.Warn("ue_sd: more entries skipped; see qodwatch_sd_invalid_entries_total", "source", spec.Name, "origin", name, "skipped", len(errs))
					}
				}
				s.metrics.invalid.WithLabelValues(spec.Name).Add(float64(len(errs)))
				bad += len(errs)
			}
			for _, u := range o.resolved {
				present[u.Name] = true
				found = append(found, u)
				s.kept[u.Name] = &keptUE{ue: u, grace: spec.Grace}
			}
			n += len(o.resolved)
		}
		src.dirty = false
		src.mu.Unlock()
		s.metrics.ues.WithLabelValues(spec.Name).Set(float64(n))
	}
	vanished := map[string]int{}
	graces := map[string]time.Duration{}
	for _, spec := range base.Discovery {
		graces[spec.Name] = spec.Grace
	}
	for name, k := range s.kept {
		grace, ok := graces[k.ue.Source]
		if !ok {
			delete(s.kept, name) // its source is gone from the config
			continue
		}
		k.grace = grace // a reload may have changed it
		switch {
		case present[name]:
			continue
		case k.vanishedAt.IsZero():
			k.vanishedAt = now
			s.log.Info("ue_sd: UE vanished; kept for the grace period", "ue", name, "source", k.ue.Source, "grace", k.grace)
		case !now.Before(k.vanishedAt.Add(k.grace)):
			s.log.Info("ue_sd: UE vanished and its grace period is over; removed", "ue", name, "source", k.ue.Source)
			delete(s.kept, name)
			continue
		}
		found = append(found, k.ue)
		vanished[k.ue.Source]++
	}
	for _, spec := range base.Discovery {
		s.metrics.vanished.WithLabelValues(spec.Name).Set(float64(vanished[spec.Name]))
	}
	cfg, left := base.WithDiscovered(found)
	now2 := map[string]bool{}
	for _, e := range left {
		msg := e.Error()
		now2[msg] = true
		if !s.left[msg] {
			s.log.Warn("ue_sd: UE left out", "source", e.Source, "origin", e.Origin, "err", e.Err)
			s.metrics.invalid.WithLabelValues(e.Source).Inc()
		}
	}
	s.left = now2
	return cfg
}

// mergeAndApply applies the merged config, one at a time with reloads.
func (s *discovery) mergeAndApply() error {
	s.d.reloadMu.Lock()
	defer s.d.reloadMu.Unlock()
	cfg := s.merged()
	_, err := s.d.apply(cfg)
	return err
}

// sdMetrics are the qodwatch_sd_* families.
type sdMetrics struct {
	ues, vanished                *prometheus.GaugeVec
	refreshes, failures, invalid *prometheus.CounterVec

	mu    sync.Mutex
	known map[string]bool // the sources with series
}

func newSDMetrics() *sdMetrics {
	return &sdMetrics{
		ues: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qodwatch_sd_ues", Help: "UEs a ue_sd source lists now, valid ones only.",
		}, []string{"source"}),
		vanished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qodwatch_sd_vanished_ues", Help: "UEs gone from a ue_sd source and kept for its grace period.",
		}, []string{"source"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_sd_refreshes_total", Help: "Reads of a ue_sd source (file checks or HTTP fetches).",
		}, []string{"source"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_sd_refresh_failures_total", Help: "Reads of a ue_sd source that failed; the UEs it gave before stay.",
		}, []string{"source"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_sd_invalid_entries_total", Help: "Discovered entries skipped: invalid, or a name or identifier another UE has.",
		}, []string{"source"}),
	}
}

// sources gives each configured source its series at 0, so its first
// failure or invalid entry shows as an increase, and drops those of
// sources gone from the config: their gauges would stay at their last
// value.
func (m *sdMetrics) sources(specs []config.Discovery) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := map[string]bool{}
	for _, spec := range specs {
		now[spec.Name] = true
		m.ues.WithLabelValues(spec.Name)
		m.vanished.WithLabelValues(spec.Name)
		m.refreshes.WithLabelValues(spec.Name)
		m.failures.WithLabelValues(spec.Name)
		m.invalid.WithLabelValues(spec.Name)
	}
	for name := range m.known {
		if !now[name] {
			for _, v := range []interface{ DeleteLabelValues(...string) bool }{m.ues, m.vanished, m.refreshes, m.failures, m.invalid} {
				v.DeleteLabelValues(name)
			}
		}
	}
	m.known = now
}

func (m *sdMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.ues, m.vanished, m.refreshes, m.failures, m.invalid} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// applyFile applies a reloaded config file together with the UEs the
// sources deliver, resolved again under the new rules and templates.
func (d *Daemon) applyFile(cfg *config.Config) (ReloadReport, error) {
	// Sharded before discovery reads it, so only this shard's targets
	// are resolved and kept.
	cfg, err := cfg.ForShard(d.opts.Shard)
	if err != nil {
		return ReloadReport{}, err
	}
	d.icmpMu.Lock()
	ctx := d.runCtx
	d.icmpMu.Unlock()
	d.sd.mu.Lock()
	prev := d.sd.base
	d.sd.mu.Unlock()
	d.sd.setBase(ctx, cfg)
	merged := d.sd.merged()
	rep, err := d.apply(merged)
	if err != nil {
		d.sd.setBase(ctx, prev)
		return rep, err
	}
	// apply keeps the running web, log and notification settings; the
	// base must too, or every discovery round would report them again.
	// Without discovery the base is the running config itself, which
	// apply set already (and which /metrics reads under d.mu only).
	if merged != cfg {
		d.sd.mu.Lock()
		cfg.Web, cfg.Log, cfg.Notifications = merged.Web, merged.Log, merged.Notifications
		d.sd.mu.Unlock()
	}
	return rep, nil
}
