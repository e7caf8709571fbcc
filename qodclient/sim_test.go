package qodclient

// Integration tests: the client against the simulator over real HTTP on
// loopback.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

func startSim(t *testing.T, opts qodsim.Options) *qodsim.Server {
	t.Helper()
	s := qodsim.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// simRequests returns the API requests the simulator saw (not token calls).
func simRequests(s *qodsim.Server) []qodsim.Request {
	var out []qodsim.Request
	for _, r := range s.Requests() {
		if r.Method != http.MethodPost || r.Path == "/qod/v1/sessions" {
			out = append(out, r)
		}
	}
	return out
}

func simStatuses(s *qodsim.Server) []int {
	var out []int
	for _, r := range simRequests(s) {
		out = append(out, r.Status)
	}
	return out
}

func TestSimEveryOperation(t *testing.T) {
	sim := startSim(t, qodsim.Options{BearerToken: "sim-token"})
	c, _ := newTestClient(t, Config{BaseURL: sim.URL, Auth: NewBearer("sim-token")})
	ctx := context.Background()

	req := validRequest()
	req.AsPorts = &PortsSpec{Ports: []int{443}}
	req.NotificationURL, req.NotificationAuthToken = "http://127.0.0.1:1/cb", "notify-token"
	created, err := c.Create(WithTransactionID(ctx, "intent-1"), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.ID == "" || created.QoS != QoSE || created.Duration != 600 || created.UeID != req.UeID ||
		created.ExpiresAt.Sub(created.StartedAt) != 600*time.Second {
		t.Errorf("created %+v", created)
	}
	got, err := c.Get(ctx, created.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ID != created.ID || !got.ExpiresAt.Equal(created.ExpiresAt) || got.AsPorts == nil || got.AsPorts.Ports[0] != 443 {
		t.Errorf("got %+v", got)
	}
	if err := c.Delete(ctx, created.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = c.Get(ctx, created.ID)
	var api *APIError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &api) || api.Code != "NOT_FOUND" || api.TransactionID == "" {
		t.Errorf("Get after Delete: %v", err)
	}
	if err := c.Delete(ctx, created.ID); err != nil {
		t.Errorf("second Delete (404) should succeed: %v", err)
	}
	reqs := simRequests(sim)
	if want := []int{200, 200, 204, 404, 404}; !slices.Equal(simStatuses(sim), want) {
		t.Errorf("simulator saw statuses %v, want %v", simStatuses(sim), want)
	}
	if reqs[0].TransactionID != "intent-1" || reqs[1].TransactionID == reqs[2].TransactionID || reqs[3].TransactionID != api.TransactionID {
		t.Errorf("transaction ids as seen by the simulator: %v", []string{reqs[0].TransactionID, reqs[1].TransactionID, reqs[2].TransactionID, reqs[3].TransactionID})
	}
	if len(sim.Sessions()) != 0 {
		t.Errorf("sessions left: %v", sim.Sessions())
	}
}

func TestSimConflictForSecondSessionOfUE(t *testing.T) {
	sim := startSim(t, qodsim.Options{})
	c, rec := newTestClient(t, Config{BaseURL: sim.URL})
	if _, err := c.Create(context.Background(), validRequest()); err != nil {
		t.Fatal(err)
	}
	second := validRequest()
	second.UeID = UeID{MSISDN: "15551230007"} // same subscriber, written without '+'
	_, err := c.Create(context.Background(), second)
	var api *APIError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &api) || api.Status != 409 || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("second session: %v", err)
	}
	if sim.Creates() != 1 || len(rec.get()) != 0 || len(simRequests(sim)) != 2 {
		t.Errorf("%d creates, waits %v", sim.Creates(), rec.get())
	}
}

func TestSimNetworkTerminationIsNotFound(t *testing.T) {
	sim := startSim(t, qodsim.Options{})
	c, _ := newTestClient(t, Config{BaseURL: sim.URL})
	s, err := c.Create(context.Background(), validRequest())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Terminate(s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a terminated session: %v", err)
	}
}

func TestSimRetriesHonourRetryAfter(t *testing.T) {
	sim := startSim(t, qodsim.Options{})
	c, rec := newTestClient(t, Config{BaseURL: sim.URL, Retry: RetryPolicy{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, MaxDelay: 5 * time.Second}})
	ctx := context.Background()

	// A create declined with 429 is repeated after Retry-After.
	sim.SetFaults(qodsim.Faults{FailNext: 1, ErrorStatus: 429, RetryAfter: 2 * time.Second})
	s, err := c.Create(ctx, validRequest())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if sim.Creates() != 1 || !slices.Equal(rec.get(), []time.Duration{2 * time.Second}) {
		t.Errorf("%d creates, waits %v", sim.Creates(), rec.get())
	}

	// GET through two 503s with Retry-After.
	sim.SetFaults(qodsim.Faults{FailNext: 2, ErrorStatus: 503, RetryAfter: 1500 * time.Millisecond})
	if _, err := c.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}; !slices.Equal(rec.get(), want) {
		t.Errorf("waits %v, want %v (Retry-After rounded up to whole seconds)", rec.get(), want)
	}

	// DELETE through a 502 (no Retry-After: backoff).
	sim.SetFaults(qodsim.Faults{FailNext: 1, ErrorStatus: 502})
	if err := c.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if d := rec.get(); len(d) != 4 || d[3] > 10*time.Millisecond {
		t.Errorf("waits %v", d)
	}
	want := []int{429, 200, 503, 503, 200, 502, 204}
	if got := simStatuses(sim); !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	// Attempts of one call share the transaction id.
	reqs := simRequests(sim)
	if reqs[0].TransactionID != reqs[1].TransactionID || reqs[2].TransactionID != reqs[4].TransactionID {
		t.Errorf("retries changed the transaction id")
	}
}

