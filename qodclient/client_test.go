package qodclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const sessionJSON = `{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","startedAt":1700000000,"expiresAt":1700000600,` +
	`"duration":600,"ueId":{"msisdn":"+15551230007"},"asId":{"ipv4addr":"203.0.113.10"},"qos":"QOS_E"}`

// seen is what a stub server recorded about one request.
type seen struct {
	method, path string
	header       http.Header
	body         []byte
}

// stub serves a sequence of handlers, one per request (the last repeats),
// and records the requests.
type stub struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []seen
	handlers []http.HandlerFunc
}

func newStub(t *testing.T, handlers ...http.HandlerFunc) *stub {
	s := &stub{handlers: handlers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, seen{r.Method, r.URL.Path, r.Header.Clone(), body})
		h := s.handlers[min(n, len(s.handlers)-1)]
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *stub) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hangUntilClientLeaves holds the request until the client gives up.
func hangUntilClientLeaves(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// closeConn drops the connection without an answer.
func closeConn(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestCreateSendsSpecRequestAndAcceptsBoth200And201(t *testing.T) {
	for _, status := range []int{200, 201} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			s := newStub(t, reply(status, sessionJSON))
			c, _ := newTestClient(t, Config{BaseURL: s.URL + "/qod/v1/", Auth: NewBearer("tok")})
			got, err := c.Create(context.Background(), validRequest())
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if got.ID != "3fa85f64-5717-4562-b3fc-2c963f66afa6" || !got.ExpiresAt.Equal(time.Unix(1700000600, 0)) {
				t.Errorf("session: %+v", got)
			}
			reqs := s.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[0]
			if r.method != "POST" || r.path != "/qod/v1/sessions" {
				t.Errorf("request line %s %s", r.method, r.path)
			}
			if r.header.Get("Content-Type") != "application/json" || r.header.Get("Authorization") != "Bearer tok" {
				t.Errorf("headers: %v", r.header)
			}
			if id := r.header.Get("X-Transaction-Id"); len(id) != 36 {
				t.Errorf("x-transaction-id %q is not a UUID", id)
			}
			var body map[string]any
			if err := json.Unmarshal(r.body, &body); err != nil || body["qos"] != "QOS_E" || body["duration"] != 600.0 {
				t.Errorf("body %s (%v)", r.body, err)
			}
		})
	}
}

func TestTransactionIDs(t *testing.T) {
	s := newStub(t, reply(200, sessionJSON))
	c, _ := newTestClient(t, Config{BaseURL: s.URL})
	ctx := WithTransactionID(context.Background(), "intent-42")
	if _, err := c.Create(ctx, validRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	ids := []string{reqs[0].header.Get("x-transaction-id"), reqs[1].header.Get("x-transaction-id"), reqs[2].header.Get("x-transaction-id")}
	if ids[0] != "intent-42" || ids[1] == ids[2] || ids[1] == "" {
		t.Errorf("transaction ids %q", ids)
	}
	if reqs[0].header.Get("x-correlator") != "" {
		t.Errorf("x-correlator is a CAMARA v1 header")
	}
	_, err := c.Get(WithTransactionID(context.Background(), "bad id\n"), "a")
	if !errors.Is(err, ErrInvalid) || len(s.requests()) != 3 {
		t.Errorf("invalid transaction id: %v", err)
	}
}

func TestCAMARAv1Dialect(t *testing.T) {
	s := newStub(t, reply(201, `{"sessionId":"s1","duration":600,"qosStatus":"REQUESTED","qosProfile":"QOS_E",
		"applicationServer":{"ipv4Address":"203.0.113.10"}}`))
	c, _ := newTestClient(t, Config{BaseURL: s.URL, Dialect: DialectCAMARAv1})
	got, err := c.Create(WithTransactionID(context.Background(), "corr-1"), validRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "s1" || got.QoSStatus != "REQUESTED" || !got.StartedAt.IsZero() {
		t.Errorf("session %+v", got)
	}
	r := s.requests()[0]
	if r.header.Get("x-correlator") != "corr-1" || !bytes.Contains(r.body, []byte(`"qosProfile":"QOS_E"`)) {
		t.Errorf("v1 request: %v %s", r.header, r.body)
	}
}

func TestErrorAnswersThroughClient(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		category error
		code     string
		requests int
	}{
		{"devedge 403", reply(403, `{"reasonCode":"ERR-1","systemMessage":"FORBIDDEN","userMessage":"no"}`), ErrForbidden, "FORBIDDEN", 1},
		{"conflict", reply(409, `{"code":"CONFLICT","message":"Another session is created for the same UE"}`), ErrConflict, "CONFLICT", 1},
		{"400", reply(400, `{"status":400,"code":"INVALID_ARGUMENT","message":"x"}`), ErrInvalid, "INVALID_ARGUMENT", 1},
		{"500 is the server's no", reply(500, `{"code":"INTERNAL","message":"Session could not be created"}`), ErrServer, "INTERNAL", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(t, tt.handler)
			c, rec := newTestClient(t, Config{BaseURL: s.URL})
			_, err := c.Create(context.Background(), validRequest())
			var api *APIError
			if !errors.As(err, &api) || !errors.Is(err, tt.category) || api.Code != tt.code {
				t.Fatalf("got %v", err)
			}
			if errors.Is(err, ErrUnknownOutcome) {
				t.Errorf("a definite answer is not an unknown outcome")
			}
			id := s.requests()[0].header.Get("x-transaction-id")
			if api.TransactionID != id || !strings.Contains(err.Error(), id) || api.Method != "POST" || api.Path != "/sessions" {
				t.Errorf("error %v does not carry the request's transaction id %s", err, id)
			}
			if n := len(s.requests()); n != tt.requests || len(rec.get()) != 0 {
				t.Errorf("%d requests, sleeps %v", n, rec.get())
			}
		})
	}
}

