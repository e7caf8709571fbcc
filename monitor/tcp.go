package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// TCP measures how long a TCP connection to Address takes to open. A
// connection that is not answered within Timeout counts as lost; a refused
// one is an error (the host answered, the service is down).
type TCP struct {
	Address  string // host:port; may use {{ue.addr}} and {{ue.name}}
	Interval time.Duration
	Timeout  time.Duration // default: the interval, at most 10 s
	TOS      uint8         // IP TOS / traffic class of its packets; 0 leaves them unmarked
}

// Kind implements Probe.
func (TCP) Kind() string { return KindTCP }

func (p TCP) bind(ue *UE) (boundProbe, error) {
	if err := checkInterval("tcp", p.Interval); err != nil {
		return nil, err
	}
	addr := expand(p.Address, ue, true)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "" || port == "" {
		return nil, fmt.Errorf("address %q: want host:port", addr)
	}
	b := &tcpBound{host: host, port: port, interval: p.Interval, timeout: timeoutFor(p.Timeout, p.Interval), tos: p.TOS}
	if b.timeout > b.interval {
		return nil, fmt.Errorf("timeout %v is longer than the interval %v", b.timeout, b.interval)
	}
	return b, nil
}

type tcpBound struct {
	host, port        string
	interval, timeout time.Duration
	tos               uint8
}

func (b *tcpBound) every() time.Duration { return b.interval }
func (b *tcpBound) exclusive() bool      { return false }
func (b *tcpBound) passive() bool        { return false }

func (b *tcpBound) run(ctx context.Context, e *env) outcome {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	ip, err := e.resolver.resolve(ctx, b.host)
	if err != nil {
		return outcome{Result: Result{Err: withReason(reasonResolve, err)}}
	}
	target := net.JoinHostPort(ip.String(), b.port)
	start := time.Now()
	conn, err := e.marked(b.tos).dialer.DialContext(ctx, "tcp", target)
	rtt := time.Since(start)
	if err != nil {
		if isTimeout(err) {
			return outcome{Result: Result{Lost: true}}
		}
		return outcome{Result: Result{Err: fmt.Errorf("connect to %s: %w", target, err)}}
	}
	conn.Close()
	return outcome{Result: Result{RTT: rtt}}
}

// isTimeout reports whether err is a deadline rather than an answer.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
