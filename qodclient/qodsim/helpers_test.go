package qodsim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startServer starts a simulator server closed at the end of the test.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	srv := NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorBody decodes a DevEdge error answer, failing if it has another shape.
func (a answer) errorBody(t *testing.T) errorInfo {
	t.Helper()
	var e errorInfo
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q is not the DevEdge shape: %v", a.body, err)
	}
	if e.ReasonCode == "" || e.SystemMessage == "" || e.UserMessage == "" {
		t.Fatalf("error body %q lacks a field", a.body)
	}
	return e
}

// wantError checks status and DevEdge error shape.
func (a answer) wantError(t *testing.T, status int, system string) errorInfo {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d; body %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q", ct)
	}
	e := a.errorBody(t)
	if e.SystemMessage != system {
		t.Errorf("systemMessage = %q, want %q (%s)", e.SystemMessage, system, a.body)
	}
	return e
}

// call sends a request with the usual DevEdge headers (x-transaction-id,
// Content-Type for bodies) plus hdr; a header set to "" in hdr is removed.
func call(t *testing.T, method, url, body string, hdr map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-transaction-id", "tx-"+t.Name())
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// createBody is a valid create request for a UE named by msisdn.
func createBody(msisdn string, extra string) string {
	b := `{"ueId":{"msisdn":"` + msisdn + `"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// info decodes a SessionInfo answer strictly.
func decodeInfo(t *testing.T, a answer) map[string]any {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", a.status, a.body)
	}
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("session info %q: %v", a.body, err)
	}
	return m
}

// popSpec describes a PoP token for popToken.
type popSpec struct {
	key      *rsa.PrivateKey
	ehts     []string          // item names, in signing order
	values   map[string]string // item name -> value to sign
	iat      time.Time
	lifetime time.Duration
	jti      string
	alg      string // default RS256
}

// popToken builds a TAAP PoP JWT by hand, independently of any client code.
func popToken(t *testing.T, p popSpec) string {
	t.Helper()
	h := sha256.New()
	for _, n := range p.ehts {
		h.Write([]byte(p.values[n]))
	}
	if p.alg == "" {
		p.alg = "RS256"
	}
	if p.lifetime == 0 {
		p.lifetime = 120 * time.Second
	}
	if p.jti == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		p.jti = base64.RawURLEncoding.EncodeToString(b[:])
	}
	hdr, _ := json.Marshal(map[string]string{"alg": p.alg, "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"ehts": strings.Join(p.ehts, ";"),
		"edts": base64.RawURLEncoding.EncodeToString(h.Sum(nil)),
		"iat":  p.iat.Unix(),
		"exp":  p.iat.Add(p.lifetime).Unix(),
		"jti":  p.jti,
		"v":    "1",
	})
	signing := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// clientKey is one 2048-bit key for all tests (generation is slow).
func clientKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}
