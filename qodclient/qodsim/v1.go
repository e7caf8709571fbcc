package qodsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// This file is the CAMARA QualityOnDemand v1.1.0 side of the simulator:
// routes, bodies, the qosStatus life of a session, and errors
// {status, code, message}.

// v1Codes are the generic CAMARA codes per status.
var v1Codes = map[int]string{
	http.StatusBadRequest:          "INVALID_ARGUMENT",
	http.StatusUnauthorized:        "UNAUTHENTICATED",
	http.StatusForbidden:           "PERMISSION_DENIED",
	http.StatusNotFound:            "NOT_FOUND",
	http.StatusMethodNotAllowed:    "METHOD_NOT_ALLOWED",
	http.StatusConflict:            "CONFLICT",
	http.StatusGone:                "GONE",
	http.StatusUnprocessableEntity: "UNPROCESSABLE_ENTITY",
	http.StatusTooManyRequests:     "TOO_MANY_REQUESTS",
	http.StatusInternalServerError: "INTERNAL",
	http.StatusBadGateway:          "BAD_GATEWAY",
	http.StatusServiceUnavailable:  "UNAVAILABLE",
	http.StatusGatewayTimeout:      "TIMEOUT",
}

// v1ErrorInfo is CAMARA's ErrorInfo.
type v1ErrorInfo struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func v1Error(status int, code, message string) *reply {
	if code == "" {
		code = v1Codes[status]
	}
	return jsonReply(status, v1ErrorInfo{Status: status, Code: code, Message: message})
}

// validCorrelator: x-correlator's pattern, so that an echo never carries
// what a client should not have sent.
func validCorrelator(v string) bool {
	if len(v) > 256 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_:;./<>{}", c) >= 0) {
			return false
		}
	}
	return true
}

func (s *Simulator) routeV1(r *http.Request, body []byte) *reply {
	p := r.URL.Path
	sessions := s.opts.BasePath + "/sessions"
	profiles := s.opts.ProfilesBasePath + "/qos-profiles/"
	post := func(op, id string) *reply {
		if r.Method != http.MethodPost {
			return v1MethodNotAllowed(http.MethodPost)
		}
		return s.apiCall(op, r, body, id)
	}
	switch {
	case p == sessions:
		return post(opCreate, "")
	case p == s.opts.BasePath+"/retrieve-sessions":
		return post(opRetrieveSessions, "")
	case p == s.opts.ProfilesBasePath+"/retrieve-qos-profiles":
		return post(opRetrieveProfiles, "")
	case strings.HasPrefix(p, profiles) && len(p) > len(profiles) && !strings.Contains(p[len(profiles):], "/"):
		if r.Method != http.MethodGet {
			return v1MethodNotAllowed(http.MethodGet)
		}
		return s.apiCall(opGetProfile, r, body, p[len(profiles):])
	case strings.HasPrefix(p, sessions+"/") && len(p) > len(sessions)+1:
		rest := p[len(sessions)+1:]
		if id, ok := strings.CutSuffix(rest, "/extend"); ok && id != "" && !strings.Contains(id, "/") {
			return post(opExtend, id)
		}
		if strings.Contains(rest, "/") {
			break
		}
		switch r.Method {
		case http.MethodGet:
			return s.apiCall(opGet, r, body, rest)
		case http.MethodDelete:
			return s.apiCall(opDelete, r, body, rest)
		}
		return v1MethodNotAllowed(http.MethodGet + ", " + http.MethodDelete)
	}
	return v1Error(http.StatusNotFound, "NOT_FOUND", "No such resource: "+r.Method+" "+p)
}

func v1MethodNotAllowed(allow string) *reply {
	rep := v1Error(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "Method not allowed; use "+allow)
	rep.header.Set("Allow", allow)
	return rep
}

