package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A session made by hand with `qodwatch sessions create` shares the
// daemon's state file: it is listed, adopted by the running daemon, and
// `sessions end` ends it; one made while the daemon is down is adopted at
// its start.
func TestE2ESessionsCLI(t *testing.T) {
	t.Parallel()
	// min_session keeps the daemon from releasing the hand-made session of
	// a well UE before the test ends it itself.
	r := newRig(t, rigOptions{MinSession: "5m"})
	d := r.start("qodwatch")
	d.waitState("ue-a", 10*time.Second, "idle")
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		// Flags before the session id: Go's flag package stops at it.
		full := append([]string{args[0], args[1], "--config.file", r.cfgFile}, args[2:]...)
		out, errOut, code := r.cli(nil, full...)
		if code != wantCode {
			t.Fatalf("qodwatch %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}

	out := cli(0, "sessions", "create", "--ue", "ue-a", "--duration", "60s")
	live := r.liveFor("ue-a")
	if len(live) != 1 || !strings.Contains(out, "created "+live[0].ID+" for ue-a") {
		t.Fatalf("sessions create said %q; the simulator holds %+v", out, r.sim.Sessions())
	}
	id := live[0].ID
	if s, ok := r.sessionFor("ue-a"); !ok || s.ID != id || s.Origin != "cli" {
		t.Fatalf("state file: %+v, %v; want %s made by the cli", s, ok, id)
	}
	if st := r.state(); len(st.Intents) != 0 {
		t.Fatalf("a settled create left intents: %+v", st.Intents)
	}
	listed := cli(0, "sessions", "list")
	if !containsLine(listed, "ue-a", id, "cli", "live") {
		t.Fatalf("sessions list does not show %s as live:\n%s", id, listed)
	}
	if got := cli(0, "sessions", "get", id); !strings.Contains(got, id) {
		t.Fatalf("sessions get: %q", got)
	}

	st := d.waitState("ue-a", 10*time.Second, "active", "recovering")
	if st.SessionID != id {
		t.Fatalf("the daemon holds %q for ue-a, want the hand-made %s", st.SessionID, id)
	}
	// A second one for the same UE is refused before any call is made.
	if out := cli(1, "sessions", "create", "--ue", "ue-a"); !strings.Contains(out, id) {
		t.Errorf("second create: %q does not name the session held", out)
	}
	// The UE breaching now buys nothing: it holds the adopted session.
	r.ue("ue-a").target.setBad(true)
	d.waitState("ue-a", 10*time.Second, "active")
	holdsFor(t, time.Second, "no POST for a UE holding a hand-made session", func() bool { return r.posts() == 1 })
	r.ue("ue-a").target.setBad(false)
	// Its window still holds the losses for a while: ended before the
	// daemon sees it recover, the UE would rightly get a session of its own.
	d.waitState("ue-a", 10*time.Second, "recovering")

	if out := cli(0, "sessions", "end", "--ue", "ue-a"); !strings.Contains(out, "ended "+id) {
		t.Fatalf("sessions end: %q", out)
	}
	if n := len(r.sim.Sessions()); n != 0 {
		t.Fatalf("after sessions end the simulator holds %d sessions", n)
	}
	if _, ok := r.sessionFor("ue-a"); ok {
		t.Fatal("sessions end left the session in the state file")
	}
	waitFor(t, 10*time.Second, "the daemon to notice the end", func() bool { return d.status()["ue-a"].SessionID == "" })
	holdsFor(t, time.Second, "the daemon to call nothing more", func() bool {
		dels, _ := r.apiCalls(http.MethodDelete)
		return r.posts() == 1 && dels == 1
	})
	d.stop()

	// Made while the daemon is down: adopted at start, ended at stop
	// (release_on_shutdown).
	cli(0, "sessions", "create", "--ue", "ue-b", "--duration", "60s")
	offline := r.liveFor("ue-b")
	if len(offline) != 1 {
		t.Fatalf("simulator: %+v", r.sim.Sessions())
	}
	d2 := r.start("restarted")
	if st := d2.waitState("ue-b", 10*time.Second, "active", "recovering"); st.SessionID != offline[0].ID {
		t.Fatalf("at start the daemon holds %q for ue-b, want %s", st.SessionID, offline[0].ID)
	}
	d2.stop()
	r.requireAllKnown("after the stop")
	if n := len(r.sim.Sessions()); n != 0 {
		t.Fatalf("release_on_shutdown left %d sessions", n)
	}
	if n := r.posts(); n != 2 {
		t.Fatalf("%d POST /sessions, want the 2 made by hand", n)
	}
}

// containsLine reports whether some line of text contains every word.
func containsLine(text string, words ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}
