package monitor

import (
	"net"
	"net/http"
	"time"
)

// env is what the probes share: the name cache and the HTTP clients.
type env struct {
	resolver *resolver
	dialer   *net.Dialer
	now      func() time.Time // timestamps Results; durations use the monotonic clock

	// probeClient opens a fresh connection per request, so every http
	// measurement includes the connection set-up and they compare alike.
	probeClient *http.Client
	// bulkClient is probeClient that never asks for compression: a
	// compressed body would fake a throughput.
	bulkClient *http.Client
	// uploadClient is bulkClient on sockets that keep little unsent data
	// queued, so an upload stopped by its time cap drains quickly.
	uploadClient *http.Client
	// apiClient talks to Prometheus servers, keeping connections.
	apiClient *http.Client
}

func newEnv(r *resolver, now func() time.Time) *env {
	d := &net.Dialer{}
	lowat := &net.Dialer{Control: limitUnsent}
	noReuse := func(d *net.Dialer) *http.Transport {
		return &http.Transport{
			Proxy:              nil, // measure the path to the UE, never a proxy's
			DialContext:        r.dialContext(d),
			DisableKeepAlives:  true,
			DisableCompression: true,
			ForceAttemptHTTP2:  false,
		}
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &env{
		resolver:     r,
		dialer:       d,
		now:          now,
		probeClient:  &http.Client{Transport: noReuse(d), CheckRedirect: noRedirect},
		bulkClient:   &http.Client{Transport: noReuse(d), CheckRedirect: noRedirect},
		uploadClient: &http.Client{Transport: noReuse(lowat), CheckRedirect: noRedirect},
		apiClient: &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         r.dialContext(d),
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
}
