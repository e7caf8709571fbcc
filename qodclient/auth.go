package qodclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Auth authorises API requests.
type Auth interface {
	// Authorize adds credentials to req, whose body (nil when empty) is
	// given separately because some schemes sign it. Content-Type is
	// already set.
	Authorize(ctx context.Context, req *http.Request, body []byte) error
	// Invalidate drops any cached token; the client calls it after a 401
	// and then retries the call once.
	Invalidate()
}

// NewBearer returns an Auth that sends a fixed bearer token.
func NewBearer(token string) Auth { return &bearer{token: token} }

type bearer struct{ token string }

func (b *bearer) Authorize(_ context.Context, req *http.Request, _ []byte) error {
	if err := checkToken(b.token); err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	return nil
}

func (b *bearer) Invalidate() {}

func (b *bearer) String() string { return "bearer(token redacted)" }

// NewBearerFromFile returns an Auth that sends the token stored in a file
// (surrounding whitespace ignored). After a 401 the file is read again, so a
// token rotated by another process is picked up.
func NewBearerFromFile(path string) (Auth, error) {
	b := &bearerFile{path: path}
	if _, err := b.load(); err != nil {
		return nil, err
	}
	return b, nil
}

type bearerFile struct {
	path  string
	mu    sync.Mutex
	token string
}

func (b *bearerFile) load() (string, error) {
	data, err := os.ReadFile(b.path)
	if err != nil {
		return "", fmt.Errorf("read bearer token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("bearer token file %s: %w", b.path, err)
	}
	b.mu.Lock()
	b.token = tok
	b.mu.Unlock()
	return tok, nil
}

func (b *bearerFile) Authorize(_ context.Context, req *http.Request, _ []byte) error {
	b.mu.Lock()
	tok := b.token
	b.mu.Unlock()
	if tok == "" {
		var err error
		if tok, err = b.load(); err != nil {
			return err
		}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (b *bearerFile) Invalidate() {
	b.mu.Lock()
	b.token = ""
	b.mu.Unlock()
}

func (b *bearerFile) String() string { return "bearer(file " + b.path + ")" }

// checkToken rejects tokens that cannot travel in a header. The token itself
// never appears in the error.
func checkToken(tok string) error {
	if tok == "" {
		return errors.New("empty bearer token")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("bearer token has a space, control or non-ASCII character at byte %d", i)
		}
	}
	return nil
}

// OAuth2Config configures the standard OAuth 2.0 client-credentials grant.
type OAuth2Config struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// EndpointParams are extra form values for the token request.
	EndpointParams url.Values
	// HTTPClient fetches tokens; nil means a client with a 30s timeout.
	HTTPClient *http.Client
}

// NewOAuth2 returns an Auth using golang.org/x/oauth2/clientcredentials,
// caching the token until shortly before it expires.
func NewOAuth2(cfg OAuth2Config) Auth {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	o := &oauth2Auth{
		cc: clientcredentials.Config{
			ClientID:       cfg.ClientID,
			ClientSecret:   cfg.ClientSecret,
			TokenURL:       cfg.TokenURL,
			Scopes:         cfg.Scopes,
			EndpointParams: cfg.EndpointParams,
		},
		// The token source outlives any one call, so it gets its own context
		// carrying only the HTTP client.
		ctx: context.WithValue(context.Background(), oauth2.HTTPClient, hc),
	}
	o.Invalidate()
	return o
}

type oauth2Auth struct {
	cc  clientcredentials.Config
	ctx context.Context
	mu  sync.Mutex
	ts  oauth2.TokenSource
}

func (o *oauth2Auth) Authorize(_ context.Context, req *http.Request, _ []byte) error {
	o.mu.Lock()
	ts := o.ts
	o.mu.Unlock()
	tok, err := ts.Token()
	if err != nil {
		return fmt.Errorf("oauth2: get access token from %s: %w", o.cc.TokenURL, err)
	}
	tok.SetAuthHeader(req)
	return nil
}

func (o *oauth2Auth) Invalidate() {
	o.mu.Lock()
	o.ts = oauth2.ReuseTokenSource(nil, o.cc.TokenSource(o.ctx))
	o.mu.Unlock()
}

func (o *oauth2Auth) String() string {
	return fmt.Sprintf("oauth2(client_id=%s, token_url=%s)", o.cc.ClientID, o.cc.TokenURL)
}
