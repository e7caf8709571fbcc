package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestVersionNamesTheCommit builds the binary from a git repository (a
// copy of this module's files as git sees them, committed: the go command
// does not stamp builds in a linked worktree, and a developer's checkout
// may be dirty) with -buildvcs=true, which overrides a GOFLAGS=-buildvcs=false
// like this machine's, and wants `qodwatch version` to name the commit,
// its time and whether the tree was modified; built with -buildvcs=false
// it must say that it has no VCS information.
func TestVersionNamesTheCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary three times")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed, and CI is set")
		}
		t.Skip("git is not installed")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := exec.Command(git, "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v", root, err)
	}
	repo := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the working tree, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(repo, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(git, append([]string{"-C", repo, "-c", "user.name=qodwatch test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitIn("init", "-q")
	gitIn("add", "-A")
	gitIn("commit", "-q", "-m", "version test")
	rev := gitIn("rev-parse", "HEAD")
	commitTime, err := time.Parse(time.RFC3339, gitIn("log", "-1", "--format=%cI"))
	if err != nil {
		t.Fatal(err)
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	version := func(buildvcs string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "qodwatch")
		build := exec.Command(goTool, "build", "-trimpath", "-buildvcs="+buildvcs, "-o", bin, "./cmd/qodwatch")
		build.Dir = repo
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build -buildvcs=%s: %v\n%s", buildvcs, err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("qodwatch version: %v", err)
		}
		return string(out)
	}

	clean := version("true")
	t.Logf("clean:\n%s", clean)
	for _, want := range []string{
		"\n  revision:    " + rev + "\n",
		"\n  modified:    false\n",
		"\n  commit time: " + commitTime.UTC().Format(time.RFC3339) + "\n",
	} {
		if !strings.Contains(clean, want) {
			t.Errorf("version of a clean tree lacks %q", want)
		}
	}
	// The go command makes the module version a pseudo-version from the
	// commit (no tag here): v0.0.0-TIME-REV12.
	if m := regexp.MustCompile(`^qodwatch, version (\S+)\n`).FindStringSubmatch(clean); m == nil || !strings.HasSuffix(m[1], rev[:12]) {
		t.Errorf("the first line does not carry the module's pseudo-version of %s", rev[:12])
	}

	// An untracked file makes the tree modified, as git status says.
	if err := os.WriteFile(filepath.Join(repo, "untracked.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirty := version("true")
	if !strings.Contains(dirty, "\n  modified:    true\n") || !strings.Contains(dirty, rev[:12]+"+dirty\n") {
		t.Errorf("version of a modified tree:\n%s", dirty)
	}

	none := version("false")
	if !strings.Contains(none, "built without VCS information") || strings.Contains(none, rev) {
		t.Errorf("version without VCS information:\n%s", none)
	}
}

// TestVersionTextWithoutBuildInfo: a binary with no build information at
// all (not made by the go command as a module) still prints a line.
func TestVersionTextWithoutBuildInfo(t *testing.T) {
	got := versionText(nil, false)
	if !strings.HasPrefix(got, "qodwatch, version unknown") || !strings.Contains(got, runtime.Version()) {
		t.Errorf("got %q", got)
	}
	got = versionText(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, true)
	for _, want := range []string{"version v1.2.3\n", "revision:    abc\n", "modified:    unknown\n", "commit time: unknown\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}
