package qodsim

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Defaults the simulator applies to zero Options fields.
const (
	DefaultBasePath        = "/qod/v1"
	DefaultTokenPath       = "/oauth2/v6/tokens"
	DefaultTokenTTL        = 3600 * time.Second
	DefaultNotifyAttempts  = 3
	DefaultNotifyTimeout   = 5 * time.Second
	DefaultNotifyBackoff   = 200 * time.Millisecond
	DefaultMaxRequestLog   = 10000
	DefaultSessionDuration = 86400 // seconds, the contract's default and maximum

	// CAMARA QualityOnDemand v1.1 defaults (Dialect DialectCAMARAv1).
	DefaultV1BasePath         = "/quality-on-demand/v1"
	DefaultV1ProfilesBasePath = "/qos-profiles/v1"
	// DefaultTerminatedRetention is how long a session the network ended
	// stays readable (UNAVAILABLE, NETWORK_TERMINATED) before it is
	// deleted on its own: the spec's "at earliest 360 seconds".
	DefaultTerminatedRetention = 360 * time.Second
)

// Dialects the simulator speaks.
const (
	// DialectDevEdge is T-Mobile DevEdge QoD v1.1.2 (CAMARA v0.8.1 bodies).
	DialectDevEdge = "devedge"
	// DialectCAMARAv1 is CAMARA QualityOnDemand v1.1.0 with QoS Profiles
	// v1.1.0: qosStatus, extend, retrieve-sessions, CloudEvents.
	DialectCAMARAv1 = "camara-v1"
)

// legacyTokenPath is the other TAAP token path some DevEdge products use.
const legacyTokenPath = "/oauth2/v2/tokens"

// Notification auth modes.
const (
	NotifyAPIKey = "apikey" // ?apikey=<token>, as CAMARA v0.8.1 declares
	NotifyBearer = "bearer" // Authorization: Bearer <token>, as later CAMARA versions do
)

// Options configures a Simulator. The zero value serves an API without
// auth at /qod/v1.
type Options struct {
	// Dialect is DialectDevEdge (default) or DialectCAMARAv1.
	Dialect string
	// BasePath is the API's path prefix; sessions live at BasePath+"/sessions".
	// Default "/qod/v1" (DevEdge) or "/quality-on-demand/v1" (CAMARA v1).
	BasePath string
	// ProfilesBasePath is the prefix of the QoS Profiles API (CAMARA v1
	// only): GET ProfilesBasePath+"/qos-profiles/{name}". Default
	// "/qos-profiles/v1".
	ProfilesBasePath string
	// Profiles are the QoS profiles a CAMARA v1 simulator offers; nil
	// means DefaultProfiles(). A create naming another profile, or one not
	// ACTIVE, gets 422 QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE.
	Profiles []Profile
	// AvailableDelay is how long a CAMARA v1 session stays REQUESTED
	// before it becomes AVAILABLE (0: at the first look after the create
	// was answered, which still answers REQUESTED).
	AvailableDelay time.Duration
	// TerminatedRetention is how long a CAMARA v1 session ended by the
	// network stays UNAVAILABLE before it goes on its own (default 360s).
	TerminatedRetention time.Duration
	// BearerToken, if set and TAAP and OAuth2 are nil, is the one access token every API
	// call must carry as "Authorization: Bearer <token>".
	BearerToken string
	// TAAP turns on T-Mobile API Access Protocol auth.
	TAAP *TAAPOptions
	// OAuth2 turns on plain OAuth 2.0 client-credentials auth instead.
	OAuth2 *OAuth2Options
	// Now is the clock for session times, token and PoP lifetimes.
	// Default time.Now.
	Now func() time.Time
	// NotifyAuth says how the session's notificationAuthToken is sent with a
	// notification: NotifyAPIKey (default) or NotifyBearer.
	NotifyAuth string
	// NotifyAttempts bounds delivery attempts per notification (default 3);
	// NotifyTimeout bounds each attempt (default 5s); NotifyBackoff is the
	// wait before the second attempt, doubling after (default 200ms).
	NotifyAttempts int
	NotifyTimeout  time.Duration
	NotifyBackoff  time.Duration
	// MaxRequestLog bounds the request log kept for Requests (default 10000,
	// oldest dropped first).
	MaxRequestLog int
	// Logger receives one line per request and per notification; never
	// secrets. Default: discard.
	Logger *slog.Logger
	// HTTPClient delivers notifications. Default: a client with
	// NotifyTimeout as its timeout.
	HTTPClient *http.Client
	// Faults are in effect from the start (SetFaults changes them).
	Faults Faults
	// Control serves the fault switches at ControlPath, without auth, so
	// outages can be rehearsed against a running simulator.
	Control bool
}

