package config

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/qodwatch/qodwatch/policy"
)

// resolvedDefaults is the defaults section, checked.
type resolvedDefaults struct {
	appServer        *AppServer
	asPorts, uePorts *Ports
	probes           []rawProbe // nil when not given
	probesOK         bool       // the default probes passed their UE-independent checks
	window           time.Duration
	rule             string
	group            string
	labels           map[string]string
}

func (r *resolver) defaults(d *rawDefaults, rules map[string]*policy.Rule) resolvedDefaults {
	const p = "defaults"
	out := resolvedDefaults{window: defaultWindow}
	if d.ApplicationServer != nil {
		out.appServer = r.appServer(p+".application_server", d.ApplicationServer)
	}
	if d.ASPorts != nil {
		out.asPorts = &d.ASPorts.ports
	}
	if d.UEPorts != nil {
		out.uePorts = &d.UEPorts.ports
	}
	out.window = r.durationIn(p+".window", d.Window, defaultWindow, time.Second, time.Hour)
	if d.Rule != "" {
		if r.knownRule(p+".rule", d.Rule, rules) {
			out.rule = d.Rule
		}
	}
	if d.Group != "" {
		out.group = r.groupName(p+".group", d.Group)
	}
	r.checkLabels(p+".labels", d.Labels)
	out.labels = d.Labels
	if d.Probes != nil {
		out.probes = *d.Probes
		out.probesOK = !r.d.failedWithin(p + ".probes")
		for _, rp := range out.probes {
			_, ok := r.probe(rp, nil)
			out.probesOK = out.probesOK && ok
		}
		if out.probesOK {
			r.checkProbeSet(p+".probes", out.probes, nil)
		}
	}
	return out
}

// knownRule checks that name is a rule of the rules section. Rules that
// exist but failed to compile count as known: their own errors say why.
func (r *resolver) knownRule(path, name string, rules map[string]*policy.Rule) bool {
	if _, ok := rules[name]; ok {
		return true
	}
	if r.d.has(joinPath("rules", name)) {
		return false // reported at the rule
	}
	names := r.ruleNames
	known := "the rules section defines none"
	if len(names) > 0 {
		known = "defined: " + strings.Join(names, ", ")
	}
	r.d.errorAt(path, "unknown rule %q%s; %s", name, suggest(name, names), known)
	return false
}

func (r *resolver) groupName(path, g string) string {
	if !nameRE.MatchString(g) {
		r.d.errorAt(path, "%q is not a group name: use %s", g, nameRule)
		return ""
	}
	return g
}

// labelNameRE is a Prometheus label name; labels end up on qodwatch_ue_info.
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are set by qodwatch itself on qodwatch_ue_info.
var reservedLabels = []string{"ue", "addr", "group", "rule"}

func (r *resolver) checkLabels(path string, labels map[string]string) {
	for _, k := range r.d.mapKeys(path, slices.Collect(maps.Keys(labels))) {
		switch {
		case !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__"):
			r.d.keyErrorAt(joinPath(path, k), "%q is not a label name: want letters, digits and _, not starting with a digit or __", k)
		case slices.Contains(reservedLabels, k):
			r.d.keyErrorAt(joinPath(path, k), "label %q is reserved: qodwatch sets it itself (reserved: %s)", k, strings.Join(reservedLabels, ", "))
		}
	}
}

func (r *resolver) appServer(path string, a *rawAppServer) *AppServer {
	out := &AppServer{}
	if a.IPv4 != "" {
		out.IPv4 = r.addrOrPrefix(path+".ipv4", a.IPv4, true)
	}
	if a.IPv6 != "" {
		out.IPv6 = r.addrOrPrefix(path+".ipv6", a.IPv6, false)
	}
	if a.IPv4 == "" && a.IPv6 == "" {
		r.d.errorAt(path, "give ipv4, ipv6 or both: the address (or CIDR prefix) of the server the UE talks to")
	}
	return out
}

func family(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

// addrOrPrefix checks an address or CIDR prefix of one IP version and
// returns it in canonical form.
func (r *resolver) addrOrPrefix(path, s string, v4 bool) string {
	if !r.plain(path, s) {
		return ""
	}
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			r.d.errorAt(path, "%q is not an %s address or CIDR prefix (e.g. %s)", s, family(v4), example(v4, true))
			return ""
		}
		if pfx.Addr().Is4() != v4 {
			r.d.errorAt(path, "%q is an %s prefix; this field wants %s", s, family(!v4), family(v4))
			return ""
		}
		if r.dialect == dialectCAMARAv0 {
			// DevEdge documents address/mask and camara-v1 has no format
			// here; v0.8.1 as published says format ipv4/ipv6 beside a
			// pattern that allows the mask.
			r.warnAt(path, "a prefix: CAMARA v0.8.1 declares format %s here, so an operator that validates formats refuses it (400 INVALID_INPUT); give one address if it does", strings.ToLower(family(v4)))
		}
		return pfx.String()
	}
	return r.singleAddr(path, s, v4, true)
}

