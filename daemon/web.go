package daemon

import (
	"net/http"
)

// Handler serves /metrics, the status page (/ and /status.json),
// /-/reload (POST, with Options.EnableLifecycle), /-/healthy and /-/ready.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.mon.MetricsHandler(d.reg))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK\n")) })
	mux.HandleFunc("/-/ready", d.serveReady)
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		if !d.opts.EnableLifecycle {
			http.Error(w, "the lifecycle API is not enabled (--web.enable-lifecycle); send SIGHUP to reload", http.StatusForbidden)
			return
		}
		d.serveReload(w)
	})
	mux.HandleFunc("/status.json", d.serveStatusJSON) // see status.go
	mux.HandleFunc("/{$}", d.serveStatusPage)
	return mux
}
