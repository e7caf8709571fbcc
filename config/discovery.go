package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qodwatch/qodwatch/policy"
)

// UE discovery (ue_sd, issue 13): UEs that come from files or an HTTP
// endpoint instead of the ues list, in the shape Prometheus's file_sd and
// http_sd deliver targets: a list of target groups, each a list of targets
// and labels. Each target becomes one UE through its source's template,
// whose string fields may name {{target}} and {{labels.NAME}}. A
// discovered UE is checked exactly like a static one; a bad one is left
// out and reported with its origin and index, never stopping the others.

// Discovery is one ue_sd source, resolved.
type Discovery struct {
	Name string
	// Files are the globs of file-based discovery (absolute); nil for http.
	Files []string
	// URL is the endpoint of HTTP discovery; "" for files.
	URL string
	// RefreshInterval is how often the files are checked for changes or
	// the URL is fetched.
	RefreshInterval time.Duration
	// Timeout bounds one HTTP fetch.
	Timeout time.Duration
	// BasicAuth and Authorization are http_sd's auth options; at most one.
	BasicAuth     *BasicAuth
	Authorization *Authorization
	// CAFile verifies the endpoint's certificate ("" : the system's roots).
	CAFile string
	// Grace is how long a UE that vanished from the source is kept (and its
	// session with it), so that a flapping source does not churn sessions.
	Grace time.Duration

	template rawUE
	tmplPath string
}

// BasicAuth is HTTP basic authentication; the password is a reference.
type BasicAuth struct {
	Username    string
	PasswordRef Secret
}

// Authorization is an Authorization header: Type (default Bearer) and
// credentials read from a reference.
type Authorization struct {
	Type           string
	CredentialsRef Secret
}

// TargetGroup is one entry of a file_sd file or an http_sd answer.
type TargetGroup struct {
	Targets []string          `json:"targets" yaml:"targets"`
	Labels  map[string]string `json:"labels" yaml:"labels"`
}

// Defaults of discovery.
const (
	defaultFileRefresh = 5 * time.Second
	defaultHTTPRefresh = time.Minute
	defaultSDTimeout   = 10 * time.Second
	defaultSDGrace     = 5 * time.Minute
)

type rawDiscovery struct {
	Name   string      `yaml:"name"`
	FileSD *rawFileSD  `yaml:"file_sd"`
	HTTPSD *rawHTTPSD  `yaml:"http_sd"`
	Grace  string      `yaml:"grace"`
	Tmpl   rawTemplate `yaml:"template"`
}

type rawFileSD struct {
	Files           []string `yaml:"files"`
	RefreshInterval string   `yaml:"refresh_interval"`
}

type rawHTTPSD struct {
	URL             string            `yaml:"url"`
	RefreshInterval string            `yaml:"refresh_interval"`
	Timeout         string            `yaml:"timeout"`
	BasicAuth       *rawBasicAuth     `yaml:"basic_auth"`
	Authorization   *rawAuthorization `yaml:"authorization"`
	TLSConfig       *rawTLSConfig     `yaml:"tls_config"`
}

type rawBasicAuth struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

type rawAuthorization struct {
	Type            string `yaml:"type"`
	Credentials     string `yaml:"credentials"`
	CredentialsFile string `yaml:"credentials_file"`
}

type rawTLSConfig struct {
	CAFile string `yaml:"ca_file"`
}

// rawTemplate is a UE whose string fields may hold {{target}} and
// {{labels.NAME}}; name defaults to the target with every character a UE
// name cannot hold turned into - (10.0.0.7 → 10-0-0-7).
type rawTemplate struct {
	Name              string            `yaml:"name"`
	MSISDN            string            `yaml:"msisdn"`
	ExternalID        string            `yaml:"external_id"`
	IPv4              string            `yaml:"ipv4"`
	IPv6              string            `yaml:"ipv6"`
	Target            string            `yaml:"target"`
	ApplicationServer *rawAppServer     `yaml:"application_server"`
	ASPorts           *rawPorts         `yaml:"as_ports"`
	UEPorts           *rawPorts         `yaml:"ue_ports"`
	Probes            *[]rawProbe       `yaml:"probes"`
	Rule              string            `yaml:"rule"`
	Group             string            `yaml:"group"`
	Labels            map[string]string `yaml:"labels"`
}

