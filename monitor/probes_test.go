package monitor

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// runOnce binds p for ue and runs it once with real time.
func runOnce(t *testing.T, e *env, p Probe, ue UE) outcome {
	t.Helper()
	b, err := p.bind(&ue)
	if err != nil {
		t.Fatalf("bind %+v: %v", p, err)
	}
	return b.(runner).run(context.Background(), e)
}

func realEnv() *env { return newEnv(newResolver(30*time.Second, nil, time.Now), time.Now) }

func TestTCPConnectLatencyAndRefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	e := realEnv()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ue := UE{Name: "a", Addr: "127.0.0.9"}
	o := runOnce(t, e, TCP{Address: "{{ue.addr}}:" + port, Interval: time.Second}, ue)
	if o.Err != nil || o.Lost || o.RTT <= 0 || o.RTT > time.Second {
		t.Fatalf("open port: %+v", o)
	}

	closed, _ := net.Listen("tcp", "127.0.0.9:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	o = runOnce(t, e, TCP{Address: closedAddr, Interval: time.Second}, ue)
	if o.Err == nil || classify(o.Err) != reasonRefused || o.Lost {
		t.Fatalf("closed port: %+v (reason %s)", o, reasonNames[classify(o.Err)])
	}
}

func TestNamesResolveThroughAShortCache(t *testing.T) {
	now := base
	var lookups atomic.Int32
	r := newResolver(30*time.Second, func(ctx context.Context, host string) ([]netip.Addr, error) {
		lookups.Add(1)
		if host == "gone.test" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.7")}, nil
	}, func() time.Time { return now })
	ctx := context.Background()
	for range 3 {
		a, err := r.resolve(ctx, "ue.test")
		if err != nil || a != netip.MustParseAddr("127.0.0.7") {
			t.Fatalf("resolve = %v, %v", a, err)
		}
	}
	if lookups.Load() != 1 {
		t.Errorf("%d lookups within the TTL, want 1", lookups.Load())
	}
	now = now.Add(31 * time.Second)
	r.resolve(ctx, "ue.test")
	if lookups.Load() != 2 {
		t.Errorf("%d lookups after the TTL, want 2", lookups.Load())
	}
	_, err := r.resolve(ctx, "gone.test")
	if err == nil || classify(err) != reasonResolve {
		t.Errorf("unknown name: %v", err)
	}
	if a, err := r.resolve(ctx, "127.0.0.8"); err != nil || a.String() != "127.0.0.8" || lookups.Load() != 3 {
		t.Errorf("an IP literal was looked up: %v %v", a, err)
	}
}

func TestHTTPTimeToFirstByteAndStatus(t *testing.T) {
	const delay = 40 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			// The server's think time is what the probe must see.
			<-time.After(delay)
			fmt.Fprintln(w, "ok")
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	e := realEnv()
	ue := UE{Name: "a", Addr: "127.0.0.1"}

	o := runOnce(t, e, HTTP{URL: srv.URL + "/slow", Interval: time.Second}, ue)
	if o.Err != nil || o.status != 200 || o.RTT < delay || o.RTT > time.Second {
		t.Errorf("slow: %+v, want status 200 and TTFB ≥ %v", o, delay)
	}
	o = runOnce(t, e, HTTP{URL: srv.URL + "/moved", Interval: time.Second}, ue)
	if o.Err != nil || o.status != http.StatusFound || o.RTT <= 0 {
		t.Errorf("redirect: %+v, want an answer with status 302", o)
	}
	o = runOnce(t, e, HTTP{URL: srv.URL + "/down", Interval: time.Second}, ue)
	if o.Err == nil || classify(o.Err) != reasonHTTPStatus || o.status != 503 {
		t.Errorf("down: %+v, want an http_status error with 503", o)
	}
	if !strings.Contains(o.Err.Error(), "503") {
		t.Errorf("error %q does not say the status", o.Err)
	}
}

