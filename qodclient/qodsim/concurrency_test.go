package qodsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentUse runs API calls, network-side actions and inspection at
// once; run with -race it checks the simulator's locking, and the counts
// check that no create or delete was lost or doubled.
func TestConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t)
	srv := startServer(t, Options{Now: clock.Now, NotifyBackoff: time.Millisecond})
	const workers, perWorker = 6, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				msisdn := fmt.Sprintf("49151%02d%03d", w, i)
				body := createBody(msisdn, `"notificationUrl":"`+rc.URL+`","duration":100`)
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/sessions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("x-transaction-id", msisdn)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("create %s: %d", msisdn, resp.StatusCode)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // inspection and the network side, at the same time
		defer wg.Done()
		for i := 0; i < 20; i++ {
			for _, s := range srv.Sessions() {
				if strings.HasSuffix(s.UE.MSISDN, "0") {
					_ = srv.Terminate(s.ID) // may race with another terminate: fine
				}
			}
			srv.ExpireDue()
			_ = srv.Requests()
			_ = srv.Notifications()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.Creates(); got != workers*perWorker {
		t.Errorf("Creates = %d, want %d", got, workers*perWorker)
	}
	// Whatever the inspection goroutine did not end, expiry does; every
	// session ends exactly once, each with one notification.
	clock.Advance(100 * time.Second)
	srv.ExpireDue()
	waitDeliveries(t, srv.Simulator)
	notes := srv.Notifications()
	seen := map[string]bool{}
	for _, n := range notes {
		if seen[n.SessionID] {
			t.Errorf("session %s notified twice", n.SessionID)
		}
		seen[n.SessionID] = true
		if !n.Delivered {
			t.Errorf("notification %+v not delivered", n)
		}
	}
	if len(notes) != workers*perWorker || len(srv.Sessions()) != 0 {
		t.Errorf("%d notifications, %d sessions live; want %d and 0", len(notes), len(srv.Sessions()), workers*perWorker)
	}
}

// BenchmarkCreateGetDelete measures one create, get and delete through the
// handler (schema validation included), without the network.
func BenchmarkCreateGetDelete(b *testing.B) {
	sim := New(Options{})
	defer sim.Close()
	body := createBody("4915112345", `"uePorts":{"ports":[5060]},"notificationUrl":"http://127.0.0.1:9/cb"`)
	serve := func(method, path, body string) *httptest.ResponseRecorder {
		var req *http.Request
		if body != "" {
			req = httptest.NewRequest(method, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req = httptest.NewRequest(method, path, nil)
		}
		req.Header.Set("x-transaction-id", "bench")
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		return rec
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := serve(http.MethodPost, DefaultBasePath+"/sessions", body)
		if rec.Code != http.StatusOK {
			b.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
		id := rec.Body.String()[7:43] // {"id":"<36 chars>"
		if rec := serve(http.MethodGet, DefaultBasePath+"/sessions/"+id, ""); rec.Code != http.StatusOK {
			b.Fatalf("get: %d", rec.Code)
		}
		if rec := serve(http.MethodDelete, DefaultBasePath+"/sessions/"+id, ""); rec.Code != http.StatusNoContent {
			b.Fatalf("delete: %d", rec.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3, "ns/request")
}
