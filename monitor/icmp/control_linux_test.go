package icmp

import (
	"syscall"
	"testing"
	"unsafe"
)

// A reply's control messages carry its kernel receive time and, with
// SO_RXQ_OVFL on, the socket's count of replies dropped on a full queue:
// both are found, in either order, and a message without them gives 0.
func TestControlInfo(t *testing.T) {
	cmsg := func(typ int32, data []byte) []byte {
		b := make([]byte, syscall.CmsgSpace(len(data)))
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = syscall.SOL_SOCKET, typ
		h.SetLen(syscall.CmsgLen(len(data)))
		copy(b[syscall.CmsgLen(0):], data)
		return b
	}
	ts := syscall.NsecToTimespec(1_700_000_000_123_456_789)
	stamp := cmsg(syscall.SO_TIMESTAMPNS, unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts)))
	drops := uint32(4242)
	ovfl := cmsg(syscall.SO_RXQ_OVFL, unsafe.Slice((*byte)(unsafe.Pointer(&drops)), 4))
	if len(stamp)+len(ovfl) > oobLen {
		t.Fatalf("both control messages take %d bytes, more than the %d read", len(stamp)+len(ovfl), oobLen)
	}
	for _, oob := range [][]byte{append(append([]byte{}, stamp...), ovfl...), append(append([]byte{}, ovfl...), stamp...)} {
		ns, n := controlInfo(oob)
		if ns != ts.Nano() || n != drops {
			t.Errorf("controlInfo = %d, %d; want %d, %d", ns, n, ts.Nano(), drops)
		}
	}
	if ns, n := controlInfo(stamp); ns != ts.Nano() || n != 0 {
		t.Errorf("timestamp alone: %d, %d", ns, n)
	}
	if ns, n := controlInfo(nil); ns != 0 || n != 0 {
		t.Errorf("nothing: %d, %d", ns, n)
	}
}
