package qodsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestCreateGetDelete(t *testing.T) {
	clock := newFakeClock()
	srv := startServer(t, Options{Now: clock.Now})
	body := `{"duration":600,` +
		`"ueId":{"externalId":"cam-7@example.net","msisdn":"+491701234567","ipv4addr":"10.1.2.3/24","ipv6addr":"2001:db8:85a3:8d3:1319:8a2e:370:7344"},` +
		`"asId":{"ipv4addr":"198.51.100.7","ipv6addr":"2001:db8::7/128"},` +
		`"uePorts":{"ranges":[{"from":5010,"to":5020}],"ports":[5060,5070]},` +
		`"asPorts":{"ports":[443]},"qos":"QOS_L",` +
		`"notificationUrl":"https://app.example.net/cb","notificationAuthToken":"secret-notify-token"}`

	created := call(t, http.MethodPost, srv.URL+"/sessions", body, map[string]string{"x-transaction-id": "tx-create-1"})
	if got := created.header.Get("x-transaction-id"); got != "tx-create-1" {
		t.Errorf("x-transaction-id echoed as %q", got)
	}
	info := decodeInfo(t, created)
	id, _ := info["id"].(string)
	if !uuidRE.MatchString(id) {
		t.Fatalf("id %q is not a v4 UUID", id)
	}
	if strings.Contains(string(created.body), "secret-notify-token") || info["notificationAuthToken"] != nil {
		t.Errorf("answer echoes the notification token: %s", created.body)
	}
	start := clock.Now().Unix()
	if info["startedAt"] != float64(start) || info["expiresAt"] != float64(start+600) {
		t.Errorf("startedAt/expiresAt = %v/%v, want %d/%d", info["startedAt"], info["expiresAt"], start, start+600)
	}
	// The request's fields come back as sent.
	var req, got map[string]any
	_ = json.Unmarshal([]byte(body), &req)
	_ = json.Unmarshal(created.body, &got)
	for k, v := range req {
		if k == "notificationAuthToken" {
			continue
		}
		want, _ := json.Marshal(v)
		have, _ := json.Marshal(got[k])
		if string(want) != string(have) {
			t.Errorf("field %s echoed as %s, want %s", k, have, want)
		}
	}

	read := call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", nil)
	if string(read.body) != string(created.body) {
		t.Errorf("GET = %s, want the create answer %s", read.body, created.body)
	}

	sessions := srv.Sessions()
	if len(sessions) != 1 || sessions[0].ID != id || sessions[0].UE.MSISDN != "+491701234567" || sessions[0].QoS != "QOS_L" ||
		!sessions[0].ExpiresAt.Equal(clock.Now().Add(600*time.Second)) || sessions[0].NotificationAuthToken != "secret-notify-token" {
		t.Errorf("Sessions() = %+v", sessions)
	}

	del := call(t, http.MethodDelete, srv.URL+"/sessions/"+id, "", nil)
	if del.status != http.StatusNoContent || len(del.body) != 0 {
		t.Fatalf("DELETE = %d %s, want 204", del.status, del.body)
	}
	call(t, http.MethodDelete, srv.URL+"/sessions/"+id, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	if n := len(srv.Sessions()); n != 0 {
		t.Errorf("%d sessions live after DELETE", n)
	}
	if n := len(srv.Notifications()); n != 0 {
		t.Errorf("DELETE sent %d notifications, want none", n)
	}
	if srv.Creates() != 1 {
		t.Errorf("Creates() = %d, want 1", srv.Creates())
	}
}

func TestDefaultDuration(t *testing.T) {
	clock := newFakeClock()
	srv := startServer(t, Options{Now: clock.Now})
	info := decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), nil))
	if info["duration"] != float64(86400) || info["expiresAt"] != float64(clock.Now().Unix()+86400) {
		t.Errorf("default duration: %v", info)
	}
}

