package qodclient

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// TAAPConfig configures T-Mobile API Access Protocol authentication.
type TAAPConfig struct {
	// TokenURL is the token endpoint, e.g. https://host/oauth2/v2/tokens.
	TokenURL     string
	ClientID     string
	ClientSecret string
	// PrivateKey signs the PoP tokens; its public half is registered with
	// the operator.
	PrivateKey *rsa.PrivateKey
	// HTTPClient fetches tokens; nil means a client with a 30s timeout.
	HTTPClient *http.Client
	// Now is the clock for token expiry and PoP iat; nil means time.Now.
	Now func() time.Time
}

// TAAP authenticates with an access token from the TAAP token endpoint plus
// a fresh PoP token per request (X-Authorization). It is safe for
// concurrent use; concurrent callers share one token fetch.
type TAAP struct {
	tokenURL     string
	tokenURI     string // path and query of tokenURL, as signed
	clientID     string
	basic        string // "Basic ..." header value: a secret
	key          *rsa.PrivateKey
	http         *http.Client
	now          func() time.Time
	fetchLock    chan struct{} // one token fetch at a time, abandonable via ctx
	mu           sync.Mutex
	token        string
	refreshAfter time.Time
}

// defaultTokenTTL is assumed when the token answer has no expires_in.
const defaultTokenTTL = 5 * time.Minute

// NewTAAP checks cfg and returns a TAAP Auth. No request is made until the
// first call.
func NewTAAP(cfg TAAPConfig) (*TAAP, error) {
	u, err := url.Parse(cfg.TokenURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("taap: token URL %q must be an absolute http or https URL", cfg.TokenURL)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("taap: client id and client secret are required")
	}
	if cfg.PrivateKey == nil {
		return nil, errors.New("taap: a private key is required to sign PoP tokens")
	}
	if err := cfg.PrivateKey.Validate(); err != nil {
		return nil, errors.New("taap: private key is not a valid RSA key")
	}
	cfg.PrivateKey.Precompute() // once here, not per signature
	t := &TAAP{
		tokenURL:  cfg.TokenURL,
		tokenURI:  popURI(u),
		clientID:  cfg.ClientID,
		key:       cfg.PrivateKey,
		http:      cfg.HTTPClient,
		now:       cfg.Now,
		fetchLock: make(chan struct{}, 1),
	}
	req, _ := http.NewRequest(http.MethodPost, cfg.TokenURL, nil)
	req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
	t.basic = req.Header.Get("Authorization")
	if t.http == nil {
		t.http = &http.Client{Timeout: 30 * time.Second}
	}
	if t.now == nil {
		t.now = time.Now
	}
	return t, nil
}

// String names the client without its secrets.
func (t *TAAP) String() string {
	return fmt.Sprintf("taap(client_id=%s, token_url=%s)", t.clientID, t.tokenURL)
}

// Authorize sets Authorization (the cached access token, fetched when
// needed) and X-Authorization: a PoP token over Content-Type, Authorization,
// uri, http-method and, when not empty, body.
func (t *TAAP) Authorize(ctx context.Context, req *http.Request, body []byte) error {
	tok, err := t.accessToken(ctx)
	if err != nil {
		return err
	}
	authz := "Bearer " + tok
	req.Header.Set("Authorization", authz)
	ct := req.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
		req.Header.Set("Content-Type", ct)
	}
	items := make([]PoPItem, 4, 5)
	items[0] = PoPItem{"Content-Type", ct}
	items[1] = PoPItem{"Authorization", authz}
	items[2] = PoPItem{"uri", popURI(req.URL)}
	items[3] = PoPItem{"http-method", req.Method}
	if len(body) > 0 {
		items = append(items, PoPItem{"body", string(body)})
	}
	pop, err := NewPoPToken(t.key, items, t.now())
	if err != nil {
		return fmt.Errorf("taap: %w", err)
	}
	req.Header.Set("X-Authorization", pop)
	return nil
}

// Invalidate drops the cached access token.
func (t *TAAP) Invalidate() {
	t.mu.Lock()
	t.token = ""
	t.mu.Unlock()
}

