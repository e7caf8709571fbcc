package daemon

import (
	"net/http"
	"strings"
)

// serveReload answers POST /-/reload: 200 "reloaded" when everything
// changed applies; 409 Conflict naming the settings that need a restart
// when the rest applied but those did not (a 2xx would read as "done");
// 400 with every problem when the config is refused and the old one keeps
// running.
func (d *Daemon) serveReload(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rep, err := d.ReloadReport()
	switch {
	case err != nil:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("reload refused; the old config keeps running:\n" + err.Error() + "\n"))
	case len(rep.Restart) > 0:
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte("reloaded, but these changed settings apply only at the next restart (the old values stay in use):\n  " +
			strings.Join(rep.Restart, "\n  ") + "\n"))
	default:
		_, _ = w.Write([]byte("reloaded\n"))
	}
}
