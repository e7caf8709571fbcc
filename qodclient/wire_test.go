package qodclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func validRequest() CreateSessionRequest {
	return CreateSessionRequest{
		UeID:     UeID{MSISDN: "+15551230007", IPv4Addr: "10.44.0.7"},
		AsID:     AsID{IPv4Addr: "203.0.113.10"},
		UePorts:  &PortsSpec{Ranges: []PortRange{{From: 5010, To: 5020}}, Ports: []int{5060}},
		QoS:      QoSE,
		Duration: 600,
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*CreateSessionRequest)
		dialect Dialect
		want    string // substring of the error; "" = valid
	}{
		{"valid", func(*CreateSessionRequest) {}, DialectDevEdge, ""},
		{"default duration", func(r *CreateSessionRequest) { r.Duration = 0 }, DialectDevEdge, ""},
		{"max duration", func(r *CreateSessionRequest) { r.Duration = 86400 }, DialectDevEdge, ""},
		{"duration too long", func(r *CreateSessionRequest) { r.Duration = 86401 }, DialectDevEdge, "duration 86401"},
		{"negative duration", func(r *CreateSessionRequest) { r.Duration = -1 }, DialectDevEdge, "duration -1"},
		{"no ue id", func(r *CreateSessionRequest) { r.UeID = UeID{} }, DialectDevEdge, "ueId needs"},
		{"external id only", func(r *CreateSessionRequest) { r.UeID = UeID{ExternalID: "a@b"} }, DialectDevEdge, ""},
		{"bad msisdn", func(r *CreateSessionRequest) { r.UeID.MSISDN = "555-1234" }, DialectDevEdge, "ueId.msisdn"},
		{"ue ipv4 mask", func(r *CreateSessionRequest) { r.UeID.IPv4Addr = "10.0.0.0/24" }, DialectDevEdge, ""},
		{"ue ipv4 mask in v1", func(r *CreateSessionRequest) { r.UeID.IPv4Addr = "10.0.0.0/24" }, DialectCAMARAv1, "single address"},
		{"ue ipv4 is v6", func(r *CreateSessionRequest) { r.UeID.IPv4Addr = "::1" }, DialectDevEdge, "ueId.ipv4addr"},
		{"ue ipv6", func(r *CreateSessionRequest) { r.UeID.IPv6Addr = "2001:db8::/64" }, DialectDevEdge, ""},
		{"ue ipv6 garbage", func(r *CreateSessionRequest) { r.UeID.IPv6Addr = "2001:db8::zz" }, DialectDevEdge, "ueId.ipv6addr"},
		{"no as id", func(r *CreateSessionRequest) { r.AsID = AsID{} }, DialectDevEdge, "asId needs"},
		{"as ipv4 bad mask", func(r *CreateSessionRequest) { r.AsID.IPv4Addr = "1.2.3.4/33" }, DialectDevEdge, "asId.ipv4addr"},
		{"as ipv6 is v4", func(r *CreateSessionRequest) { r.AsID.IPv6Addr = "1.2.3.4" }, DialectDevEdge, "asId.ipv6addr"},
		{"port too big", func(r *CreateSessionRequest) { r.UePorts.Ports = []int{65536} }, DialectDevEdge, "uePorts: port 65536"},
		{"port negative", func(r *CreateSessionRequest) { r.AsPorts = &PortsSpec{Ports: []int{-1}} }, DialectDevEdge, "asPorts: port -1"},
		{"port 0 and 65535", func(r *CreateSessionRequest) { r.AsPorts = &PortsSpec{Ports: []int{0, 65535}} }, DialectDevEdge, ""},
		{"range reversed", func(r *CreateSessionRequest) { r.UePorts.Ranges[0] = PortRange{From: 9, To: 8} }, DialectDevEdge, "range 9-8"},
		{"empty ports spec", func(r *CreateSessionRequest) { r.AsPorts = &PortsSpec{} }, DialectDevEdge, "asPorts: needs ranges or ports"},
		{"no qos", func(r *CreateSessionRequest) { r.QoS = "" }, DialectDevEdge, "qos is required"},
		{"unknown qos v0", func(r *CreateSessionRequest) { r.QoS = "voice" }, DialectCAMARAv0, `qos "voice"`},
		{"custom qos v1", func(r *CreateSessionRequest) { r.QoS = "voice" }, DialectCAMARAv1, ""},
		{"bad qos name v1", func(r *CreateSessionRequest) { r.QoS = "a b" }, DialectCAMARAv1, `qos "a b"`},
		{"notification http", func(r *CreateSessionRequest) { r.NotificationURL = "http://cb.example/x" }, DialectDevEdge, ""},
		{"notification http in v1", func(r *CreateSessionRequest) { r.NotificationURL = "http://cb.example/x" }, DialectCAMARAv1, "scheme must be https"},
		{"notification relative", func(r *CreateSessionRequest) { r.NotificationURL = "/cb" }, DialectDevEdge, "not an absolute URL"},
		{"token without url", func(r *CreateSessionRequest) { r.NotificationAuthToken = "s3cret" }, DialectDevEdge, "without notificationUrl"},
		{"unknown dialect", func(*CreateSessionRequest) {}, "camara-v9", "unknown dialect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mod(&r)
			err := r.ValidateFor(tt.dialect)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want error containing %q, got %v", tt.want, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
		})
	}
}

