// Package systemd_test checks deploy/systemd/qodwatch.service: systemd
// accepts it, its exposure score stays low, and the real binary starts the
// way the unit starts it and speaks the notify protocol.
package systemd_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/deploy/deploytest"
)

const unitFile = "qodwatch.service"

// The paths the unit names, mapped into the test's directory.
const (
	unitBinary   = "/usr/local/bin/qodwatch"
	unitConfDir  = "/etc/qodwatch"
	unitStateDir = "/var/lib/qodwatch"
)

// dynamicUID is a uid from the range systemd's DynamicUser= draws from
// (61184-65519): the service runs as nobody the host knows.
const dynamicUID = 61184 + 407

// unit is the [Service] section: each key with its values in order.
type unit map[string][]string

func readUnit(t *testing.T) unit {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", unitFile, line)
			}
			u[k] = append(u[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("%s: want one %s=, have %q", unitFile, key, u[key])
	}
	return u[key][0]
}

// TestUnitVerifiesAndScores runs systemd's own checks on the unit, with
// the binary it names built where it names it (in a copy of the unit).
func TestUnitVerifiesAndScores(t *testing.T) {
	analyze := deploytest.RequireTool(t, "systemd-analyze")
	dir := t.TempDir()
	bin := deploytest.BuildQodwatch(t, dir)
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, unitFile)
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(text, []byte(unitBinary), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// --offline needs no running manager; --threshold=20 fails above an
	// exposure of 2.0 (the scale is 0-100 there, 0.0-10.0 in the report).
	out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", copyPath).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("%s", lines[len(lines)-1])
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
}

