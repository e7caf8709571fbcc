package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestLockStateDirIsExclusiveAndNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	first, err := LockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockStateDir(dir)
	if !errors.Is(err, ErrStateDirInUse) {
		t.Fatalf("second lock: %v, want ErrStateDirInUse", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder (%s)", err, want)
	}
	// The state file's own short lock is another file: the sessions
	// commands keep working beside a running daemon.
	sf, err := OpenStateFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Update(func(s *State) error { return nil }); err != nil {
		t.Fatalf("state file update beside a held daemon lock: %v", err)
	}
	first.Release()
	again, err := LockStateDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Release()
}
