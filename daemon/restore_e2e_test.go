package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// stallingAPI is a QoD API whose GETs wait until released, then answer
// what the test says; a create or delete is recorded.
type stallingAPI struct {
	mu       sync.Mutex
	inFlight int
	maxIn    int
	release  chan struct{} // closed: GETs answer
	answer   error         // what released GETs answer; nil: live
	creates  int
	deletes  int
}

func (a *stallingAPI) Get(ctx context.Context, id string) (*qodclient.SessionInfo, error) {
	a.mu.Lock()
	a.inFlight++
	a.maxIn = max(a.maxIn, a.inFlight)
	a.mu.Unlock()
	defer func() { a.mu.Lock(); a.inFlight--; a.mu.Unlock() }()
	select {
	case <-a.release:
	case <-ctx.Done():
		return nil, fmt.Errorf("GET %s: %w", id, ctx.Err())
	}
	if a.answer != nil {
		return nil, a.answer
	}
	return &qodclient.SessionInfo{ID: id, QoS: "QOS_E", QoSStatus: "AVAILABLE"}, nil
}

func (a *stallingAPI) Create(context.Context, qodclient.CreateSessionRequest) (*qodclient.SessionInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.creates++
	return nil, qodclient.ErrUnavailable
}

func (a *stallingAPI) Delete(context.Context, string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deletes++
	return nil
}

func (a *stallingAPI) peak() int { a.mu.Lock(); defer a.mu.Unlock(); return a.maxIn }

