package qodclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// This file maps the Go types to the wire forms of the dialects. Encoding
// follows the configured dialect; decoding accepts the v0.8.1/DevEdge and the
// CAMARA v1 forms alike (servers drift, and a session must never be lost to a
// field spelled the other way).

// encodeCreate renders the POST /sessions body for a dialect.
func encodeCreate(d Dialect, r CreateSessionRequest, now time.Time) ([]byte, error) {
	if d != DialectCAMARAv1 {
		return json.Marshal(r)
	}
	return json.Marshal(toV1(r, now))
}

type v1DeviceIPv4 struct {
	PublicAddress  string `json:"publicAddress,omitempty"`
	PrivateAddress string `json:"privateAddress,omitempty"`
	PublicPort     *int   `json:"publicPort,omitempty"`
}

type v1Device struct {
	PhoneNumber             string        `json:"phoneNumber,omitempty"`
	NetworkAccessIdentifier string        `json:"networkAccessIdentifier,omitempty"`
	IPv4Address             *v1DeviceIPv4 `json:"ipv4Address,omitempty"`
	IPv6Address             string        `json:"ipv6Address,omitempty"`
}

type v1AppServer struct {
	IPv4Address string `json:"ipv4Address,omitempty"`
	IPv6Address string `json:"ipv6Address,omitempty"`
}

type v1SinkCredential struct {
	CredentialType        string `json:"credentialType"`
	AccessToken           string `json:"accessToken,omitempty"`
	AccessTokenExpiresUtc string `json:"accessTokenExpiresUtc,omitempty"`
	AccessTokenType       string `json:"accessTokenType,omitempty"`
}

type v1CreateSession struct {
	Device                 *v1Device         `json:"device,omitempty"`
	ApplicationServer      v1AppServer       `json:"applicationServer"`
	DevicePorts            *PortsSpec        `json:"devicePorts,omitempty"`
	ApplicationServerPorts *PortsSpec        `json:"applicationServerPorts,omitempty"`
	QoSProfile             string            `json:"qosProfile"`
	Duration               int               `json:"duration"`
	Sink                   string            `json:"sink,omitempty"`
	SinkCredential         *v1SinkCredential `json:"sinkCredential,omitempty"`
}

// sinkTokenGrace keeps a v1 sink token valid a while after the session ends,
// so the final "session ended" notification is still accepted.
const sinkTokenGrace = time.Hour

func toV1(r CreateSessionRequest, now time.Time) v1CreateSession {
	dur := r.Duration
	if dur == 0 {
		dur = MaxDuration // v1 requires duration; v0.8.1's default
	}
	out := v1CreateSession{
		ApplicationServer:      v1AppServer{IPv4Address: r.AsID.IPv4Addr, IPv6Address: r.AsID.IPv6Addr},
		DevicePorts:            r.UePorts,
		ApplicationServerPorts: r.AsPorts,
		QoSProfile:             string(r.QoS),
		Duration:               dur,
		Sink:                   r.NotificationURL,
	}
	dev := v1Device{NetworkAccessIdentifier: r.UeID.ExternalID, IPv6Address: stripMask(r.UeID.IPv6Addr)}
	if m := r.UeID.MSISDN; m != "" {
		dev.PhoneNumber = "+" + strings.TrimPrefix(m, "+") // v1 wants E.164 with '+'
	}
	if a := stripMask(r.UeID.IPv4Addr); a != "" {
		ip := &v1DeviceIPv4{PublicAddress: a, PrivateAddress: r.UeID.IPv4Private}
		if p := r.UeID.IPv4PublicPort; p != 0 {
			ip.PublicPort = &p
		}
		if ip.PrivateAddress == "" && ip.PublicPort == nil {
			// Without NAT the public and private address are the same,
			// which is what a v0.8.1 ipv4addr means.
			ip.PrivateAddress = a
		}
		dev.IPv4Address = ip
	}
	if dev != (v1Device{}) {
		out.Device = &dev
	}
	if r.NotificationAuthToken != "" {
		out.SinkCredential = &v1SinkCredential{
			CredentialType:        "ACCESSTOKEN",
			AccessToken:           r.NotificationAuthToken,
			AccessTokenExpiresUtc: now.Add(time.Duration(dur)*time.Second + sinkTokenGrace).UTC().Format(time.RFC3339),
			AccessTokenType:       "bearer",
		}
	}
	return out
}

