package qodclient

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDecodeErrorShapes(t *testing.T) {
	tests := []struct {
		name                         string
		status                       int
		body                         string
		code, reason, message, error string
		category                     error
	}{
		{"devedge", 401, `{"reasonCode":"ERR-1091","systemMessage":"UNAUTHORIZED","userMessage":"Authorization failed: bad token"}`,
			"UNAUTHORIZED", "ERR-1091", "Authorization failed: bad token",
			"POST /sessions: 401 UNAUTHORIZED [ERR-1091]: Authorization failed: bad token (transaction id tx1)", ErrUnauthorized},
		{"camara v0", 409, `{"code":"CONFLICT","message":"Another session is created for the same UE"}`,
			"CONFLICT", "", "Another session is created for the same UE",
			"POST /sessions: 409 CONFLICT: Another session is created for the same UE (transaction id tx1)", ErrConflict},
		{"camara v1", 404, `{"status":404,"code":"NOT_FOUND","message":"The specified resource is not found."}`,
			"NOT_FOUND", "", "The specified resource is not found.",
			"POST /sessions: 404 NOT_FOUND: The specified resource is not found. (transaction id tx1)", ErrNotFound},
		{"status as string", 403, `{"status":"403","code":"PERMISSION_DENIED","message":"no"}`,
			"PERMISSION_DENIED", "", "no", "POST /sessions: 403 PERMISSION_DENIED: no (transaction id tx1)", ErrForbidden},
		{"html from a proxy", 502, "<html><body>\n<h1>Bad\tGateway</h1></body></html>",
			"", "", "<html><body> <h1>Bad Gateway</h1></body></html>",
			"POST /sessions: 502 BAD_GATEWAY: <html><body> <h1>Bad Gateway</h1></body></html> (transaction id tx1)", ErrUnavailable},
		{"empty", 503, "", "", "", "", "POST /sessions: 503 SERVICE_UNAVAILABLE (transaction id tx1)", ErrUnavailable},
		{"json without known fields", 500, `{"error":"boom"}`, "", "", `{"error":"boom"}`,
			`POST /sessions: 500 INTERNAL_SERVER_ERROR: {"error":"boom"} (transaction id tx1)`, ErrServer},
		{"wrong types", 400, `{"code":5,"message":["x"]}`, "", "", `{"code":5,"message":["x"]}`,
			`POST /sessions: 400 BAD_REQUEST: {"code":5,"message":["x"]} (transaction id tx1)`, ErrInvalid},
		{"422", 422, `{"code":"UNSUPPORTED","message":"x"}`, "UNSUPPORTED", "", "x",
			"POST /sessions: 422 UNSUPPORTED: x (transaction id tx1)", ErrInvalid},
		{"429", 429, `{"code":"TOO_MANY_REQUESTS","message":"slow down"}`, "TOO_MANY_REQUESTS", "", "slow down",
			"POST /sessions: 429 TOO_MANY_REQUESTS: slow down (transaction id tx1)", ErrRateLimited},
		{"410", 410, ``, "", "", "", "POST /sessions: 410 GONE (transaction id tx1)", ErrNotFound},
	}
	all := []error{ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrRateLimited, ErrUnavailable,
		ErrServer, ErrInvalid, ErrMalformedResponse, ErrUnknownOutcome}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := decodeError("POST", "/sessions", "tx1", tt.status, nil, []byte(tt.body), time.Now())
			if e.Status != tt.status || e.Code != tt.code || e.ReasonCode != tt.reason || e.Message != tt.message {
				t.Errorf("got status=%d code=%q reason=%q message=%q", e.Status, e.Code, e.ReasonCode, e.Message)
			}
			if e.Error() != tt.error {
				t.Errorf("Error()\n got %s\nwant %s", e.Error(), tt.error)
			}
			var err error = e
			for _, c := range all {
				if got := errors.Is(err, c); got != (c == tt.category) {
					t.Errorf("errors.Is(%v) = %v", c, got)
				}
			}
			var as *APIError
			if !errors.As(err, &as) || TransactionIDOf(err) != "tx1" {
				t.Errorf("errors.As / TransactionIDOf failed")
			}
		})
	}
}

func TestDecodeErrorCapsAndCleansText(t *testing.T) {
	long := strings.Repeat("é", 5000) + "\x00\x1b[31m\u202e"
	e := decodeError("GET", "/sessions/x", "tx", 500, nil, []byte(`{"code":"X","message":"`+long+`"}`), time.Now())
	if len(e.Message) > maxMessage || !utf8.ValidString(e.Message) {
		t.Errorf("message not capped/valid: %d bytes", len(e.Message))
	}
	e = decodeError("GET", "/sessions/x", "tx", 500, nil, []byte("line1\r\nline2\x00\xff\u202etail"), time.Now())
	if e.Message != "line1 line2 tail" {
		t.Errorf("message not cleaned: %q", e.Message)
	}
}

func TestDecodeErrorRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999999999999", maxRetryAfter},
		{"soon", 0},
		{"-5", 0},
	}
	for _, tt := range tests {
		h := http.Header{"Retry-After": {tt.header}}
		if got := decodeError("GET", "/p", "", 503, h, nil, now).RetryAfter; got != tt.want {
			t.Errorf("Retry-After %q: got %v want %v", tt.header, got, tt.want)
		}
	}
}

func TestUnknownOutcomeError(t *testing.T) {
	cause := &APIError{Method: "POST", Path: "/sessions", Status: 504, TransactionID: "tx9"}
	var err error = &UnknownOutcomeError{TransactionID: "tx9", Err: cause}
	if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("categories lost: %v", err)
	}
	var u *UnknownOutcomeError
	if !errors.As(err, &u) || u.TransactionID != "tx9" || TransactionIDOf(err) != "tx9" {
		t.Errorf("transaction id lost")
	}
	if !strings.Contains(err.Error(), "outcome unknown") || !strings.Contains(err.Error(), "tx9") {
		t.Errorf("message: %v", err)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	for attempt, wantMax := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		3: 400 * time.Millisecond, 5: time.Second, 60: time.Second} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := p.backoff(attempt)
			if d < wantMax/2 || d > wantMax {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, wantMax/2, wantMax)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("attempt %d: no jitter", attempt)
		}
	}
}
