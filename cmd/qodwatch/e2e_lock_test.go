package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two daemons on one state directory (issue 8): a unit started twice, a
// copy-pasted command, a pod during a rollout. The second must exit
// non-zero at once, name the first one's pid, and touch no session: no
// GET, POST or DELETE of its own, whatever release_on_shutdown says and
// whether or not its ports are free.
func TestE2ESecondDaemonOnOneStateDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		keep       bool // release_on_shutdown: false
		otherPorts bool
	}{
		{"release/same-ports", false, false},
		{"release/other-ports", false, true},
		{"keep/same-ports", true, false},
		{"keep/other-ports", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{KeepOnShutdown: tc.keep})
			first := r.start("first")
			r.ue("ue-a").target.setBad(true)
			held := first.waitState("ue-a", 15*time.Second, "active")
			calls := len(r.sim.Requests())

			cfgFile := r.cfgFile
			if tc.otherPorts {
				c := r.config()
				c.Web, c.Notify = freeAddr(t, r.host), freeAddr(t, r.host)
				cfgFile = filepath.Join(r.dir, "second.yaml")
				var b bytes.Buffer
				if err := configTemplate.Execute(&b, c); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cfgFile, b.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			second := r.startFile("second", cfgFile)
			st := second.waitExit(20 * time.Second)
			if st.ExitCode() == 0 {
				t.Fatalf("the second daemon exited 0, want non-zero\n%s", second.out.String())
			}
			if want := fmt.Sprintf("pid %d", first.cmd.Process.Pid); !second.out.Contains(want) {
				t.Errorf("the second daemon's message does not name the holder (%q):\n%s", want, second.out.String())
			}
			for _, q := range r.sim.Requests()[calls:] {
				if q.Method != http.MethodGet || !strings.Contains(q.Path, "/sessions/") {
					t.Errorf("an API call while the second daemon ran: %s %s", q.Method, q.Path)
				}
			}
			if _, n := r.apiCalls(http.MethodDelete); n != 0 {
				t.Fatalf("%d sessions ended: the second daemon ended the first one's session", n)
			}
			if live := r.liveFor("ue-a"); len(live) != 1 || live[0].ID != held.SessionID {
				t.Fatalf("after the second daemon: live sessions %+v, want the first daemon's %s", live, held.SessionID)
			}
			if got := first.status()["ue-a"]; got.SessionID != held.SessionID {
				t.Fatalf("the first daemon now holds %q, want %s", got.SessionID, held.SessionID)
			}
			r.requireAllKnown("after the second daemon")
			if tc.keep {
				first.stop()
				if n := len(r.liveFor("ue-a")); n != 1 {
					t.Fatalf("release_on_shutdown off: %d live sessions after the stop, want 1", n)
				}
				third := r.start("third")
				r.adopted(third)
				first = third
			}
			r.recoverAndRelease(first)
			r.finish(first, 1)
		})
	}
}

// A daemon that fails to start (its port is taken) exits non-zero and
// ends no session it did not open in this run, release_on_shutdown
// notwithstanding: the session a killed daemon left is adopted by the
// next good start, not ended by a failed one.
func TestE2EFailedStartEndsNothing(t *testing.T) {
	t.Parallel()
	for _, port := range []string{"web", "notifications"} {
		t.Run(port+"-port-taken", func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{})
			first := r.start("first")
			r.ue("ue-a").target.setBad(true)
			first.waitState("ue-a", 15*time.Second, "active")
			first.kill9()

			addr := r.webAddr
			if port == "notifications" {
				addr = r.notifyAddr
			}
			squat, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			calls := len(r.sim.Requests())
			failed := r.startNoWait("failed")
			if st := failed.waitExit(20 * time.Second); st.ExitCode() == 0 {
				t.Fatalf("a daemon whose %s port is taken exited 0, want non-zero\n%s", port, failed.out.String())
			}
			squat.Close()
			for _, q := range r.sim.Requests()[calls:] {
				t.Errorf("the daemon that failed to start called the API: %s %s", q.Method, q.Path)
			}
			if n := len(r.liveFor("ue-a")); n != 1 {
				t.Fatalf("%d live sessions for ue-a after the failed start, want 1", n)
			}
			next := r.start("next")
			r.adopted(next)
			r.recoverAndRelease(next)
			r.finish(next, 1)
		})
	}
}
