package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	if got, want := cfg.Summary(), file+": OK: 3 static UEs and 1 ue_sd source, 3 rules, 7 probes, auth taap, dialect devedge"; got != want {
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

func mustLoad(t *testing.T, file string) *Config {
	t.Helper()
	setTestEnv(t)
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestResolvedValues checks what the daemon gets: defaults, expanded
// templates, canonical addresses, ports.
func TestResolvedValues(t *testing.T) {
	t.Run("ipv4 behind carrier NAT", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/good/camara-v1-nat.yaml")
		got := make([]string, len(cfg.UEs))
		for i, ue := range cfg.UEs {
			got[i] = fmt.Sprintf("%s %s %s %d target %s", ue.Name, ue.IPv4, ue.IPv4Private, ue.IPv4PublicPort, ue.Target)
		}
		want := []string{
			"camera-7 198.51.100.1 10.44.0.7 40007 target 10.44.0.7",
			"camera-8 198.51.100.1 10.44.0.8 0 target 10.44.0.8",
			"camera-9 198.51.100.9  0 target 198.51.100.9",
		}
		if !slices.Equal(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("ipv6 and placeholders", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/good/bearer-ipv6.yaml")
		ue := cfg.UEs[0]
		checks := []struct{ name, got, want string }{
			{"ipv6 canonical", ue.IPv6, "2001:db8:44::12"},
			{"target", ue.Target, "2001:db8:44::12"},
			{"icmp source", ue.Probes[0].Source, "::1"},
			{"http url", ue.Probes[1].URL, "http://[2001:db8:44::12]:8080/health?ue=robot-2&site=harbour&id=robot-2@fleet.example.com"},
			{"throughput url", ue.Probes[2].URL, "http://[2001:db8:44::12]:8080/probe"},
			{"prometheus server", ue.Probes[3].Server, "http://[::1]:9090"},
			{"prometheus query", ue.Probes[3].Query, `rate(bytes{ue="robot-2",msisdn="+15551230012",group="fleet"}[1m])`},
			{"as prefix", ue.ApplicationServer.IPv6, "2001:db8::/64"},
			{"labels", fmt.Sprint(ue.Labels), "map[rack:b7 site:harbour]"},
			{"group", ue.Group, "fleet"},
			{"token ref", cfg.API.Auth.TokenRef.String(), "file " + filepath.Join("testdata", "secrets", "client-secret")},
			{"notify token ref", cfg.Notifications.TokenRef.String(), "${QODTEST_NOTIFY_TOKEN}"},
			{"notify listen default", cfg.Notifications.Listen, ":9468"},
			{"log", fmt.Sprint(cfg.Log.Level, " ", cfg.Log.Format), "DEBUG json"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
			}
		}
		tp := ue.Probes[2]
		if tp.MaxBytes != 500_000 || !tp.Upload || tp.Interval.String() != "10s" {
			t.Errorf("throughput probe %+v", tp)
		}
		if ip := ue.Probes[0]; ip.Packets != 2 || ip.Spacing.String() != "100ms" || ip.Timeout.String() != "500ms" {
			t.Errorf("icmp defaults %+v", ip)
		}
		if cfg.Tick.String() != "250ms" || ue.Window.String() != "1m0s" || cfg.Guards.MaxSessionsPerGroup["fleet"] != 1 {
			t.Errorf("tick %s window %s guards %+v", cfg.Tick, ue.Window, cfg.Guards)
		}
		if tok, _ := cfg.API.Auth.Token(); tok != "test-client-secret-from-file" {
			t.Errorf("Token() = %q, want the file's content without its newline", tok)
		}
	})
	t.Run("oauth2 and ports", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/good/oauth2.yaml")
		ue := cfg.UEs[0]
		if cfg.API.BaseURL != "https://api.example.com/qod/v0" || cfg.API.Dialect != "camara-v0" {
			t.Errorf("api %+v", cfg.API)
		}
		if a := cfg.API.Auth; a.ClientID != "0123" || fmt.Sprint(a.Scopes) != "[qod qod:sessions:write]" {
			t.Errorf("auth %+v", a)
		}
		if ue.MSISDN != "15551230007" || ue.Probes[0].Address != "10.44.0.7:443" {
			t.Errorf("ue %+v", ue)
		}
		if got := fmt.Sprint(ue.ASPorts, " ", ue.UEPorts); got != "443 5060,7000,5010-5020" {
			t.Errorf("ports %s", got)
		}
		if cfg.StateDir != filepath.Join("testdata", "good", "state") {
			t.Errorf("state_dir %q, want it relative to the config file", cfg.StateDir)
		}
		if cfg.API.Timeout.String() != "10s" || cfg.API.PollInterval.String() != "1m0s" || cfg.API.MaxRetries != 3 {
			t.Errorf("api defaults %+v", cfg.API)
		}
	})
	t.Run("anchors and overrides", func(t *testing.T) {
		cfg := mustLoad(t, "testdata/good/anchors.yaml")
		c7, c8 := cfg.UEs[0], cfg.UEs[1]
		if c7.Group != "cams" || c8.Group != "cams-north" || c8.Labels["role"] != "camera" {
			t.Errorf("merge keys: %+v / %+v", c7, c8)
		}
		if c7.RuleOverridden || c7.Rule != cfg.Rules["low-latency"] {
			t.Error("camera-7 should share the compiled rule")
		}
		if !c8.RuleOverridden || c8.RuleSpec.Recover.For != "2m" || len(c8.RuleSpec.Recover.All) != 2 {
			t.Errorf("camera-8 override: %+v", c8.RuleSpec)
		}
		if c7.Probes[0].Interval.String() != "500ms" || c8.Probes[0].Interval.String() != "500ms" {
			t.Error("aliased default probe not applied")
		}
		if !cfg.DryRun || cfg.StateDir != "" || cfg.API.Auth.Type != AuthNone {
			t.Errorf("dry run: %+v", cfg.API)
		}
	})
}

// TestSecretsNeverShow puts secret values where a careless loader would
// echo them: the environment, a secret file, and (refused) inline in the
// file and in a URL. None may appear in errors, warnings or the printed
// Config.
func TestSecretsNeverShow(t *testing.T) {
	setTestEnv(t)
	const inline = "inline-SECRET-written-in-the-file"
	good := `
api:
  base_url: https://api.example.com/qod/v1
  auth:
    type: taap
    token_url: https://api.example.com/oauth2/v6/tokens
    client_id: my-app
    client_secret: ${QODTEST_SECRET}
    private_key_file: ../secrets/test-pop-key.pem
notifications:
  public_url: https://qodwatch.example.com/cb
  token: ${QODTEST_NOTIFY_TOKEN}
state_dir: /var/lib/qodwatch
defaults:
  application_server: {ipv4: 203.0.113.10}
  probes: [icmp]
  rule: r
ues:
  - {name: cam, ipv4: 10.44.0.7}
rules:
  r:
    breach: {any: ["loss > 2%"], for: 20s}
    recover: {all: ["loss < 1%"], for: 1m}
    qos: QOS_E
    duration: 10m
`
	cfg, err := Parse("testdata/good/inline.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile("testdata/secrets/test-pop-key.pem")
	keyBody := strings.Split(string(key), "\n")[1]
	for _, out := range []string{fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", *cfg), fmt.Sprint(cfg.API), cfg.Summary()} {
		for _, secret := range []string{secretValue, keyBody} {
			if strings.Contains(out, secret) {
				t.Errorf("printed config shows a secret: %s", out)
			}
		}
	}

	bad := strings.NewReplacer(
		"${QODTEST_SECRET}", inline,
		"https://qodwatch.example.com/cb", "https://user:"+inline+"@qodwatch.example.com/cb",
		"client_id: my-app", "client_id: ${QODTEST_SECRET}",
	).Replace(good)
	_, err = Parse("testdata/good/inline.yaml", []byte(bad))
	if err == nil {
		t.Fatal("inline secrets accepted")
	}
	if msg := err.Error(); strings.Contains(msg, inline) || strings.Contains(msg, secretValue) {
		t.Errorf("error shows a secret:\n%s", msg)
	}
	if n := len(err.(Errors)); n != 3 {
		t.Errorf("got %d errors, want 3 (inline secret, URL credentials, ${} in client_id):\n%v", n, err)
	}
}

func TestSecretRead(t *testing.T) {
	setTestEnv(t)
	file := Secret{File: "testdata/secrets/client-secret"}
	if v, err := file.Read(); err != nil || v != "test-client-secret-from-file" {
		t.Errorf("file: %q, %v", v, err)
	}
	env := Secret{Env: "QODTEST_SECRET"}
	if v, err := env.Read(); err != nil || v != secretValue {
		t.Errorf("env: %q, %v", v, err)
	}
	for _, s := range []Secret{{Env: "QODTEST_UNSET"}, {Env: "QODTEST_EMPTY"}, {File: "testdata/secrets/empty-secret"}, {File: "testdata/secrets/none"}, {}} {
		if _, err := s.Read(); err == nil {
			t.Errorf("%v: read without error", s)
		}
	}
	if got := fmt.Sprintf("%v %+v", env, env); strings.Contains(got, secretValue) {
		t.Errorf("Secret prints its value: %s", got)
	}
}

func TestErrorFormat(t *testing.T) {
	es := Errors{
		{File: "c.yaml", Line: 3, Column: 7, Path: "ues[0].msisdn", Msg: "bad"},
		{File: "c.yaml", Line: 2, Msg: "YAML syntax: x"},
		{File: "c.yaml", Msg: "cannot read config"},
	}
	want := "c.yaml:3:7: ues[0].msisdn: bad\nc.yaml:2: YAML syntax: x\nc.yaml: cannot read config"
	if got := es.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := Load("testdata/no-such.yaml"); err == nil || err.Error() != "testdata/no-such.yaml: cannot read config: testdata/no-such.yaml does not exist" {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"msisdn", "ipv4", "ipv6", "application_server", "ues", "qos"}
	for got, want := range map[string]string{
		"msidn": "msisdn", "ipv5": "ipv4", "applcation_server": "application_server",
		"ue": "ues", "UES": "ues", "xyz": "", "ip": "", "qso": "qos",
	} {
		s := suggest(got, known)
		if (want == "") != (s == "") || (want != "" && !strings.Contains(s, `"`+want+`"`)) {
			t.Errorf("suggest(%q) = %q, want %q", got, s, want)
		}
	}
}

// FuzzParse: no input makes Parse panic, and a failure always says where.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(dir + "/*.yaml")
		for _, file := range files {
			data, _ := os.ReadFile(file)
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(filepath.Join("testdata", "bad", "fuzz.yaml"), data)
		if err == nil {
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not Errors: %v", err)
		}
	})
}

// TestAliasBombs: aliases that expand exponentially or refer to themselves
// end in an error, not in a hang or a stack overflow.
func TestAliasBombs(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString("x-m0: &m0 {name: x}\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&laughs, "x-m%d: &m%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				laughs.WriteString(", ")
			}
			fmt.Fprintf(&laughs, "*m%d", i-1)
		}
		laughs.WriteString("]}\n")
	}
	laughs.WriteString("ues: [*m9, *m9, *m9]\n")
	for name, doc := range map[string]string{
		"laughs":         laughs.String(),
		"self merge":     "x-a: &a {<<: *a}\nues: [*a]",
		"self reference": "defaults: &d {labels: *d}",
		"self list":      "ues: &a [*a]",
	} {
		_, err := Parse("bomb.yaml", []byte(doc))
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCheck(t *testing.T) {
	setTestEnv(t)
	var out, errOut strings.Builder
	if err := Check(&out, &errOut, "testdata/bad/many-mistakes.yaml"); err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) != 8 || lines[7] != "testdata/bad/many-mistakes.yaml: FAILED: 7 problems" || out.Len() != 0 {
		t.Errorf("stdout %q, stderr:\n%s", out.String(), errOut.String())
	}

	out.Reset()
	errOut.Reset()
	if err := Check(&out, &errOut, "testdata/warn/warnings.yaml"); err != nil {
		t.Fatal(err)
	}
	want := `testdata/warn/warnings.yaml:3:13: warning: api.base_url: plain http: credentials and session requests travel unencrypted
testdata/warn/warnings.yaml:8:15: warning: notifications.public_url: ends in /notifications, and the operator appends /notifications itself: it will call http://qodwatch.example.com/notifications/notifications
testdata/warn/warnings.yaml:8:15: warning: notifications.public_url: plain http: the notification token travels unencrypted
testdata/warn/warnings.yaml:19:20: warning: rules.used.breach.any[0]: "loss > 2%" reads the loss over the last for (20s): an outage of 400ms meets it and buys; latency conditions count a lost packet as an endless round trip and see outages step by step (or put the loss in an all-list with them)
testdata/warn/warnings.yaml:23:3: warning: rules.unused: no UE uses this rule
testdata/warn/warnings.yaml: OK: 1 UE, 2 rules, 1 probe, auth bearer, dialect devedge, 5 warnings
`
	if out.String() != want || errOut.Len() != 0 {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr: %s", out.String(), want, errOut.String())
	}
}

