package icmp

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"unsafe"

	xicmp "golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const (
	maxSendBatch = 256 // messages per sendmmsg (which runs without yielding the P)
	maxRecvBatch = 256 // messages per recvmmsg
	recvBufLen   = 256 // an IPv4 header (<= 60) and our reply (64) fit
	oobLen       = 64  // SCM_TIMESTAMPNS (32 bytes) and SO_RXQ_OVFL (24)

	// Socket buffers: a receive queue for a few hundred milliseconds of
	// replies at 30,000/s, so a GC pause or a busy core loses nothing.
	rcvBufBytes = 8 << 20
	sndBufBytes = 4 << 20
	// Below this the receive buffer is too small for large fleets.
	minGoodRcvBuf = 1 << 20
)

// errClosed is returned by reads once the socket is being closed.
var errClosed = net.ErrClosed

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel transferred,
// padded to pointer alignment.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// pollFd is struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

const (
	pollIn  = 0x1
	pollOut = 0x4
)

// sysSocket is the Linux part of a socket.
//
// The socket is opened and configured through golang.org/x/net/icmp, then
// its descriptor is taken out of the Go runtime's poller (duplicated, and
// the original closed): a descriptor in the poller wakes a thread for every
// reply that arrives, whether anyone reads or not, and those wakeups would
// cost more than the packets. The engine reads instead when it chooses to
// (see Engine.receive), and waits in ppoll only when it has nothing in
// flight.
type sysSocket struct {
	fd     int
	wakeR  int // pipe that ends a ppoll wait at shutdown
	wakeW  int
	closed atomic.Bool
	out    sendBatch
	in     recvBatch
	peek   peeker
}

type sendBatch struct {
	bufs    []byte
	iovs    []syscall.Iovec
	hdrs    []mmsghdr
	serials []uint64
	targets []*target
	n       int
	failed  []sendFailure
	calls   uint64
}

type recvBatch struct {
	// reading is set from just before recvmmsg until the messages it
	// returned have been matched, so the scheduler knows when a reply
	// may have left the kernel's queue without being accounted yet.
	reading atomic.Bool

	bufs  []byte
	names []byte
	oobs  []byte
	iovs  []syscall.Iovec
	hdrs  []mmsghdr
	n     int
	calls uint64
}

// peeker asks the kernel, without taking it, whether a message is queued.
type peeker struct {
	buf [1]byte
	iov syscall.Iovec
	hdr mmsghdr
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
	defer c.Close()
	s.v6 = s.key.v6
	if err := s.setup(c, mode, rawID); err != nil {
		return fmt.Errorf("set up %s ICMP socket (%s) on %s: %w", mode, network, addr, err)
	}
	s.opened = true
	return nil
}

func (s *socket) setup(c *xicmp.PacketConn, mode Mode, rawID uint16) error {
	var pc net.PacketConn
	if s.v6 {
		p6 := c.IPv6PacketConn()
		pc = p6.PacketConn
		if mode == ModeRaw {
			// Only echo replies reach us; without this a raw socket also
			// gets our own requests looped back and every other ICMPv6.
			var f ipv6.ICMPFilter
			f.SetAll(true)
			f.Accept(ipv6.ICMPTypeEchoReply)
			if err := p6.SetICMPFilter(&f); err != nil {
				return fmt.Errorf("set ICMPv6 filter: %w", err)
			}
		}
		if s.key.tos != 0 {
			if err := p6.SetTrafficClass(int(s.key.tos)); err != nil {
				return fmt.Errorf("set traffic class %#x: %w", s.key.tos, err)
			}
		}
	} else {
		p4 := c.IPv4PacketConn()
		pc = p4.PacketConn
		if mode == ModeRaw {
			var f ipv4.ICMPFilter
			f.SetAll(true)
			f.Accept(ipv4.ICMPTypeEchoReply)
			if err := p4.SetICMPFilter(&f); err != nil {
				return fmt.Errorf("set ICMP filter: %w", err)
			}
		}
		if s.key.tos != 0 {
			if err := p4.SetTOS(int(s.key.tos)); err != nil {
				return fmt.Errorf("set TOS %#x: %w", s.key.tos, err)
			}
		}
	}
	if mode == ModeRaw {
		s.checkID = true
		s.id = rawID
		s.withIPHeader = !s.v6
	} else if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
		s.id = uint16(ua.Port) // the kernel's echo id for this socket
	}
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return errors.New("socket gives no access to its file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("access file descriptor: %w", err)
	}
	var optErr error
	fd := -1
	err = rc.Control(func(f uintptr) {
		optErr = s.setOptions(int(f))
		if optErr != nil {
			return
		}
		// A copy of the descriptor that outlives c (closed by open).
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			optErr = fmt.Errorf("duplicate descriptor: %w", e)
			return
		}
		fd = int(r)
	})
	if err == nil {
		err = optErr
	}
	if err != nil {
		return err
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("create wake-up pipe: %w", err)
	}
	s.fd, s.wakeR, s.wakeW = fd, p[0], p[1]
	s.out.init()
	s.in.init()
	s.peek.init()
	return nil
}

func (s *socket) setOptions(fd int) error {
	// The FORCE variants pass net.core.rmem_max/wmem_max when we hold
	// CAP_NET_ADMIN; otherwise the plain ones get what the limit allows.
	if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, rcvBufBytes) != nil {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBufBytes)
	}
	if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, sndBufBytes) != nil {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, sndBufBytes)
	}
	s.rcvBuf, _ = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	// Kernel receive timestamps: the RTT then excludes how long we took to
	// read the reply.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("enable SO_TIMESTAMPNS: %w", err)
	}
	// The count of replies the kernel dropped on a full queue comes with
	// each message: a loss the host caused is then not blamed on the UE.
	// Without it (an old kernel) such losses count as the UE's.
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
	return nil
}

