package icmp

import (
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// Probe marking (issue 10): an ICMP target with a TOS sends its echo
// requests with it, on the wire; an unmarked one beside it does not. A
// raw socket of our own reads the echo requests looped back, IP header
// included.
func TestTOSIsOnTheWire(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root for a raw socket that reads echo requests, and CI is set")
		}
		t.Skip("needs root for a raw socket that reads echo requests")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	marked, plain := netip.MustParseAddr("127.0.61.1"), netip.MustParseAddr("127.0.61.2")
	tmpl := Target{Interval: 50 * time.Millisecond, Packets: 1}
	m, p := tmpl, tmpl
	m.UE, m.Addr, m.TOS = "marked", marked, 0xb8 // DSCP 46, EF
	p.UE, p.Addr = "plain", plain
	runEngine(t, ModeAuto, []Target{m, p})
	want := map[netip.Addr]byte{marked: 0xb8, plain: 0}
	seen := map[netip.Addr]bool{}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < len(want) && time.Now().Before(deadline) {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil || n < 28 {
			continue // the receive timeout: look at the deadline again
		}
		ihl := int(buf[0]&0x0f) * 4
		dst := netip.AddrFrom4([4]byte(buf[16:20]))
		tos, ok := want[dst]
		if !ok || n < ihl+8 || buf[ihl] != 8 { // echo requests to our targets only
			continue
		}
		if got := buf[1] &^ 3; got != tos { // the low two bits are ECN's
			t.Fatalf("echo request to %s carries TOS %#02x, want %#02x", dst, got, tos)
		}
		seen[dst] = true
	}
	if len(seen) < len(want) {
		t.Fatalf("saw echo requests to %v only, want both targets", seen)
	}
}