// TAAPOptions configures TAAP auth: the token endpoint accepts Basic
// ClientID:ClientSecret plus a PoP token, and every API call needs an
// issued, unexpired access token and a PoP token signed with the private
// key matching PublicKey.
type TAAPOptions struct {
	ClientID     string
	ClientSecret string
	PublicKey    *rsa.PublicKey
	// TokenTTL is the lifetime of issued access tokens (default 3600s).
	TokenTTL time.Duration
}

// String keeps the client secret out of logs and %v output.
func (t TAAPOptions) String() string {
	return fmt.Sprintf("TAAP{ClientID: %q, TokenTTL: %s}", t.ClientID, t.TokenTTL)
}

// GoString keeps the client secret out of %#v output.
func (t TAAPOptions) GoString() string { return t.String() }

// String keeps tokens out of logs and %v output.
func (o Options) String() string {
	auth := "none"
	switch {
	case o.TAAP != nil:
		auth = "taap"
	case o.OAuth2 != nil:
		auth = "oauth2"
	case o.BearerToken != "":
		auth = "bearer"
	}
	return fmt.Sprintf("qodsim.Options{Dialect: %q, BasePath: %q, Auth: %s, NotifyAuth: %q}", o.Dialect, o.BasePath, auth, o.NotifyAuth)
}

// GoString keeps tokens out of %#v output.
func (o Options) GoString() string { return o.String() }

