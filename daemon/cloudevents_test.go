package daemon

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseSessionEvent(t *testing.T) {
	const id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	ce := func(status, info string) string {
		return `{"id":"1","source":"/qod","specversion":"1.0","type":"org.camaraproject.quality-on-demand.v1.qos-status-changed",` +
			`"time":"2024-06-01T12:00:00Z","datacontenttype":"application/json","data":{"sessionId":"` + id + `","qosStatus":"` + status + `","statusInfo":"` + info + `"}}`
	}
	for _, tc := range []struct {
		name, ct, body string
		want           SessionEvent
		bad            bool
	}{
		{"v0.8.1", "application/json", `{"sessionId":"` + id + `","event":"SESSION_TERMINATED"}`, SessionEvent{SessionID: id, Terminated: true}, false},
		{"available", "application/cloudevents+json", ce("AVAILABLE", ""), SessionEvent{SessionID: id, QoSStatus: "AVAILABLE"}, false},
		{"network terminated", "application/cloudevents+json; charset=utf-8", ce("UNAVAILABLE", "NETWORK_TERMINATED"),
			SessionEvent{SessionID: id, QoSStatus: "UNAVAILABLE", StatusInfo: "NETWORK_TERMINATED", Terminated: true}, false},
		{"cloudevent relabelled as json", "application/json", ce("UNAVAILABLE", "DURATION_EXPIRED"),
			SessionEvent{SessionID: id, QoSStatus: "UNAVAILABLE", StatusInfo: "DURATION_EXPIRED", Terminated: true}, false},
		{"wrong type", "application/cloudevents+json", strings.Replace(ce("AVAILABLE", ""), "qos-status-changed", "other", 1), SessionEvent{}, true},
		{"wrong specversion", "application/cloudevents+json", strings.Replace(ce("AVAILABLE", ""), `"1.0"`, `"0.3"`, 1), SessionEvent{}, true},
		{"no session", "application/cloudevents+json", `{"specversion":"1.0","type":"org.camaraproject.quality-on-demand.v1.qos-status-changed","data":{}}`, SessionEvent{}, true},
		{"not json", "application/cloudevents+json", `<html>`, SessionEvent{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSessionEvent(tc.ct, []byte(tc.body))
			if (err != nil) != tc.bad || got != tc.want {
				t.Fatalf("parseSessionEvent = %+v, %v; want %+v (error %v)", got, err, tc.want, tc.bad)
			}
		})
	}
}

// A CAMARA v1 sink is {public_url}/tx/{transaction id} itself: the event
// arrives there with the sink credential as bearer token.
func TestReceiverCloudEventAtSink(t *testing.T) {
	const id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	const tx = "9fc38aea-dcd6-435e-baeb-bb74dc5ad5ad"
	var got []Notice
	rcv := &NotificationReceiver{Token: "s3cret-s3cret-s3cret", Logger: slog.New(slog.DiscardHandler), Handle: func(n Notice) string { got = append(got, n); return "" }}
	body := `{"id":"1","source":"/qod","specversion":"1.0","type":"org.camaraproject.quality-on-demand.v1.qos-status-changed",` +
		`"time":"2024-06-01T12:00:00Z","data":{"sessionId":"` + id + `","qosStatus":"AVAILABLE"}}`
	req := httptest.NewRequest("POST", "/qodwatch/tx/"+tx, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer s3cret-s3cret-s3cret")
	rec := httptest.NewRecorder()
	rcv.ServeHTTP(rec, req)
	want := Notice{SessionID: id, TransactionID: tx, QoSStatus: "AVAILABLE", Event: qosStatusChanged + " AVAILABLE"}
	if rec.Code != http.StatusNoContent || len(got) != 1 || got[0] != want {
		t.Fatalf("answer %d, events %+v", rec.Code, got)
	}
	if !isNotificationPath("/qodwatch/tx/"+tx) || isNotificationPath("/qodwatch/tx/"+tx+"/other") || isNotificationPath("/metrics") {
		t.Fatal("isNotificationPath: the sink path must be served, others not")
	}
}