func example(v4, prefix bool) string {
	switch {
	case v4 && prefix:
		return "203.0.113.10 or 203.0.113.0/24"
	case v4:
		return "10.44.0.7"
	case prefix:
		return "2001:db8::10 or 2001:db8::/64"
	}
	return "2001:db8::7"
}

// singleAddr checks one address of one IP version.
func (r *resolver) singleAddr(path, s string, v4, prefixOK bool) string {
	if !r.plain(path, s) {
		return ""
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil && strings.Contains(s, "/") && !prefixOK:
		r.d.errorAt(path, "%q is a prefix; a UE needs a single %s address (e.g. %s)", s, family(v4), example(v4, false))
	case err != nil:
		r.d.errorAt(path, "%q is not an %s address (e.g. %s)", s, family(v4), example(v4, prefixOK))
	case a.Zone() != "":
		r.d.errorAt(path, "%q has a zone (%%%s); the API takes global addresses", s, a.Zone())
	case a.Is4() != v4 || a.Is4In6():
		r.d.errorAt(path, "%q is an %s address; this field wants %s", s, family(a.Is4()), family(v4))
	default:
		return a.String()
	}
	return ""
}

// msisdnPatterns are the API's patterns for the phone number: v0.8.1
// (DevEdge, camara-v0) MSISDN, and CAMARA v1 phoneNumber, which insists
// on E.164 with a leading +.
var msisdnPatterns = map[string]*regexp.Regexp{
	dialectDevEdge:  regexp.MustCompile(`^\+?[0-9]{5,15}$`),
	dialectCAMARAv0: regexp.MustCompile(`^\+?[0-9]{5,15}$`),
	dialectCAMARAv1: regexp.MustCompile(`^\+[1-9][0-9]{4,14}$`),
}

func (r *resolver) ues(raw []rawUE, defs resolvedDefaults, rules map[string]*policy.Rule, specs map[string]policy.RuleSpec, discovered bool) []UE {
	out := make([]UE, 0, len(raw))
	firstName := make(map[string]int, len(raw))
	// One device under two names would get two policies and, at the API,
	// two sessions: the second refused or, worse, replacing the first.
	firstID := make(map[string]int, len(raw))
	for i := range raw {
		p := indexPath("ues", i)
		ue, ok := r.ue(p, &raw[i], defs, rules, specs)
		if ue.Name != "" {
			if j, dup := firstName[ue.Name]; dup {
				r.d.errorAt(p+".name", "%q is already the name of ues[%d]; names must be unique", ue.Name, j)
				ok = false
			} else {
				firstName[ue.Name] = i
			}
		}
		for _, id := range []struct{ key, v string }{{"msisdn", ue.MSISDN}, {"external_id", ue.ExternalID}, {"ipv4", ipv4Identity(&ue)}, {"ipv6", ue.IPv6}} {
			if id.v == "" {
				continue
			}
			k := id.key + "=" + strings.TrimPrefix(id.v, "+")
			if j, dup := firstID[k]; dup {
				r.d.errorAt(p+"."+id.key, "%q is also the %s of ues[%d] (%s); two UEs cannot be one device", id.v, id.key, j, raw[j].Name)
				ok = false
			} else {
				firstID[k] = i
			}
		}
		if ok {
			out = append(out, ue)
		}
	}
	if len(raw) == 0 && !discovered {
		r.warnAt("ues", "no UEs: nothing to watch")
	}
	return out
}

