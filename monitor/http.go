package monitor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"time"
)

// HTTP measures the time to the first byte of the answer to a GET of URL,
// over a fresh connection (so it includes connection and TLS set-up), and
// notes the status. A status of 400 or more is an error; redirects are not
// followed and count as answers. No answer within Timeout counts as lost.
type HTTP struct {
	URL      string // may use {{ue.addr}} and {{ue.name}}
	Interval time.Duration
	Timeout  time.Duration // default: the interval, at most 10 s
	TOS      uint8         // IP TOS / traffic class of its packets; 0 leaves them unmarked
}

// Kind implements Probe.
func (HTTP) Kind() string { return KindHTTP }

func (p HTTP) bind(ue *UE) (boundProbe, error) {
	if err := checkInterval("http", p.Interval); err != nil {
		return nil, err
	}
	u, err := parseProbeURL(expand(p.URL, ue, true))
	if err != nil {
		return nil, err
	}
	b := &httpBound{url: u.String(), host: u.Hostname(), interval: p.Interval, timeout: timeoutFor(p.Timeout, p.Interval), tos: p.TOS}
	if b.timeout > b.interval {
		return nil, fmt.Errorf("timeout %v is longer than the interval %v", b.timeout, b.interval)
	}
	return b, nil
}

// parseProbeURL accepts absolute http and https URLs only.
func parseProbeURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("url %q: no host", s)
	}
	if u.User != nil {
		// Credentials in a URL end up in logs and errors.
		return nil, fmt.Errorf("url %q: user info is not supported", u.Redacted())
	}
	return u, nil
}

type httpBound struct {
	url, host         string
	interval, timeout time.Duration
	tos               uint8
}

func (b *httpBound) every() time.Duration { return b.interval }
func (b *httpBound) exclusive() bool      { return false }
func (b *httpBound) passive() bool        { return false }

func (b *httpBound) run(ctx context.Context, e *env) outcome {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	var start, first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, b.url, nil)
	if err != nil {
		return outcome{Result: Result{Err: fmt.Errorf("http probe %s: %w", b.url, err)}}
	}
	req.Header.Set("User-Agent", userAgent)
	// Resolve before the clock starts: a name lookup is not the UE's delay.
	// The dial then finds the address in the cache.
	if _, err := e.resolver.resolve(ctx, b.host); err != nil {
		return outcome{Result: Result{Err: withReason(reasonResolve, err)}}
	}
	start = time.Now()
	resp, err := e.marked(b.tos).probe.Do(req)
	if err != nil {
		if isTimeout(err) {
			return outcome{Result: Result{Lost: true}}
		}
		return outcome{Result: Result{Err: fmt.Errorf("http probe GET %s: %w", b.url, err)}}
	}
	// Drain a little so the server is not cut off mid-header; the
	// connection is not reused anyway.
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	resp.Body.Close()
	o := outcome{status: resp.StatusCode}
	if resp.StatusCode >= 400 {
		o.Err = withReason(reasonHTTPStatus, fmt.Errorf("http probe GET %s: status %s", b.url, resp.Status))
		return o
	}
	if first.IsZero() {
		first = time.Now()
	}
	o.RTT = first.Sub(start)
	return o
}

const userAgent = "qodwatch"
