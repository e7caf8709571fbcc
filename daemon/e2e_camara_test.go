package daemon_test

// End-to-end scenarios only CAMARA QualityOnDemand v1 has: qosStatus,
// retrieve-sessions. The scenarios both dialects share run for each in
// e2e_test.go.

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// A session the network never provides (REQUESTED past
// api.requested_timeout) is deleted and counted, and the UE gets a new
// one, which becomes AVAILABLE.
func TestE2EV1StuckRequested(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dialect: camaraV1})
	e.spec.requestedTimeout = "1s"
	e.sim.SetFaults(qodsim.Faults{StuckRequested: true})
	r := e.start(e.spec.parse(t), "")
	e.ue(1).bad()
	stuck := e.waitSession(r, "ue-1")
	e.eventually("the stuck session given up", func() bool {
		return r.metric(t, "qodwatch_sessions_stuck_requested_total") == 1 && e.tally().deletes == 1
	})
	e.sim.SetFaults(qodsim.Faults{})
	second := e.waitSession(r, "ue-1")
	if second == stuck {
		t.Fatalf("still the stuck session %s", stuck)
	}
	e.eventually("the new session available", func() bool { return r.metric(t, "qodwatch_sessions_available") == 1 })
	if n := r.metric(t, "qodwatch_sessions_ended_total", "reason", "terminated"); n != 1 {
		t.Fatalf("qodwatch_sessions_ended_total{terminated} = %v, want the stuck one", n)
	}
	e.ue(1).good()
	e.waitNoSession(r, "ue-1")
	if got := e.tally(); got.created != 2 || got.deletes != 2 || got.conflicts != 0 {
		t.Fatalf("simulator saw %s", got)
	}
}

// The operator answers 409: the device has a session the daemon does not
// know (made before its state was lost). retrieve-sessions finds it; it is
// adopted rather than waited out, and ended on recovery.
func TestE2EV1ConflictReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dialect: camaraV1})
	body := `{"device":{"ipv4Address":{"publicAddress":"198.51.100.1","privateAddress":"198.51.100.1"}},` +
		`"applicationServer":{"ipv4Address":"203.0.113.10"},"qosProfile":"QOS_E","duration":600}`
	req, _ := http.NewRequest(http.MethodPost, e.sim.URL+"/sessions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || len(e.live()) != 1 {
		t.Fatalf("the earlier session: %d, live %v", resp.StatusCode, e.liveIDs())
	}
	earlier := e.live()[0].ID
	e.foreign = append(e.foreign, earlier)
	r := e.start(e.spec.parse(t), "")
	e.ue(1).bad()
	e.eventually("the earlier session adopted", func() bool {
		st := r.status("ue-1")
		return st.HasSession && st.Session.ID == earlier
	})
	if n := r.metric(t, "qodwatch_reconciliations_total", "trigger", "conflict", "result", "adopted"); n != 1 {
		t.Fatalf("qodwatch_reconciliations_total{conflict,adopted} = %v", n)
	}
	e.ue(1).good()
	e.waitNoSession(r, "ue-1")
	if got := e.tally(); got.posts != 2 || got.conflicts != 1 || got.retrieves != 1 || got.deletes != 1 {
		t.Fatalf("simulator saw %s; want one 409, one look-up, the earlier session ended", got)
	}
}