func TestSimCreateNotRetriedOnServerError(t *testing.T) {
	sim := startSim(t, qodsim.Options{})
	c, rec := newTestClient(t, Config{BaseURL: sim.URL})
	sim.SetFaults(qodsim.Faults{FailNext: 1, ErrorStatus: 500})
	_, err := c.Create(context.Background(), validRequest())
	if !errors.Is(err, ErrServer) || errors.Is(err, ErrUnknownOutcome) || len(simRequests(sim)) != 1 || len(rec.get()) != 0 {
		t.Errorf("got %v after %d requests", err, len(simRequests(sim)))
	}
}

func TestSimAmbiguousCreate(t *testing.T) {
	sim := startSim(t, qodsim.Options{})
	c, rec := newTestClient(t, Config{BaseURL: sim.URL})
	sim.SetFaults(qodsim.Faults{DropCreateResponse: true})
	_, err := c.Create(context.Background(), validRequest())
	var u *UnknownOutcomeError
	if !errors.As(err, &u) || !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("want an unknown outcome, got %v", err)
	}
	reqs := simRequests(sim)
	if len(reqs) != 1 || reqs[0].Status != 0 || reqs[0].TransactionID != u.TransactionID || len(rec.get()) != 0 {
		t.Errorf("the create must be sent once and carry the error's transaction id: %+v, waits %v", reqs, rec.get())
	}
	if sim.Creates() != 1 || len(sim.Sessions()) != 1 {
		t.Fatalf("the simulator should hold the session: %d", len(sim.Sessions()))
	}
	// Reconciling by trying again finds the session through 409.
	sim.SetFaults(qodsim.Faults{})
	if _, err := c.Create(context.Background(), validRequest()); !errors.Is(err, ErrConflict) {
		t.Errorf("create after an ambiguous one: %v", err)
	}
	if sim.Creates() != 1 {
		t.Errorf("a second session was created")
	}
}

func TestSimSlowCreateIsUnknownOutcome(t *testing.T) {
	sim := startSim(t, qodsim.Options{})
	c, _ := newTestClient(t, Config{BaseURL: sim.URL, Timeout: 150 * time.Millisecond})
	sim.SetFaults(qodsim.Faults{Latency: 10 * time.Second})
	_, err := c.Create(context.Background(), validRequest())
	if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if len(sim.Sessions()) != 1 || sim.Creates() != 1 {
		t.Errorf("the slow create still made %d sessions", len(sim.Sessions()))
	}
}