const sdPlaceholders = "{{target}}, {{labels.NAME}}"

// discoveries checks the ue_sd section.
func (r *resolver) discoveries(raw []rawDiscovery, rules map[string]*policy.Rule) []Discovery {
	var out []Discovery
	seen := map[string]int{}
	for i := range raw {
		p := indexPath("ue_sd", i)
		rd := &raw[i]
		n := len(r.d.errs)
		d := Discovery{Name: rd.Name, Grace: r.durationIn(p+".grace", rd.Grace, defaultSDGrace, 0, 24*time.Hour)}
		switch {
		case rd.Name == "":
			r.d.errorAt(p+".name", "missing: every source needs a name (used in logs and metrics)")
		case !nameRE.MatchString(rd.Name):
			r.d.errorAt(p+".name", "%q is not a source name: use %s", rd.Name, nameRule)
		default:
			if j, dup := seen[rd.Name]; dup {
				r.d.errorAt(p+".name", "%q is already the name of ue_sd[%d]", rd.Name, j)
			}
			seen[rd.Name] = i
		}
		switch {
		case rd.FileSD != nil && rd.HTTPSD != nil:
			r.d.keyErrorAt(p+".http_sd", "one kind per source: file_sd or http_sd, not both")
		case rd.FileSD != nil:
			r.fileSD(p+".file_sd", rd.FileSD, &d)
		case rd.HTTPSD != nil:
			r.httpSD(p+".http_sd", rd.HTTPSD, &d)
		default:
			r.d.errorAt(p, "give file_sd (files: [GLOB...]) or http_sd (url: URL)")
		}
		d.template, d.tmplPath = r.checkTemplate(p+".template", &rd.Tmpl, rules), p+".template"
		if len(r.d.errs) == n {
			out = append(out, d)
		}
	}
	return out
}

func (r *resolver) fileSD(p string, f *rawFileSD, d *Discovery) {
	if len(f.Files) == 0 {
		r.d.errorAt(p+".files", "missing: the files to read, as globs (e.g. /etc/qodwatch/ues/*.json)")
	}
	for i, g := range f.Files {
		ip := indexPath(p+".files", i)
		ext := filepath.Ext(g)
		if ext != ".json" && ext != ".yaml" && ext != ".yml" {
			r.d.errorAt(ip, "%q: the name must end in .json, .yaml or .yml (it says how the file is read)", g)
			continue
		}
		if _, err := filepath.Match(g, ""); err != nil {
			r.d.errorAt(ip, "%q is not a valid glob: %v", g, err)
			continue
		}
		d.Files = append(d.Files, r.path(g))
	}
	d.RefreshInterval = r.durationIn(p+".refresh_interval", f.RefreshInterval, defaultFileRefresh, 100*time.Millisecond, time.Hour)
}

func (r *resolver) httpSD(p string, h *rawHTTPSD, d *Discovery) {
	if h.URL == "" {
		r.d.errorAt(p+".url", "missing: the URL that lists the UEs (Prometheus http_sd format)")
	} else if u, ok := r.httpURL(p+".url", h.URL); ok {
		d.URL = u.String()
	}
	d.RefreshInterval = r.durationIn(p+".refresh_interval", h.RefreshInterval, defaultHTTPRefresh, time.Second, 24*time.Hour)
	d.Timeout = r.durationIn(p+".timeout", h.Timeout, min(defaultSDTimeout, d.RefreshInterval), 100*time.Millisecond, 10*time.Minute)
	if h.BasicAuth != nil && h.Authorization != nil {
		r.d.keyErrorAt(p+".authorization", "set basic_auth or authorization, not both")
	}
	if b := h.BasicAuth; b != nil {
		if b.Username == "" {
			r.d.errorAt(p+".basic_auth.username", "missing")
		}
		d.BasicAuth = &BasicAuth{Username: b.Username, PasswordRef: r.secretRef(p+".basic_auth.password", b.Password, b.PasswordFile)}
	}
	if a := h.Authorization; a != nil {
		typ := a.Type
		if typ == "" {
			typ = "Bearer"
		}
		if strings.ContainsAny(typ, " \t\r\n") {
			r.d.errorAt(p+".authorization.type", "%q is not an auth scheme (one word, e.g. Bearer)", typ)
		}
		ref := r.secretRef(p+".authorization.credentials", a.Credentials, a.CredentialsFile)
		if !ref.IsSet() {
			r.d.errorAt(p+".authorization.credentials", "missing: credentials_file: PATH or credentials: ${ENV_VAR}")
		}
		d.Authorization = &Authorization{Type: typ, CredentialsRef: ref}
	}
	if h.TLSConfig != nil && h.TLSConfig.CAFile != "" {
		d.CAFile = r.path(h.TLSConfig.CAFile)
		r.checkSecretFile(p+".tls_config.ca_file", Secret{File: d.CAFile})
	}
}