// A create's answer is lost and retrieve-sessions fails too, so the UE
// stays suspected when the daemon stops. The next start looks the UE up:
// the lost session is found, adopted and ended on recovery.
func TestE2EV1LostCreateFoundAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dialect: camaraV1})
	e.sim.SetFaults(qodsim.Faults{DropCreateResponse: true, ErrorRate: 1, Only: []string{"retrieve-sessions"}})
	a := e.start(e.spec.parse(t), "")
	e.ue(1).bad()
	e.eventually("the UE suspected of holding a session", func() bool {
		return a.status("ue-1").State == policy.StateUncertain &&
			a.metric(t, "qodwatch_reconciliations_total", "trigger", "unknown_outcome", "result", "error") == 1
	})
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := e.state(); len(st.Intents) != 1 || len(e.live()) != 1 {
		t.Fatalf("after the stop: intents %+v, live %v; want the lost create's intent and its session", st.Intents, e.liveIDs())
	}
	lost := e.live()[0].ID
	e.sim.SetFaults(qodsim.Faults{})
	b := e.start(e.spec.parse(t), "")
	e.eventually("the lost session found at start", func() bool {
		st := b.status("ue-1")
		return st.HasSession && st.Session.ID == lost
	})
	if n := b.metric(t, "qodwatch_reconciliations_total", "trigger", "start", "result", "adopted"); n != 1 {
		t.Fatalf("qodwatch_reconciliations_total{start,adopted} = %v", n)
	}
	e.eventually("the intent replaced by the session in the state file", func() bool {
		st := e.state()
		return len(st.Intents) == 0 && len(st.Sessions) == 1 && st.Sessions[0].ID == lost
	})
	e.ue(1).good()
	e.waitNoSession(b, "ue-1")
	if got := e.tally(); got.posts != 1 || got.deletes != 1 {
		t.Fatalf("simulator saw %s; want the one lost session ended", got)
	}
}

