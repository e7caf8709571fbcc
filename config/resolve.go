package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qodwatch/qodwatch/policy"
)

// resolver checks the decoded raw config and builds the Config. Each check
// reports through the decoder, which knows where every path is in the file.
type resolver struct {
	d        *decoder
	dir      string // relative paths in the file are relative to this
	warnings Errors
	dialect  string
	profiles policy.Profiles // what rules may ask for
	// ruleNames are all names under rules:, valid or not, for suggestions.
	ruleNames []string
	// templates remembers which probe templates passed their checks.
	templates map[string]bool
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }

// warnAt records a doubtful setting that still works.
func (r *resolver) warnAt(path, format string, args ...any) {
	e := Error{File: r.d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	n := r.d.nodeFor(path)
	if k := r.d.keys[path]; k != nil && n != nil && n.Kind == yaml.MappingNode {
		n = k // a section: its name's line, not its first entry's
	}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	r.warnings = append(r.warnings, e)
}

// path takes a relative path in the config as relative to the config's
// directory (as Prometheus does), not to wherever the daemon was started.
func (r *resolver) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.dir, p)
}

// Defaults of the top-level settings.
const (
	defaultAPITimeout   = 10 * time.Second
	defaultPollInterval = time.Minute
	// defaultRequestedTimeout: a QoS session the network has not provided
	// within two minutes is not coming; it is deleted and counted.
	defaultRequestedTimeout = 2 * time.Minute
	defaultMaxRetries       = 3
	maxRetries              = 10
	defaultWebListen        = ":9467"
	defaultNotifyListen     = ":9468"
	defaultTick             = time.Second
	defaultWindow           = 30 * time.Second
	minNotificationToken    = 16
	dialectDevEdge          = "devedge"
	dialectCAMARAv0         = "camara-v0"
	dialectCAMARAv1         = "camara-v1"
)

func (r *resolver) resolve(raw *rawFile) *Config {
	cfg := &Config{DryRun: raw.DryRun}
	cfg.API = r.api(raw.API, raw.DryRun)
	r.dialect = cfg.API.Dialect
	if cfg.API.Profiles == nil { // no api section (dry run)
		cfg.API.Profiles = policy.DefaultProfiles()
	}
	r.profiles = cfg.API.Profiles
	cfg.Web = r.web(raw.Web)
	cfg.Notifications = r.notifications(raw.Notifications, cfg.Web)
	cfg.Log = r.log(raw.Log)
	cfg.Tick = r.durationIn("tick", raw.Tick, defaultTick, 10*time.Millisecond, time.Minute)
	switch {
	case raw.StateDir != "":
		cfg.StateDir = r.path(raw.StateDir)
		if fi, err := os.Stat(cfg.StateDir); err == nil && !fi.IsDir() {
			r.d.errorAt("state_dir", "%s is a file, want a directory", cfg.StateDir)
		}
	case !raw.DryRun && !r.d.bad["dry_run"]:
		r.d.errorAt("state_dir", "missing: the directory where the daemon records the sessions it holds, e.g. /var/lib/qodwatch (not needed with dry_run: true)")
	}
	var specs map[string]policy.RuleSpec
	cfg.Rules, specs = r.rules(raw.Rules)
	defs := r.defaults(&raw.Defaults, cfg.Rules)
	cfg.Discovery = r.discoveries(raw.UESD, cfg.Rules)
	cfg.UEs = r.ues(raw.UEs, defs, cfg.Rules, specs, len(raw.UESD) > 0)
	cfg.indexUEs()
	cfg.sd = &discoveryContext{dir: r.dir, dialect: r.dialect, profiles: r.profiles, rules: cfg.Rules, specs: specs, names: r.ruleNames, defs: defs}
	cfg.Guards = r.guards(raw.Guards, cfg.UEs, len(raw.UESD) > 0)
	r.warnBlips(cfg.UEs)
	for _, name := range r.d.mapKeys("rules", slices.Collect(maps.Keys(cfg.Rules))) {
		used := defs.rule == name || cfg.discoveryUsesRule(name)
		for i := range cfg.UEs {
			used = used || cfg.UEs[i].RuleName == name
		}
		if !used {
			r.warnAt(joinPath("rules", name), "no UE uses this rule")
		}
	}
	return cfg
}

// --- scalar helpers ------------------------------------------------------

// fmtDuration writes d without empty units: 24h, not 24h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// duration parses s (def when empty); problems are reported at path.
func (r *resolver) duration(path, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := policy.ParseDuration(s)
	if err != nil {
		r.d.errorAt(path, "%v", err)
		return def
	}
	return d
}

