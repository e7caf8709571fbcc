package icmp

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

var lo = netip.MustParseAddr("127.0.0.1")

func TestTargetDefaults(t *testing.T) {
	got, err := Target{UE: "cam-7", Addr: netip.MustParseAddr("::ffff:10.1.2.3")}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Target{UE: "cam-7", Addr: netip.MustParseAddr("10.1.2.3"), Interval: time.Second,
		Packets: 3, Spacing: 100 * time.Millisecond, Timeout: time.Second}
	if got != want {
		t.Fatalf("normalized %+v, want %+v", got, want)
	}
	// The default spacing shrinks to fit a short interval.
	got, err = Target{UE: "a", Addr: lo, Interval: 200 * time.Millisecond, Packets: 4}.normalize()
	if err != nil || got.Spacing != 50*time.Millisecond {
		t.Fatalf("spacing %v, err %v; want 50ms", got.Spacing, err)
	}
}

func TestTargetValidateErrors(t *testing.T) {
	cases := []struct {
		t    Target
		want string
	}{
		{Target{Addr: lo}, "icmp target: empty UE name"},
		{Target{UE: "a"}, `icmp target "a": no address`},
		{Target{UE: "a", Addr: lo, Source: netip.MustParseAddr("::1")},
			`icmp target "a": source ::1 and address 127.0.0.1 are of different IP versions`},
		{Target{UE: "a", Addr: lo, Interval: -time.Second}, `icmp target "a": negative interval -1s`},
		{Target{UE: "a", Addr: lo, Packets: -1}, `icmp target "a": negative packet count -1`},
		{Target{UE: "a", Addr: lo, Spacing: -time.Millisecond}, `icmp target "a": negative spacing -1ms`},
		{Target{UE: "a", Addr: lo, Timeout: -time.Millisecond}, `icmp target "a": negative timeout -1ms`},
		{Target{UE: "a", Addr: lo, Interval: time.Second, Packets: 5, Spacing: 250 * time.Millisecond},
			`icmp target "a": 5 packets 250ms apart do not fit in the interval 1s`},
	}
	for _, c := range cases {
		err := c.t.Validate()
		if err == nil || err.Error() != c.want {
			t.Errorf("Validate(%+v) = %v, want %q", c.t, err, c.want)
		}
	}
	if err := (Target{UE: "a", Addr: lo, Packets: 1, Interval: time.Second, Spacing: time.Hour}).Validate(); err != nil {
		t.Errorf("one packet with any spacing: %v", err)
	}
}

func TestPermissionErrorMessage(t *testing.T) {
	base := PermissionError{PingGroupRange: "1 0", GID: 1000, Groups: []int{1000, 27}, Err: syscall.EPERM}
	unpriv := `unprivileged ICMP needs the process's group (gid 1000, groups [1000 27]) within sysctl net.ipv4.ping_group_range (now "1 0"; e.g. sysctl -w net.ipv4.ping_group_range="1000 1000")`
	raw := `raw ICMP needs capability CAP_NET_RAW (e.g. setcap cap_net_raw=ep on the binary, or AmbientCapabilities=CAP_NET_RAW in the systemd unit)`
	cases := []struct {
		mode Mode
		want string
	}{
		{ModeAuto, "open ICMP socket: permission denied: " + unpriv + ", or " + raw + ": operation not permitted"},
		{ModeUnprivileged, "open ICMP socket: permission denied: " + unpriv + ": operation not permitted"},
		{ModeRaw, "open ICMP socket: permission denied: " + raw + ": operation not permitted"},
	}
	for _, c := range cases {
		e := base
		e.Mode = c.mode
		if got := e.Error(); got != c.want {
			t.Errorf("mode %v:\n got %s\nwant %s", c.mode, got, c.want)
		}
		if !errors.Is(&e, syscall.EPERM) {
			t.Errorf("mode %v: does not unwrap to EPERM", c.mode)
		}
	}
	e := base
	e.PingGroupRange = ""
	if got := e.Error(); !strings.Contains(got, "(now unreadable;") {
		t.Errorf("unreadable sysctl: %s", got)
	}
}

func TestNewPermissionErrorDescribesProcess(t *testing.T) {
	e := newPermissionError(ModeAuto, syscall.EACCES)
	if e.GID != syscall.Getegid() {
		t.Fatalf("GID %d, want %d", e.GID, syscall.Getegid())
	}
	if !isPermission(e.Err) || isPermission(syscall.EAFNOSUPPORT) {
		t.Fatal("isPermission misclassifies")
	}
}
