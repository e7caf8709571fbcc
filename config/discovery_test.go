package config

import (
	"fmt"
	"strings"
	"testing"
)

const sdConfig = `
dry_run: true
defaults:
  application_server: {ipv4: 203.0.113.10}
  rule: low
  probes: [{icmp: {interval: 1s}}]
rules:
  low:
    breach: {any: ["latency_p95 > 80ms"], for: 5s}
    recover: {all: ["latency_p95 < 40ms"], for: 10s}
    qos: QOS_E
    duration: 10m
  high:
    breach: {any: ["latency_p95 > 50ms"], for: 5s}
    recover: {all: ["latency_p95 < 20ms"], for: 10s}
    qos: QOS_E
    duration: 10m
guards:
  max_sessions_per_group: {cams: 5}
ues:
  - name: static-1
    ipv4: 10.0.0.1
ue_sd:
  - name: cams
    file_sd: {files: [ues/*.json]}
    grace: 1m
    template:
      name: "cam-{{labels.id}}"
      ipv4: "{{target}}"
      msisdn: "{{labels.msisdn}}"
      group: cams
      rule: "{{labels.rule}}"
      labels: {site: "{{labels.site}}"}
`

func loadSD(t *testing.T, yml string) *Config {
	t.Helper()
	cfg, err := Parse(t.TempDir()+"/c.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestResolveTargets(t *testing.T) {
	cfg := loadSD(t, sdConfig)
	if len(cfg.Discovery) != 1 || cfg.Discovery[0].Grace.String() != "1m0s" || len(cfg.Warnings) != 0 {
		t.Fatalf("discovery %+v warnings %v", cfg.Discovery, cfg.Warnings)
	}
	groups := []TargetGroup{
		{Targets: []string{"10.1.0.1", "10.1.0.2"}, Labels: map[string]string{"id": "a", "msisdn": "15550001", "rule": "high", "site": "x"}},
		{Targets: []string{"10.1.0.3"}, Labels: map[string]string{"id": "b"}},
		{Targets: []string{"not-an-ip"}, Labels: map[string]string{"id": "c"}},
		{Targets: []string{"10.1.0.5"}, Labels: map[string]string{"id": "d", "rule": "nope"}},
	}
	ues, bad := cfg.ResolveTargets("cams", "ues/a.json", groups)
	var names []string
	for _, u := range ues {
		names = append(names, u.Name+"/"+u.RuleName+"/"+u.Group)
	}
	// Both of the first group have the name cam-a: the merge refuses the second.
	if got := strings.Join(names, " "); got != "cam-a/high/cams cam-a/high/cams cam-b/low/cams" {
		t.Errorf("resolved %s", got)
	}
	if ues[0].Labels["site"] != "x" || ues[0].MSISDN != "15550001" || len(ues[0].Probes) != 1 || ues[0].ApplicationServer.IPv4 != "203.0.113.10" {
		t.Errorf("first UE %+v", ues[0].UE)
	}
	if _, ok := ues[2].Labels["site"]; ok {
		t.Errorf("an empty label is set: %v", ues[2].Labels)
	}
	want := []string{
		`ue_sd cams: ues/a.json: [2].targets[0]: ipv4: "not-an-ip" is not an IPv4 address (e.g. 10.44.0.7)`,
		`ue_sd cams: ues/a.json: [3].targets[0]: rule: unknown rule "nope"; defined: low, high`,
	}
	if len(bad) != len(want) {
		t.Fatalf("bad entries %v", bad)
	}
	for i := range want {
		if bad[i].Error() != want[i] {
			t.Errorf("bad[%d]\n got %s\nwant %s", i, bad[i], want[i])
		}
	}
	merged, left := cfg.WithDiscovered(ues)
	if len(merged.UEs) != 3 || len(cfg.UEs) != 1 || len(left) != 1 || !strings.Contains(left[0].Error(), `ue "cam-a" left out: name=cam-a is already taken by ue "cam-a"`) {
		t.Errorf("merged %d UEs, left out %v", len(merged.UEs), left)
	}
	// A discovered UE cannot be a static one under another name.
	dup, _ := cfg.ResolveTargets("cams", "u", []TargetGroup{{Targets: []string{"10.0.0.1"}, Labels: map[string]string{"id": "z"}}})
	if _, left := cfg.WithDiscovered(dup); len(left) != 1 || !strings.Contains(left[0].Error(), `ipv4=10.0.0.1 is already taken by ue "static-1"`) {
		t.Errorf("left out %v", left)
	}
}

func TestDiscoveryConfigErrors(t *testing.T) {
	for _, tc := range []struct{ sd, want string }{
		{`[{name: a}]`, "ue_sd[0]: give file_sd (files: [GLOB...]) or http_sd (url: URL)"},
		{`[{name: a, file_sd: {files: [x.txt]}}]`, `ue_sd[0].file_sd.files[0]: "x.txt": the name must end in .json, .yaml or .yml`},
		{`[{name: a, http_sd: {url: "http://u:p@h/x"}}]`, "URL carries a user name or password"},
		{`[{name: a, file_sd: {files: [x.json]}, template: {name: "{{labels.x}}-{{nope}}"}}]`, "unknown placeholder {{nope}}"},
		{`[{name: a, file_sd: {files: [x.json]}, template: {rule: nope}}]`, `ue_sd[0].template.rule: unknown rule "nope"`},
		{`[{name: a, file_sd: {files: [x.json]}}, {name: a, file_sd: {files: [y.json]}}]`, `ue_sd[1].name: "a" is already the name of ue_sd[0]`},
		{`[{name: a, http_sd: {url: "http://h/x", authorization: {credentials: plain}}}]`, "secrets are not written into the config"},
	} {
		yml := strings.Replace(sdConfig, sdConfig[strings.Index(sdConfig, "ue_sd:"):], "ue_sd: "+tc.sd+"\n", 1)
		_, err := Parse(t.TempDir()+"/c.yaml", []byte(yml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ue_sd %s: got %v, want %q", tc.sd, err, tc.want)
		}
	}
}

// BenchmarkResolveTargets100k resolves 100,000 discovered UEs (issue 13:
// load, reload and discovery of 100,000 UEs within 2 s).
func BenchmarkResolveTargets100k(b *testing.B) {
	cfg, err := Parse(b.TempDir()+"/c.yaml", []byte(sdConfig))
	if err != nil {
		b.Fatal(err)
	}
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	groups := make([]TargetGroup, n)
	for i := range groups {
		groups[i] = TargetGroup{Targets: []string{fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255)}, Labels: map[string]string{"id": fmt.Sprint(i), "rule": "low"}}
	}
	for b.Loop() {
		ues, bad := cfg.ResolveTargets("cams", "f", groups)
		if len(bad) > 0 {
			b.Fatal(bad[0])
		}
		if m, left := cfg.WithDiscovered(ues); len(left) > 0 || len(m.UEs) != n+1 {
			b.Fatal(len(left), left[0])
		}
	}
}
