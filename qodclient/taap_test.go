package qodclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewPoPTokenVerifiesIndependently(t *testing.T) {
	key := testKey()
	now := time.Unix(1700000000, 0)
	items := []PoPItem{
		{"Content-Type", "application/json"},
		{"Authorization", "Bearer abc"},
		{"uri", "/qod/v1/sessions"},
		{"http-method", "POST"},
		{"body", `{"qos":"QOS_E","x":"ü\"\\"}`},
	}
	tok, err := NewPoPToken(key, items, now)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	for _, it := range items {
		vals[it.Name] = it.Value
	}
	c, problem := verifyPoP(&key.PublicKey, tok, func(n string) string { return vals[n] })
	if problem != "" {
		t.Fatal(problem)
	}
	if c.Ehts != "Content-Type;Authorization;uri;http-method;body" || c.Iat != now.Unix() {
		t.Errorf("claims %+v", c)
	}
	// The verifier really checks: a changed body does not verify.
	vals["body"] = `{"qos":"QOS_L"}`
	if _, problem := verifyPoP(&key.PublicKey, tok, func(n string) string { return vals[n] }); !strings.Contains(problem, "edts") {
		t.Errorf("tampered body accepted: %q", problem)
	}
	tok2, _ := NewPoPToken(key, items, now)
	c2, _ := verifyPoP(&key.PublicKey, tok2, func(n string) string { return vals[n] })
	if c2.Jti == c.Jti {
		t.Errorf("jti repeated")
	}
}

func TestNewPoPTokenRejectsBadInput(t *testing.T) {
	key := testKey()
	for name, items := range map[string][]PoPItem{
		"none":      nil,
		"empty":     {{"", "x"}},
		"separator": {{"a;b", "x"}},
		"quote":     {{`a"`, "x"}},
		"space":     {{"a b", "x"}},
	} {
		if _, err := NewPoPToken(key, items, time.Now()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewPoPToken(nil, []PoPItem{{"uri", "/"}}, time.Now()); err == nil {
		t.Errorf("nil key accepted")
	}
}

// taapServer is a token endpoint plus an API that both verify PoP tokens
// independently of the builder.
type taapServer struct {
	*httptest.Server
	t          *testing.T
	fetches    atomic.Int32
	apiCalls   atomic.Int32
	tokenTTL   int
	tokenCode  int // status of the token endpoint; 0 = 200
	reject401  atomic.Int32
	mu         sync.Mutex
	problems   []string
	lastTokens []string
}

func newTAAPServer(t *testing.T) *taapServer {
	ts := &taapServer{t: t, tokenTTL: 3600}
	pub := &testKey().PublicKey
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/v2/tokens", func(w http.ResponseWriter, r *http.Request) {
		n := ts.fetches.Add(1)
		body, _ := io.ReadAll(r.Body)
		id, secret, ok := r.BasicAuth()
		switch {
		case !ok || id != "app" || secret != "s3cret":
			ts.problem("token call without Basic app:s3cret")
		case r.Header.Get("Content-Type") != "application/json":
			ts.problem("token call Content-Type " + r.Header.Get("Content-Type"))
		case len(body) != 0:
			ts.problem("token call has a body")
		}
		c, p := verifyPoP(pub, r.Header.Get("X-Authorization"), requestValue(r, body))
		if p != "" {
			ts.problem("token PoP: " + p)
		} else if c.Ehts != "Authorization;Content-Type;uri;http-method" {
			ts.problem("token PoP ehts " + c.Ehts)
		}
		if ts.tokenCode != 0 {
			w.WriteHeader(ts.tokenCode)
			io.WriteString(w, `{"reasonCode":"ERR-1","systemMessage":"UNAUTHORIZED","userMessage":"bad client"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"at-%d","expires_in":%d,"token_type":"Bearer"}`, n, ts.tokenTTL)
	})
	mux.HandleFunc("/qod/v1/", func(w http.ResponseWriter, r *http.Request) {
		ts.apiCalls.Add(1)
		body, _ := io.ReadAll(r.Body)
		c, p := verifyPoP(pub, r.Header.Get("X-Authorization"), requestValue(r, body))
		want := "Content-Type;Authorization;uri;http-method"
		if len(body) > 0 {
			want += ";body"
		}
		if p != "" {
			ts.problem("API PoP: " + p)
		} else if c.Ehts != want {
			ts.problem("API PoP ehts " + c.Ehts)
		}
		ts.mu.Lock()
		ts.lastTokens = append(ts.lastTokens, r.Header.Get("Authorization"))
		ts.mu.Unlock()
		if ts.reject401.Load() > 0 {
			ts.reject401.Add(-1)
			w.WriteHeader(401)
			io.WriteString(w, `{"reasonCode":"ERR-1091","systemMessage":"UNAUTHORIZED","userMessage":"token expired"}`)
			return
		}
		if r.Method == http.MethodDelete {
			w.WriteHeader(204)
			return
		}
		io.WriteString(w, sessionJSON)
	})
	ts.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		ts.Close()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, p := range ts.problems {
			t.Error(p)
		}
	})
	return ts
}