func TestGetRetriesHonouringRetryAfter(t *testing.T) {
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	s := newStub(t,
		reply(503, `{"code":"SERVICE_UNAVAILABLE","message":"busy"}`, "Retry-After", "2"),
		reply(429, `{"code":"TOO_MANY_REQUESTS","message":"slow"}`, "Retry-After", date),
		reply(502, ``),
		reply(200, sessionJSON))
	c, rec := newTestClient(t, Config{BaseURL: s.URL, Retry: RetryPolicy{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Second}})
	got, err := c.Get(context.Background(), "3fa85f64-5717-4562-b3fc-2c963f66afa6")
	if err != nil || got.ID == "" {
		t.Fatalf("Get: %v", err)
	}
	reqs := s.requests()
	if len(reqs) != 4 || reqs[0].path != "/sessions/3fa85f64-5717-4562-b3fc-2c963f66afa6" || reqs[0].method != "GET" {
		t.Fatalf("requests %+v", reqs)
	}
	d := rec.get()
	if len(d) != 3 || d[0] != 2*time.Second || d[1] < 1*time.Second || d[1] > 3*time.Second || d[2] < 5*time.Millisecond || d[2] > 40*time.Millisecond {
		t.Errorf("waits %v: want 2s (Retry-After), ~3s (HTTP date), then a short backoff", d)
	}
	if reqs[0].header.Get("x-transaction-id") != reqs[3].header.Get("x-transaction-id") {
		t.Errorf("attempts of one call should share the transaction id")
	}
}

func TestGetGivesUpAfterMaxAttempts(t *testing.T) {
	s := newStub(t, reply(504, `{"code":"TIMEOUT","message":"upstream"}`))
	c, rec := newTestClient(t, Config{BaseURL: s.URL})
	_, err := c.Get(context.Background(), "x")
	if !errors.Is(err, ErrUnavailable) || len(s.requests()) != 3 || len(rec.get()) != 2 {
		t.Errorf("err %v, %d requests, waits %v", err, len(s.requests()), rec.get())
	}
}

func TestRetryAfterBeyondMaxDelayIsReturned(t *testing.T) {
	s := newStub(t, reply(429, `{"code":"TOO_MANY_REQUESTS","message":"later"}`, "Retry-After", "3600"))
	c, rec := newTestClient(t, Config{BaseURL: s.URL})
	_, err := c.Get(context.Background(), "x")
	var api *APIError
	if !errors.As(err, &api) || api.RetryAfter != time.Hour || len(s.requests()) != 1 || len(rec.get()) != 0 {
		t.Errorf("err %v, %d requests, waits %v", err, len(s.requests()), rec.get())
	}
}

