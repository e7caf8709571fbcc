package daemon

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testTx = "9fc38aea-dcd6-435e-baeb-bb74dc5ad5ad"

func TestNotificationReceiver(t *testing.T) {
	var handled []Notice
	counted := map[string]int{}
	rcv := &NotificationReceiver{Token: "s3cret", Logger: slog.New(slog.DiscardHandler),
		Handle: func(n Notice) string {
			handled = append(handled, n)
			if n.SessionID == "not-mine" {
				return rejectUnknownSession
			}
			return ""
		},
		Count: func(r string) { counted[r]++ },
	}
	body := `{"sessionId":"abc","event":"SESSION_TERMINATED"}`
	tx := "/cb/tx/" + testTx + "/notifications"
	cases := []struct {
		name       string
		method     string
		url        string
		header     string
		body       string
		status     int
		handled    int
		terminated bool
		rejected   string
	}{
		{"apikey", "POST", tx + "?apikey=s3cret", "", body, 204, 1, true, ""},
		{"bearer", "POST", tx, "Bearer s3cret", body, 204, 1, true, ""},
		{"wrong token", "POST", tx + "?apikey=nope", "", body, 401, 0, false, rejectUnauthorized},
		{"no token", "POST", tx, "", body, 401, 0, false, rejectUnauthorized},
		{"basic is not bearer", "POST", tx, "Basic s3cret", body, 401, 0, false, rejectUnauthorized},
		{"get", "GET", tx + "?apikey=s3cret", "", "", 405, 0, false, rejectMethod},
		{"malformed", "POST", tx + "?apikey=s3cret", "", "{", 400, 0, false, rejectMalformed},
		{"huge", "POST", tx + "?apikey=s3cret", "", `{"sessionId":"` + strings.Repeat("x", maxNotificationBody) + `"}`, 413, 0, false, rejectTooLarge},
		// Only the path of a create's own notificationUrl is accepted.
		{"no transaction in the path", "POST", "/cb/notifications?apikey=s3cret", "", body, 404, 0, false, rejectWrongPath},
		{"rejected by the daemon", "POST", tx + "?apikey=s3cret", "", `{"sessionId":"not-mine","event":"SESSION_TERMINATED"}`, 404, 1, true, rejectUnknownSession},
		{"other event", "POST", tx + "?apikey=s3cret", "", `{"sessionId":"abc","event":"SOMETHING"}`, 204, 1, false, ""},
		{"cloudevent", "POST", tx, "Bearer s3cret", `{"type":"org.camaraproject.quality-on-demand.v1.status-changed","data":{"sessionId":"abc","qosStatus":"UNAVAILABLE"}}`, 204, 1, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			handled = nil
			clear(counted)
			req := httptest.NewRequest(c.method, c.url, strings.NewReader(c.body))
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			rec := httptest.NewRecorder()
			rcv.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			if len(handled) != c.handled {
				t.Fatalf("handled %v, want %d", handled, c.handled)
			}
			if c.handled > 0 {
				n := handled[0]
				if n.TransactionID != testTx || n.Terminated != c.terminated {
					t.Fatalf("notice %+v, want transaction %s, terminated %v", n, testTx, c.terminated)
				}
			}
			if c.rejected != "" && counted[c.rejected] != 1 {
				t.Fatalf("counted %v, want one %s", counted, c.rejected)
			}
			if c.rejected == "" && len(counted) != 0 {
				t.Fatalf("counted %v for an accepted notification", counted)
			}
		})
	}
	// An empty configured token accepts nothing.
	empty := &NotificationReceiver{Logger: slog.New(slog.DiscardHandler)}
	rec := httptest.NewRecorder()
	empty.ServeHTTP(rec, httptest.NewRequest("POST", tx+"?apikey=", strings.NewReader(body)))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("empty token: %d", rec.Code)
	}
}

// 3,000 bad POSTs wrote 3,000 WARN lines (issue 8): rejections are logged
// at most once a minute per reason, each line with how many it stands for.
func TestNotificationRejectionsLogOncePerMinute(t *testing.T) {
	var logs bytes.Buffer
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	counted := map[string]int{}
	rcv := &NotificationReceiver{Token: "s3cret", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Count: func(r string) { counted[r]++ }, Now: func() time.Time { return now }}
	post := func(url string) {
		rcv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", url, strings.NewReader(`{"sessionId":"abc","event":"SESSION_TERMINATED"}`)))
	}
	for range 3000 {
		post("/tx/" + testTx + "/notifications?apikey=wrong")
		post("/notifications?apikey=s3cret")
	}
	lines := func() []string { return strings.Split(strings.TrimSpace(logs.String()), "\n") }
	if n := len(lines()); n != 2 {
		t.Fatalf("%d log lines for 6,000 rejections in one minute, want 2 (one per reason):\n%s", n, logs.String())
	}
	if counted[rejectUnauthorized] != 3000 || counted[rejectWrongPath] != 3000 {
		t.Fatalf("counted %v, want 3000 of each", counted)
	}
	now = now.Add(59 * time.Second)
	rcv.FlushLog()
	if n := len(lines()); n != 2 {
		t.Fatalf("a line before the minute was over:\n%s", logs.String())
	}
	now = now.Add(time.Second)
	rcv.FlushLog()
	got := lines()
	if len(got) != 4 || !strings.Contains(got[2], "count=2999") || !strings.Contains(got[3], "count=2999") {
		t.Fatalf("after the minute, want one line per reason with count=2999:\n%s", logs.String())
	}
	post("/notifications?apikey=s3cret")
	if n := len(lines()); n != 4 {
		t.Fatalf("a line within a minute of the last one:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Fatalf("the token is in the log:\n%s", logs.String())
	}
}

func TestNotificationTransactionID(t *testing.T) {
	const id = testTx
	cases := map[string]string{
		"/notifications":                                    "",
		"/tx/" + id + "/notifications":                      id,
		"/callbacks/tx/" + id + "/notifications":            id,
		"/callbacks/tx/" + id + "/notifications/":           "",
		"/callbacks/xtx/" + id + "/notifications":           "",
		"/callbacks/tx/" + id:                               id, // a CAMARA v1 sink
		"/callbacks/tx/" + id + "/":                         "",
		"/tx//notifications":                                "",
		"/tx/not%20hex/notifications":                       "",
		"/tx/" + strings.Repeat("a", 65) + "/notifications": "",
	}
	for path, want := range cases {
		if got := transactionIDOf(path); got != want {
			t.Errorf("transactionIDOf(%q) = %q, want %q", path, got, want)
		}
	}
	if got := notifyURLFor("https://q.example.com/cb/", id); got != "https://q.example.com/cb/tx/"+id {
		t.Fatalf("notifyURLFor: %s", got)
	}
}
