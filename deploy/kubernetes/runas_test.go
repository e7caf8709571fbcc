package kubernetes_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/qodwatch/qodwatch/deploy/deploytest"
)

// The UE of the ConfigMap's config and the pod's address beside it: both
// live only in the test's own namespaces, so the config keeps its address.
const (
	ueAddr  = "10.44.0.7"
	podAddr = "10.44.0.1"
	webPort = "9467"
)

// podOptions are the departures from the manifest that must break the pod.
type podOptions struct {
	noPingGroupRange bool // the sysctl left at the kernel's "1 0"
	secretMode       int  // the Secret's file mode, -1 for its defaultMode
	stateRootOnly    bool // the state volume root:root 0755, as without fsGroup
	// webAuth, when set, is an exporter-toolkit web config put in the
	// Secret as web-config.yml and named by web.config_file.
	webAuth string
}

// runningPod is the sidecar's binary started as the kubelet would start it.
type runningPod struct {
	ns     string
	cmd    *exec.Cmd
	out    *deploytest.SyncBuffer
	exited chan struct{}
	err    error
	state  string
	client *http.Client
}

// TestSidecarRunsAsThePodWould starts the real binary the way the
// manifest's pod runs it: as runAsUser:runAsGroup with the fsGroup as a
// supplementary group, no capabilities (bounding, inheritable and ambient
// sets empty), no new privileges, a read-only root file system, the
// ConfigMap's config as it is, the Secret's files root:fsGroup with its
// defaultMode, a state directory root:fsGroup 2775 as the kubelet leaves
// a fresh volume, in a network namespace with the pod's sysctls, and a UE
// at the config's address in a second namespace over a veth pair. It must
// answer 200 on /-/ready, measure a round trip to the UE, write its state
// as the pod's user and group, and stop cleanly on SIGTERM. Then the same
// pod without the sysctl, and with the old Secret mode 0400, must not come
// up, nor without the state volume's fsGroup ownership: the test can fail.
func TestSidecarRunsAsThePodWould(t *testing.T) {
	deploytest.RequireRoot(t)
	deploytest.RequireTool(t, "setpriv")
	deploytest.RequireTool(t, "mount")
	m := loadManifests(t)
	bin := deploytest.BuildQodwatch(t, deploytest.OpenDir(t))
	deploytest.Own(t, bin, 0o755, 0, 0)

	t.Run("as the manifest says", func(t *testing.T) {
		p := startPod(t, m, bin, podOptions{secretMode: -1})
		p.awaitReady(t)
		rtt := p.awaitRTT(t)
		t.Logf("ready; latency p95 to the UE %v", rtt)
		uid, gid, fsGroup := podIDs(t, m)
		p.checkCredentials(t, uid, gid, fsGroup)
		p.stop(t)
		entries, err := os.ReadDir(p.state)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			t.Error("nothing written in the state volume")
		}
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != uid || int(st.Gid) != fsGroup {
				t.Errorf("state file %s: owner %d:%d, want %d:%d (setgid volume)", e.Name(), st.Uid, st.Gid, uid, fsGroup)
			}
		}
		for name, s := range testSecrets(t) {
			if name != "pop-key.pem" && strings.Contains(p.out.String(), strings.TrimSpace(string(s))) {
				t.Errorf("secret %s is in the log", name)
			}
		}
	})
	// The probes carry no credentials: with basic auth on (exporter-
	// toolkit's web config, from the Secret), /-/ready and /-/healthy must
	// still answer them, and /metrics must not.
	t.Run("basic auth on, probes without credentials", func(t *testing.T) {
		hash, err := bcrypt.GenerateFromPassword([]byte("scrape-password-of-the-pod-test"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		p := startPod(t, m, bin, podOptions{secretMode: -1, webAuth: "basic_auth_users:\n  prometheus: " + string(hash) + "\n"})
		p.awaitReady(t)
		for path, want := range map[string]int{"/-/healthy": 200, "/-/ready": 200, "/metrics": 401} {
			if code, _, err := p.get(path); err != nil || code != want {
				t.Errorf("GET %s without credentials: %d %v, want %d", path, code, err, want)
			}
		}
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+webPort+"/metrics", nil)
		req.SetBasicAuth("prometheus", "scrape-password-of-the-pod-test")
		resp, err := p.client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET /metrics with credentials: %v %v", resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		p.stop(t)
	})
	for name, tc := range map[string]struct {
		opts podOptions
		why  string // what the daemon's error must name
	}{
		"without ping_group_range":     {podOptions{noPingGroupRange: true, secretMode: -1}, "ping_group_range"},
		"secret mode 0400":             {podOptions{secretMode: 0o400}, "permission denied"},
		"state volume without fsGroup": {podOptions{secretMode: -1, stateRootOnly: true}, "permission denied"},
	} {
		t.Run(name, func(t *testing.T) {
			p := startPod(t, m, bin, tc.opts)
			<-p.exited // it must exit: were it to run, the test would time out
			if p.err == nil || !strings.Contains(p.out.String(), tc.why) {
				t.Fatalf("exit %v, want an error naming %q:\n%s", p.err, tc.why, p.out.String())
			}
			for _, line := range strings.Split(p.out.String(), "\n") {
				if strings.Contains(line, tc.why) {
					t.Logf("%v as it should: %s", p.err, line)
				}
			}
		})
	}
}

