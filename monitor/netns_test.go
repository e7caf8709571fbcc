package monitor

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The namespace test runs its server and its probe in child processes (the
// test binary again, under `ip netns exec`), so each socket is made in the
// right namespace without touching this process's threads.
const (
	envRole    = "QODWATCH_NETNS_ROLE" // server | probe
	envListen  = "QODWATCH_NETNS_LISTEN"
	envURL     = "QODWATCH_NETNS_URL"
	readyLine  = "netns-server-ready"
	resultLine = "netns-probe-result "
)

// The addresses live only inside the test's own namespaces; 198.18.0.0/15
// is reserved for benchmarking and routed nowhere.
const (
	ueAddr     = "198.18.7.1"
	serverAddr = "198.18.7.2"
	serverPort = "8080"
)

type netnsResult struct {
	Bytes          int64   `json:"bytes"`
	BytesPerSecond float64 `json:"bytes_per_second"`
	ServerBytes    int64   `json:"server_bytes"` // what the server sent or read for this request
	Err            string  `json:"err,omitempty"`
}

func TestThroughputInNetworkNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and tc")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var id [3]byte
	rand.Read(id[:])
	sfx := hex.EncodeToString(id[:])
	ueNS, srvNS := "qw-ue-"+sfx, "qw-srv-"+sfx
	ueIf, srvIf := "qwu"+sfx, "qws"+sfx // at most 15 characters

	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{ueNS, srvNS} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // takes the veth with it
	}
	run("ip", "link", "add", ueIf, "netns", ueNS, "type", "veth", "peer", "name", srvIf, "netns", srvNS)
	run("ip", "-n", ueNS, "addr", "add", ueAddr+"/30", "dev", ueIf)
	run("ip", "-n", srvNS, "addr", "add", serverAddr+"/30", "dev", srvIf)
	for _, x := range [][2]string{{ueNS, ueIf}, {srvNS, srvIf}} {
		run("ip", "-n", x[0], "link", "set", "lo", "up")
		// A veth hands TCP 64 KiB segmentation-offload bursts to tbf, which
		// overflow its small queue at once: thousands of drops and an
		// occasional retransmission timeout that costs 15% of a 2 s run.
		// A radio link sends MTU-sized packets, so the test does too.
		run("ip", "-n", x[0], "link", "set", "dev", x[1], "gso_max_segs", "1")
		run("ip", "-n", x[0], "link", "set", x[1], "up")
	}
	// The kernel caches a path's congestion state per destination; a
	// connection after the rate drops would start from the 20 Mbit/s
	// figures, overshoot the shaper's queue and spend a tenth of its run
	// recovering. That is TCP's bias, not the probe's: start each fresh.
	run("ip", "netns", "exec", srvNS, "sysctl", "-qw", "net.ipv4.tcp_no_metrics_save=1")
	run("ip", "netns", "exec", ueNS, "sysctl", "-qw", "net.ipv4.tcp_no_metrics_save=1")
	// Shape the downlink (server to UE) and the uplink (UE to server).
	run("ip", "netns", "exec", srvNS, "tc", "qdisc", "add", "dev", srvIf, "root", "tbf", "rate", "20mbit", "burst", "32kbit", "latency", "50ms")
	run("ip", "netns", "exec", ueNS, "tc", "qdisc", "add", "dev", ueIf, "root", "tbf", "rate", "8mbit", "burst", "32kbit", "latency", "50ms")

	startNetnsServer(t, self, srvNS)
	probe := startNetnsProber(t, self, ueNS, "http://"+net.JoinHostPort(serverAddr, serverPort))

	// One run can lose a tenth of its time to TCP recovering from a drop
	// at the shaper's queue, more so on a loaded machine: the median of
	// three runs must be within 10% of the shaped rate, and no run above.
	check := func(name string, rateBits float64, maxBytes int64, upload bool) {
		t.Helper()
		want := rateBits / 8
		var rates []float64
		for range 3 {
			r := probe(maxBytes, upload)
			if r.Err != "" {
				t.Fatalf("%s: %s", name, r.Err)
			}
			if r.Bytes > maxBytes || r.ServerBytes > maxBytes {
				t.Errorf("%s: moved %d bytes (server: %d), cap %d", name, r.Bytes, r.ServerBytes, maxBytes)
			}
			if r.BytesPerSecond > want*1.10 {
				t.Errorf("%s: one run reported %.0f B/s, above the shaped %.0f B/s", name, r.BytesPerSecond, want)
			}
			rates = append(rates, r.BytesPerSecond)
		}
		slices.Sort(rates)
		med := rates[1]
		dev := (med - want) / want
		// The probe counts payload; tbf counts frames. With a 1500-byte MTU
		// and TCP timestamps 1448 of every 1514 bytes are payload, so a
		// perfect probe reads 4.4% below the shaped rate.
		t.Logf("%s: median %.2f Mbit/s of %.2f/%.2f/%.2f, shaped %.2f (payload at most %.2f), off by %+.1f%%; cap %d bytes",
			name, med*8/1e6, rates[0]*8/1e6, rates[1]*8/1e6, rates[2]*8/1e6, rateBits/1e6, rateBits*1448/1514/1e6, dev*100, maxBytes)
		if math.Abs(dev) > 0.10 {
			t.Errorf("%s: median %.0f B/s is not within 10%% of %.0f B/s", name, med, want)
		}
	}
	check("download 20 Mbit/s", 20e6, 3<<20, false)
	run("ip", "netns", "exec", srvNS, "tc", "qdisc", "change", "dev", srvIf, "root", "tbf", "rate", "5mbit", "burst", "32kbit", "latency", "50ms")
	check("download 5 Mbit/s", 5e6, 1<<20, false)
	check("upload 8 Mbit/s", 8e6, 1<<20, true)
}

