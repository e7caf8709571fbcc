package daemon

import (
	"testing"

	"github.com/qodwatch/qodwatch/policy"
)

// The window's figures are computed on every sample only for rules that
// read them: a list over: window, or a prometheus metric.
func TestSpansOfNeedsWindowOnlyWhenReadFromIt(t *testing.T) {
	for _, tc := range []struct {
		name            string
		breach, recover string
		over            string
		window          bool
	}{
		{"step", "latency_p95 > 80ms", "latency_p95 < 40ms", "", false},
		{"loss span", "loss > 2%", "loss < 1%", "", false},
		{"over window", "latency_p95 > 80ms", "latency_p95 < 40ms", "window", true},
		{"prometheus metric", "prom.app_bitrate < 1000", "prom.app_bitrate > 2000", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := policy.CompileRule("r", policy.RuleSpec{
				Breach:   policy.CondSpec{Any: []string{tc.breach}, For: "5s", Over: tc.over},
				Recover:  policy.CondSpec{All: []string{tc.recover}, For: "5s"},
				QoS:      "QOS_E",
				Duration: "10m",
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := spansOf(r).window; got != tc.window {
				t.Fatalf("spansOf(%q).window = %v, want %v", tc.breach, got, tc.window)
			}
		})
	}
}