// wake ends a read waiting in ppoll; reads fail from then on.
func (s *socket) wake() {
	if !s.opened || s.closed.Swap(true) {
		return
	}
	b := [1]byte{1}
	_, _ = syscall.Write(s.wakeW, b[:])
}

// close releases the descriptors; call wake first and wait for readers.
func (s *socket) close() error {
	if !s.opened {
		return nil
	}
	s.wake()
	s.opened = false
	err := syscall.Close(s.fd)
	syscall.Close(s.wakeR)
	syscall.Close(s.wakeW)
	return err
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
		b.calls++
		r, _, e := syscall.RawSyscall6(sysSENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&b.hdrs[off])), uintptr(b.n-off), 0, 0, 0)
		switch e {
		case 0:
			off += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			// The send buffer is full: wait until it drains a little.
			if err := s.wait(pollOut); err != nil {
				for i := off; i < b.n; i++ {
					b.failed = append(b.failed, sendFailure{i, err})
				}
				return b.failed
			}
		default:
			// sendmmsg reports the error of the first message it could
			// not send; skip that one and go on with the rest.
			b.failed = append(b.failed, sendFailure{off, e})
			off++
		}
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
func (s *socket) resetBatch() {
	b := &s.out
	for i := 0; i < b.n; i++ {
		b.targets[i] = nil
		b.hdrs[i].hdr.Name = nil
	}
	b.n = 0
}

// wait blocks in ppoll until the socket is ready for events or is woken
// for shutdown.
func (s *socket) wait(events int16) error {
	fds := [2]pollFd{{fd: int32(s.fd), events: events}, {fd: int32(s.wakeR), events: pollIn}}
	for {
		if s.closed.Load() {
			return errClosed
		}
		_, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 2, 0, 0, 0, 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0:
			return fmt.Errorf("ppoll: %w", e)
		case fds[1].revents != 0 || s.closed.Load():
			return errClosed
		case fds[0].revents != 0:
			return nil
		}
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

// doneReading says the messages of the last read have been matched (or
// there were none); called with Engine.mu held.
func (s *socket) doneReading() { s.in.reading.Store(false) }

// readNow reads the replies queued now, without waiting; n is 0 when
// there are none.
func (s *socket) readNow() (int, error) {
	b := &s.in
	if s.closed.Load() {
		return 0, errClosed
	}
	b.rearm()
	b.n = 0
	b.reading.Store(true)
	for {
		b.calls++
		r, _, e := syscall.RawSyscall6(sysRECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(len(b.hdrs)), syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			b.n = int(r)
			return b.n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		}
		return 0, fmt.Errorf("recvmmsg: %w", e)
	}
}

// read waits for replies and returns how many it got (at least one, unless
// err is set).
func (s *socket) read() (int, error) {
	for {
		n, err := s.readNow()
		if n > 0 || err != nil {
			return n, err
		}
		s.in.reading.Store(false)
		if err := s.wait(pollIn); err != nil {
			return 0, err
		}
	}
}

// quiet reports whether no reply can be waiting to be matched: none queued
// in the kernel and none read but not yet matched. Called with Engine.mu
// held, which the receive goroutine needs to match; the order of the two
// checks matters (see Engine.expire).
func (s *socket) quiet() bool {
	return !s.peek.queued(s.fd) && !s.in.reading.Load()
}

func (p *peeker) init() {
	p.iov.Base = &p.buf[0]
	p.iov.SetLen(len(p.buf))
	p.hdr.hdr.Iov = &p.iov
	p.hdr.hdr.Iovlen = 1
}

func (p *peeker) queued(fd int) bool {
	for {
		p.hdr.hdr.Namelen = 0
		p.hdr.hdr.Flags = 0
		_, _, e := syscall.RawSyscall6(sysRECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&p.hdr)), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		return e == 0
	}
}

// message returns the i-th message of the last read: its bytes, its source
// address, the kernel's receive time (Unix ns; 0 when absent) and the
// socket's count of dropped replies (0 when none or absent).
func (s *socket) message(i int) (data []byte, from [16]byte, fromOK bool, kernelNs int64, drops uint32) {
	b := &s.in
	h := &b.hdrs[i]
	n := min(int(h.len), recvBufLen)
	data = b.bufs[i*recvBufLen : i*recvBufLen+n]
	nameLen := min(int(h.hdr.Namelen), sizeofSockaddrInet6)
	from, fromOK = sockaddrAddr(b.names[i*sizeofSockaddrInet6 : i*sizeofSockaddrInet6+nameLen])
	oobN := min(int(h.hdr.Controllen), oobLen)
	kernelNs, drops = controlInfo(b.oobs[i*oobLen : i*oobLen+oobN])
	return data, from, fromOK, kernelNs, drops
}

// controlInfo finds SCM_TIMESTAMPNS (the receive time, Unix ns) and
// SO_RXQ_OVFL (the socket's dropped count) in control messages; 0 for
// what is absent.
func controlInfo(oob []byte) (kernelNs int64, drops uint32) {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return kernelNs, drops
		}
		switch {
		case h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_TIMESTAMPNS &&
			l >= syscall.CmsgLen(int(unsafe.Sizeof(syscall.Timespec{}))):
			ts := (*syscall.Timespec)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
			kernelNs = ts.Nano()
		case h.Level == syscall.SOL_SOCKET && h.Type == syscall.SO_RXQ_OVFL && l >= syscall.CmsgLen(4):
			drops = *(*uint32)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
		}
		next := syscall.CmsgSpace(l - syscall.CmsgLen(0))
		if next > len(oob) {
			return kernelNs, drops
		}
		oob = oob[next:]
	}
	return kernelNs, drops
}
