package qodsim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// OAuth2TokenPath is where the OAuth 2.0 client-credentials token endpoint
// is served when Options.OAuth2 is set.
const OAuth2TokenPath = "/oauth2/token"

// OAuth2Options turns on plain OAuth 2.0 client-credentials auth (RFC 6749
// section 4.4), as Open Gateway operators use: a token endpoint at
// OAuth2TokenPath, and every API call needs "Authorization: Bearer" with an
// issued, unexpired token. No PoP token.
type OAuth2Options struct {
	ClientID     string
	ClientSecret string
	// TokenTTL is the lifetime of issued tokens (default 3600s).
	TokenTTL time.Duration
}

// String keeps the client secret out of logs and %v output.
func (o OAuth2Options) String() string {
	return fmt.Sprintf("OAuth2{ClientID: %q, TokenTTL: %s}", o.ClientID, o.TokenTTL)
}

// GoString keeps the client secret out of %#v output.
func (o OAuth2Options) GoString() string { return o.String() }

// oauth2Error is the RFC 6749 section 5.2 error body.
type oauth2Error struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func oauth2ErrorReply(status int, code, desc string) *reply {
	rep := jsonReply(status, oauth2Error{Error: code, Description: desc})
	rep.header.Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		rep.header.Set("WWW-Authenticate", `Basic realm="qodsim"`)
	}
	return rep
}

// serveOAuth2Token issues a token for client credentials sent either as
// HTTP Basic (form-encoded id and secret, as RFC 6749 section 2.3.1 says)
// or as client_id/client_secret form fields.
func (s *Simulator) serveOAuth2Token(r *http.Request, body []byte) *reply {
	o := s.opts.OAuth2
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return oauth2ErrorReply(http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return oauth2ErrorReply(http.StatusBadRequest, "invalid_request", "body is not a form")
	}
	if form.Get("grant_type") != "client_credentials" {
		return oauth2ErrorReply(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// Undo the form encoding; a client that skipped it still works
		// unless its id or secret holds '%' or '+'.
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(o.ClientID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(o.ClientSecret))
	if idOK&secretOK != 1 {
		return oauth2ErrorReply(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	tok, err := s.issueToken(o.TokenTTL)
	if err != nil {
		return oauth2ErrorReply(http.StatusInternalServerError, "server_error", "could not issue a token")
	}
	s.log.Info("qodsim access token issued", "client_id", id, "expires_in_seconds", int64(o.TokenTTL.Seconds()))
	rep := jsonReply(http.StatusOK, tokenAnswer{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(o.TokenTTL.Seconds())})
	rep.header.Set("Cache-Control", "no-store")
	return rep
}

// issueToken makes and remembers a random access token valid for ttl.
func (s *Simulator) issueToken(ttl time.Duration) (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("read random bytes for a token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, exp := range s.tokens {
		if !now.Before(exp) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = now.Add(ttl)
	s.tokensIssued++
	return tok, nil
}
