package config

import (
	"strings"
	"testing"
)

// Issue 10: check warns about every rule and probe combination that lets a
// degradation shorter than the breach's `for` buy, and about nothing else.
func TestBlipWarnings(t *testing.T) {
	const head = blipHead + "ues:\n"
	for _, tc := range []struct {
		name, ues, rule string
		want            string // "" for none
	}{
		{
			name: "latency stepped: none",
			ues:  `  - {name: cam, ipv4: 10.44.0.7, rule: r, probes: [{icmp: {interval: 200ms, packets: 1}}]}`,
			rule: `{any: ["latency_p95 > 80ms"], for: 5s}`,
		},
		{
			name: "over the window",
			ues:  `  - {name: cam, ipv4: 10.44.0.7, rule: r, probes: [icmp]}`,
			rule: `{any: ["latency_p95 > 80ms"], for: 5s, over: window}`,
			want: `rules.r.breach.over: window: the breach reads the 30s window, so a degradation as short as one bad sample holds it for up to 30s: shorter than for (5s) can buy`,
		},
		{
			name: "loss alone",
			ues:  `  - {name: cam, ipv4: 10.44.0.7, rule: r, probes: [icmp]}`,
			rule: `{any: ["latency_p95 > 80ms", "loss > 5%"], for: 10s}`,
			want: `rules.r.breach.any[1]: "loss > 5%" reads the loss over the last for (10s): an outage of 500ms meets it`,
		},
		{
			name: "loss beside latency in an all-list: none",
			ues:  `  - {name: cam, ipv4: 10.44.0.7, rule: r, probes: [icmp]}`,
			rule: `{all: ["latency_p95 > 80ms", "loss > 5%"], for: 10s}`,
		},
		{
			name: "a latency round as long as for",
			ues:  `  - {name: cam, ipv4: 10.44.0.7, rule: r, probes: [{icmp: {interval: 5s}}]}`,
			rule: `{any: ["latency_p95 > 80ms"], for: 5s}`,
			want: `rules.r.breach.for: 5s is not longer than the latency step of 6.25s`,
		},
		{
			name: "a throughput run standing for the for",
			ues:  `  - {name: cam, ipv4: 10.44.0.7, rule: r, probes: [{throughput: {url: "http://{{ue.ipv4}}/x", interval: 10s}}]}`,
			rule: `{any: ["throughput_p50 < 5Mbps"], for: 15s}`,
			want: `rules.r.breach.for: 15s is not longer than a throughput run stands for (15s, an interval and a half)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("QODTEST_SECRET", secretValue)
			rec := `{all: ["latency_p95 < 40ms", "loss < 1%"], for: 10s}`
			if strings.Contains(tc.rule, "throughput") {
				rec = `{all: ["throughput_p50 > 8Mbps"], for: 10s}`
			}
			yaml := head + tc.ues + "\nrules:\n  r:\n    breach: " + tc.rule + "\n    recover: " + rec + "\n    qos: QOS_E\n    duration: 10m\n"
			wantOneWarning(t, yaml, tc.want)
		})
	}
}

// The same warnings for the UEs an ue_sd template makes: with one echo
// every 30 s and `for: 10s`, a single lost echo bought a session for each
// of thousands of discovered UEs.
func TestBlipWarningsOfTemplates(t *testing.T) {
	t.Setenv("QODTEST_SECRET", secretValue)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, interval string
		want           string // "" for none
	}{
		{"a round longer than for", "30s", `ue_sd[0].template.probes: with rule r: 10s is not longer than the latency step of 37.5s`},
		{"rounds shorter than for: none", "2s", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := blipHead + `ue_sd:
  - name: fleet
    file_sd: {files: [` + dir + `/*.json]}
    template: {ipv4: "{{target}}", rule: r, probes: [{icmp: {interval: ` + tc.interval + `, packets: 1}}]}
rules:
  r:
    breach: {any: ["latency_max > 5s"], for: 10s}
    recover: {all: ["latency_max < 1s"], for: 10s}
    qos: QOS_E
    duration: 10m
`
			wantOneWarning(t, yaml, tc.want)
		})
	}
}

// blipHead is what the blip tests' configs share before their UEs.
const blipHead = `api:
  base_url: https://qod.example.com/v1
  auth: {type: bearer, token: "${QODTEST_SECRET}"}
state_dir: /var/lib/qodwatch
defaults:
  application_server: {ipv4: 203.0.113.10}
`

// wantOneWarning parses yaml and wants exactly one warning, starting with
// want ("": none).
func wantOneWarning(t *testing.T, yaml, want string) {
	t.Helper()
	cfg, err := Parse("inline.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Path+": "+w.Msg)
	}
	switch {
	case want == "" && len(got) > 0:
		t.Errorf("warnings %q, want none", got)
	case want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], want)):
		t.Errorf("warnings %q, want one starting %q", got, want)
	}
}
