package icmp

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	xicmp "golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const (
	maxSendBatch = 512 // messages per sendmmsg
	maxRecvBatch = 128 // messages per recvmmsg
	recvBufLen   = 256 // an IPv4 header (<= 60) and our reply (64) fit
	oobLen       = 64  // one SCM_TIMESTAMPNS control message

	// Socket buffers: a receive queue for a few hundred milliseconds of
	// replies at 30,000/s, so a GC pause or a busy core loses nothing.
	rcvBufBytes = 8 << 20
	sndBufBytes = 4 << 20
	// Below this the receive buffer is too small for large fleets.
	minGoodRcvBuf = 1 << 20
)

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel transferred,
// padded to pointer alignment.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// sysSocket is the Linux part of a socket: the descriptor and the batches
// handed to sendmmsg and recvmmsg.
type sysSocket struct {
	conn *xicmp.PacketConn
	rc   syscall.RawConn
	out  sendBatch
	in   recvBatch
}

type sendBatch struct {
	bufs    []byte
	iovs    []syscall.Iovec
	hdrs    []mmsghdr
	serials []uint64
	targets []*target
	n       int

	failed []sendFailure

	// arguments and results of the sendmmsg callback, kept here so that
	// the callback is allocated once
	off, cnt, sent int
	errno          syscall.Errno
	calls          uint64
	fn             func(uintptr) bool
}

type recvBatch struct {
	bufs  []byte
	names []byte
	oobs  []byte
	iovs  []syscall.Iovec
	hdrs  []mmsghdr
	n     int

	errno syscall.Errno
	calls uint64
	fn    func(uintptr) bool
}

// open opens the socket for s.key in mode (ModeUnprivileged or ModeRaw).
func (s *socket) open(mode Mode, rawID uint16) error {
	network, addr := "udp4", "0.0.0.0"
	if s.key.v6 {
		network, addr = "udp6", "::"
	}
	if mode == ModeRaw {
		network = "ip4:icmp"
		if s.key.v6 {
			network = "ip6:ipv6-icmp"
		}
	}
	if s.key.source.IsValid() {
		addr = s.key.source.String()
	}
	c, err := xicmp.ListenPacket(network, addr)
	if err != nil {
		return fmt.Errorf("open %s ICMP socket (%s) on %s: %w", mode, network, addr, err)
	}
	s.v6 = s.key.v6
	s.conn = c
	if err := s.setup(mode, rawID); err != nil {
		c.Close()
		s.conn = nil
		return fmt.Errorf("set up %s ICMP socket (%s) on %s: %w", mode, network, addr, err)
	}
	s.opened = true
	return nil
}

func (s *socket) setup(mode Mode, rawID uint16) error {
	var pc net.PacketConn
	if s.v6 {
		p6 := s.conn.IPv6PacketConn()
		pc = p6.PacketConn
		if mode == ModeRaw {
			// Only echo replies wake us; without this a raw socket also
			// gets our own requests looped back and every other ICMPv6.
			var f ipv6.ICMPFilter
			f.SetAll(true)
			f.Accept(ipv6.ICMPTypeEchoReply)
			if err := p6.SetICMPFilter(&f); err != nil {
				return fmt.Errorf("set ICMPv6 filter: %w", err)
			}
		}
	} else {
		p4 := s.conn.IPv4PacketConn()
		pc = p4.PacketConn
		if mode == ModeRaw {
			var f ipv4.ICMPFilter
			f.SetAll(true)
			f.Accept(ipv4.ICMPTypeEchoReply)
			if err := p4.SetICMPFilter(&f); err != nil {
				return fmt.Errorf("set ICMP filter: %w", err)
			}
		}
	}
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return errors.New("socket gives no access to its file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("access file descriptor: %w", err)
	}
	s.rc = rc
	if mode == ModeRaw {
		s.checkID = true
		s.id = rawID
		s.withIPHeader = !s.v6
	} else if ua, ok := s.conn.LocalAddr().(*net.UDPAddr); ok {
		s.id = uint16(ua.Port) // the kernel's echo id for this socket
	}

	var optErr error
	err = rc.Control(func(fd uintptr) {
		f := int(fd)
		// The FORCE variants pass net.core.rmem_max/wmem_max when we hold
		// CAP_NET_ADMIN; otherwise the plain ones get what the limit allows.
		if syscall.SetsockoptInt(f, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, rcvBufBytes) != nil {
			_ = syscall.SetsockoptInt(f, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBufBytes)
		}
		if syscall.SetsockoptInt(f, syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, sndBufBytes) != nil {
			_ = syscall.SetsockoptInt(f, syscall.SOL_SOCKET, syscall.SO_SNDBUF, sndBufBytes)
		}
		s.rcvBuf, _ = syscall.GetsockoptInt(f, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		// Kernel receive timestamps: the RTT then excludes how long the
		// receive goroutine took to be scheduled.
		if err := syscall.SetsockoptInt(f, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
			optErr = fmt.Errorf("enable SO_TIMESTAMPNS: %w", err)
		}
	})
	if err != nil {
		return fmt.Errorf("set socket options: %w", err)
	}
	if optErr != nil {
		return optErr
	}
	s.out.init()
	s.in.init()
	return nil
}

func (s *socket) close() error {
	if s.conn == nil {
		return nil
	}
	return s.conn.Close()
}

func (b *sendBatch) init() {
	b.bufs = make([]byte, maxSendBatch*packetLen)
	b.iovs = make([]syscall.Iovec, maxSendBatch)
	b.hdrs = make([]mmsghdr, maxSendBatch)
	b.serials = make([]uint64, maxSendBatch)
	b.targets = make([]*target, maxSendBatch)
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i*packetLen]
		b.iovs[i].SetLen(packetLen)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.Iovlen = 1
	}
	b.fn = b.sendmmsg
}

