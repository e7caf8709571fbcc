package icmp

import "encoding/binary"

// Echo packet layout. The payload is as long as ping's and fping's default
// (56 bytes), so the kernel work per packet compares like for like.
//
//	0  type, code, checksum, id, sequence (ICMP header)
//	8  engine token   (8 bytes, random per engine)
//	16 serial         (8 bytes, unique per packet; low 16 bits = sequence)
//	24 send time      (8 bytes, engine-monotonic nanoseconds)
//	32 zero padding
const (
	headerLen  = 8
	payloadLen = 56
	packetLen  = headerLen + payloadLen

	offToken  = 8
	offSerial = 16
	offSent   = 24
	minReply  = offSent + 8

	icmp4EchoRequest = 8
	icmp4EchoReply   = 0
	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
)

// echo is what identifies one echo request: the fields written into the
// packet and read back from the reply.
type echo struct {
	id     uint16
	serial uint64 // sequence on the wire is uint16(serial)
	token  uint64
	sent   int64
}

// buildEcho writes an echo request into b (len(b) >= packetLen). Bytes past
// the send time are left as they are; callers reuse zeroed buffers.
func buildEcho(b []byte, v6 bool, e echo) {
	b = b[:packetLen]
	if v6 {
		b[0] = icmp6EchoRequest
	} else {
		b[0] = icmp4EchoRequest
	}
	b[1] = 0
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:], e.id)
	binary.BigEndian.PutUint16(b[6:], uint16(e.serial))
	binary.BigEndian.PutUint64(b[offToken:], e.token)
	binary.BigEndian.PutUint64(b[offSerial:], e.serial)
	binary.BigEndian.PutUint64(b[offSent:], uint64(e.sent))
	if !v6 {
		// The kernel computes the ICMPv6 checksum (it covers a pseudo
		// header only it knows) and that of ping sockets, but not that
		// of raw IPv4 sockets.
		binary.BigEndian.PutUint16(b[2:], checksum(b))
	}
}

// parseEchoReply reads an echo reply. withIPHeader is set for raw IPv4
// sockets, which receive the IP header too. ok is false for anything that
// is not an echo reply long enough to carry our payload.
func parseEchoReply(b []byte, v6, withIPHeader bool) (e echo, seq uint16, ok bool) {
	if withIPHeader {
		if len(b) < 20 || b[0]>>4 != 4 {
			return e, 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return e, 0, false
		}
		b = b[ihl:]
	}
	if len(b) < minReply || b[1] != 0 {
		return e, 0, false
	}
	if v6 && b[0] != icmp6EchoReply || !v6 && b[0] != icmp4EchoReply {
		return e, 0, false
	}
	e.id = binary.BigEndian.Uint16(b[4:])
	seq = binary.BigEndian.Uint16(b[6:])
	e.token = binary.BigEndian.Uint64(b[offToken:])
	e.serial = binary.BigEndian.Uint64(b[offSerial:])
	e.sent = int64(binary.BigEndian.Uint64(b[offSent:]))
	return e, seq, true
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
