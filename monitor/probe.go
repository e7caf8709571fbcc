package monitor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// UE is one device to watch, as the config describes it.
type UE struct {
	Name string // unique; used as the "ue" label
	// Addr is the UE's IPv4 or IPv6 address or a host name. Names are
	// resolved at each probe cycle through a short cache.
	Addr   string
	Labels map[string]string // exported once, on qodwatch_ue_info
	Probes []Probe
}

// Probe is the configuration of one probe of a UE. The implementations are
// the plain structs ICMP, TCP, HTTP, Throughput and Prometheus, one file
// each. Strings that name a target may use the placeholders {{ue.name}} and
// {{ue.addr}} (an IPv6 address is bracketed in URLs and host:port).
type Probe interface {
	// Kind is the probe's name on metrics and in Result.Probe.
	Kind() string
	// bind checks the configuration, fills defaults and expands the
	// placeholders for one UE.
	bind(ue *UE) (boundProbe, error)
}

// boundProbe is a probe ready to measure one UE.
type boundProbe interface {
	every() time.Duration
}

// runner is a bound probe the scheduler runs once per interval. ICMP is not
// one: its packets are sent by the shared engine.
type runner interface {
	boundProbe
	// run measures once. It returns within the probe's timeout, or sooner
	// when ctx ends.
	run(ctx context.Context, env *env) outcome
	// exclusive reports whether the probe must have the UE to itself
	// (throughput); other probes of the UE skip while it runs.
	exclusive() bool
	// passive probes do not touch the UE's network and ignore the UE lock.
	passive() bool
}

// outcome is what one run produced: the Result, plus details that only
// metrics want.
type outcome struct {
	Result
	bytes  int64 // moved by a throughput probe
	status int   // HTTP status, when there was one
}

// Probe kinds, as they appear in Result.Probe and on metrics.
const (
	KindICMP       = "icmp"
	KindTCP        = "tcp"
	KindHTTP       = "http"
	KindThroughput = "throughput"
	KindPrometheus = "prometheus"
)

// kind indexes per-kind arrays.
type kind uint8

const (
	kICMP kind = iota
	kTCP
	kHTTP
	kThroughput
	kPrometheus
	numKinds
)

var kindNames = [numKinds]string{KindICMP, KindTCP, KindHTTP, KindThroughput, KindPrometheus}

func kindOf(s string) (kind, bool) {
	switch s {
	case KindICMP:
		return kICMP, true
	case KindTCP:
		return kTCP, true
	case KindHTTP:
		return kHTTP, true
	case KindThroughput:
		return kThroughput, true
	case KindPrometheus:
		return kPrometheus, true
	}
	return 0, false
}

// measuresLatency reports whether a kind's Results carry round trips.
func (k kind) measuresLatency() bool { return k <= kHTTP }

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are the label names qodwatch_ue_info sets itself.
var reservedLabels = map[string]bool{"ue": true, "addr": true}

func (u *UE) validate() error {
	if u.Name == "" {
		return errors.New("ue without a name")
	}
	// Names, addresses and labels become label values, which must be UTF-8.
	if !utf8.ValidString(u.Name) {
		return fmt.Errorf("ue %q: name is not valid UTF-8", u.Name)
	}
	if u.Addr == "" {
		return fmt.Errorf("ue %q: no address", u.Name)
	}
	if strings.ContainsAny(u.Addr, " /\t\n[]") {
		return fmt.Errorf("ue %q: address %q is neither an IP address nor a host name", u.Name, u.Addr)
	}
	for k, v := range u.Labels {
		if !labelName.MatchString(k) || strings.HasPrefix(k, "__") || reservedLabels[k] {
			return fmt.Errorf("ue %q: label name %q is not allowed (want [a-zA-Z_][a-zA-Z0-9_]*, not ue or addr)", u.Name, k)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("ue %q: label %s: value is not valid UTF-8", u.Name, k)
		}
	}
	return nil
}

// normalize turns a pointer to a probe struct into the struct, so a probe
// compares equal across reloads however it was passed, and a nil pointer is
// an error rather than a panic.
func normalize(p Probe) (Probe, error) {
	switch v := p.(type) {
	case nil:
		return nil, errors.New("nil probe")
	case *ICMP:
		if v != nil {
			return *v, nil
		}
	case *TCP:
		if v != nil {
			return *v, nil
		}
	case *HTTP:
		if v != nil {
			return *v, nil
		}
	case *Throughput:
		if v != nil {
			return *v, nil
		}
	case *Prometheus:
		if v != nil {
			return *v, nil
		}
	default:
		return p, nil
	}
	return nil, fmt.Errorf("nil %T probe", p)
}

// expand replaces the UE placeholders in s. In host context an IPv6 address
// is bracketed so it can stand before ":port", unless s brackets it.
func expand(s string, ue *UE, hostContext bool) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	addr := ue.Addr
	if hostContext && !strings.Contains(s, "[{{ue.addr}}]") {
		if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
			addr = "[" + addr + "]"
		}
	}
	return strings.NewReplacer("{{ue.name}}", ue.Name, "{{ue.addr}}", addr).Replace(s)
}

func checkInterval(what string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s: interval must be positive, got %v", what, d)
	}
	return nil
}

// timeoutFor returns t, or when t is zero the default: the interval, capped
// at 10 s.
func timeoutFor(t, interval time.Duration) time.Duration {
	if t > 0 {
		return t
	}
	return min(interval, 10*time.Second)
}
