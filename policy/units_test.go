package policy

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"80ms", 80 * time.Millisecond, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{" 10m ", 10 * time.Minute, ""},
		{"2h", 2 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"0", 0, ""},
		{"", 0, "empty duration"},
		{"80", 0, `"80" has no unit (write e.g. 80ms or 80s)`},
		{"5x", 0, `"5x" is not a duration`},
		{"-5s", 0, `"-5s" is negative`},
	} {
		got, err := ParseDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDuration(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRatio(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  string
	}{
		{"2%", 0.02, ""},
		{"0.5%", 0.005, ""},
		{"100%", 1, ""},
		{" 0 % ", 0, ""},
		{"2", 0, `"2" is not a percentage (write e.g. 2% or 0.5%)`},
		{"0.02", 0, "is not a percentage"},
		{"x%", 0, "is not a percentage"},
		{"101%", 0, "outside 0%..100%"},
		{"-1%", 0, "outside 0%..100%"},
		{"NaN%", 0, "is not a percentage"},
	} {
		got, err := ParseRatio(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRatio(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !near(got, tc.want) {
			t.Errorf("ParseRatio(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64 // bytes per second
		err  string
	}{
		{"5Mbps", 625000, ""},
		{"500kbps", 62500, ""},
		{"1Gbps", 125e6, ""},
		{"8bps", 1, ""},
		{"1.5 Mbps", 187500, ""},
		{"2MB/s", 2e6, ""},
		{"1MiB/s", 1 << 20, ""},
		{"3e6bps", 375000, ""},
		{"5", 0, "is not a rate"},
		{"Mbps", 0, "is not a rate"},
		{"5mbps", 0, `unknown rate unit "mbps"`},
		{"5mbps", 0, "bits per second are written kbps, Mbps, Gbps"},
		{"5 furlongs", 0, `unknown rate unit "furlongs"`},
		{"-5Mbps", 0, "negative"},
	} {
		got, err := ParseRate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRate(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !near(got, tc.want) {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseNumber(t *testing.T) {
	if v, err := ParseNumber(" 3e6 "); err != nil || v != 3e6 {
		t.Errorf("ParseNumber(3e6) = %v, %v", v, err)
	}
	for _, in := range []string{"", "abc", "Inf", "NaN", "5Mbps"} {
		if _, err := ParseNumber(in); err == nil {
			t.Errorf("ParseNumber(%q) accepted", in)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{FormatRate(625000), "5Mbps"},
		{FormatRate(400000), "3.2Mbps"},
		{FormatRate(62500), "500kbps"},
		{FormatRate(125e6), "1Gbps"},
		{FormatRate(10), "80bps"},
		{FormatRatio(0.031), "3.1%"},
		{FormatRatio(0), "0%"},
		{FormatRatio(0.005), "0.5%"},
		{formatSeconds(0.1123), "112ms"},
		{formatSeconds(0.01234), "12.3ms"},
		{formatSeconds(1.5), "1.5s"},
		{formatSeconds(inf), "no reply"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func near(a, b float64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-9*max(1, b)
}