// durationIn is duration with bounds.
func (r *resolver) durationIn(path, s string, def, lo, hi time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := policy.ParseDuration(s)
	switch {
	case err != nil:
		r.d.errorAt(path, "%v", err)
		return def
	case d < lo || d > hi:
		r.d.errorAt(path, "%s is outside %s..%s", s, fmtDuration(lo), fmtDuration(hi))
		return def
	}
	return d
}

// oneOf checks s against the allowed values; def when empty.
func (r *resolver) oneOf(path, what, s, def string, allowed ...string) string {
	if s == "" {
		return def
	}
	if slices.Contains(allowed, s) {
		return s
	}
	r.d.errorAt(path, "%q is not %s: want %s%s", s, what, orList(allowed), suggest(s, allowed))
	return def
}

// orList writes "a, b or c".
func orList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

// httpURL checks an absolute http or https URL.
func (r *resolver) httpURL(path, s string) (*url.URL, bool) {
	if !r.plain(path, s) {
		return nil, false
	}
	return r.checkURL(path, s, s, "")
}

// plain refuses placeholders and ${ENV} where they are not expanded.
func (r *resolver) plain(path, s string) bool {
	switch {
	case strings.Contains(s, "{{"):
		r.d.errorAt(path, "placeholders such as {{ue.name}} are only expanded in probe addresses, URLs and queries")
	case strings.Contains(s, "${"):
		r.d.errorAt(path, "${...} is only expanded in secret settings (client_secret, token)")
	default:
		return true
	}
	return false
}

// checkURL checks s; messages show shown, and name the UE if there is one.
func (r *resolver) checkURL(path, s, shown, ue string) (*url.URL, bool) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		var ue2 *url.Error
		if errors.As(err, &ue2) {
			err = ue2.Err
		}
		r.d.errorAt(path, "%q is not a URL: %v%s", shown, err, forUE(ue))
	case u.Scheme != "http" && u.Scheme != "https":
		r.d.errorAt(path, "%q is not an http:// or https:// URL%s", shown, forUE(ue))
	case u.Host == "" || u.Hostname() == "":
		r.d.errorAt(path, "%q has no host%s", shown, forUE(ue))
	case u.User != nil:
		// Credentials in a URL end up in logs and errors; never echo them.
		r.d.errorAt(path, "URL carries a user name or password; use the auth settings instead%s", forUE(ue))
	case u.Port() != "" && !validPort(u.Port(), 1):
		r.d.errorAt(path, "%q has port %s outside 1..%d%s", shown, u.Port(), maxPort, forUE(ue))
	default:
		return u, true
	}
	return nil, false
}

func validPort(s string, lo int) bool {
	v, err := strconv.Atoi(s)
	return err == nil && v >= lo && v <= maxPort
}

