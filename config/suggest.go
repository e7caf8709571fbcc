package config

import (
	"fmt"
	"strings"
)

// suggest returns ` (did you mean "x"?)` when one of known is a likely
// misspelling of got, else "".
func suggest(got string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		limit := 2
		if len(k) <= 4 {
			limit = 1 // short names: "ip" must not suggest "qos"
		}
		if dist := editDistance(strings.ToLower(got), k); dist <= limit && dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment) between a and b, counting a swap of neighbours as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