// checkTemplate checks what can be checked of a template on its own: its
// placeholders, and the rule when it is written literally.
func (r *resolver) checkTemplate(p string, t *rawTemplate, rules map[string]*policy.Rule) rawUE {
	for key, s := range t.stringFields() {
		r.checkSDPlaceholders(joinPath(p, key), s)
	}
	for k, s := range t.Labels {
		r.checkSDPlaceholders(joinPath(joinPath(p, "labels"), k), s)
	}
	r.checkLabels(p+".labels", t.Labels)
	if t.Rule != "" && !strings.Contains(t.Rule, "{{") {
		r.knownRule(p+".rule", t.Rule, rules)
	}
	if t.Probes != nil {
		ok := !r.d.failedWithin(p + ".probes")
		var probes []Probe
		for _, rp := range *t.Probes {
			pr, good := r.probe(rp, nil)
			ok = ok && good
			probes = append(probes, pr)
		}
		if ok {
			r.checkProbeSet(p+".probes", *t.Probes, nil)
			// What warnBlips says of static UEs, said of the UEs this
			// template makes: a whole fleet is bought for on a blip.
			if rule := rules[t.Rule]; rule != nil {
				u := UE{Probes: probes, Window: defaultWindow, Rule: rule}
				for _, w := range rule.BlipWarnings(probingOf(&u)) {
					r.warnAt(p+".probes", "with rule %s: %s", t.Rule, w.Msg)
				}
			}
		}
	}
	if t.ApplicationServer != nil {
		r.appServer(p+".application_server", t.ApplicationServer)
	}
	return rawUE{
		Name: t.Name, MSISDN: t.MSISDN, ExternalID: t.ExternalID, IPv4: plainIPv4(t.IPv4), IPv6: t.IPv6, Target: t.Target,
		ApplicationServer: t.ApplicationServer, ASPorts: t.ASPorts, UEPorts: t.UEPorts, Probes: t.Probes,
		Rule: t.Rule, Group: t.Group, Labels: t.Labels,
	}
}

// stringFields are the template's fields that take placeholders.
func (t *rawTemplate) stringFields() map[string]string {
	return map[string]string{
		"name": t.Name, "msisdn": t.MSISDN, "external_id": t.ExternalID, "ipv4": t.IPv4,
		"ipv6": t.IPv6, "target": t.Target, "rule": t.Rule, "group": t.Group,
	}
}

func (r *resolver) checkSDPlaceholders(path, s string) {
	if strings.Count(s, "{{") != len(placeholderRE.FindAllStringIndex(s, -1)) {
		r.d.errorAt(path, "unclosed {{ in %q", s)
		return
	}
	for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
		if _, ok := sdPlaceholder(m[1], "", nil); !ok {
			r.d.errorAt(path, "unknown placeholder {{%s}}; a ue_sd template knows %s", m[1], sdPlaceholders)
		}
	}
}

func sdPlaceholder(name, target string, labels map[string]string) (string, bool) {
	if name == "target" {
		return target, true
	}
	if l, ok := strings.CutPrefix(name, "labels."); ok && labelNameRE.MatchString(l) {
		return labels[l], true
	}
	return "", false
}

