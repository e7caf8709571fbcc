package daemon

import (
	"fmt"
	"net/netip"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/monitor"
	"github.com/qodwatch/qodwatch/monitor/icmp"
	"github.com/qodwatch/qodwatch/qodclient"
)

// NewClient builds the QoD API client the config describes, reading its
// secrets now (files may be rotated; a reload reads them again).
func NewClient(api config.API) (*qodclient.Client, error) {
	auth, err := newAuth(api.Auth)
	if err != nil {
		return nil, err
	}
	return qodclient.New(qodclient.Config{
		BaseURL:                     api.BaseURL,
		Dialect:                     qodclient.Dialect(api.Dialect),
		Auth:                        auth,
		Timeout:                     api.Timeout,
		Retry:                       qodclient.RetryPolicy{MaxAttempts: api.MaxRetries + 1},
		ProfilesURL:                 api.ProfilesURL,
		SendNetworkAccessIdentifier: api.SendNetworkAccessIdentifier,
	})
}

func newAuth(a config.Auth) (qodclient.Auth, error) {
	switch a.Type {
	case config.AuthNone, "":
		return nil, nil
	case config.AuthBearer:
		tok, err := a.Token()
		if err != nil {
			return nil, fmt.Errorf("api.auth: %w", err)
		}
		return qodclient.NewBearer(tok), nil
	case config.AuthOAuth2:
		secret, err := a.ClientSecret()
		if err != nil {
			return nil, fmt.Errorf("api.auth: %w", err)
		}
		return qodclient.NewOAuth2(qodclient.OAuth2Config{
			TokenURL: a.TokenURL, ClientID: a.ClientID, ClientSecret: secret, Scopes: a.Scopes,
		}), nil
	case config.AuthTAAP:
		secret, err := a.ClientSecret()
		if err != nil {
			return nil, fmt.Errorf("api.auth: %w", err)
		}
		key, err := qodclient.LoadPrivateKeyFile(a.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("api.auth.private_key_file: %w", err)
		}
		return qodclient.NewTAAP(qodclient.TAAPConfig{
			TokenURL: a.TokenURL, ClientID: a.ClientID, ClientSecret: secret, PrivateKey: key,
		})
	}
	return nil, fmt.Errorf("api.auth.type: unknown %q", a.Type)
}

// createRequest is the POST /sessions body for ue.
func createRequest(ue *config.UE, qos string, seconds int, notifyURL, notifyToken string) qodclient.CreateSessionRequest {
	req := qodclient.CreateSessionRequest{
		UeID: qodclient.UeID{
			ExternalID: ue.ExternalID, MSISDN: ue.MSISDN, IPv4Addr: ue.IPv4, IPv6Addr: ue.IPv6,
			IPv4Private: ue.IPv4Private, IPv4PublicPort: ue.IPv4PublicPort,
		},
		AsID:     qodclient.AsID{IPv4Addr: ue.ApplicationServer.IPv4, IPv6Addr: ue.ApplicationServer.IPv6},
		UePorts:  portsSpec(ue.UEPorts),
		AsPorts:  portsSpec(ue.ASPorts),
		QoS:      qodclient.QoSProfile(qos),
		Duration: seconds,
	}
	if notifyURL != "" {
		req.NotificationURL = notifyURL
		req.NotificationAuthToken = notifyToken
	}
	return req
}

func portsSpec(p *config.Ports) *qodclient.PortsSpec {
	if p == nil || p.Empty() {
		return nil
	}
	s := &qodclient.PortsSpec{Ports: p.Ports}
	for _, r := range p.Ranges {
		s.Ranges = append(s.Ranges, qodclient.PortRange{From: r.From, To: r.To})
	}
	return s
}

// monitorUEs maps the resolved config onto what the monitor runs.
func monitorUEs(cfg *config.Config) ([]monitor.UE, error) {
	out := make([]monitor.UE, 0, len(cfg.UEs))
	for i := range cfg.UEs {
		ue := &cfg.UEs[i]
		m := monitor.UE{Name: ue.Name, Addr: ue.Target, Labels: ue.Labels}
		for _, p := range ue.Probes {
			probe, err := monitorProbe(p)
			if err != nil {
				return nil, fmt.Errorf("ue %q: %w", ue.Name, err)
			}
			m.Probes = append(m.Probes, probe)
		}
		out = append(out, m)
	}
	return out, nil
}

func monitorProbe(p config.Probe) (monitor.Probe, error) {
	switch p.Kind {
	case config.ProbeICMP:
		var src netip.Addr
		if p.Source != "" {
			a, err := netip.ParseAddr(p.Source)
			if err != nil {
				return nil, fmt.Errorf("icmp source: %w", err)
			}
			src = a
		}
		return monitor.ICMP{Interval: p.Interval, Packets: p.Packets, Spacing: p.Spacing, Timeout: p.Timeout, Source: src, TOS: p.TOS}, nil
	case config.ProbeTCP:
		return monitor.TCP{Address: p.Address, Interval: p.Interval, Timeout: p.Timeout, TOS: p.TOS}, nil
	case config.ProbeHTTP:
		return monitor.HTTP{URL: p.URL, Interval: p.Interval, Timeout: p.Timeout, TOS: p.TOS}, nil
	case config.ProbeThroughput:
		return monitor.Throughput{URL: p.URL, Interval: p.Interval, MaxBytes: p.MaxBytes, MaxTime: p.MaxTime, Upload: p.Upload, TOS: p.TOS}, nil
	case config.ProbePrometheus:
		return monitor.Prometheus{Name: p.Metric, ServerURL: p.Server, Query: p.Query, Interval: p.Interval, Timeout: p.Timeout}, nil
	}
	return nil, fmt.Errorf("unknown probe kind %q", p.Kind)
}

func hasICMP(cfg *config.Config) bool {
	for _, ue := range cfg.UEs {
		for _, p := range ue.Probes {
			if p.Kind == config.ProbeICMP {
				return true
			}
		}
	}
	return false
}

func icmpTargets(ts []monitor.ICMPTarget) []icmp.Target {
	out := make([]icmp.Target, len(ts))
	for i, t := range ts {
		out[i] = icmp.Target(t)
	}
	return out
}

// CreateRequest is the POST /sessions body for a session made by hand
// (`qodwatch sessions create`): no notification URL, the daemon polls it.
func CreateRequest(ue *config.UE, qos string, seconds int) qodclient.CreateSessionRequest {
	return createRequest(ue, qos, seconds, "", "")
}