// isLoopbackHost reports whether host is a loopback address or localhost.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// listenAddr checks a host:port to listen on; def when empty.
func (r *resolver) listenAddr(path, s, def string) string {
	if s == "" {
		return def
	}
	host, port, err := net.SplitHostPort(s)
	switch {
	case err != nil:
		r.d.errorAt(path, "%q is not host:port (e.g. :9467 or 127.0.0.1:9467)", s)
	case !validPort(port, 0):
		r.d.errorAt(path, "port %q is not a number in 0..%d", port, maxPort)
	case host != "" && !hostNameRE.MatchString(host) && !validIP(host):
		r.d.errorAt(path, "%q is not an IP address or host name", host)
	default:
		return s
	}
	return def
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

var hostNameRE = regexp.MustCompile(`^(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))*\.?$`)

// --- api -----------------------------------------------------------------

func (r *resolver) api(a *rawAPI, dry bool) API {
	out := API{
		Dialect:          dialectDevEdge,
		Auth:             Auth{Type: AuthNone},
		Timeout:          defaultAPITimeout,
		PollInterval:     defaultPollInterval,
		RequestedTimeout: defaultRequestedTimeout,
		MaxRetries:       defaultMaxRetries,
	}
	if a == nil {
		if !dry && !r.d.bad["dry_run"] {
			r.d.errorAt("api", "missing: the operator's QoD API (base_url, auth); or set dry_run: true to try rules without one")
		}
		return out
	}
	switch {
	case a.BaseURL != "":
		if u, ok := r.httpURL("api.base_url", a.BaseURL); ok {
			out.BaseURL = strings.TrimSuffix(u.String(), "/")
			if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
				r.warnAt("api.base_url", "plain http: credentials and session requests travel unencrypted")
			}
		}
	case !dry && !r.d.bad["dry_run"]:
		r.d.errorAt("api.base_url", "missing: the QoD API's root URL, e.g. https://api.example.com/qod/v1")
	}
	out.Dialect = r.oneOf("api.dialect", "a dialect", a.Dialect, dialectDevEdge, dialectDevEdge, dialectCAMARAv0, dialectCAMARAv1)
	out.Timeout = r.durationIn("api.timeout", a.Timeout, defaultAPITimeout, 100*time.Millisecond, 5*time.Minute)
	out.PollInterval = r.durationIn("api.poll_interval", a.PollInterval, defaultPollInterval, time.Second, 24*time.Hour)
	if a.MaxRetries != nil {
		out.MaxRetries = *a.MaxRetries
		if out.MaxRetries < 0 || out.MaxRetries > maxRetries {
			r.d.errorAt("api.max_retries", "%d is outside 0..%d", out.MaxRetries, maxRetries)
			out.MaxRetries = defaultMaxRetries
		}
	}
	out.Auth = r.auth(&a.Auth)
	out.RequestedTimeout = r.durationIn("api.requested_timeout", a.RequestedTimeout, defaultRequestedTimeout, time.Second, 24*time.Hour)
	out.SendNetworkAccessIdentifier = a.SendNetworkAccessIdentifier
	out.Profiles = r.qosProfiles(a.QoSProfiles, out.Dialect)
	if a.ProfilesURL != "" {
		if u, ok := r.httpURL("api.profiles_url", a.ProfilesURL); ok {
			out.ProfilesURL = strings.TrimSuffix(u.String(), "/")
		}
	}
	if out.Dialect != dialectCAMARAv1 {
		for _, k := range []string{"profiles_url", "requested_timeout", "send_network_access_identifier"} {
			if r.d.has("api." + k) {
				r.warnAt("api."+k, "only the camara-v1 dialect uses this; %s ignores it", out.Dialect)
			}
		}
	}
	return out
}

// authFields lists, per auth type, the settings it needs; any other auth
// setting is a mistake (probably a wrong type). Scopes are optional.
var authFields = map[string][]string{
	AuthTAAP:   {"token_url", "client_id", "client_secret", "private_key_file"},
	AuthOAuth2: {"token_url", "client_id", "client_secret"},
	AuthBearer: {"token"},
	AuthNone:   {},
}

var authTypes = []string{AuthTAAP, AuthOAuth2, AuthBearer, AuthNone}

func (r *resolver) auth(a *rawAuth) Auth {
	const p = "api.auth"
	out := Auth{Type: a.Type}
	if a.Type == "" {
		r.d.errorAt(p+".type", "missing: %s", orList(authTypes))
		return out
	}
	need, ok := authFields[a.Type]
	if !ok {
		r.d.errorAt(p+".type", "%q is not an auth type: want %s%s", a.Type, orList(authTypes), suggest(a.Type, authTypes))
		return out
	}
	set := map[string]bool{
		"token_url":          a.TokenURL != "",
		"client_id":          a.ClientID != "",
		"client_secret":      a.ClientSecret != "",
		"client_secret_file": a.ClientSecretFile != "",
		"private_key_file":   a.PrivateKeyFile != "",
		"token":              a.Token != "",
		"token_file":         a.TokenFile != "",
		"scopes":             r.d.has(p + ".scopes"),
	}
	allowed := slices.Clone(need)
	if a.Type == AuthOAuth2 {
		allowed = append(allowed, "scopes")
	}
	for _, k := range []string{"token_url", "client_id", "client_secret", "client_secret_file", "private_key_file", "token", "token_file", "scopes"} {
		base := strings.TrimSuffix(k, "_file")
		if k == "private_key_file" {
			base = k
		}
		if set[k] && !slices.Contains(allowed, base) {
			r.d.keyErrorAt(p+"."+k, "not used with auth type %s", a.Type)
		}
	}
	for _, k := range need {
		if set[k] || set[k+"_file"] {
			continue
		}
		hint := ""
		switch k {
		case "client_secret", "token":
			hint = fmt.Sprintf(" (%s_file: PATH, or %s: ${ENV_VAR})", k, k)
		case "private_key_file":
			hint = " (PEM RSA key signing the PoP tokens)"
		}
		r.d.errorAt(p+"."+k, "missing: required with auth type %s%s", a.Type, hint)
	}
	if a.TokenURL != "" && slices.Contains(need, "token_url") {
		if u, ok := r.httpURL(p+".token_url", a.TokenURL); ok {
			out.TokenURL = u.String()
		}
	}
	if slices.Contains(need, "client_id") {
		out.ClientID = a.ClientID
		r.plain(p+".client_id", a.ClientID)
	}
	if slices.Contains(need, "client_secret") {
		out.ClientSecretRef = r.secretRef(p+".client_secret", a.ClientSecret, a.ClientSecretFile)
	}
	if slices.Contains(need, "token") {
		out.TokenRef = r.secretRef(p+".token", a.Token, a.TokenFile)
	}
	if a.PrivateKeyFile != "" && slices.Contains(need, "private_key_file") {
		out.PrivateKeyFile = r.filePath(p+".private_key_file", a.PrivateKeyFile)
		if out.PrivateKeyFile != "" {
			r.checkPrivateKey(p+".private_key_file", out.PrivateKeyFile)
		}
	}
	if a.Type == AuthOAuth2 {
		for i, s := range a.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\"\\") {
				r.d.errorAt(indexPath(p+".scopes", i), "%q is not a scope (no spaces or quotes)", s)
			}
		}
		out.Scopes = slices.Clone(a.Scopes)
	}
	return out
}

