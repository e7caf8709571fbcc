package monitor

import (
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Probe marking (issue 10): the TCP, HTTP and throughput probes' packets
// carry their TOS on the wire, unmarked ones none. A raw socket of our own
// reads the TCP segments looped back, IP header included, and the SYN to
// each server port says what the probe's dialer set.
func TestProbeTOSIsOnTheWire(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root for a raw socket that reads TCP segments, and CI is set")
		}
		t.Skip("needs root for a raw socket that reads TCP segments")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	// synTOS returns the TOS of the first SYN to port after the probe ran.
	synTOS := func(port int) byte {
		t.Helper()
		buf := make([]byte, 1500)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil || n < 40 {
				continue // the receive timeout
			}
			ihl := int(buf[0]&0x0f) * 4
			if n < ihl+14 || int(binary.BigEndian.Uint16(buf[ihl+2:])) != port || buf[ihl+13]&0x12 != 0x02 {
				continue // not a SYN to port
			}
			return buf[1] &^ 3 // the low two bits are ECN's
		}
		t.Fatalf("no SYN to port %d seen", port)
		return 0
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 128<<10)) }))
	defer srv.Close()
	_, portText, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)
	e := realEnv()
	ue := UE{Name: "a", Addr: "127.0.0.1"}
	for _, tc := range []struct {
		name  string
		probe Probe
		tos   byte
	}{
		{"tcp marked", TCP{Address: srv.Listener.Addr().String(), Interval: time.Minute, TOS: 0xb8}, 0xb8},
		{"tcp unmarked", TCP{Address: srv.Listener.Addr().String(), Interval: time.Minute}, 0},
		{"http marked", HTTP{URL: srv.URL, Interval: time.Minute, TOS: 0x28}, 0x28},
		{"http unmarked", HTTP{URL: srv.URL, Interval: time.Minute}, 0},
		{"throughput marked", Throughput{URL: srv.URL, Interval: time.Minute, MaxBytes: 64 << 10, TOS: 0x20}, 0x20},
		{"upload marked", Throughput{URL: srv.URL, Interval: time.Minute, MaxBytes: 64 << 10, Upload: true, TOS: 0x48}, 0x48},
	} {
		// A loopback transfer may be too short for a rate: only the
		// connection matters here.
		if o := runOnce(t, e, tc.probe, ue); o.Err != nil && tc.probe.Kind() != KindThroughput {
			t.Fatalf("%s: %v", tc.name, o.Err)
		}
		if got := synTOS(port); got != tc.tos {
			t.Errorf("%s: SYN carries TOS %#02x, want %#02x", tc.name, got, tc.tos)
		}
	}
}