// TestAddressWarnings: settings that load but that an operator may refuse,
// or that probe the wrong host.
func TestAddressWarnings(t *testing.T) {
	base := `api: {base_url: "https://api.example.com/qod/v1", dialect: %s, auth: {type: none}}
state_dir: /var/lib/qodwatch
defaults: {application_server: {ipv4: %s}, probes: [icmp], rule: r}
ues:
  - {name: camera-7, ipv4: %s}
rules:
  r: {breach: {any: ["latency_p95 > 80ms"], for: 20s}, recover: {all: ["latency_p95 < 50ms"], for: 60s}, qos: QOS_E, duration: 10m}
`
	cases := []struct {
		dialect, as, ue string
		want            string // the warning's path, "" for none
	}{
		{"camara-v0", "203.0.113.0/24", "10.44.0.7", "defaults.application_server.ipv4"},
		{"camara-v0", "203.0.113.10", "10.44.0.7", ""},
		{"devedge", "203.0.113.0/24", "10.44.0.7", ""}, // DevEdge's own example sends a prefix
		{"camara-v1", "203.0.113.0/24", "10.44.0.7", ""},
		{"camara-v1", "203.0.113.10", "{public: 198.51.100.1, private: 10.44.0.7}", "ues[0].target"},
	}
	for _, c := range cases {
		cfg, err := Parse("q.yaml", fmt.Appendf(nil, base, c.dialect, c.as, c.ue))
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		var paths []string
		for _, w := range cfg.Warnings {
			paths = append(paths, w.Path)
		}
		if want := []string{c.want}; c.want == "" && len(paths) != 0 || c.want != "" && !slices.Equal(paths, want) {
			t.Errorf("%s, application_server %s, ue ipv4 %s: warnings %v, want %q", c.dialect, c.as, c.ue, cfg.Warnings, c.want)
		}
	}
}
