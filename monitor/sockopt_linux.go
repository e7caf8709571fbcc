package monitor

import "syscall"

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
