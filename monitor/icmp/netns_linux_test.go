package icmp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tests that need sysctls the host must keep (ping_group_range,
// icmp_echo_ignore_all) run in a network namespace of their own: the test
// creates it, re-executes this test binary inside it (TestNetnsHelper does
// the work there) and deletes it.

const (
	helperEnv    = "QODWATCH_ICMP_NETNS_HELPER"
	parentNetEnv = "QODWATCH_ICMP_PARENT_NETNS" // the namespace the helper must not be in
)

var netnsSeq atomic.Int32

// newNetns creates a network namespace with loopback up, deleted when the
// test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2)")
	}
	name := fmt.Sprintf("qwicmp-%d-%d", os.Getpid(), netnsSeq.Add(1))
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs TestNetnsHelper in namespace ns as helper and returns its
// output; the test fails if the helper does.
func inNetns(t *testing.T, ns, helper string) string {
	t.Helper()
	parent, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("own network namespace: %v", err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestNetnsHelper$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+helper, parentNetEnv+"="+parent)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %q in netns %s: %v\n%s", helper, ns, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestNetnsHelper") {
		t.Fatalf("helper %q did not pass:\n%s", helper, out)
	}
	return string(out)
}

func TestUnprivilegedInNetns(t *testing.T) {
	inNetns(t, newNetns(t), "unprivileged")
}

func TestPermissionDeniedInNetns(t *testing.T) {
	out := inNetns(t, newNetns(t), "denied")
	t.Logf("%s", out[strings.Index(out, "PERMISSION-ERROR"):])
}

func TestLostInNetns(t *testing.T) {
	inNetns(t, newNetns(t), "lost")
}

// TestNetnsHelper is the body of the namespace tests, run by inNetns.
func TestNetnsHelper(t *testing.T) {
	helper := os.Getenv(helperEnv)
	if helper == "" {
		t.Skip("runs inside a network namespace, started by the Netns tests")
	}
	self, err := os.Readlink("/proc/self/ns/net")
	if parent := os.Getenv(parentNetEnv); err != nil || parent == "" || self == parent {
		t.Fatalf("not in a network namespace of its own (%s, parent %q, %v): refusing to change sysctls", self, parent, err)
	}
	switch helper {
	case "unprivileged":
		helperUnprivileged(t)
	case "denied":
		helperDenied(t)
	case "lost":
		helperLost(t)
	default:
		t.Fatalf("unknown helper %q", helper)
	}
}

func writeSysctl(t *testing.T, name, value string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/"+strings.ReplaceAll(name, ".", "/"), []byte(value), 0); err != nil {
		t.Fatalf("sysctl %s=%s: %v", name, value, err)
	}
}

// dropPrivileges becomes nobody, without CAP_NET_RAW.
func dropPrivileges(t *testing.T) {
	t.Helper()
	const nobody = 65534
	if err := syscall.Setgroups(nil); err != nil {
		t.Fatalf("setgroups: %v", err)
	}
	if err := syscall.Setgid(nobody); err != nil {
		t.Fatalf("setgid: %v", err)
	}
	if err := syscall.Setuid(nobody); err != nil {
		t.Fatalf("setuid: %v", err)
	}
}

func helperUnprivileged(t *testing.T) {
	writeSysctl(t, "net.ipv4.ping_group_range", "0 2147483647")
	dropPrivileges(t)
	var perr *PermissionError
	if _, err := New(Options{Recorder: newCollector(), Mode: ModeRaw}); !errors.As(err, &perr) {
		t.Fatalf("raw socket without CAP_NET_RAW: %v, want a PermissionError", err)
	}

	tmpl := Target{Interval: 100 * time.Millisecond, Packets: 2, Spacing: 20 * time.Millisecond}
	targets, ues := loopbackTargets(50, 11, tmpl)
	six := tmpl
	six.UE, six.Addr = "v6", netip.IPv6Loopback()
	targets, ues = append(targets, six), append(ues, six.UE)
	e, col := runEngine(t, ModeAuto, targets)
	if e.Mode() != ModeUnprivileged {
		t.Fatalf("mode %v, want unprivileged", e.Mode())
	}
	col.waitFor(t, 10*time.Second, "4 replies from each target over ping sockets", func() bool {
		return col.every(ues, func(u ueTally) bool { return u.replies >= 4 })
	})
	if c := e.Counters(); c.Lost != 0 || c.SendErrors != 0 || c.Unmatched != 0 || c.Duplicates != 0 {
		t.Fatalf("counters %+v: want no loss, error, stranger or duplicate", c)
	}
	for _, ue := range ues {
		if rtt := col.tally(ue).maxRTT; rtt <= 0 || rtt >= time.Second {
			t.Fatalf("%s: max RTT %v, want within (0, 1s)", ue, rtt)
		}
	}
}

func helperDenied(t *testing.T) {
	writeSysctl(t, "net.ipv4.ping_group_range", "1 0")
	dropPrivileges(t)
	_, err := New(Options{Recorder: newCollector()})
	var perr *PermissionError
	if !errors.As(err, &perr) {
		t.Fatalf("New without permission: %v, want a PermissionError", err)
	}
	msg := err.Error()
	for _, want := range []string{"net.ipv4.ping_group_range", `(now "1 0";`, "gid 65534", "CAP_NET_RAW"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	fmt.Println("PERMISSION-ERROR:", msg)
}

func helperLost(t *testing.T) {
	// IPv4 echo requests go unanswered here; IPv6 ones are answered.
	writeSysctl(t, "net.ipv4.icmp_echo_ignore_all", "1")
	tmpl := Target{Interval: 100 * time.Millisecond, Packets: 2, Spacing: 20 * time.Millisecond, Timeout: 200 * time.Millisecond}
	targets, lost := loopbackTargets(20, 12, tmpl)
	six := tmpl
	six.UE, six.Addr = "v6", netip.IPv6Loopback()
	e, col := runEngine(t, ModeAuto, append(targets, six))
	col.waitFor(t, 10*time.Second, "4 losses per IPv4 target and 4 IPv6 replies", func() bool {
		return col.every(lost, func(u ueTally) bool { return u.lost >= 4 }) &&
			col.tally("v6").replies >= 4
	})
	for _, ue := range lost {
		if u := col.tally(ue); u.replies != 0 || u.errs != 0 {
			t.Fatalf("%s: %d replies, %d errors from an address that ignores echo requests", ue, u.replies, u.errs)
		}
	}
	if u := col.tally("v6"); u.lost != 0 {
		t.Fatalf("IPv6: %d lost", u.lost)
	}
	if c := e.Counters(); c.Late != 0 || c.Lost < 80 {
		t.Fatalf("counters %+v: want >= 80 lost, none late", c)
	}
}