// expandSD fills in a template field for one target. Placeholders were
// checked with the template. A plain scan, not a regexp: it runs for every
// field of every discovered UE.
func expandSD(s, target string, labels map[string]string) string {
	i := strings.Index(s, "{{")
	if i < 0 {
		return s
	}
	var b strings.Builder
	for i >= 0 {
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			break
		}
		b.WriteString(s[:i])
		v, _ := sdPlaceholder(strings.TrimSpace(s[i+2:i+j]), target, labels)
		b.WriteString(v)
		s = s[i+j+2:]
		i = strings.Index(s, "{{")
	}
	b.WriteString(s)
	return b.String()
}

// discoveryContext is what resolving discovered UEs needs of the config
// they join: its rules, defaults and dialect.
type discoveryContext struct {
	dir      string
	dialect  string
	profiles policy.Profiles
	rules    map[string]*policy.Rule
	specs    map[string]policy.RuleSpec
	names    []string
	defs     resolvedDefaults
}

// EntryError is one discovered UE left out: where it came from (a file or
// a URL), its index in that origin (group and target) and why.
type EntryError struct {
	Source string
	Origin string
	Group  int
	Target int
	Err    error
}

func (e EntryError) Error() string {
	return fmt.Sprintf("ue_sd %s: %s: [%d].targets[%d]: %v", e.Source, e.Origin, e.Group, e.Target, e.Err)
}

// DiscoveredUE is a UE resolved from a source, with its origin.
type DiscoveredUE struct {
	UE
	Source string
	Origin string
}

// ResolveTargets turns the target groups one origin (a file, a URL) of the
// source named source delivered into UEs, each checked as a static UE is.
// Entries that fail are left out and returned as errors, one per entry.
//
// A sharded config (ForShard) resolves only the targets its shard owns.
func (c *Config) ResolveTargets(source, origin string, groups []TargetGroup) ([]DiscoveredUE, []EntryError) {
	i := slices.IndexFunc(c.Discovery, func(d Discovery) bool { return d.Name == source })
	if i < 0 || c.sd == nil {
		return nil, []EntryError{{Source: source, Origin: origin, Err: fmt.Errorf("no ue_sd source %q in the config", source)}}
	}
	src := &c.Discovery[i]
	n := 0
	for _, g := range groups {
		n += len(g.Targets)
	}
	out := make([]DiscoveredUE, 0, n)
	var bad []EntryError
	r := &resolver{dir: c.sd.dir, dialect: c.sd.dialect, profiles: c.sd.profiles, ruleNames: c.sd.names}
	for gi, g := range groups {
		for ti, target := range g.Targets {
			r.d = newEntryDecoder(origin)
			p := "[" + strconv.Itoa(gi) + "].targets[" + strconv.Itoa(ti) + "]"
			raw := src.instantiate(target, g.Labels, r.d, p)
			if !c.Shard.Owns(raw.Name) {
				continue // another shard's: it checks and keeps it
			}
			ue, ok := r.ue(p, &raw, c.sd.defs, c.sd.rules, c.sd.specs)
			if !ok || len(r.d.errs) > 0 {
				bad = append(bad, EntryError{Source: source, Origin: origin, Group: gi, Target: ti, Err: entryErr(p, r.d.errs)})
				continue
			}
			out = append(out, DiscoveredUE{UE: ue, Source: source, Origin: origin})
		}
	}
	return out, bad
}

// entryErr drops the position (there is none: the entry was not written in
// a YAML file of ours) and joins the messages.
func entryErr(prefix string, errs Errors) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		if p := strings.TrimPrefix(strings.TrimPrefix(e.Path, prefix), "."); p != "" {
			msgs[i] = p + ": " + e.Msg
		} else {
			msgs[i] = e.Msg
		}
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// newEntryDecoder is a decoder for one discovered entry: small, so that
// 100,000 entries cost 100,000 small maps rather than one huge one.
func newEntryDecoder(origin string) *decoder {
	return &decoder{file: origin, nodes: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, bad: map[string]bool{}, budget: nodeBudget}
}

// present stands for a value that was given, for the checks that ask
// whether a field was written (decoder.has).
var present = &yaml.Node{Kind: yaml.ScalarNode}

