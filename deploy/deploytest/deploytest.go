// Package deploytest has what the tests of deploy/ share: the real
// qodwatch binary built as the deploy files ship it, network namespaces,
// directories a service user can reach, and a notify socket that reads
// what the daemon tells systemd. Only tests import it.
package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RequireRoot skips a test that needs root (setuid, chown, network
// namespaces), or fails it when $CI is set: CI runs as root, and a skipped
// deploy test there would hide a broken deploy file.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI is set")
	}
	t.Skip("needs root (setuid, chown, network namespaces)")
}

// RequireTool is RequireRoot for a command on PATH.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI is set (.ci/run installs it)", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// RepoRoot is the module's root directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// StaticBuildEnv and StaticBuildFlags are how the release binary is built
// (the Dockerfile uses the same): static, no cgo, no local paths.
var (
	StaticBuildEnv   = []string{"CGO_ENABLED=0"}
	StaticBuildFlags = []string{"-trimpath", "-ldflags=-s -w"}
)

// BuildQodwatch builds ./cmd/qodwatch as a release is built into dir and
// returns the binary's path.
func BuildQodwatch(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "qodwatch")
	args := append([]string{"build"}, StaticBuildFlags...)
	args = append(args, "-o", bin, "./cmd/qodwatch")
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), StaticBuildEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// OpenDir is a fresh directory that any user can traverse (t.TempDir is
// 0700 and so is its parent): a service user must reach the files a test
// lays out inside it, with the modes the test gives them.
func OpenDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// WriteFile writes data with mode and owner uid:gid, making parents 0755.
func WriteFile(t testing.TB, path string, data []byte, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	Own(t, path, mode, uid, gid)
}

// MkdirOwned makes dir with mode and owner uid:gid (parents 0755).
func MkdirOwned(t testing.TB, dir string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	Own(t, dir, mode, uid, gid)
}

// Own sets path's mode (umask aside) and owner.
func Own(t testing.TB, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

var netnsSeq atomic.Int32

// Netns creates a network namespace named prefix-PID-N with loopback up,
// deleted when the test ends.
func Netns(t testing.TB, prefix string) string {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "ip")
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), netnsSeq.Add(1))
	IP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// IP runs the ip command and fails the test if it fails.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Sysctl sets a sysctl inside namespace ns only.
func Sysctl(t testing.TB, ns, key, value string) {
	t.Helper()
	IP(t, "netns", "exec", ns, "sysctl", "-q", "-w", key+"="+value)
}

// NotifySocket is the service manager's end of sd_notify: a datagram
// socket the daemon under test writes its states to.
type NotifySocket struct {
	Path string
	conn *net.UnixConn
	seen []string
}

// ListenNotify opens a notify socket in dir that any user may write to,
// as systemd's /run/systemd/notify is.
func ListenNotify(t testing.TB, dir string) *NotifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	return &NotifySocket{Path: path, conn: c}
}

// Await reads datagrams until one has the line want ("READY=1") and
// returns the lines seen up to it. It fails after timeout (a bound on a
// wait for an event, not a sleep), or as soon as exited is closed with
// nothing left to read: a daemon that died will not send it.
func (n *NotifySocket) Await(t testing.TB, want string, timeout time.Duration, exited <-chan struct{}) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		// Short reads, so an exit is noticed; what is queued is read first.
		slice := time.Now().Add(100 * time.Millisecond)
		if slice.After(deadline) {
			slice = deadline
		}
		if err := n.conn.SetReadDeadline(slice); err != nil {
			t.Fatal(err)
		}
		k, err := n.conn.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-exited:
				t.Fatalf("the daemon exited before %s; it sent %q", want, n.seen)
			default:
			}
			if !time.Now().Before(deadline) {
				t.Fatalf("no %s within %v; the daemon sent %q", want, timeout, n.seen)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(buf[:k]), "\n")
		n.seen = append(n.seen, lines...)
		for _, l := range lines {
			if l == want {
				return n.seen
			}
		}
	}
}

// SyncBuffer is an io.Writer a started process's output can be copied
// into while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
