package qodclient

// The camara-v1 dialect against the simulator speaking CAMARA
// QualityOnDemand v1.1.0 over real HTTP on loopback.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

func v1Request() CreateSessionRequest {
	return CreateSessionRequest{
		UeID: UeID{MSISDN: "+4915112345678"}, AsID: AsID{IPv4Addr: "203.0.113.10"},
		QoS: QoSE, Duration: 600,
	}
}

func TestSimV1SessionLife(t *testing.T) {
	sim := startSim(t, qodsim.Options{Dialect: qodsim.DialectCAMARAv1, Profiles: []qodsim.Profile{
		{Name: "QOS_E", Status: qodsim.ProfileActive, MaxDuration: time.Hour, PacketDelayBudget: 20 * time.Millisecond, TargetMinDownstreamRate: 5_000_000},
	}})
	var logs bytes.Buffer
	c, _ := newTestClient(t, Config{BaseURL: sim.URL, Dialect: DialectCAMARAv1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()

	created, err := c.Create(WithTransactionID(ctx, "corr-create-1"), v1Request())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.QoSStatus != "REQUESTED" || !created.StartedAt.IsZero() || created.Duration != 600 {
		t.Fatalf("created %+v, want REQUESTED without times", created)
	}
	got, err := c.Get(ctx, created.ID)
	if err != nil || got.QoSStatus != "AVAILABLE" || got.ExpiresAt.Sub(got.StartedAt) != 600*time.Second {
		t.Fatalf("Get: %+v, %v; want AVAILABLE for 600s", got, err)
	}
	ext, err := c.Extend(ctx, created.ID, 600)
	if err != nil || ext.Duration != 1200 || ext.ExpiresAt.Sub(ext.StartedAt) != 1200*time.Second {
		t.Fatalf("Extend: %+v, %v; want 1200s", ext, err)
	}
	// Capped at the profile's maxDuration.
	if ext, err = c.Extend(ctx, created.ID, 86400); err != nil || ext.Duration != 3600 {
		t.Fatalf("Extend past maxDuration: %+v, %v; want 3600s", ext, err)
	}
	list, err := c.RetrieveSessions(ctx, UeID{MSISDN: "+4915112345678"})
	if err != nil || len(list) != 1 || list[0].ID != created.ID || list[0].QoSStatus != "AVAILABLE" {
		t.Fatalf("RetrieveSessions: %+v, %v", list, err)
	}
	if list, err = c.RetrieveSessions(ctx, UeID{MSISDN: "+4915100000001"}); err != nil || len(list) != 0 {
		t.Fatalf("RetrieveSessions of another device: %+v, %v; want none", list, err)
	}
	p, err := c.QoSProfile(ctx, "QOS_E")
	if err != nil || p.Status != ProfileActive || p.MaxDuration != time.Hour || p.PacketDelayBudget != 20*time.Millisecond || p.TargetMinDownstreamRate != 5_000_000 {
		t.Fatalf("QoSProfile: %+v, %v", p, err)
	}
	if _, err := c.QoSProfile(ctx, "QOS_NOPE"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown profile: %v, want ErrNotFound", err)
	}
	// A second session for the device: 409 CONFLICT.
	if _, err := c.Create(ctx, v1Request()); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	if err := c.Delete(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "x_correlator=corr-create-1") {
		t.Errorf("log lines lack the x-correlator:\n%s", logs.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(line, "x_correlator=") {
			t.Errorf("log line without x_correlator: %s", line)
		}
	}
	for _, r := range sim.Requests() {
		if r.Header.Get("x-correlator") == "" {
			t.Errorf("%s %s sent without x-correlator", r.Method, r.Path)
		}
	}
}

func TestSimV1ErrorCodesClassified(t *testing.T) {
	sim := startSim(t, qodsim.Options{Dialect: qodsim.DialectCAMARAv1, Profiles: []qodsim.Profile{
		{Name: "QOS_E", Status: qodsim.ProfileActive, MaxDuration: time.Hour},
		{Name: "QOS_OLD", Status: qodsim.ProfileInactive},
	}})
	c, _ := newTestClient(t, Config{BaseURL: sim.URL, Dialect: DialectCAMARAv1})
	ctx := context.Background()

	long := v1Request()
	long.Duration = 7200
	if _, err := c.Create(ctx, long); !errors.Is(err, ErrDurationOutOfRange) || !errors.Is(err, ErrInvalid) {
		t.Errorf("too long: %v, want ErrDurationOutOfRange and ErrInvalid", err)
	}
	old := v1Request()
	old.QoS = "QOS_OLD"
	if _, err := c.Create(ctx, old); !errors.Is(err, ErrProfileNotApplicable) {
		t.Errorf("inactive profile: %v, want ErrProfileNotApplicable", err)
	}
	s, err := c.Create(ctx, v1Request())
	if err != nil {
		t.Fatal(err)
	}
	sim.SetFaults(qodsim.Faults{RefuseExtend: true})
	if _, err := c.Extend(ctx, s.ID, 60); !errors.Is(err, ErrExtensionNotAllowed) || !errors.Is(err, ErrConflict) {
		t.Errorf("refused extend: %v, want ErrExtensionNotAllowed", err)
	}
	before := len(sim.Requests())
	sim.SetFaults(qodsim.Faults{FailNext: 5, ErrorStatus: 429, ErrorCode: "QUOTA_EXCEEDED"})
	if _, err := c.Get(ctx, s.ID); !errors.Is(err, ErrQuotaExceeded) || !errors.Is(err, ErrRateLimited) {
		t.Errorf("quota: %v, want ErrQuotaExceeded", err)
	}
	if n := len(sim.Requests()) - before; n != 1 {
		t.Errorf("QUOTA_EXCEEDED was sent %d times; an exhausted quota is not retried", n)
	}
	sim.SetFaults(qodsim.Faults{})

	// networkAccessIdentifier is left out unless asked for.
	nai := v1Request()
	nai.UeID = UeID{ExternalID: "cam@example.com"}
	if _, err := c.Create(ctx, nai); !errors.Is(err, ErrInvalid) {
		t.Errorf("NAI-only device: %v, want ErrInvalid before sending", err)
	}
	c2, _ := newTestClient(t, Config{BaseURL: sim.URL, Dialect: DialectCAMARAv1, SendNetworkAccessIdentifier: true})
	if _, err := c2.Create(ctx, nai); !errors.Is(err, ErrDeviceIdentifier) {
		t.Errorf("NAI sent: %v, want the operator's UNSUPPORTED_IDENTIFIER", err)
	}
	both := v1Request()
	both.UeID = UeID{ExternalID: "cam@example.com", IPv4Addr: "198.51.100.9", IPv4Private: "10.1.2.3"}
	if _, err := c.Create(ctx, both); err != nil {
		t.Fatalf("device behind NAT with an NAI left out: %v", err)
	}
	last := sim.Requests()[len(sim.Requests())-1]
	if bytes.Contains(last.Body, []byte("networkAccessIdentifier")) || !bytes.Contains(last.Body, []byte(`"privateAddress":"10.1.2.3"`)) {
		t.Errorf("create body %s", last.Body)
	}
	port := v1Request()
	port.UeID = UeID{IPv4Addr: "198.51.100.9", IPv4PublicPort: 40000}
	if _, err := c.Create(ctx, port); err != nil {
		t.Fatalf("device by public address and port: %v", err)
	}
	if list, err := c.RetrieveSessions(ctx, port.UeID); err != nil || len(list) != 1 || list[0].UeID.IPv4PublicPort != 40000 {
		t.Fatalf("RetrieveSessions by public port: %+v, %v", list, err)
	}

	dev, _ := newTestClient(t, Config{BaseURL: sim.URL})
	if _, err := dev.Extend(ctx, s.ID, 60); !errors.Is(err, ErrUnsupported) {
		t.Errorf("devedge extend: %v, want ErrUnsupported", err)
	}
}

func TestValidateIPv6Canonical(t *testing.T) {
	r := v1Request()
	r.UeID = UeID{IPv6Addr: "2001:DB8:0:0::0001"}
	err := r.ValidateFor(DialectCAMARAv1)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"2001:db8::1"`) {
		t.Fatalf("non-canonical IPv6: %v, want a refusal naming 2001:db8::1", err)
	}
	r.UeID.IPv6Addr = "2001:db8::1"
	r.AsID = AsID{IPv6Addr: "2001:0DB8::/64"}
	if err := r.ValidateFor(DialectCAMARAv1); err == nil || !strings.Contains(err.Error(), `"2001:db8::/64"`) {
		t.Fatalf("non-canonical prefix: %v", err)
	}
	if got := CanonicalIPv6("2001:0DB8::0:1/64"); got != "2001:db8::1/64" {
		t.Fatalf("CanonicalIPv6 = %q", got)
	}
}