// The start checks stored sessions concurrently (bounded), keeps those it
// cannot check (the API answers 503, or hangs), and /-/ready is 503 until
// it is done (issue 8).
func TestE2ERestoreKeepsWhatItCannotCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer error // nil: the GETs hang until their timeout
	}{
		{"api-503", fmt.Errorf("GET: 503 SERVICE_UNAVAILABLE: %w", qodclient.ErrUnavailable)},
		{"api-hangs", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 3
			e := newEnv(t, envOptions{ues: n})
			e.spec.apiTimeout = "250ms" // one call's time is 4x: 1s
			e.spec.minSession = "5m"    // the UEs are well: nothing is released meanwhile
			cfg := e.spec.parse(t)
			store, err := daemon.OpenStateFile(e.spec.stateDir)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if _, err := store.Update(func(s *daemon.State) error {
				for i := range n {
					s.AddSession(daemon.Session{UE: fmt.Sprintf("ue-%d", i+1), ID: fmt.Sprintf("stored-%d", i+1), QoS: "QOS_E",
						StartedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour), Origin: "daemon"})
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			api := &stallingAPI{release: make(chan struct{})}
			d, err := daemon.New(daemon.Options{Config: cfg, API: api, ShutdownGrace: 5 * time.Second,
				Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			web := d.Handler()
			ready := func() int {
				rec := httptest.NewRecorder()
				web.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
				return rec.Code
			}

			e.eventually("every stored session checked at once", func() bool { return api.peak() == n })
			if code := ready(); code != http.StatusServiceUnavailable {
				t.Fatalf("/-/ready answered %d while the stored sessions were being checked, want 503", code)
			}
			if tc.answer != nil {
				api.answer = tc.answer
				close(api.release)
			} // else: the GETs time out
			e.eventually("ready once the restore is done", func() bool { return ready() == http.StatusOK })
			for i := range n {
				ue := fmt.Sprintf("ue-%d", i+1)
				var st policy.Status
				for _, s := range d.Statuses() {
					if s.UE == ue {
						st = s
					}
				}
				if !st.HasSession || st.Session.ID != fmt.Sprintf("stored-%d", i+1) {
					t.Errorf("%s after a restore that could not check: %+v; want the stored session kept", ue, st)
				}
			}
			if st, _ := store.Load(); len(st.Sessions) != n {
				t.Errorf("the state file lists %d sessions after the restore, want %d", len(st.Sessions), n)
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			if api.creates != 0 || api.deletes != 0 {
				t.Fatalf("%d creates, %d deletes during the restore; want none", api.creates, api.deletes)
			}
		})
	}
}

// The deadline of a "possibly held" UE is one: the policy's, the log's and
// the status page's (issue 8: the log said 09:32:38, the policy acted at
// 09:31:43 and POSTed into a 409).
func TestE2EPossiblyHeldDeadlineIsOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.start(e.spec.parse(t), "")
	e.sim.SetFaults(qodsim.Faults{DropCreateResponse: true})
	e.ue(1).bad()
	e.eventually("the UE possibly holding a session", func() bool { return r.status("ue-1").State == policy.StateUncertain })
	st := e.state()
	if len(st.Intents) != 1 {
		t.Fatalf("intents %+v, want the lost create's", st.Intents)
	}
	until := st.Intents[0].Until.UTC().Format(time.RFC3339)
	if w := r.status("ue-1").Waiting; !strings.Contains(w, until) {
		t.Fatalf("the status says %q; the intent (and the log) say %s", w, until)
	}
	if !strings.Contains(e.logs.String(), "until="+st.Intents[0].Until.Format(time.RFC3339Nano)[:19]) {
		t.Fatalf("the log does not name the intent's deadline %s:\n%s", until, e.logs.String())
	}
}

// Cooldown and min_session outlive a restart (issue 8: SIGTERM with
// release_on_shutdown, a restart, and a new session 5 s later despite
// cooldown: 1m). The UE stays bad across the restart, so a daemon that
// ignored the stored cooldown (or never stored it) buys again within a
// second: checked by disabling the restore, and the write, of the
// cooldown.
func TestE2ECooldownSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.spec.cooldown = "1m"
	e.spec.release = true
	cfg := e.spec.parse(t)
	r := e.start(cfg, "")
	e.ue(1).bad()
	e.waitSession(r, "ue-1")
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := e.tally(); got.deletes != 1 {
		t.Fatalf("simulator saw %s; want the session released at the stop", got)
	}
	r2 := e.start(e.spec.parse(t), "")
	e.eventually("the restarted daemon in the cooldown", func() bool { return r2.status("ue-1").State == policy.StateCooldown })
	e.consistently(2*time.Second, "nothing bought inside the cooldown", func() bool { return e.tally().posts == 1 })
	if st := e.state(); st.Cooldowns["ue-1"].IsZero() {
		t.Fatalf("the state file keeps no cooldown for ue-1: %+v", st)
	}
}

func TestE2EMinSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.spec.minSession = "5m"
	e.spec.pollInterval = "1h"
	cfg := e.spec.parse(t)
	client, err := daemon.NewClient(cfg.API)
	if err != nil {
		t.Fatal(err)
	}
	ue, _ := cfg.UE("ue-1")
	info, err := client.Create(t.Context(), daemon.CreateRequest(ue, "QOS_E", 600))
	if err != nil {
		t.Fatal(err)
	}
	// Renewed 10s ago, held for 10 minutes: min_session is over.
	now := time.Now()
	store, _ := daemon.OpenStateFile(e.spec.stateDir)
	if _, err := store.Update(func(s *daemon.State) error {
		s.AddSession(daemon.Session{UE: "ue-1", ID: info.ID, QoS: "QOS_E", StartedAt: now.Add(-10 * time.Second),
			ExpiresAt: now.Add(9 * time.Minute), HeldSince: now.Add(-10 * time.Minute), Origin: "daemon"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := e.start(cfg, "")
	e.eventually("the recovered UE's session released (min_session counted from the run's start)", func() bool {
		return e.tally().deletes == 1 && !r.status("ue-1").HasSession
	})
}

// Write errors of the state file are visible: a metric, /-/ready 503 and
// the status page.
func TestE2EStateFileWriteErrorsVisible(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.start(e.spec.parse(t), "")
	web := r.d.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		web.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	e.eventually("ready", func() bool { code, _ := get("/-/ready"); return code == http.StatusOK })
	daemon.SetStateWriteFault(r.d, func() error { return fmt.Errorf("write state file: no space left on device") })
	e.ue(1).bad()
	e.eventually("the failed write counted", func() bool {
		return r.metric(t, "qodwatch_state_file_write_errors_total") >= 1
	})
	if v := r.metric(t, "qodwatch_state_file_last_write_successful"); v != 0 {
		t.Errorf("qodwatch_state_file_last_write_successful = %v, want 0", v)
	}
	if code, body := get("/-/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left") {
		t.Errorf("/-/ready: %d %q; want 503 naming the error", code, body)
	}
	if _, body := get("/status.json"); !strings.Contains(body, `"state_file_error"`) {
		t.Errorf("/status.json does not show the state file error: %s", body)
	}
	if _, body := get("/"); !strings.Contains(body, "state file not writable") {
		t.Errorf("the status page does not show the state file error")
	}
	if got := e.tally(); got.posts != 0 {
		t.Fatalf("simulator saw %s: a create without its intent on disk", got)
	}
	// Once the disk is fixed the daemon finds out by itself, without
	// waiting for something to record.
	daemon.SetStateWriteFault(r.d, nil)
	e.eventually("ready again once writes work", func() bool { code, _ := get("/-/ready"); return code == http.StatusOK })
	if v := r.metric(t, "qodwatch_state_file_last_write_successful"); v != 1 {
		t.Errorf("qodwatch_state_file_last_write_successful = %v after a good write, want 1", v)
	}
}
