package qodsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody caps request bodies; a create request is well under 2 KiB.
const maxBody = 1 << 20

// Simulator is an http.Handler serving the QoD API. Its methods are safe
// for concurrent use.
type Simulator struct {
	opts Options
	spec *apiSpec
	log  *slog.Logger

	ctx     context.Context // cancelled by Close; bounds notification deliveries
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close; ends injected latency early
	wg      sync.WaitGroup

	mu            sync.Mutex
	closed        bool
	faults        Faults
	sessions      map[string]*Session
	byUE          map[string]string // UE identity key (ueKeys) -> session id
	requests      []Request
	notifications []*Notification // newest MaxRequestLog deliveries
	creates       int
	tokens        map[string]time.Time // TAAP access token -> expiry
	tokensIssued  int
	jtis          map[string]time.Time // PoP jti -> exp, for replay detection
	jtiAdds       int
	deliveries    int           // notification deliveries in progress
	idle          chan struct{} // closed when deliveries drops to 0
}

// New returns a Simulator for opts. It panics if opts.Validate fails (a
// programming error, like regexp.MustCompile); Run and Serve return the
// error instead.
func New(opts Options) *Simulator {
	s, err := newSimulator(opts)
	if err != nil {
		panic(err)
	}
	return s
}

func newSimulator(opts Options) (*Simulator, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	load := loadSpec
	if opts.Dialect == DialectCAMARAv1 {
		load = loadV1Spec
	}
	spec, err := load()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Simulator{
		opts:     opts,
		spec:     spec,
		log:      opts.Logger,
		ctx:      ctx,
		cancel:   cancel,
		closing:  make(chan struct{}),
		sessions: map[string]*Session{},
		byUE:     map[string]string{},
		tokens:   map[string]time.Time{},
		jtis:     map[string]time.Time{},
		faults:   opts.Faults,
	}, nil
}

// Close stops background work (sweeper, notification deliveries, injected
// latency) and waits for it and for requests in flight. Requests arriving
// afterwards get 503. Close is idempotent.
func (s *Simulator) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
		s.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// track registers background work or a request in flight; it reports false
// once the simulator is closed.
func (s *Simulator) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// SetFaults replaces the injected faults. A call with ExpireTokens set
// revokes every access token issued before it.
func (s *Simulator) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	if f.ExpireTokens {
		clear(s.tokens)
	}
}

// Requests returns a copy of the request log, oldest first.
func (s *Simulator) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Creates counts the sessions created so far, including those whose answer
// was dropped.
func (s *Simulator) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// TokensIssued counts the access tokens the TAAP token endpoint issued.
func (s *Simulator) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokensIssued
}

// Sessions returns the live sessions, oldest first.
func (s *Simulator) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess.clone())
	}
	slices.SortFunc(out, func(a, b Session) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Notifications returns the record of notification deliveries (the newest
// MaxRequestLog), in the order the sessions ended.
func (s *Simulator) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Notification, len(s.notifications))
	for i, n := range s.notifications {
		out[i] = *n
	}
	return out
}

// Terminate ends a live session from the network side, as when the operator
// withdraws it, and sends SESSION_TERMINATED. It returns an error wrapping
// ErrSessionNotFound for an unknown or ended session.
//
// In CAMARA v1 the session stays, UNAVAILABLE with NETWORK_TERMINATED, for
// TerminatedRetention or until it is deleted, and blocks a new session for
// its device meanwhile; the event is a CloudEvent qos-status-changed. A
// REQUESTED session terminated this way is one the network failed to provide.
func (s *Simulator) Terminate(id string) error {
	if s.opts.Dialect == DialectCAMARAv1 {
		return s.terminateV1(id)
	}
	sess, ok := s.take(id)
	if !ok {
		return fmt.Errorf("terminate session %q: %w", id, ErrSessionNotFound)
	}
	s.log.Info("qodsim session terminated by the network", "session_id", id)
	s.notify(*sess, EndTerminated)
	return nil
}

