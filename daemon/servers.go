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
)

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
	return serve(ctx, ln, webConfigFile, d.Handler(), d.log)
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
	return serve(ctx, ln, "", mux, d.log)
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

func serve(ctx context.Context, ln net.Listener, webConfigFile string, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() {
		if webConfigFile == "" {
			errc <- srv.Serve(ln)
			return
		}
		systemd := false
		errc <- web.Serve(ln, srv, &web.FlagConfig{WebSystemdSocket: &systemd, WebConfigFile: &webConfigFile}, log)
	}()
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
