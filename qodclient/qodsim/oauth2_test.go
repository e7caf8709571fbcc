package qodsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func TestOAuth2ClientCredentials(t *testing.T) {
	clock := newFakeClock()
	srv := startServer(t, Options{Now: clock.Now, OAuth2: &OAuth2Options{ClientID: "app id", ClientSecret: "s+cret%", TokenTTL: time.Hour}})
	const unknownID = "0b7cb7a0-8c8a-4a56-9a43-6a0d7d3b1b2e"
	ctx := context.Background()

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{ClientID: "app id", ClientSecret: "s+cret%", TokenURL: srv.OAuth2TokenURL, AuthStyle: style}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("auth style %d: %v", style, err)
		}
		if tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
			t.Errorf("token %+v", tok)
		}
		call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID, "", map[string]string{"Authorization": "Bearer " + tok.AccessToken}).
			wantError(t, http.StatusNotFound, "NOT_FOUND")
	}
	if srv.TokensIssued() != 2 {
		t.Errorf("TokensIssued = %d", srv.TokensIssued())
	}

	bad := clientcredentials.Config{ClientID: "app id", ClientSecret: "guess", TokenURL: srv.OAuth2TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	var re *oauth2.RetrieveError
	if _, err := bad.Token(ctx); err == nil || !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
		t.Errorf("wrong secret: %v", err)
	}
	form := call(t, http.MethodPost, srv.OAuth2TokenURL, "grant_type=password", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	var e oauth2Error
	if form.status != http.StatusBadRequest || json.Unmarshal(form.body, &e) != nil || e.Error != "unsupported_grant_type" {
		t.Errorf("password grant: %d %s", form.status, form.body)
	}
	if a := call(t, http.MethodPost, srv.OAuth2TokenURL, `{"grant_type":"client_credentials"}`, nil); a.status != http.StatusBadRequest {
		t.Errorf("JSON body: %d", a.status)
	}

	// Tokens expire with the clock and with the ExpireTokens fault.
	cc := clientcredentials.Config{ClientID: "app id", ClientSecret: "s+cret%", TokenURL: srv.OAuth2TokenURL}
	tok, _ := cc.Token(ctx)
	authz := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID, "", nil).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	srv.SetFaults(Faults{ExpireTokens: true})
	call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID, "", authz).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	tok, _ = cc.Token(ctx)
	authz["Authorization"] = "Bearer " + tok.AccessToken
	call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID, "", authz).wantError(t, http.StatusNotFound, "NOT_FOUND")
	clock.Advance(time.Hour)
	a := call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID, "", authz)
	if e := a.wantError(t, http.StatusUnauthorized, "UNAUTHORIZED"); !strings.Contains(e.UserMessage, "expired") {
		t.Errorf("userMessage %q", e.UserMessage)
	}
}