// ExpireDue ends every session whose expiresAt is not after Now() and sends
// their notifications. The simulator also calls it before each API request
// and, under NewServer, Serve and Run, from a background sweeper.
func (s *Simulator) ExpireDue() {
	if s.opts.Dialect == DialectCAMARAv1 {
		s.advanceV1()
		return
	}
	now := s.opts.Now()
	var ended []Session
	s.mu.Lock()
	for _, sess := range s.sessions {
		if !sess.ExpiresAt.After(now) {
			ended = append(ended, *sess)
			s.removeLocked(sess)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(ended, func(a, b Session) int { return a.ExpiresAt.Compare(b.ExpiresAt) })
	for _, sess := range ended {
		s.log.Info("qodsim session expired", "session_id", sess.ID)
		s.notify(sess, EndExpired)
	}
}

// startSweeper ends due sessions every interval until Close.
func (s *Simulator) startSweeper(interval time.Duration) {
	if !s.track() {
		return
	}
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.ExpireDue()
			}
		}
	}()
}

// reply is an answer computed before it is written, so that latency can be
// added after the work is done and a create's answer can be dropped.
type reply struct {
	status int
	header http.Header
	body   []byte
	drop   bool
}

func jsonReply(status int, v any) *reply {
	body, err := json.Marshal(v)
	if err != nil {
		return errorReply(http.StatusInternalServerError, "encode answer: "+err.Error())
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return &reply{status: status, header: h, body: body}
}

// errorInfo is the DevEdge error body.
type errorInfo struct {
	ReasonCode    string `json:"reasonCode"`
	SystemMessage string `json:"systemMessage"`
	UserMessage   string `json:"userMessage"`
}

// systemMessages are the categories in the DevEdge systemMessage field,
// named as CAMARA names its error codes.
var systemMessages = map[int]string{
	http.StatusBadRequest:          "INVALID_INPUT",
	http.StatusUnauthorized:        "UNAUTHORIZED",
	http.StatusForbidden:           "FORBIDDEN",
	http.StatusNotFound:            "NOT_FOUND",
	http.StatusMethodNotAllowed:    "METHOD_NOT_ALLOWED",
	http.StatusConflict:            "CONFLICT",
	http.StatusTooManyRequests:     "TOO_MANY_REQUESTS",
	http.StatusInternalServerError: "INTERNAL",
	http.StatusBadGateway:          "BAD_GATEWAY",
	http.StatusServiceUnavailable:  "SERVICE_UNAVAILABLE",
	http.StatusGatewayTimeout:      "GATEWAY_TIMEOUT",
}

// errorReply builds a DevEdge error. DevEdge documents only ERR-1091 (401);
// the other reason codes are the simulator's own ("ERR-" + status), so
// clients must classify errors by HTTP status, not by reasonCode.
func errorReply(status int, userMessage string) *reply {
	code := "ERR-" + strconv.Itoa(status)
	if status == http.StatusUnauthorized {
		code = "ERR-1091"
	}
	sys, ok := systemMessages[status]
	if !ok {
		sys = strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	}
	r := jsonReply(status, errorInfo{ReasonCode: code, SystemMessage: sys, UserMessage: userMessage})
	r.status = status
	return r
}

// ServeHTTP answers one request.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.track() {
		writeReply(w, errorReply(http.StatusServiceUnavailable, "Simulator is shut down"))
		return
	}
	defer s.wg.Done()

	at := s.opts.Now()
	started := time.Now()
	txID := r.Header.Get("x-transaction-id")
	correlator := r.Header.Get("x-correlator")
	if txID == "" {
		txID = correlator
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	var rep *reply
	switch {
	case err != nil:
		rep = errorReply(http.StatusBadRequest, "Could not read the request body")
	case len(body) > maxBody:
		rep = errorReply(http.StatusBadRequest, fmt.Sprintf("Request body exceeds %d bytes", maxBody))
	default:
		rep = s.route(r, body)
	}
	if txID != "" && s.opts.Dialect == DialectDevEdge {
		rep.header.Set("x-transaction-id", txID)
	}
	if correlator != "" && validCorrelator(correlator) {
		rep.header.Set("x-correlator", correlator)
	}

	status := rep.status
	if rep.drop {
		status = 0
	}
	s.record(Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(),
		Body: body, Status: status, TransactionID: txID, At: at,
	})

	s.mu.Lock()
	latency := s.faults.Latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
		}
	}
	s.log.Info("qodsim request", "method", r.Method, "path", r.URL.Path, "status", status,
		"transaction_id", txID, "dropped", rep.drop, "duration", time.Since(started))
	if rep.drop {
		dropConnection(w)
		return
	}
	writeReply(w, rep)
}

func writeReply(w http.ResponseWriter, rep *reply) {
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body) // the client may be gone; nothing to do about it
}

