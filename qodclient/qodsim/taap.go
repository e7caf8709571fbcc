package qodsim

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// PoP token limits. TAAP builders use a lifetime of 60-120 s; the
// simulator accepts a little clock skew and refuses lifetimes that would
// make its replay memory grow without bound.
const (
	popMaxFutureIat = 60 * time.Second
	popMaxLifetime  = 10 * time.Minute
)

// checkAuth reports why an API call is not authorized, in words safe to
// return to the caller (no token values).
func (s *Simulator) checkAuth(r *http.Request, body []byte) error {
	s.mu.Lock()
	expireAll := s.faults.ExpireTokens
	s.mu.Unlock()
	switch {
	case s.opts.TAAP != nil || s.opts.OAuth2 != nil:
		tok, ok := bearerToken(r)
		if !ok {
			return errors.New("missing bearer access token")
		}
		now := s.opts.Now()
		s.mu.Lock()
		exp, known := s.tokens[tok]
		s.mu.Unlock()
		if !known || !now.Before(exp) {
			return errors.New("access token unknown or expired")
		}
		if s.opts.TAAP == nil {
			return nil
		}
		return s.verifyPoP(r, body, now)
	case s.opts.BearerToken != "":
		tok, ok := bearerToken(r)
		if !ok {
			return errors.New("missing bearer access token")
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.BearerToken)) != 1 {
			return errors.New("access token not accepted")
		}
		if expireAll {
			return errors.New("access token expired")
		}
	case expireAll:
		return errors.New("access token expired")
	}
	return nil
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// tokenAnswer is the TAAP token endpoint's answer.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// serveToken issues an access token for Basic client credentials plus a
// PoP token. It ignores injected error faults (they target API calls) but
// not latency.
func (s *Simulator) serveToken(r *http.Request, body []byte) *reply {
	t := s.opts.TAAP
	id, secret, ok := r.BasicAuth()
	if !ok {
		return errorReply(http.StatusUnauthorized, "Authorization failed: missing Basic client credentials")
	}
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(t.ClientID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(t.ClientSecret))
	if idOK&secretOK != 1 {
		return errorReply(http.StatusUnauthorized, "Authorization failed: client credentials not accepted")
	}
	now := s.opts.Now()
	if err := s.verifyPoP(r, body, now); err != nil {
		return errorReply(http.StatusUnauthorized, "Authorization failed: "+err.Error())
	}
	tok, err := s.issueToken(t.TokenTTL)
	if err != nil {
		return errorReply(http.StatusInternalServerError, "Could not issue a token")
	}
	s.log.Info("qodsim access token issued", "client_id", id, "expires_in_seconds", int64(t.TokenTTL.Seconds()))
	rep := jsonReply(http.StatusOK, tokenAnswer{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(t.TokenTTL.Seconds())})
	rep.header.Set("Cache-Control", "no-store")
	return rep
}

// popHeader and popClaims are the parts of a PoP JWT the simulator reads.
type popHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
}

type popClaims struct {
	EHTS string          `json:"ehts"`
	EDTS string          `json:"edts"`
	Iat  json.Number     `json:"iat"`
	Exp  json.Number     `json:"exp"`
	JTI  string          `json:"jti"`
	V    json.RawMessage `json:"v"`
}

// verifyPoP checks the X-Authorization PoP token of r: RS256 signature by
// the client's key, lifetime, the signed items and their digest recomputed
// from the request, and a jti not seen before.
func (s *Simulator) verifyPoP(r *http.Request, body []byte, now time.Time) error {
	tok := r.Header.Get("X-Authorization")
	if tok == "" {
		return errors.New("missing PoP token in X-Authorization")
	}
	claims, err := verifyRS256(tok, s.opts.TAAP.PublicKey)
	if err != nil {
		return fmt.Errorf("PoP token: %w", err)
	}
	exp, err := claimTime(claims.Exp, "exp")
	if err != nil {
		return err
	}
	iat, err := claimTime(claims.Iat, "iat")
	if err != nil {
		return err
	}
	switch {
	case !now.Before(exp):
		return errors.New("PoP token expired")
	case iat.After(now.Add(popMaxFutureIat)):
		return errors.New("PoP token issued in the future")
	case exp.After(now.Add(popMaxLifetime)):
		return fmt.Errorf("PoP token lifetime exceeds %s", popMaxLifetime)
	}
	if len(claims.V) > 0 && string(claims.V) != `"1"` && string(claims.V) != "1" {
		return errors.New("PoP token version v is not 1")
	}
	if err := checkSignedItems(r, body, claims); err != nil {
		return err
	}
	if claims.JTI == "" {
		return errors.New("PoP token has no jti")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.jtis[claims.JTI]; seen {
		return errors.New("PoP token reused (jti seen before)")
	}
	s.jtis[claims.JTI] = exp
	// A jti only needs remembering while its token could still pass the
	// exp check; prune now and then.
	if s.jtiAdds++; s.jtiAdds%256 == 0 {
		for k, e := range s.jtis {
			if !now.Before(e) {
				delete(s.jtis, k)
			}
		}
	}
	return nil
}

// verifyRS256 checks the JWT's RS256 signature and returns its claims.
func verifyRS256(tok string, key *rsa.PublicKey) (*popClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT (want three dot-separated parts)")
	}
	var hdr popHeader
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if hdr.Alg != "RS256" {
		return nil, fmt.Errorf("alg %q, want RS256", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("signature is not base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return nil, errors.New("signature does not verify with the client's public key")
	}
	var claims popClaims
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return &claims, nil
}

func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errors.New("not a JSON object of the expected shape")
	}
	return nil
}

