package daemon

import (
	"os"
	"syscall"
)

// failpointEnv names the crash point for the kill -9 tests: when it equals
// a failpoint's name the process kills itself there with SIGKILL, exactly as
// an OOM kill or a power cut would stop it between two steps.
const failpointEnv = "QODWATCH_FAILPOINT"

var failpointName = os.Getenv(failpointEnv)

// Failpoints, in the order a session's life passes them.
const (
	fpAfterIntent = "after-intent" // intent durable, POST not sent
	fpAfterCreate = "after-create" // operator answered the POST, session not recorded
	fpAfterRecord = "after-record" // session recorded, policy not told
	fpBeforeEnd   = "before-delete"
	fpAfterEnd    = "after-delete" // operator ended it, state file still lists it
)

func failpoint(name string) {
	if failpointName != "" && failpointName == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