// checkPrivateKey reads the PoP signing key now, so that `qodwatch check`
// finds a wrong file. Messages never include key material.
func (r *resolver) checkPrivateKey(path, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		r.d.errorAt(path, "%s", describeFileError(err))
		return
	}
	var block *pem.Block
	for {
		block, data = pem.Decode(data)
		if block == nil {
			r.d.errorAt(path, "%s holds no PEM private key (want -----BEGIN PRIVATE KEY-----, PKCS#8)", file)
			return
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			break
		}
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
		r.d.errorAt(path, "%s is encrypted; store the key unencrypted with tight file permissions", file)
		return
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		r.d.errorAt(path, "%s holds a %s, want an RSA key (PRIVATE KEY or RSA PRIVATE KEY)", file, block.Type)
		return
	}
	if err != nil {
		r.d.errorAt(path, "%s: the %s block is not a valid private key", file, block.Type)
		return
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		kind := "non-RSA"
		switch key.(type) {
		case *ecdsa.PrivateKey:
			kind = "ECDSA"
		case ed25519.PrivateKey:
			kind = "Ed25519"
		}
		r.d.errorAt(path, "%s holds an %s key; TAAP signs with RSA (RS256)", file, kind)
		return
	}
	if bits := rk.N.BitLen(); bits < 2048 {
		r.d.errorAt(path, "%s is a %d-bit RSA key; want at least 2048 bits", file, bits)
	}
}

// --- notifications, web, log ----------------------------------------------

var notifyAuthModes = []string{NotifyAuthAny, NotifyAuthAPIKey, NotifyAuthBearer}

func (r *resolver) notifications(n rawNotifications, w Web) Notifications {
	const p = "notifications"
	out := Notifications{AuthMode: r.oneOf(p+".auth_mode", "an auth mode", n.AuthMode, NotifyAuthAny, notifyAuthModes...)}
	if n.PublicURL != "" {
		if u, ok := r.httpURL(p+".public_url", n.PublicURL); ok {
			out.PublicURL = strings.TrimSuffix(u.String(), "/")
			if strings.HasSuffix(u.Path, "/notifications") {
				r.warnAt(p+".public_url", "ends in /notifications, and the operator appends /notifications itself: it will call %s/notifications", out.PublicURL)
			}
			if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
				r.warnAt(p+".public_url", "plain http: the notification token travels unencrypted")
			}
		}
		out.Listen = r.listenAddr(p+".listen", n.Listen, defaultNotifyListen)
	} else if n.Listen != "" {
		r.d.errorAt(p+".listen", "set, but public_url is not: without public_url no notificationUrl is sent and nothing calls here")
	}
	if out.Listen != "" && sameListen(out.Listen, w.Listen) {
		r.d.errorAt(p+".listen", "%s is also web.listen; notifications need a port of their own (they face the operator, metrics do not)", out.Listen)
	}
	out.TokenRef = r.secretRef(p+".token", n.Token, n.TokenFile)
	if out.TokenRef.IsSet() {
		if t, err := out.TokenRef.Read(); err == nil && len(t) < minNotificationToken {
			p := p + ".token"
			if out.TokenRef.File != "" {
				p += "_file"
			}
			r.d.errorAt(p, "the token is %d characters; use at least %d random ones (it guards a public endpoint)", len(t), minNotificationToken)
		}
		if !out.Enabled() {
			r.warnAt(p+".token", "unused: no public_url, so no notifications are asked for")
		}
	}
	return out
}

