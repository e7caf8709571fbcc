package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// `qodwatch sessions` is as careful as the daemon (issue 8).
func TestSessionsCLIIsAsCarefulAsTheDaemon(t *testing.T) {
	t.Parallel()
	// min_session keeps the daemon of the last step from ending the
	// hand-made session of a well UE before the network does.
	r := newRig(t, rigOptions{MinSession: "5m"})
	cli := func(args ...string) (string, int) {
		t.Helper()
		full := append([]string{args[0], args[1], "--config.file", r.cfgFile}, args[2:]...)
		out, errOut, code := r.cli(nil, full...)
		return out + errOut, code
	}

	t.Run("help", func(t *testing.T) {
		for _, h := range []string{"-h", "--help", "help"} {
			out, _, code := r.cli(nil, "sessions", h)
			if code != 0 || !strings.Contains(out, "usage: qodwatch sessions") || !strings.Contains(out, "create --ue NAME") {
				t.Errorf("sessions %s: exit %d, output %q; want the help on stdout and exit 0", h, code, out)
			}
		}
	})

	t.Run("end of an unknown id", func(t *testing.T) {
		out, code := cli("sessions", "end", "00000000-0000-4000-8000-000000000000")
		if code == 0 || !strings.Contains(out, "no session 00000000-0000-4000-8000-000000000000 in the state file") {
			t.Fatalf("exit %d, %q; want non-zero and a clear message", code, out)
		}
		if n, _ := r.apiCalls(http.MethodDelete); n != 0 {
			t.Fatalf("%d DELETEs for an id the state file does not have", n)
		}
	})

	t.Run("refused while a create is open", func(t *testing.T) {
		// The daemon's create is in flight, or its answer was lost: its
		// intent is in the state file.
		sf, err := daemon.OpenStateFile(r.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		in := daemon.Intent{UE: "ue-b", QoS: "QOS_E", Duration: 60, TransactionID: "4a0e2b5c-0000-4000-8000-000000000001",
			SentAt: now, Until: now.Add(2 * time.Minute), Origin: "daemon"}
		if _, err := sf.Update(func(s *daemon.State) error { s.Intents = append(s.Intents, in); return nil }); err != nil {
			t.Fatal(err)
		}
		posts := r.posts()
		out, code := cli("sessions", "create", "--ue", "ue-b")
		if code == 0 || !strings.Contains(out, in.TransactionID) {
			t.Fatalf("exit %d, %q; want a refusal naming the open create", code, out)
		}
		if n := r.posts() - posts; n != 0 {
			t.Fatalf("%d POSTs while the UE may hold a session", n)
		}
		if _, err := sf.Update(func(s *daemon.State) error { s.DropIntent(in.TransactionID); return nil }); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("two at once buy one", func(t *testing.T) {
		// Slow answers keep the first create's intent open while the
		// second checks.
		r.sim.SetFaults(qodsim.Faults{Latency: 300 * time.Millisecond})
		defer r.sim.SetFaults(qodsim.Faults{})
		posts := r.posts()
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, codes[i] = cli("sessions", "create", "--ue", "ue-a", "--duration", "60s")
			}()
		}
		wg.Wait()
		if n := r.posts() - posts; n != 1 {
			t.Fatalf("two concurrent creates sent %d POSTs, want 1 (exit codes %v)", n, codes)
		}
		if (codes[0] == 0) == (codes[1] == 0) {
			t.Fatalf("exit codes %v; want one success and one refusal", codes)
		}
	})

	t.Run("same notification URL and token as the daemon", func(t *testing.T) {
		var body struct {
			URL   string `json:"notificationUrl"`
			Token string `json:"notificationAuthToken"`
		}
		var txid string
		for _, q := range r.sim.Requests() {
			if q.Method == http.MethodPost && q.Status/100 == 2 {
				if err := json.Unmarshal(q.Body, &body); err != nil {
					t.Fatal(err)
				}
				txid = q.TransactionID
			}
		}
		s, ok := r.sessionFor("ue-a")
		if !ok || s.TransactionID == "" {
			t.Fatalf("state file: %+v", r.state())
		}
		if want := "http://" + r.notifyAddr + "/callbacks/tx/" + s.TransactionID; body.URL != want {
			t.Errorf("notificationUrl %q, want %q (the create's transaction id %s)", body.URL, want, txid)
		}
		tok, err := os.ReadFile(filepath.Join(r.stateDir, "notification-token"))
		if err != nil {
			t.Fatal(err)
		}
		if body.Token == "" || body.Token != strings.TrimSpace(string(tok)) {
			t.Errorf("notificationAuthToken is not the daemon's token")
		}
		// The daemon started later takes the same token, so the end of
		// the hand-made session is accepted and confirmed.
		d := r.start("qodwatch")
		if st := d.waitState("ue-a", 10*time.Second, "active", "recovering"); st.SessionID != s.ID {
			t.Fatalf("the daemon holds %q, want the hand-made %s", st.SessionID, s.ID)
		}
		if err := r.sim.Terminate(s.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the notification of the hand-made session delivered", func() bool {
			for _, n := range r.sim.Notifications() {
				if n.Done {
					return n.Delivered
				}
			}
			return false
		})
		waitFor(t, 10*time.Second, "the daemon to forget the ended session", func() bool { return d.status()["ue-a"].SessionID != s.ID })
		if v, _ := d.metric("qodwatch_notifications_total", `result="confirmed"`); v != 1 {
			t.Errorf("qodwatch_notifications_total{result=confirmed} = %v, want 1", v)
		}
		d.stop()
	})
}