func (r *resolver) ue(p string, u *rawUE, defs resolvedDefaults, rules map[string]*policy.Rule, specs map[string]policy.RuleSpec) (UE, bool) {
	n := len(r.d.errs)
	out := UE{Window: defs.window}
	switch {
	case u.Name == "":
		r.d.errorAt(p+".name", "missing: every UE needs a unique name (used in metrics and logs)")
	case !nameRE.MatchString(u.Name):
		r.d.errorAt(p+".name", "%q is not a UE name: use %s", u.Name, nameRule)
	default:
		out.Name = u.Name
	}
	if u.MSISDN != "" {
		if re := msisdnPatterns[r.dialect]; !re.MatchString(u.MSISDN) {
			hint := "digits, optionally after a +"
			if r.dialect == dialectCAMARAv1 {
				hint = "camara-v1 wants E.164: + and the country code"
			}
			r.d.errorAt(p+".msisdn", "%q does not match %s (%s)", u.MSISDN, re, hint)
		} else {
			out.MSISDN = u.MSISDN
		}
	}
	out.ExternalID = u.ExternalID
	r.ueIPv4(p+".ipv4", u.IPv4, &out)
	if u.IPv6 != "" {
		out.IPv6 = r.singleAddr(p+".ipv6", u.IPv6, false, false)
	}
	// A value written is an identifier written; the file's paths are
	// looked up only when every value is empty (100,000 UEs: a quarter of
	// a second of reload in building and hashing the paths).
	written := u.MSISDN != "" || u.ExternalID != "" || u.IPv6 != "" || u.IPv4 != (rawUEIPv4{})
	if !written && !r.d.has(p+".msisdn") && !r.d.has(p+".external_id") && !r.d.has(p+".ipv4") && !r.d.has(p+".ipv6") {
		r.d.errorAt(p, "no identifier: the API needs msisdn, external_id, ipv4 or ipv6 to know the device")
	}
	switch {
	case u.Target != "":
		if validIP(u.Target) {
			out.Target = r.singleAddr(p+".target", u.Target, netip.MustParseAddr(u.Target).Unmap().Is4(), false)
		} else if hostNameRE.MatchString(u.Target) {
			out.Target = u.Target
		} else {
			r.d.errorAt(p+".target", "%q is not an IP address or host name (no port, no scheme)", u.Target)
		}
	case out.IPv4 != "":
		out.Target = out.IPv4
	default:
		out.Target = out.IPv6
	}

	if (out.IPv4Private != "" || out.IPv4PublicPort != 0) && u.Target == "" {
		r.warnAt(p+".target", "unset, so probes go to %s, the NAT's public address, not the device behind it; set target to an address that reaches the device", out.IPv4)
	}

	// Probes address the UE by these; when one is wrong, checking the probes
	// would only repeat it.
	identityOK := len(r.d.errs) == n && !r.d.failedWithin(p+".ipv4") && !r.d.failedWithin(p+".ipv6") && !r.d.failedWithin(p+".target")

	switch {
	case u.ApplicationServer != nil:
		out.ApplicationServer = *r.appServer(p+".application_server", u.ApplicationServer)
	case defs.appServer != nil:
		out.ApplicationServer = *defs.appServer
	case !r.d.has("defaults.application_server"):
		r.d.errorAt(p+".application_server", "missing: the API needs the server the UE talks to; set it here or in defaults.application_server")
	}
	out.ASPorts = pickPorts(u.ASPorts, defs.asPorts)
	out.UEPorts = pickPorts(u.UEPorts, defs.uePorts)

	out.Group = defs.group
	if u.Group != "" {
		out.Group = r.groupName(p+".group", u.Group)
	}
	r.checkLabels(p+".labels", u.Labels)
	if len(defs.labels)+len(u.Labels) > 0 {
		out.Labels = make(map[string]string, len(defs.labels)+len(u.Labels))
		maps.Copy(out.Labels, defs.labels)
		maps.Copy(out.Labels, u.Labels)
	}

	r.ueRule(p, u, &out, defs, rules, specs)

	fields := &ueFields{
		name: out.Name, ipv4: out.IPv4, ipv6: out.IPv6, target: out.Target,
		msisdn: out.MSISDN, externalID: out.ExternalID, group: out.Group, labels: out.Labels,
	}
	probesOK := identityOK
	switch {
	case !identityOK:
	case u.Probes != nil:
		for _, rp := range *u.Probes {
			pr, good := r.probe(rp, fields)
			probesOK = probesOK && good
			out.Probes = append(out.Probes, pr)
		}
		if probesOK {
			r.checkProbeSet(p+".probes", *u.Probes, &out)
		}
	case defs.probes != nil:
		probesOK = defs.probesOK
		for _, rp := range defs.probes {
			if !probesOK {
				break
			}
			pr, good := r.probe(rp, fields)
			probesOK = probesOK && good
			out.Probes = append(out.Probes, pr)
		}
		if probesOK {
			r.checkProbeSet("", nil, &out)
		}
	}
	if probesOK && len(r.d.errs) == n && out.Rule != nil {
		r.checkRuleInputs(p, u, &out)
	}
	return out, len(r.d.errs) == n
}

func pickPorts(own *rawPorts, def *Ports) *Ports {
	src := def
	if own != nil {
		src = &own.ports
	}
	if src == nil || src.Empty() {
		return nil
	}
	return &Ports{Ports: slices.Clone(src.Ports), Ranges: slices.Clone(src.Ranges)}
}