// sameListen reports whether two listen addresses would collide.
func sameListen(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	return ha == hb || ha == "" || hb == "" || ha == "0.0.0.0" || hb == "0.0.0.0" || ha == "::" || hb == "::"
}

func (r *resolver) web(w rawWeb) Web {
	out := Web{Listen: r.listenAddr("web.listen", w.Listen, defaultWebListen),
		PerUEMetrics: r.oneOf("web.per_ue_metrics", "a per-UE metrics mode", w.PerUEMetrics, "auto", "auto", "on", "off")}
	if w.ConfigFile != "" {
		out.ConfigFile = r.filePath("web.config_file", w.ConfigFile)
		// Its content is checked by exporter-toolkit's web.Validate, which
		// the daemon calls; here only that it is there.
		if out.ConfigFile == "" {
			return out
		}
		if fi, err := os.Stat(out.ConfigFile); err != nil {
			r.d.errorAt("web.config_file", "%s", describeFileError(err))
		} else if fi.IsDir() {
			r.d.errorAt("web.config_file", "%s is a directory, want a file", out.ConfigFile)
		}
	}
	return out
}

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

func (r *resolver) log(l rawLog) Log {
	lvl := r.oneOf("log.level", "a log level", l.Level, "info", "debug", "info", "warn", "error")
	return Log{
		Level:  logLevels[lvl],
		Format: r.oneOf("log.format", "a log format", l.Format, "text", "text", "json"),
	}
}

// --- rules and guards ----------------------------------------------------

// nameRE is what UE, rule and group names may look like: they appear in
// metrics, logs, paths and URLs.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

const nameRule = "letters, digits, _ and -, starting with a letter or digit, at most 63 characters"

func (r *resolver) rules(raw map[string]policy.RuleSpec) (map[string]*policy.Rule, map[string]policy.RuleSpec) {
	rules := map[string]*policy.Rule{}
	specs := map[string]policy.RuleSpec{}
	r.ruleNames = r.d.mapKeys("rules", slices.Collect(maps.Keys(raw)))
	for _, name := range r.ruleNames {
		p := joinPath("rules", name)
		if !nameRE.MatchString(name) {
			r.d.keyErrorAt(p, "%q is not a rule name: use %s", name, nameRule)
			continue
		}
		spec := raw[name]
		specs[name] = spec
		rule, err := r.profiles.CompileRule(name, spec)
		if err != nil {
			r.policyErrors(err, p, func(fe *policy.FieldError) (string, string) { return fe.Path(), "" })
			continue
		}
		rules[name] = rule
	}
	return rules, specs
}

// policyErrors reports the *policy.FieldErrors in err at the path where
// returns, after its prefix; anything else at fallback. Errors about a
// field that did not decode are left out: policy saw it empty.
func (r *resolver) policyErrors(err error, fallback string, where func(*policy.FieldError) (path, prefix string)) {
	for _, e := range flatten(err) {
		var fe *policy.FieldError
		if !errors.As(e, &fe) {
			r.d.errorAt(fallback, "%v", e)
			continue
		}
		if r.d.failedWithin(fe.Path()) {
			continue
		}
		msg := fe.Msg
		if fe.Value != "" {
			msg = strconv.Quote(fe.Value) + " " + msg
		}
		path, prefix := where(fe)
		r.d.errorAt(path, "%s%s", prefix, msg)
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func (r *resolver) guards(g rawGuards, ues []UE, discovered bool) Guards {
	out := Guards{ReleaseOnShutdown: g.ReleaseOnShutdown}
	groups := map[string]bool{}
	var names []string
	for _, ue := range ues {
		if ue.Group != "" && !groups[ue.Group] {
			groups[ue.Group] = true
			names = append(names, ue.Group)
		}
	}
	for _, name := range r.d.mapKeys("guards.max_sessions_per_group", slices.Collect(maps.Keys(g.MaxSessionsPerGroup))) {
		if !groups[name] && !discovered { // discovered UEs may bring the group
			r.d.keyErrorAt("guards.max_sessions_per_group."+name, "no UE is in group %q%s", name, suggest(name, names))
		}
	}
	pg, err := policy.CompileGuards(g.GuardsSpec)
	if err != nil {
		r.policyErrors(err, "guards", func(fe *policy.FieldError) (string, string) { return fe.Path(), "" })
	}
	out.Guards = pg
	return out
}
