package qodsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	testClientID     = "qodwatch-test"
	testClientSecret = "s3cr3t-client"
)

// taapEnv is a TAAP-mode simulator and a hand-rolled TAAP client.
type taapEnv struct {
	srv   *Server
	clock *fakeClock
	key   *rsa.PrivateKey
}

func newTAAPEnv(t *testing.T) *taapEnv {
	t.Helper()
	key := clientKey(t)
	clock := newFakeClock()
	srv := startServer(t, Options{
		Now:  clock.Now,
		TAAP: &TAAPOptions{ClientID: testClientID, ClientSecret: testClientSecret, PublicKey: &key.PublicKey},
	})
	return &taapEnv{srv: srv, clock: clock, key: key}
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// uriOf is the TAAP "uri" item: path plus query of u.
func uriOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

// fetchToken gets an access token the way a TAAP client does.
func (e *taapEnv) fetchToken(t *testing.T) string {
	t.Helper()
	a := e.tokenCall(t, basic(testClientID, testClientSecret), nil)
	if a.status != http.StatusOK {
		t.Fatalf("token endpoint = %d %s", a.status, a.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token answer %s: %v", a.body, err)
	}
	if tok.ExpiresIn != 3600 || tok.TokenType != "Bearer" {
		t.Errorf("token answer %s, want Bearer and expires_in 3600", a.body)
	}
	return tok.AccessToken
}

// tokenCall posts to the token endpoint; mutate may change the PoP spec.
func (e *taapEnv) tokenCall(t *testing.T, authz string, mutate func(*popSpec)) answer {
	t.Helper()
	p := popSpec{
		key:    e.key,
		ehts:   []string{"Content-Type", "Authorization", "uri", "http-method"},
		values: map[string]string{"Content-Type": "application/json", "Authorization": authz, "uri": uriOf(t, e.srv.TokenURL), "http-method": "POST"},
		iat:    e.clock.Now(),
	}
	if mutate != nil {
		mutate(&p)
	}
	hdr := map[string]string{"Authorization": authz, "Content-Type": "application/json", "X-Authorization": popToken(t, p)}
	if authz == "" {
		hdr["Authorization"] = ""
	}
	return call(t, http.MethodPost, e.srv.TokenURL, "", hdr)
}

// apiCall sends an API request with Bearer token and a PoP token over
// Content-Type;Authorization;uri;http-method;body (body items only when
// there is a body). mutate may change the PoP spec; sentBody, if not nil,
// replaces the body actually sent.
func (e *taapEnv) apiCall(t *testing.T, method, path, body, token string, mutate func(*popSpec), sentBody *string) answer {
	t.Helper()
	target := e.srv.URL + path
	authz := "Bearer " + token
	p := popSpec{
		key:    e.key,
		ehts:   []string{"Authorization", "uri", "http-method"},
		values: map[string]string{"Authorization": authz, "uri": uriOf(t, target), "http-method": method},
		iat:    e.clock.Now(),
	}
	if body != "" {
		p.ehts = []string{"Content-Type", "Authorization", "uri", "http-method", "body"}
		p.values["Content-Type"] = "application/json"
		p.values["body"] = body
	}
	if mutate != nil {
		mutate(&p)
	}
	send := body
	if sentBody != nil {
		send = *sentBody
	}
	return call(t, method, target, send, map[string]string{"Authorization": authz, "X-Authorization": popToken(t, p)})
}

func TestTAAPTokenEndpoint(t *testing.T) {
	e := newTAAPEnv(t)
	cases := []struct {
		name   string
		authz  string
		mutate func(*popSpec)
		noPoP  bool
	}{
		{name: "no client credentials", authz: ""},
		{name: "wrong secret", authz: basic(testClientID, "guess")},
		{name: "wrong client id", authz: basic("someone", testClientSecret)},
		{name: "bearer instead of basic", authz: "Bearer " + testClientSecret},
		{name: "no PoP token", authz: basic(testClientID, testClientSecret), noPoP: true},
		{name: "PoP signs other credentials", authz: basic(testClientID, testClientSecret),
			mutate: func(p *popSpec) { p.values["Authorization"] = basic(testClientID, "other") }},
		{name: "PoP without Authorization item", authz: basic(testClientID, testClientSecret),
			mutate: func(p *popSpec) { p.ehts = []string{"uri", "http-method"} }},
		{name: "PoP expired", authz: basic(testClientID, testClientSecret),
			mutate: func(p *popSpec) { p.iat = e.clock.Now().Add(-3 * time.Minute) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.noPoP {
				a = call(t, http.MethodPost, e.srv.TokenURL, "", map[string]string{"Authorization": tc.authz})
			} else {
				a = e.tokenCall(t, tc.authz, tc.mutate)
			}
			if got := a.wantError(t, http.StatusUnauthorized, "UNAUTHORIZED"); got.ReasonCode != "ERR-1091" {
				t.Errorf("reasonCode = %q, want ERR-1091", got.ReasonCode)
			}
			if strings.Contains(string(a.body), testClientSecret) {
				t.Errorf("answer leaks the secret: %s", a.body)
			}
		})
	}
	if n := e.srv.TokensIssued(); n != 0 {
		t.Fatalf("%d tokens issued to bad requests", n)
	}
	tok1, tok2 := e.fetchToken(t), e.fetchToken(t)
	if tok1 == tok2 || e.srv.TokensIssued() != 2 {
		t.Errorf("two fetches gave %q and %q (%d issued)", tok1, tok2, e.srv.TokensIssued())
	}
	// The legacy path works too; GET does not.
	legacy := strings.Replace(e.srv.TokenURL, DefaultTokenPath, "/oauth2/v2/tokens", 1)
	authz := basic(testClientID, testClientSecret)
	p := popSpec{key: e.key, ehts: []string{"Authorization", "uri", "http-method"},
		values: map[string]string{"Authorization": authz, "uri": "/oauth2/v2/tokens", "http-method": "POST"}, iat: e.clock.Now()}
	if a := call(t, http.MethodPost, legacy, "", map[string]string{"Authorization": authz, "X-Authorization": popToken(t, p)}); a.status != http.StatusOK {
		t.Errorf("legacy token path = %d %s", a.status, a.body)
	}
	call(t, http.MethodGet, e.srv.TokenURL, "", nil).wantError(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
}

func TestTAAPAPICalls(t *testing.T) {
	e := newTAAPEnv(t)
	tok := e.fetchToken(t)
	body := createBody("4915112345", `"duration":600`)

	created := e.apiCall(t, http.MethodPost, "/sessions", body, tok, nil, nil)
	id := decodeInfo(t, created)["id"].(string)
	decodeInfo(t, e.apiCall(t, http.MethodGet, "/sessions/"+id, "", tok, nil, nil))

	otherKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tampered := createBody("4915112345", `"duration":86400`)
	bad := []struct {
		name     string
		method   string
		body     string
		token    string
		mutate   func(*popSpec)
		sentBody *string
		noPoP    bool
	}{
		{name: "no PoP token", method: http.MethodGet, noPoP: true},
		{name: "unknown access token", method: http.MethodGet, token: "made-up"},
		{name: "tampered body", method: http.MethodPost, body: createBody("4915100000", ""), sentBody: &tampered},
		{name: "PoP expired", method: http.MethodGet, mutate: func(p *popSpec) { p.iat = e.clock.Now().Add(-121 * time.Second) }},
		{name: "PoP from the future", method: http.MethodGet, mutate: func(p *popSpec) { p.iat = e.clock.Now().Add(10 * time.Minute) }},
		{name: "PoP lifetime a day", method: http.MethodGet, mutate: func(p *popSpec) { p.lifetime = 24 * time.Hour }},
		{name: "signed by another key", method: http.MethodGet, mutate: func(p *popSpec) { p.key = otherKey }},
		{name: "alg none", method: http.MethodGet, mutate: func(p *popSpec) { p.alg = "none" }},
		{name: "ehts without uri", method: http.MethodGet, mutate: func(p *popSpec) { p.ehts = []string{"Authorization", "http-method"} }},
		{name: "ehts without http-method", method: http.MethodGet, mutate: func(p *popSpec) { p.ehts = []string{"Authorization", "uri"} }},
		{name: "POST without body item", method: http.MethodPost, body: createBody("4915100001", ""),
			mutate: func(p *popSpec) { p.ehts = []string{"Content-Type", "Authorization", "uri", "http-method"} }},
		{name: "POST without Content-Type item", method: http.MethodPost, body: createBody("4915100002", ""),
			mutate: func(p *popSpec) { p.ehts = []string{"Authorization", "uri", "http-method", "body"} }},
		{name: "signed another uri", method: http.MethodGet, mutate: func(p *popSpec) { p.values["uri"] = DefaultBasePath + "/sessions" }},
		{name: "signed another method", method: http.MethodGet, mutate: func(p *popSpec) { p.values["http-method"] = "DELETE" }},
		{name: "signs a header the request lacks", method: http.MethodGet,
			mutate: func(p *popSpec) { p.ehts = append(p.ehts, "X-Missing"); p.values["X-Missing"] = "" }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			path := "/sessions/" + id
			if tc.method == http.MethodPost {
				path = "/sessions"
			}
			token := tok
			if tc.token != "" {
				token = tc.token
			}
			var a answer
			if tc.noPoP {
				a = call(t, tc.method, e.srv.URL+path, tc.body, map[string]string{"Authorization": "Bearer " + token})
			} else {
				a = e.apiCall(t, tc.method, path, tc.body, token, tc.mutate, tc.sentBody)
			}
			if got := a.wantError(t, http.StatusUnauthorized, "UNAUTHORIZED"); got.ReasonCode != "ERR-1091" {
				t.Errorf("reasonCode = %q", got.ReasonCode)
			}
			t.Log(a.errorBody(t).UserMessage)
		})
	}
	if n := e.srv.Creates(); n != 1 {
		t.Errorf("%d sessions created, want 1 (rejected calls must not act)", n)
	}

	t.Run("reused jti", func(t *testing.T) {
		target := e.srv.URL + "/sessions/" + id
		p := popSpec{key: e.key, ehts: []string{"Authorization", "uri", "http-method"},
			values: map[string]string{"Authorization": "Bearer " + tok, "uri": uriOf(t, target), "http-method": "GET"},
			iat:    e.clock.Now(), jti: "once-only"}
		hdr := map[string]string{"Authorization": "Bearer " + tok, "X-Authorization": popToken(t, p)}
		decodeInfo(t, call(t, http.MethodGet, target, "", hdr))
		call(t, http.MethodGet, target, "", hdr).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
		// Same jti, freshly signed: still a replay.
		hdr["X-Authorization"] = popToken(t, p)
		call(t, http.MethodGet, target, "", hdr).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	})

	t.Run("lower-case item names", func(t *testing.T) {
		a := e.apiCall(t, http.MethodGet, "/sessions/"+id, "", tok, func(p *popSpec) {
			p.ehts = []string{"authorization", "uri", "http-method"}
			p.values["authorization"] = p.values["Authorization"]
		}, nil)
		decodeInfo(t, a)
	})

	t.Run("DELETE with PoP", func(t *testing.T) {
		if a := e.apiCall(t, http.MethodDelete, "/sessions/"+id, "", tok, nil, nil); a.status != http.StatusNoContent {
			t.Fatalf("DELETE = %d %s", a.status, a.body)
		}
	})
}

func TestTAAPTokenLifetime(t *testing.T) {
	e := newTAAPEnv(t)
	tok := e.fetchToken(t)
	const unknownID = "0b7cb7a0-8c8a-4a56-9a43-6a0d7d3b1b2e"

	e.clock.Advance(3599 * time.Second)
	e.apiCall(t, http.MethodGet, "/sessions/"+unknownID, "", tok, nil, nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	e.clock.Advance(time.Second)
	e.apiCall(t, http.MethodGet, "/sessions/"+unknownID, "", tok, nil, nil).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")

	// ExpireTokens revokes what was issued; a new token works.
	tok = e.fetchToken(t)
	e.srv.SetFaults(Faults{ExpireTokens: true})
	e.apiCall(t, http.MethodGet, "/sessions/"+unknownID, "", tok, nil, nil).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	tok = e.fetchToken(t)
	e.apiCall(t, http.MethodGet, "/sessions/"+unknownID, "", tok, nil, nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
}

func TestParsePublicKeyPEM(t *testing.T) {
	key := clientKey(t)
	pkix, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	good := map[string][]byte{
		"PUBLIC KEY":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"RSA PUBLIC KEY":  pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}),
		"PRIVATE KEY":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"RSA PRIVATE KEY": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"after a comment block": append(pem.EncodeToMemory(&pem.Block{Type: "COMMENT", Bytes: []byte("x")}),
			pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})...),
	}
	for name, data := range good {
		got, err := ParsePublicKeyPEM(data)
		if err != nil || !got.Equal(&key.PublicKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string][]byte{
		"empty":        nil,
		"not PEM":      []byte("hello"),
		"garbage DER":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}),
		"other blocks": pem.EncodeToMemory(&pem.Block{Type: "COMMENT", Bytes: []byte("x")}),
	}
	for name, data := range bad {
		if _, err := ParsePublicKeyPEM(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSecretsStayOutOfStrings(t *testing.T) {
	key := clientKey(t)
	opts := Options{BearerToken: "static-token-value", TAAP: &TAAPOptions{ClientID: "id", ClientSecret: "client-secret-value", PublicKey: &key.PublicKey}}
	for _, s := range []string{fmt.Sprint(opts), fmt.Sprintf("%+v", opts), fmt.Sprintf("%#v", opts), fmt.Sprint(*opts.TAAP), fmt.Sprintf("%#v", opts.TAAP)} {
		if strings.Contains(s, "static-token-value") || strings.Contains(s, "client-secret-value") {
			t.Errorf("secret in %q", s)
		}
	}
}