// Validate reports the first problem with the options, after defaults.
func (o Options) Validate() error {
	o = o.withDefaults()
	if o.Dialect != DialectDevEdge && o.Dialect != DialectCAMARAv1 {
		return fmt.Errorf("qodsim options: dialect %q is neither %q nor %q", o.Dialect, DialectDevEdge, DialectCAMARAv1)
	}
	for _, p := range []string{o.BasePath, o.ProfilesBasePath} {
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
			return fmt.Errorf("qodsim options: base path %q must start with / and not end with /", p)
		}
	}
	if o.AvailableDelay < 0 || o.TerminatedRetention < 0 {
		return errors.New("qodsim options: available delay and terminated retention must not be negative")
	}
	for _, p := range o.Profiles {
		if err := p.validate(); err != nil {
			return fmt.Errorf("qodsim options: %w", err)
		}
	}
	if o.NotifyAuth != NotifyAPIKey && o.NotifyAuth != NotifyBearer {
		return fmt.Errorf("qodsim options: notify auth %q is neither %q nor %q", o.NotifyAuth, NotifyAPIKey, NotifyBearer)
	}
	if o.TAAP != nil {
		if o.TAAP.ClientID == "" || o.TAAP.ClientSecret == "" {
			return errors.New("qodsim options: TAAP needs a client id and a client secret")
		}
		if o.TAAP.PublicKey == nil {
			return errors.New("qodsim options: TAAP needs the client's public key")
		}
		if o.TAAP.TokenTTL < time.Second {
			return fmt.Errorf("qodsim options: TAAP token TTL %s is shorter than a second", o.TAAP.TokenTTL)
		}
	}
	if o.OAuth2 != nil {
		if o.TAAP != nil {
			return errors.New("qodsim options: TAAP and OAuth2 are exclusive")
		}
		if o.OAuth2.ClientID == "" || o.OAuth2.ClientSecret == "" {
			return errors.New("qodsim options: OAuth2 needs a client id and a client secret")
		}
		if o.OAuth2.TokenTTL < time.Second {
			return fmt.Errorf("qodsim options: OAuth2 token TTL %s is shorter than a second", o.OAuth2.TokenTTL)
		}
	}
	if o.NotifyAttempts < 1 || o.NotifyTimeout <= 0 || o.NotifyBackoff < 0 || o.MaxRequestLog < 1 {
		return errors.New("qodsim options: notification attempts, timeout, backoff and request log size must be positive")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Dialect == "" {
		o.Dialect = DialectDevEdge
	}
	if o.BasePath == "" {
		o.BasePath = DefaultBasePath
		if o.Dialect == DialectCAMARAv1 {
			o.BasePath = DefaultV1BasePath
		}
	}
	if o.ProfilesBasePath == "" {
		o.ProfilesBasePath = DefaultV1ProfilesBasePath
	}
	if o.Profiles == nil {
		o.Profiles = DefaultProfiles()
	}
	if o.TerminatedRetention == 0 {
		o.TerminatedRetention = DefaultTerminatedRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NotifyAuth == "" {
		o.NotifyAuth = NotifyAPIKey
	}
	if o.TAAP != nil {
		t := *o.TAAP
		if t.TokenTTL == 0 {
			t.TokenTTL = DefaultTokenTTL
		}
		o.TAAP = &t
	}
	if o.OAuth2 != nil {
		c := *o.OAuth2
		if c.TokenTTL == 0 {
			c.TokenTTL = DefaultTokenTTL
		}
		o.OAuth2 = &c
	}
	if o.NotifyAttempts == 0 {
		o.NotifyAttempts = DefaultNotifyAttempts
	}
	if o.NotifyTimeout == 0 {
		o.NotifyTimeout = DefaultNotifyTimeout
	}
	if o.NotifyBackoff == 0 {
		o.NotifyBackoff = DefaultNotifyBackoff
	}
	if o.MaxRequestLog == 0 {
		o.MaxRequestLog = DefaultMaxRequestLog
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.NotifyTimeout}
	}
	return o
}

// Faults are injected misbehaviours; the zero value injects none.
type Faults struct {
	// Latency delays every answer (the request is processed first, so a
	// client that gives up early still leaves its effect behind).
	Latency time.Duration
	// ErrorRate is the share (0..1) of API calls answered with ErrorStatus
	// before they are processed. FailNext answers the next FailNext API calls
	// that way regardless of ErrorRate, for deterministic retry tests.
	ErrorRate float64
	FailNext  int
	// Only, if set, limits ErrorRate and FailNext to these operations:
	// "create", "get", "delete", "extend", "retrieve-sessions",
	// "qos-profile", "retrieve-qos-profiles" (see Operations).
	Only []string
	// ErrorStatus is the injected status, default 503. Usual: 500, 503, 429.
	ErrorStatus int
	// RetryAfter, if positive, is sent as Retry-After (whole seconds, rounded
	// up) with injected 429 and 503 answers.
	RetryAfter time.Duration
	// DropCreateResponse creates the session, then closes the connection
	// without answering.
	DropCreateResponse bool
	// ErrorCode, if set, replaces the code of injected errors (CAMARA v1),
	// e.g. "QUOTA_EXCEEDED" with ErrorStatus 429.
	ErrorCode string
	// StuckRequested keeps the CAMARA v1 sessions created while it is set
	// in REQUESTED: the network never provides them.
	StuckRequested bool
	// RefuseExtend answers every extend with 409
	// QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED.
	RefuseExtend bool
	// ExpireTokens makes every access token issued so far count as expired:
	// API calls get 401 until the client fetches a new token. With a static
	// BearerToken (or no auth) there is nothing to refresh, so every API call
	// gets 401 while the fault is set.
	ExpireTokens bool
}

