package icmp

import (
	"encoding/binary"
	"testing"
)

// reply turns an echo request built by buildEcho into the echo reply a host
// would send back.
func reply(req []byte, v6 bool) []byte {
	b := append([]byte(nil), req...)
	if v6 {
		b[0] = icmp6EchoReply
	} else {
		b[0] = icmp4EchoReply
		b[2], b[3] = 0, 0
		binary.BigEndian.PutUint16(b[2:], checksum(b))
	}
	return b
}

func TestEchoRoundTrip(t *testing.T) {
	want := echo{id: 0xbeef, serial: 0x1234_5678_9abc_def0, token: 0x0102_0304_0506_0708, sent: 987654321}
	for _, v6 := range []bool{false, true} {
		req := make([]byte, packetLen)
		buildEcho(req, v6, want)
		if !v6 && checksum(req) != 0 {
			t.Fatalf("v4 request checksum does not verify: %#04x", checksum(req))
		}
		if v6 && (req[0] != icmp6EchoRequest || req[2] != 0 || req[3] != 0) {
			t.Fatalf("v6 request: type %d checksum %x%x, want type 128 and a zero checksum for the kernel", req[0], req[2], req[3])
		}
		if !v6 && req[0] != icmp4EchoRequest {
			t.Fatalf("v4 request type %d", req[0])
		}
		got, seq, ok := parseEchoReply(reply(req, v6), v6, false)
		if !ok || got != want || seq != uint16(want.serial) {
			t.Fatalf("v6=%v: parsed %+v seq %#x ok %v, want %+v seq %#x", v6, got, seq, ok, want, uint16(want.serial))
		}
	}
}

func TestParseEchoReplyWithIPHeader(t *testing.T) {
	req := make([]byte, packetLen)
	want := echo{id: 7, serial: 42, token: 99, sent: 5}
	buildEcho(req, false, want)
	for _, ihl := range []int{20, 24} {
		ip := make([]byte, ihl)
		ip[0] = 0x40 | byte(ihl/4)
		pkt := append(ip, reply(req, false)...)
		got, _, ok := parseEchoReply(pkt, false, true)
		if !ok || got != want {
			t.Fatalf("IHL %d: parsed %+v ok %v, want %+v", ihl, got, ok, want)
		}
	}
}

func TestParseEchoReplyRejects(t *testing.T) {
	req := make([]byte, packetLen)
	buildEcho(req, false, echo{id: 1, serial: 2, token: 3, sent: 4})
	good := reply(req, false)
	cases := map[string]struct {
		b            []byte
		v6, withIPHd bool
	}{
		"request, not reply":   {req, false, false},
		"v6 reply on v4":       {reply(req, true), false, false},
		"v4 reply on v6":       {good, true, false},
		"short":                {good[:minReply-1], false, false},
		"non-zero code":        {append([]byte{0, 1}, good[2:]...), false, false},
		"IP header missing":    {good, false, true},
		"IP header truncated":  {[]byte{0x4f, 0, 0, 0}, false, true},
		"IP version 6 in raw4": {append([]byte{0x65, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, good...), false, true},
		"empty":                {nil, false, false},
	}
	for name, c := range cases {
		if _, _, ok := parseEchoReply(c.b, c.v6, c.withIPHd); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := checksum(b); got != ^uint16(0xddf2) {
		t.Fatalf("checksum %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	if got := checksum([]byte{0xab}); got != ^uint16(0xab00) {
		t.Fatalf("odd length: %#04x", got)
	}
}
