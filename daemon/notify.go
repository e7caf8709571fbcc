package daemon

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
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

// Notice is what one notification says, whatever its wire format. A
// notification is a hint, not the truth (issue 8): anyone holding the
// token can send one, so the daemon confirms an end with GET before it
// forgets a session.
type Notice struct {
	// TransactionID is the create's whose notificationUrl was called
	// (.../tx/{transaction id}/notifications); "" if the path has none.
	TransactionID string
	SessionID     string
	// Event is the event as sent, for the log.
	Event string
	// Terminated says the event reports the session's end.
	Terminated bool
	// QoSStatus (AVAILABLE, UNAVAILABLE) and StatusInfo (DURATION_EXPIRED,
	// NETWORK_TERMINATED, DELETE_REQUESTED) are a CAMARA v1 event's.
	QoSStatus  string
	StatusInfo string
}

// NoticeDecoder turns an authorized request and its body into a Notice.
// A second wire format is a second decoder: DecodeNotice tries the
// formats qodwatch knows.
type NoticeDecoder func(r *http.Request, body []byte) (Notice, error)

// DecodeNotice reads the transaction id from the path and the session and
// event from a v0.8.1 body or a CloudEvent (CAMARA v1, see
// parseSessionEvent).
func DecodeNotice(r *http.Request, body []byte) (Notice, error) {
	ev, err := parseSessionEvent(r.Header.Get("Content-Type"), body)
	if err != nil {
		return Notice{}, err
	}
	event := "SESSION_TERMINATED"
	switch {
	case ev.QoSStatus != "":
		event = qosStatusChanged + " " + ev.QoSStatus
		if ev.StatusInfo != "" {
			event += " " + ev.StatusInfo
		}
	case !ev.Terminated:
		event = "unknown"
	}
	return Notice{TransactionID: transactionIDOf(r.URL.Path), SessionID: ev.SessionID, Event: event, Terminated: ev.Terminated,
		QoSStatus: ev.QoSStatus, StatusInfo: ev.StatusInfo}, nil
}

// Reasons a notification is rejected, as counted in
// qodwatch_notifications_total{result}.
const (
	rejectMethod           = "method_not_allowed"
	rejectUnauthorized     = "unauthorized"
	rejectTooLarge         = "too_large"
	rejectMalformed        = "malformed"
	rejectWrongPath        = "wrong_path"        // no /tx/{transaction id}/ in the path
	rejectWrongTransaction = "wrong_transaction" // not the path of that session's create
	rejectUnknownSession   = "unknown_session"   // neither held nor the session of an open create
)

// NotificationReceiver answers at …/tx/{transaction id}/notifications. It
// accepts only the token the daemon handed out, as the `apikey` query
// parameter (v0.8.1) or a bearer header (later CAMARA), compared in
// constant time; what it accepts it hands to Handle. Rejections are
// counted and logged at most once per minute per reason, with a count:
// strangers must not be able to fill the log.
type NotificationReceiver struct {
	Token string
	// Mode limits where the token may be: "apikey", "bearer", or "" / "any"
	// for either.
	Mode   string
	Logger *slog.Logger
	// Decode reads a notification; nil is DecodeNotice.
	Decode NoticeDecoder
	// Handle gets every authorized, well-formed notice with a transaction
	// id, and returns "" if it accepts it or the reason it rejects it.
	Handle func(Notice) (reject string)
	// Count, if set, counts each rejection by reason.
	Count func(result string)
	// Now replaces time.Now for the log limit.
	Now func() time.Time

	limit logLimiter
}

func (n *NotificationReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		n.reject(w, r, rejectMethod, http.StatusMethodNotAllowed, nil)
		return
	}
	if !n.authorized(r) {
		n.reject(w, r, rejectUnauthorized, http.StatusUnauthorized, nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotificationBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			n.reject(w, r, rejectTooLarge, http.StatusRequestEntityTooLarge, nil)
			return
		}
		n.reject(w, r, rejectMalformed, http.StatusBadRequest, err)
		return
	}
	decode := n.Decode
	if decode == nil {
		decode = DecodeNotice
	}
	notice, err := decode(r, body)
	if err != nil {
		n.reject(w, r, rejectMalformed, http.StatusBadRequest, err)
		return
	}
	if notice.TransactionID == "" {
		// Every create names its own URL: one without a transaction id
		// was not handed out by this daemon.
		n.reject(w, r, rejectWrongPath, http.StatusNotFound, nil)
		return
	}
	n.logger().Info("notification received", "session_id", notice.SessionID, "event", notice.Event,
		"terminated", notice.Terminated, "transaction_id", notice.TransactionID, "x_correlator", r.Header.Get("x-correlator"))
	if n.Handle != nil {
		if why := n.Handle(notice); why != "" {
			n.reject(w, r, why, http.StatusNotFound, nil)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// reject answers, counts and (rate-limited) logs one refused notification.
func (n *NotificationReceiver) reject(w http.ResponseWriter, r *http.Request, reason string, status int, err error) {
	if n.Count != nil {
		n.Count(reason)
	}
	if count, ok := n.limit.allow(reason, n.now()); ok {
		args := []any{"reason", reason, "count", count, "remote", r.RemoteAddr}
		if err != nil {
			args = append(args, "err", err)
		}
		n.logger().Warn("notification refused (logged at most once a minute per reason; count is how many since the last line)", args...)
	}
	http.Error(w, strings.ReplaceAll(reason, "_", " "), status)
}

// FlushLog logs the rejections counted but not logged yet once their
// minute is over, so the last burst is not left unsaid.
func (n *NotificationReceiver) FlushLog() {
	for _, p := range n.limit.due(n.now()) {
		n.logger().Warn("notification refused (logged at most once a minute per reason; count is how many since the last line)",
			"reason", p.reason, "count", p.count)
	}
}

func (n *NotificationReceiver) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
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
// .../tx/{id}/notifications (v0.8.1 appends /notifications) or .../tx/{id}
// (a CAMARA v1 sink, used as is); "" if there is none or it is malformed.
func transactionIDOf(path string) string {
	rest, ok := strings.CutSuffix(path, "/notifications")
	if !ok {
		rest = path
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