// queue adds an echo request to t to the batch; false when the batch is full.
func (s *socket) queue(t *target, e echo) bool {
	b := &s.out
	if b.n == maxSendBatch {
		return false
	}
	i := b.n
	buildEcho(b.bufs[i*packetLen:(i+1)*packetLen], s.v6, e)
	b.hdrs[i].hdr.Name = &t.sa[0]
	b.hdrs[i].hdr.Namelen = t.saLen
	b.serials[i] = e.serial
	b.targets[i] = t
	b.n++
	return true
}

// flush sends the batch with as few sendmmsg calls as the kernel allows and
// returns the messages it refused (valid until the next flush).
func (s *socket) flush() []sendFailure {
	b := &s.out
	b.failed = b.failed[:0]
	for off := 0; off < b.n; {
		b.off, b.cnt = off, b.n-off
		if err := s.rc.Write(b.fn); err != nil { // socket closed
			for i := off; i < b.n; i++ {
				b.failed = append(b.failed, sendFailure{i, err})
			}
			break
		}
		if b.errno != 0 {
			// sendmmsg reports the error of the first message it could
			// not send; skip that one and go on with the rest.
			b.failed = append(b.failed, sendFailure{off, b.errno})
			off++
			continue
		}
		off += b.sent
	}
	return b.failed
}

// batched returns the number of queued messages; batchEntry the target and
// serial of one of them.
func (s *socket) batched() int { return s.out.n }

func (s *socket) batchEntry(i int) (*target, uint64) { return s.out.targets[i], s.out.serials[i] }

// sendCalls and recvCalls count system calls, each read by the goroutine
// that owns that side.
func (s *socket) sendCalls() uint64 { return s.out.calls }
func (s *socket) recvCalls() uint64 { return s.in.calls }

// resetBatch empties the batch after flush, dropping its references to
// targets.
func (s *socket) resetBatch() { s.out.reset() }

func (b *sendBatch) reset() {
	for i := 0; i < b.n; i++ {
		b.targets[i] = nil
		b.hdrs[i].hdr.Name = nil
	}
	b.n = 0
}

func (b *sendBatch) sendmmsg(fd uintptr) bool {
	for {
		b.calls++
		r, _, e := syscall.Syscall6(sysSENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[b.off])), uintptr(b.cnt), 0, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the runtime poller waits until writable
		}
		b.sent, b.errno = int(r), e
		return true
	}
}

func (b *recvBatch) init() {
	b.bufs = make([]byte, maxRecvBatch*recvBufLen)
	b.names = make([]byte, maxRecvBatch*sizeofSockaddrInet6)
	b.oobs = make([]byte, maxRecvBatch*oobLen)
	b.iovs = make([]syscall.Iovec, maxRecvBatch)
	b.hdrs = make([]mmsghdr, maxRecvBatch)
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i*recvBufLen]
		b.iovs[i].SetLen(recvBufLen)
		h := &b.hdrs[i].hdr
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
		h.Name = &b.names[i*sizeofSockaddrInet6]
		h.Control = &b.oobs[i*oobLen]
	}
	b.n = maxRecvBatch
	b.rearm()
	b.n = 0
	b.fn = b.recvmmsg
}

// rearm restores the lengths the kernel overwrote in the last call.
func (b *recvBatch) rearm() {
	for i := 0; i < b.n; i++ {
		h := &b.hdrs[i]
		h.hdr.Namelen = sizeofSockaddrInet6
		h.hdr.SetControllen(oobLen)
		h.hdr.Flags = 0
		h.len = 0
	}
}

func (b *recvBatch) recvmmsg(fd uintptr) bool {
	b.rearm()
	b.n = 0
	for {
		b.calls++
		r, _, e := syscall.Syscall6(sysRECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), 0, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the runtime poller waits until readable
		}
		if e == 0 {
			b.n = int(r)
		}
		b.errno = e
		return true
	}
}

// read waits for replies and returns how many it got (at least one, unless
// err is set).
func (s *socket) read() (int, error) {
	b := &s.in
	if err := s.rc.Read(b.fn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, fmt.Errorf("recvmmsg: %w", b.errno)
	}
	return b.n, nil
}

// message returns the i-th message of the last read: its bytes, its source
// address and the kernel's receive time (Unix ns; 0 when absent).
func (s *socket) message(i int) (data []byte, from [16]byte, fromOK bool, kernelNs int64) {
	b := &s.in
	h := &b.hdrs[i]
	n := int(h.len)
	if n > recvBufLen {
		n = recvBufLen
	}
	data = b.bufs[i*recvBufLen : i*recvBufLen+n]
	nameLen := int(h.hdr.Namelen)
	if nameLen > sizeofSockaddrInet6 {
		nameLen = sizeofSockaddrInet6
	}
	from, fromOK = sockaddrAddr(b.names[i*sizeofSockaddrInet6 : i*sizeofSockaddrInet6+nameLen])
	oobN := int(h.hdr.Controllen)
	if oobN > oobLen {
		oobN = oobLen
	}
	kernelNs = kernelTimestamp(b.oobs[i*oobLen : i*oobLen+oobN])
	return data, from, fromOK, kernelNs
}

// kernelTimestamp finds SCM_TIMESTAMPNS in control messages; 0 if absent.
func kernelTimestamp(oob []byte) int64 {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_TIMESTAMPNS &&
			l >= syscall.CmsgLen(int(unsafe.Sizeof(syscall.Timespec{}))) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
			return ts.Nano()
		}
		next := syscall.CmsgSpace(l - syscall.CmsgLen(0))
		if next > len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}
