package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// The kill -9 tests: a daemon dies at each step of a session's life (the
// daemon's failpoints SIGKILL the process there, or the test kills it), a
// second one starts on the same state directory without a failpoint, and
// the simulator's log judges: every session live at the operator is known
// to the daemon (or suspected, by an open create intent), no UE ever holds
// two, no more is bought than there were breach episodes, and what the
// daemon holds is ended once the UE recovers.

func failpoint(name string) string { return "QODWATCH_FAILPOINT=" + name }

// The shipped binary has no failpoints (issue 8): QODWATCH_FAILPOINT in its
// environment, set by mistake or by someone who can set a unit's
// environment, must not kill it between two steps of a session's life.
// Only the binary built with -tags qodwatch_failpoints reads it.
func TestShippedBinaryHasNoFailpoints(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		path string
		want bool
	}{{qodwatchBinary(t), false}, {qodwatchFailpointBinary(t), true}} {
		data, err := os.ReadFile(b.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(data, []byte("QODWATCH_FAILPOINT")); got != b.want {
			t.Errorf("%s reads QODWATCH_FAILPOINT: %v, want %v", filepath.Base(b.path), got, b.want)
		}
	}
	// And it lives through the step where the failpoint binary dies.
	r := newRig(t, rigOptions{})
	p := r.start("shipped", failpoint("after-intent"))
	r.ue("ue-a").target.setBad(true)
	p.waitState("ue-a", 15*time.Second, "active")
	r.requireAllKnown("with QODWATCH_FAILPOINT=after-intent set")
	r.finish(p, 1)
}

// crashed waits for a daemon with a failpoint to kill itself there.
func crashed(t *testing.T, p *proc) {
	t.Helper()
	wantKilled(t, p.name, p.waitExit(20*time.Second))
}

// noConflicts requires that the daemon never asked for a second session
// for a UE the operator already served (a 409 from the simulator).
func (r *rig) noConflicts() {
	r.t.Helper()
	for _, q := range r.sim.Requests() {
		if q.Method == http.MethodPost && q.Status == http.StatusConflict {
			r.t.Errorf("POST %s at %s got 409: a duplicate was attempted", q.Path, q.At.Format(time.StampMilli))
		}
	}
}

// finish stops the daemon cleanly and checks what must hold at the end of
// every crash scenario.
func (r *rig) finish(p *proc, wantPosts int) {
	r.t.Helper()
	p.stop()
	r.requireAllKnown("after the final stop")
	r.noConflicts()
	if n := r.posts(); n != wantPosts {
		r.t.Errorf("%d POST /sessions, want %d", n, wantPosts)
	}
	if n := r.postsFor("ue-b"); n != 0 {
		r.t.Errorf("ue-b, always good, was sent %d POST /sessions", n)
	}
}

// recoverAndRelease scripts the recovery and waits for the daemon to end
// what it holds.
func (r *rig) recoverAndRelease(p *proc) {
	r.t.Helper()
	r.ue("ue-a").target.setBad(false)
	waitFor(r.t, 15*time.Second, "no live session at the simulator", func() bool { return len(r.sim.Sessions()) == 0 })
	waitFor(r.t, 5*time.Second, "the state file to forget the session", func() bool {
		_, ok := r.sessionFor("ue-a")
		return !ok
	})
	p.waitState("ue-a", 5*time.Second, "idle", "cooldown")
}

// adopted waits for the restarted daemon to hold exactly the session the
// simulator has for ue-a.
func (r *rig) adopted(p *proc) {
	r.t.Helper()
	live := r.liveFor("ue-a")
	if len(live) != 1 {
		r.t.Fatalf("before the restart the simulator holds %+v for ue-a, want one session", live)
	}
	st := p.waitState("ue-a", 10*time.Second, "active", "recovering", "releasing")
	if st.SessionID != live[0].ID {
		r.t.Fatalf("the restarted daemon holds %q for ue-a; the simulator has %s", st.SessionID, live[0].ID)
	}
}