func TestCreateRejectsWhatTheContractForbids(t *testing.T) {
	srv := startServer(t, Options{})
	cases := []struct{ name, body string }{
		{"msisdn letters", createBody("49abc12345", "")},
		{"msisdn too short", createBody("1234", "")},
		{"msisdn too long", createBody("1234567890123456", "")},
		{"duration 0", createBody("4915112345", `"duration":0`)},
		{"duration 86401", createBody("4915112345", `"duration":86401`)},
		{"duration negative", createBody("4915112345", `"duration":-5`)},
		{"duration fraction", createBody("4915112345", `"duration":1.5`)},
		{"duration string", createBody("4915112345", `"duration":"60"`)},
		{"unknown qos", `{"ueId":{"msisdn":"4915112345"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_XL"}`},
		{"missing qos", `{"ueId":{"msisdn":"4915112345"},"asId":{"ipv4addr":"198.51.100.7"}}`},
		{"missing ueId", `{"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"missing asId", `{"ueId":{"msisdn":"4915112345"},"qos":"QOS_E"}`},
		{"empty ueId", `{"ueId":{},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"unknown top-level field", createBody("4915112345", `"priority":"high"`)},
		{"unknown ueId field", `{"ueId":{"msisdn":"4915112345","imsi":"1"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"trailing garbage", createBody("4915112345", "") + `garbage`},
		{"second object", createBody("4915112345", "") + `{}`},
		{"not json", `ueId=1`},
		{"json array", `[]`},
		{"empty body", ``},
		{"ipv4 octet 300", `{"ueId":{"ipv4addr":"300.1.1.1"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"ipv4 mask 33", `{"ueId":{"ipv4addr":"10.0.0.1/33"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"ipv6 malformed", `{"ueId":{"ipv6addr":"2001:db8::1::2"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"ipv6 with letters", `{"ueId":{"ipv6addr":"2001:db8::xyz"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"port above 65535", createBody("4915112345", `"uePorts":{"ports":[70000]}`)},
		{"empty ports spec", createBody("4915112345", `"uePorts":{}`)},
		{"empty port list", createBody("4915112345", `"uePorts":{"ports":[]}`)},
		{"range without to", createBody("4915112345", `"asPorts":{"ranges":[{"from":1}]}`)},
		{"range backwards", createBody("4915112345", `"asPorts":{"ranges":[{"from":9,"to":1}]}`)},
		{"notification url not a url", createBody("4915112345", `"notificationUrl":"not a url"`)},
		{"notification url ftp", createBody("4915112345", `"notificationUrl":"ftp://example.net/x"`)},
		{"notification token number", createBody("4915112345", `"notificationAuthToken":12345`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, http.MethodPost, srv.URL+"/sessions", tc.body, map[string]string{"Content-Type": "application/json"})
			e := a.wantError(t, http.StatusBadRequest, "INVALID_INPUT")
			t.Log(e.UserMessage)
			if strings.Contains(e.UserMessage, "Value:") {
				t.Errorf("userMessage dumps the value: %q", e.UserMessage)
			}
		})
	}
	if n := srv.Creates(); n != 0 {
		t.Errorf("%d sessions created from invalid requests", n)
	}
}

func TestCreateAcceptsTheContractsEdges(t *testing.T) {
	srv := startServer(t, Options{})
	cases := []struct{ name, body string }{
		{"duration 1", createBody("4915100001", `"duration":1`)},
		{"duration 86400", createBody("4915100002", `"duration":86400`)},
		{"msisdn with plus", createBody("+4915100003", "")},
		{"msisdn 5 digits", createBody("12345", "")},
		{"msisdn 15 digits", createBody("123456789012345", "")},
		{"external id only", `{"ueId":{"externalId":"x@y"},"asId":{"ipv6addr":"2001:db8::1"},"qos":"QOS_S"}`},
		{"ipv4 with mask", `{"ueId":{"ipv4addr":"10.9.9.9/24"},"asId":{"ipv4addr":"0.0.0.0/0"},"qos":"QOS_M"}`},
		{"ipv6 prefix", `{"ueId":{"ipv6addr":"2001:DB8:85A3:8D3::/64"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`},
		{"ports 0 and 65535", createBody("4915100004", `"uePorts":{"ports":[0,65535]},"asPorts":{"ranges":[{"from":7,"to":7}]}`)},
		{"notification url with path", createBody("4915100005", `"notificationUrl":"http://127.0.0.1:1/a/b/","notificationAuthToken":"t"`)},
		{"content type with charset", createBody("4915100006", "")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.name == "content type with charset" {
				hdr["Content-Type"] = "application/json; charset=utf-8"
			}
			decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", tc.body, hdr))
		})
	}
}

func TestRequestEnvelope(t *testing.T) {
	srv := startServer(t, Options{})
	const unknownID = "0b7cb7a0-8c8a-4a56-9a43-6a0d7d3b1b2e"
	t.Run("missing transaction id on create", func(t *testing.T) {
		a := call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), map[string]string{"x-transaction-id": ""})
		e := a.wantError(t, http.StatusBadRequest, "INVALID_INPUT")
		if !strings.Contains(e.UserMessage, "x-transaction-id") {
			t.Errorf("userMessage %q does not name the header", e.UserMessage)
		}
	})
	t.Run("missing transaction id on get", func(t *testing.T) {
		call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID, "", map[string]string{"x-transaction-id": ""}).
			wantError(t, http.StatusBadRequest, "INVALID_INPUT")
	})
	t.Run("wrong content type", func(t *testing.T) {
		call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), map[string]string{"Content-Type": "text/plain"}).
			wantError(t, http.StatusBadRequest, "INVALID_INPUT")
	})
	t.Run("missing content type", func(t *testing.T) {
		call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), map[string]string{"Content-Type": ""}).
			wantError(t, http.StatusBadRequest, "INVALID_INPUT")
	})
	t.Run("session id not a uuid", func(t *testing.T) {
		call(t, http.MethodGet, srv.URL+"/sessions/not-a-uuid", "", nil).wantError(t, http.StatusBadRequest, "INVALID_INPUT")
		call(t, http.MethodDelete, srv.URL+"/sessions/not-a-uuid", "", nil).wantError(t, http.StatusBadRequest, "INVALID_INPUT")
	})
	t.Run("unknown session", func(t *testing.T) {
		call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
		call(t, http.MethodDelete, srv.URL+"/sessions/"+unknownID, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	})
	t.Run("unknown path", func(t *testing.T) {
		call(t, http.MethodGet, srv.URL+"/elsewhere", "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
		call(t, http.MethodGet, srv.URL+"/sessions/"+unknownID+"/extend", "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	})
	t.Run("wrong method", func(t *testing.T) {
		a := call(t, http.MethodGet, srv.URL+"/sessions", "", nil)
		a.wantError(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
		if a.header.Get("Allow") != http.MethodPost {
			t.Errorf("Allow = %q", a.header.Get("Allow"))
		}
		call(t, http.MethodPut, srv.URL+"/sessions/"+unknownID, "{}", nil).wantError(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	})
	t.Run("token endpoint off without TAAP", func(t *testing.T) {
		call(t, http.MethodPost, srv.TokenURL, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	})
	t.Run("body too large", func(t *testing.T) {
		big := createBody("4915112345", `"notificationAuthToken":"`+strings.Repeat("a", maxBody)+`"`)
		call(t, http.MethodPost, srv.URL+"/sessions", big, nil).wantError(t, http.StatusBadRequest, "INVALID_INPUT")
	})
}

func TestCustomBasePath(t *testing.T) {
	srv := startServer(t, Options{BasePath: "/devedge/qod/v1"})
	if !strings.HasSuffix(srv.URL, "/devedge/qod/v1") {
		t.Fatalf("URL = %q", srv.URL)
	}
	decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), nil))
	root := strings.TrimSuffix(srv.URL, "/devedge/qod/v1")
	call(t, http.MethodPost, root+"/qod/v1/sessions", createBody("4915112346", ""), nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
}

func TestSecondSessionForSameUEConflicts(t *testing.T) {
	srv := startServer(t, Options{})
	first := decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions",
		`{"ueId":{"msisdn":"+4915112345","ipv4addr":"10.0.0.5/24","ipv6addr":"2001:db8::5","externalId":"cam@x"},"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_E"}`, nil))

	same := []struct{ name, ue string }{
		{"msisdn without plus", `{"msisdn":"4915112345"}`},
		{"ipv4 without mask", `{"ipv4addr":"10.0.0.5"}`},
		{"ipv6 other spelling", `{"ipv6addr":"2001:DB8:0:0::5/128"}`},
		{"external id", `{"externalId":"cam@x"}`},
		{"one of several matches", `{"msisdn":"4915199999","externalId":"cam@x"}`},
	}
	for _, tc := range same {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"ueId":` + tc.ue + `,"asId":{"ipv4addr":"198.51.100.7"},"qos":"QOS_S"}`
			call(t, http.MethodPost, srv.URL+"/sessions", body, nil).wantError(t, http.StatusConflict, "CONFLICT")
		})
	}
	// Another UE is fine; so is the same UE once its session is gone.
	decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915100000", ""), nil))
	if a := call(t, http.MethodDelete, srv.URL+"/sessions/"+first["id"].(string), "", nil); a.status != http.StatusNoContent {
		t.Fatalf("DELETE = %d", a.status)
	}
	decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), nil))
	if n := len(srv.Sessions()); n != 2 {
		t.Errorf("%d live sessions, want 2", n)
	}
}

func TestExpiryWithFakeClock(t *testing.T) {
	clock := newFakeClock()
	sim := New(Options{Now: clock.Now})
	t.Cleanup(sim.Close)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	base := ts.URL + DefaultBasePath

	info := decodeInfo(t, call(t, http.MethodPost, base+"/sessions", createBody("4915112345", `"duration":60`), nil))
	id := info["id"].(string)
	clock.Advance(59 * time.Second)
	sim.ExpireDue()
	if len(sim.Sessions()) != 1 {
		t.Fatal("session ended before its duration")
	}
	decodeInfo(t, call(t, http.MethodGet, base+"/sessions/"+id, "", nil))

	clock.Advance(time.Second)
	sim.ExpireDue()
	if n := len(sim.Sessions()); n != 0 {
		t.Fatalf("%d sessions live after expiry", n)
	}
	call(t, http.MethodGet, base+"/sessions/"+id, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	call(t, http.MethodDelete, base+"/sessions/"+id, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")

	// Requests end due sessions on their own, without ExpireDue.
	info = decodeInfo(t, call(t, http.MethodPost, base+"/sessions", createBody("4915112345", `"duration":1`), nil))
	clock.Advance(time.Second)
	call(t, http.MethodGet, base+"/sessions/"+info["id"].(string), "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	decodeInfo(t, call(t, http.MethodPost, base+"/sessions", createBody("4915112345", ""), nil))
}

func TestTerminate(t *testing.T) {
	srv := startServer(t, Options{})
	info := decodeInfo(t, call(t, http.MethodPost, srv.URL+"/sessions", createBody("4915112345", ""), nil))
	id := info["id"].(string)
	if err := srv.Terminate(id); err != nil {
		t.Fatal(err)
	}
	call(t, http.MethodGet, srv.URL+"/sessions/"+id, "", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	if err := srv.Terminate(id); err == nil || !strings.Contains(err.Error(), id) {
		t.Errorf("second Terminate = %v, want not found naming the id", err)
	}
}

func TestRequestLog(t *testing.T) {
	clock := newFakeClock()
	srv := startServer(t, Options{Now: clock.Now, MaxRequestLog: 3})
	body := createBody("4915112345", "")
	call(t, http.MethodPost, srv.URL+"/sessions", body, map[string]string{"x-transaction-id": "tx-1"})
	clock.Advance(time.Second)
	call(t, http.MethodPost, srv.URL+"/sessions", body, map[string]string{"x-transaction-id": "tx-2"})
	call(t, http.MethodGet, srv.URL+"/sessions/nope?x=1", "", map[string]string{"x-transaction-id": "tx-3"})

	log := srv.Requests()
	if len(log) != 3 {
		t.Fatalf("%d requests logged, want 3", len(log))
	}
	first := log[0]
	if first.Method != http.MethodPost || first.Path != DefaultBasePath+"/sessions" || first.Status != http.StatusOK ||
		first.TransactionID != "tx-1" || string(first.Body) != body || !first.At.Equal(newFakeClock().Now()) ||
		first.Header.Get("Content-Type") != "application/json" {
		t.Errorf("first entry = %+v", first)
	}
	if log[1].Status != http.StatusConflict || !log[1].At.Equal(clock.Now()) {
		t.Errorf("second entry = %+v", log[1])
	}
	if log[2].Status != http.StatusBadRequest || log[2].Query != "x=1" || log[2].TransactionID != "tx-3" {
		t.Errorf("third entry = %+v", log[2])
	}
	// The log is a copy, and it keeps only the newest MaxRequestLog entries.
	log[0].Body[0] = 'X'
	if srv.Requests()[0].Body[0] == 'X' {
		t.Error("Requests() shares memory with the log")
	}
	call(t, http.MethodGet, srv.URL+"/sessions/nope", "", map[string]string{"x-transaction-id": "tx-4"})
	log = srv.Requests()
	if len(log) != 3 || log[0].TransactionID != "tx-2" || log[2].TransactionID != "tx-4" {
		t.Errorf("log after overflow: %d entries, first %q", len(log), log[0].TransactionID)
	}
}