func stripMask(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

// wireSession is the union of the v0.8.1 and v1 SessionInfo shapes.
type wireSession struct {
	ID        string   `json:"id"`
	SessionID string   `json:"sessionId"`
	StartedAt wireTime `json:"startedAt"`
	ExpiresAt wireTime `json:"expiresAt"`
	Duration  wireInt  `json:"duration"`

	UeID    *UeID      `json:"ueId"`
	AsID    *AsID      `json:"asId"`
	UePorts *PortsSpec `json:"uePorts"`
	AsPorts *PortsSpec `json:"asPorts"`
	QoS     string     `json:"qos"`

	NotificationURL       string    `json:"notificationUrl"`
	NotificationAuthToken string    `json:"notificationAuthToken"`
	Messages              []Message `json:"messages"`

	Device                 *wireV1Device     `json:"device"`
	ApplicationServer      *v1AppServer      `json:"applicationServer"`
	DevicePorts            *PortsSpec        `json:"devicePorts"`
	ApplicationServerPorts *PortsSpec        `json:"applicationServerPorts"`
	QoSProfile             string            `json:"qosProfile"`
	Sink                   string            `json:"sink"`
	SinkCredential         *v1SinkCredential `json:"sinkCredential"`
	QoSStatus              string            `json:"qosStatus"`
	StatusInfo             string            `json:"statusInfo"`

	// Written by MarshalJSON: the v1 NAT details of ueId, which v0.8.1
	// has no place for.
	UeIPv4Private    string `json:"ueIpv4Private"`
	UeIPv4PublicPort int    `json:"ueIpv4PublicPort"`
}

// wireV1Device tolerates ipv4Address as an object (the spec) or a string.
type wireV1Device struct {
	PhoneNumber             string          `json:"phoneNumber"`
	NetworkAccessIdentifier string          `json:"networkAccessIdentifier"`
	IPv4Address             json.RawMessage `json:"ipv4Address"`
	IPv6Address             string          `json:"ipv6Address"`
}

// UnmarshalJSON decodes a SessionInfo in the v0.8.1/DevEdge or CAMARA v1
// form; times may be Unix seconds (or milliseconds) or RFC 3339 strings.
func (s *SessionInfo) UnmarshalJSON(data []byte) error {
	var w wireSession
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	out := SessionInfo{
		ID:                    firstNonEmpty(w.ID, w.SessionID),
		StartedAt:             w.StartedAt.t,
		ExpiresAt:             w.ExpiresAt.t,
		Duration:              int(w.Duration),
		UePorts:               firstPorts(w.UePorts, w.DevicePorts),
		AsPorts:               firstPorts(w.AsPorts, w.ApplicationServerPorts),
		QoS:                   QoSProfile(firstNonEmpty(w.QoS, w.QoSProfile)),
		NotificationURL:       firstNonEmpty(w.NotificationURL, w.Sink),
		NotificationAuthToken: w.NotificationAuthToken,
		Messages:              w.Messages,
		QoSStatus:             w.QoSStatus,
		StatusInfo:            w.StatusInfo,
	}
	if w.UeID != nil {
		out.UeID = *w.UeID
		out.UeID.IPv4Private, out.UeID.IPv4PublicPort = w.UeIPv4Private, w.UeIPv4PublicPort
	} else if d := w.Device; d != nil {
		out.UeID = UeID{ExternalID: d.NetworkAccessIdentifier, MSISDN: d.PhoneNumber, IPv6Addr: d.IPv6Address}
		out.UeID.IPv4Addr, out.UeID.IPv4Private, out.UeID.IPv4PublicPort = deviceIPv4(d.IPv4Address)
	}
	if w.AsID != nil {
		out.AsID = *w.AsID
	} else if a := w.ApplicationServer; a != nil {
		out.AsID = AsID{IPv4Addr: a.IPv4Address, IPv6Addr: a.IPv6Address}
	}
	if out.NotificationAuthToken == "" && w.SinkCredential != nil {
		out.NotificationAuthToken = w.SinkCredential.AccessToken
	}
	*s = out
	return nil
}

// deviceIPv4 reads a v1 device address as (public, private, public port);
// a private address equal to the public one means no NAT and is left out,
// so the device compares equal to one named by a plain address.
func deviceIPv4(raw json.RawMessage) (public, private string, port int) {
	if len(raw) == 0 {
		return "", "", 0
	}
	var obj v1DeviceIPv4
	if json.Unmarshal(raw, &obj) == nil {
		public = firstNonEmpty(obj.PublicAddress, obj.PrivateAddress)
		if obj.PrivateAddress != public {
			private = obj.PrivateAddress
		}
		if obj.PublicPort != nil {
			port = *obj.PublicPort
		}
		return public, private, port
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, "", 0
	}
	return "", "", 0
}

// MarshalJSON writes the v0.8.1/DevEdge form (times as Unix seconds), so a
// SessionInfo can be stored and read back.
func (s SessionInfo) MarshalJSON() ([]byte, error) {
	type v0 struct {
		ID                    string     `json:"id"`
		StartedAt             *int64     `json:"startedAt,omitempty"`
		ExpiresAt             *int64     `json:"expiresAt,omitempty"`
		Duration              int        `json:"duration"`
		UeID                  UeID       `json:"ueId"`
		AsID                  AsID       `json:"asId"`
		UePorts               *PortsSpec `json:"uePorts,omitempty"`
		AsPorts               *PortsSpec `json:"asPorts,omitempty"`
		QoS                   QoSProfile `json:"qos"`
		NotificationURL       string     `json:"notificationUrl,omitempty"`
		NotificationAuthToken string     `json:"notificationAuthToken,omitempty"`
		Messages              []Message  `json:"messages,omitempty"`
		QoSStatus             string     `json:"qosStatus,omitempty"`
		StatusInfo            string     `json:"statusInfo,omitempty"`
		UeIPv4Private         string     `json:"ueIpv4Private,omitempty"`
		UeIPv4PublicPort      int        `json:"ueIpv4PublicPort,omitempty"`
	}
	unix := func(t time.Time) *int64 {
		if t.IsZero() {
			return nil
		}
		u := t.Unix()
		return &u
	}
	return json.Marshal(v0{
		ID: s.ID, StartedAt: unix(s.StartedAt), ExpiresAt: unix(s.ExpiresAt), Duration: s.Duration,
		UeID: s.UeID, AsID: s.AsID, UePorts: s.UePorts, AsPorts: s.AsPorts, QoS: s.QoS,
		NotificationURL: s.NotificationURL, NotificationAuthToken: s.NotificationAuthToken,
		Messages: s.Messages, QoSStatus: s.QoSStatus, StatusInfo: s.StatusInfo,
		UeIPv4Private: s.UeID.IPv4Private, UeIPv4PublicPort: s.UeID.IPv4PublicPort,
	})
}

// decodeSessionInfo parses a success body and checks the one thing a caller
// cannot do without: the session id.
func decodeSessionInfo(body []byte) (*SessionInfo, error) {
	var s SessionInfo
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, err
	}
	if s.ID == "" {
		return nil, errors.New("session has no id")
	}
	return &s, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func firstPorts(a, b *PortsSpec) *PortsSpec {
	if a != nil {
		return a
	}
	return b
}

// Unix times from 1e12 on are read as milliseconds: as seconds they would be
// past the year 33000, and some gateways send Java-style milliseconds.
const (
	msThreshold = 1e12
	maxUnixMs   = 1e15
)

// wireTime decodes a time given as Unix seconds (number or digit string),
// Unix milliseconds, or an RFC 3339 string. null or "" is the zero time.
// Times before 1970 are rejected: no session started then.
type wireTime struct{ t time.Time }

func (w *wireTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		w.t = time.Time{}
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			w.t = time.Time{}
			return nil
		}
		if s[0] >= '0' && s[0] <= '9' && !strings.ContainsAny(s, "-:T") {
			return w.fromNumber(s)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("time %q is neither Unix seconds nor RFC 3339", truncate(s, 64))
		}
		if t.Unix() < 0 {
			return fmt.Errorf("time %q is before 1970", truncate(s, 64))
		}
		w.t = t
		return nil
	}
	if b[0] == '-' || (b[0] >= '0' && b[0] <= '9') {
		return w.fromNumber(string(b))
	}
	return fmt.Errorf("time must be a number or a string, got %s", truncate(string(b), 32))
}

func (w *wireTime) fromNumber(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("time %q is not a number", truncate(s, 64))
	}
	if f < 0 || f >= maxUnixMs {
		return fmt.Errorf("time %s is out of range", truncate(s, 64))
	}
	if f >= msThreshold {
		w.t = time.UnixMilli(int64(f))
		return nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		w.t = time.Unix(i, 0)
		return nil
	}
	sec, frac := math.Modf(f)
	w.t = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// wireInt decodes an integer sent as a number (possibly "3600.0") or a
// digit string.
type wireInt int

func (w *wireInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*w = 0
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return fmt.Errorf("%q is not a whole number of seconds", truncate(s, 32))
	}
	*w = wireInt(f)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