func TestRetryStopsAtContextDeadline(t *testing.T) {
	s := newStub(t, reply(503, ``, "Retry-After", "3"))
	c, rec := newTestClient(t, Config{BaseURL: s.URL})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.Get(ctx, "x")
	if !errors.Is(err, ErrUnavailable) || len(s.requests()) != 1 || len(rec.get()) != 0 {
		t.Errorf("a wait past the deadline must not start: err %v, %d requests, waits %v", err, len(s.requests()), rec.get())
	}
}

func TestGetRetriesNetworkErrors(t *testing.T) {
	s := newStub(t, closeConn, reply(200, sessionJSON))
	c, rec := newTestClient(t, Config{BaseURL: s.URL})
	if _, err := c.Get(context.Background(), "x"); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(s.requests()) != 2 || len(rec.get()) != 1 {
		t.Errorf("%d requests, waits %v", len(s.requests()), rec.get())
	}
}

func TestGetRetriesAttemptTimeout(t *testing.T) {
	s := newStub(t, hangUntilClientLeaves, reply(200, sessionJSON))
	c, _ := newTestClient(t, Config{BaseURL: s.URL, Timeout: 100 * time.Millisecond})
	if _, err := c.Get(context.Background(), "x"); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(s.requests()) != 2 {
		t.Errorf("%d requests", len(s.requests()))
	}
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr error
	}{
		{"204", reply(204, ``), nil},
		{"404 means already gone", reply(404, `{"code":"NOT_FOUND","message":"Session Id does not exist"}`), nil},
		{"410 means already gone", reply(410, ``), nil},
		{"403", reply(403, `{"code":"FORBIDDEN","message":"no"}`), ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(t, tt.handler)
			c, _ := newTestClient(t, Config{BaseURL: s.URL})
			err := c.Delete(context.Background(), "a/b")
			if (tt.wantErr == nil) != (err == nil) || (err != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if r := s.requests()[0]; r.method != "DELETE" || r.path != "/sessions/a/b" || len(r.body) != 0 {
				t.Errorf("request %s %s %q", r.method, r.path, r.body)
			}
		})
	}
}

func TestDeleteRetriedAfterLostAnswerSucceedsOn404(t *testing.T) {
	s := newStub(t, closeConn, reply(404, `{"code":"NOT_FOUND","message":"gone"}`))
	c, _ := newTestClient(t, Config{BaseURL: s.URL})
	if err := c.Delete(context.Background(), "x"); err != nil || len(s.requests()) != 2 {
		t.Errorf("err %v, %d requests", err, len(s.requests()))
	}
}

func TestEmptyIDsAreInvalid(t *testing.T) {
	c, _ := newTestClient(t, Config{BaseURL: "http://127.0.0.1:1"})
	if _, err := c.Get(context.Background(), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Get: %v", err)
	}
	if err := c.Delete(context.Background(), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Delete: %v", err)
	}
	if _, err := c.Create(context.Background(), CreateSessionRequest{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Create: %v", err)
	}
}

// The create rules: never repeated once the server may have it.
func TestCreateUnknownOutcome(t *testing.T) {
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		malformed bool
	}{
		{"server hangs past the attempt timeout", hangUntilClientLeaves, false},
		{"connection closed without an answer", closeConn, false},
		{"gateway 504", reply(504, `gateway timeout`), false},
		{"gateway 502", reply(502, ``), false},
		{"201 with malformed JSON", reply(201, `{"id":`), true},
		{"200 without an id", reply(200, `{"qos":"QOS_E"}`), true},
		{"200 with a body over 1 MiB", reply(200, `{"id":"x","pad":"`+strings.Repeat("a", maxBody)+`"}`), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(t, tt.handler, reply(201, sessionJSON))
			c, rec := newTestClient(t, Config{BaseURL: s.URL, Timeout: 200 * time.Millisecond})
			_, err := c.Create(context.Background(), validRequest())
			var u *UnknownOutcomeError
			if !errors.Is(err, ErrUnknownOutcome) || !errors.As(err, &u) {
				t.Fatalf("want an unknown outcome, got %v", err)
			}
			id := s.requests()[0].header.Get("x-transaction-id")
			if u.TransactionID != id || TransactionIDOf(err) != id || !strings.Contains(err.Error(), id) {
				t.Errorf("transaction id %q missing from %v", id, err)
			}
			if errors.Is(err, ErrMalformedResponse) != tt.malformed {
				t.Errorf("ErrMalformedResponse = %v, want %v", !tt.malformed, tt.malformed)
			}
			if n := len(s.requests()); n != 1 || len(rec.get()) != 0 {
				t.Errorf("create was repeated: %d requests, waits %v", n, rec.get())
			}
		})
	}
}