func (t *TAAP) cached() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.now().Before(t.refreshAfter) {
		return t.token
	}
	return ""
}

func (t *TAAP) accessToken(ctx context.Context) (string, error) {
	if tok := t.cached(); tok != "" {
		return tok, nil
	}
	select {
	case t.fetchLock <- struct{}{}:
		defer func() { <-t.fetchLock }()
	case <-ctx.Done():
		return "", fmt.Errorf("taap: wait for access token: %w", ctx.Err())
	}
	if tok := t.cached(); tok != "" { // fetched while we waited
		return tok, nil
	}
	tok, ttl, err := t.fetch(ctx)
	if err != nil {
		return "", fmt.Errorf("taap: get access token: %w", err)
	}
	// Refresh a little early so a token never expires in flight.
	margin := min(time.Minute, ttl/5)
	t.mu.Lock()
	t.token, t.refreshAfter = tok, t.now().Add(ttl-margin)
	t.mu.Unlock()
	return tok, nil
}

type taapTokenAnswer struct {
	AccessToken string  `json:"access_token"`
	ExpiresIn   wireInt `json:"expires_in"`
	TokenType   string  `json:"token_type"`
}

// fetch asks the token endpoint: POST, Basic client credentials, JSON
// content type, empty body, PoP token over Authorization, Content-Type, uri
// and http-method.
func (t *TAAP) fetch(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.tokenURL, http.NoBody)
	if err != nil {
		return "", 0, err
	}
	const ct = "application/json"
	req.Header.Set("Authorization", t.basic)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	pop, err := NewPoPToken(t.key, []PoPItem{
		{"Authorization", t.basic},
		{"Content-Type", ct},
		{"uri", t.tokenURI},
		{"http-method", http.MethodPost},
	}, t.now())
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("X-Authorization", pop)
	resp, err := t.http.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return "", 0, fmt.Errorf("read token answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", 0, decodeError(http.MethodPost, req.URL.Path, "", resp.StatusCode, resp.Header, data, t.now())
	}
	if len(data) > maxBody {
		return "", 0, fmt.Errorf("%w: token answer exceeds %d bytes", ErrMalformedResponse, maxBody)
	}
	var a taapTokenAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		// Not wrapping the decoder's error: it may quote the token.
		return "", 0, fmt.Errorf("%w: token answer is not the expected JSON", ErrMalformedResponse)
	}
	if err := checkToken(a.AccessToken); err != nil {
		return "", 0, fmt.Errorf("%w: token answer: access_token: %v", ErrMalformedResponse, err)
	}
	ttl := time.Duration(a.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = defaultTokenTTL
	}
	return a.AccessToken, ttl, nil
}

// popURI is the "uri" PoP item: path and query, not URL-encoded.
func popURI(u *url.URL) string {
	p := u.Path
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		q, err := url.PathUnescape(u.RawQuery)
		if err != nil {
			q = u.RawQuery
		}
		p += "?" + q
	}
	return p
}

// LoadPrivateKeyFile reads an RSA private key from a PEM file in PKCS#8
// ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") form. Errors name the file
// and the problem, never the key material.
func LoadPrivateKeyFile(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	key, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return key, nil
}

func parsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	var block *pem.Block
	for {
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block found")
		}
		if block.Type == "PRIVATE KEY" || block.Type == "RSA PRIVATE KEY" {
			break
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
			return nil, errors.New("encrypted private keys are not supported; store it unencrypted with tight file permissions")
		}
	}
	if block.Headers["Proc-Type"] != "" {
		return nil, errors.New("encrypted private keys are not supported; store it unencrypted with tight file permissions")
	}
	var key *rsa.PrivateKey
	if block.Type == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("PKCS#1 block is not a valid RSA private key")
		}
		key = k
	} else {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("PKCS#8 block is not a valid private key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("PKCS#8 key is %T, want an RSA key", k)
		}
		key = rk
	}
	if bits := key.N.BitLen(); bits < 2048 {
		return nil, fmt.Errorf("RSA key has %d bits, want at least 2048", bits)
	}
	return key, nil
}