// ueRule finds the UE's rule and applies its override.
func (r *resolver) ueRule(p string, u *rawUE, out *UE, defs resolvedDefaults, rules map[string]*policy.Rule, specs map[string]policy.RuleSpec) {
	name := defs.rule
	if u.Rule != "" {
		if !r.knownRule(p+".rule", u.Rule, rules) {
			return
		}
		name = u.Rule
	}
	if name == "" {
		if !r.d.has("defaults.rule") {
			r.d.errorAt(p+".rule", "missing: which rule decides for this UE; set it here or in defaults.rule")
		}
		return
	}
	out.RuleName = name
	out.Rule = rules[name]
	out.RuleSpec = specs[name]
	if u.RuleOverride == nil {
		return
	}
	op := p + ".rule_override"
	merged := policy.MergeRuleSpec(specs[name], *u.RuleOverride)
	rule, err := r.profiles.CompileRule(name, merged)
	if err != nil {
		// Blame the override's field when it set the one at fault; else the
		// override as a whole, which made the shared rule invalid.
		r.policyErrors(err, op, func(fe *policy.FieldError) (string, string) {
			for f := fe.Field; f != ""; f = parentPath(f) {
				if r.d.has(joinPath(op, f)) {
					return joinPath(op, f), ""
				}
			}
			return op, "with this override, " + fe.Path() + ": "
		})
		out.Rule = nil
		return
	}
	out.Rule, out.RuleSpec, out.RuleOverridden = rule, merged, true
}

// checkProbeSet checks a UE's probes together: one of each kind, except
// prometheus, whose metric names must differ.
func (r *resolver) checkProbeSet(path string, probes []rawProbe, ue *UE) {
	seen := map[string]string{}
	for i, p := range probes {
		key := p.kind
		if p.kind == ProbePrometheus {
			key += "." + p.prometheus.Metric
		}
		if first, dup := seen[key]; dup {
			if p.kind == ProbePrometheus {
				r.d.errorAt(joinPath(p.path, "metric"), "%q is already the metric of %s; each prometheus probe needs its own", p.prometheus.Metric, first)
			} else {
				r.d.keyErrorAt(p.path, "a second %s probe (the first is %s); a UE has at most one of each kind, except prometheus", p.kind, first)
			}
			continue
		}
		seen[key] = indexPath(path, i)
	}
	if ue == nil {
		return
	}
	if lat := latencyProbe(ue.Probes); lat != nil && lat.Interval > ue.Window {
		where := path
		if where == "" { // default probes: the UE's window is the culprit
			where = "defaults.window"
		}
		r.d.errorAt(where, "the %s probe of ue %q runs every %s, longer than its window %s: the window would often hold no sample", lat.Kind, ue.Name, fmtDuration(lat.Interval), fmtDuration(ue.Window))
	}
}

// latencyProbe is the probe whose round trips feed the latency figures,
// as package monitor chooses it: icmp, else tcp, else http.
func latencyProbe(ps []Probe) *Probe {
	for _, kind := range []string{ProbeICMP, ProbeTCP, ProbeHTTP} {
		for i := range ps {
			if ps[i].Kind == kind {
				return &ps[i]
			}
		}
	}
	return nil
}

// checkRuleInputs makes sure the UE's probes measure what its rule reads;
// otherwise the rule would see no data forever.
func (r *resolver) checkRuleInputs(p string, u *rawUE, ue *UE) {
	where := p
	switch {
	case u.Probes != nil:
		where = p + ".probes"
	case u.Rule != "":
		where = p + ".rule"
	}
	probesFrom := "its probes"
	if u.Probes == nil {
		probesFrom = "the default probes"
	}
	has := func(kind string) bool {
		return slices.ContainsFunc(ue.Probes, func(pr Probe) bool { return pr.Kind == kind })
	}
	for _, m := range ue.Rule.Metrics() {
		var missing string
		switch {
		case strings.HasPrefix(m, "prom."):
			name := strings.TrimPrefix(m, "prom.")
			if !slices.ContainsFunc(ue.Probes, func(pr Probe) bool { return pr.Kind == ProbePrometheus && pr.Metric == name }) {
				missing = fmt.Sprintf("prometheus probe with metric: %s", name)
			}
		case strings.HasPrefix(m, "throughput"):
			if !has(ProbeThroughput) {
				missing = "throughput probe"
			}
		default:
			if latencyProbe(ue.Probes) == nil {
				missing = "icmp, tcp or http probe"
			}
		}
		if missing != "" {
			r.d.errorAt(where, "rule %q reads %s, but %s include no %s", ue.RuleName, m, probesFrom, missing)
			return
		}
	}
}
