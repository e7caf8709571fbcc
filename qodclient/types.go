package qodclient

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Dialect selects the wire format of request bodies. Responses are decoded
// the same way in every dialect, so a server that mixes forms still works.
type Dialect string

const (
	// DialectDevEdge is T-Mobile DevEdge QoD v1.1.2: the CAMARA v0.8.1 body,
	// create answers 200.
	DialectDevEdge Dialect = "devedge"
	// DialectCAMARAv0 is CAMARA QualityOnDemand v0.8.1: create answers 201.
	DialectCAMARAv0 Dialect = "camara-v0"
	// DialectCAMARAv1 is CAMARA QualityOnDemand v1 (device, applicationServer,
	// qosProfile, sink; RFC 3339 times; x-correlator header).
	DialectCAMARAv1 Dialect = "camara-v1"
)

func (d Dialect) valid() bool {
	switch d {
	case DialectDevEdge, DialectCAMARAv0, DialectCAMARAv1:
		return true
	}
	return false
}

// QoSProfile names a QoS profile. v0.8.1 knows the four constants below;
// CAMARA v1 allows any operator-defined name.
type QoSProfile string

const (
	QoSE QoSProfile = "QOS_E" // enhanced communication
	QoSS QoSProfile = "QOS_S"
	QoSM QoSProfile = "QOS_M"
	QoSL QoSProfile = "QOS_L"
)

// MaxDuration is the longest session the API grants, in seconds; it is
// also the server's default when Duration is left 0.
const MaxDuration = 86400

// UeID identifies the user equipment (device). At least one field is set.
type UeID struct {
	ExternalID string `json:"externalId,omitempty"`
	MSISDN     string `json:"msisdn,omitempty"`
	IPv4Addr   string `json:"ipv4addr,omitempty"` // address or address/mask
	IPv6Addr   string `json:"ipv6addr,omitempty"`
	// IPv4Private and IPv4PublicPort complete IPv4Addr, then the device's
	// public (observed) address, for a device behind carrier NAT: CAMARA v1
	// sends them as ipv4Address.privateAddress and publicPort. v0.8.1 has
	// no place for them; without either, v1 sends IPv4Addr as both public
	// and private address (no NAT).
	IPv4Private    string `json:"-"`
	IPv4PublicPort int    `json:"-"`
}