func (ts *taapServer) problem(p string) {
	ts.mu.Lock()
	ts.problems = append(ts.problems, p)
	ts.mu.Unlock()
}

func (ts *taapServer) tokens() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.lastTokens...)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTAAPClient(t *testing.T, ts *taapServer, clock *fakeClock) (*Client, *TAAP) {
	auth, err := NewTAAP(TAAPConfig{
		TokenURL: ts.URL + "/oauth2/v2/tokens", ClientID: "app", ClientSecret: "s3cret",
		PrivateKey: testKey(), Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newTestClient(t, Config{BaseURL: ts.URL + "/qod/v1", Auth: auth})
	return c, auth
}

func TestTAAPEndToEnd(t *testing.T) {
	ts := newTAAPServer(t)
	clock := &fakeClock{now: time.Now()}
	c, auth := newTAAPClient(t, ts, clock)
	ctx := context.Background()
	if _, err := c.Create(ctx, validRequest()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "3fa85f64-5717-4562-b3fc-2c963f66afa6"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "3fa85f64-5717-4562-b3fc-2c963f66afa6"); err != nil {
		t.Fatal(err)
	}
	if n := ts.fetches.Load(); n != 1 {
		t.Errorf("token fetched %d times, want 1 (cached)", n)
	}
	// Near expiry the token is refreshed before use.
	clock.Advance(3600*time.Second - 30*time.Second)
	if _, err := c.Get(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if n := ts.fetches.Load(); n != 2 {
		t.Errorf("token fetched %d times, want 2 after expiry", n)
	}
	if tk := ts.tokens(); tk[len(tk)-1] != "Bearer at-2" {
		t.Errorf("API saw %v", tk)
	}
	for _, s := range []string{auth.String(), fmt.Sprintf("%+v", auth)} {
		if strings.Contains(s, "s3cret") || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("app:s3cret"))) {
			t.Errorf("String leaks the secret: %s", s)
		}
	}
}

func TestTAAPRefreshesAfter401(t *testing.T) {
	ts := newTAAPServer(t)
	c, _ := newTAAPClient(t, ts, &fakeClock{now: time.Now()})
	if _, err := c.Get(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	ts.reject401.Store(1) // the server revoked at-1
	if _, err := c.Create(context.Background(), validRequest()); err != nil {
		t.Fatalf("create after a 401: %v", err)
	}
	if n := ts.fetches.Load(); n != 2 {
		t.Errorf("token fetched %d times, want 2", n)
	}
	if tk := ts.tokens(); strings.Join(tk, ",") != "Bearer at-1,Bearer at-1,Bearer at-2" {
		t.Errorf("API saw %v", tk)
	}
}

func TestTAAPConcurrentCallsShareOneFetch(t *testing.T) {
	ts := newTAAPServer(t)
	c, _ := newTAAPClient(t, ts, &fakeClock{now: time.Now()})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.Get(context.Background(), "x"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := ts.fetches.Load(); n != 1 {
		t.Errorf("token fetched %d times", n)
	}
}

func TestTAAPTokenEndpointRefuses(t *testing.T) {
	ts := newTAAPServer(t)
	ts.tokenCode = 401
	c, _ := newTAAPClient(t, ts, &fakeClock{now: time.Now()})
	_, err := c.Create(context.Background(), validRequest())
	if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnknownOutcome) || ts.apiCalls.Load() != 0 {
		t.Errorf("got %v, %d API calls", err, ts.apiCalls.Load())
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the secret: %v", err)
	}
}

func TestTAAPBadTokenAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"not json":     `<html>`,
		"no token":     `{"expires_in":3600}`,
		"token in bad": `{"access_token":"a b\nc","expires_in":3600}`,
		"huge":         `{"access_token":"` + strings.Repeat("x", maxBody+10) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
			defer srv.Close()
			auth, err := NewTAAP(TAAPConfig{TokenURL: srv.URL + "/t", ClientID: "a", ClientSecret: "b", PrivateKey: testKey()})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "http://x/qod/sessions/1", nil)
			err = auth.Authorize(context.Background(), req, nil)
			if !errors.Is(err, ErrMalformedResponse) || len(err.Error()) > 300 {
				t.Errorf("got %v", err)
			}
		})
	}
}

