//go:build race

package daemon

// largeSD is the size of the large http_sd answer in the tests: 200,000
// UEs (issue 13) take ~25x longer under the race detector, so 40,000 there.
const largeSD = 40_000
