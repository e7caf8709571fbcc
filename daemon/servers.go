package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/net/netutil"
)

// ServerLimits bound what clients can hold of one of the daemon's servers.
// Both can be reached by strangers (the notification receiver must be, by
// the operator), and without limits idle or slow connections pile up until
// the process runs out of memory or file descriptors, and then the probes
// and the API calls that keep sessions right fail too.
type ServerLimits struct {
	// ReadHeaderTimeout bounds the request line and headers; ReadTimeout
	// the whole request, body included (a slow body is cut off).
	ReadHeaderTimeout, ReadTimeout time.Duration
	// WriteTimeout bounds the handler and the answer's write.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends nothing.
	IdleTimeout time.Duration
	// MaxHeaderBytes is the request headers' limit; larger ones get 431.
	MaxHeaderBytes int
	// MaxConnections caps the connections open at once; further ones wait
	// in the kernel's accept queue until one closes.
	MaxConnections int
}

// DefaultWebLimits suit /metrics (a scrape of 10,000 UEs is a few MB),
// the status page and the probes: Prometheus' and a few browsers'
// connections, reused across a scrape interval of up to a minute.
func DefaultWebLimits() ServerLimits {
	return ServerLimits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
		MaxConnections:    64,
	}
}

// DefaultNotifyLimits suit the operator's callbacks: small bodies (at most
// 64 KiB) answered at once, possibly many at a time after an outage.
func DefaultNotifyLimits() ServerLimits {
	return ServerLimits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
		MaxConnections:    128,
	}
}

// orDefault fills l's zero fields from def.
func (l ServerLimits) orDefault(def ServerLimits) ServerLimits {
	pick := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	pick(&l.ReadHeaderTimeout, def.ReadHeaderTimeout)
	pick(&l.ReadTimeout, def.ReadTimeout)
	pick(&l.WriteTimeout, def.WriteTimeout)
	pick(&l.IdleTimeout, def.IdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = def.MaxHeaderBytes
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = def.MaxConnections
	}
	return l
}

// Listen binds addr for one of the daemon's servers. qodwatch run binds
// both before Run starts: a busy port must stop the start before any
// stored session is looked at, adopted or ended.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// ServeWeb serves Handler on the configured address until ctx ends, with
// TLS and basic auth from web.config_file (exporter-toolkit).
func (d *Daemon) ServeWeb(ctx context.Context, listen, webConfigFile string) error {
	ln, err := Listen(listen)
	if err != nil {
		return err
	}
	return d.ServeWebOn(ctx, ln, webConfigFile)
}

// ServeWebOn is ServeWeb on a bound listener, which it closes.
func (d *Daemon) ServeWebOn(ctx context.Context, ln net.Listener, webConfigFile string) error {
	return serve(ctx, ln, webConfigFile, d.Handler(), d.opts.WebLimits.orDefault(DefaultWebLimits()), d.log)
}

// ServeNotifications serves the notification receiver at
// /notifications and …/tx/{transaction id} (a CAMARA v1 sink; under any
// prefix, since the public URL's path is what a proxy in front decides)
// until ctx ends.
func (d *Daemon) ServeNotifications(ctx context.Context, listen string) error {
	ln, err := Listen(listen)
	if err != nil {
		return err
	}
	return d.ServeNotificationsOn(ctx, ln)
}

// ServeNotificationsOn is ServeNotifications on a bound listener, which it
// closes.
func (d *Daemon) ServeNotificationsOn(ctx context.Context, ln net.Listener) error {
	rcv := d.NotificationReceiver()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !isNotificationPath(r.URL.Path) {
			http.NotFound(w, r)
			return
		}
		rcv.ServeHTTP(w, r)
	})
	return serve(ctx, ln, "", mux, d.opts.NotifyLimits.orDefault(DefaultNotifyLimits()), d.log)
}

// ValidateWebConfig checks web.config_file before the start, so a bad one
// stops qodwatch run before any session is touched rather than when the
// web server starts.
func ValidateWebConfig(file string) error {
	if file == "" {
		return nil
	}
	if err := web.Validate(file); err != nil {
		return fmt.Errorf("web.config_file %s: %w", file, err)
	}
	return nil
}

func serve(ctx context.Context, ln net.Listener, webConfigFile string, h http.Handler, lim ServerLimits, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
	}
	ln = netutil.LimitListener(ln, lim.MaxConnections)
	run := func() error { return srv.Serve(ln) }
	if webConfigFile != "" {
		guarded, err := guard(srv, webConfigFile, h, ln.Addr(), log)
		if err != nil {
			ln.Close()
			return err
		}
		srv.Handler = exemptProbes(h, guarded)
		if srv.TLSConfig != nil {
			run = func() error { return srv.ServeTLS(ln, "", "") }
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- run() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// probePaths are served without web.config_file's basic auth, so that
// Kubernetes' and systemd's probes, which carry no credentials, work when
// it is set. They say only whether the daemon is up and ready.
var probePaths = map[string]bool{"/-/healthy": true, "/-/ready": true}

// exemptProbes sends the probe paths to open and everything else to
// guarded. The paths are compared as sent: an unclean one ("//-/ready",
// "/-/ready/../metrics") is guarded.
func exemptProbes(open, guarded http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if probePaths[r.URL.Path] {
			open.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// errNoAccept is what guard's listener answers to web.Serve.
var errNoAccept = errors.New("qodwatch: configuration only, no connections")

// noAccept is a listener that refuses at once, with the address of the
// real one for exporter-toolkit's log.
type noAccept struct{ addr net.Addr }

func (l noAccept) Accept() (net.Conn, error) { return nil, errNoAccept }
func (l noAccept) Close() error              { return nil }
func (l noAccept) Addr() net.Addr            { return l.addr }

// guard has exporter-toolkit set up web.config_file's basic auth, headers,
// rate limit and TLS (certificates reread at each connection, users at each
// request), exactly as its web.Serve does, and returns h behind them; srv
// takes over the TLS setup. web.Serve wraps the whole handler of the
// server it serves, so it is run here on a listener that refuses at once
// and the server it configured is read afterwards: the probe paths can
// then be served beside the guarded handler, on the same TLS listener.
// TestWebConfigLeavesProbesOpen checks this against the pinned version.
func guard(srv *http.Server, file string, h http.Handler, addr net.Addr, log *slog.Logger) (http.Handler, error) {
	setup := &http.Server{Handler: h}
	systemd := false
	err := web.Serve(noAccept{addr}, setup, &web.FlagConfig{WebSystemdSocket: &systemd, WebConfigFile: &file}, log)
	if !errors.Is(err, errNoAccept) {
		if err == nil {
			err = errors.New("exporter-toolkit served nothing")
		}
		return nil, fmt.Errorf("web.config_file %s: %w", file, err)
	}
	// Without tls_server_config it served plain HTTP; net/http may still
	// have given the server an empty TLS config of its own.
	if setup.TLSConfig != nil && setup.TLSConfig.GetConfigForClient != nil {
		srv.TLSConfig = setup.TLSConfig
		if setup.TLSNextProto != nil && len(setup.TLSNextProto) == 0 {
			srv.TLSNextProto = setup.TLSNextProto // http2: false
		}
	}
	return setup.Handler, nil
}