func TestE2EKill9(t *testing.T) {
	t.Parallel()

	// Killed while idle: nothing to recover; the next breach buys one
	// session, as if nothing had happened.
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{Failpoints: true})
		first := r.start("first")
		first.waitState("ue-a", 10*time.Second, "idle")
		first.kill9()
		second := r.start("second")
		r.ue("ue-a").target.setBad(true)
		second.waitState("ue-a", 15*time.Second, "active")
		r.requireAllKnown("after the breach")
		r.recoverAndRelease(second)
		r.finish(second, 1)
	})

	// Killed holding a session: the next daemon adopts it (no second
	// POST) and releases it when the UE recovers.
	t.Run("active", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{Failpoints: true})
		first := r.start("first")
		r.ue("ue-a").target.setBad(true)
		first.waitState("ue-a", 15*time.Second, "active")
		first.kill9()
		r.requireAllKnown("after the crash")
		second := r.start("second")
		r.adopted(second)
		r.recoverAndRelease(second)
		r.finish(second, 1)
	})

	// Intent durable, POST never sent. The next daemon cannot know that:
	// it treats the UE as possibly holding a session and buys nothing.
	t.Run("after-intent", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{Failpoints: true})
		first := r.start("first", failpoint("after-intent"))
		r.ue("ue-a").target.setBad(true)
		crashed(t, first)
		st := r.state()
		if len(st.Intents) != 1 || len(st.Sessions) != 0 || r.posts() != 0 {
			t.Fatalf("at the crash: state %+v, %d POST; want one intent and no POST", st, r.posts())
		}
		second := r.start("second")
		second.waitState("ue-a", 10*time.Second, "uncertain")
		r.listShowsPossiblyHeld()
		holdsFor(t, 2*time.Second, "no POST while the intent lasts", func() bool { return r.posts() == 0 })
		r.ue("ue-a").target.setBad(false)
		r.finish(second, 0)
		if n := len(r.sim.Sessions()); n != 0 {
			t.Fatalf("%d live sessions", n)
		}
	})

	// The operator made the session, the daemon died before writing it
	// down: the session is unknown by id. The next daemon buys nothing
	// while the intent lasts; the session runs out at the operator.
	t.Run("after-create", func(t *testing.T) {
		t.Parallel()
		// The lost session must outlast the bad spell and the second of
		// window that remembers it: ending while the UE still looks bad,
		// it would rightly be followed by a new POST. A loaded machine
		// takes seconds to restart the daemon and run the CLI.
		r := newRig(t, rigOptions{Duration: "8s", Failpoints: true})
		first := r.start("first", failpoint("after-create"))
		r.ue("ue-a").target.setBad(true)
		crashed(t, first)
		st := r.state()
		if len(st.Intents) != 1 || len(st.Sessions) != 0 || len(r.liveFor("ue-a")) != 1 || r.posts() != 1 {
			t.Fatalf("at the crash: state %+v, simulator %+v, %d POST; want an intent only the simulator's session answers", st, r.sim.Sessions(), r.posts())
		}
		r.requireAllKnown("after the crash")
		second := r.start("second")
		second.waitState("ue-a", 10*time.Second, "uncertain")
		r.listShowsPossiblyHeld()
		// Still breaching, with the lost session live: no second POST.
		holdsFor(t, 1500*time.Millisecond, "no POST while the lost session may be live", func() bool { return r.posts() == 1 })
		r.ue("ue-a").target.setBad(false)
		waitFor(t, 15*time.Second, "the lost session to expire at the simulator", func() bool { return len(r.sim.Sessions()) == 0 })
		// Its SESSION_TERMINATED goes to the restarted daemon; let it land
		// before the stop (TestE2ENotificationsDuringShutdown races them).
		waitFor(t, 10*time.Second, "the expiry notification to be delivered", func() bool {
			ns := r.sim.Notifications()
			return len(ns) == 1 && ns[0].Done
		})
		r.finish(second, 1)
	})

	// Recorded but the policy never heard of it: adopted from the file.
	t.Run("after-record", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{Failpoints: true})
		first := r.start("first", failpoint("after-record"))
		r.ue("ue-a").target.setBad(true)
		crashed(t, first)
		if _, ok := r.sessionFor("ue-a"); !ok {
			t.Fatalf("at the crash the state file has no session: %+v", r.state())
		}
		r.requireAllKnown("after the crash")
		second := r.start("second")
		r.adopted(second)
		r.recoverAndRelease(second)
		r.finish(second, 1)
	})

	// Release decided, DELETE never sent: the next daemon adopts the
	// session and ends it, the UE being well.
	t.Run("before-delete", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{Failpoints: true})
		first := r.start("first", failpoint("before-delete"))
		r.ue("ue-a").target.setBad(true)
		first.waitState("ue-a", 15*time.Second, "active")
		r.ue("ue-a").target.setBad(false)
		crashed(t, first)
		held := r.liveFor("ue-a")
		if len(held) != 1 {
			t.Fatalf("at the crash the simulator holds %+v, want ue-a's session", r.sim.Sessions())
		}
		r.requireAllKnown("after the crash")
		second := r.start("second")
		r.recoverAndRelease(second)
		deleted := false
		for _, q := range r.sim.Requests() {
			deleted = deleted || (q.Method == http.MethodDelete && strings.HasSuffix(q.Path, held[0].ID) && q.Status < 300)
		}
		if !deleted {
			t.Fatalf("session %s ended without a DELETE from the daemon", held[0].ID)
		}
		r.finish(second, 1)
	})

	// Ended at the operator, still in the state file: the next daemon
	// finds it gone and forgets it.
	t.Run("after-delete", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOptions{Failpoints: true})
		first := r.start("first", failpoint("after-delete"))
		r.ue("ue-a").target.setBad(true)
		first.waitState("ue-a", 15*time.Second, "active")
		r.ue("ue-a").target.setBad(false)
		crashed(t, first)
		if n := len(r.sim.Sessions()); n != 0 {
			t.Fatalf("at the crash the simulator holds %d sessions, want 0", n)
		}
		if _, ok := r.sessionFor("ue-a"); !ok {
			t.Fatalf("at the crash the state file should still list the session: %+v", r.state())
		}
		second := r.start("second")
		waitFor(t, 10*time.Second, "the ended session to be forgotten", func() bool {
			_, ok := r.sessionFor("ue-a")
			return !ok
		})
		second.waitState("ue-a", 5*time.Second, "idle", "cooldown")
		holdsFor(t, time.Second, "nothing bought for a well UE", func() bool { return r.posts() == 1 })
		r.finish(second, 1)
	})
}