// startNetnsServer runs the bulk server in ns and waits until it listens.
func startNetnsServer(t *testing.T, self, ns string) {
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^TestNetnsHelper$")
	cmd.Env = append(os.Environ(), envRole+"=server", envListen+"="+net.JoinHostPort(serverAddr, serverPort))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs the test binary, so this is the server's pid.
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == readyLine {
				ready <- true
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("netns server exited before it listened")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("netns server did not get ready")
	}
}

// startNetnsProber starts a child in ns that runs one throughput probe
// per request; it returns the function that asks for one.
func startNetnsProber(t *testing.T, self, ns, base string) func(maxBytes int64, upload bool) netnsResult {
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^TestNetnsHelper$")
	cmd.Env = append(os.Environ(), envRole+"=probe", envURL+"="+base)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	results := make(chan netnsResult)
	go func() {
		defer close(results)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), resultLine); ok {
				var r netnsResult
				if err := json.Unmarshal([]byte(rest), &r); err != nil {
					r.Err = "bad result line: " + err.Error()
				}
				results <- r
			}
		}
	}()
	return func(maxBytes int64, upload bool) netnsResult {
		t.Helper()
		if _, err := fmt.Fprintf(stdin, "%d %t\n", maxBytes, upload); err != nil {
			t.Fatalf("netns prober: %v", err)
		}
		select {
		case r, ok := <-results:
			if !ok {
				t.Fatal("netns prober exited")
			}
			return r
		case <-time.After(60 * time.Second):
			t.Fatal("netns prober hangs")
			return netnsResult{}
		}
	}
}

// TestNetnsHelper is the child process of TestThroughputInNetworkNamespaces.
func TestNetnsHelper(t *testing.T) {
	switch os.Getenv(envRole) {
	case "server":
		netnsServer(t)
	case "probe":
		netnsProbe(t)
	default:
		t.Skip("helper process of TestThroughputInNetworkNamespaces")
	}
}

// netnsServer serves an incompressible blob with Range support, takes
// uploads, and tells how many bytes the last request moved.
func netnsServer(t *testing.T) {
	blob := make([]byte, 8<<20)
	rand.Read(blob)
	var last atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/blob", func(w http.ResponseWriter, r *http.Request) {
		var n atomic.Int64
		defer func() { last.Store(n.Load()) }()
		http.ServeContent(&countingWriter{w: w, n: &n}, r, "blob", time.Time{}, strings.NewReader(string(blob)))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		last.Store(n)
		fmt.Fprintln(w, n)
	})
	mux.HandleFunc("/last", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, last.Load())
	})
	ln, err := net.Listen("tcp", os.Getenv(envListen))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(readyLine)
	_ = http.Serve(ln, mux) // until the parent kills us
}

// netnsProbe runs a throughput probe for each "<max bytes> <upload>" line
// on stdin and prints what it measured.
func netnsProbe(t *testing.T) {
	base := os.Getenv(envURL)
	e := realEnv()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var maxBytes int64
		var upload bool
		if _, err := fmt.Sscanf(sc.Text(), "%d %t", &maxBytes, &upload); err != nil {
			t.Fatalf("bad request %q: %v", sc.Text(), err)
		}
		p := Throughput{URL: base + "/blob", Interval: time.Minute, MaxBytes: maxBytes, MaxTime: 10 * time.Second, Upload: upload}
		if upload {
			p.URL = base + "/upload"
		}
		b, err := p.bind(&UE{Name: "ue", Addr: ueAddr})
		if err != nil {
			t.Fatal(err)
		}
		o := b.(runner).run(context.Background(), e)
		r := netnsResult{Bytes: o.bytes, BytesPerSecond: o.BytesPerSecond}
		if o.Err != nil {
			r.Err = o.Err.Error()
		}
		r.ServerBytes = serverCount(t, base, o.bytes)
		j, _ := json.Marshal(r)
		fmt.Println(resultLine + string(j))
	}
}

// serverCount asks the server how many bytes the last request moved. It
// counts once its handler returns, so ask until it has (bounded).
func serverCount(t *testing.T, base string, atLeast int64) int64 {
	var n int64
	for range 200 {
		resp, err := http.Get(base + "/last")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		n, _ = strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
		if n >= atLeast {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n
}
