// Command conns measures what strangers' connections cost the daemon
// (issue 8): it starts the real qodwatch binary, opens -n connections to its
// notification receiver that send nothing ("idle"), then -slow connections
// that send a POST's headers and one byte of a promised body ("slow"), and
// prints the daemon's RSS and open file descriptors with them open, and how
// many the daemon closed within -wait.
//
//	go run ./bench/conns                    # 4,000 idle, 300 slow, 20 s each
//	go run ./bench/conns -bin ./qodwatch    # a binary built beforehand
//
// Before the server limits 4,000 idle connections held 4,000 descriptors
// and ~28 MB; now at most --notifications.max-connections are accepted and
// the rest wait in the kernel's accept queue (net.core.somaxconn bounds it).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

const token = "conns-bench-t0ken-abcdefghijkl"

func main() {
	bin := flag.String("bin", "", "qodwatch binary (default: go build ./cmd/qodwatch)")
	idle := flag.Int("n", 4000, "idle connections")
	slow := flag.Int("slow", 300, "slow-body connections")
	wait := flag.Duration("wait", 20*time.Second, "how long each kind is held open")
	flag.Parse()
	dir, err := os.MkdirTemp("", "qodwatch-conns-")
	check(err)
	defer os.RemoveAll(dir)
	if *bin == "" {
		*bin = filepath.Join(dir, "qodwatch")
		out, err := exec.Command("go", "build", "-o", *bin, "./cmd/qodwatch").CombinedOutput()
		check(fmtErr(err, out))
	}
	web, notify := freePort(), freePort()
	check(os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600))
	cfg := fmt.Sprintf(`dry_run: true
state_dir: %s
notifications: {public_url: "http://%s/qodwatch", listen: %q, token_file: %s}
web: {listen: %q}
defaults: {application_server: {ipv4: 203.0.113.10}, rule: r}
ues: [{name: ue-1, ipv4: 10.0.0.1, target: 127.0.0.1, probes: [{tcp: {address: "127.0.0.1:1", interval: 10s}}]}]
rules:
  r: {breach: {any: ["loss > 50%%"], for: 1s}, recover: {all: ["loss < 10%%"], for: 1s}, qos: QOS_E, duration: 1h}
`, filepath.Join(dir, "state"), notify, notify, filepath.Join(dir, "token"), web)
	check(os.WriteFile(filepath.Join(dir, "qodwatch.yaml"), []byte(cfg), 0o600))
	cmd := exec.Command(*bin, "run", "--config.file", filepath.Join(dir, "qodwatch.yaml"))
	check(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get("http://" + web + "/-/healthy"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("qodwatch did not come up"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	fmt.Printf("started: rss %s, fds %d\n", rss(pid), fds(pid))
	hold(pid, notify, *idle, "idle", "", *wait)
	hold(pid, notify, *slow, "slow", "POST /qodwatch/tx/x/notifications?apikey="+token+" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{", *wait)
}

// hold opens n connections that send first, reports after 3 s and after
// wait, and closes them.
func hold(pid int, addr string, n int, kind, first string, wait time.Duration) {
	var closed atomic.Int32
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Printf("dial after %d: %v\n", len(conns), err)
			break
		}
		if first != "" {
			_, _ = c.Write([]byte(first))
		}
		conns = append(conns, c)
		go func() {
			r := bufio.NewReader(c)
			for {
				if _, err := r.ReadByte(); err != nil {
					closed.Add(1)
					return
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	fmt.Printf("%d %s connections, 3 s: rss %s, fds %d, closed by qodwatch %d\n", len(conns), kind, rss(pid), fds(pid), closed.Load())
	time.Sleep(wait - 3*time.Second)
	fmt.Printf("%d %s connections, %v: rss %s, fds %d, closed by qodwatch %d\n", len(conns), kind, wait, rss(pid), fds(pid), closed.Load())
	for _, c := range conns {
		c.Close()
	}
}

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func fds(pid int) int {
	e, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	check(err)
	return len(e)
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().String()
}

func fmtErr(err error, out []byte) error {
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "conns:", err)
		os.Exit(1)
	}
}