func (s *Simulator) serveV1(op string, body []byte, id string) *reply {
	switch op {
	case opCreate:
		return s.createV1(body)
	case opGet:
		return s.getV1(id)
	case opDelete:
		return s.deleteV1(id)
	case opExtend:
		return s.extendV1(body, id)
	case opRetrieveSessions:
		return s.retrieveSessions(body)
	case opGetProfile:
		return s.getProfile(id)
	case opRetrieveProfiles:
		return s.retrieveProfiles(body)
	}
	return v1Error(http.StatusNotFound, "NOT_FOUND", "No such operation")
}

// decodeStrict decodes one JSON object refusing unknown members (a typo in
// a client is caught in tests, not ignored) and trailing data.
func decodeStrict(body []byte, v any) *reply {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return v1Error(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid request body: "+err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return v1Error(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid request body: data after the JSON object")
	}
	return nil
}

type v1DeviceIPv4 struct {
	PublicAddress  string `json:"publicAddress,omitempty"`
	PrivateAddress string `json:"privateAddress,omitempty"`
	PublicPort     *int   `json:"publicPort,omitempty"`
}

type v1Device struct {
	PhoneNumber             string        `json:"phoneNumber,omitempty"`
	NetworkAccessIdentifier string        `json:"networkAccessIdentifier,omitempty"`
	IPv4Address             *v1DeviceIPv4 `json:"ipv4Address,omitempty"`
	IPv6Address             string        `json:"ipv6Address,omitempty"`
}

type v1AppServer struct {
	IPv4Address string `json:"ipv4Address,omitempty"`
	IPv6Address string `json:"ipv6Address,omitempty"`
}

type v1SinkCredential struct {
	CredentialType        string `json:"credentialType"`
	AccessToken           string `json:"accessToken,omitempty"`
	AccessTokenExpiresUtc string `json:"accessTokenExpiresUtc,omitempty"`
	AccessTokenType       string `json:"accessTokenType,omitempty"`
}

type v1CreateRequest struct {
	Device                 *v1Device         `json:"device,omitempty"`
	ApplicationServer      v1AppServer       `json:"applicationServer"`
	DevicePorts            *PortsSpec        `json:"devicePorts,omitempty"`
	ApplicationServerPorts *PortsSpec        `json:"applicationServerPorts,omitempty"`
	QoSProfile             string            `json:"qosProfile"`
	Duration               int               `json:"duration"`
	Sink                   string            `json:"sink,omitempty"`
	SinkCredential         *v1SinkCredential `json:"sinkCredential,omitempty"`
}

// v1SessionInfo is SessionInfo. The sink credential is never echoed.
type v1SessionInfo struct {
	SessionID              string      `json:"sessionId"`
	Duration               int         `json:"duration"`
	Device                 *v1Device   `json:"device,omitempty"`
	ApplicationServer      v1AppServer `json:"applicationServer"`
	DevicePorts            *PortsSpec  `json:"devicePorts,omitempty"`
	ApplicationServerPorts *PortsSpec  `json:"applicationServerPorts,omitempty"`
	QoSProfile             string      `json:"qosProfile"`
	Sink                   string      `json:"sink,omitempty"`
	StartedAt              string      `json:"startedAt,omitempty"`
	ExpiresAt              string      `json:"expiresAt,omitempty"`
	QoSStatus              string      `json:"qosStatus"`
	StatusInfo             string      `json:"statusInfo,omitempty"`
}

