package monitor

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Throughput measures the bulk rate to (GET) or from (POST, Upload) the UE
// with a transfer stopped at MaxBytes or MaxTime, whichever comes first. It
// has the UE to itself: the UE's other probes skip while it runs and ICMP
// answers arriving meanwhile are dropped, so neither disturbs the other.
//
// The rate counts the bytes after the first one over the time after the
// first one: connection set-up and the server's think time are left out.
// A download asks for identity encoding (a compressed body would fake a
// rate) and for the byte range it needs, so a server that honours Range
// sends no more than MaxBytes; the probe stops reading at MaxBytes anyway.
// The body should be incompressible (random bytes), in case a middlebox
// compresses.
type Throughput struct {
	URL      string // may use {{ue.addr}} and {{ue.name}}
	Interval time.Duration
	MaxBytes int64         // default 2 MiB
	MaxTime  time.Duration // default 3 s; must be shorter than Interval
	Upload   bool          // POST MaxBytes of random bytes instead of a GET
	TOS      uint8         // IP TOS / traffic class of its packets; 0 leaves them unmarked
}

// Throughput defaults.
const (
	DefaultThroughputBytes = 2 << 20
	DefaultThroughputTime  = 3 * time.Second
)

// Kind implements Probe.
func (Throughput) Kind() string { return KindThroughput }

func (p Throughput) bind(ue *UE) (boundProbe, error) {
	if err := checkInterval("throughput", p.Interval); err != nil {
		return nil, err
	}
	u, err := parseProbeURL(expand(p.URL, ue, true))
	if err != nil {
		return nil, err
	}
	b := &throughputBound{url: u.String(), interval: p.Interval, maxBytes: p.MaxBytes, maxTime: p.MaxTime, upload: p.Upload, tos: p.TOS}
	if b.maxBytes == 0 {
		b.maxBytes = DefaultThroughputBytes
	}
	if b.maxTime == 0 {
		b.maxTime = DefaultThroughputTime
	}
	if b.maxBytes < 64<<10 {
		return nil, fmt.Errorf("max bytes %d is too small to measure a rate (want at least 64 KiB)", b.maxBytes)
	}
	if b.maxTime <= 0 {
		return nil, fmt.Errorf("max time %v must be positive", b.maxTime)
	}
	// An upload may need as long again to drain what is in flight.
	if b.deadline() >= b.interval {
		return nil, fmt.Errorf("max time %v leaves no room in the interval %v", b.maxTime, b.interval)
	}
	return b, nil
}

type throughputBound struct {
	url      string
	interval time.Duration
	maxBytes int64
	maxTime  time.Duration
	upload   bool
	tos      uint8
}

func (b *throughputBound) every() time.Duration { return b.interval }
func (b *throughputBound) exclusive() bool      { return true }
func (b *throughputBound) passive() bool        { return false }

func (b *throughputBound) deadline() time.Duration {
	if b.upload {
		return 2 * b.maxTime
	}
	return b.maxTime
}

var readBuffers = sync.Pool{New: func() any { return new([64 << 10]byte) }}

func (b *throughputBound) run(ctx context.Context, e *env) outcome {
	ctx, cancel := context.WithTimeout(ctx, b.deadline())
	defer cancel()
	if b.upload {
		return b.runUpload(ctx, e)
	}
	return b.runDownload(ctx, e)
}

