package daemon_test

import (
	"testing"
)

// A UE breaches, gets exactly one session, recovers, and the session is
// ended: one POST, one DELETE, nothing live, nothing left in the state file.
func TestE2EBreachOpenRecoverRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.start(e.spec.parse(t), "")
	e.ue(1).bad()
	id := e.waitSession(r, "ue-1")
	if st := e.state(); len(st.Sessions) != 1 || st.Sessions[0].ID != id || st.Sessions[0].UE != "ue-1" {
		t.Fatalf("state file while the session is held: %+v", st)
	}
	e.ue(1).good()
	e.waitNoSession(r, "ue-1")
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := e.tally()
	if got.posts != 1 || got.created != 1 || got.deletes != 1 || got.conflicts != 0 {
		t.Fatalf("simulator saw %s; want one create and one delete", got)
	}
	if st := e.state(); len(st.Sessions) != 0 || len(st.Intents) != 0 {
		t.Fatalf("state file at the end: %+v", st)
	}
}
