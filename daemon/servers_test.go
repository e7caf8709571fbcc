package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
)

const serverTestToken = "servers-t0ken-abcdefghijkl"

// serverDaemon is a dry-run daemon that is never Run: only its servers are
// under test.
func serverDaemon(t *testing.T, opts daemon.Options) *daemon.Daemon {
	t.Helper()
	dir := t.TempDir()
	tok := filepath.Join(dir, "notify-token")
	if err := os.WriteFile(tok, []byte(serverTestToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`dry_run: true
notifications: {public_url: "http://127.0.0.1:1/qodwatch", listen: "127.0.0.1:0", token_file: %q}
web: {listen: "127.0.0.1:0"}
defaults:
  application_server: {ipv4: 203.0.113.10}
  rule: fast
ues:
  - name: ue-1
    ipv4: 10.0.0.1
    target: 127.0.0.1
    probes: [{tcp: {address: "127.0.0.1:1", interval: 10s}}]
rules:
  fast:
    breach: {any: ["loss > 50%%"], for: 1s}
    recover: {all: ["loss < 10%%"], for: 1s}
    qos: QOS_E
    duration: 1h
`, tok)
	cfg, err := config.Parse("servers.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	opts.Config = cfg
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// startServer runs serve on a loopback listener until the test ends and
// returns its address.
func startServer(t *testing.T, serve func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return ln.Addr().String()
}

// closedWithin reads c until the server closes it and fails the test if
// that takes longer than limit (the client's own bound, far above the
// server's timeout: reaching it means the server never cut the client off).
func closedWithin(t *testing.T, c net.Conn, limit time.Duration, what string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection was still open after %v", what, limit)
	}
}

// A stranger that sends a request's headers and then its body a byte at a
// time is cut off after the read timeout (300 slow bodies stayed open 40 s
// and more), on both servers; one that never finishes its headers too.
func TestServersCutOffSlowClients(t *testing.T) {
	t.Parallel()
	lim := daemon.ServerLimits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond}
	d := serverDaemon(t, daemon.Options{WebLimits: lim, NotifyLimits: lim})
	notify := startServer(t, d.ServeNotificationsOn)
	webAddr := startServer(t, func(ctx context.Context, ln net.Listener) error { return d.ServeWebOn(ctx, ln, "") })

	dial := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// The body is promised but only its first byte comes.
	slowBody := dial(notify)
	fmt.Fprintf(slowBody, "POST /qodwatch/tx/abc/notifications?apikey=%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", serverTestToken)
	closedWithin(t, slowBody, 10*time.Second, "notification receiver, slow body")

	for name, addr := range map[string]string{"notification receiver": notify, "web server": webAddr} {
		slowHeader := dial(addr)
		fmt.Fprint(slowHeader, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n")
		closedWithin(t, slowHeader, 10*time.Second, name+", unfinished headers")
	}
}

// Headers beyond the limit are refused with 431 by default (Go's own
// default is 1 MB a request).
func TestServersRefuseLargeHeaders(t *testing.T) {
	t.Parallel()
	d := serverDaemon(t, daemon.Options{})
	notify := startServer(t, d.ServeNotificationsOn)
	webAddr := startServer(t, func(ctx context.Context, ln net.Listener) error { return d.ServeWebOn(ctx, ln, "") })
	for name, url := range map[string]string{"notification receiver": "http://" + notify + "/qodwatch/notifications", "web server": "http://" + webAddr + "/-/healthy"} {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: 64 KiB of headers answered %s, want 431", name, resp.Status)
		}
	}
}

// Beyond MaxConnections a connection waits, unanswered, until one of those
// open closes (4,000 idle connections grew the daemon from 38 to 110 MB).
func TestServersCapConnections(t *testing.T) {
	t.Parallel()
	d := serverDaemon(t, daemon.Options{WebLimits: daemon.ServerLimits{MaxConnections: 2}})
	addr := startServer(t, func(ctx context.Context, ln net.Listener) error { return d.ServeWebOn(ctx, ln, "") })

	// get sends a kept-alive GET on c and returns its status line, or the
	// read error.
	get := func(c net.Conn, r *bufio.Reader, deadline time.Duration) (string, error) {
		if _, err := fmt.Fprint(c, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		if err := c.SetReadDeadline(time.Now().Add(deadline)); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return "", err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Status, nil
	}
	var conns []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		if i == 2 {
			break
		}
		if _, err := get(c, bufio.NewReader(c), 10*time.Second); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	// The third one waits: the kernel took it, the server does not.
	third := bufio.NewReader(conns[2])
	status, err := get(conns[2], third, 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a third connection beside two open ones got %q, %v; want no answer", status, err)
	}
	// One closes: the waiting one is served (its request is already sent).
	conns[0].Close()
	if err := conns[2].SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(third, nil)
	if err != nil {
		t.Fatalf("the waiting connection after one closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the waiting connection after one closed: %s", resp.Status)
	}
}

// POST /-/reload rereads the config only with --web.enable-lifecycle (as in
// Prometheus: otherwise anyone who reaches the web server can make the
// daemon reread its config); it is POST only.
func TestReloadEndpointNeedsLifecycle(t *testing.T) {
	t.Parallel()
	broken := filepath.Join(t.TempDir(), "qodwatch.yaml")
	if err := os.WriteFile(broken, []byte("api: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	do := func(h http.Handler, method string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/-/reload", nil))
		return rec.Code
	}
	off := serverDaemon(t, daemon.Options{ConfigFile: broken})
	if code := do(off.Handler(), http.MethodPost); code != http.StatusForbidden {
		t.Errorf("POST /-/reload without --web.enable-lifecycle: %d, want 403", code)
	}
	if v := gaugeValue(t, off, "qodwatch_config_last_reload_successful"); v != 1 {
		t.Errorf("qodwatch_config_last_reload_successful = %v: the config was reread without --web.enable-lifecycle", v)
	}
	on := serverDaemon(t, daemon.Options{ConfigFile: broken, EnableLifecycle: true})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		if code := do(on.Handler(), m); code != http.StatusMethodNotAllowed {
			t.Errorf("%s /-/reload: %d, want 405", m, code)
		}
	}
	if code := do(on.Handler(), http.MethodPost); code != http.StatusBadRequest {
		t.Errorf("POST /-/reload of a broken config with --web.enable-lifecycle: %d, want 400", code)
	}
}

// Go's profiles are served only with --web.enable-pprof: a profile costs
// CPU and shows the UEs' names, so strangers must not get one by default.
func TestPprofNeedsFlag(t *testing.T) {
	t.Parallel()
	get := func(h http.Handler) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil))
		return rec.Code
	}
	if code := get(serverDaemon(t, daemon.Options{}).Handler()); code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/heap without --web.enable-pprof: %d, want 404", code)
	}
	if code := get(serverDaemon(t, daemon.Options{EnablePprof: true}).Handler()); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/heap with --web.enable-pprof: %d, want 200", code)
	}
}

func gaugeValue(t *testing.T, d *daemon.Daemon, name string) float64 {
	t.Helper()
	mfs, err := d.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
