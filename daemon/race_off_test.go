//go:build !race

package daemon

// largeSD is the size of the large http_sd answer in the tests (issue 13).
const largeSD = 200_000