func simTAAPClient(t *testing.T) (*qodsim.Server, *Client) {
	key := testKey()
	sim := startSim(t, qodsim.Options{TAAP: &qodsim.TAAPOptions{ClientID: "app", ClientSecret: "s3cret", PublicKey: &key.PublicKey}})
	auth, err := NewTAAP(TAAPConfig{TokenURL: sim.TokenURL, ClientID: "app", ClientSecret: "s3cret", PrivateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newTestClient(t, Config{BaseURL: sim.URL, Auth: auth})
	return sim, c
}

func TestSimTAAP(t *testing.T) {
	sim, c := simTAAPClient(t)
	ctx := context.Background()
	s, err := c.Create(ctx, validRequest())
	if err != nil {
		t.Fatalf("Create with TAAP: %v", err)
	}
	if _, err := c.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get with TAAP: %v", err)
	}
	// The network revokes the token: 401, a new token, the call repeated once.
	sim.SetFaults(qodsim.Faults{ExpireTokens: true})
	if _, err := c.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get after token expiry: %v", err)
	}
	sim.SetFaults(qodsim.Faults{ExpireTokens: true})
	if err := c.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete after token expiry: %v", err)
	}
	if n := sim.TokensIssued(); n != 3 {
		t.Errorf("%d tokens issued, want 3", n)
	}
	if want := []int{200, 200, 401, 200, 401, 204}; !slices.Equal(simStatuses(sim), want) {
		t.Errorf("statuses %v, want %v", simStatuses(sim), want)
	}
}

func TestSimTAAPCreateAfterTokenExpiry(t *testing.T) {
	sim, c := simTAAPClient(t)
	if _, err := c.Get(context.Background(), "3fa85f64-5717-4562-b3fc-2c963f66afa6"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("warm-up: %v", err)
	}
	sim.SetFaults(qodsim.Faults{ExpireTokens: true})
	if _, err := c.Create(context.Background(), validRequest()); err != nil {
		t.Fatalf("Create after token expiry: %v", err)
	}
	if sim.Creates() != 1 || !slices.Equal(simStatuses(sim), []int{404, 401, 200}) {
		t.Errorf("%d creates, statuses %v", sim.Creates(), simStatuses(sim))
	}
}

func TestSimTAAPWrongSecretIsUnauthorized(t *testing.T) {
	key := testKey()
	sim := startSim(t, qodsim.Options{TAAP: &qodsim.TAAPOptions{ClientID: "app", ClientSecret: "s3cret", PublicKey: &key.PublicKey}})
	auth, err := NewTAAP(TAAPConfig{TokenURL: sim.TokenURL, ClientID: "app", ClientSecret: "wrong-secret", PrivateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newTestClient(t, Config{BaseURL: sim.URL, Auth: auth})
	_, err = c.Create(context.Background(), validRequest())
	if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnknownOutcome) || sim.Creates() != 0 || len(simRequests(sim)) != 0 {
		t.Errorf("got %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("error leaks the secret: %v", err)
	}
}

func TestSimOAuth2(t *testing.T) {
	sim := startSim(t, qodsim.Options{OAuth2: &qodsim.OAuth2Options{ClientID: "app", ClientSecret: "s3cret"}})
	c, _ := newTestClient(t, Config{BaseURL: sim.URL, Dialect: DialectCAMARAv0,
		Auth: NewOAuth2(OAuth2Config{TokenURL: sim.OAuth2TokenURL, ClientID: "app", ClientSecret: "s3cret"})})
	s, err := c.Create(context.Background(), validRequest())
	if err != nil {
		t.Fatalf("Create with OAuth2: %v", err)
	}
	sim.SetFaults(qodsim.Faults{ExpireTokens: true})
	if err := c.Delete(context.Background(), s.ID); err != nil {
		t.Fatalf("Delete after token expiry: %v", err)
	}
	if want := []int{200, 401, 204}; !slices.Equal(simStatuses(sim), want) {
		t.Errorf("statuses %v, want %v", simStatuses(sim), want)
	}
}
