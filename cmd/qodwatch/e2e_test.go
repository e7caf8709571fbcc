package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A UE breaches: one session; it recovers: the session is released. It
// breaches again and the daemon is stopped with SIGTERM: with
// release_on_shutdown it ends that session and exits 0.
func TestE2EBreachRecoverAndShutdown(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	a := r.ue("ue-a")
	d := r.start("qodwatch")
	d.waitState("ue-a", 10*time.Second, "idle")

	a.target.setBad(true)
	st := d.waitState("ue-a", 15*time.Second, "active")
	live := r.liveFor("ue-a")
	if len(live) != 1 || live[0].ID != st.SessionID {
		t.Fatalf("status.json shows session %q; the simulator holds %+v", st.SessionID, live)
	}
	if got, ok := r.sessionFor("ue-a"); !ok || got.ID != st.SessionID {
		t.Fatalf("state file: session for ue-a = %+v, %v; want %s", got, ok, st.SessionID)
	}
	if n := r.posts(); n != 1 {
		t.Fatalf("%d POST /sessions for one breach, want 1", n)
	}

	a.target.setBad(false)
	waitFor(t, 15*time.Second, "the session to be released at the simulator", func() bool { return len(r.sim.Sessions()) == 0 })
	d.waitState("ue-a", 5*time.Second, "idle", "cooldown")
	if _, ok := r.sessionFor("ue-a"); ok {
		t.Fatal("the state file still lists the released session")
	}
	if n, _ := r.apiCalls(http.MethodDelete); n != 1 {
		t.Fatalf("%d DELETE calls, want 1", n)
	}
	if v, _ := d.metric("qodwatch_sessions_ended_total", `reason="released"`); v != 1 {
		t.Errorf("qodwatch_sessions_ended_total{reason=released} = %v, want 1", v)
	}

	// Second episode, ended by the shutdown.
	a.target.setBad(true)
	second := d.waitState("ue-a", 15*time.Second, "active")
	if second.SessionID == st.SessionID || len(r.liveFor("ue-a")) != 1 {
		t.Fatalf("second breach: status %+v, simulator %+v", second, r.sim.Sessions())
	}
	d.stop()
	if live := r.sim.Sessions(); len(live) != 0 {
		t.Fatalf("after SIGTERM with release_on_shutdown the simulator still holds %+v", live)
	}
	if s := r.state(); len(s.Sessions) != 0 || len(s.Intents) != 0 {
		t.Fatalf("after a clean stop the state file holds %+v", s)
	}
	if n := r.posts(); n != 2 {
		t.Fatalf("%d POST /sessions for two breaches, want 2", n)
	}
	if n := r.postsFor("ue-b"); n != 0 {
		t.Fatalf("ue-b, always good, was sent %d POST /sessions", n)
	}
}

// SIGHUP with a broken config keeps the old one running and says so; a
// good one applies, keeping the session of an unchanged UE.
func TestE2EReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{RunFlags: []string{"--web.enable-lifecycle"}})
	good, err := os.ReadFile(r.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	d := r.start("qodwatch")
	if v, ok := d.metric("qodwatch_config_last_reload_successful", ""); !ok || v != 1 {
		// The loaded config is the last successful load, as in Prometheus
		// and blackbox_exporter; 0 at start would fire every reload alert.
		t.Errorf("at start qodwatch_config_last_reload_successful = %v (present %v), want 1", v, ok)
	}
	r.ue("ue-a").target.setBad(true)
	held := d.waitState("ue-a", 15*time.Second, "active")

	r.writeConfigText(strings.Replace(string(good), "window: 1s", "window: 1s\n  bogus_key: 1", 1))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refused reload in the log", func() bool { return d.out.Contains("config reload refused") })
	if v, _ := d.metric("qodwatch_config_last_reload_successful", ""); v != 0 {
		t.Errorf("after a broken reload qodwatch_config_last_reload_successful = %v, want 0", v)
	}
	if !d.out.Contains("bogus_key") {
		t.Error("the log does not name the offending key")
	}
	// Still running on the old config: same UEs, same session.
	if st := d.status(); len(st) != 2 || st["ue-a"].SessionID != held.SessionID {
		t.Fatalf("after a refused reload: %+v", st)
	}

	// A good config with a third UE.
	r.ues = append(r.ues, &rigUE{Name: "ue-c", IPv4: "198.51.100.3", URL: r.ue("ue-b").URL, target: r.ue("ue-b").target})
	r.writeConfig(r.config())
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "qodwatch_config_last_reload_successful 1", func() bool {
		v, _ := d.metric("qodwatch_config_last_reload_successful", "")
		return v == 1
	})
	if ts, _ := d.metric("qodwatch_config_last_reload_success_timestamp_seconds", ""); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("reload timestamp %v is not recent", ts)
	}
	st := d.status()
	if _, ok := st["ue-c"]; !ok || st["ue-a"].SessionID != held.SessionID {
		t.Fatalf("after a good reload: %+v (want ue-c added and ue-a keeping %s)", st, held.SessionID)
	}
	if n := r.posts(); n != 1 {
		t.Fatalf("%d POST /sessions across the reloads, want 1", n)
	}
	if n, _ := r.apiCalls(http.MethodDelete); n != 0 {
		t.Fatalf("a reload ended the session of an unchanged UE (%d DELETE)", n)
	}

	// POST /-/reload answers for itself (--web.enable-lifecycle); GET is
	// refused.
	r.writeConfigText("api: [\n")
	if resp, err := httpClient.Get(d.url("/-/reload")); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %s, want 405", resp.Status)
	}
	resp, err := httpClient.Post(d.url("/-/reload"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /-/reload with a broken config: %s, want 400", resp.Status)
	}
	// Settings only a restart applies: the rest is applied, the answer
	// names them and is not a 2xx, and it keeps saying so until a restart.
	r.writeConfig(r.config())
	if good, err = os.ReadFile(r.cfgFile); err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(strings.Replace(string(good), "level: debug", "level: info", 1), "window: 1s", "window: 2s", 1)
	for range 2 {
		r.writeConfigText(changed)
		code, body := postReload(t, d.url("/-/reload"))
		if code != http.StatusConflict || !strings.Contains(body, "log.level: DEBUG -> INFO") || !strings.Contains(body, "defaults.window: 1s -> 2s") {
			t.Errorf("POST /-/reload with a changed log level and window: %d %q, want 409 naming both", code, body)
		}
	}
	r.writeConfigText(string(good))
	if code, body := postReload(t, d.url("/-/reload")); code != http.StatusOK || body != "reloaded\n" {
		t.Errorf("POST /-/reload with the running settings: %d %q, want 200 reloaded", code, body)
	}
	d.stop()
}

func postReload(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