func TestCreateCancelledAfterSendIsUnknownOutcome(t *testing.T) {
	arrived := make(chan struct{})
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	c, _ := newTestClient(t, Config{BaseURL: s.URL})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := c.Create(ctx, validRequest())
	if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
}

func TestCreateRetriedWhenServerDeclined(t *testing.T) {
	s := newStub(t,
		reply(503, `{"code":"SERVICE_UNAVAILABLE","message":"busy"}`, "Retry-After", "1"),
		reply(429, `{"code":"TOO_MANY_REQUESTS","message":"slow"}`),
		reply(201, sessionJSON))
	c, rec := newTestClient(t, Config{BaseURL: s.URL})
	if _, err := c.Create(context.Background(), validRequest()); err != nil {
		t.Fatalf("Create: %v", err)
	}
	reqs := s.requests()
	if len(reqs) != 3 || len(rec.get()) != 2 || rec.get()[0] != time.Second {
		t.Errorf("%d requests, waits %v", len(reqs), rec.get())
	}
	if !bytes.Equal(reqs[0].body, reqs[2].body) || reqs[0].header.Get("x-transaction-id") != reqs[2].header.Get("x-transaction-id") {
		t.Errorf("a retried create must be the same request")
	}
}

func TestCreateRetriedWhenNeverSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every dial is refused
	c, rec := newTestClient(t, Config{BaseURL: "http://" + addr})
	_, err = c.Create(context.Background(), validRequest())
	if err == nil || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("a refused dial proves nothing was sent; got %v", err)
	}
	if TransactionIDOf(err) == "" || len(rec.get()) != 2 {
		t.Errorf("want 3 attempts and a transaction id: %v, waits %v", err, rec.get())
	}
}

func TestCreateRetriedWhenAuthFailsBeforeSending(t *testing.T) {
	s := newStub(t, reply(201, sessionJSON))
	auth := &stubAuth{fail: []error{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("token endpoint refused")}}}
	c, rec := newTestClient(t, Config{BaseURL: s.URL, Auth: auth})
	if _, err := c.Create(context.Background(), validRequest()); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if len(s.requests()) != 1 || len(rec.get()) != 1 {
		t.Errorf("%d requests, waits %v", len(s.requests()), rec.get())
	}
	// A non-transient authorisation failure is returned at once.
	auth.fail = []error{errors.New("no such key")}
	_, err := c.Create(context.Background(), validRequest())
	if err == nil || errors.Is(err, ErrUnknownOutcome) || len(s.requests()) != 1 {
		t.Errorf("got %v with %d requests", err, len(s.requests()))
	}
}

func TestUnauthorizedRefreshesOnce(t *testing.T) {
	unauth := reply(401, `{"reasonCode":"ERR-1091","systemMessage":"UNAUTHORIZED","userMessage":"Authorization failed: expired"}`)
	for _, op := range []string{"create", "get", "delete"} {
		t.Run(op, func(t *testing.T) {
			s := newStub(t, unauth, reply(200, sessionJSON))
			auth := &stubAuth{}
			c, rec := newTestClient(t, Config{BaseURL: s.URL, Auth: auth, Retry: RetryPolicy{MaxAttempts: 1}})
			var err error
			switch op {
			case "create":
				_, err = c.Create(context.Background(), validRequest())
			case "get":
				_, err = c.Get(context.Background(), "x")
			case "delete":
				err = c.Delete(context.Background(), "x")
			}
			if err != nil {
				t.Fatalf("%s after a 401: %v", op, err)
			}
			reqs := s.requests()
			if a, i := auth.counts(); len(reqs) != 2 || a != 2 || i != 1 || len(rec.get()) != 0 {
				t.Errorf("%d requests, %d authorizations, %d invalidations", len(reqs), a, i)
			}
			if reqs[0].header.Get("Authorization") == reqs[1].header.Get("Authorization") {
				t.Errorf("the retry should carry the fresh token")
			}
		})
	}
	t.Run("second 401 is returned", func(t *testing.T) {
		s := newStub(t, unauth)
		auth := &stubAuth{}
		c, _ := newTestClient(t, Config{BaseURL: s.URL, Auth: auth})
		_, err := c.Create(context.Background(), validRequest())
		if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnknownOutcome) || len(s.requests()) != 2 {
			t.Errorf("got %v after %d requests", err, len(s.requests()))
		}
	})
	t.Run("no auth, no retry", func(t *testing.T) {
		s := newStub(t, unauth)
		c, _ := newTestClient(t, Config{BaseURL: s.URL})
		if _, err := c.Get(context.Background(), "x"); !errors.Is(err, ErrUnauthorized) || len(s.requests()) != 1 {
			t.Errorf("got %v after %d requests", err, len(s.requests()))
		}
	})
}

