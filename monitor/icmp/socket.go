package icmp

import (
	"fmt"
	"net/netip"
)

// socket is one ICMP socket shared by every target of an address family
// and source address. Its send side belongs to the Run goroutine, its
// receive side to the socket's receive goroutine; the fields here are
// guarded by Engine.mu.
type socket struct {
	key          socketKey
	v6           bool
	withIPHeader bool // raw IPv4 sockets receive the IP header
	// checkID: a raw socket sees every echo reply of the host, so replies
	// are checked for our id; a ping socket only gets the replies the
	// kernel matched to its own id (which it writes into our requests).
	checkID bool
	id      uint16
	rcvBuf  int // effective receive buffer in bytes

	opened  bool
	err     error // why the socket could not be opened; retried at retryAt
	retryAt int64

	sendCallsIn uint64 // send syscalls already added to Counters.SendCalls
	// watermark: every reply the kernel queued before this engine time
	// has been matched (see Engine.expire).
	watermark int64
	// hostDrops is the kernel's count of replies it dropped because the
	// socket's queue was full (SO_RXQ_OVFL); overflowAt is when a read
	// last saw it grow. A packet sent before then that times out may have
	// had its reply dropped by this host: see Engine.expire.
	hostDrops  uint32
	overflowAt int64
	pending    int           // packets in flight
	targets    int           // targets sending on this socket
	kick       chan struct{} // tells the receive goroutine to read now

	sysSocket
}

type socketKey struct {
	v6     bool
	source netip.Addr // the zero Addr for any
	tos    uint8      // IP TOS / traffic class of what it sends; 0: unmarked
}

// active reports whether the Run goroutine will kick the receive goroutine
// (see Engine.receive); called with Engine.mu held.
func (s *socket) active() bool { return s.targets > 0 || s.pending > 0 }

func (k socketKey) String() string {
	fam := "IPv4"
	if k.v6 {
		fam = "IPv6"
	}
	if k.source.IsValid() {
		fam += " from " + k.source.String()
	}
	if k.tos != 0 {
		fam += fmt.Sprintf(" TOS %#02x", k.tos)
	}
	return fam
}

// sendFailure is a message of a batch that the kernel refused.
type sendFailure struct {
	index int
	err   error
}