// Request is one request the simulator saw.
type Request struct {
	Method string
	Path   string
	Query  string
	// Header is the request's headers as received, secrets included: the
	// log is only for tests in the same process and is never written out.
	Header        http.Header
	Body          []byte
	Status        int // 0 when the answer was dropped
	TransactionID string
	At            time.Time
}

// UEID names a device; any one identifier is enough.
type UEID struct {
	ExternalID string `json:"externalId,omitempty"`
	MSISDN     string `json:"msisdn,omitempty"`
	IPv4Addr   string `json:"ipv4addr,omitempty"`
	IPv6Addr   string `json:"ipv6addr,omitempty"`
}

// ASID names the application server.
type ASID struct {
	IPv4Addr string `json:"ipv4addr,omitempty"`
	IPv6Addr string `json:"ipv6addr,omitempty"`
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// PortsSpec lists ports as ranges and single ports.
type PortsSpec struct {
	Ranges []PortRange `json:"ranges,omitempty"`
	Ports  []int       `json:"ports,omitempty"`
}

func (p *PortsSpec) clone() *PortsSpec {
	if p == nil {
		return nil
	}
	return &PortsSpec{Ranges: append([]PortRange(nil), p.Ranges...), Ports: append([]int(nil), p.Ports...)}
}

// Session is a live QoS session.
type Session struct {
	ID              string
	UE              UEID
	AS              ASID
	UEPorts         *PortsSpec
	ASPorts         *PortsSpec
	QoS             string
	Duration        int // seconds
	NotificationURL string
	// NotificationAuthToken is kept for delivery and for tests; it is never
	// echoed in answers nor logged.
	NotificationAuthToken string
	StartedAt             time.Time
	ExpiresAt             time.Time

	// CAMARA v1 only.
	// UEPrivateIPv4 and UEPublicPort complete UE.IPv4Addr (the device's
	// public address) for a device behind NAT.
	UEPrivateIPv4 string
	UEPublicPort  int
	// QoSStatus is REQUESTED, AVAILABLE or UNAVAILABLE; StatusInfo says why
	// a session is UNAVAILABLE. While REQUESTED, StartedAt is the time of
	// the create and ExpiresAt is zero.
	QoSStatus  string
	StatusInfo string
	// AvailableAt is when a REQUESTED session becomes AVAILABLE (zero:
	// never, Faults.StuckRequested); GoneAt is when an UNAVAILABLE one is
	// deleted on its own.
	AvailableAt time.Time
	GoneAt      time.Time
}

func (s Session) clone() Session {
	s.UEPorts = s.UEPorts.clone()
	s.ASPorts = s.ASPorts.clone()
	return s
}

// End reasons recorded in Notification.
const (
	EndExpired    = "expired"
	EndTerminated = "terminated" // by the network (Terminate)
)

// QoS statuses and status infos of CAMARA v1.
const (
	StatusRequested   = "REQUESTED"
	StatusAvailable   = "AVAILABLE"
	StatusUnavailable = "UNAVAILABLE"

	InfoDurationExpired   = "DURATION_EXPIRED"
	InfoNetworkTerminated = "NETWORK_TERMINATED"
	InfoDeleteRequested   = "DELETE_REQUESTED"
)

// Notification is the record of one notification delivery: a
// SESSION_TERMINATED (DevEdge) or a CloudEvent qos-status-changed (CAMARA v1).
type Notification struct {
	SessionID string
	Reason    string // EndExpired or EndTerminated; "" for a CAMARA v1 AVAILABLE or DELETE_REQUESTED event
	// QoSStatus and StatusInfo are the CAMARA v1 event's data; empty for DevEdge.
	QoSStatus  string
	StatusInfo string
	URL        string // target without the apikey query parameter
	Attempts   int
	Delivered  bool   // a 2xx answer was received
	Done       bool   // no more attempts will be made
	LastError  string // last failure, empty when delivered
}

// ErrSessionNotFound is returned by Terminate for an unknown or ended session.
var ErrSessionNotFound = errors.New("session not found")
