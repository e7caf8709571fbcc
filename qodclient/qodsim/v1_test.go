package qodsim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink is an https notification receiver recording CAMARA v1 events.
type sink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []recordedEvent
}

type recordedEvent struct {
	contentType, auth string
	event             cloudEvent
}

func newSink(t *testing.T) *sink {
	k := &sink{}
	k.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev cloudEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		k.mu.Lock()
		k.events = append(k.events, recordedEvent{r.Header.Get("Content-Type"), r.Header.Get("Authorization"), ev})
		k.mu.Unlock()
		if r.URL.Path != "/sink/tx/1" {
			http.Error(w, "wrong path "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(k.srv.Close)
	return k
}

func (k *sink) got() []recordedEvent {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]recordedEvent(nil), k.events...)
}

func v1Call(t *testing.T, method, url, body string) answer {
	t.Helper()
	return call(t, method, url, body, map[string]string{"x-transaction-id": "", "x-correlator": "corr-" + t.Name()})
}

func v1CreateBody(sinkURL, extra string) string {
	b := `{"device":{"phoneNumber":"+4915112345678"},"applicationServer":{"ipv4Address":"203.0.113.10"},"qosProfile":"QOS_E","duration":60`
	if sinkURL != "" {
		b += `,"sink":"` + sinkURL + `","sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"sink-secret","accessTokenExpiresUtc":"2030-01-01T00:00:00Z","accessTokenType":"bearer"}`
	}
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

func v1Info(t *testing.T, a answer, status int) v1SessionInfo {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d; body %s", a.status, status, a.body)
	}
	var info v1SessionInfo
	if err := json.Unmarshal(a.body, &info); err != nil {
		t.Fatalf("session info %s: %v", a.body, err)
	}
	return info
}

func v1Code(t *testing.T, a answer, status int, code string) {
	t.Helper()
	var e v1ErrorInfo
	if err := json.Unmarshal(a.body, &e); err != nil || a.status != status || e.Status != status || e.Code != code {
		t.Fatalf("answer %d %s, want %d %s", a.status, a.body, status, code)
	}
}

func TestV1LifecycleRequestedAvailableExtendExpire(t *testing.T) {
	clock := newFakeClock()
	k := newSink(t)
	srv := startServer(t, Options{Dialect: DialectCAMARAv1, Now: clock.Now, AvailableDelay: 5 * time.Second, HTTPClient: k.srv.Client(),
		Profiles: []Profile{{Name: "QOS_E", Status: ProfileActive, MaxDuration: 100 * time.Second}}})
	a := v1Call(t, http.MethodPost, srv.URL+"/sessions", v1CreateBody(k.srv.URL+"/sink/tx/1", ""))
	info := v1Info(t, a, http.StatusCreated)
	if info.QoSStatus != StatusRequested || info.StartedAt != "" || info.ExpiresAt != "" || info.Duration != 60 {
		t.Fatalf("create answer %s: want REQUESTED without times", a.body)
	}
	if got := a.header.Get("x-correlator"); got != "corr-"+t.Name() {
		t.Errorf("x-correlator echoed as %q", got)
	}
	if strings.Contains(string(a.body), "sink-secret") {
		t.Fatal("the sink credential is echoed")
	}
	// Extend is refused while REQUESTED.
	v1Code(t, v1Call(t, http.MethodPost, srv.URL+"/sessions/"+info.SessionID+"/extend", `{"requestedAdditionalDuration":10}`),
		http.StatusConflict, "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED")

	clock.Advance(5 * time.Second)
	got := v1Info(t, v1Call(t, http.MethodGet, srv.URL+"/sessions/"+info.SessionID, ""), http.StatusOK)
	if got.QoSStatus != StatusAvailable || got.StartedAt == "" {
		t.Fatalf("after the delay: %+v, want AVAILABLE with startedAt", got)
	}
	// Deliveries run concurrently: let the AVAILABLE event arrive first.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitNotifications(ctx); err != nil {
		t.Fatal(err)
	}
	// Extended past the profile's maxDuration: capped.
	ext := v1Info(t, v1Call(t, http.MethodPost, srv.URL+"/sessions/"+info.SessionID+"/extend", `{"requestedAdditionalDuration":1000}`), http.StatusOK)
	if ext.Duration != 100 {
		t.Fatalf("extended duration %d, want the profile's maximum 100", ext.Duration)
	}
	start, _ := time.Parse(time.RFC3339, ext.StartedAt)
	end, _ := time.Parse(time.RFC3339, ext.ExpiresAt)
	if end.Sub(start) != 100*time.Second {
		t.Fatalf("expiresAt-startedAt = %s, want 100s", end.Sub(start))
	}
	clock.Advance(100 * time.Second)
	srv.ExpireDue()
	v1Code(t, v1Call(t, http.MethodGet, srv.URL+"/sessions/"+info.SessionID, ""), http.StatusNotFound, "NOT_FOUND")
	if err := srv.WaitNotifications(ctx); err != nil {
		t.Fatal(err)
	}
	ev := k.got()
	if len(ev) != 2 {
		t.Fatalf("events %+v, want AVAILABLE then UNAVAILABLE", ev)
	}
	for i, want := range []cloudEventQoSData{{info.SessionID, StatusAvailable, ""}, {info.SessionID, StatusUnavailable, InfoDurationExpired}} {
		e := ev[i]
		if e.event.Data != want || e.event.Type != QoSStatusChangedType || e.event.SpecVersion != "1.0" ||
			e.contentType != "application/cloudevents+json" || e.auth != "Bearer sink-secret" {
			t.Errorf("event %d = %+v, want data %+v with bearer and CloudEvents content type", i, e, want)
		}
	}
}

