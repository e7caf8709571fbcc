package qodclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func authHeader(t *testing.T, a Auth) (string, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://127.0.0.1/qod/sessions/x", nil)
	err := a.Authorize(context.Background(), req, nil)
	return req.Header.Get("Authorization"), err
}

func TestBearer(t *testing.T) {
	a := NewBearer("abc.def")
	if h, err := authHeader(t, a); err != nil || h != "Bearer abc.def" {
		t.Errorf("got %q, %v", h, err)
	}
	for _, bad := range []string{"", "a b", "a\nX-Evil: 1"} {
		if _, err := authHeader(t, NewBearer(bad)); err == nil || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if s := fmt.Sprint(a); strings.Contains(s, "abc") {
		t.Errorf("String leaks the token: %s", s)
	}
}

func TestBearerFromFileRereadsAfterInvalidate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	os.WriteFile(p, []byte("  first-token\n"), 0o600)
	a, err := NewBearerFromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("second-token\n"), 0o600)
	if h, _ := authHeader(t, a); h != "Bearer first-token" {
		t.Errorf("cached token: got %q", h)
	}
	a.Invalidate()
	if h, _ := authHeader(t, a); h != "Bearer second-token" {
		t.Errorf("after Invalidate: got %q", h)
	}
	if s := fmt.Sprint(a); strings.Contains(s, "token\"") || strings.Contains(s, "second") {
		t.Errorf("String leaks the token: %s", s)
	}
	os.WriteFile(p, []byte("\n"), 0o600)
	if _, err := NewBearerFromFile(p); err == nil {
		t.Errorf("empty token file accepted")
	}
	if _, err := NewBearerFromFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("missing file accepted")
	}
}

func TestOAuth2ClientCredentials(t *testing.T) {
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		id, secret, _ := r.BasicAuth()
		if r.Form.Get("grant_type") != "client_credentials" || id != "app" || secret != "topsecret" {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		n := fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"oa-%d","token_type":"Bearer","expires_in":3600}`, n)
	}))
	defer srv.Close()
	a := NewOAuth2(OAuth2Config{TokenURL: srv.URL, ClientID: "app", ClientSecret: "topsecret"})
	for range 2 {
		if h, err := authHeader(t, a); err != nil || h != "Bearer oa-1" {
			t.Fatalf("got %q, %v", h, err)
		}
	}
	a.Invalidate()
	if h, _ := authHeader(t, a); h != "Bearer oa-2" || fetches.Load() != 2 {
		t.Errorf("after Invalidate: %q, %d fetches", h, fetches.Load())
	}
	bad := NewOAuth2(OAuth2Config{TokenURL: srv.URL, ClientID: "app", ClientSecret: "wrong-sec"})
	if _, err := authHeader(t, bad); err == nil || strings.Contains(err.Error(), "wrong-sec") {
		t.Errorf("bad secret: %v", err)
	}
	if s := fmt.Sprintf("%v %+v", a, a); strings.Contains(s, "topsecret") {
		t.Errorf("String leaks the secret: %s", s)
	}
}
