package kubernetes_test

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qodwatch/qodwatch/deploy/deploytest"
)

// No Docker engine runs here (and CI may have none), so the Dockerfile is
// checked by reading it: the image the pod runs must be static and
// non-root as the manifest's uid, and must start what the manifest asks.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // FROM, RUN, USER, ... upper case
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	from, name string
	ins        []instruction
}

func readDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(deploytest.RepoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) > 0 {
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a final one", len(stages))
	}
	return stages
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// shellWords splits a RUN line as sh does for the simple quoting used.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestImageIsStaticAndNonRoot checks the Dockerfile: a build stage that
// builds ./cmd/qodwatch as the tests do (CGO_ENABLED=0, -trimpath), a
// final stage on distroless static or scratch whose USER is numeric and
// the pod's runAsUser:runAsGroup, an ENTRYPOINT that is the binary the
// build stage made, so the manifest's args (run ...) start the daemon. And
// the binary built that way really is static (no ELF interpreter, no
// shared libraries).
func TestImageIsStaticAndNonRoot(t *testing.T) {
	stages := readDockerfile(t)
	final := stages[len(stages)-1]
	if !regexp.MustCompile(`^(scratch|gcr\.io/distroless/static(-debian\d+)?(:[\w.-]+)?(@sha256:[0-9a-f]{64})?)$`).MatchString(final.from) {
		t.Errorf("final stage FROM %s: want scratch or distroless static (no libc, no shell)", final.from)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("final stage has no USER: the image would run as root")
	}
	uid, gid, _ := podIDs(t, loadManifests(t))
	user := users[len(users)-1]
	u, g, ok := strings.Cut(user, ":")
	un, err1 := strconv.Atoi(u)
	gn, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("USER %s: want numeric uid:gid (a name cannot be checked by runAsNonRoot)", user)
	}
	if un == 0 || un != uid || gn != gid {
		t.Errorf("USER %s, want the pod's runAsUser:runAsGroup %d:%d", user, uid, gid)
	}

	// The build stage's go build, and where its binary lands.
	var build []string
	for _, s := range stages[:len(stages)-1] {
		for _, run := range s.all("RUN") {
			if w := shellWords(run); slices.Contains(w, "go") && slices.Contains(w, "build") {
				build = w
			}
		}
	}
	if build == nil {
		t.Fatal("no RUN ... go build in a build stage")
	}
	for _, want := range slices.Concat(deploytest.StaticBuildEnv, deploytest.StaticBuildFlags, []string{"./cmd/qodwatch"}) {
		if !slices.Contains(build, want) {
			t.Errorf("go build %q lacks %q (deploytest builds with it)", build, want)
		}
	}
	out := build[slices.Index(build, "-o")+1]
	var copied string
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		if strings.HasPrefix(f[0], "--from=") && f[1] == out {
			copied = f[2]
		}
	}
	var entry []string
	if e := final.all("ENTRYPOINT"); len(e) > 0 {
		if err := json.Unmarshal([]byte(e[len(e)-1]), &entry); err != nil {
			t.Fatalf("ENTRYPOINT %s: want the exec (JSON) form: %v", e[len(e)-1], err)
		}
	}
	if copied == "" || len(entry) != 1 || entry[0] != copied {
		t.Errorf("ENTRYPOINT %q is not the binary copied from %s (to %q)", entry, out, copied)
	}
	qw := sidecar(t, &loadManifests(t).deployment(t).Spec.Template.Spec)
	if len(qw.Command) != 0 || len(qw.Args) == 0 || qw.Args[0] != "run" {
		t.Errorf("sidecar command %q args %q: want the image's ENTRYPOINT with args run ...", qw.Command, qw.Args)
	}

	bin := deploytest.BuildQodwatch(t, t.TempDir())
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	libs, err := ef.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: dynamically linked, it cannot run on distroless static or scratch")
		}
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
}

// TestDockerignoreKeepsTrackedFiles checks that .dockerignore leaves out
// no file git tracks: the build stage's tree is then the commit's, and
// `qodwatch version` says modified only when it was.
func TestDockerignoreKeepsTrackedFiles(t *testing.T) {
	root := deploytest.RepoRoot(t)
	git := deploytest.RequireTool(t, "git")
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var pats []*regexp.Regexp
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore: exceptions (%s) are not checked here", line)
		}
		pats = append(pats, dockerignoreRegexp(strings.TrimPrefix(line, "/")))
	}
	if len(pats) == 0 {
		t.Fatal(".dockerignore has no pattern")
	}
	// The check can fail: the patterns do match the files they are for.
	for _, p := range []string{"qodwatch", "bench/out/x.json", "cmd/qodwatch/qodwatch.test"} {
		if !ignored(pats, p) {
			t.Errorf(".dockerignore does not leave out %s", p)
		}
	}
	out, err := exec.Command(git, "-C", root, "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	files := strings.Fields(string(out))
	if !slices.Contains(files, "go.mod") {
		t.Fatalf("git ls-files lists no go.mod: %q...", files[:min(5, len(files))])
	}
	for _, f := range files {
		if ignored(pats, f) {
			t.Errorf(".dockerignore leaves out %s, which git tracks", f)
		}
	}
}

// dockerignoreRegexp turns a pattern into a regexp of Docker's rules:
// * and ? within one path element, ** across elements.
func dockerignoreRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// ignored: a pattern leaves out a path if it matches it or a parent.
func ignored(pats []*regexp.Regexp, path string) bool {
	for _, p := range pats {
		for prefix := path; prefix != "." && prefix != "/"; prefix = filepath.Dir(prefix) {
			if p.MatchString(prefix) {
				return true
			}
		}
	}
	return false
}

// TestDockerfileBuildStampsTheCommit runs the Dockerfile's build stage
// without Docker: its RUN lines, in order, in a fresh clone (the build
// context of a checkout, .git included, less what .dockerignore leaves
// out, which git does not track), and wants the binary's version to name
// the clone's commit, unmodified: what an image built from a checkout
// reports.
func TestDockerfileBuildStampsTheCommit(t *testing.T) {
	git := deploytest.RequireTool(t, "git")
	stages := readDockerfile(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if out, err := exec.Command(git, "clone", "-q", "--no-hardlinks", deploytest.RepoRoot(t), src).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	rev, err := exec.Command(git, "-C", src, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, s := range stages[:len(stages)-1] {
		for _, run := range s.all("RUN") {
			cmd := exec.Command("/bin/sh", "-ec", strings.ReplaceAll(run, "/out/", out+"/"))
			cmd.Dir = src
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("RUN %s: %v\n%s", run, err, b)
			}
			runs++
		}
	}
	if runs == 0 {
		t.Fatal("the build stage has no RUN")
	}
	version, err := exec.Command(filepath.Join(out, "qodwatch"), "version").Output()
	if err != nil {
		t.Fatalf("qodwatch version: %v", err)
	}
	for _, want := range []string{"revision:    " + strings.TrimSpace(string(rev)) + "\n", "modified:    false\n"} {
		if !strings.Contains(string(version), want) {
			t.Errorf("the image's qodwatch version lacks %q:\n%s", want, version)
		}
	}
	t.Logf("%s", version)
}