func TestV1NetworkTerminationKeepsSessionUntilDeleted(t *testing.T) {
	k := newSink(t)
	srv := startServer(t, Options{Dialect: DialectCAMARAv1, HTTPClient: k.srv.Client()})
	info := v1Info(t, v1Call(t, http.MethodPost, srv.URL+"/sessions", v1CreateBody(k.srv.URL+"/sink/tx/1", "")), http.StatusCreated)
	if err := srv.Terminate(info.SessionID); err != nil {
		t.Fatal(err)
	}
	got := v1Info(t, v1Call(t, http.MethodGet, srv.URL+"/sessions/"+info.SessionID, ""), http.StatusOK)
	if got.QoSStatus != StatusUnavailable || got.StatusInfo != InfoNetworkTerminated {
		t.Fatalf("terminated session reads %+v", got)
	}
	// It still holds the device: a new one needs the old one deleted.
	v1Code(t, v1Call(t, http.MethodPost, srv.URL+"/sessions", v1CreateBody("", "")), http.StatusConflict, "CONFLICT")
	list := v1Call(t, http.MethodPost, srv.URL+"/retrieve-sessions", `{"device":{"phoneNumber":"+4915112345678"}}`)
	var found []v1SessionInfo
	if err := json.Unmarshal(list.body, &found); err != nil || list.status != 200 || len(found) != 1 || found[0].SessionID != info.SessionID {
		t.Fatalf("retrieve-sessions: %d %s", list.status, list.body)
	}
	if a := v1Call(t, http.MethodDelete, srv.URL+"/sessions/"+info.SessionID, ""); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	v1Info(t, v1Call(t, http.MethodPost, srv.URL+"/sessions", v1CreateBody("", "")), http.StatusCreated)
	list = v1Call(t, http.MethodPost, srv.URL+"/retrieve-sessions", `{"device":{"phoneNumber":"+4915100000000"}}`)
	if list.status != 200 || strings.TrimSpace(string(list.body)) != "[]" {
		t.Fatalf("retrieve-sessions of another device: %d %s, want []", list.status, list.body)
	}
}

