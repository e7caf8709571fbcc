package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// rawProbe is one item of a probes list: a map with the probe kind as its
// only key, `- icmp: {interval: 1s}`, or the bare kind, `- icmp`, for a
// probe with all defaults.
type rawProbe struct {
	kind string
	path string // of the probe's settings, e.g. "defaults.probes[0].icmp"
	// Exactly one of these is set, per kind.
	icmp       *rawICMP
	tcp        *rawTCP
	http       *rawHTTP
	throughput *rawThroughput
	prometheus *rawPrometheus
}

type rawICMP struct {
	Interval string `yaml:"interval"`
	Packets  *int   `yaml:"packets"`
	Spacing  string `yaml:"spacing"`
	Timeout  string `yaml:"timeout"`
	Source   string `yaml:"source"`
	DSCP     *int   `yaml:"dscp"`
	TOS      *int   `yaml:"tos"`
}

// marking is a probe's optional packet mark: dscp (0..63) or the whole
// tos byte (0..255), so the probe sees the queue the boosted traffic sees.
type marking struct{ DSCP, TOS *int }

type rawTCP struct {
	Address  string `yaml:"address"`
	Interval string `yaml:"interval"`
	Timeout  string `yaml:"timeout"`
	DSCP     *int   `yaml:"dscp"`
	TOS      *int   `yaml:"tos"`
}

type rawHTTP struct {
	URL      string `yaml:"url"`
	Interval string `yaml:"interval"`
	Timeout  string `yaml:"timeout"`
	DSCP     *int   `yaml:"dscp"`
	TOS      *int   `yaml:"tos"`
}

type rawThroughput struct {
	URL       string `yaml:"url"`
	Interval  string `yaml:"interval"`
	MaxBytes  string `yaml:"max_bytes"`
	MaxTime   string `yaml:"max_time"`
	Direction string `yaml:"direction"`
	DSCP      *int   `yaml:"dscp"`
	TOS       *int   `yaml:"tos"`
}

type rawPrometheus struct {
	Server   string `yaml:"server"`
	Query    string `yaml:"query"`
	Metric   string `yaml:"metric"`
	Interval string `yaml:"interval"`
	Timeout  string `yaml:"timeout"`
}

var probeKinds = []string{ProbeICMP, ProbeTCP, ProbeHTTP, ProbeThroughput, ProbePrometheus}

const probeExample = "- icmp: {interval: 1s}"

func (p *rawProbe) decodeNode(d *decoder, n *yaml.Node, path string) {
	var key, value *yaml.Node
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		key = n
	case n.Kind == yaml.MappingNode && len(n.Content) == 2:
		key, value = n.Content[0], n.Content[1]
	case n.Kind == yaml.MappingNode && len(n.Content) > 2:
		d.errorf(n.Content[2], path, "one probe per list item: start each probe with its own \"- \" (e.g. %s)", probeExample)
		return
	default:
		d.errorf(n, path, "want a probe such as %s, got %s", probeExample, describe(n))
		return
	}
	p.kind = key.Value
	p.path = joinPath(path, key.Value)
	d.keys[p.path] = key
	var into any
	switch p.kind {
	case ProbeICMP:
		p.icmp = &rawICMP{}
		into = p.icmp
	case ProbeTCP:
		p.tcp = &rawTCP{}
		into = p.tcp
	case ProbeHTTP:
		p.http = &rawHTTP{}
		into = p.http
	case ProbeThroughput:
		p.throughput = &rawThroughput{}
		into = p.throughput
	case ProbePrometheus:
		p.prometheus = &rawPrometheus{}
		into = p.prometheus
	default:
		d.errorf(key, p.path, "unknown probe kind%s; known: %s", suggest(p.kind, probeKinds), strings.Join(probeKinds, ", "))
		p.kind = ""
		return
	}
	if value == nil {
		d.nodes[p.path] = key
		return
	}
	d.decode(value, p.path, reflect.ValueOf(into).Elem())
}

// Probe defaults, the same as package monitor fills in, written out here so
// that the resolved config says what will run.
const (
	defaultICMPInterval       = time.Second
	defaultICMPPackets        = 3
	maxICMPPackets            = 100
	defaultTCPInterval        = 5 * time.Second
	defaultHTTPInterval       = 10 * time.Second
	defaultThroughputInterval = 30 * time.Second
	defaultThroughputBytes    = 2 << 20
	minThroughputBytes        = 64 << 10
	maxThroughputBytes        = 1 << 30
	defaultThroughputTime     = 3 * time.Second
	defaultPromInterval       = 15 * time.Second
	minProbeInterval          = 10 * time.Millisecond
	maxProbeInterval          = time.Hour
)

// ueFields are the values placeholders expand to for one UE.
type ueFields struct {
	name, ipv4, ipv6, target, msisdn, externalID, group string
	labels                                              map[string]string
}

