package qodsim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// signRaw signs arbitrary header and claims JSON, to build malformed tokens.
func signRaw(t testing.TB, key *rsa.PrivateKey, header, claims string) string {
	t.Helper()
	signing := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestMalformedPoPTokens(t *testing.T) {
	key := clientKey(t)
	now := newFakeClock().Now()
	sim := New(Options{Now: func() time.Time { return now }, TAAP: &TAAPOptions{ClientID: "a", ClientSecret: "b", PublicKey: &key.PublicKey}})
	t.Cleanup(sim.Close)
	req := httptest.NewRequest(http.MethodGet, "/qod/v1/sessions/x", nil)
	req.Header.Set("Authorization", "Bearer t")
	edts := func() string {
		h := sha256.Sum256([]byte("Bearer t" + "/qod/v1/sessions/x" + "GET"))
		return base64.RawURLEncoding.EncodeToString(h[:])
	}()
	iat, exp := "1714564800", "1714564920" // the fake clock's now, now+120
	claims := func(fields ...string) string { return "{" + strings.Join(fields, ",") + "}" }
	ehts := `"ehts":"Authorization;uri;http-method"`
	good := []string{ehts, `"edts":"` + edts + `"`, `"iat":` + iat, `"exp":` + exp, `"jti":"j1"`}
	without := func(i int) []string {
		out := append([]string(nil), good[:i]...)
		return append(out, good[i+1:]...)
	}
	hdr := `{"alg":"RS256","typ":"JWT"}`

	cases := map[string]struct{ tok, want string }{
		"empty parts":        {"..", "header"},
		"two parts":          {"a.b", "three"},
		"four parts":         {"a.b.c.d", "three"},
		"header not base64":  {"!!!." + strings.SplitN(signRaw(t, key, hdr, claims(good...)), ".", 2)[1], "not base64url"},
		"header not json":    {signRaw(t, key, `not json`, claims(good...)), "header"},
		"header alg HS256":   {signRaw(t, key, `{"alg":"HS256"}`, claims(good...)), "HS256"},
		"signature garbage":  {strings.Join(strings.Split(signRaw(t, key, hdr, claims(good...)), ".")[:2], ".") + ".@@@", "signature"},
		"claims not json":    {signRaw(t, key, hdr, `[1,2`), "claims"},
		"claims array":       {signRaw(t, key, hdr, `[]`), "claims"},
		"no ehts":            {signRaw(t, key, hdr, claims(without(0)...)), "lacks ehts"},
		"no edts":            {signRaw(t, key, hdr, claims(without(1)...)), "lacks ehts"},
		"no iat":             {signRaw(t, key, hdr, claims(without(2)...)), "no iat"},
		"no exp":             {signRaw(t, key, hdr, claims(without(3)...)), "no exp"},
		"no jti":             {signRaw(t, key, hdr, claims(without(4)...)), "no jti"},
		"exp not a number":   {signRaw(t, key, hdr, claims(append(without(3), `"exp":"soon"`)...)), "claims"},
		"exp negative":       {signRaw(t, key, hdr, claims(append(without(3), `"exp":-1`)...)), "exp is not a time"},
		"exp huge":           {signRaw(t, key, hdr, claims(append(without(3), `"exp":1e300`)...)), "exp is not a time"},
		"exp equals now":     {signRaw(t, key, hdr, claims(append(without(3), `"exp":`+iat)...)), "expired"},
		"v is 2":             {signRaw(t, key, hdr, claims(append(good, `"v":"2"`)...)), "version"},
		"edts of other data": {signRaw(t, key, hdr, claims(append(without(1), `"edts":"AAAA"`)...)), "edts does not match"},
	}
	check := func(tok string) error {
		r := req.Clone(req.Context())
		r.Header.Set("X-Authorization", tok)
		return sim.verifyPoP(r, nil, now)
	}
	for name, tc := range cases {
		if err := check(tc.tok); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.want)
		}
	}
	// The well-formed token passes, with fractional times and numeric v too.
	if err := check(signRaw(t, key, hdr, claims(append(good, `"v":1`)...))); err != nil {
		t.Errorf("good token: %v", err)
	}
	frac := append(without(4), `"jti":"j2"`)
	frac[2], frac[3] = `"iat":1714564800.5`, `"exp":1714564920.25`
	if err := check(signRaw(t, key, hdr, claims(frac...))); err != nil {
		t.Errorf("fractional times: %v", err)
	}
}

func TestPoPURIWithQuery(t *testing.T) {
	e := newTAAPEnv(t)
	tok := e.fetchToken(t)
	const id = "0b7cb7a0-8c8a-4a56-9a43-6a0d7d3b1b2e"
	// Signed as sent (escaped) and signed decoded: both are accepted.
	for _, signed := range []string{DefaultBasePath + "/sessions/" + id + "?note=a%20b", DefaultBasePath + "/sessions/" + id + "?note=a b"} {
		a := e.apiCall(t, http.MethodGet, "/sessions/"+id+"?note=a%20b", "", tok, func(p *popSpec) { p.values["uri"] = signed }, nil)
		a.wantError(t, http.StatusNotFound, "NOT_FOUND")
	}
	a := e.apiCall(t, http.MethodGet, "/sessions/"+id+"?note=a%20b", "", tok, func(p *popSpec) { p.values["uri"] = DefaultBasePath + "/sessions/" + id }, nil)
	a.wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
}

// FuzzVerifyPoP checks that no X-Authorization value makes the verifier
// panic or accept a token not signed by the client's key.
func FuzzVerifyPoP(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	sim := New(Options{TAAP: &TAAPOptions{ClientID: "a", ClientSecret: "b", PublicKey: &key.PublicKey}})
	defer sim.Close()
	f.Add("")
	f.Add("a.b.c")
	f.Add(signRaw(f, key, `{"alg":"RS256"}`, `{"ehts":"uri","edts":"x","iat":1,"exp":2,"jti":"j"}`))
	f.Add("eyJhbGciOiJub25lIn0.eyJqdGkiOiJqIn0.")
	f.Fuzz(func(t *testing.T, tok string) {
		r := httptest.NewRequest(http.MethodGet, "/qod/v1/sessions/x", nil)
		r.Header.Set("X-Authorization", tok)
		if err := sim.verifyPoP(r, nil, time.Unix(1, 0)); err == nil {
			t.Errorf("accepted %q", tok)
		}
	})
}
