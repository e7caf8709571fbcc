package qodclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Config configures a Client. Only BaseURL is required.
type Config struct {
	// BaseURL is the API root, e.g. https://host/qod/v1; requests go to
	// BaseURL+"/sessions".
	BaseURL string
	// Dialect of the request bodies; default DialectDevEdge.
	Dialect Dialect
	// Auth authorises each request; nil sends none (the simulator's "none").
	Auth Auth
	// HTTPClient sends the requests; nil means a client that does not follow
	// redirects (a redirect would invalidate the PoP token's uri anyway).
	HTTPClient *http.Client
	// Timeout bounds one attempt, answer body included. Default 10s.
	Timeout time.Duration
	// Retry bounds retries; see RetryPolicy for the defaults.
	Retry RetryPolicy
	// Logger gets one debug line per attempt; nil logs nothing.
	Logger *slog.Logger
	// ProfilesURL is the root of the CAMARA QoS Profiles API (camara-v1
	// only), e.g. https://host/qos-profiles/v1. Default: BaseURL with a
	// trailing /quality-on-demand/v1 replaced by /qos-profiles/v1, else
	// BaseURL itself.
	ProfilesURL string
	// SendNetworkAccessIdentifier sends UeID.ExternalID as the v1 device's
	// networkAccessIdentifier. CAMARA v1.1 says it is not to be used yet
	// (operators answer 422 UNSUPPORTED_IDENTIFIER), so by default it is
	// left out, and a request naming the device by it alone is refused.
	SendNetworkAccessIdentifier bool
}

