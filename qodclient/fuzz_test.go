package qodclient

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Seeds live here and in testdata/fuzz; `go test` runs them all.

func FuzzDecodeSessionInfo(f *testing.F) {
	for _, s := range []string{
		sessionJSON,
		`{"sessionId":"b","duration":3600,"qosStatus":"AVAILABLE","qosProfile":"voice","startedAt":"2024-06-01T12:00:00Z",` +
			`"expiresAt":"2024-06-01T13:00:00.123+02:00","device":{"ipv4Address":{"publicAddress":"203.0.113.0","publicPort":1}}}`,
		`{"id":"a","startedAt":"1700000000","expiresAt":1700000000000,"duration":"60"}`,
		`{"id":"a","startedAt":1.7e9,"device":{"ipv4Address":"10.0.0.1"}}`,
		`{"id":"a","startedAt":1e999}`,
		`{"id":"a","uePorts":{"ranges":[{"from":1,"to":2}],"ports":[3]},"messages":[{"severity":"INFO","description":"x"}]}`,
		`{"id":"a","startedAt":-0,"expiresAt":"0"}`,
		`[1,2]`, `null`, `"x"`, `{"id":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeSessionInfo(data)
		if err != nil {
			return
		}
		if s.ID == "" {
			t.Fatal("decoded a session without an id")
		}
		for _, tm := range []time.Time{s.StartedAt, s.ExpiresAt} {
			if !tm.IsZero() && tm.Unix() < 0 {
				t.Fatalf("time before 1970 accepted: %v", tm)
			}
		}
		// What we store we can read back, to the second.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := decodeSessionInfo(b)
		if err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		if back.ID != s.ID || back.StartedAt.Unix() != s.StartedAt.Unix() || back.ExpiresAt.Unix() != s.ExpiresAt.Unix() ||
			back.Duration != s.Duration || back.QoS != s.QoS || back.UeID != s.UeID || back.AsID != s.AsID {
			t.Fatalf("round trip changed the session:\n%+v\n%+v", s, back)
		}
		_ = s.String()
	})
}

func FuzzDecodeError(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
		ra     string
	}{
		{401, `{"reasonCode":"ERR-1091","systemMessage":"UNAUTHORIZED","userMessage":"Authorization failed: ..."}`, ""},
		{409, `{"code":"CONFLICT","message":"Another session is created for the same UE"}`, ""},
		{429, `{"status":429,"code":"TOO_MANY_REQUESTS","message":"Rate limit reached"}`, "5"},
		{503, `{"status":"503","code":"UNAVAILABLE","message":"x"}`, "Wed, 21 Oct 2015 07:28:00 GMT"},
		{502, "<html>\x00\xff\u202e</html>", "99999999999999999999999"},
		{500, `{"code":{"x":1},"message":null}`, "-1"},
		{0, ``, ""},
		{999, `{"message":"` + strings.Repeat("\\u0000", 100) + `"}`, " 1 "},
	} {
		f.Add(s.status, []byte(s.body), s.ra)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		e := decodeError("POST", "/sessions", "tx", status, http.Header{"Retry-After": {retryAfter}}, body, now)
		if e == nil || e.Status != status || e.TransactionID != "tx" {
			t.Fatalf("bad error %+v", e)
		}
		for _, s := range []string{e.Code, e.ReasonCode, e.Message} {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") || len(s) > maxMessage {
				t.Fatalf("unsafe text %q", s)
			}
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("Retry-After %v out of range", e.RetryAfter)
		}
		msg := e.Error()
		if !strings.Contains(msg, "transaction id tx") || strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("Error() = %q", msg)
		}
		var err error = e
		if c := category(status); c != nil && !errors.Is(err, c) {
			t.Fatalf("status %d does not match %v", status, c)
		}
	})
}
