package qodsim

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, ln, Options{BearerToken: "tok-value-123", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	base := "http://" + ln.Addr().String() + DefaultBasePath
	a := call(t, http.MethodPost, base+"/sessions", createBody("4915112345", `"notificationAuthToken":"notify-secret"`),
		map[string]string{"Authorization": "Bearer tok-value-123"})
	decodeInfo(t, a)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve = %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	out := logs.String()
	if !strings.Contains(out, "qodsim listening") || !strings.Contains(out, "qodsim session created") {
		t.Errorf("log lacks the expected lines:\n%s", out)
	}
	if strings.Contains(out, "tok-value-123") || strings.Contains(out, "notify-secret") {
		t.Errorf("log leaks a secret:\n%s", out)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still open after Serve returned")
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	if err := Run(ctx, "256.0.0.1:bad", Options{}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("bad address: %v", err)
	}
	if err := Run(ctx, "127.0.0.1:0", Options{NotifyAuth: "cookie"}); err == nil || !strings.Contains(err.Error(), "notify auth") {
		t.Errorf("bad notify auth: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := Run(cancelled, "127.0.0.1:0", Options{}); err != nil {
		t.Errorf("Run with a cancelled context = %v, want nil", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	key := clientKey(t)
	bad := map[string]Options{
		"base path without slash":  {BasePath: "qod/v1"},
		"base path trailing slash": {BasePath: "/qod/v1/"},
		"unknown notify auth":      {NotifyAuth: "cookie"},
		"TAAP without key":         {TAAP: &TAAPOptions{ClientID: "a", ClientSecret: "b"}},
		"TAAP without secret":      {TAAP: &TAAPOptions{ClientID: "a", PublicKey: &key.PublicKey}},
		"TAAP tiny TTL":            {TAAP: &TAAPOptions{ClientID: "a", ClientSecret: "b", PublicKey: &key.PublicKey, TokenTTL: time.Millisecond}},
		"negative attempts":        {NotifyAttempts: -1},
	}
	for name, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted invalid options")
		}
	}()
	New(Options{NotifyAuth: "cookie"})
}

func TestClosedSimulatorRefusesRequests(t *testing.T) {
	srv := NewServer(Options{})
	sim := srv.Simulator
	srv.Close()
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, DefaultBasePath+"/sessions/x", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status after Close = %d, want 503", rec.Code)
	}
}

func TestServesItsOpenAPIDocument(t *testing.T) {
	srv := startServer(t, Options{BearerToken: "tok"})
	a := call(t, http.MethodGet, srv.URL+"/openapi.yaml", "", nil)
	if a.status != http.StatusOK || !bytes.Equal(a.body, OpenAPI) || a.header.Get("Content-Type") != "application/yaml" {
		t.Errorf("GET openapi.yaml = %d %s, %d bytes", a.status, a.header.Get("Content-Type"), len(a.body))
	}
}

func TestEmbeddedDocumentStatesTheContract(t *testing.T) {
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	schemas := spec.doc.Components.Schemas
	dur := schemas["Duration"].Value
	if *dur.Min != 1 || *dur.Max != 86400 || dur.Default != float64(86400) {
		t.Errorf("duration: min %v max %v default %v", *dur.Min, *dur.Max, dur.Default)
	}
	var qos []string
	for _, v := range schemas["QosProfile"].Value.Enum {
		qos = append(qos, v.(string))
	}
	if strings.Join(qos, ",") != "QOS_E,QOS_S,QOS_M,QOS_L" {
		t.Errorf("qos profiles %v", qos)
	}
	if p := schemas["Msisdn"].Value.Pattern; p != `^\+?[0-9]{5,15}$` {
		t.Errorf("msisdn pattern %q", p)
	}
	create := schemas["CreateSession"].Value
	if strings.Join(create.Required, ",") != "ueId,asId,qos" {
		t.Errorf("create required %v", create.Required)
	}
	for _, field := range []string{"duration", "ueId", "asId", "uePorts", "asPorts", "qos", "notificationUrl", "notificationAuthToken"} {
		if create.Properties[field] == nil {
			t.Errorf("create lacks %s", field)
		}
	}
	info := schemas["SessionInfo"].Value
	if info.Properties["notificationAuthToken"] != nil {
		t.Error("SessionInfo must not carry notificationAuthToken")
	}
	for _, f := range []string{"startedAt", "expiresAt"} {
		if !info.Properties[f].Value.Type.Is(openapi3.TypeInteger) {
			t.Errorf("%s is not an integer (Unix seconds)", f)
		}
	}
	if strings.Join(schemas["ErrorInfo"].Value.Required, ",") != "reasonCode,systemMessage,userMessage" {
		t.Error("error shape is not DevEdge's")
	}
	if spec.doc.Paths.Find("/sessions").Post.Responses.Status(200) == nil {
		t.Error("create does not answer 200 as DevEdge does")
	}
	for _, op := range []string{opCreate, opGet, opDelete} {
		for _, status := range []int{400, 401, 403, 500, 503} {
			if spec.routes[op].Operation.Responses.Status(status) == nil {
				t.Errorf("%s lacks %d", op, status)
			}
		}
	}
	// v0.8.1 as published declares format ipv4/ipv6 on the addresses;
	// the description keeps it (strict validators go by it).
	for name, want := range map[string]string{"Ipv4Addr": "ipv4", "Ipv6Addr": "ipv6"} {
		if got := spec.doc.Components.Schemas[name].Value.Format; got != want {
			t.Errorf("%s has format %q, want %q as published", name, got, want)
		}
	}
	if _, err := parseSpec([]byte("openapi: 3.0.3\ninfo: {}\n"), checkIP); err == nil {
		t.Error("parseSpec accepted a broken document")
	}
}