// Client calls the QoD sessions API. It is safe for concurrent use.
type Client struct {
	base     string // BaseURL without a trailing slash
	profiles string // ProfilesURL without a trailing slash
	sendNAI  bool
	dialect  Dialect
	auth     Auth
	http     *http.Client
	timeout  time.Duration
	retry    RetryPolicy
	log      *slog.Logger

	// Seams for tests: the clock and the wait between attempts.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("qodclient: base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("qodclient: base URL %q must be an absolute http or https URL", cfg.BaseURL)
	case u.User != nil:
		return nil, errors.New("qodclient: base URL must not carry credentials; use Auth")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("qodclient: base URL %q must not have a query or fragment", cfg.BaseURL)
	}
	d := cfg.Dialect
	if d == "" {
		d = DialectDevEdge
	}
	if !d.valid() {
		return nil, fmt.Errorf("qodclient: unknown dialect %q (want %s, %s or %s)", d, DialectDevEdge, DialectCAMARAv0, DialectCAMARAv1)
	}
	profiles := strings.TrimRight(cfg.ProfilesURL, "/")
	if profiles == "" {
		profiles = defaultProfilesURL(strings.TrimRight(cfg.BaseURL, "/"))
	} else if pu, err := url.Parse(profiles); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil {
		return nil, fmt.Errorf("qodclient: profiles URL %q must be an absolute http or https URL without credentials", cfg.ProfilesURL)
	}
	c := &Client{
		profiles: profiles,
		sendNAI:  cfg.SendNetworkAccessIdentifier,
		base:     strings.TrimRight(cfg.BaseURL, "/"),
		dialect:  d,
		auth:     cfg.Auth,
		http:     cfg.HTTPClient,
		timeout:  cfg.Timeout,
		retry:    cfg.Retry.withDefaults(),
		log:      cfg.Logger,
		now:      time.Now,
		sleep:    sleepCtx,
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Create asks for a QoS session. Its error is an *UnknownOutcomeError when a
// session may have been created despite the failure; see the package doc.
func (c *Client) Create(ctx context.Context, req CreateSessionRequest) (*SessionInfo, error) {
	if err := req.ValidateFor(c.dialect); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	if c.dialect == DialectCAMARAv1 && req.UeID.ExternalID != "" && !c.sendNAI {
		req.UeID.ExternalID = ""
		if req.UeID == (UeID{}) {
			return nil, fmt.Errorf("create session: %w: CAMARA v1.1 does not allow networkAccessIdentifier yet, and the device has no other identifier (phone number, IPv4, IPv6); allow it with SendNetworkAccessIdentifier", ErrInvalid)
		}
	}
	body, err := encodeCreate(c.dialect, req, c.now())
	if err != nil {
		return nil, fmt.Errorf("create session: encode body: %w", err)
	}
	resp, err := c.do(ctx, call{method: http.MethodPost, path: "/sessions", body: body, create: true, once: true})
	if err != nil {
		return nil, err
	}
	s, err := c.decodeSession(resp)
	if err != nil {
		// The server said yes but we cannot tell which session it made.
		return nil, &UnknownOutcomeError{TransactionID: resp.txID, Err: err}
	}
	return s, nil
}

// Get returns the session with the given id; a missing one is an *APIError
// matching ErrNotFound.
func (c *Client) Get(ctx context.Context, id string) (*SessionInfo, error) {
	if id == "" {
		return nil, fmt.Errorf("get session: %w: empty session id", ErrInvalid)
	}
	resp, err := c.do(ctx, call{method: http.MethodGet, path: "/sessions/" + url.PathEscape(id)})
	if err != nil {
		return nil, err
	}
	return c.decodeSession(resp)
}

// Delete ends the session. A session that is already gone (404, 410) counts
// as deleted, which makes Delete safe to repeat.
func (c *Client) Delete(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("delete session: %w: empty session id", ErrInvalid)
	}
	_, err := c.do(ctx, call{method: http.MethodDelete, path: "/sessions/" + url.PathEscape(id)})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func (c *Client) decodeSession(r *response) (*SessionInfo, error) {
	malformed := func(cause error) error {
		return &APIError{Method: r.method, Path: r.path, Status: r.status, TransactionID: r.txID,
			Err: fmt.Errorf("%w: %v", ErrMalformedResponse, cause)}
	}
	if r.truncated {
		return nil, malformed(fmt.Errorf("body exceeds %d bytes", maxBody))
	}
	s, err := decodeSessionInfo(r.body)
	if err != nil {
		return nil, malformed(err)
	}
	return s, nil
}

type call struct {
	method, path string
	base         string // "" for the QoD base URL
	body         []byte
	create       bool // POST /sessions: its ambiguous end is an UnknownOutcomeError
	once         bool // never repeated once it may have arrived (create, extend)
}

type response struct {
	method, path, txID string
	status             int
	header             http.Header
	body               []byte
	truncated          bool
}

// attemptError is a failure of one attempt without an answer.
type attemptError struct {
	err error
	// maybeSent: a connection was obtained, so the server may have the
	// request. false proves the server never saw it (dial, TLS, proxy,
	// authorisation failure).
	maybeSent bool
}

// do runs a call with retries. It returns the 2xx answer, or an error:
// *APIError for an answer, *UnknownOutcomeError for an ambiguous create,
// *requestError otherwise.
func (c *Client) do(ctx context.Context, k call) (*response, error) {
	txID, err := transactionID(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", k.method, k.path, err)
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		resp, aerr := c.attempt(ctx, k, txID, attempt)
		var wait time.Duration
		var lastErr error
		switch {
		case aerr != nil:
			lastErr = &requestError{method: k.method, path: k.path, txID: txID, err: aerr.err}
			if k.once && aerr.maybeSent {
				if !k.create {
					return nil, lastErr
				}
				return nil, &UnknownOutcomeError{TransactionID: txID, Err: lastErr}
			}
			if ctx.Err() != nil || !retryableErr(aerr.err) {
				return nil, lastErr
			}
			wait = c.retry.backoff(attempt)

		case resp.status >= 200 && resp.status <= 299:
			return resp, nil

		case resp.status == http.StatusUnauthorized && c.auth != nil && !refreshed:
			// A 401 means nothing was done, even for a create: drop the
			// cached token and try once more without using up an attempt.
			c.auth.Invalidate()
			refreshed = true
			attempt--
			continue

		default:
			apiErr := decodeError(k.method, k.path, txID, resp.status, resp.header, resp.body, c.now())
			lastErr = apiErr
			if k.create && (resp.status == http.StatusBadGateway || resp.status == http.StatusGatewayTimeout) {
				// A gateway answered, not the API: the API may have acted.
				return nil, &UnknownOutcomeError{TransactionID: txID, Err: apiErr}
			}
			if !retryableStatus(resp.status, k.once) || errors.Is(apiErr, ErrQuotaExceeded) {
				// QUOTA_EXCEEDED: the quota of a period is used up; an
				// attempt seconds later fares no better.
				return nil, apiErr
			}
			if apiErr.RetryAfter > 0 {
				if apiErr.RetryAfter > c.retry.MaxDelay {
					return nil, apiErr
				}
				wait = apiErr.RetryAfter
			} else {
				wait = c.retry.backoff(attempt)
			}
		}
		if attempt >= c.retry.MaxAttempts {
			return nil, lastErr
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, lastErr // the wait would outlive the caller
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, lastErr
		}
	}
}

// retryableStatus: answers that say "nothing was done, try later". A create
// is repeated only on 429 and 503, where the server itself declined.
func retryableStatus(status int, create bool) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return !create
	}
	return false
}

