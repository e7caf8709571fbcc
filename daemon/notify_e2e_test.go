package daemon_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// A notification is a hint, not the truth (issue 8): one SESSION_TERMINATED
// carrying the token made the daemon forget a session still live and
// billed, never end it, and buy another. Now the end must come on the path
// of that session's create and be confirmed by GET; a live answer keeps
// the session and counts result="contradicted".
func TestE2ENotificationIsAHint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{notify: true})
	e.spec.notifyToken = "notify-t0ken-e2e-abcdefghijkl"
	e.spec.pollInterval = "1h"
	r := e.start(e.spec.parse(t), "")
	e.ue(1).bad()
	id := e.waitSession(r, "ue-1")
	txid := e.state().Sessions[0].TransactionID
	if txid == "" {
		t.Fatal("the state file has no transaction id for the session")
	}
	post := func(tx string) int {
		t.Helper()
		body := fmt.Sprintf(`{"sessionId":%q,"event":"SESSION_TERMINATED"}`, id)
		path := "/qodwatch/notifications"
		if tx != "" {
			path = "/qodwatch/tx/" + tx + "/notifications"
		}
		resp, err := http.Post("http://"+e.notifyLn.Addr().String()+path+"?apikey="+e.spec.notifyToken, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	kept := func(what string) {
		t.Helper()
		e.consistently(time.Second, what, func() bool {
			st := r.status("ue-1")
			return st.HasSession && st.Session.ID == id && e.tally().posts == 1 && e.tally().deletes == 0
		})
	}
	count := func(result string) float64 { return r.metric(t, "qodwatch_notifications_total", "result", result) }

	// Forged on the right path: the GET says live.
	if code := post(txid); code != http.StatusNoContent {
		t.Fatalf("notification on the create's path answered %d", code)
	}
	e.eventually("the contradicted notification counted", func() bool { return count("contradicted") == 1 })
	kept("the session kept after a contradicted notification")

	// On another create's path, or on none: refused without a look.
	gets := e.tally().gets
	if code := post(qodclient.NewTransactionID()); code != http.StatusNotFound {
		t.Fatalf("notification on another create's path answered %d, want 404", code)
	}
	if code := post(""); code != http.StatusNotFound {
		t.Fatalf("notification without a transaction id answered %d, want 404", code)
	}
	if count("wrong_transaction") != 1 || count("wrong_path") != 1 {
		t.Fatalf("wrong_transaction %v, wrong_path %v; want 1 each", count("wrong_transaction"), count("wrong_path"))
	}
	kept("the session kept after notifications on wrong paths")
	if n := e.tally().gets - gets; n != 0 {
		t.Fatalf("%d GETs for refused notifications", n)
	}

	// The check fails: the session is kept, not forgotten.
	e.sim.SetFaults(qodsim.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable})
	post(txid)
	e.eventually("the unconfirmed notification counted", func() bool { return count("unconfirmed") == 1 })
	e.sim.SetFaults(qodsim.Faults{})
	kept("the session kept after an unconfirmed notification")

	// The network really ends it: confirmed, forgotten, and one more
	// bought after the cooldown, as before.
	if err := e.sim.Terminate(id); err != nil {
		t.Fatal(err)
	}
	e.eventually("the real end confirmed", func() bool { return count("confirmed") == 1 })
	e.eventually("the session forgotten", func() bool {
		st := r.status("ue-1")
		return !st.HasSession || st.Session.ID != id
	})
	if st := r.status("ue-1"); st.State != policy.StateCooldown && st.Session.ID == id {
		t.Fatalf("after the confirmed end: %+v", st)
	}
}