// After a crash between the operator's answer and the state write, the
// network ends the lost session and says so. The notification must settle
// the suspicion, so a UE still breaching gets a session again instead of
// waiting out the intent (the rule's duration plus a minute).
func TestE2EKill9AfterCreateNotificationSettles(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Failpoints: true})
	first := r.start("first", failpoint("after-create"))
	r.ue("ue-a").target.setBad(true)
	crashed(t, first)
	lost := r.liveFor("ue-a")
	if len(lost) != 1 {
		t.Fatalf("at the crash the simulator holds %+v, want ue-a's session", r.sim.Sessions())
	}
	second := r.start("second")
	second.waitState("ue-a", 10*time.Second, "uncertain")
	if err := r.sim.Terminate(lost[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the notification to reach the restarted daemon", func() bool {
		ns := r.sim.Notifications()
		return len(ns) == 1 && ns[0].Done
	})
	if ns := r.sim.Notifications(); !ns[0].Delivered {
		t.Fatalf("notification not accepted: %+v", ns[0])
	}
	// A GET of the ended session can only answer 404, so the notification
	// itself must say which create it settles (fixed in 2120d92).
	second.waitState("ue-a", 5*time.Second, "pending", "requesting", "active")
	second.waitState("ue-a", 10*time.Second, "active")
	if n := r.posts(); n != 2 {
		t.Fatalf("%d POST /sessions, want 2 (the lost one, then one after it ended)", n)
	}
	r.recoverAndRelease(second)
	r.finish(second, 2)
}

// listShowsPossiblyHeld runs `qodwatch sessions list` on the state file
// and requires ue-a to be shown as possibly holding a session.
func (r *rig) listShowsPossiblyHeld() {
	r.t.Helper()
	out, errOut, code := r.cli(nil, "sessions", "list", "--config.file", r.cfgFile)
	if code != 0 {
		r.t.Fatalf("sessions list: exit %d\n%s", code, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ue-a") && strings.Contains(line, "possibly held") {
			return
		}
	}
	r.t.Fatalf("sessions list does not show ue-a as possibly holding a session:\n%s", out)
}

// A notification lands just before the daemon stops: the receiver serves
// until Run has returned, so the notification's work (the GET that checks
// the end it reports, slow here) is still in flight when the shutdown waits
// for the work in flight, and must not race that wait (under -race a race
// exits 66). The timing is the point, so it is tried a few times.
func TestE2ENotificationDuringShutdown(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{KeepOnShutdown: true})
	r.sim.SetFaults(qodsim.Faults{Latency: 500 * time.Millisecond})
	r.ue("ue-a").target.setBad(true)
	for attempt := range 3 {
		d := r.start(fmt.Sprintf("qodwatch #%d", attempt+1))
		st := d.waitState("ue-a", 20*time.Second, "active")
		token, err := os.ReadFile(filepath.Join(r.stateDir, "notification-token"))
		if err != nil {
			t.Fatalf("the daemon keeps its generated notification token in the state dir: %v", err)
		}
		s, ok := r.sessionFor("ue-a")
		if !ok || s.ID != st.SessionID {
			t.Fatalf("state file %+v, daemon holds %s", s, st.SessionID)
		}
		url := "http://" + r.notifyAddr + "/callbacks/tx/" + s.TransactionID + "/notifications?apikey=" + strings.TrimSpace(string(token))
		body := fmt.Sprintf(`{"sessionId":%q,"event":"SESSION_TERMINATED"}`, s.ID)
		resp, err := httpClient.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("a notification for the held session: %s, want 204", resp.Status)
		}
		d.stop()
	}
	if n := r.posts(); n != 1 {
		t.Fatalf("%d POST /sessions, want 1: the live session is kept and adopted by each start", n)
	}
}