// probe checks one probe and resolves it for ue. With ue nil it only checks
// what does not depend on the UE (used for defaults, once).
func (r *resolver) probe(raw rawProbe, ue *ueFields) (Probe, bool) {
	n := len(r.d.errs)
	p := Probe{Kind: raw.kind}
	at := func(key string) string { return joinPath(raw.path, key) }
	interval := func(s string, def time.Duration) time.Duration {
		return r.durationIn(at("interval"), s, def, minProbeInterval, maxProbeInterval)
	}
	timeout := func(s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		t := r.durationIn(at("timeout"), s, 0, time.Millisecond, maxProbeInterval)
		if t > p.Interval && p.Interval > 0 {
			r.d.errorAt(at("timeout"), "%s is longer than the interval %s", fmtDuration(t), fmtDuration(p.Interval))
		}
		return t
	}
	var mk *marking
	switch raw.kind {
	case ProbeICMP:
		mk = &marking{raw.icmp.DSCP, raw.icmp.TOS}
	case ProbeTCP:
		mk = &marking{raw.tcp.DSCP, raw.tcp.TOS}
	case ProbeHTTP:
		mk = &marking{raw.http.DSCP, raw.http.TOS}
	case ProbeThroughput:
		mk = &marking{raw.throughput.DSCP, raw.throughput.TOS}
	}
	if mk != nil {
		switch {
		case mk.DSCP != nil && mk.TOS != nil:
			r.d.errorAt(at("tos"), "give dscp or tos, not both (dscp is the upper six bits of tos)")
		case mk.DSCP != nil && (*mk.DSCP < 0 || *mk.DSCP > 63):
			r.d.errorAt(at("dscp"), "%d is outside 0..63", *mk.DSCP)
		case mk.DSCP != nil:
			p.TOS = uint8(*mk.DSCP << 2)
		case mk.TOS != nil && (*mk.TOS < 0 || *mk.TOS > 255):
			r.d.errorAt(at("tos"), "%d is outside 0..255", *mk.TOS)
		case mk.TOS != nil:
			p.TOS = uint8(*mk.TOS)
		}
	}
	switch raw.kind {
	case ProbeICMP:
		c := raw.icmp
		p.Interval = interval(c.Interval, defaultICMPInterval)
		p.Packets = defaultICMPPackets
		if c.Packets != nil {
			p.Packets = *c.Packets
			if p.Packets < 1 || p.Packets > maxICMPPackets {
				r.d.errorAt(at("packets"), "%d is outside 1..%d", p.Packets, maxICMPPackets)
			}
		}
		if c.Spacing != "" {
			p.Spacing = r.duration(at("spacing"), c.Spacing, 0)
		} else if p.Packets > 1 {
			p.Spacing = min(100*time.Millisecond, p.Interval/time.Duration(2*p.Packets))
		}
		if p.Packets > 1 && p.Spacing*time.Duration(p.Packets-1) >= p.Interval && p.Interval > 0 {
			r.d.errorAt(at("spacing"), "%d packets %s apart do not fit in the interval %s", p.Packets, fmtDuration(p.Spacing), fmtDuration(p.Interval))
		}
		p.Timeout = min(p.Interval, 2*time.Second)
		if c.Timeout != "" {
			p.Timeout = r.durationIn(at("timeout"), c.Timeout, 0, time.Millisecond, time.Minute)
		}
		if c.Source != "" {
			a, err := netip.ParseAddr(c.Source)
			if err != nil || a.Zone() != "" {
				r.d.errorAt(at("source"), "%q is not an IP address (the local address to send from)", c.Source)
			} else {
				p.Source = a.Unmap().String()
			}
		}
		if ue != nil {
			if ue.target == "" {
				r.d.errorAt(raw.path, "ue %q has nothing to ping: give it ipv4, ipv6 or target", ue.name)
			} else if a, err := netip.ParseAddr(ue.target); err == nil && p.Source != "" {
				if s := netip.MustParseAddr(p.Source); s.Is4() != a.Unmap().Is4() {
					r.d.errorAt(at("source"), "%s and the target %s of ue %q are of different IP versions", p.Source, ue.target, ue.name)
				}
			}
		}
	case ProbeTCP:
		c := raw.tcp
		p.Interval = interval(c.Interval, defaultTCPInterval)
		p.Timeout = timeout(c.Timeout, min(p.Interval, 10*time.Second))
		if c.Address == "" {
			r.d.errorAt(at("address"), "missing: host:port to connect to, e.g. \"{{ue.target}}:443\"")
			break
		}
		p.Address = r.probeHostPort(at("address"), c.Address, ue)
	case ProbeHTTP:
		c := raw.http
		p.Interval = interval(c.Interval, defaultHTTPInterval)
		p.Timeout = timeout(c.Timeout, min(p.Interval, 10*time.Second))
		p.URL = r.probeURL(at("url"), c.URL, ue)
	case ProbeThroughput:
		c := raw.throughput
		p.Interval = interval(c.Interval, defaultThroughputInterval)
		p.URL = r.probeURL(at("url"), c.URL, ue)
		p.MaxBytes = defaultThroughputBytes
		if c.MaxBytes != "" {
			if b, err := parseSize(c.MaxBytes); err != nil {
				r.d.errorAt(at("max_bytes"), "%v", err)
			} else if b < minThroughputBytes || b > maxThroughputBytes {
				r.d.errorAt(at("max_bytes"), "%s is outside 64KiB..1GiB (too little cannot measure a rate; too much costs data)", c.MaxBytes)
			} else {
				p.MaxBytes = b
			}
		}
		p.MaxTime = defaultThroughputTime
		if c.MaxTime != "" {
			p.MaxTime = r.durationIn(at("max_time"), c.MaxTime, 0, 10*time.Millisecond, maxProbeInterval)
		}
		switch c.Direction {
		case "", "download":
		case "upload":
			p.Upload = true
		default:
			r.d.errorAt(at("direction"), "%q is not a direction: want download or upload%s", c.Direction, suggest(c.Direction, []string{"download", "upload"}))
		}
		// An upload may need as long again to drain what is in flight.
		deadline, what := p.MaxTime, ""
		if p.Upload {
			deadline, what = 2*p.MaxTime, " (an upload may take twice max_time)"
		}
		if p.Interval > 0 && p.MaxTime > 0 && deadline >= p.Interval {
			r.d.errorAt(at("max_time"), "%s leaves no room in the interval %s%s", fmtDuration(p.MaxTime), fmtDuration(p.Interval), what)
		}
	case ProbePrometheus:
		c := raw.prometheus
		p.Interval = interval(c.Interval, defaultPromInterval)
		p.Timeout = timeout(c.Timeout, min(p.Interval, 10*time.Second))
		if c.Server == "" {
			r.d.errorAt(at("server"), "missing: the Prometheus server's base URL, e.g. http://127.0.0.1:9090")
		} else if u, ok := r.httpURL(at("server"), c.Server); ok {
			p.Server = strings.TrimSuffix(u.String(), "/")
		}
		switch {
		case c.Metric == "":
			r.d.errorAt(at("metric"), "missing: the name rules use for this value (as prom.<metric>)")
		case !metricNameRE.MatchString(c.Metric):
			r.d.errorAt(at("metric"), "%q is not a metric name: want letters, digits and _, not starting with a digit, at most 64 characters", c.Metric)
		default:
			p.Metric = c.Metric
		}
		if strings.TrimSpace(c.Query) == "" {
			r.d.errorAt(at("query"), "missing: the PromQL query giving one value per UE, e.g. 'app_bitrate{client=\"{{ue.name}}\"}'")
		} else if r.templateOK(at("query"), c.Query, func() bool {
			_, ok := r.expand(at("query"), c.Query, nil, ctxPromQL)
			return ok
		}) && ue != nil {
			p.Query, _ = r.expand(at("query"), c.Query, ue, ctxPromQL)
		}
	default:
		return p, false // reported while decoding
	}
	return p, len(r.d.errs) == n
}

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`)

// probeURL checks a probe's URL template once with sample values, so a
// mistake in it is reported once and as written, then expands it for ue.
func (r *resolver) probeURL(path, tmpl string, ue *ueFields) string {
	if tmpl == "" {
		r.d.errorAt(path, "missing: the URL to fetch, e.g. \"http://{{ue.target}}:8080/probe\"")
		return ""
	}
	if !r.templateOK(path, tmpl, func() bool {
		sample, ok := r.expand(path, tmpl, nil, ctxURL)
		if ok {
			_, ok = r.checkURL(path, sample, tmpl, "")
		}
		return ok
	}) || ue == nil {
		return ""
	}
	out, ok := r.expand(path, tmpl, ue, ctxURL)
	if !ok {
		return ""
	}
	if _, ok := r.checkURL(path, out, out, ue.name); !ok {
		return ""
	}
	return out
}

// templateOK runs check, which reports problems of a template as written,
// once per place: default probes are resolved for every UE.
func (r *resolver) templateOK(path, tmpl string, check func() bool) bool {
	key := path + "\x00" + tmpl
	ok, done := r.templates[key]
	if !done {
		ok = check()
		if r.templates == nil {
			r.templates = map[string]bool{}
		}
		r.templates[key] = ok
	}
	return ok
}

// probeHostPort is probeURL for a host:port.
func (r *resolver) probeHostPort(path, tmpl string, ue *ueFields) string {
	if !r.templateOK(path, tmpl, func() bool {
		sample, ok := r.expand(path, tmpl, nil, ctxHost)
		return ok && r.checkHostPort(path, sample, tmpl, "")
	}) || ue == nil {
		return ""
	}
	out, ok := r.expand(path, tmpl, ue, ctxHost)
	if !ok || !r.checkHostPort(path, out, out, ue.name) {
		return ""
	}
	return out
}

// checkHostPort checks addr; messages show shown (the template as written,
// or the expanded address with the UE's name).
func (r *resolver) checkHostPort(path, addr, shown, ue string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		r.d.errorAt(path, "%q is not host:port (e.g. \"{{ue.target}}:443\")%s", shown, forUE(ue))
		return false
	}
	if !validPort(port, 1) {
		r.d.errorAt(path, "port %q in %q is not a number in 1..%d%s", port, shown, maxPort, forUE(ue))
		return false
	}
	if !validIP(strings.Trim(host, "[]")) && !hostNameRE.MatchString(host) {
		r.d.errorAt(path, "%q in %q is not an IP address or host name%s", host, shown, forUE(ue))
		return false
	}
	return true
}

func forUE(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (for ue %q)", name)
}

// Where a placeholder stands decides how its value is written.
type placeContext int

const (
	ctxHost   placeContext = iota // host:port: IPv6 in brackets
	ctxURL                        // URL: IPv6 in brackets in the host part, else escaped
	ctxPromQL                     // inside a PromQL string: quotes escaped
)

var placeholderRE = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

const knownPlaceholders = "{{ue.name}}, {{ue.target}}, {{ue.ipv4}}, {{ue.ipv6}}, {{ue.msisdn}}, {{ue.external_id}}, {{ue.group}}, {{ue.labels.NAME}}"

// expand replaces the {{ue.*}} placeholders in s with ue's values. With ue
// nil it checks that every placeholder is known and fills in samples.
func (r *resolver) expand(path, s string, ue *ueFields, ctx placeContext) (string, bool) {
	ok := true
	if strings.Count(s, "{{") != len(placeholderRE.FindAllStringIndex(s, -1)) {
		r.d.errorAt(path, "unclosed {{ in %q", s)
		return "", false
	}
	hostEnd := len(s)
	if ctx == ctxURL {
		if i := strings.Index(s, "://"); i >= 0 {
			if j := strings.IndexAny(s[i+3:], "/?#"); j >= 0 {
				hostEnd = i + 3 + j
			}
		} else {
			hostEnd = 0
		}
	}
	var b strings.Builder
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(s[last:m[0]])
		last = m[1]
		name := s[m[2]:m[3]]
		v, known := placeholder(ue, name)
		if !known {
			r.d.errorAt(path, "unknown placeholder {{%s}}; known: %s", name, knownPlaceholders)
			ok = false
			continue
		}
		if v == "" {
			r.d.errorAt(path, "ue %q has no %s for {{%s}}", ue.name, strings.TrimPrefix(name, "ue."), name)
			ok = false
			continue
		}
		switch {
		case ctx == ctxPromQL:
			v = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
		case ctx == ctxHost || (ctx == ctxURL && m[0] < hostEnd):
			bracketed := m[0] > 0 && s[m[0]-1] == '['
			if a, err := netip.ParseAddr(v); err == nil && a.Is6() && !bracketed {
				v = "[" + v + "]"
			}
		case ctx == ctxURL:
			v = url.PathEscape(v)
		}
		b.WriteString(v)
	}
	b.WriteString(s[last:])
	return b.String(), ok
}

// sampleUE stands in for every UE when a template is checked on its own.
var sampleUE = &ueFields{
	name: "ue", ipv4: "192.0.2.1", ipv6: "2001:db8::1", target: "192.0.2.1",
	msisdn: "15550000000", externalID: "ue", group: "group",
}

// placeholder looks a placeholder's name up; known says whether it exists
// at all. With u nil it gives sample values.
func placeholder(u *ueFields, name string) (v string, known bool) {
	if u == nil {
		u = sampleUE
	}
	switch name {
	case "ue.name":
		return u.name, true
	case "ue.target", "ue.addr": // ue.addr: package monitor's name for it
		return u.target, true
	case "ue.ipv4":
		return u.ipv4, true
	case "ue.ipv6":
		return u.ipv6, true
	case "ue.msisdn":
		return u.msisdn, true
	case "ue.external_id":
		return u.externalID, true
	case "ue.group":
		return u.group, true
	}
	if label, ok := strings.CutPrefix(name, "ue.labels."); ok && labelNameRE.MatchString(label) {
		if u == sampleUE {
			return "label", true
		}
		return u.labels[label], true
	}
	return "", false
}