// podIDs are the pod's runAsUser, runAsGroup and fsGroup.
func podIDs(t *testing.T, m manifests) (uid, gid, fsGroup int) {
	t.Helper()
	sc := m.deployment(t).Spec.Template.Spec.SecurityContext
	return int(*sc.RunAsUser), int(*sc.RunAsGroup), int(*sc.FSGroup)
}

func startPod(t *testing.T, m manifests, bin string, o podOptions) *runningPod {
	t.Helper()
	spec := &m.deployment(t).Spec.Template.Spec
	qw := sidecar(t, spec)
	uid, gid, fsGroup := podIDs(t, m)
	var edits []func(string) string
	secretMount := volume(t, spec, qw, "secrets").mount.MountPath
	if o.webAuth != "" {
		edits = append(edits, func(cfg string) string {
			const listen = "\n  listen: :" + webPort + "\n"
			if !strings.Contains(cfg, listen) {
				t.Fatalf("the config has no web listen line %q", listen)
			}
			return strings.Replace(cfg, listen, listen+"  config_file: "+secretMount+"/web-config.yml\n", 1)
		})
	}
	pod := layOutPod(t, m, deploytest.OpenDir(t), fsGroup, o.secretMode, edits...)
	if o.webAuth != "" {
		mode := fs.FileMode(*volume(t, spec, qw, "secrets").vol.Secret.DefaultMode)
		deploytest.WriteFile(t, filepath.Join(pod.mounts.Replace(secretMount), "web-config.yml"), []byte(o.webAuth), mode, 0, fsGroup)
	}

	ns := deploytest.Netns(t, "q9-pod")
	peer := deploytest.Netns(t, "q9-ue")
	deploytest.IP(t, "-n", ns, "link", "add", "pod0", "type", "veth", "peer", "name", "ue0", "netns", peer)
	deploytest.IP(t, "-n", ns, "addr", "add", podAddr+"/24", "dev", "pod0")
	deploytest.IP(t, "-n", peer, "addr", "add", ueAddr+"/24", "dev", "ue0")
	deploytest.IP(t, "-n", ns, "link", "set", "pod0", "up")
	deploytest.IP(t, "-n", peer, "link", "set", "ue0", "up")
	if !o.noPingGroupRange {
		for _, s := range spec.SecurityContext.Sysctls {
			deploytest.Sysctl(t, ns, s.Name, s.Value)
		}
	}

	state := ""
	for _, vm := range qw.VolumeMounts {
		if vm.Name == "state" {
			state = pod.mounts.Replace(vm.MountPath)
		}
	}
	if o.stateRootOnly {
		deploytest.Own(t, state, 0o755, 0, 0)
	}
	// ip netns exec gives the command its own mount namespace: the state
	// volume becomes a mount of its own, then / is made read-only
	// (readOnlyRootFilesystem); setpriv then drops to the pod's ids.
	setpriv := []string{"setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(gid), "--groups", strconv.Itoa(fsGroup),
		"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", bin}
	script := `mount --bind "$0" "$0" && mount -o remount,bind,ro / && shift && exec "$@"`
	args := append([]string{"netns", "exec", ns, "/bin/sh", "-c", script, state, "-"}, append(setpriv, pod.args(qw)...)...)
	cmd := exec.Command("ip", args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for _, e := range qw.Env {
		if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" {
			cmd.Env = append(cmd.Env, e.Name+"="+strconv.FormatInt(qw.Resources.Limits.Memory().Value(), 10))
		}
	}
	p := &runningPod{ns: ns, cmd: cmd, out: &deploytest.SyncBuffer{}, exited: make(chan struct{}), state: state}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", p.out.String())
		}
	})
	p.client = &http.Client{Transport: &http.Transport{DialContext: dialInNetns(ns)}, Timeout: 5 * time.Second}
	return p
}

