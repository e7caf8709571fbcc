package qodclient

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKey is the 2048-bit test key from testdata, loaded once.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := LoadPrivateKeyFile("testdata/test-key-pkcs8.pem")
	if err != nil {
		panic(err)
	}
	return k
})

// recordSleeps replaces the client's wait between attempts with one that
// records the requested delays and returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

func newTestClient(t *testing.T, cfg Config) (*Client, *sleepRecorder) {
	t.Helper()
	if cfg.Retry == (RetryPolicy{}) {
		cfg.Retry = RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 5 * time.Second}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rec := &sleepRecorder{}
	c.sleep = rec.sleep
	return c, rec
}

// popClaims is what the independent verifier reads from a PoP token.
type popClaims struct {
	Iat  int64  `json:"iat"`
	Exp  int64  `json:"exp"`
	Ehts string `json:"ehts"`
	Edts string `json:"edts"`
	Jti  string `json:"jti"`
	V    any    `json:"v"`
}

// verifyPoP checks a PoP token without using the builder's code: split the
// JWT, check the header, verify RS256 with the public key, and recompute
// edts from the values the request actually carried.
func verifyPoP(pub *rsa.PublicKey, tok string, value func(name string) string) (popClaims, string) {
	var c popClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, "not three JWT parts"
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, "header not base64url: " + err.Error()
	}
	var h map[string]any
	if err := json.Unmarshal(hdr, &h); err != nil || h["alg"] != "RS256" || h["typ"] != "JWT" {
		return c, "bad JWT header " + string(hdr)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, "signature not base64url"
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return c, "signature does not verify: " + err.Error()
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, "claims not base64url"
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, "claims not JSON: " + err.Error()
	}
	if c.Exp-c.Iat != 120 {
		return c, "exp is not iat+120"
	}
	if c.V != "1" {
		return c, "v is not \"1\""
	}
	if c.Jti == "" {
		return c, "no jti"
	}
	var concat strings.Builder
	for _, name := range strings.Split(c.Ehts, ";") {
		concat.WriteString(value(name))
	}
	sum := sha256.Sum256([]byte(concat.String()))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); c.Edts != want {
		return c, "edts " + c.Edts + " does not match the request, want " + want
	}
	return c, ""
}

// requestValue gives the PoP item values of an incoming request.
func requestValue(r *http.Request, body []byte) func(string) string {
	return func(name string) string {
		switch name {
		case "uri":
			return r.URL.RequestURI()
		case "http-method":
			return r.Method
		case "body":
			return string(body)
		}
		return r.Header.Get(name)
	}
}

// stubAuth counts calls and can fail.
type stubAuth struct {
	mu          sync.Mutex
	authorized  int
	invalidated int
	fail        []error // returned by successive Authorize calls while non-empty
}

func (a *stubAuth) Authorize(_ context.Context, req *http.Request, _ []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.authorized++
	if len(a.fail) > 0 {
		err := a.fail[0]
		a.fail = a.fail[1:]
		return err
	}
	req.Header.Set("Authorization", "Bearer gen"+string(rune('0'+a.invalidated)))
	return nil
}

func (a *stubAuth) Invalidate() {
	a.mu.Lock()
	a.invalidated++
	a.mu.Unlock()
}

func (a *stubAuth) counts() (int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.authorized, a.invalidated
}