// The QoS profiles are read at start and on reload: a rule's duration is
// capped at its profile's maxDuration, a threshold tighter than the
// profile promises is warned about, and a profile that is not ACTIVE
// refuses the reload (the old config keeps running) and the start.
func TestE2EV1QoSProfiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dialect: camaraV1, sim: qodsim.Options{Profiles: []qodsim.Profile{
		{Name: "QOS_E", Status: qodsim.ProfileActive, MaxDuration: 30 * time.Second, PacketDelayBudget: 50 * time.Millisecond},
		{Name: "QOS_L", Status: qodsim.ProfileInactive},
	}}})
	file := filepath.Join(e.spec.extraFiles, "qodwatch.yaml")
	text := e.spec.yaml(t)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.start(e.spec.parse(t), file)
	e.ue(1).bad()
	e.waitSession(r, "ue-1")
	var body struct {
		Duration int `json:"duration"`
	}
	for _, req := range e.sim.Requests() {
		if req.Method == http.MethodPost && strings.HasSuffix(req.Path, "/sessions") {
			_ = json.Unmarshal(req.Body, &body)
		}
	}
	if body.Duration != 30 {
		t.Fatalf("create asked for %ds; want the rule's 1m capped at the profile's 30s", body.Duration)
	}
	for _, want := range []string{"longer sessions than its QoS profile grants; capped", `breach \"latency_p50 > 40ms\": the profile's packetDelayBudget is 50ms`} {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if err := os.WriteFile(file, []byte(strings.Replace(text, "qos: QOS_E", "qos: QOS_L", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err == nil || !strings.Contains(err.Error(), "QOS_L is INACTIVE") {
		t.Fatalf("reload onto an INACTIVE profile: %v", err)
	}
	if n := r.metric(t, "qodwatch_config_last_reload_successful"); n != 0 {
		t.Fatalf("qodwatch_config_last_reload_successful = %v after a refused reload", n)
	}
	if !r.status("ue-1").HasSession {
		t.Fatal("the refused reload dropped the session")
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	bad, err := config.Parse(file, []byte(strings.Replace(text, "qos: QOS_E", "qos: QOS_L", 1)))
	if err != nil {
		t.Fatal(err)
	}
	b := e.start(bad, "")
	var runErr error
	select {
	case runErr = <-b.done: // Run returns on its own
	case <-time.After(waitLong):
		t.Fatal("a start with an INACTIVE profile keeps running")
	}
	b.once.Do(func() { b.err = runErr })
	b.cancel()
	if runErr == nil || !strings.Contains(runErr.Error(), "QOS_L is INACTIVE") {
		t.Fatalf("start with an INACTIVE profile: %v", runErr)
	}
}

// A session the network ended is kept by a CAMARA v1 operator until it is
// deleted. The state file keeps it until that DELETE lands: a DELETE that
// fails, then a crash, must not leave a session nobody knows of.
func TestE2EV1EndedSessionKeptUntilDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dialect: camaraV1})
	e.spec.pollInterval = "1s"
	r := e.start(e.spec.parse(t), "")
	e.ue(1).bad()
	first := e.waitSession(r, "ue-1")
	e.sim.SetFaults(qodsim.Faults{FailNext: 1 << 20, Only: []string{"delete"}})
	if err := e.sim.Terminate(first); err != nil {
		t.Fatal(err)
	}
	stored := func() bool {
		st := e.state()
		_, ok := st.SessionFor("ue-1")
		return ok
	}
	e.eventually("a DELETE of the ended session refused", func() bool {
		return !r.status("ue-1").HasSession && e.tally().failed > 0
	})
	if !stored() {
		t.Fatalf("the state file forgot session %s while the operator still holds it (its DELETE failed): %+v", first, e.state())
	}
	e.sim.SetFaults(qodsim.Faults{})
	e.eventually("the ended session deleted and forgotten", func() bool {
		return e.tally().deletes == 1 && !stored()
	})
}

// Two devices behind one carrier NAT share the public address: each gets a
// session of its own, sent with its private address and public port, and
// each session is known as that device's (not its neighbour's).
func TestE2EV1DevicesBehindOneNAT(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dialect: camaraV1, ues: 2})
	for i := range e.spec.ues {
		u := &e.spec.ues[i]
		u.ipv4, u.private = "198.51.100.1", "10.0.0."+string(rune('1'+i))
	}
	e.spec.ues[0].publicPort = 40001
	r := e.start(e.spec.parse(t), "")
	e.ue(1).bad()
	e.ue(2).bad()
	ids := map[string]string{"ue-1": e.waitSession(r, "ue-1"), "ue-2": e.waitSession(r, "ue-2")}
	for i, u := range e.spec.ues {
		var got *qodsim.Session
		for _, s := range e.live() {
			if s.ID == ids[u.name] {
				got = &s
			}
		}
		if got == nil || simDevice(*got) != u.device() {
			t.Fatalf("ues[%d] %s: its session %s is %+v; want device %s", i, u.name, ids[u.name], got, u.device())
		}
	}
	e.ue(1).good()
	e.eventually("ue-1's session ended", func() bool {
		return r.status("ue-1").State == policy.StateIdle && !slices.Contains(e.liveIDs(), ids["ue-1"])
	})
	if st := r.status("ue-2"); !st.HasSession || st.Session.ID != ids["ue-2"] {
		t.Fatalf("ue-2 lost its session when ue-1 recovered: %+v", st)
	}
	e.ue(2).good()
	e.waitNoSession(r, "ue-2")
	// How many sessions a loaded machine's jitter buys is not the point;
	// that the devices never got in each other's way is.
	if got := e.tally(); got.conflicts != 0 {
		t.Fatalf("simulator saw %s: one device's create refused for the other's session", got)
	}
}

// An operator's own profile names (api.qos_profiles): the rule asks for
// one, the daemon checks it with GET /qos-profiles/{name} and buys it.
func TestE2EV1OperatorProfileNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dialect: camaraV1, sim: qodsim.Options{Profiles: []qodsim.Profile{
		{Name: "gold.low-latency", Status: qodsim.ProfileActive, PacketDelayBudget: 10 * time.Millisecond},
	}}})
	text := strings.Replace(e.spec.yaml(t), "  dialect: camara-v1\n", "  dialect: camara-v1\n  qos_profiles: [gold.low-latency]\n", 1)
	text = strings.Replace(text, "qos: QOS_E", "qos: gold.low-latency", 1)
	cfg, err := config.Parse(filepath.Join(e.spec.extraFiles, "qodwatch.yaml"), []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	r := e.start(cfg, "")
	e.ue(1).bad()
	id := e.waitSession(r, "ue-1")
	if live := e.live(); len(live) != 1 || live[0].ID != id || live[0].QoS != "gold.low-latency" {
		t.Fatalf("live sessions %+v; want %s of gold.low-latency", live, id)
	}
	e.ue(1).good()
	e.waitNoSession(r, "ue-1")
}