// dialInNetns dials from inside network namespace ns: each connection's
// socket is made on a thread moved into ns, which then ends with its
// goroutine (locked, never unlocked) instead of going back to the pool.
func dialInNetns(ns string) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			f, err := os.Open(filepath.Join("/run/netns", ns))
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// checkCredentials reads what the kernel says of the running daemon: the
// pod's ids, no capability in any set, no new privileges.
func (p *runningPod) checkCredentials(t *testing.T, uid, gid, fsGroup int) {
	t.Helper()
	// ip netns exec, sh and setpriv each exec the next: the pid is the daemon's.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	u, g := strconv.Itoa(uid), strconv.Itoa(gid)
	want := map[string]string{
		"Uid": u + "\t" + u + "\t" + u + "\t" + u, "Gid": g + "\t" + g + "\t" + g + "\t" + g,
		"Groups": strconv.Itoa(fsGroup), "NoNewPrivs": "1",
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			if strings.TrimSpace(v) != w {
				t.Errorf("/proc/PID/status %s: %q, want %q", k, strings.TrimSpace(v), w)
			}
			delete(want, k)
		}
	}
	if len(want) > 0 {
		t.Errorf("/proc/PID/status lacks %v", want)
	}
}

// get fetches path from the pod's web port.
func (p *runningPod) get(path string) (int, []byte, error) {
	resp, err := p.client.Get("http://127.0.0.1:" + webPort + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// poll calls f every 100ms until it says done, the daemon exits (a
// failure), or the bound passes (a bound on the wait, not a sleep).
func (p *runningPod) poll(t *testing.T, what string, f func() (done bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		var done bool
		if done, last = f(); done {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("the daemon exited (%v) before %s; last: %s", p.err, what, last)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s; last: %s", what, last)
		}
	}
}

func (p *runningPod) awaitReady(t *testing.T) {
	t.Helper()
	p.poll(t, "200 on /-/ready", func() (bool, string) {
		code, body, err := p.get("/-/ready")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %q %v", code, body, err)
	})
}

// awaitRTT waits for the UE's latency on /metrics to be a positive figure.
func (p *runningPod) awaitRTT(t *testing.T) time.Duration {
	t.Helper()
	var rtt float64
	p.poll(t, "a round trip on /metrics", func() (bool, string) {
		code, body, err := p.get("/metrics")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("%d %v", code, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "qodwatch_window_latency_p95_seconds{") && strings.Contains(line, `ue="camera-7"`) {
				f := strings.Fields(line)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				rtt = v
				return err == nil && v > 0, line
			}
		}
		return false, "no qodwatch_window_latency_p95_seconds for camera-7"
	})
	return time.Duration(rtt * float64(time.Second))
}

// stop sends SIGTERM, as the kubelet does, and wants exit 0.
func (p *runningPod) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if p.err != nil {
		t.Fatalf("exit after SIGTERM: %v", p.err)
	}
}
