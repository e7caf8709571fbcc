package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a non-negative duration in Go syntax: "80ms", "1.5s",
// "10m", "2h", "1h30m". A bare number other than "0" is refused because its
// unit would be a guess.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty duration (write e.g. 80ms, 1.5s, 10m, 2h)")
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		if _, nerr := strconv.ParseFloat(t, 64); nerr == nil {
			return 0, fmt.Errorf("%q has no unit (write e.g. %sms or %ss)", s, t, t)
		}
		return 0, fmt.Errorf("%q is not a duration (write e.g. 80ms, 1.5s, 10m, 2h)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// ParseRatio parses a percentage such as "2%" or "0.5%" into a ratio in
// 0..1 (0.02, 0.005). The percent sign is required: "loss > 2" could mean
// 2% or 200%, and a guess would buy or skip sessions by mistake.
func ParseRatio(s string) (float64, error) {
	t := strings.TrimSpace(s)
	num, ok := strings.CutSuffix(t, "%")
	if !ok {
		return 0, fmt.Errorf("%q is not a percentage (write e.g. 2%% or 0.5%%)", s)
	}
	v, err := parseFinite(strings.TrimSpace(num))
	if err != nil {
		return 0, fmt.Errorf("%q is not a percentage (write e.g. 2%% or 0.5%%)", s)
	}
	if v < 0 || v > 100 {
		return 0, fmt.Errorf("%q is outside 0%%..100%%", s)
	}
	return v / 100, nil
}

// rateUnits maps the units ParseRate accepts to bytes per second. Lower-case
// "b" is bits, upper-case "B" is bytes; decimal prefixes as network speeds
// are quoted, binary ones (KiB/s) for byte counts.
var rateUnits = map[string]float64{
	"bps": 1.0 / 8, "kbps": 1e3 / 8, "Kbps": 1e3 / 8, "Mbps": 1e6 / 8, "Gbps": 1e9 / 8, "Tbps": 1e12 / 8,
	"bit/s": 1.0 / 8, "kbit/s": 1e3 / 8, "Kbit/s": 1e3 / 8, "Mbit/s": 1e6 / 8, "Gbit/s": 1e9 / 8,
	"B/s": 1, "kB/s": 1e3, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9,
	"KiB/s": 1 << 10, "MiB/s": 1 << 20, "GiB/s": 1 << 30,
}

// ParseRate parses a data rate such as "5Mbps", "500kbps", "1Gbps" (bits per
// second) or "2MB/s", "1MiB/s" (bytes per second) and returns BYTES per
// second, the unit the monitor reports throughput in.
func ParseRate(s string) (bytesPerSecond float64, err error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool {
		return (r < '0' || r > '9') && r != '.' && r != 'e' && r != 'E' && r != '+' && r != '-'
	})
	// An exponent's "e" is part of the number only when digits follow; "5e"
	// never names a unit we know, so this simple split is enough.
	if i <= 0 {
		return 0, fmt.Errorf("%q is not a rate (write e.g. 5Mbps, 500kbps, 1Gbps)", s)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	v, err := parseFinite(num)
	if err != nil {
		return 0, fmt.Errorf("%q is not a rate (write e.g. 5Mbps, 500kbps, 1Gbps)", s)
	}
	f, ok := rateUnits[unit]
	if !ok {
		hint := ""
		if strings.EqualFold(unit, "mbps") || strings.EqualFold(unit, "gbps") || strings.EqualFold(unit, "kbps") {
			hint = "; bits per second are written kbps, Mbps, Gbps"
		}
		return 0, fmt.Errorf("%q has unknown rate unit %q (use bps, kbps, Mbps, Gbps, or B/s, kB/s, MB/s, MiB/s%s)", s, unit, hint)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return v * f, nil
}

// ParseNumber parses a plain finite number such as "3e6" or "0.25", the
// threshold of a prometheus-source metric.
func ParseNumber(s string) (float64, error) {
	v, err := parseFinite(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

func parseFinite(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not finite")
	}
	return v, nil
}

// FormatRate writes a rate given in bytes per second as bits per second with
// a readable prefix: 625000 → "5Mbps".
func FormatRate(bytesPerSecond float64) string {
	bits := bytesPerSecond * 8
	switch a := math.Abs(bits); {
	case math.IsInf(bits, 0) || math.IsNaN(bits):
		return strconv.FormatFloat(bits, 'g', -1, 64) + "bps"
	case a >= 1e9:
		return trimFloat(bits/1e9) + "Gbps"
	case a >= 1e6:
		return trimFloat(bits/1e6) + "Mbps"
	case a >= 1e3:
		return trimFloat(bits/1e3) + "kbps"
	default:
		return trimFloat(bits) + "bps"
	}
}

// FormatRatio writes a ratio as a percentage: 0.031 → "3.1%".
func FormatRatio(r float64) string { return trimFloat(r*100) + "%" }

// formatSeconds writes a duration given in seconds the way people read
// latencies: 0.1123 → "112ms", 1.5 → "1.5s". +Inf (every probe lost) reads
// "no reply".
func formatSeconds(sec float64) string {
	if math.IsInf(sec, 1) {
		return "no reply"
	}
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Millisecond:
		d = d.Round(time.Microsecond)
	case d < 100*time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	case d < 10*time.Second:
		d = d.Round(time.Millisecond)
	default:
		d = d.Round(100 * time.Millisecond)
	}
	return d.String()
}

// formatSpan writes a held duration rounded to what a person cares about.
func formatSpan(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// trimFloat formats with about 3 significant digits and no trailing zeros,
// never in exponent form for the magnitudes rates and percentages take.
func trimFloat(v float64) string {
	if a := math.Abs(v); a >= 100 || v == math.Trunc(v) {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