func TestNewTAAPChecksConfig(t *testing.T) {
	good := TAAPConfig{TokenURL: "https://h/oauth2/v2/tokens", ClientID: "a", ClientSecret: "b", PrivateKey: testKey()}
	if _, err := NewTAAP(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*TAAPConfig){
		"no url":    func(c *TAAPConfig) { c.TokenURL = "" },
		"relative":  func(c *TAAPConfig) { c.TokenURL = "/tokens" },
		"no id":     func(c *TAAPConfig) { c.ClientID = "" },
		"no secret": func(c *TAAPConfig) { c.ClientSecret = "" },
		"no key":    func(c *TAAPConfig) { c.PrivateKey = nil },
	} {
		cfg := good
		mod(&cfg)
		if _, err := NewTAAP(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadPrivateKeyFile(t *testing.T) {
	k8, err := LoadPrivateKeyFile("testdata/test-key-pkcs8.pem")
	if err != nil {
		t.Fatal(err)
	}
	k1, err := LoadPrivateKeyFile("testdata/test-key-pkcs1.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !k8.Equal(k1) || k8.N.BitLen() != 2048 {
		t.Errorf("PKCS#8 and PKCS#1 files hold different keys")
	}
	dir := t.TempDir()
	pem8, _ := os.ReadFile("testdata/test-key-pkcs8.pem")
	lines := strings.Split(string(pem8), "\n")
	corrupt := strings.Join(append(append([]string{}, lines[:5]...), append([]string{"AAAA" + lines[5][4:]}, lines[6:]...)...), "\n")
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	for name, tt := range map[string]struct{ path, want string }{
		"missing":   {filepath.Join(dir, "nope.pem"), "no such file"},
		"not pem":   {write("junk.pem", "hello"), "no PEM private key"},
		"cert only": {write("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "no PEM private key"},
		"ec key":    {"testdata/ec-key.pem", "want an RSA key"},
		"encrypted": {"testdata/encrypted-key.pem", "encrypted"},
		"small":     {"testdata/small-key.pem", "1024 bits"},
		"corrupt":   {write("corrupt.pem", corrupt), "not a valid"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadPrivateKeyFile(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want %q, got %v", tt.want, err)
			}
			for _, l := range lines[1 : len(lines)-2] {
				if len(l) > 8 && strings.Contains(err.Error(), l[:8]) {
					t.Errorf("error quotes key material: %v", err)
				}
			}
		})
	}
}

func TestPopURI(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://h:8443/qod/v1/sessions/a%20b?x=1%2F2&y=z", nil)
	if got := popURI(req.URL); got != "/qod/v1/sessions/a b?x=1/2&y=z" {
		t.Errorf("popURI = %q", got)
	}
}
