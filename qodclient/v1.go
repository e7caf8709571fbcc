package qodclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file has the operations only CAMARA QualityOnDemand v1 (and its
// QoS Profiles API) offers: extend, retrieve-sessions and qos-profiles.

// defaultProfilesURL is where the QoS Profiles API usually lives next to
// QualityOnDemand: {apiRoot}/qos-profiles/v1 beside
// {apiRoot}/quality-on-demand/v1.
func defaultProfilesURL(base string) string {
	if root, ok := strings.CutSuffix(base, "/quality-on-demand/v1"); ok {
		return root + "/qos-profiles/v1"
	}
	return base
}

// Dialect is the wire format the client speaks.
func (c *Client) Dialect() Dialect { return c.dialect }

func (c *Client) needV1(op string) error {
	if c.dialect != DialectCAMARAv1 {
		return fmt.Errorf("%s: %w (%s)", op, ErrUnsupported, c.dialect)
	}
	return nil
}

// Extend adds seconds to an AVAILABLE session; the operator caps the
// total at the profile's maxDuration, so the answer's Duration and
// ExpiresAt are what counts. A session not AVAILABLE gets an *APIError
// matching ErrExtensionNotAllowed (409). Like a create, an extend is never
// repeated once it may have reached the server.
func (c *Client) Extend(ctx context.Context, id string, seconds int) (*SessionInfo, error) {
	if err := c.needV1("extend session"); err != nil {
		return nil, err
	}
	if id == "" || seconds < 1 {
		return nil, fmt.Errorf("extend session: %w: need a session id and a positive duration (got %q, %d)", ErrInvalid, id, seconds)
	}
	body, err := json.Marshal(struct {
		D int `json:"requestedAdditionalDuration"`
	}{seconds})
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/sessions/" + url.PathEscape(id) + "/extend", body: body, once: true})
	if err != nil {
		return nil, err
	}
	return c.decodeSession(resp)
}

// RetrieveSessions lists the operator's sessions for a device, in every
// qosStatus (an empty list when none): the way to find a session whose
// create answer was lost, or the one a 409 CONFLICT is about. ue names
// the device as a create would; the networkAccessIdentifier is left out
// unless allowed (SendNetworkAccessIdentifier).
func (c *Client) RetrieveSessions(ctx context.Context, ue UeID) ([]SessionInfo, error) {
	if err := c.needV1("retrieve sessions"); err != nil {
		return nil, err
	}
	if !c.sendNAI {
		ue.ExternalID = ""
	}
	dev := toV1(CreateSessionRequest{UeID: ue}, time.Time{}).Device
	if dev == nil {
		return nil, fmt.Errorf("retrieve sessions: %w: the device has no identifier to send", ErrInvalid)
	}
	body, err := json.Marshal(struct {
		Device *v1Device `json:"device"`
	}{dev})
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/retrieve-sessions", body: body})
	if err != nil {
		return nil, err
	}
	malformed := func(cause error) error {
		return &APIError{Method: resp.method, Path: resp.path, Status: resp.status, TransactionID: resp.txID,
			Err: fmt.Errorf("%w: %v", ErrMalformedResponse, cause)}
	}
	if resp.truncated {
		return nil, malformed(fmt.Errorf("body exceeds %d bytes", maxBody))
	}
	var out []SessionInfo
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return nil, malformed(err)
	}
	for i, s := range out {
		if s.ID == "" {
			return nil, malformed(fmt.Errorf("session %d has no id", i))
		}
	}
	return out, nil
}

// Profile is a QoS profile as the QoS Profiles API v1.1.0 describes it, in
// Go units; zero means the operator did not say.
type Profile struct {
	Name        string
	Description string
	Status      string // ACTIVE, INACTIVE or DEPRECATED
	MinDuration time.Duration
	MaxDuration time.Duration
	// What the network promises while a session is AVAILABLE.
	PacketDelayBudget       time.Duration
	Jitter                  time.Duration
	PacketErrorLossRate     int   // exponent: 3 means 10^-3
	TargetMinDownstreamRate int64 // bit/s
	TargetMinUpstreamRate   int64 // bit/s
}

// Profile statuses.
const (
	ProfileActive     = "ACTIVE"
	ProfileInactive   = "INACTIVE"
	ProfileDeprecated = "DEPRECATED"
)

type wireDuration struct {
	Value int64  `json:"value"`
	Unit  string `json:"unit"`
}