func (b *throughputBound) runDownload(ctx context.Context, e *env) outcome {
	fail := func(err error) outcome {
		return outcome{Result: Result{Err: fmt.Errorf("throughput GET %s: %w", b.url, err)}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return fail(err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("Range", "bytes=0-"+strconv.FormatInt(b.maxBytes-1, 10))
	var ph phases
	req = req.WithContext(httptrace.WithClientTrace(ctx, ph.trace()))
	resp, err := e.marked(b.tos).bulk.Do(req)
	if err != nil {
		if isTimeout(err) {
			err = ph.timedOut(b.maxTime, err)
		}
		return fail(err)
	}
	defer resp.Body.Close()
	o := outcome{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		o.Err = withReason(reasonHTTPStatus, fmt.Errorf("throughput GET %s: status %s", b.url, resp.Status))
		return o
	}

	buf := readBuffers.Get().(*[64 << 10]byte)
	defer readBuffers.Put(buf)
	var m transferMeter
	for m.total < b.maxBytes {
		n, rerr := resp.Body.Read(buf[:min(int64(len(buf)), b.maxBytes-m.total)])
		if n > 0 {
			m.add(time.Now(), int64(n), b.maxBytes/warmupShare, b.maxTime/warmupShare)
		}
		if rerr == io.EOF || (rerr != nil && isTimeout(rerr)) {
			break // the body ended, or the time cap did
		}
		if rerr != nil {
			o.bytes = m.total
			return fail(rerr)
		}
	}
	o.bytes = m.total
	n, from, to := m.span()
	return b.rate(o, n, from, to)
}

// phases notes how far a download got, so a run that moved no body byte
// within its time cap says where it stopped. Issue 10's closed loop lost
// an afternoon to "context deadline exceeded" that was a stuck link (no
// connection at all), not a slow answer.
type phases struct {
	start     time.Time
	connected atomic.Int64 // ns after start; 0 until the connection is up
	sent      atomic.Bool
}

func (p *phases) trace() *httptrace.ClientTrace {
	p.start = time.Now()
	return &httptrace.ClientTrace{
		// Atomics: a dial abandoned at the deadline may finish after Do
		// has returned.
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				p.connected.Store(max(int64(time.Since(p.start)), 1))
			}
		},
		WroteRequest: func(i httptrace.WroteRequestInfo) { p.sent.Store(i.Err == nil) },
	}
}

// timedOut wraps err (a timeout: the reason stays "timeout") with the
// phase the run was in when its time cap ran out. No body byte came, so
// the run is no measurement: a probe that cannot reach its server says
// nothing about the radio (on_missing_data decides what that means).
func (p *phases) timedOut(limit time.Duration, err error) error {
	ns := p.connected.Load()
	conn := time.Duration(ns).Round(time.Millisecond)
	switch {
	case ns == 0:
		return fmt.Errorf("no connection within %v: %w", limit, err)
	case !p.sent.Load():
		return fmt.Errorf("request not sent within %v (connected after %v): %w", limit, conn, err)
	}
	return fmt.Errorf("no response headers within %v (connected after %v, request sent): %w", limit, conn, err)
}

// warmupShare: the first 1/warmupShare of the byte cap or of the time cap
// is warm-up, left out of the rate.
const warmupShare = 8

// transferMeter times bytes as they arrive. The rate is taken after a
// warm-up, because the start of a transfer says little about the link: a
// shaper lets its burst through at line rate (too fast), TCP slow start
// ramps up (too slow) and then overshoots into the bottleneck queue and
// recovers from the losses (too slow). Warm-up ends once 1/8 of the byte
// cap has arrived or 1/8 of the time cap has passed since the first byte.
// A transfer that ends sooner is measured from its first byte on.
type transferMeter struct {
	total       int64
	first, last time.Time
	firstChunk  int64
	warm        bool
	warmAt      time.Time
	warmBytes   int64
}

func (m *transferMeter) add(now time.Time, n, warmBytes int64, warmTime time.Duration) {
	if m.first.IsZero() {
		m.first, m.firstChunk = now, n
	}
	m.total += n
	m.last = now
	if !m.warm && (m.total >= warmBytes || now.Sub(m.first) >= warmTime) {
		m.warm, m.warmAt, m.warmBytes = true, now, m.total
	}
}

// span returns the bytes to count and the time they took.
func (m *transferMeter) span() (n int64, from, to time.Time) {
	if m.warm && m.total > m.warmBytes && m.last.After(m.warmAt) {
		return m.total - m.warmBytes, m.warmAt, m.last
	}
	return m.total - m.firstChunk, m.first, m.last
}

// rate turns n bytes moved between first and last into the outcome.
func (b *throughputBound) rate(o outcome, n int64, first, last time.Time) outcome {
	d := last.Sub(first)
	if n <= 0 || d <= 0 {
		o.Err = fmt.Errorf("throughput %s: transfer of %d bytes too short to measure a rate", b.url, o.bytes)
		return o
	}
	o.BytesPerSecond = float64(n) / d.Seconds()
	return o
}

// uploadBody produces up to limit random bytes, and stops early at the time
// cap. It notes when the transport first took bytes.
type uploadBody struct {
	rng      *rand.ChaCha8
	limit    int64
	stopAt   time.Time
	produced int64
	first    time.Time
	firstN   int64
	mu       sync.Mutex // the transport reads from its own goroutine
}

func (u *uploadBody) Read(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if u.produced >= u.limit || !now.Before(u.stopAt) {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), u.limit-u.produced)]
	_, _ = u.rng.Read(p)
	if u.first.IsZero() {
		u.first, u.firstN = now, int64(len(p))
	}
	u.produced += int64(len(p))
	return len(p), nil
}

func (u *uploadBody) snapshot() (produced, firstN int64, first time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.produced, u.firstN, u.first
}

func (b *throughputBound) runUpload(ctx context.Context, e *env) outcome {
	fail := func(err error) outcome {
		return outcome{Result: Result{Err: fmt.Errorf("throughput POST %s: %w", b.url, err)}}
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	body := &uploadBody{rng: rand.NewChaCha8(seed), limit: b.maxBytes, stopAt: time.Now().Add(b.maxTime)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, io.NopCloser(body))
	if err != nil {
		return fail(err)
	}
	req.ContentLength = -1 // chunked, so the time cap can end the body early
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := e.marked(b.tos).upload.Do(req)
	// The server answers once it has read the whole body, so the answer
	// marks when the last byte arrived (plus half a round trip).
	done := time.Now()
	produced, firstN, first := body.snapshot()
	if err != nil {
		o := fail(err)
		o.bytes = produced
		return o
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	resp.Body.Close()
	o := outcome{status: resp.StatusCode, bytes: produced}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		o.Err = withReason(reasonHTTPStatus, fmt.Errorf("throughput POST %s: status %s", b.url, resp.Status))
		return o
	}
	return b.rate(o, produced-firstN, first, done)
}