// dropConnection closes the connection without answering, the way a lost
// answer looks to a client.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 and recorders cannot hijack; net/http aborts the response
	// (resetting the stream) on this panic and keeps serving.
	panic(http.ErrAbortHandler)
}

func (s *Simulator) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	if n := len(s.requests); n > s.opts.MaxRequestLog {
		s.requests = slices.Clone(s.requests[n-s.opts.MaxRequestLog:])
	}
}

func (s *Simulator) route(r *http.Request, body []byte) *reply {
	p := r.URL.Path
	sessions := s.opts.BasePath + "/sessions"
	switch {
	case s.opts.TAAP != nil && (p == DefaultTokenPath || p == legacyTokenPath):
		if r.Method != http.MethodPost {
			return methodNotAllowed(http.MethodPost)
		}
		return s.serveToken(r, body)
	case s.opts.OAuth2 != nil && p == OAuth2TokenPath:
		if r.Method != http.MethodPost {
			return methodNotAllowed(http.MethodPost)
		}
		return s.serveOAuth2Token(r, body)
	case s.opts.Control && strings.HasPrefix(p, ControlPath):
		return s.serveControl(r, body)
	case p == s.opts.BasePath+"/openapi.yaml" && r.Method == http.MethodGet:
		// The contract the simulator enforces, for people and tools.
		h := http.Header{}
		h.Set("Content-Type", "application/yaml")
		doc := OpenAPI
		if s.opts.Dialect == DialectCAMARAv1 {
			doc = OpenAPIv1
		}
		return &reply{status: http.StatusOK, header: h, body: doc}
	case s.opts.Dialect == DialectCAMARAv1:
		return s.routeV1(r, body)
	case p == sessions:
		if r.Method != http.MethodPost {
			return methodNotAllowed(http.MethodPost)
		}
		return s.apiCall(opCreate, r, body, "")
	case strings.HasPrefix(p, sessions+"/") && len(p) > len(sessions)+1 && !strings.Contains(p[len(sessions)+1:], "/"):
		id := p[len(sessions)+1:]
		switch r.Method {
		case http.MethodGet:
			return s.apiCall(opGet, r, body, id)
		case http.MethodDelete:
			return s.apiCall(opDelete, r, body, id)
		}
		return methodNotAllowed(http.MethodGet + ", " + http.MethodDelete)
	}
	return errorReply(http.StatusNotFound, "No such resource: "+r.Method+" "+p)
}

func methodNotAllowed(allow string) *reply {
	rep := errorReply(http.StatusMethodNotAllowed, "Method not allowed; use "+allow)
	rep.header.Set("Allow", allow)
	return rep
}

// apiCall runs the steps every QoD API call goes through, in the order a
// gateway would: injected faults, auth, contract checks, then the work.
func (s *Simulator) apiCall(op string, r *http.Request, body []byte, id string) *reply {
	s.ExpireDue()
	if rep := s.injectedError(op); rep != nil {
		return rep
	}
	v1 := s.opts.Dialect == DialectCAMARAv1
	if err := s.checkAuth(r, body); err != nil {
		if v1 {
			return v1Error(http.StatusUnauthorized, "UNAUTHENTICATED", "Request not authenticated due to missing, invalid, or expired credentials: "+err.Error())
		}
		return errorReply(http.StatusUnauthorized, "Authorization failed: "+err.Error())
	}
	if r.Method == http.MethodPost {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			if v1 {
				return v1Error(http.StatusBadRequest, "INVALID_ARGUMENT", "Content-Type must be application/json")
			}
			return errorReply(http.StatusBadRequest, "Content-Type must be application/json")
		}
	}
	var params map[string]string
	switch {
	case op == opGetProfile:
		params = map[string]string{"name": id}
	case id != "":
		params = map[string]string{"sessionId": id}
	}
	if err := s.spec.validate(r.Context(), op, r, body, params); err != nil {
		if v1 {
			return v1Error(http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
		}
		return errorReply(http.StatusBadRequest, err.Error())
	}
	if v1 {
		return s.serveV1(op, body, id)
	}
	switch op {
	case opCreate:
		return s.create(body)
	case opGet:
		return s.get(id)
	default:
		return s.delete(id)
	}
}