// AsID identifies the application server. At least one field is set.
type AsID struct {
	IPv4Addr string `json:"ipv4addr,omitempty"`
	IPv6Addr string `json:"ipv6addr,omitempty"`
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// PortsSpec lists ports as ranges and/or single ports.
type PortsSpec struct {
	Ranges []PortRange `json:"ranges,omitempty"`
	Ports  []int       `json:"ports,omitempty"`
}

// CreateSessionRequest is the body of POST /sessions (qod-api v0.8.1).
type CreateSessionRequest struct {
	UeID    UeID       `json:"ueId"`
	AsID    AsID       `json:"asId"`
	UePorts *PortsSpec `json:"uePorts,omitempty"`
	AsPorts *PortsSpec `json:"asPorts,omitempty"`
	QoS     QoSProfile `json:"qos"`
	// Duration in seconds, 1..86400; 0 leaves it to the server (86400).
	Duration        int    `json:"duration,omitempty"`
	NotificationURL string `json:"notificationUrl,omitempty"`
	// NotificationAuthToken is a secret: String() never shows it.
	NotificationAuthToken string `json:"notificationAuthToken,omitempty"`
}

// Message is an informational note the server attaches to a session.
type Message struct {
	Severity    string `json:"severity"` // INFO or WARNING
	Description string `json:"description"`
}

// SessionInfo describes a session as the server reports it.
type SessionInfo struct {
	ID        string
	StartedAt time.Time // zero when the server did not say (v1 REQUESTED)
	ExpiresAt time.Time

	UeID                  UeID
	AsID                  AsID
	UePorts               *PortsSpec
	AsPorts               *PortsSpec
	QoS                   QoSProfile
	Duration              int
	NotificationURL       string
	NotificationAuthToken string // secret, echoed by some servers
	Messages              []Message

	// CAMARA v1 only; empty in the v0.8.1/DevEdge dialects.
	QoSStatus  string // REQUESTED, AVAILABLE, UNAVAILABLE
	StatusInfo string // DURATION_EXPIRED, NETWORK_TERMINATED, DELETE_REQUESTED
}

// String summarises the session without the notification token.
func (s SessionInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "session %s qos=%s ue=%s", s.ID, s.QoS, s.UeID)
	if !s.StartedAt.IsZero() {
		fmt.Fprintf(&b, " started=%s", s.StartedAt.UTC().Format(time.RFC3339))
	}
	if !s.ExpiresAt.IsZero() {
		fmt.Fprintf(&b, " expires=%s", s.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if s.QoSStatus != "" {
		fmt.Fprintf(&b, " status=%s", s.QoSStatus)
	}
	return b.String()
}

// String summarises the request without the notification token.
func (r CreateSessionRequest) String() string {
	return fmt.Sprintf("create session qos=%s duration=%ds ue=%s as=%s notify=%q",
		r.QoS, r.Duration, r.UeID, r.AsID, r.NotificationURL)
}

func (u UeID) String() string {
	port := ""
	if u.IPv4PublicPort != 0 {
		port = strconv.Itoa(u.IPv4PublicPort)
	}
	return joinIDs("externalId", u.ExternalID, "msisdn", u.MSISDN, "ipv4addr", u.IPv4Addr,
		"ipv4private", u.IPv4Private, "ipv4publicPort", port, "ipv6addr", u.IPv6Addr)
}

func (a AsID) String() string {
	return joinIDs("ipv4addr", a.IPv4Addr, "ipv6addr", a.IPv6Addr)
}

func joinIDs(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			parts = append(parts, kv[i]+"="+kv[i+1])
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var (
	msisdnPattern      = regexp.MustCompile(`^\+?[0-9]{5,15}$`)
	profileNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,256}$`)
)

// Validate checks the request against qod-api v0.8.1 (the DevEdge body).
// The error wraps ErrInvalid and lists every problem found.
func (r CreateSessionRequest) Validate() error { return r.ValidateFor(DialectDevEdge) }

// ValidateFor checks the request for a dialect: CAMARA v1 accepts any
// well-formed profile name, needs an https notification URL and a single
// device IPv4 address (it has no masks for devices).
func (r CreateSessionRequest) ValidateFor(d Dialect) error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	u := r.UeID
	if u == (UeID{}) {
		add("ueId needs at least one of externalId, msisdn, ipv4addr, ipv6addr")
	}
	if u.MSISDN != "" && !msisdnPattern.MatchString(u.MSISDN) {
		add("ueId.msisdn %q does not match ^\\+?[0-9]{5,15}$", u.MSISDN)
	}
	if u.IPv4Addr != "" {
		if pfx, err := parseAddrOrPrefix(u.IPv4Addr, true); err != nil {
			add("ueId.ipv4addr: %v", err)
		} else if d == DialectCAMARAv1 && pfx.Bits() != 32 {
			add("ueId.ipv4addr %q: CAMARA v1 identifies a device by a single address, not a network", u.IPv4Addr)
		}
	}
	if u.IPv6Addr != "" {
		if _, err := parseAddrOrPrefix(u.IPv6Addr, false); err != nil {
			add("ueId.ipv6addr: %v", err)
		} else if c := canonicalIPv6(u.IPv6Addr); c != u.IPv6Addr {
			add("ueId.ipv6addr %q is not in canonical form (RFC 5952): write %q", u.IPv6Addr, c)
		}
	}
	if u.IPv4Private != "" || u.IPv4PublicPort != 0 {
		switch {
		case d != DialectCAMARAv1:
			add("ueId: a private IPv4 address or public port needs the camara-v1 dialect (v0.8.1 has no place for them)")
		case u.IPv4Addr == "":
			add("ueId: a private IPv4 address or public port needs the public address in ipv4addr")
		}
		if u.IPv4Private != "" {
			if a, err := netip.ParseAddr(u.IPv4Private); err != nil || !a.Is4() {
				add("ueId.ipv4private %q is not a single IPv4 address", u.IPv4Private)
			}
		}
		if u.IPv4PublicPort < 0 || u.IPv4PublicPort > 65535 {
			add("ueId.ipv4publicPort %d is outside 1..65535", u.IPv4PublicPort)
		}
	}
	if r.AsID == (AsID{}) {
		add("asId needs at least one of ipv4addr, ipv6addr")
	}
	if r.AsID.IPv4Addr != "" {
		if _, err := parseAddrOrPrefix(r.AsID.IPv4Addr, true); err != nil {
			add("asId.ipv4addr: %v", err)
		}
	}
	if r.AsID.IPv6Addr != "" {
		if _, err := parseAddrOrPrefix(r.AsID.IPv6Addr, false); err != nil {
			add("asId.ipv6addr: %v", err)
		} else if c := canonicalIPv6(r.AsID.IPv6Addr); c != r.AsID.IPv6Addr {
			add("asId.ipv6addr %q is not in canonical form (RFC 5952): write %q", r.AsID.IPv6Addr, c)
		}
	}
	for _, ps := range []struct {
		name string
		spec *PortsSpec
	}{{"uePorts", r.UePorts}, {"asPorts", r.AsPorts}} {
		if err := ps.spec.validate(); err != nil {
			add("%s: %v", ps.name, err)
		}
	}
	switch {
	case r.QoS == "":
		add("qos is required")
	case d == DialectCAMARAv1:
		if !profileNamePattern.MatchString(string(r.QoS)) {
			add("qos %q is not a profile name (^[a-zA-Z0-9_.-]{3,256}$)", r.QoS)
		}
	case r.QoS != QoSE && r.QoS != QoSS && r.QoS != QoSM && r.QoS != QoSL:
		add("qos %q is not one of QOS_E, QOS_S, QOS_M, QOS_L", r.QoS)
	}
	if r.Duration < 0 || r.Duration > MaxDuration {
		add("duration %d is outside 1..%d seconds", r.Duration, MaxDuration)
	}
	if r.NotificationURL != "" {
		nu, err := url.Parse(r.NotificationURL)
		switch {
		case err != nil || nu.Host == "":
			add("notificationUrl %q is not an absolute URL", r.NotificationURL)
		case nu.Scheme != "https" && (d == DialectCAMARAv1 || nu.Scheme != "http"):
			add("notificationUrl %q: scheme must be https (or http outside CAMARA v1)", r.NotificationURL)
		}
	}
	if r.NotificationAuthToken != "" && r.NotificationURL == "" {
		add("notificationAuthToken is set without notificationUrl")
	}
	if !d.valid() {
		add("unknown dialect %q", d)
	}
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
}

func (ps *PortsSpec) validate() error {
	if ps == nil {
		return nil
	}
	if len(ps.Ranges) == 0 && len(ps.Ports) == 0 {
		return fmt.Errorf("needs ranges or ports (leave it out to mean all ports)")
	}
	for _, r := range ps.Ranges {
		if !validPort(r.From) || !validPort(r.To) || r.From > r.To {
			return fmt.Errorf("range %d-%d is not within 0..65535 with from <= to", r.From, r.To)
		}
	}
	for _, p := range ps.Ports {
		if !validPort(p) {
			return fmt.Errorf("port %d is outside 0..65535", p)
		}
	}
	return nil
}

func validPort(p int) bool { return p >= 0 && p <= 65535 }

// canonicalIPv6 is the RFC 5952 form of an IPv6 address or address/mask
// (lower case, longest zero run as ::, no leading zeros), or s itself when
// it does not parse. Operators compare addresses as strings, so a session
// asked for as 2001:DB8::0001 may not be found as 2001:db8::1.
func canonicalIPv6(s string) string {
	addr, bits, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() {
		return s
	}
	if hasBits {
		n, err := strconv.Atoi(bits)
		if err != nil {
			return s
		}
		return a.String() + "/" + strconv.Itoa(n)
	}
	return a.String()
}

// CanonicalIPv6 is exported for callers that canonicalise addresses
// before Validate (the config loader): RFC 5952 text of an IPv6 address
// or address/mask, or s unchanged when it is not one.
func CanonicalIPv6(s string) string { return canonicalIPv6(s) }

// parseAddrOrPrefix accepts "a.b.c.d" or "a.b.c.d/n" (likewise IPv6) and
// returns it as a prefix (/32 or /128 for a bare address).
func parseAddrOrPrefix(s string, v4 bool) (netip.Prefix, error) {
	family := "IPv6"
	if v4 {
		family = "IPv4"
	}
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return pfx, fmt.Errorf("%q is not an %s address or address/mask", s, family)
		}
		pfx = p
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return pfx, fmt.Errorf("%q is not an %s address or address/mask", s, family)
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if a := pfx.Addr(); a.Is4() != v4 || a.Zone() != "" {
		return pfx, fmt.Errorf("%q is not an %s address", s, family)
	}
	return pfx, nil
}
