package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `qodwatch check` on the shipped example: valid once the secrets it
// references exist, and never printing them.
func TestE2ECheckExample(t *testing.T) {
	t.Parallel()
	bin := qodwatchBinary(t)
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.example.yaml")
	if err := os.WriteFile(file, example, 0o600); err != nil {
		t.Fatal(err)
	}

	// Without its secrets the example must say exactly where they are missing.
	_, errOut, code := runBinary(t, bin, nil, "check", file)
	if code != 2 {
		t.Fatalf("check without secrets: exit %d, want 2\n%s", code, errOut)
	}
	for _, want := range []string{"QOD_CLIENT_SECRET", "pop-key.pem", "QOD_NOTIFY_TOKEN"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check without secrets does not mention %s:\n%s", want, errOut)
		}
	}
	requirePositioned(t, file, errOut)

	writeTestKey(t, filepath.Join(dir, "pop-key.pem"))
	const secret, token = "s3cret-client-value-e2e", "notify-token-e2e-0123456789"
	env := []string{"QOD_CLIENT_SECRET=" + secret, "QOD_NOTIFY_TOKEN=" + token}
	out, errOut, code := runBinary(t, bin, env, "check", file)
	if code != 0 {
		t.Fatalf("check config.example.yaml: exit %d, want 0\n%s%s", code, out, errOut)
	}
	if !strings.HasPrefix(out, file+": OK: ") || strings.Count(out, "\n") != 1 {
		// Warnings would come first: the example should draw none.
		t.Errorf("stdout = %q, want the one-line summary %q", out, file+": OK: ...")
	}
	if errOut != "" {
		t.Errorf("stderr of a valid config: %q", errOut)
	}
	if strings.Contains(out+errOut, secret) || strings.Contains(out+errOut, token) {
		t.Error("check printed a secret")
	}
}

// A broken config: exit 2 and every problem as file:line:col, each at the
// place of the planted mistake; a good file beside it is still summarised.
func TestE2ECheckBroken(t *testing.T) {
	t.Parallel()
	bin := qodwatchBinary(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	const goodText = `dry_run: true
defaults:
  application_server: {ipv4: 203.0.113.10}
  probes: [icmp]
ues:
  - name: camera-7
    ipv4: 10.44.0.7
    rule: low-latency
rules:
  low-latency:
    breach: {any: ["latency_p95 > 80ms"], for: 20s}
    recover: {all: ["latency_p95 < 50ms"], for: 1m}
    qos: QOS_E
    duration: 10m
`
	// Planted: an unknown key, an invalid IPv4, a port out of range and
	// an unknown QoS profile.
	const badText = `dry_run: true
defaults:
  windw: 30s
  application_server: {ipv4: 203.0.113.10}
  probes: [icmp]
ues:
  - name: camera-7
    ipv4: 10.44.0.300
    as_ports: [70000]
    rule: low-latency
rules:
  low-latency:
    breach: {any: ["latency_p95 > 80ms"], for: 20s}
    recover: {all: ["latency_p95 < 50ms"], for: 1m}
    qos: QOS_X
    duration: 10m
`
	for name, text := range map[string]string{good: goodText, bad: badText} {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wantAt := map[string]string{"windw": "3:3", "10.44.0.300": "8:11", "70000": "9:16", "QOS_X": "15:10"}
	lines := strings.Split(badText, "\n")
	for what, at := range wantAt {
		var l, c int
		if _, err := fmt.Sscanf(at, "%d:%d", &l, &c); err != nil || strings.Index(lines[l-1], what) != c-1 {
			t.Fatalf("test bug: %q is not at %s in\n%s", what, at, badText)
		}
	}

	out, errOut, code := runBinary(t, bin, nil, "check", good, bad)
	if code != 2 {
		t.Fatalf("check good bad: exit %d, want 2\n%s", code, errOut)
	}
	if !strings.HasPrefix(out, good+": OK: ") {
		t.Errorf("the good file is not summarised: %q", out)
	}
	requirePositioned(t, bad, errOut)
	for what, at := range wantAt {
		found := false
		for _, line := range strings.Split(errOut, "\n") {
			found = found || strings.HasPrefix(line, bad+":"+at+": ")
		}
		if !found {
			t.Errorf("no problem reported at %s:%s (%s):\n%s", bad, at, what, errOut)
		}
	}
}

// requirePositioned requires every line of out to start with
// file:line:col, but for a closing "file: FAILED: N problems" that counts
// them.
func requirePositioned(t *testing.T, file, out string) {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `:\d+:\d+: \S`)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("want problems and a closing line, got %q", out)
	}
	problems, closing := lines[:len(lines)-1], lines[len(lines)-1]
	for _, line := range problems {
		if !re.MatchString(line) {
			t.Errorf("not file:line:col: %q", line)
		}
	}
	want := fmt.Sprintf("%s: FAILED: %d problems", file, len(problems))
	if len(problems) == 1 {
		want = file + ": FAILED: 1 problem"
	}
	if closing != want {
		t.Errorf("closing line %q, want %q", closing, want)
	}
}

func writeTestKey(t *testing.T, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
