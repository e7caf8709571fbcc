package qodsim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// received is one notification as the receiver saw it.
type received struct {
	path, query, auth, contentType string
	body                           map[string]any
}

// receiver is an httptest server that records notifications and answers
// with the statuses in answers, then 204.
type receiver struct {
	*httptest.Server
	got chan received

	mu      sync.Mutex
	answers []int
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan received, 256), answers: answers}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		select { // never block: a test may not read every notification
		case rc.got <- received{path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization"),
			contentType: r.Header.Get("Content-Type"), body: m}:
		default:
		}
		rc.mu.Lock()
		status := http.StatusNoContent
		if len(rc.answers) > 0 {
			status, rc.answers = rc.answers[0], rc.answers[1:]
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// next waits for the next notification; the timeout only guards against a
// hung test.
func (rc *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case n := <-rc.got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived")
		return received{}
	}
}

func waitDeliveries(t *testing.T, s *Simulator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitNotifications(ctx); err != nil {
		t.Fatal(err)
	}
}

func createWithCallback(t *testing.T, base, msisdn, notifyURL, token string, extra string) string {
	t.Helper()
	fields := `"notificationUrl":"` + notifyURL + `"`
	if token != "" {
		fields += `,"notificationAuthToken":"` + token + `"`
	}
	if extra != "" {
		fields += "," + extra
	}
	info := decodeInfo(t, call(t, http.MethodPost, base+"/sessions", createBody(msisdn, fields), nil))
	return info["id"].(string)
}

func TestNotificationOnExpiryWithAPIKey(t *testing.T) {
	clock := newFakeClock()
	srv := startServer(t, Options{Now: clock.Now}) // apikey is the default
	rc := newReceiver(t)
	id := createWithCallback(t, srv.URL, "4915112345", rc.URL+"/hooks/qod/", "tok en&1", `"duration":30`)

	clock.Advance(30 * time.Second)
	srv.ExpireDue()
	n := rc.next(t)
	if n.path != "/hooks/qod/notifications" {
		t.Errorf("path = %q, want /hooks/qod/notifications", n.path)
	}
	if n.query != "apikey=tok+en%261" || n.auth != "" {
		t.Errorf("query %q auth %q, want the token as apikey only", n.query, n.auth)
	}
	if n.contentType != "application/json" || n.body["sessionId"] != id || n.body["event"] != "SESSION_TERMINATED" || len(n.body) != 2 {
		t.Errorf("notification %s %v", n.contentType, n.body)
	}
	waitDeliveries(t, srv.Simulator)
	got := srv.Notifications()
	if len(got) != 1 || got[0].SessionID != id || got[0].Reason != EndExpired || !got[0].Delivered || !got[0].Done ||
		got[0].Attempts != 1 || strings.Contains(got[0].URL, "apikey") {
		t.Errorf("Notifications() = %+v", got)
	}
}

func TestNotificationOnTerminateWithBearer(t *testing.T) {
	srv := startServer(t, Options{NotifyAuth: NotifyBearer})
	rc := newReceiver(t)
	id := createWithCallback(t, srv.URL, "4915112345", rc.URL, "c8974e592c2fa383d4a3960714", "")
	if err := srv.Terminate(id); err != nil {
		t.Fatal(err)
	}
	n := rc.next(t)
	if n.path != "/notifications" || n.query != "" || n.auth != "Bearer c8974e592c2fa383d4a3960714" {
		t.Errorf("path %q query %q auth %q", n.path, n.query, n.auth)
	}
	if n.body["sessionId"] != id || n.body["event"] != "SESSION_TERMINATED" {
		t.Errorf("body %v", n.body)
	}
	waitDeliveries(t, srv.Simulator)
	if got := srv.Notifications(); len(got) != 1 || got[0].Reason != EndTerminated || !got[0].Delivered {
		t.Errorf("Notifications() = %+v", got)
	}
}

func TestNotificationWithoutToken(t *testing.T) {
	srv := startServer(t, Options{})
	rc := newReceiver(t)
	id := createWithCallback(t, srv.URL, "4915112345", rc.URL, "", "")
	if err := srv.Terminate(id); err != nil {
		t.Fatal(err)
	}
	if n := rc.next(t); n.query != "" || n.auth != "" {
		t.Errorf("query %q auth %q, want no credentials", n.query, n.auth)
	}
}

func TestNoNotificationOnDeleteOrWithoutURL(t *testing.T) {
	srv := startServer(t, Options{})
	rc := newReceiver(t)
	id := createWithCallback(t, srv.URL, "4915112345", rc.URL, "t", "")
	if a := call(t, http.MethodDelete, srv.URL+"/sessions/"+id, "", nil); a.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d", a.status)
	}
	plain := decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915100000", ""), nil))
	if err := srv.Terminate(plain["id"].(string)); err != nil {
		t.Fatal(err)
	}
	// notify records a delivery before it starts one, so an empty record
	// means none was started.
	if got := srv.Notifications(); len(got) != 0 {
		t.Errorf("Notifications() = %+v, want none", got)
	}
}