// retryableErr: failures without an answer worth another attempt. Context
// ends of the caller are not; a per-attempt timeout is.
func retryableErr(err error) bool {
	if errors.Is(err, ErrInvalid) {
		return false
	}
	var api *APIError
	if errors.As(err, &api) { // from a token endpoint
		return retryableStatus(api.Status, false)
	}
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		return rerr.Response != nil && retryableStatus(rerr.Response.StatusCode, false)
	}
	var nerr net.Error
	return errors.As(err, &nerr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// attempt sends one request and reads its answer.
func (c *Client) attempt(ctx context.Context, k call, txID string, n int) (*response, *attemptError) {
	if err := ctx.Err(); err != nil {
		return nil, &attemptError{err: err}
	}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var gotConn atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
	})
	var body io.Reader = http.NoBody
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	base := k.base
	if base == "" {
		base = c.base
	}
	req, err := http.NewRequestWithContext(actx, k.method, base+k.path, body)
	if err != nil {
		return nil, &attemptError{err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "qodwatch-qodclient")
	req.Header.Set("x-transaction-id", txID)
	if c.dialect == DialectCAMARAv1 {
		req.Header.Set("x-correlator", txID)
	}
	if c.auth != nil {
		if err := c.auth.Authorize(actx, req, k.body); err != nil {
			c.logAttempt(ctx, k, txID, n, 0, start, err)
			return nil, &attemptError{err: fmt.Errorf("authorize: %w", err)}
		}
	}

	resp, err := c.http.Do(req)
	if err != nil {
		c.logAttempt(ctx, k, txID, n, 0, start, err)
		return nil, &attemptError{err: err, maybeSent: gotConn.Load()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		c.logAttempt(ctx, k, txID, n, resp.StatusCode, start, err)
		return nil, &attemptError{err: fmt.Errorf("read %d answer: %w", resp.StatusCode, err), maybeSent: true}
	}
	r := &response{method: k.method, path: k.path, txID: txID, status: resp.StatusCode, header: resp.Header, body: data}
	if len(data) > maxBody {
		r.body, r.truncated = data[:maxBody], true
	}
	c.logAttempt(ctx, k, txID, n, resp.StatusCode, start, nil)
	return r, nil
}

func (c *Client) logAttempt(ctx context.Context, k call, txID string, n, status int, start time.Time, err error) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", k.method),
		slog.String("path", k.path),
		slog.Int("status", status),
		slog.String("transaction_id", txID),
	}
	if c.dialect == DialectCAMARAv1 {
		// The same id travels as x-correlator: the operator's logs know it
		// by that name.
		attrs = append(attrs, slog.String("x_correlator", txID))
	}
	attrs = append(attrs,
		slog.Duration("duration", time.Since(start)),
		slog.Int("attempt", n),
	)
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "qod api request", attrs...)
}
