//go:build qodwatch_failpoints

package daemon

import (
	"os"
	"syscall"
)

// failpointEnv names the crash point for the kill -9 tests: when it equals
// a failpoint's name the process kills itself there with SIGKILL, exactly as
// an OOM kill or a power cut would stop it between two steps. Only a binary
// built with -tags qodwatch_failpoints reads it (failpoint_off.go is the
// shipped twin): an environment variable must never be able to kill a
// production daemon between two steps of a session's life.
const failpointEnv = "QODWATCH_FAILPOINT"

var failpointName = os.Getenv(failpointEnv)

func failpoint(name string) {
	if failpointName != "" && failpointName == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