func TestNotificationRetriesAreBounded(t *testing.T) {
	t.Run("server errors then success", func(t *testing.T) {
		srv := startServer(t, Options{NotifyBackoff: time.Millisecond})
		rc := newReceiver(t, 500, 503)
		id := createWithCallback(t, srv.URL, "4915112345", rc.URL, "t", "")
		_ = srv.Terminate(id)
		waitDeliveries(t, srv.Simulator)
		got := srv.Notifications()
		if len(got) != 1 || got[0].Attempts != 3 || !got[0].Delivered || got[0].LastError != "" {
			t.Errorf("Notifications() = %+v, want delivered on the third attempt", got)
		}
	})
	t.Run("gives up after NotifyAttempts", func(t *testing.T) {
		srv := startServer(t, Options{NotifyBackoff: time.Millisecond, NotifyAttempts: 4})
		rc := newReceiver(t, 500, 500, 500, 500, 500, 500)
		id := createWithCallback(t, srv.URL, "4915112345", rc.URL, "t", "")
		_ = srv.Terminate(id)
		waitDeliveries(t, srv.Simulator)
		got := srv.Notifications()
		if len(got) != 1 || got[0].Attempts != 4 || got[0].Delivered || !got[0].Done || got[0].LastError != "answer 500" {
			t.Errorf("Notifications() = %+v, want 4 failed attempts", got)
		}
	})
	t.Run("client error is final", func(t *testing.T) {
		srv := startServer(t, Options{NotifyBackoff: time.Millisecond})
		rc := newReceiver(t, 401)
		id := createWithCallback(t, srv.URL, "4915112345", rc.URL, "t", "")
		_ = srv.Terminate(id)
		waitDeliveries(t, srv.Simulator)
		if got := srv.Notifications(); len(got) != 1 || got[0].Attempts != 1 || got[0].Delivered {
			t.Errorf("Notifications() = %+v, want one failed attempt", got)
		}
	})
	t.Run("unreachable receiver", func(t *testing.T) {
		srv := startServer(t, Options{NotifyBackoff: time.Millisecond, NotifyAttempts: 2})
		rc := newReceiver(t)
		url := rc.URL
		rc.Close() // nothing listens there any more
		id := createWithCallback(t, srv.URL, "4915112345", url, "secret-tok", "")
		_ = srv.Terminate(id)
		waitDeliveries(t, srv.Simulator)
		got := srv.Notifications()
		if len(got) != 1 || got[0].Attempts != 2 || got[0].Delivered || got[0].LastError == "" {
			t.Errorf("Notifications() = %+v", got)
		}
		if strings.Contains(got[0].LastError, "secret-tok") {
			t.Errorf("error leaks the token: %q", got[0].LastError)
		}
	})
}

func TestHungReceiverBlocksNeitherRequestsNorClose(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })

	srv := NewServer(Options{NotifyTimeout: 50 * time.Millisecond, NotifyAttempts: 2, NotifyBackoff: time.Millisecond})
	id := createWithCallback(t, srv.URL, "4915112345", hung.URL, "t", "")
	_ = srv.Terminate(id) // returns at once: delivery runs in the background
	// The API still answers while the delivery hangs.
	id2 := createWithCallback(t, srv.URL, "4915100000", hung.URL, "t", "")
	waitDeliveries(t, srv.Simulator)
	got := srv.Notifications()
	if len(got) != 1 || got[0].Attempts != 2 || got[0].Delivered {
		t.Errorf("Notifications() = %+v, want 2 timed-out attempts", got)
	}
	// A delivery in progress is cut short by Close.
	_ = srv.Terminate(id2)
	srv.Close()
	if got := srv.Notifications(); !got[1].Done || got[1].Delivered {
		t.Errorf("after Close: %+v", got[1])
	}
}

func TestSweeperEndsSessionsOnItsOwn(t *testing.T) {
	clock := newFakeClock()
	srv := startServer(t, Options{Now: clock.Now})
	rc := newReceiver(t)
	id := createWithCallback(t, srv.URL, "4915112345", rc.URL, "t", `"duration":5`)
	clock.Advance(5 * time.Second)
	// No request and no ExpireDue call: the background sweeper must act.
	if n := rc.next(t); n.body["sessionId"] != id {
		t.Errorf("notification for %v, want %s", n.body["sessionId"], id)
	}
	if len(srv.Sessions()) != 0 {
		t.Error("session still live after the sweeper's notification")
	}
}