// bulkServer serves random bytes: /range honours Range (like a file
// server), /stream ignores it and writes until the client goes, /trickle
// sends 16 KiB every 10 ms, /upload counts what it reads.
type bulkServer struct {
	*httptest.Server
	written  atomic.Int64
	uploaded atomic.Int64
	mu       sync.Mutex
	ranges   []string
	encoding []string
}

func newBulkServer(t *testing.T) *bulkServer {
	blob := make([]byte, 8<<20)
	rand.Read(blob)
	s := &bulkServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.encoding = append(s.encoding, r.Header.Get("Accept-Encoding"))
		s.mu.Unlock()
		cw := &countingWriter{w: w, n: &s.written}
		switch r.URL.Path {
		case "/range":
			http.ServeContent(cw, r, "blob", time.Time{}, strings.NewReader(string(blob)))
		case "/stream":
			for {
				if _, err := cw.Write(blob[:64<<10]); err != nil {
					return
				}
			}
		case "/trickle":
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				if _, err := cw.Write(blob[:16<<10]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-tick.C:
				case <-r.Context().Done():
					return
				}
			}
		case "/upload":
			n, _ := io.Copy(io.Discard, r.Body)
			s.uploaded.Add(n)
			fmt.Fprintln(w, n)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

type countingWriter struct {
	w http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Header() http.Header  { return c.w.Header() }
func (c *countingWriter) WriteHeader(code int) { c.w.WriteHeader(code) }
func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func TestThroughputStopsAtTheByteCap(t *testing.T) {
	srv := newBulkServer(t)
	e := realEnv()
	ue := UE{Name: "a", Addr: "127.0.0.1"}
	const cap = 1 << 20

	o := runOnce(t, e, Throughput{URL: srv.URL + "/range", Interval: time.Minute, MaxBytes: cap}, ue)
	if o.Err != nil || o.bytes != cap || o.BytesPerSecond <= 0 || o.status != http.StatusPartialContent {
		t.Fatalf("range server: %+v", o)
	}
	waitFor(t, func() bool { return srv.written.Load() >= cap }) // the handler counts after its last write returns
	if got := srv.written.Load(); got != cap {
		t.Errorf("a Range-honouring server sent %d bytes, want exactly the cap %d", got, cap)
	}
	srv.mu.Lock()
	if srv.ranges[0] != "bytes=0-1048575" || srv.encoding[0] != "identity" {
		t.Errorf("request asked Range %q, Accept-Encoding %q", srv.ranges[0], srv.encoding[0])
	}
	srv.mu.Unlock()

	// A server that ignores Range is cut off at the cap.
	o = runOnce(t, e, Throughput{URL: srv.URL + "/stream", Interval: time.Minute, MaxBytes: cap, MaxTime: 5 * time.Second}, ue)
	if o.Err != nil || o.bytes != cap || o.BytesPerSecond <= 0 {
		t.Fatalf("stream server: %+v", o)
	}
}

func TestThroughputStopsAtTheTimeCap(t *testing.T) {
	srv := newBulkServer(t)
	e := realEnv()
	const maxTime = 300 * time.Millisecond
	start := time.Now()
	o := runOnce(t, e, Throughput{URL: srv.URL + "/trickle", Interval: time.Minute, MaxBytes: 64 << 20, MaxTime: maxTime}, UE{Name: "a", Addr: "127.0.0.1"})
	took := time.Since(start)
	if o.Err != nil {
		t.Fatalf("trickle: %v", o.Err)
	}
	if took < maxTime || took > maxTime+time.Second {
		t.Errorf("took %v, want the time cap %v", took, maxTime)
	}
	// 16 KiB per 10 ms is 1.6 MB/s; a loaded machine stretches the ticks.
	if o.bytes >= 64<<20 || o.BytesPerSecond < 0.4e6 || o.BytesPerSecond > 2.5e6 {
		t.Errorf("moved %d bytes at %.0f B/s, want about 1.6e6 B/s", o.bytes, o.BytesPerSecond)
	}
}

// A run whose time cap passes before any body byte is no measurement, and
// its error says how far it got (issue 10: a stuck link read as a slow answer).
func TestThroughputTimeoutNamesItsPhase(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // headers held back until the client gives up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	o := runOnce(t, realEnv(), Throughput{URL: srv.URL + "/", Interval: time.Minute, MaxTime: 200 * time.Millisecond}, UE{Name: "a", Addr: "127.0.0.1"})
	if o.Err == nil || classify(o.Err) != reasonTimeout || o.BytesPerSecond != 0 {
		t.Fatalf("silent server: %+v", o)
	}
	if !strings.Contains(o.Err.Error(), "no response headers within 200ms (connected after ") || !strings.Contains(o.Err.Error(), "request sent)") {
		t.Errorf("error %q does not say the headers were missing after the request was sent", o.Err)
	}
}

func TestThroughputUpload(t *testing.T) {
	srv := newBulkServer(t)
	e := realEnv()
	const cap = 2 << 20
	o := runOnce(t, e, Throughput{URL: srv.URL + "/upload", Interval: time.Minute, MaxBytes: cap, Upload: true}, UE{Name: "a", Addr: "127.0.0.1"})
	if o.Err != nil || o.bytes != cap || o.BytesPerSecond <= 0 {
		t.Fatalf("upload: %+v", o)
	}
	if got := srv.uploaded.Load(); got != cap {
		t.Errorf("server read %d bytes, want the cap %d", got, cap)
	}
}

func TestThroughputHasTheUEToItself(t *testing.T) {
	srv := newBulkServer(t)
	m, _ := newTestMonitor(t, Options{ICMP: func([]ICMPTarget) {}})
	runs := make(chan fakeRun, 1)
	err := m.SetUEs([]UE{{Name: "a", Addr: "127.0.0.1", Probes: []Probe{
		ICMP{Interval: time.Second},
		Throughput{URL: srv.URL + "/trickle", Interval: time.Minute, MaxTime: time.Second},
		fakeProbe{ID: "f", Interval: time.Minute, runs: runs},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	st := m.set.Load().byName["a"]
	var tput, other *task
	for _, tk := range st.tasks {
		if tk.kind == kThroughput {
			tput = tk
		} else {
			other = tk
		}
	}
	done := make(chan struct{})
	go func() { m.execute(context.Background(), tput); close(done) }()
	waitFor(t, func() bool { return st.exclusive.Load() })

	m.execute(context.Background(), other)
	m.Record(Result{UE: "a", Probe: KindICMP, At: base, RTT: ms(300)})
	<-done
	select {
	case <-runs:
		t.Error("another probe ran during the throughput run")
	default:
	}
	if m.skipped[kTCP].Load() != 1 || m.dropped.Load() != 1 {
		t.Errorf("skipped %d, dropped %d; want 1 and 1", m.skipped[kTCP].Load(), m.dropped.Load())
	}
	s, _ := m.Stats("a", base)
	if s.Samples != 0 || s.ThroughputSamples != 1 || s.Throughput <= 0 {
		t.Errorf("stats %+v: want one throughput sample and no echo", s)
	}
	m.execute(context.Background(), other) // free again
	nextRun(t, runs)
}

func TestPrometheusQueries(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prom/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query().Get("query")
		mu.Lock()
		queries = append(queries, q)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(q, "vector"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"client":"cam-7"},"value":[1700000000.5,"2.5e6"]}]}}`)
		case strings.HasPrefix(q, "scalar"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"42"]}}`)
		case strings.HasPrefix(q, "empty"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case strings.HasPrefix(q, "many"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]},{"metric":{},"value":[1,"2"]}]}}`)
		case strings.HasPrefix(q, "nan"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected character"}`)
		}
	}))
	defer srv.Close()
	e := realEnv()
	ue := UE{Name: `cam"7`, Addr: "127.0.0.1"}
	probe := func(q string) Prometheus {
		return Prometheus{Name: "v", ServerURL: srv.URL + "/prom", Query: q, Interval: time.Second}
	}

	o := runOnce(t, e, probe(`vector(app_bitrate{client="{{ue.name}}"})`), ue)
	if o.Err != nil || o.Value != 2.5e6 {
		t.Errorf("vector: %+v", o)
	}
	mu.Lock()
	if want := `vector(app_bitrate{client="cam\"7"})`; queries[0] != want {
		t.Errorf("query sent %q, want %q", queries[0], want)
	}
	mu.Unlock()
	if o := runOnce(t, e, probe("scalar(1)"), ue); o.Err != nil || o.Value != 42 {
		t.Errorf("scalar: %+v", o)
	}
	if o := runOnce(t, e, probe("nan"), ue); o.Err != nil || o.Value == o.Value {
		t.Errorf("NaN: %+v", o)
	}
	for q, want := range map[string]string{
		"empty": "prometheus query v: no series",
		"many":  "prometheus query v: 2 series; the query must select one per UE",
		"bad(":  "prometheus query v: server says bad_data: 1:1: parse error",
	} {
		o := runOnce(t, e, probe(q), ue)
		if o.Err == nil || !strings.HasPrefix(o.Err.Error(), want) || classify(o.Err) != reasonQuery {
			t.Errorf("%s: error %v, want %q (reason query)", q, o.Err, want)
		}
	}
	o = runOnce(t, e, Prometheus{Name: "v", ServerURL: srv.URL + "/nowhere", Query: "x", Interval: time.Second}, ue)
	if o.Err == nil || classify(o.Err) != reasonHTTPStatus {
		t.Errorf("wrong path: %v", o.Err)
	}

	// Through the Monitor, the value lands in Stats.Values under its name.
	m, _ := newTestMonitor(t, Options{})
	err := m.SetUEs([]UE{{Name: "cam-7", Addr: "127.0.0.1", Probes: []Probe{
		Prometheus{Name: "bitrate", ServerURL: srv.URL + "/prom", Query: "vector(1)", Interval: time.Second},
		Prometheus{Name: "other", ServerURL: srv.URL + "/prom", Query: "empty", Interval: time.Second},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range m.set.Load().byName["cam-7"].tasks {
		m.execute(context.Background(), tk)
	}
	s, _ := m.Stats("cam-7", base)
	if len(s.Values) != 2 || s.Values[0].Name != "bitrate" || s.Values[0].Value != 2.5e6 || !s.Values[0].At.Equal(base) {
		t.Errorf("values %+v", s.Values)
	}
	if s.Values[1].Value == s.Values[1].Value || !s.Values[1].At.IsZero() {
		t.Errorf("a query without answer has value %+v, want NaN and no time", s.Values[1])
	}
	if n := m.errorCount(kPrometheus, reasonQuery); n != 1 {
		t.Errorf("query errors = %d, want 1", n)
	}
}

// TestUnansweredCountsAsLost: a listener whose accept queue is full drops
// new SYNs, so a connect gets no answer; an HTTP server that never answers
// likewise. Both are losses, not errors.
func TestUnansweredCountsAsLost(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 4, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := net.JoinHostPort("127.0.4.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue (nobody accepts).
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		defer c.Close()
	}
	e := realEnv()
	o := runOnce(t, e, TCP{Address: addr, Interval: time.Second, Timeout: 200 * time.Millisecond}, UE{Name: "a", Addr: "127.0.4.1"})
	if !o.Lost || o.Err != nil {
		t.Errorf("connect to a full queue: %+v, want lost", o)
	}

	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	o = runOnce(t, e, HTTP{URL: hang.URL, Interval: time.Second, Timeout: 100 * time.Millisecond}, UE{Name: "a", Addr: "127.0.0.1"})
	if !o.Lost || o.Err != nil {
		t.Errorf("silent server: %+v, want lost", o)
	}
}
