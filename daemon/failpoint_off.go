//go:build !qodwatch_failpoints

package daemon

// failpoint does nothing in the shipped binary; see failpoint.go.
func failpoint(string) {}
