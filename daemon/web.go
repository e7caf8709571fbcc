package daemon

import (
	"net/http"
	"net/http/pprof"
)

// Handler serves /metrics, the status page (/ and /status.json),
// /-/reload (POST, with Options.EnableLifecycle), /-/healthy, /-/ready and,
// with Options.EnablePprof, /debug/pprof/.
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
	if d.opts.EnablePprof {
		// Go's profiles, as Prometheus serves them: how a large fleet's
		// CPU and memory are spent is found on the running daemon. Off by
		// default: a profile costs CPU and shows the UEs' names.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