func TestMalformedAndHugeBodies(t *testing.T) {
	huge := `{"id":"x","pad":"` + strings.Repeat("a", 2*maxBody) + `"}`
	for name, h := range map[string]http.HandlerFunc{
		"not json":      reply(200, `<html>hello</html>`),
		"truncated":     reply(200, `{"id":"x","startedAt":17`),
		"wrong type":    reply(200, `{"id":"x","startedAt":{"s":1}}`),
		"over 1 MiB":    reply(200, huge),
		"empty 200":     reply(200, ``),
		"binary":        reply(200, "\x00\xff\xfe{"),
		"huge error":    reply(500, huge),
		"error garbage": reply(503, "\x00\xff"),
	} {
		t.Run(name, func(t *testing.T) {
			s := newStub(t, h)
			c, _ := newTestClient(t, Config{BaseURL: s.URL, Retry: RetryPolicy{MaxAttempts: 1}})
			_, err := c.Get(context.Background(), "x")
			var api *APIError
			if !errors.As(err, &api) || api.TransactionID == "" || api.TransactionID != s.requests()[0].header.Get("x-transaction-id") {
				t.Fatalf("want an APIError with the transaction id, got %v", err)
			}
			if api.Status == 200 && !errors.Is(err, ErrMalformedResponse) {
				t.Errorf("a bad success body must match ErrMalformedResponse: %v", err)
			}
			if len(err.Error()) > 2048 {
				t.Errorf("error text is %d bytes", len(err.Error()))
			}
		})
	}
}

func TestDebugLogLineHasNoSecrets(t *testing.T) {
	s := newStub(t, reply(409, `{"code":"CONFLICT","message":"exists"}`))
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _ := newTestClient(t, Config{BaseURL: s.URL, Auth: NewBearer("sekrit-token"), Logger: log})
	req := validRequest()
	req.NotificationURL, req.NotificationAuthToken = "https://cb.example", "notify-sekrit"
	_, err := c.Create(WithTransactionID(context.Background(), "tx-log"), req)
	if !errors.Is(err, ErrConflict) {
		t.Fatal(err)
	}
	line := buf.String()
	for _, want := range []string{"level=DEBUG", "method=POST", "path=/sessions", "status=409", "transaction_id=tx-log", "duration="} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}
	if strings.Contains(line, "sekrit") || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("secret in log or error: %s / %v", line, err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{BaseURL: ""},
		{BaseURL: "host/qod"},
		{BaseURL: "ftp://host/qod"},
		{BaseURL: "https://user:pass@host/qod"},
		{BaseURL: "https://host/qod?x=1"},
		{BaseURL: "https://host/qod", Dialect: "camara-v7"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		} else if strings.Contains(err.Error(), "pass") {
			t.Errorf("error leaks credentials: %v", err)
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	// Every call's first attempt gets 503, its retry succeeds.
	var mu sync.Mutex
	tried := map[string]bool{}
	s := newStub(t, func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("x-transaction-id")
		mu.Lock()
		first := !tried[id]
		tried[id] = true
		mu.Unlock()
		if first {
			reply(503, ``)(w, r)
			return
		}
		reply(200, sessionJSON)(w, r)
	})
	auth := &stubAuth{}
	c, _ := newTestClient(t, Config{BaseURL: s.URL, Auth: auth})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := c.Get(context.Background(), "x"); err != nil {
				t.Errorf("Get: %v", err)
			}
		})
	}
	wg.Wait()
	if a, _ := auth.counts(); len(s.requests()) != 32 || a != 32 || len(tried) != 16 {
		t.Errorf("%d requests, %d authorizations, %d transaction ids", len(s.requests()), a, len(tried))
	}
}
