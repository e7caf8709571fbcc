package monitor

import (
	"fmt"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT from linux/tcp.h.
const tcpNotSentLowat = 25

// unsentLimit bounds the bytes an upload keeps queued beyond what is in
// flight: enough to keep the link busy, little enough that an upload cut by
// its time cap does not spend seconds draining.
const unsentLimit = 128 << 10

// limitUnsent is a net.Dialer Control function setting TCP_NOTSENT_LOWAT.
// Failure is not fatal: the upload is then measured with a longer drain.
func limitUnsent(network, address string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, unsentLimit)
	})
}

// setTOS is a net.Dialer Control function marking the socket's packets:
// IP_TOS on IPv4, IPV6_TCLASS on IPv6 (the DSCP is its upper six bits).
func setTOS(network string, c syscall.RawConn, tos int) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		if network == "tcp6" || network == "udp6" {
			err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_TCLASS, tos)
			return
		}
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TOS, tos)
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("mark probe packets with TOS %#x: %w", tos, err)
	}
	return nil
}
