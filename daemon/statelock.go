package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DaemonLockFileName is the file in the state directory a running daemon
// holds an exclusive lock on for its whole life (issue 8). A second daemon
// on the same state directory (a unit started twice, a copy-pasted command,
// a pod during a rollout) would adopt the first one's sessions, buy for the
// same UEs and, with release_on_shutdown, end sessions it does not own. The
// `qodwatch sessions` commands do not take it: they take the state file's
// short lock (.sessions.lock) for each update, as the daemon does.
const DaemonLockFileName = "qodwatch.lock"

// ErrStateDirInUse is returned by LockStateDir when another process holds
// the state directory.
var ErrStateDirInUse = errors.New("state directory in use by another qodwatch")

// StateDirLock is a held lock on a state directory. The kernel drops it
// when the process ends, however it ends (kill -9 included), so a crashed
// daemon never blocks its successor.
type StateDirLock struct {
	f *os.File
}

// LockStateDir takes the daemon's exclusive lock on dir without waiting,
// and writes this process's pid into the lock file for the next one to
// name. If another process holds it, the error wraps ErrStateDirInUse and
// names that process's pid.
func LockStateDir(dir string) (*StateDirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, DaemonLockFileName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by %s; stop that daemon first, or give this one another state_dir",
				ErrStateDirInUse, path, holderOf(path))
		}
		return nil, fmt.Errorf("lock state directory %s: %w", path, err)
	}
	// The pid is for the message of the next one only: the lock itself
	// is the flock, which a stale pid cannot fake.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StateDirLock{f: f}, nil
}

// holderOf names the process that wrote its pid into the lock file.
func holderOf(path string) string {
	b, err := os.ReadFile(path)
	pid := strings.TrimSpace(string(b))
	if err != nil || pid == "" {
		return "another process (pid not yet written)"
	}
	if _, err := strconv.Atoi(pid); err != nil {
		return "another process"
	}
	return "pid " + pid
}

// Release drops the lock. Releasing twice, or a nil lock, is harmless.
func (l *StateDirLock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}
