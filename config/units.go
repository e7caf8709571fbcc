package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var sizeUnits = map[string]float64{
	"": 1, "B": 1,
	"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
}

// parseSize parses a byte count: "2MiB", "500KB", "1.5MB", or a plain
// number of bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size (write e.g. 2MiB, 500KB or 65536)", s)
	}
	f, ok := sizeUnits[unit]
	if !ok {
		hint := ""
		if strings.HasSuffix(unit, "b") || strings.HasSuffix(unit, "bit") {
			hint = "; sizes are in bytes (B), not bits"
		}
		return 0, fmt.Errorf("%q has unknown size unit %q (use B, kB, MB, GB, KiB, MiB or GiB%s)", s, unit, hint)
	}
	b := v * f
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if b != math.Trunc(b) {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	return int64(b), nil
}