// TestUnitStartsTheBinaryAsSystemdWould lays out the files as the unit's
// install comment does (config 0644 root, secrets 0600 root), copies the
// LoadCredential= files as systemd does (directory 0500, files 0400, owned
// by the service's uid), and runs ExecStartPre= and ExecStart= as a
// DynamicUser uid with no capabilities, no new privileges and the unit's
// UMask, in a network namespace whose ping_group_range is what systemd's
// sysctl.d sets. The daemon must say READY=1 (sessions restored, every UE
// measured), WATCHDOG=1, and STOPPING=1 on SIGTERM, and exit 0.
func TestUnitStartsTheBinaryAsSystemdWould(t *testing.T) {
	deploytest.RequireRoot(t)
	deploytest.RequireTool(t, "setpriv")
	u := readUnit(t)
	for key, want := range map[string]string{"Type": "notify", "DynamicUser": "yes", "NotifyAccess": "main", "CapabilityBoundingSet": "", "NoNewPrivileges": "yes", "UMask": "0077"} {
		if got := u.one(t, key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	watchdogSec := u.one(t, "WatchdogSec")
	if _, err := time.ParseDuration(watchdogSec); err != nil {
		t.Errorf("WatchdogSec=%s: %v", watchdogSec, err)
	}

	root := deploytest.OpenDir(t)
	bin := deploytest.BuildQodwatch(t, t.TempDir())
	deploytest.Own(t, filepath.Dir(bin), 0o755, 0, 0)
	deploytest.Own(t, bin, 0o755, 0, 0)
	mapPath := strings.NewReplacer(unitBinary, bin, unitConfDir, filepath.Join(root, unitConfDir), unitStateDir, filepath.Join(root, unitStateDir))

	key, err := os.ReadFile(filepath.Join(deploytest.RepoRoot(t), "config/testdata/secrets/test-pop-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"client-secret": []byte("client-secret-of-the-unit-test\n"),
		"pop-key.pem":   key,
		"notify-token":  []byte("notify-token-of-the-unit-test-0123456789\n"),
	}
	// LoadCredential=ID:PATH — PATH root-only on the host, copied by
	// systemd into $CREDENTIALS_DIRECTORY/ID for the service alone.
	creds := filepath.Join(root, "run/credentials", unitFile)
	deploytest.MkdirOwned(t, creds, 0o500, dynamicUID, dynamicUID)
	for _, lc := range u["LoadCredential"] {
		id, src, ok := strings.Cut(lc, ":")
		if !ok {
			t.Fatalf("LoadCredential=%s: want ID:PATH", lc)
		}
		data, ok := secrets[id]
		if !ok {
			t.Fatalf("LoadCredential=%s: the test has no value for %q", lc, id)
		}
		hostPath := mapPath.Replace(src)
		deploytest.MkdirOwned(t, filepath.Dir(hostPath), 0o700, 0, 0)
		deploytest.WriteFile(t, hostPath, data, 0o600, 0, 0)
		deploytest.WriteFile(t, filepath.Join(creds, id), data, 0o400, dynamicUID, dynamicUID)
		delete(secrets, id)
	}
	if len(secrets) > 0 {
		t.Fatalf("the unit loads no credential for %v", secrets)
	}

	// The config names every credential through ${CREDENTIALS_DIRECTORY},
	// probes a UE in the namespace, and expects an API that is never
	// called: nothing is stored, and no UE breaches.
	config := `
api:
  base_url: http://127.0.0.1:9/qod/v1
  auth:
    type: taap
    token_url: http://127.0.0.1:9/oauth2/v6/tokens
    client_id: unit-test
    client_secret_file: ${CREDENTIALS_DIRECTORY}/client-secret
    private_key_file: ${CREDENTIALS_DIRECTORY}/pop-key.pem
notifications:
  public_url: http://127.0.0.1:9468/cb
  listen: 127.0.0.1:9468
  token_file: ${CREDENTIALS_DIRECTORY}/notify-token
web: {listen: "127.0.0.1:9467"}
state_dir: /nonexistent/overridden-by-the-unit
defaults:
  application_server: {ipv4: 203.0.113.10}
  probes: [{icmp: {interval: 1s, packets: 1, timeout: 500ms}}]
  rule: low-latency
ues: [{name: lo-ue, ipv4: 127.0.0.1}]
rules:
  low-latency:
    breach: {any: ["latency_p95 > 800ms"], for: 20s}
    recover: {all: ["latency_p95 < 500ms"], for: 1m}
    qos: QOS_E
    duration: 10m
`
	deploytest.WriteFile(t, filepath.Join(root, unitConfDir, "config.yaml"), []byte(config), 0o644, 0, 0)
	// StateDirectory=qodwatch, StateDirectoryMode=0700, owned by the uid.
	stateDir := filepath.Join(root, unitStateDir)
	deploytest.MkdirOwned(t, stateDir, 0o700, dynamicUID, dynamicUID)

	ns := deploytest.Netns(t, "q9-sd")
	deploytest.Sysctl(t, ns, "net.ipv4.ping_group_range", "0 2147483647")
	notify := deploytest.ListenNotify(t, root)
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"CREDENTIALS_DIRECTORY=" + creds,
		"STATE_DIRECTORY=" + stateDir,
		"NOTIFY_SOCKET=" + notify.Path,
		"WATCHDOG_USEC=1000000", // 1s: a ping every 500ms
	}
	asService := func(command string) *exec.Cmd {
		argv := strings.Fields(mapPath.Replace(command))
		args := append([]string{"netns", "exec", ns,
			"setpriv", "--reuid", itoa(dynamicUID), "--regid", itoa(dynamicUID), "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
			"/bin/sh", "-c", `umask 0077 && exec "$0" "$@"`}, argv...)
		cmd := exec.Command("ip", args...)
		cmd.Env = env
		return cmd
	}

	for _, pre := range u["ExecStartPre"] {
		if out, err := asService(pre).CombinedOutput(); err != nil {
			t.Fatalf("ExecStartPre=%s: %v\n%s", pre, err, out)
		}
	}
	var stderr deploytest.SyncBuffer
	cmd := asService(u.one(t, "ExecStart"))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
			t.Logf("daemon output:\n%s", stderr.String())
		}
	}()

	notify.Await(t, "READY=1", 30*time.Second, exited)
	// The daemon logs why it is ready before it says READY=1, but its
	// stderr reaches us through a pipe that may lag the notify socket.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(stderr.String(), "msg=\"ready") {
			break
		}
	}
	if !strings.Contains(stderr.String(), "every UE measured once") {
		t.Errorf("READY=1 before every UE measured:\n%s", stderr.String())
	}
	notify.Await(t, "WATCHDOG=1", 10*time.Second, exited)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notify.Await(t, "STOPPING=1", 30*time.Second, exited)
	<-exited
	if exitErr != nil {
		t.Fatalf("daemon exit: %v\n%s", exitErr, stderr.String())
	}
	stopped = true

	// What the service wrote is its own and, with UMask=0077, only its own.
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Error("the daemon wrote nothing in its state directory")
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != dynamicUID || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("state file %s: owner %d, mode %v; want %d, no group or other bits", e.Name(), st.Uid, fi.Mode().Perm(), dynamicUID)
		}
	}
	for _, secret := range []string{"client-secret-of-the-unit-test", "notify-token-of-the-unit-test"} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("a secret is in the log:\n%s", stderr.String())
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