func TestValidateReportsAllProblemsWithoutSecrets(t *testing.T) {
	r := CreateSessionRequest{Duration: 90000, NotificationAuthToken: "tok-s3cret"}
	err := r.Validate()
	for _, want := range []string{"ueId", "asId", "qos", "duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "tok-s3cret") {
		t.Errorf("error leaks the notification token: %v", err)
	}
	r.NotificationURL = "https://cb.example"
	for _, s := range []string{r.String(), fmt.Sprintf("%v", r), fmt.Sprintf("%+v", r),
		SessionInfo{ID: "x", NotificationAuthToken: "tok-s3cret"}.String()} {
		if strings.Contains(s, "tok-s3cret") {
			t.Errorf("String leaks the notification token: %s", s)
		}
	}
}

func TestEncodeCreateV0MatchesSpecFieldNames(t *testing.T) {
	r := validRequest()
	r.AsPorts = &PortsSpec{Ports: []int{443}}
	r.NotificationURL = "https://cb.example"
	r.NotificationAuthToken = "tok"
	body, err := encodeCreate(DialectDevEdge, r, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ueId":{"msisdn":"+15551230007","ipv4addr":"10.44.0.7"},"asId":{"ipv4addr":"203.0.113.10"},` +
		`"uePorts":{"ranges":[{"from":5010,"to":5020}],"ports":[5060]},"asPorts":{"ports":[443]},"qos":"QOS_E",` +
		`"duration":600,"notificationUrl":"https://cb.example","notificationAuthToken":"tok"}`
	if string(body) != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
	r.Duration = 0
	body, _ = encodeCreate(DialectCAMARAv0, r, time.Unix(0, 0))
	if strings.Contains(string(body), "duration") {
		t.Errorf("duration 0 must be left out (server default): %s", body)
	}
}

func TestEncodeCreateV1(t *testing.T) {
	r := validRequest()
	r.UeID = UeID{MSISDN: "15551230007", IPv4Addr: "10.44.0.7/32", ExternalID: "cam@x"}
	r.Duration = 0
	r.NotificationURL = "https://cb.example"
	r.NotificationAuthToken = "tok"
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	body, err := encodeCreate(DialectCAMARAv1, r, now)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"device": map[string]any{
			"phoneNumber":             "+15551230007",
			"networkAccessIdentifier": "cam@x",
			"ipv4Address":             map[string]any{"publicAddress": "10.44.0.7", "privateAddress": "10.44.0.7"},
		},
		"applicationServer": map[string]any{"ipv4Address": "203.0.113.10"},
		"devicePorts":       map[string]any{"ranges": []any{map[string]any{"from": 5010.0, "to": 5020.0}}, "ports": []any{5060.0}},
		"qosProfile":        "QOS_E",
		"duration":          86400.0,
		"sink":              "https://cb.example",
		"sinkCredential": map[string]any{
			"credentialType": "ACCESSTOKEN", "accessToken": "tok", "accessTokenType": "bearer",
			"accessTokenExpiresUtc": "2026-01-03T04:04:05Z",
		},
	}
	if g, w := mustJSON(got), mustJSON(want); g != w {
		t.Errorf("v1 body\n got %s\nwant %s", g, w)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestDecodeSessionInfo(t *testing.T) {
	start := time.Unix(1639479600, 0)
	end := time.Unix(1639566000, 0)
	tests := []struct {
		name string
		body string
		want SessionInfo
	}{
		{"v0.8.1 unix seconds", `{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","startedAt":1639479600,"expiresAt":1639566000,
			"duration":86400,"ueId":{"msisdn":"123456789","ipv4addr":"192.168.0.1/24"},"asId":{"ipv4addr":"192.168.0.1/24"},
			"uePorts":{"ports":[5060]},"qos":"QOS_E","notificationUrl":"https://cb","notificationAuthToken":"t",
			"messages":[{"severity":"WARNING","description":"shortened"}]}`,
			SessionInfo{ID: "3fa85f64-5717-4562-b3fc-2c963f66afa6", StartedAt: start, ExpiresAt: end, Duration: 86400,
				UeID: UeID{MSISDN: "123456789", IPv4Addr: "192.168.0.1/24"}, AsID: AsID{IPv4Addr: "192.168.0.1/24"},
				UePorts: &PortsSpec{Ports: []int{5060}}, QoS: QoSE, NotificationURL: "https://cb", NotificationAuthToken: "t",
				Messages: []Message{{Severity: "WARNING", Description: "shortened"}}}},
		{"rfc3339 times in v0 shape", `{"id":"a","startedAt":"2021-12-14T11:00:00Z","expiresAt":"2021-12-15T12:00:00+01:00"}`,
			SessionInfo{ID: "a", StartedAt: start, ExpiresAt: end}},
		{"digit strings", `{"id":"a","startedAt":"1639479600","expiresAt":" 1639566000 "}`,
			SessionInfo{ID: "a", StartedAt: start, ExpiresAt: end}},
		{"milliseconds", `{"id":"a","startedAt":1639479600000,"expiresAt":1639566000000}`,
			SessionInfo{ID: "a", StartedAt: start, ExpiresAt: end}},
		{"fractional seconds", `{"id":"a","startedAt":1639479600.5}`,
			SessionInfo{ID: "a", StartedAt: start.Add(500 * time.Millisecond)}},
		{"float duration", `{"id":"a","duration":3600.0}`, SessionInfo{ID: "a", Duration: 3600}},
		{"null times", `{"id":"a","startedAt":null,"expiresAt":""}`, SessionInfo{ID: "a"}},
		{"camara v1", `{"sessionId":"b","duration":3600,"qosStatus":"AVAILABLE","qosProfile":"voice",
			"startedAt":"2021-12-14T11:00:00Z","expiresAt":"2021-12-15T11:00:00Z",
			"device":{"phoneNumber":"+123456789","ipv4Address":{"publicAddress":"203.0.113.0","publicPort":59765}},
			"applicationServer":{"ipv6Address":"2001:db8::1"},"devicePorts":{"ports":[1]},"applicationServerPorts":{"ports":[2]},
			"sink":"https://cb","sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"t"}}`,
			SessionInfo{ID: "b", Duration: 3600, QoSStatus: "AVAILABLE", QoS: "voice", StartedAt: start, ExpiresAt: end,
				UeID: UeID{MSISDN: "+123456789", IPv4Addr: "203.0.113.0", IPv4PublicPort: 59765}, AsID: AsID{IPv6Addr: "2001:db8::1"},
				UePorts: &PortsSpec{Ports: []int{1}}, AsPorts: &PortsSpec{Ports: []int{2}},
				NotificationURL: "https://cb", NotificationAuthToken: "t"}},
		{"v1 unavailable without times", `{"sessionId":"c","duration":10,"qosStatus":"UNAVAILABLE","statusInfo":"NETWORK_TERMINATED"}`,
			SessionInfo{ID: "c", Duration: 10, QoSStatus: "UNAVAILABLE", StatusInfo: "NETWORK_TERMINATED"}},
		{"unknown fields ignored", `{"id":"a","extra":{"x":[1,2]}}`, SessionInfo{ID: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeSessionInfo([]byte(tt.body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.StartedAt.Equal(tt.want.StartedAt) || !got.ExpiresAt.Equal(tt.want.ExpiresAt) {
				t.Errorf("times: got %v..%v want %v..%v", got.StartedAt, got.ExpiresAt, tt.want.StartedAt, tt.want.ExpiresAt)
			}
			got.StartedAt, got.ExpiresAt, tt.want.StartedAt, tt.want.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if g, w := mustJSON(got), mustJSON(tt.want); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}

func TestDecodeSessionInfoRejects(t *testing.T) {
	for _, body := range []string{
		``, `null`, `[]`, `{}`, `{"id":""}`, `"x"`, `{"id":"a"`, `{"id":5}`,
		`{"id":"a","startedAt":-1}`, `{"id":"a","startedAt":1e300}`, `{"id":"a","startedAt":true}`,
		`{"id":"a","startedAt":"yesterday"}`, `{"id":"a","startedAt":"1969-12-31T23:59:59Z"}`,
		`{"id":"a","duration":1.5}`, `{"id":"a","duration":"x"}`, `{"id":"a","uePorts":{"ports":["x"]}}`,
	} {
		if s, err := decodeSessionInfo([]byte(body)); err == nil {
			t.Errorf("%s: want error, got %+v", body, s)
		}
	}
}

func TestSessionInfoJSONRoundTrip(t *testing.T) {
	in := SessionInfo{ID: "a", StartedAt: time.Unix(1700000000, 0), ExpiresAt: time.Unix(1700000600, 0), Duration: 600,
		UeID: UeID{IPv4Addr: "10.0.0.1"}, AsID: AsID{IPv4Addr: "10.0.0.2"}, QoS: QoSL, QoSStatus: "AVAILABLE"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"startedAt":1700000000`) {
		t.Errorf("times must be Unix seconds in the v0.8.1 form: %s", b)
	}
	var out SessionInfo
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if mustJSON(out) != string(b) || !out.StartedAt.Equal(in.StartedAt) {
		t.Errorf("round trip changed the session:\n%s\n%s", b, mustJSON(out))
	}
}
