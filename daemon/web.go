package daemon

import (
	"net/http"
)

// Handler serves /metrics, the status page (/ and /status.json),
// /-/reload (POST), /-/healthy and /-/ready.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.mon.MetricsHandler(d.reg))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK\n")) })
	mux.HandleFunc("/-/ready", d.serveReady)
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		d.serveReload(w)
	})
	mux.HandleFunc("/status.json", d.serveStatusJSON) // see status.go
	mux.HandleFunc("/{$}", d.serveStatusPage)
	return mux
}