var timeUnits = map[string]time.Duration{
	"Days": 24 * time.Hour, "Hours": time.Hour, "Minutes": time.Minute, "Seconds": time.Second,
	"Milliseconds": time.Millisecond, "Microseconds": time.Microsecond, "Nanoseconds": time.Nanosecond,
}

func (w *wireDuration) duration(field string) (time.Duration, error) {
	if w == nil {
		return 0, nil
	}
	u, ok := timeUnits[w.Unit]
	if !ok || w.Value < 0 || w.Value > int64(1<<62)/int64(u) {
		return 0, fmt.Errorf("%s: %d %q is not a duration", field, w.Value, truncate(w.Unit, 16))
	}
	return time.Duration(w.Value) * u, nil
}

type wireRate struct {
	Value int64  `json:"value"`
	Unit  string `json:"unit"`
}

var rateUnits = map[string]int64{"bps": 1, "kbps": 1e3, "Mbps": 1e6, "Gbps": 1e9, "Tbps": 1e12}

func (w *wireRate) bps(field string) (int64, error) {
	if w == nil {
		return 0, nil
	}
	u, ok := rateUnits[w.Unit]
	if !ok || w.Value < 0 || w.Value > 1<<20 {
		return 0, fmt.Errorf("%s: %d %q is not a rate", field, w.Value, truncate(w.Unit, 16))
	}
	return w.Value * u, nil
}

type wireProfile struct {
	Name                    string        `json:"name"`
	Description             string        `json:"description"`
	Status                  string        `json:"status"`
	MinDuration             *wireDuration `json:"minDuration"`
	MaxDuration             *wireDuration `json:"maxDuration"`
	PacketDelayBudget       *wireDuration `json:"packetDelayBudget"`
	Jitter                  *wireDuration `json:"jitter"`
	PacketErrorLossRate     int           `json:"packetErrorLossRate"`
	TargetMinDownstreamRate *wireRate     `json:"targetMinDownstreamRate"`
	TargetMinUpstreamRate   *wireRate     `json:"targetMinUpstreamRate"`
}

// QoSProfile reads one profile: GET {ProfilesURL}/qos-profiles/{name}. An
// unknown name is an *APIError matching ErrNotFound.
func (c *Client) QoSProfile(ctx context.Context, name string) (*Profile, error) {
	if err := c.needV1("get qos profile"); err != nil {
		return nil, err
	}
	if !profileNamePattern.MatchString(name) {
		return nil, fmt.Errorf("get qos profile: %w: %q is not a profile name", ErrInvalid, name)
	}
	resp, err := c.do(ctx, call{method: http.MethodGet, base: c.profiles, path: "/qos-profiles/" + url.PathEscape(name)})
	if err != nil {
		return nil, err
	}
	malformed := func(cause error) error {
		return &APIError{Method: resp.method, Path: resp.path, Status: resp.status, TransactionID: resp.txID,
			Err: fmt.Errorf("%w: %v", ErrMalformedResponse, cause)}
	}
	var w wireProfile
	if resp.truncated {
		return nil, malformed(fmt.Errorf("body exceeds %d bytes", maxBody))
	}
	if err := json.Unmarshal(resp.body, &w); err != nil {
		return nil, malformed(err)
	}
	if w.Name != name {
		return nil, malformed(fmt.Errorf("asked for profile %q, got %q", name, truncate(w.Name, 64)))
	}
	p := &Profile{Name: w.Name, Description: cleanText(w.Description, maxMessage), Status: w.Status, PacketErrorLossRate: w.PacketErrorLossRate}
	for _, d := range []struct {
		field string
		w     *wireDuration
		to    *time.Duration
	}{{"minDuration", w.MinDuration, &p.MinDuration}, {"maxDuration", w.MaxDuration, &p.MaxDuration},
		{"packetDelayBudget", w.PacketDelayBudget, &p.PacketDelayBudget}, {"jitter", w.Jitter, &p.Jitter}} {
		if *d.to, err = d.w.duration(d.field); err != nil {
			return nil, malformed(err)
		}
	}
	if p.TargetMinDownstreamRate, err = w.TargetMinDownstreamRate.bps("targetMinDownstreamRate"); err != nil {
		return nil, malformed(err)
	}
	if p.TargetMinUpstreamRate, err = w.TargetMinUpstreamRate.bps("targetMinUpstreamRate"); err != nil {
		return nil, malformed(err)
	}
	return p, nil
}
