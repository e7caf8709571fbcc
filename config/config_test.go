package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.err from the errors the configs give now")

// Env values the test configs refer to. secretValue must never show up in
// any output.
const secretValue = "s3cr3t-VALUE-that-must-not-leak"

func setTestEnv(t *testing.T) {
	t.Setenv("QODTEST_SECRET", secretValue)
	t.Setenv("QODTEST_NOTIFY_TOKEN", "notify-"+secretValue)
	t.Setenv("QODTEST_EMPTY", "")
	os.Unsetenv("QODTEST_UNSET")
}

// TestBadConfigs loads every testdata/bad/NAME.yaml and compares the errors
// with NAME.err, line for line. Run with -update to rewrite the .err files,
// then read every changed message: each must make sense to a user.
func TestBadConfigs(t *testing.T) {
	setTestEnv(t)
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 55 {
		t.Errorf("only %d bad configs; want at least 55", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			errFile := strings.TrimSuffix(file, ".yaml") + ".err"
			cfg, err := Load(file)
			if err == nil {
				t.Fatalf("loaded without error: %s", cfg.Summary())
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			got := err.Error() + "\n"
			if strings.Contains(got, secretValue) {
				t.Errorf("error shows the secret value:\n%s", got)
			}
			if *update {
				if err := os.WriteFile(errFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(errFile)
			if err != nil {
				t.Fatalf("%v (run go test -run TestBadConfigs -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ\n--- got:\n%s--- want:\n%s", got, want)
			}
			for _, e := range errs {
				if e.Line == 0 {
					t.Errorf("error without a line: %v", e)
				}
			}
		})
	}
}

func TestGoodConfigs(t *testing.T) {
	setTestEnv(t)
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no good configs")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings: %v", cfg.Warnings)
			}
		})
	}
}

// TestExampleLoads loads config.example.yaml, which documents every option,
// as a user would deploy it: beside its key file, with its variables set.
func TestExampleLoads(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile("testdata/secrets/test-pop-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pop-key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QOD_CLIENT_SECRET", secretValue)
	t.Setenv("QOD_NOTIFY_TOKEN", "notify-"+secretValue)
	file := filepath.Join(dir, "config.yaml")
	cfg, err := Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if got, want := cfg.Summary(), file+": OK: 3 UEs, 3 rules, 7 probes, auth taap, dialect devedge"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if got, want := cfg.API.Auth.PrivateKeyFile, filepath.Join(dir, "pop-key.pem"); got != want {
		t.Errorf("private key file %q, want %q (relative to the config)", got, want)
	}
	if s, err := cfg.API.Auth.ClientSecret(); err != nil || s != secretValue {
		t.Errorf("ClientSecret() = %q, %v", s, err)
	}
	if tok, ok, err := cfg.Notifications.Token(); err != nil || !ok || tok != "notify-"+secretValue {
		t.Errorf("Notifications.Token() = %q, %v, %v", tok, ok, err)
	}
	robot, ok := cfg.UE("robot-2")
	if !ok {
		t.Fatal("no robot-2")
	}
	if got, want := robot.Probes[0].Address, "robot-2.fleet.example.com:443"; got != want {
		t.Errorf("robot-2 tcp address %q, want %q", got, want)
	}
	kiosk, _ := cfg.UE("kiosk-1")
	if !kiosk.RuleOverridden || kiosk.RuleSpec.Breach.For != "30s" || kiosk.RuleSpec.Recover.For != "1m" {
		t.Errorf("kiosk-1 override not merged: %+v", kiosk.RuleSpec)
	}
	if got, want := kiosk.Probes[1].Query, `app_bitrate_bps{client="kiosk-1"}`; got != want {
		t.Errorf("kiosk-1 query %q, want %q", got, want)
	}
	cam, _ := cfg.UE("camera-7")
	if cam.Labels["site"] != "pier-3" || cam.Group != "pier" || cam.ApplicationServer.IPv6 != "2001:db8::10" {
		t.Errorf("camera-7 defaults not applied: %+v", cam)
	}
	if cam.UEPorts != nil {
		t.Errorf("ue_ports: [] gave %v, want nil (send none)", cam.UEPorts)
	}
	for _, out := range []string{fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(cfg.API.Auth)} {
		if strings.Contains(out, secretValue) {
			t.Errorf("config printed with its secret: %s", out)
		}
	}
}