// instantiate fills the template in for one target.
func (s *Discovery) instantiate(target string, labels map[string]string, d *decoder, p string) rawUE {
	t := &s.template
	name := expandSD(t.Name, target, labels)
	if t.Name == "" {
		name = nameFrom(target)
	}
	u := rawUE{
		Name:              name,
		MSISDN:            expandSD(t.MSISDN, target, labels),
		ExternalID:        expandSD(t.ExternalID, target, labels),
		IPv4:              plainIPv4(expandSD(t.IPv4.Public, target, labels)),
		IPv6:              expandSD(t.IPv6, target, labels),
		Target:            expandSD(t.Target, target, labels),
		ApplicationServer: t.ApplicationServer,
		ASPorts:           t.ASPorts,
		UEPorts:           t.UEPorts,
		Probes:            t.Probes,
		Rule:              expandSD(t.Rule, target, labels),
		Group:             expandSD(t.Group, target, labels),
	}
	if len(t.Labels) > 0 {
		u.Labels = make(map[string]string, len(t.Labels))
		for k, v := range t.Labels {
			if v = expandSD(v, target, labels); v != "" {
				u.Labels[k] = v
			}
		}
	}
	for key, v := range map[string]string{"msisdn": u.MSISDN, "external_id": u.ExternalID, "ipv4": u.IPv4.Public, "ipv6": u.IPv6} {
		if v != "" {
			d.nodes[p+"."+key] = present
		}
	}
	return u
}

// nameFrom makes a UE name of a target when the template has none:
// 10.0.0.7 → 10-0-0-7 (UE names take letters, digits, _ and -).
func nameFrom(target string) string {
	b := []byte(target)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// WithDiscovered returns a copy of c whose UEs are c's own (the static ues)
// followed by found, in order, leaving out each found UE whose name or an
// identifier an earlier UE already has: one device under two names would
// get two sessions. Each left out is returned as an error.
func (c *Config) WithDiscovered(found []DiscoveredUE) (*Config, []EntryError) {
	out := *c
	out.UEs = make([]UE, 0, len(c.UEs)+len(found))
	out.UEs = append(out.UEs, c.UEs...)
	taken := make(map[string]string, 2*len(out.UEs)+2*len(found))
	claim := func(ue *UE) string {
		keys := ueKeys(ue)
		for _, k := range keys {
			if who, dup := taken[k]; dup {
				return fmt.Sprintf("%s is already taken by ue %q", k, who)
			}
		}
		for _, k := range keys {
			taken[k] = ue.Name
		}
		return ""
	}
	for i := range out.UEs {
		claim(&out.UEs[i])
	}
	var bad []EntryError
	for i := range found {
		if why := claim(&found[i].UE); why != "" {
			bad = append(bad, EntryError{Source: found[i].Source, Origin: found[i].Origin, Group: -1, Target: -1,
				Err: fmt.Errorf("ue %q left out: %s", found[i].Name, why)})
			continue
		}
		out.UEs = append(out.UEs, found[i].UE)
	}
	out.indexUEs()
	return &out, bad
}

func ueKeys(ue *UE) []string {
	keys := []string{"name=" + ue.Name}
	for _, id := range []struct{ key, v string }{{"msisdn", strings.TrimPrefix(ue.MSISDN, "+")}, {"external_id", ue.ExternalID}, {"ipv4", ue.IPv4}, {"ipv6", ue.IPv6}} {
		if id.v != "" {
			keys = append(keys, id.key+"="+id.v)
		}
	}
	return keys
}

// usesTemplateRule reports whether a source's template names rule.
func (c *Config) discoveryUsesRule(rule string) bool {
	for _, d := range c.Discovery {
		if d.template.Rule == rule || strings.Contains(d.template.Rule, "{{") {
			return true
		}
	}
	return false
}

// SameDiscovery reports whether two configs have the same ue_sd sources
// (so a reload need not restart them).
func SameDiscovery(a, b []Discovery) bool {
	return slices.EqualFunc(a, b, func(x, y Discovery) bool {
		return x.Name == y.Name && slices.Equal(x.Files, y.Files) && x.URL == y.URL &&
			x.RefreshInterval == y.RefreshInterval && x.Timeout == y.Timeout && x.CAFile == y.CAFile &&
			ptrEq(x.BasicAuth, y.BasicAuth) && ptrEq(x.Authorization, y.Authorization)
	})
}

func ptrEq[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Origin names a URL for logs without its query, which may carry tokens.
func Origin(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(url)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}
