//go:build race

package main

// raceEnabled builds the binary under test with -race too, so the daemon's
// own goroutines are checked while the end-to-end tests drive it.
const raceEnabled = true
