package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
)

// SessionEvent is what a notification body says, in either form: the
// v0.8.1 (DevEdge) {"sessionId","event":"SESSION_TERMINATED"}, or a CAMARA
// v1 CloudEvent qos-status-changed with the session's new qosStatus.
type SessionEvent struct {
	SessionID string
	// QoSStatus (AVAILABLE, UNAVAILABLE) and StatusInfo (DURATION_EXPIRED,
	// NETWORK_TERMINATED, DELETE_REQUESTED) are CAMARA v1's; empty for
	// v0.8.1.
	QoSStatus  string
	StatusInfo string
	// Terminated: the session no longer gives QoS.
	Terminated bool
}

// qosStatusChanged is the CloudEvents type of CAMARA QualityOnDemand v1.
const qosStatusChanged = "org.camaraproject.quality-on-demand.v1.qos-status-changed"

// v1 statuses and status infos.
const (
	qosRequested        = "REQUESTED"
	qosAvailable        = "AVAILABLE"
	qosUnavailable      = "UNAVAILABLE"
	infoDeleteRequested = "DELETE_REQUESTED"
	infoNetworkEnded    = "NETWORK_TERMINATED"
	infoDurationExpired = "DURATION_EXPIRED"
)

// cloudEventV1 is a CloudEvents 1.0 structured-mode event (the only mode
// CAMARA uses).
type cloudEventV1 struct {
	SpecVersion string `json:"specversion"`
	ID          string `json:"id"`
	Source      string `json:"source"`
	Type        string `json:"type"`
	Data        struct {
		SessionID  string `json:"sessionId"`
		QoSStatus  string `json:"qosStatus"`
		StatusInfo string `json:"statusInfo"`
		Event      string `json:"event"`
	} `json:"data"`
}

// parseSessionEvent reads a notification body. A body sent as
// application/cloudevents+json must be a CloudEvent of a known type; any
// other body may be either form (gateways relabel content types).
func parseSessionEvent(contentType string, body []byte) (SessionEvent, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/cloudevents+json" {
		var plain Notification
		if err := json.Unmarshal(body, &plain); err != nil {
			return SessionEvent{}, err
		}
		if plain.SessionID != "" {
			return SessionEvent{SessionID: plain.SessionID, Terminated: plain.Event == "SESSION_TERMINATED"}, nil
		}
	}
	var ce cloudEventV1
	if err := json.Unmarshal(body, &ce); err != nil {
		return SessionEvent{}, err
	}
	switch {
	case ce.Data.SessionID == "":
		return SessionEvent{}, errors.New("no sessionId")
	case mt == "application/cloudevents+json" && ce.SpecVersion != "1.0":
		return SessionEvent{}, fmt.Errorf("CloudEvents specversion %q, want 1.0", truncateText(ce.SpecVersion, 16))
	case mt == "application/cloudevents+json" && ce.Type != qosStatusChanged && !strings.HasSuffix(ce.Type, "session-terminated"):
		return SessionEvent{}, fmt.Errorf("CloudEvents type %q is not %s", truncateText(ce.Type, 80), qosStatusChanged)
	}
	ev := SessionEvent{SessionID: ce.Data.SessionID, QoSStatus: ce.Data.QoSStatus, StatusInfo: ce.Data.StatusInfo}
	ev.Terminated = ce.Data.Event == "SESSION_TERMINATED" || ce.Data.QoSStatus == qosUnavailable ||
		strings.HasSuffix(ce.Type, "session-terminated")
	return ev, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// isNotificationPath: the paths the receiver answers. v0.8.1 appends
// /notifications to the URL it was given; CAMARA v1 posts to the sink
// itself, which the daemon makes {public_url}/tx/{transaction id}.
func isNotificationPath(path string) bool {
	return path == "/notifications" || strings.HasSuffix(path, "/notifications") || transactionIDOf(path) != ""
}
