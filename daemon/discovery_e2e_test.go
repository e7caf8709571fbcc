package daemon_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qodwatch/qodwatch/config"
)

// A file_sd file rewritten while the daemon runs, atomically (rename) and
// not (truncate and write in two steps): a discovered UE gets its session,
// keeps it through every rewrite, a new UE appears, a bad entry is skipped
// and counted, and a UE removed from the file releases its session once
// its grace period is over (here: a reload setting grace to 0).
func TestFileDiscoveryRewrittenWhileRunning(t *testing.T) {
	e := newEnv(t, envOptions{ues: 3})
	dir := e.spec.extraFiles
	sdDir := filepath.Join(dir, "sd")
	if err := os.Mkdir(sdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// ue-1 stays static; ue-2 and ue-3 become discovered UEs cam-2, cam-3.
	// e.spec.ues keeps them (renamed) so that the invariants know their
	// addresses; the config file lists only ue-1.
	var cams []ueSpec
	for i := 1; i < len(e.spec.ues); i++ {
		cams = append(cams, e.spec.ues[i])
		e.spec.ues[i].name = fmt.Sprintf("cam-%d", i)
	}
	static := e.spec
	static.ues = e.spec.ues[:1]
	// One front server for the discovered UEs: /cam-N answers as ue-(N+1).
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/cam-%d", &n); err != nil || n < 1 || n > len(cams) {
			http.NotFound(w, r)
			return
		}
		e.targets[cams[n-1].name].srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	sdFile := filepath.Join(sdDir, "cams.json")
	entry := func(i int) string {
		return fmt.Sprintf(`{"targets": ["198.51.100.%d"], "labels": {"id": "%d"}}`, i+1, i)
	}
	writeAtomic := func(content string) {
		t.Helper()
		tmp := filepath.Join(sdDir, ".cams.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, sdFile); err != nil {
			t.Fatal(err)
		}
	}
	configFile := filepath.Join(dir, "qodwatch.yaml")
	writeConfig := func(grace string) *config.Config {
		t.Helper()
		text := static.yaml(t) + fmt.Sprintf(`ue_sd:
  - name: cams
    file_sd: {files: [%q], refresh_interval: 100ms}
    grace: %s
    template:
      name: "cam-{{labels.id}}"
      ipv4: "{{target}}"
      target: 127.0.0.1
      probes: [{http: {url: "%s/{{ue.name}}", interval: %s, timeout: %s}}]
`, filepath.Join(sdDir, "*.json"), grace, front.URL, e.spec.interval, e.spec.timeout)
		if err := os.WriteFile(configFile, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(configFile)
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		return cfg
	}
	writeAtomic("[" + entry(1) + "]")
	r := e.start(writeConfig("1h"), configFile)
	e.eventually("cam-1 discovered", func() bool { return r.status("cam-1").UE == "cam-1" })

	e.targets["ue-2"].bad()
	id := e.waitSession(r, "cam-1")
	e.targets["ue-2"].good()

	// Non-atomic: the first half of the new content, then the rest. The
	// half does not parse; what the file gave before stays.
	full := "[" + entry(1) + ", " + entry(2) + `, {"targets": ["198.51.100.300"], "labels": {"id": "9"}}]`
	f, err := os.OpenFile(sdFile, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(full[:len(full)/2]); err != nil {
		t.Fatal(err)
	}
	e.eventually("the half-written file refused", func() bool {
		return r.metric(t, "qodwatch_sd_refresh_failures_total", "source", "cams") >= 1
	})
	if st := r.status("cam-1"); !st.HasSession || st.Session.ID != id {
		t.Fatalf("cam-1 lost its session %s to a half-written file: %+v", id, st)
	}
	if _, err := f.WriteString(full[len(full)/2:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.eventually("cam-2 discovered, the bad entry counted", func() bool {
		return r.status("cam-2").UE == "cam-2" && r.metric(t, "qodwatch_sd_invalid_entries_total", "source", "cams") == 1 &&
			r.metric(t, "qodwatch_sd_ues", "source", "cams") == 2
	})
	if !strings.Contains(e.logs.String(), `index=[2].targets[0] err="ipv4: \"198.51.100.300\" is not`) {
		t.Errorf("the bad entry's index is not in the log")
	}

	// Atomic: cam-1 gone. Its session stays for the grace period.
	writeAtomic("[" + entry(2) + "]")
	e.eventually("cam-1 counted as vanished", func() bool {
		return r.metric(t, "qodwatch_sd_vanished_ues", "source", "cams") == 1
	})
	if st := r.status("cam-1"); !st.HasSession || st.Session.ID != id {
		t.Fatalf("cam-1 lost its session within the grace period: %+v", st)
	}
	if n := e.tally().posts; n != 1 {
		t.Errorf("%d POST /sessions, want 1", n)
	}

	// The grace period ends (reload: grace 0): the session is released.
	writeConfig("0s")
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	e.eventually("cam-1 removed and its session ended", func() bool {
		return r.status("cam-1").UE == "" && len(e.live()) == 0
	})
	if st := r.status("cam-2"); st.UE != "cam-2" {
		t.Errorf("cam-2 gone after the reload: %+v", st)
	}
}
