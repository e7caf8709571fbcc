package qodsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// notificationBody is the v0.8.1 SESSION_TERMINATED notification.
type notificationBody struct {
	SessionID string `json:"sessionId"`
	Event     string `json:"event"`
}

// notifyTarget is notificationUrl + "/notifications", with the apikey
// parameter added when that is how the token travels, and a form of it
// safe to log.
func notifyTarget(base, token, mode string) (target, logged string, err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", "", fmt.Errorf("parse notification URL: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/notifications"
	u.RawPath = ""
	// What is logged and recorded leaves out anything that may be a
	// credential: user info and the query.
	shown := *u
	shown.User, shown.RawQuery, shown.Fragment = nil, "", ""
	logged = shown.String()
	if token != "" && mode == NotifyAPIKey {
		q := u.Query()
		q.Set("apikey", token)
		u.RawQuery = q.Encode()
	}
	return u.String(), logged, nil
}

// sinkTarget is a CAMARA v1 sink as is (no path appended) and its form
// safe to log.
func sinkTarget(sink string) (target, logged string, err error) {
	u, err := url.Parse(sink)
	if err != nil {
		return "", "", fmt.Errorf("parse sink: %w", err)
	}
	shown := *u
	shown.User, shown.RawQuery, shown.Fragment = nil, "", ""
	return sink, shown.String(), nil
}

// cloudEvent is the CAMARA v1 qos-status-changed event of a session.
type cloudEvent struct {
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	SpecVersion     string            `json:"specversion"`
	DataContentType string            `json:"datacontenttype"`
	Time            string            `json:"time"`
	Data            cloudEventQoSData `json:"data"`
}

type cloudEventQoSData struct {
	SessionID  string `json:"sessionId"`
	QoSStatus  string `json:"qosStatus"`
	StatusInfo string `json:"statusInfo,omitempty"`
}

// QoSStatusChangedType is the CloudEvents type of CAMARA v1 notifications.
const QoSStatusChangedType = "org.camaraproject.quality-on-demand.v1.qos-status-changed"

func (s *Simulator) cloudEvent(sess Session) []byte {
	id, err := newUUID()
	if err != nil {
		id = sess.ID + "-" + sess.QoSStatus
	}
	body, _ := json.Marshal(cloudEvent{
		ID: id, Source: s.opts.BasePath + "/sessions/" + sess.ID, Type: QoSStatusChangedType,
		SpecVersion: "1.0", DataContentType: "application/json", Time: s.opts.Now().UTC().Format(time.RFC3339Nano),
		Data: cloudEventQoSData{SessionID: sess.ID, QoSStatus: sess.QoSStatus, StatusInfo: sess.StatusInfo},
	})
	return body
}

// notify starts the background delivery of SESSION_TERMINATED for a
// session that ended other than by DELETE.
//
// In CAMARA v1 it is a CloudEvent qos-status-changed with the session's
// qosStatus and statusInfo, POSTed to the sink itself with the sink
// credential as bearer token.
func (s *Simulator) notify(sess Session, reason string) {
	if sess.NotificationURL == "" {
		return
	}
	v1 := s.opts.Dialect == DialectCAMARAv1
	var target, logged string
	var err error
	var body []byte
	contentType, bearer := "application/json", ""
	if v1 {
		target, logged, err = sinkTarget(sess.NotificationURL)
		body, contentType, bearer = s.cloudEvent(sess), "application/cloudevents+json", sess.NotificationAuthToken
	} else {
		target, logged, err = notifyTarget(sess.NotificationURL, sess.NotificationAuthToken, s.opts.NotifyAuth)
		body, _ = json.Marshal(notificationBody{SessionID: sess.ID, Event: "SESSION_TERMINATED"})
		if s.opts.NotifyAuth == NotifyBearer {
			bearer = sess.NotificationAuthToken
		}
	}
	rec := &Notification{SessionID: sess.ID, Reason: reason, URL: logged}
	if v1 {
		rec.QoSStatus, rec.StatusInfo = sess.QoSStatus, sess.StatusInfo
	}
	s.mu.Lock()
	s.notifications = append(s.notifications, rec)
	if n := len(s.notifications); n > s.opts.MaxRequestLog {
		s.notifications = slices.Clone(s.notifications[n-s.opts.MaxRequestLog:])
	}
	s.mu.Unlock()
	if err != nil {
		s.finishNotification(rec, false, err.Error())
		return
	}
	if !s.track() {
		s.finishNotification(rec, false, errClosed.Error())
		return
	}
	s.mu.Lock()
	if s.deliveries == 0 {
		s.idle = make(chan struct{})
	}
	s.deliveries++
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			if s.deliveries--; s.deliveries == 0 {
				close(s.idle)
			}
			s.mu.Unlock()
		}()
		s.deliver(rec, target, logged, contentType, bearer, body)
	}()
}

// deliver makes at most NotifyAttempts attempts, each bounded by
// NotifyTimeout, with doubling backoff between them; Close cuts it short.
// 2xx is success; other 4xx answers (but 408 and 429) are final.
func (s *Simulator) deliver(rec *Notification, target, logged, contentType, bearer string, body []byte) {
	backoff := s.opts.NotifyBackoff
	for attempt := 1; ; attempt++ {
		status, err := s.post(target, contentType, bearer, body)
		s.mu.Lock()
		rec.Attempts = attempt
		s.mu.Unlock()
		if err == nil && status/100 == 2 {
			s.log.Info("qodsim notification delivered", "url", logged, "attempt", attempt, "status", status)
			s.finishNotification(rec, true, "")
			return
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			msg = fmt.Sprintf("answer %d", status)
		}
		final := attempt >= s.opts.NotifyAttempts ||
			(err == nil && status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests)
		s.log.Warn("qodsim notification failed", "url", logged, "attempt", attempt, "error", msg, "final", final)
		if final {
			s.finishNotification(rec, false, msg)
			return
		}
		s.mu.Lock()
		rec.LastError = msg
		s.mu.Unlock()
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			s.finishNotification(rec, false, msg+" (simulator closed)")
			return
		}
		backoff *= 2
	}
}

// post sends one notification. The error never contains the target URL,
// which may carry the token.
func (s *Simulator) post(target, contentType, bearer string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.NotifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build notification request: %w", stripURL(err))
	}
	req.Header.Set("Content-Type", contentType)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("send notification: %w", stripURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	return resp.StatusCode, nil
}

// stripURL drops the URL (which may hold the apikey) from a client error.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func (s *Simulator) finishNotification(rec *Notification, delivered bool, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.Delivered, rec.Done, rec.LastError = delivered, true, lastErr
}
