package monitor

import (
	"net"
	"net/http"
	"sync"
	"syscall"
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
	byTOS     sync.Map // uint8 -> *marked
}

// marked is a probe's dialer and HTTP clients with their packets' IP
// TOS / traffic class set to tos (issue 10: probes see the queue the
// boosted traffic sees).
type marked struct {
	dialer              *net.Dialer
	probe, bulk, upload *http.Client
}

// marked returns the dialer and clients for tos: the env's own for 0.
func (e *env) marked(tos uint8) *marked {
	if tos == 0 {
		return &marked{e.dialer, e.probeClient, e.bulkClient, e.uploadClient}
	}
	if m, ok := e.byTOS.Load(tos); ok {
		return m.(*marked)
	}
	mark := func(network, address string, c syscall.RawConn) error { return setTOS(network, c, int(tos)) }
	d := &net.Dialer{Control: mark}
	lowat := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		if err := mark(network, address, c); err != nil {
			return err
		}
		return limitUnsent(network, address, c)
	}}
	m := &marked{dialer: d,
		probe:  &http.Client{Transport: noReuse(e.resolver, d), CheckRedirect: noRedirect},
		bulk:   &http.Client{Transport: noReuse(e.resolver, d), CheckRedirect: noRedirect},
		upload: &http.Client{Transport: noReuse(e.resolver, lowat), CheckRedirect: noRedirect},
	}
	got, _ := e.byTOS.LoadOrStore(tos, m)
	return got.(*marked)
}

func noReuse(r *resolver, d *net.Dialer) *http.Transport {
	return &http.Transport{
		Proxy:              nil, // measure the path to the UE, never a proxy's
		DialContext:        r.dialContext(d),
		DisableKeepAlives:  true,
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func newEnv(r *resolver, now func() time.Time) *env {
	d := &net.Dialer{}
	lowat := &net.Dialer{Control: limitUnsent}
	return &env{
		resolver:     r,
		dialer:       d,
		now:          now,
		probeClient:  &http.Client{Transport: noReuse(r, d), CheckRedirect: noRedirect},
		bulkClient:   &http.Client{Transport: noReuse(r, d), CheckRedirect: noRedirect},
		uploadClient: &http.Client{Transport: noReuse(r, lowat), CheckRedirect: noRedirect},
		apiClient: &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         r.dialContext(d),
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
}