func TestV1ErrorsAndContract(t *testing.T) {
	srv := startServer(t, Options{Dialect: DialectCAMARAv1, Profiles: []Profile{
		{Name: "QOS_E", Status: ProfileActive, MaxDuration: time.Hour},
		{Name: "QOS_OLD", Status: ProfileInactive},
	}})
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"http sink", "/sessions", v1CreateBody("http://example.com/sink", ""), 400, "INVALID_ARGUMENT"},
		{"too long", "/sessions", strings.Replace(v1CreateBody("", ""), `"duration":60`, `"duration":3601`, 1), 400, "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE"},
		{"inactive profile", "/sessions", strings.Replace(v1CreateBody("", ""), "QOS_E", "QOS_OLD", 1), 422, "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE"},
		{"unknown profile", "/sessions", strings.Replace(v1CreateBody("", ""), "QOS_E", "QOS_X", 1), 422, "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE"},
		{"nai", "/sessions", strings.Replace(v1CreateBody("", ""), `"phoneNumber":"+4915112345678"`, `"networkAccessIdentifier":"a@b.example"`, 1), 422, "UNSUPPORTED_IDENTIFIER"},
		{"no device", "/sessions", strings.Replace(v1CreateBody("", ""), `"device":{"phoneNumber":"+4915112345678"},`, ``, 1), 422, "MISSING_IDENTIFIER"},
		{"public address alone", "/sessions", strings.Replace(v1CreateBody("", ""), `"phoneNumber":"+4915112345678"`, `"ipv4Address":{"publicAddress":"198.51.100.1"}`, 1), 400, "INVALID_ARGUMENT"},
		{"device ipv4 with mask", "/sessions", strings.Replace(v1CreateBody("", ""), `"phoneNumber":"+4915112345678"`, `"ipv4Address":{"publicAddress":"198.51.100.1/32","privateAddress":"10.0.0.1"}`, 1), 400, "INVALID_ARGUMENT"},
		{"phone without plus", "/sessions", strings.Replace(v1CreateBody("", ""), `+4915112345678`, `4915112345678`, 1), 400, "INVALID_ARGUMENT"},
		{"duration missing", "/sessions", strings.Replace(v1CreateBody("", ""), `,"duration":60`, ``, 1), 400, "INVALID_ARGUMENT"},
		{"not a uuid", "/sessions/abc/extend", `{"requestedAdditionalDuration":5}`, 400, "INVALID_ARGUMENT"},
		{"unknown session", "/sessions/3fa85f64-5717-4562-b3fc-2c963f66afa6/extend", `{"requestedAdditionalDuration":5}`, 404, "NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v1Code(t, v1Call(t, http.MethodPost, srv.URL+tc.path, tc.body), tc.status, tc.code)
		})
	}
	if n := srv.Creates(); n != 0 {
		t.Fatalf("%d sessions made by refused creates", n)
	}
	// NAT: two devices behind one public address are two devices.
	for _, priv := range []string{"10.0.0.1", "10.0.0.2"} {
		body := strings.Replace(v1CreateBody("", ""), `"phoneNumber":"+4915112345678"`, `"ipv4Address":{"publicAddress":"198.51.100.1","privateAddress":"`+priv+`"}`, 1)
		v1Info(t, v1Call(t, http.MethodPost, srv.URL+"/sessions", body), http.StatusCreated)
	}
	srv.SetFaults(Faults{FailNext: 1, ErrorStatus: 429, ErrorCode: "QUOTA_EXCEEDED"})
	v1Code(t, v1Call(t, http.MethodPost, srv.URL+"/sessions", v1CreateBody("", "")), 429, "QUOTA_EXCEEDED")
}

func TestV1Profiles(t *testing.T) {
	srv := startServer(t, Options{Dialect: DialectCAMARAv1})
	base := strings.TrimSuffix(srv.URL, DefaultV1BasePath) + DefaultV1ProfilesBasePath
	a := v1Call(t, http.MethodGet, base+"/qos-profiles/QOS_E", "")
	var p wireProfile
	if err := json.Unmarshal(a.body, &p); err != nil || a.status != 200 {
		t.Fatalf("GET profile: %d %s", a.status, a.body)
	}
	if p.Status != ProfileActive || *p.MaxDuration != (wireDuration{86400, "Seconds"}) || *p.PacketDelayBudget != (wireDuration{20, "Milliseconds"}) {
		t.Fatalf("profile %s", a.body)
	}
	v1Code(t, v1Call(t, http.MethodGet, base+"/qos-profiles/NOPE", ""), 404, "NOT_FOUND")
	a = v1Call(t, http.MethodPost, base+"/retrieve-qos-profiles", `{"status":"ACTIVE"}`)
	var all []wireProfile
	if err := json.Unmarshal(a.body, &all); err != nil || len(all) != 4 {
		t.Fatalf("retrieve-qos-profiles: %d %s", a.status, a.body)
	}
	if r := rateOf(25_000_000); *r != (wireRate{25, "Mbps"}) {
		t.Fatalf("rateOf(25M) = %+v", *r)
	}
}