// injectedError draws the injected error for this call, if any.
func (s *Simulator) injectedError(op string) *reply {
	s.mu.Lock()
	f := s.faults
	fail := false
	if len(f.Only) > 0 && !slices.Contains(f.Only, opNames[op]) {
		s.mu.Unlock()
		return nil
	}
	if s.faults.FailNext > 0 {
		s.faults.FailNext--
		fail = true
	} else if f.ErrorRate > 0 && mrand.Float64() < f.ErrorRate {
		fail = true
	}
	s.mu.Unlock()
	if !fail {
		return nil
	}
	status := f.ErrorStatus
	if status < 400 || status > 599 {
		status = http.StatusServiceUnavailable
	}
	rep := errorReply(status, "Injected fault")
	if s.opts.Dialect == DialectCAMARAv1 {
		code := f.ErrorCode
		if code == "" {
			code = v1Codes[status]
		}
		rep = v1Error(status, code, "Injected fault")
	}
	if f.RetryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		secs := int64(math.Ceil(f.RetryAfter.Seconds()))
		rep.header.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	return rep
}

// createRequest is the CreateSession body.
type createRequest struct {
	Duration              *int       `json:"duration,omitempty"`
	UEID                  UEID       `json:"ueId"`
	ASID                  ASID       `json:"asId"`
	UEPorts               *PortsSpec `json:"uePorts,omitempty"`
	ASPorts               *PortsSpec `json:"asPorts,omitempty"`
	QoS                   string     `json:"qos"`
	NotificationURL       string     `json:"notificationUrl,omitempty"`
	NotificationAuthToken string     `json:"notificationAuthToken,omitempty"`
}

// sessionInfo is the SessionInfo body: the accepted request (without the
// notification token) plus id and times in Unix seconds (v0.8.1).
type sessionInfo struct {
	ID              string     `json:"id"`
	Duration        int        `json:"duration"`
	UEID            UEID       `json:"ueId"`
	ASID            ASID       `json:"asId"`
	UEPorts         *PortsSpec `json:"uePorts,omitempty"`
	ASPorts         *PortsSpec `json:"asPorts,omitempty"`
	QoS             string     `json:"qos"`
	NotificationURL string     `json:"notificationUrl,omitempty"`
	StartedAt       int64      `json:"startedAt"`
	ExpiresAt       int64      `json:"expiresAt"`
}

func infoOf(s *Session) sessionInfo {
	return sessionInfo{
		ID: s.ID, Duration: s.Duration, UEID: s.UE, ASID: s.AS, UEPorts: s.UEPorts, ASPorts: s.ASPorts,
		QoS: s.QoS, NotificationURL: s.NotificationURL,
		StartedAt: s.StartedAt.Unix(), ExpiresAt: s.ExpiresAt.Unix(),
	}
}

func (s *Simulator) create(body []byte) *reply {
	var req createRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return errorReply(http.StatusBadRequest, "Invalid request body: "+err.Error())
	}
	// The schema check reads only the first JSON value; anything after it
	// is garbage.
	if _, err := dec.Token(); err != io.EOF {
		return errorReply(http.StatusBadRequest, "Invalid request body: data after the JSON object")
	}
	if err := checkMeaning(&req); err != nil {
		return errorReply(http.StatusBadRequest, err.Error())
	}
	duration := DefaultSessionDuration
	if req.Duration != nil {
		duration = *req.Duration
	}
	id, err := newUUID()
	if err != nil {
		return errorReply(http.StatusInternalServerError, "Session could not be created")
	}
	now := s.opts.Now()
	sess := &Session{
		ID: id, UE: req.UEID, AS: req.ASID, UEPorts: req.UEPorts, ASPorts: req.ASPorts, QoS: req.QoS,
		Duration: duration, NotificationURL: req.NotificationURL, NotificationAuthToken: req.NotificationAuthToken,
		StartedAt: now, ExpiresAt: now.Add(time.Duration(duration) * time.Second),
	}
	s.mu.Lock()
	for _, k := range ueKeys(req.UEID) {
		if _, taken := s.byUE[k]; taken {
			s.mu.Unlock()
			return errorReply(http.StatusConflict, "Another session is live for the same UE")
		}
	}
	s.sessions[id] = sess
	for _, k := range ueKeys(req.UEID) {
		s.byUE[k] = id
	}
	s.creates++
	drop := s.faults.DropCreateResponse
	info := infoOf(sess)
	s.mu.Unlock()
	s.log.Info("qodsim session created", "session_id", id, "qos", req.QoS, "duration_seconds", duration)
	// DevEdge answers 200 where CAMARA v0.8.1 says 201.
	rep := jsonReply(http.StatusOK, info)
	rep.drop = drop
	return rep
}