// claimTime reads a NumericDate claim (seconds, possibly fractional).
func claimTime(n json.Number, name string) (time.Time, error) {
	if n == "" {
		return time.Time{}, fmt.Errorf("PoP token has no %s", name)
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("PoP token %s is not a time in seconds", name)
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), nil
}

// checkSignedItems checks that ehts covers what must be signed and that
// edts is the digest of those items' values in this request.
func checkSignedItems(r *http.Request, body []byte, c *popClaims) error {
	if c.EHTS == "" || c.EDTS == "" {
		return errors.New("PoP token lacks ehts or edts")
	}
	names := strings.Split(c.EHTS, ";")
	has := map[string]bool{}
	for _, n := range names {
		has[strings.ToLower(strings.TrimSpace(n))] = true
	}
	need := []string{"authorization", "uri", "http-method"}
	if len(body) > 0 {
		need = append(need, "content-type", "body")
	}
	for _, n := range need {
		if !has[n] {
			return fmt.Errorf("PoP token ehts does not sign %s", n)
		}
	}
	// "uri" is path plus query, not URL-encoded. Clients differ on whether
	// they sign the path as sent or decoded; both are accepted.
	uris := []string{r.URL.RequestURI()}
	if plain := plainURI(r.URL); plain != uris[0] {
		uris = append(uris, plain)
	}
	for _, uri := range uris {
		h := sha256.New()
		for _, n := range names {
			n = strings.TrimSpace(n)
			switch strings.ToLower(n) {
			case "uri":
				h.Write([]byte(uri))
			case "http-method":
				h.Write([]byte(r.Method))
			case "body":
				h.Write(body)
			default:
				vals, ok := r.Header[http.CanonicalHeaderKey(n)]
				if !ok || len(vals) == 0 {
					return fmt.Errorf("PoP token signs header %s, which the request lacks", n)
				}
				h.Write([]byte(vals[0]))
			}
		}
		got := base64.RawURLEncoding.EncodeToString(h.Sum(nil))
		if subtle.ConstantTimeCompare([]byte(got), []byte(c.EDTS)) == 1 {
			return nil
		}
	}
	return errors.New("PoP token edts does not match the request (tampered or wrongly signed)")
}

// plainURI is the decoded path plus the decoded query.
func plainURI(u *url.URL) string {
	s := u.Path
	if u.RawQuery != "" {
		q, err := url.QueryUnescape(u.RawQuery)
		if err != nil {
			q = u.RawQuery
		}
		s += "?" + q
	}
	return s
}

// ParsePublicKeyPEM reads an RSA public key from PEM: a PKIX "PUBLIC KEY",
// a PKCS#1 "RSA PUBLIC KEY", a certificate, or a private key (PKCS#8 or
// PKCS#1), whose public half is used. It is for wiring TAAP mode from files.
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			return nil, errors.New("parse RSA public key: no usable PEM block")
		}
		data = rest
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			// The parse error says nothing about the key material.
			return nil, fmt.Errorf("parse RSA public key from PEM %q block: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			return k, nil
		case *rsa.PrivateKey:
			return &k.PublicKey, nil
		default:
			return nil, fmt.Errorf("parse RSA public key: PEM %q block holds a %T, not an RSA key", block.Type, key)
		}
	}
}
