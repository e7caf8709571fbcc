package qodsim

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"
)

// Profile is a QoS profile as CAMARA QoS Profiles v1.1.0 describes it, in
// Go units. Zero durations and rates are left out of the answer.
type Profile struct {
	Name        string
	Description string
	Status      string // ACTIVE, INACTIVE or DEPRECATED
	MinDuration time.Duration
	MaxDuration time.Duration // caps create and extend; 0: 86400s
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

// DefaultProfiles are the four profile names v0.8.1 knew, ACTIVE, up to a
// day long, with plausible promises.
func DefaultProfiles() []Profile {
	day := 24 * time.Hour
	return []Profile{
		{Name: "QOS_E", Description: "low latency", Status: ProfileActive, MinDuration: time.Second, MaxDuration: day,
			PacketDelayBudget: 20 * time.Millisecond, Jitter: 10 * time.Millisecond, PacketErrorLossRate: 3},
		{Name: "QOS_S", Description: "throughput S", Status: ProfileActive, MinDuration: time.Second, MaxDuration: day,
			PacketDelayBudget: 100 * time.Millisecond, TargetMinDownstreamRate: 2_000_000, TargetMinUpstreamRate: 500_000},
		{Name: "QOS_M", Description: "throughput M", Status: ProfileActive, MinDuration: time.Second, MaxDuration: day,
			PacketDelayBudget: 100 * time.Millisecond, TargetMinDownstreamRate: 10_000_000, TargetMinUpstreamRate: 2_000_000},
		{Name: "QOS_L", Description: "throughput L", Status: ProfileActive, MinDuration: time.Second, MaxDuration: day,
			PacketDelayBudget: 100 * time.Millisecond, TargetMinDownstreamRate: 25_000_000, TargetMinUpstreamRate: 5_000_000},
	}
}

var profileName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,256}$`)

func (p Profile) validate() error {
	switch {
	case !profileName.MatchString(p.Name):
		return fmt.Errorf("profile name %q does not match ^[a-zA-Z0-9_.-]{3,256}$", p.Name)
	case p.Status != ProfileActive && p.Status != ProfileInactive && p.Status != ProfileDeprecated:
		return fmt.Errorf("profile %s: status %q is not ACTIVE, INACTIVE or DEPRECATED", p.Name, p.Status)
	case p.MinDuration < 0 || p.MaxDuration < 0 || (p.MaxDuration > 0 && p.MinDuration > p.MaxDuration):
		return fmt.Errorf("profile %s: durations must be positive with min <= max", p.Name)
	}
	return nil
}

// maxSeconds is the longest session the profile grants.
func (p Profile) maxSeconds() int {
	if p.MaxDuration <= 0 {
		return DefaultSessionDuration
	}
	return int(p.MaxDuration / time.Second)
}

func (p Profile) minSeconds() int {
	return max(1, int((p.MinDuration+time.Second-1)/time.Second))
}

// wireDuration is QoS Profiles' Duration {value, unit}.
type wireDuration struct {
	Value int64  `json:"value"`
	Unit  string `json:"unit"`
}

func durationOf(d time.Duration) *wireDuration {
	switch {
	case d <= 0:
		return nil
	case d%time.Second == 0:
		return &wireDuration{Value: int64(d / time.Second), Unit: "Seconds"}
	case d%time.Millisecond == 0:
		return &wireDuration{Value: int64(d / time.Millisecond), Unit: "Milliseconds"}
	}
	return &wireDuration{Value: int64(d / time.Microsecond), Unit: "Microseconds"}
}

// wireRate is QoS Profiles' Rate {value 0..1024, unit}.
type wireRate struct {
	Value int64  `json:"value"`
	Unit  string `json:"unit"`
}

// rateOf picks the smallest unit whose value fits 0..1024 (rounding down).
func rateOf(bps int64) *wireRate {
	if bps <= 0 {
		return nil
	}
	v := bps
	for _, unit := range []string{"bps", "kbps", "Mbps", "Gbps", "Tbps"} {
		if v <= 1024 {
			return &wireRate{Value: v, Unit: unit}
		}
		v /= 1000
	}
	return &wireRate{Value: min(v, 1024), Unit: "Tbps"}
}

// wireProfile is QosProfile.
type wireProfile struct {
	Name                    string        `json:"name"`
	Description             string        `json:"description,omitempty"`
	Status                  string        `json:"status"`
	MinDuration             *wireDuration `json:"minDuration,omitempty"`
	MaxDuration             *wireDuration `json:"maxDuration,omitempty"`
	PacketDelayBudget       *wireDuration `json:"packetDelayBudget,omitempty"`
	Jitter                  *wireDuration `json:"jitter,omitempty"`
	PacketErrorLossRate     int           `json:"packetErrorLossRate,omitempty"`
	TargetMinDownstreamRate *wireRate     `json:"targetMinDownstreamRate,omitempty"`
	TargetMinUpstreamRate   *wireRate     `json:"targetMinUpstreamRate,omitempty"`
}

func (p Profile) wire() wireProfile {
	return wireProfile{
		Name: p.Name, Description: p.Description, Status: p.Status,
		MinDuration: durationOf(p.MinDuration), MaxDuration: durationOf(time.Duration(p.maxSeconds()) * time.Second),
		PacketDelayBudget: durationOf(p.PacketDelayBudget), Jitter: durationOf(p.Jitter),
		PacketErrorLossRate:     p.PacketErrorLossRate,
		TargetMinDownstreamRate: rateOf(p.TargetMinDownstreamRate), TargetMinUpstreamRate: rateOf(p.TargetMinUpstreamRate),
	}
}

// profile returns the offered profile called name.
func (s *Simulator) profile(name string) (Profile, bool) {
	for _, p := range s.opts.Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// SetProfiles replaces the offered QoS profiles (CAMARA v1), as an
// operator may retire one while clients run.
func (s *Simulator) SetProfiles(ps []Profile) error {
	for _, p := range ps {
		if err := p.validate(); err != nil {
			return err
		}
	}
	if ps == nil {
		return errors.New("qodsim: SetProfiles needs a list (empty for none)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Profiles = append([]Profile(nil), ps...)
	return nil
}

func (s *Simulator) getProfile(name string) *reply {
	s.mu.Lock()
	p, ok := s.profile(name)
	s.mu.Unlock()
	if !ok {
		return v1Error(http.StatusNotFound, "NOT_FOUND", "The specified resource is not found.")
	}
	return jsonReply(http.StatusOK, p.wire())
}

// retrieveProfilesRequest is QosProfileDeviceRequest; the device filter is
// accepted and ignored (every device may use every profile here).
type retrieveProfilesRequest struct {
	Device *v1Device `json:"device,omitempty"`
	Name   string    `json:"name,omitempty"`
	Status string    `json:"status,omitempty"`
}

func (s *Simulator) retrieveProfiles(body []byte) *reply {
	var req retrieveProfilesRequest
	if rep := decodeStrict(body, &req); rep != nil {
		return rep
	}
	s.mu.Lock()
	out := []wireProfile{}
	for _, p := range s.opts.Profiles {
		if (req.Name == "" || p.Name == req.Name) && (req.Status == "" || p.Status == req.Status) {
			out = append(out, p.wire())
		}
	}
	s.mu.Unlock()
	return jsonReply(http.StatusOK, out)
}