// checkMeaning checks what the schema cannot express.
func checkMeaning(req *createRequest) error {
	for _, a := range []struct{ field, v string }{
		{"ueId.ipv6addr", req.UEID.IPv6Addr}, {"asId.ipv6addr", req.ASID.IPv6Addr},
	} {
		if a.v == "" {
			continue
		}
		if _, err := parseAddr(a.v); err != nil || !strings.Contains(a.v, ":") {
			return fmt.Errorf("Invalid %s: not an IPv6 address or prefix", a.field)
		}
	}
	for _, p := range []struct {
		field string
		spec  *PortsSpec
	}{{"uePorts", req.UEPorts}, {"asPorts", req.ASPorts}} {
		if p.spec == nil {
			continue
		}
		for i, r := range p.spec.Ranges {
			if r.From > r.To {
				return fmt.Errorf("Invalid %s.ranges[%d]: from %d is above to %d", p.field, i, r.From, r.To)
			}
		}
	}
	return nil
}

// parseAddr parses an address with an optional prefix length and returns
// the address alone.
func parseAddr(v string) (netip.Addr, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		return p.Addr(), err
	}
	return netip.ParseAddr(v)
}

// ueKeys are the identities of a UE; two UEs are the same when any key
// matches. IP addresses compare by address, ignoring a prefix length.
func ueKeys(u UEID) []string {
	var keys []string
	if u.ExternalID != "" {
		keys = append(keys, "ext:"+u.ExternalID)
	}
	if u.MSISDN != "" {
		keys = append(keys, "msisdn:"+strings.TrimPrefix(u.MSISDN, "+"))
	}
	for _, ip := range []string{u.IPv4Addr, u.IPv6Addr} {
		if ip == "" {
			continue
		}
		if a, err := parseAddr(ip); err == nil {
			keys = append(keys, "ip:"+a.Unmap().String())
		} else {
			keys = append(keys, "ip:"+ip)
		}
	}
	return keys
}

// keysOf are the identities of a session's device. A CAMARA v1 device
// behind NAT is its public address together with its private address or
// public port: many devices share one public address.
func keysOf(sess *Session) []string {
	keys := ueKeys(sess.UE)
	if sess.UEPrivateIPv4 == "" && sess.UEPublicPort == 0 {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if k != "ip:"+sess.UE.IPv4Addr {
			out = append(out, k)
		}
	}
	return append(out, fmt.Sprintf("ip4:%s|%s|%d", sess.UE.IPv4Addr, sess.UEPrivateIPv4, sess.UEPublicPort))
}

// removeLocked ends a session's life in the maps; s.mu must be held.
func (s *Simulator) removeLocked(sess *Session) {
	delete(s.sessions, sess.ID)
	for _, k := range keysOf(sess) {
		if s.byUE[k] == sess.ID {
			delete(s.byUE, k)
		}
	}
}

func (s *Simulator) get(id string) *reply {
	s.mu.Lock()
	sess, ok := s.sessions[id]
	var info sessionInfo
	if ok {
		info = infoOf(sess)
	}
	s.mu.Unlock()
	if !ok {
		return errorReply(http.StatusNotFound, "Session Id does not exist")
	}
	return jsonReply(http.StatusOK, info)
}

func (s *Simulator) delete(id string) *reply {
	_, ok := s.take(id)
	if !ok {
		return errorReply(http.StatusNotFound, "Session Id does not exist")
	}
	s.log.Info("qodsim session deleted", "session_id", id)
	return &reply{status: http.StatusNoContent, header: http.Header{}}
}

// newUUID returns a random (version 4) UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes for a session id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

var errClosed = errors.New("simulator closed")

// WaitNotifications waits until no notification delivery is in progress
// (each has succeeded or given up), or ctx is done. Tests use it instead
// of sleeping.
func (s *Simulator) WaitNotifications(ctx context.Context) error {
	s.mu.Lock()
	if s.deliveries == 0 {
		s.mu.Unlock()
		return nil
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for notification deliveries: %w", ctx.Err())
	}
}

// take removes the live session id and returns it; ok is false when there
// is none. Terminate and DELETE end a session the same way.
func (s *Simulator) take(id string) (*Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if ok {
		s.removeLocked(sess)
	}
	return sess, ok
}
