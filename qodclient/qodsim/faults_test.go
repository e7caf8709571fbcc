package qodsim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestInjectedErrors(t *testing.T) {
	cases := []struct {
		name       string
		faults     Faults
		status     int
		system     string
		retryAfter string
	}{
		{"503 with Retry-After rounded up", Faults{ErrorRate: 1, ErrorStatus: 503, RetryAfter: 1500 * time.Millisecond}, 503, "SERVICE_UNAVAILABLE", "2"},
		{"429 with Retry-After", Faults{ErrorRate: 1, ErrorStatus: 429, RetryAfter: 7 * time.Second}, 429, "TOO_MANY_REQUESTS", "7"},
		{"500 never has Retry-After", Faults{ErrorRate: 1, ErrorStatus: 500, RetryAfter: 7 * time.Second}, 500, "INTERNAL", ""},
		{"403", Faults{ErrorRate: 1, ErrorStatus: 403}, 403, "FORBIDDEN", ""},
		{"default status is 503", Faults{ErrorRate: 1}, 503, "SERVICE_UNAVAILABLE", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Options{})
			srv.SetFaults(tc.faults)
			a := call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), map[string]string{"x-transaction-id": "tx-fault"})
			a.wantError(t, tc.status, tc.system)
			if got := a.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if a.header.Get("x-transaction-id") != "tx-fault" {
				t.Error("injected error does not echo x-transaction-id")
			}
			if srv.Creates() != 0 {
				t.Error("an injected error still created a session")
			}
			srv.SetFaults(Faults{})
			decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), nil))
		})
	}
}

func TestFailNext(t *testing.T) {
	srv := startServer(t, Options{})
	srv.SetFaults(Faults{FailNext: 2, ErrorStatus: 503, RetryAfter: time.Second})
	const id = "0b7cb7a0-8c8a-4a56-9a43-6a0d7d3b1b2e"
	for i := 0; i < 2; i++ {
		call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", nil).wantError(t, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE")
	}
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
}

func TestErrorRateIsAShare(t *testing.T) {
	sim := New(Options{})
	t.Cleanup(sim.Close)
	sim.SetFaults(Faults{ErrorRate: 0.5, ErrorStatus: 500})
	failed := 0
	const n = 400
	for i := 0; i < n; i++ {
		req := httptest.NewRequest(http.MethodGet, DefaultBasePath+"/sessions/0b7cb7a0-8c8a-4a56-9a43-6a0d7d3b1b2e", nil)
		req.Header.Set("x-transaction-id", "tx")
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			failed++
		}
	}
	// Binomial(400, 0.5): 200 ± 10; 120..280 is eight standard deviations.
	if failed < 120 || failed > 280 {
		t.Errorf("%d of %d calls failed at ErrorRate 0.5", failed, n)
	}
}

func TestLatency(t *testing.T) {
	srv := startServer(t, Options{})
	srv.SetFaults(Faults{Latency: 80 * time.Millisecond})
	start := time.Now()
	decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), nil))
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Errorf("answer took %s, want at least the injected 80ms", took)
	}

	// A client that gives up before the answer still leaves the session
	// behind: the work is done before the delay.
	srv.SetFaults(Faults{Latency: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/sessions", strings.NewReader(createBody("4915100000", "")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-transaction-id", "tx-slow")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Wait for the simulator to have seen the request, then give up.
	for srv.Creates() < 2 {
		select {
		case err := <-done:
			t.Fatalf("answer before the injected minute: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("request succeeded despite the cancel")
	}
	if n := len(srv.Sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
	// Close does not wait out the injected minute.
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the injected latency")
	}
}

func TestDropCreateResponse(t *testing.T) {
	srv := startServer(t, Options{})
	srv.SetFaults(Faults{DropCreateResponse: true})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/sessions", strings.NewReader(createBody("4915112345", "")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-transaction-id", "tx-lost")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("client got an answer (%d), want a connection error", resp.StatusCode)
	}
	if srv.Creates() != 1 || len(srv.Sessions()) != 1 || srv.Sessions()[0].UE.MSISDN != "4915112345" {
		t.Fatalf("the session was not created: %d creates, %+v", srv.Creates(), srv.Sessions())
	}
	log := srv.Requests()
	if len(log) != 1 || log[0].Status != 0 || log[0].TransactionID != "tx-lost" {
		t.Errorf("log = %+v, want one dropped request", log)
	}
	// Only creates are dropped; the retry of a lost create meets the live
	// session.
	srv.SetFaults(Faults{})
	call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), nil).wantError(t, http.StatusConflict, "CONFLICT")
	srv.SetFaults(Faults{DropCreateResponse: true})
	id := srv.Sessions()[0].ID
	decodeInfo(t, call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", nil))
}

func TestExpireTokensWithStaticBearer(t *testing.T) {
	srv := startServer(t, Options{BearerToken: "static-tok"})
	const id = "0b7cb7a0-8c8a-4a56-9a43-6a0d7d3b1b2e"
	auth := map[string]string{"Authorization": "Bearer static-tok"}
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", auth).wantError(t, http.StatusNotFound, "NOT_FOUND")
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", nil).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", map[string]string{"Authorization": "Bearer wrong"}).
		wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", map[string]string{"Authorization": "Basic static-tok"}).
		wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")

	srv.SetFaults(Faults{ExpireTokens: true})
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", auth).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	srv.SetFaults(Faults{})
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", auth).wantError(t, http.StatusNotFound, "NOT_FOUND")
}