// deviceOf is the device of a session as the answer shows it: one
// identifier only (DeviceResponse has maxProperties 1), the first of
// phone number, IPv4, IPv6, NAI that the create gave.
func deviceOf(sess *Session) *v1Device {
	u := sess.UE
	switch {
	case u.MSISDN != "":
		return &v1Device{PhoneNumber: u.MSISDN}
	case u.IPv4Addr != "":
		d := &v1DeviceIPv4{PublicAddress: u.IPv4Addr, PrivateAddress: sess.UEPrivateIPv4}
		if sess.UEPublicPort != 0 {
			port := sess.UEPublicPort
			d.PublicPort = &port
		}
		return &v1Device{IPv4Address: d}
	case u.IPv6Addr != "":
		return &v1Device{IPv6Address: u.IPv6Addr}
	case u.ExternalID != "":
		return &v1Device{NetworkAccessIdentifier: u.ExternalID}
	}
	return nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func infoV1(sess *Session) v1SessionInfo {
	out := v1SessionInfo{
		SessionID: sess.ID, Duration: sess.Duration, Device: deviceOf(sess),
		ApplicationServer: v1AppServer{IPv4Address: sess.AS.IPv4Addr, IPv6Address: sess.AS.IPv6Addr},
		DevicePorts:       sess.UEPorts, ApplicationServerPorts: sess.ASPorts,
		QoSProfile: sess.QoS, Sink: sess.NotificationURL,
		QoSStatus: sess.QoSStatus, StatusInfo: sess.StatusInfo,
	}
	if sess.QoSStatus != StatusRequested {
		// startedAt is when it became AVAILABLE; expiresAt when it ends
		// or ended.
		out.StartedAt, out.ExpiresAt = rfc3339(sess.StartedAt), rfc3339(sess.ExpiresAt)
	}
	return out
}

// sessionFromDevice fills the device part of a session.
func sessionFromDevice(d *v1Device, sess *Session) {
	if d == nil {
		return
	}
	sess.UE = UEID{ExternalID: d.NetworkAccessIdentifier, MSISDN: d.PhoneNumber, IPv6Addr: d.IPv6Address}
	if a := d.IPv4Address; a != nil {
		sess.UE.IPv4Addr = a.PublicAddress
		sess.UEPrivateIPv4 = a.PrivateAddress
		if a.PublicPort != nil {
			sess.UEPublicPort = *a.PublicPort
		}
	}
}

// checkDevice is what the schema cannot say about a device; the error's
// code and status are CAMARA's.
func checkDevice(d *v1Device) *reply {
	if d == nil {
		// Every call here is two-legged: the device must be named.
		return v1Error(http.StatusUnprocessableEntity, "MISSING_IDENTIFIER", "The device cannot be identified.")
	}
	if d.NetworkAccessIdentifier != "" {
		// CAMARA does not yet allow its use (Commonalities, Device NOTE2).
		return v1Error(http.StatusUnprocessableEntity, "UNSUPPORTED_IDENTIFIER", "The identifier networkAccessIdentifier is not supported.")
	}
	return nil
}

func checkAppServer(a v1AppServer) *reply {
	for _, x := range []struct {
		field, v string
		v4       bool
	}{{"applicationServer.ipv4Address", a.IPv4Address, true}, {"applicationServer.ipv6Address", a.IPv6Address, false}} {
		if x.v == "" {
			continue
		}
		addr, err := parseAddr(x.v)
		if err != nil || addr.Is4() != x.v4 || addr.Zone() != "" {
			return v1Error(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid "+x.field+": not an address or address/mask")
		}
	}
	return nil
}

func checkPorts(field string, p *PortsSpec) *reply {
	if p == nil {
		return nil
	}
	for i, r := range p.Ranges {
		if r.From > r.To {
			return v1Error(http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf("Invalid %s.ranges[%d]: from %d is above to %d", field, i, r.From, r.To))
		}
	}
	return nil
}

func (s *Simulator) createV1(body []byte) *reply {
	var req v1CreateRequest
	if rep := decodeStrict(body, &req); rep != nil {
		return rep
	}
	for _, rep := range []*reply{
		checkDevice(req.Device), checkAppServer(req.ApplicationServer),
		checkPorts("devicePorts", req.DevicePorts), checkPorts("applicationServerPorts", req.ApplicationServerPorts),
	} {
		if rep != nil {
			return rep
		}
	}
	token := ""
	if c := req.SinkCredential; c != nil {
		if c.CredentialType != "ACCESSTOKEN" {
			return v1Error(http.StatusBadRequest, "INVALID_CREDENTIAL", "Only Access token is supported")
		}
		token = c.AccessToken
	}
	s.mu.Lock()
	prof, ok := s.profile(req.QoSProfile)
	s.mu.Unlock()
	if !ok || prof.Status != ProfileActive {
		return v1Error(http.StatusUnprocessableEntity, "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE", "The requested QoS Profile is currently not available for session creation.")
	}
	if req.Duration < prof.minSeconds() || req.Duration > prof.maxSeconds() {
		return v1Error(http.StatusBadRequest, "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE",
			fmt.Sprintf("The requested duration is out of the allowed range for the specific QoS profile (%d..%d s)", prof.minSeconds(), prof.maxSeconds()))
	}
	id, err := newUUID()
	if err != nil {
		return v1Error(http.StatusInternalServerError, "INTERNAL", "Session could not be created")
	}
	now := s.opts.Now()
	sess := &Session{
		ID: id, AS: ASID{IPv4Addr: req.ApplicationServer.IPv4Address, IPv6Addr: req.ApplicationServer.IPv6Address},
		UEPorts: req.DevicePorts, ASPorts: req.ApplicationServerPorts, QoS: req.QoSProfile, Duration: req.Duration,
		NotificationURL: req.Sink, NotificationAuthToken: token,
		StartedAt: now, QoSStatus: StatusRequested,
	}
	sessionFromDevice(req.Device, sess)
	s.mu.Lock()
	if !s.faults.StuckRequested {
		sess.AvailableAt = now.Add(s.opts.AvailableDelay)
	}
	keys := keysOf(sess)
	for _, k := range keys {
		if _, taken := s.byUE[k]; taken {
			s.mu.Unlock()
			return v1Error(http.StatusConflict, "CONFLICT", "Conflict with an existing session for the same device.")
		}
	}
	s.sessions[id] = sess
	for _, k := range keys {
		s.byUE[k] = id
	}
	s.creates++
	drop := s.faults.DropCreateResponse
	info := infoV1(sess)
	s.mu.Unlock()
	s.log.Info("qodsim session created", "session_id", id, "qos", req.QoSProfile, "duration_seconds", req.Duration, "qos_status", StatusRequested)
	rep := jsonReply(http.StatusCreated, info)
	rep.drop = drop
	return rep
}

func (s *Simulator) getV1(id string) *reply {
	s.mu.Lock()
	sess, ok := s.sessions[id]
	var info v1SessionInfo
	if ok {
		info = infoV1(sess)
	}
	s.mu.Unlock()
	if !ok {
		return v1Error(http.StatusNotFound, "NOT_FOUND", "The specified resource is not found.")
	}
	return jsonReply(http.StatusOK, info)
}

// deleteV1 ends a session; an AVAILABLE one gets its UNAVAILABLE
// DELETE_REQUESTED event, as the spec says.
func (s *Simulator) deleteV1(id string) *reply {
	sess, ok := s.take(id)
	if !ok {
		return v1Error(http.StatusNotFound, "NOT_FOUND", "The specified resource is not found.")
	}
	s.log.Info("qodsim session deleted", "session_id", id)
	if sess.QoSStatus == StatusAvailable {
		ended := *sess
		ended.QoSStatus, ended.StatusInfo = StatusUnavailable, InfoDeleteRequested
		s.notify(ended, "")
	}
	return &reply{status: http.StatusNoContent, header: http.Header{}}
}

type v1ExtendRequest struct {
	RequestedAdditionalDuration int `json:"requestedAdditionalDuration"`
}

// extendV1 lengthens an AVAILABLE session, capped at its profile's
// maxDuration.
func (s *Simulator) extendV1(body []byte, id string) *reply {
	var req v1ExtendRequest
	if rep := decodeStrict(body, &req); rep != nil {
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return v1Error(http.StatusNotFound, "NOT_FOUND", "The specified resource is not found.")
	}
	if s.faults.RefuseExtend || sess.QoSStatus != StatusAvailable {
		return v1Error(http.StatusConflict, "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED", "Extending the session duration is not allowed in the current state ("+sess.QoSStatus+"). The session must be in the AVAILABLE state.")
	}
	limit := DefaultSessionDuration
	if p, ok := s.profile(sess.QoS); ok {
		limit = p.maxSeconds()
	}
	sess.Duration = min(sess.Duration+req.RequestedAdditionalDuration, limit)
	sess.ExpiresAt = sess.StartedAt.Add(time.Duration(sess.Duration) * time.Second)
	s.log.Info("qodsim session extended", "session_id", id, "duration_seconds", sess.Duration)
	return jsonReply(http.StatusOK, infoV1(sess))
}

type v1RetrieveRequest struct {
	Device *v1Device `json:"device,omitempty"`
}

// retrieveSessions lists the sessions of a device, in every status.
func (s *Simulator) retrieveSessions(body []byte) *reply {
	var req v1RetrieveRequest
	if rep := decodeStrict(body, &req); rep != nil {
		return rep
	}
	if rep := checkDevice(req.Device); rep != nil {
		return rep
	}
	var probe Session
	sessionFromDevice(req.Device, &probe)
	want := keysOf(&probe)
	s.mu.Lock()
	var found []*Session
	for _, sess := range s.sessions {
		if slices.ContainsFunc(keysOf(sess), func(k string) bool { return slices.Contains(want, k) }) {
			found = append(found, sess)
		}
	}
	slices.SortFunc(found, func(a, b *Session) int { return a.StartedAt.Compare(b.StartedAt) })
	out := make([]v1SessionInfo, 0, len(found))
	for _, sess := range found {
		out = append(out, infoV1(sess))
	}
	s.mu.Unlock()
	return jsonReply(http.StatusOK, out)
}

// advanceV1 moves every session along its life: REQUESTED to AVAILABLE
// once due, AVAILABLE to gone at its expiry (DURATION_EXPIRED), and an
// UNAVAILABLE one to gone after its retention. Events go out in order.
func (s *Simulator) advanceV1() {
	now := s.opts.Now()
	type event struct {
		sess   Session
		reason string
	}
	var events []event
	s.mu.Lock()
	for _, sess := range s.sessions {
		if sess.QoSStatus == StatusRequested && !sess.AvailableAt.IsZero() && !now.Before(sess.AvailableAt) {
			sess.QoSStatus = StatusAvailable
			sess.StartedAt = now
			sess.ExpiresAt = now.Add(time.Duration(sess.Duration) * time.Second)
			events = append(events, event{sess: sess.clone()})
		}
		switch {
		case sess.QoSStatus == StatusAvailable && !sess.ExpiresAt.After(now):
			s.removeLocked(sess)
			ended := sess.clone()
			ended.QoSStatus, ended.StatusInfo = StatusUnavailable, InfoDurationExpired
			events = append(events, event{sess: ended, reason: EndExpired})
		case sess.QoSStatus == StatusUnavailable && !sess.GoneAt.After(now):
			s.removeLocked(sess)
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(events, func(a, b event) int { return a.sess.ExpiresAt.Compare(b.sess.ExpiresAt) })
	for _, e := range events {
		s.log.Info("qodsim session status changed", "session_id", e.sess.ID, "qos_status", e.sess.QoSStatus, "status_info", e.sess.StatusInfo)
		s.notify(e.sess, e.reason)
	}
}

// terminateV1 is the network withdrawing (or failing to provide) a
// session: it stays UNAVAILABLE with NETWORK_TERMINATED until deleted or
// its retention has passed.
func (s *Simulator) terminateV1(id string) error {
	s.mu.Lock()
	sess, ok := s.sessions[id]
	if !ok || sess.QoSStatus == StatusUnavailable {
		s.mu.Unlock()
		return fmt.Errorf("terminate session %q: %w", id, ErrSessionNotFound)
	}
	now := s.opts.Now()
	if sess.QoSStatus == StatusAvailable {
		sess.Duration = max(1, int(now.Sub(sess.StartedAt)/time.Second))
	}
	sess.QoSStatus, sess.StatusInfo = StatusUnavailable, InfoNetworkTerminated
	sess.ExpiresAt, sess.GoneAt = now, now.Add(s.opts.TerminatedRetention)
	ended := sess.clone()
	s.mu.Unlock()
	s.log.Info("qodsim session terminated by the network", "session_id", id)
	s.notify(ended, EndTerminated)
	return nil
}
