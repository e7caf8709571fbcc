package daemon

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// maxNotificationBody caps what a caller can make us read; a QoD
// notification is a few hundred bytes.
const maxNotificationBody = 64 << 10

// Notification is a QoD session event as the network sends it. v0.8.1
// (DevEdge) sends {"sessionId","event"}; later CAMARA versions send
// CloudEvents with the same facts under "data".
type Notification struct {
	SessionID string `json:"sessionId"`
	Event     string `json:"event"`
}

type cloudEvent struct {
	Type string `json:"type"`
	Data struct {
		SessionID  string `json:"sessionId"`
		QoSStatus  string `json:"qosStatus"`
		StatusInfo string `json:"statusInfo"`
		Event      string `json:"event"`
	} `json:"data"`
}

// NotificationReceiver answers at …/notifications. It accepts only the token
// the daemon handed out, as the `apikey` query parameter (v0.8.1) or a bearer
// header (later CAMARA), compared in constant time.
type NotificationReceiver struct {
	Token string
	// OnTerminated is called for every SESSION_TERMINATED (or a CloudEvent
	// saying the session became UNAVAILABLE).
	OnTerminated func(sessionID string)
	// OnSessionTerminated, if set, is called instead of OnTerminated, also
	// with the transaction id of the create that asked for the session
	// when the notification URL carries it (see the daemon's notification
	// URLs: .../tx/{transaction id}/notifications), else "".
	OnSessionTerminated func(sessionID, transactionID string)
	Logger              *slog.Logger
	// Mode limits where the token may be: "apikey", "bearer", or "" / "any"
	// for either.
	Mode string
}

func (n *NotificationReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !n.authorized(r) {
		n.logger().Warn("notification refused: bad or missing token", "remote", r.RemoteAddr)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotificationBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	id, terminated, err := parseNotification(body)
	if err != nil {
		n.logger().Warn("notification refused: malformed body", "err", err)
		http.Error(w, "malformed notification", http.StatusBadRequest)
		return
	}
	txid := transactionIDOf(r.URL.Path)
	n.logger().Info("notification received", "session_id", id, "terminated", terminated, "transaction_id", txid)
	switch {
	case !terminated:
	case n.OnSessionTerminated != nil:
		n.OnSessionTerminated(id, txid)
	case n.OnTerminated != nil:
		n.OnTerminated(id)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *NotificationReceiver) authorized(r *http.Request) bool {
	if n.Token == "" {
		return false
	}
	var got string
	if n.Mode != "bearer" {
		got = r.URL.Query().Get("apikey")
	}
	if h := r.Header.Get("Authorization"); got == "" && h != "" && n.Mode != "apikey" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			got = strings.TrimSpace(token)
		}
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(n.Token)) == 1
}

// notifyTxSegment precedes the create's transaction id in the path of the
// notification URLs the daemon hands out.
const notifyTxSegment = "tx"

// transactionIDOf reads the transaction id from a notification path
// .../tx/{id}/notifications; "" if there is none or it is malformed.
func transactionIDOf(path string) string {
	rest, ok := strings.CutSuffix(path, "/notifications")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || !strings.HasSuffix(rest[:i], "/"+notifyTxSegment) {
		return ""
	}
	id := rest[i+1:]
	if len(id) == 0 || len(id) > 64 {
		return ""
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return ""
		}
	}
	return id
}

func (n *NotificationReceiver) logger() *slog.Logger {
	if n.Logger == nil {
		return slog.Default()
	}
	return n.Logger
}

func parseNotification(body []byte) (sessionID string, terminated bool, err error) {
	var plain Notification
	if err := json.Unmarshal(body, &plain); err != nil {
		return "", false, err
	}
	if plain.SessionID != "" {
		return plain.SessionID, plain.Event == "SESSION_TERMINATED", nil
	}
	var ce cloudEvent
	if err := json.Unmarshal(body, &ce); err != nil {
		return "", false, err
	}
	if ce.Data.SessionID == "" {
		return "", false, errors.New("no sessionId")
	}
	terminated = ce.Data.Event == "SESSION_TERMINATED" ||
		ce.Data.QoSStatus == "UNAVAILABLE" ||
		strings.HasSuffix(ce.Type, "session-terminated")
	return ce.Data.SessionID, terminated, nil
}
