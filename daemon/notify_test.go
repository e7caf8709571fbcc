package daemon

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNotificationReceiver(t *testing.T) {
	var ended []string
	rcv := &NotificationReceiver{Token: "s3cret", Logger: slog.New(slog.DiscardHandler), OnTerminated: func(id string) { ended = append(ended, id) }}
	body := `{"sessionId":"abc","event":"SESSION_TERMINATED"}`
	cases := []struct {
		name   string
		method string
		url    string
		header string
		body   string
		status int
		ended  int
	}{
		{"apikey", "POST", "/notifications?apikey=s3cret", "", body, 204, 1},
		{"bearer", "POST", "/notifications", "Bearer s3cret", body, 204, 1},
		{"wrong token", "POST", "/notifications?apikey=nope", "", body, 401, 0},
		{"no token", "POST", "/notifications", "", body, 401, 0},
		{"basic is not bearer", "POST", "/notifications", "Basic s3cret", body, 401, 0},
		{"get", "GET", "/notifications?apikey=s3cret", "", "", 405, 0},
		{"malformed", "POST", "/notifications?apikey=s3cret", "", "{", 400, 0},
		{"huge", "POST", "/notifications?apikey=s3cret", "", `{"sessionId":"` + strings.Repeat("x", maxNotificationBody) + `"}`, 413, 0},
		{"other event", "POST", "/notifications?apikey=s3cret", "", `{"sessionId":"abc","event":"SOMETHING"}`, 204, 0},
		{"cloudevent", "POST", "/notifications", "Bearer s3cret", `{"type":"org.camaraproject.quality-on-demand.v1.status-changed","data":{"sessionId":"abc","qosStatus":"UNAVAILABLE"}}`, 204, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ended = nil
			req := httptest.NewRequest(c.method, c.url, strings.NewReader(c.body))
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			rec := httptest.NewRecorder()
			rcv.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			if len(ended) != c.ended {
				t.Fatalf("ended %v, want %d", ended, c.ended)
			}
		})
	}
	// An empty configured token accepts nothing.
	empty := &NotificationReceiver{}
	rec := httptest.NewRecorder()
	empty.ServeHTTP(rec, httptest.NewRequest("POST", "/notifications?apikey=", strings.NewReader(body)))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("empty token: %d", rec.Code)
	}
}

func TestNotificationTransactionID(t *testing.T) {
	const id = "9fc38aea-dcd6-435e-baeb-bb74dc5ad5ad"
	cases := map[string]string{
		"/notifications":                                    "",
		"/tx/" + id + "/notifications":                      id,
		"/callbacks/tx/" + id + "/notifications":            id,
		"/callbacks/tx/" + id + "/notifications/":           "",
		"/callbacks/xtx/" + id + "/notifications":           "",
		"/callbacks/tx/" + id:                               "",
		"/tx//notifications":                                "",
		"/tx/not%20hex/notifications":                       "",
		"/tx/" + strings.Repeat("a", 65) + "/notifications": "",
	}
	for path, want := range cases {
		if got := transactionIDOf(path); got != want {
			t.Errorf("transactionIDOf(%q) = %q, want %q", path, got, want)
		}
	}
	var gotID, gotTx string
	rcv := &NotificationReceiver{Token: "s3cret", Logger: slog.New(slog.DiscardHandler), OnSessionTerminated: func(s, tx string) { gotID, gotTx = s, tx }}
	req := httptest.NewRequest("POST", "/cb/tx/"+id+"/notifications?apikey=s3cret", strings.NewReader(`{"sessionId":"abc","event":"SESSION_TERMINATED"}`))
	rcv.ServeHTTP(httptest.NewRecorder(), req)
	if gotID != "abc" || gotTx != id {
		t.Fatalf("OnSessionTerminated(%q, %q)", gotID, gotTx)
	}
	if got := notifyURLFor("https://q.example.com/cb/", id); got != "https://q.example.com/cb/tx/"+id {
		t.Fatalf("notifyURLFor: %s", got)
	}
}
