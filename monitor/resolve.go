package monitor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// resolver turns UE host names into addresses at each probe cycle, through
// a short cache so a fleet of named UEs does not query DNS on every packet,
// yet an address change is noticed within the TTL.
type resolver struct {
	ttl    time.Duration
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]resolved
}

type resolved struct {
	addr    netip.Addr
	err     error
	expires time.Time
}

// negativeTTLDivisor shortens the caching of failures so a UE whose name
// comes back is probed again soon.
const negativeTTLDivisor = 6

func newResolver(ttl time.Duration, lookup func(context.Context, string) ([]netip.Addr, error), now func() time.Time) *resolver {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return &resolver{ttl: ttl, lookup: lookup, now: now, cache: make(map[string]resolved)}
}

// resolve returns the address of host: an IP literal as is, a name from the
// cache or a fresh lookup.
func (r *resolver) resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	now := r.now()
	r.mu.Lock()
	e, ok := r.cache[host]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.addr, e.err
	}

	addrs, err := r.lookup(ctx, host)
	e = resolved{expires: now.Add(r.ttl)}
	switch {
	case err != nil:
		e.err = fmt.Errorf("resolve %q: %w", host, err)
	case len(addrs) == 0:
		e.err = fmt.Errorf("resolve %q: no addresses", host)
	default:
		e.addr = addrs[0].Unmap()
	}
	if e.err != nil {
		if ctx.Err() != nil {
			return netip.Addr{}, e.err // our own cancellation says nothing about the name
		}
		e.expires = now.Add(r.ttl / negativeTTLDivisor)
	}
	r.mu.Lock()
	if len(r.cache) > 1024 {
		for h, old := range r.cache {
			if !now.Before(old.expires) {
				delete(r.cache, h)
			}
		}
	}
	r.cache[host] = e
	r.mu.Unlock()
	return e.addr, e.err
}

// dialContext dials address (host:port) after resolving host through the
// cache; the http transports use it.
func (r *resolver) dialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, fmt.Errorf("dial %q: %w", address, err)
		}
		ip, err := r.resolve(ctx, host)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
	}
}
