package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
)

// startShard runs one shard of cfg on its own state directory, as a
// StatefulSet's pod runs on its own volume.
func (e *env) startShard(cfg *config.Config, s config.Shard, stateDir string, handover time.Duration) *running {
	e.t.Helper()
	c := *cfg
	c.StateDir = stateDir
	d, err := daemon.New(daemon.Options{
		Config: &c, ShutdownGrace: 10 * time.Second, Shard: s, Handover: handover,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("shard", s.String()),
	})
	if err != nil {
		e.t.Fatalf("daemon.New(%s): %v", s, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	e.t.Cleanup(func() { _ = r.stop(e.t) })
	return r
}

// Resharding from 2 to 3 shards while every UE holds a session: no UE is
// ever bought twice (the simulator answers no 409), the shard that gains a
// UE buys nothing while its old owner may hold a session, old owners end
// what they no longer own, and in the end each UE holds one session, known
// to its new owner, ended on recovery.
func TestE2EReshard(t *testing.T) {
	eachDialect(t, func(t *testing.T, dl dialect) {
		e := newEnv(t, envOptions{dialect: dl, ues: 6})
		e.spec.cooldown = "0s"
		cfg := e.spec.parse(t)
		e.spec.stateDir = "" // one per shard below; the invariants check for duplicates only
		dir := t.TempDir()
		vol := func(i int) string { return filepath.Join(dir, fmt.Sprintf("state-%d", i)) }
		owner := func(ue string, count int) int { return config.HashMod(ue, count) }
		moved := 0
		for _, u := range e.spec.ues {
			if owner(u.name, 2) != owner(u.name, 3) {
				moved++
			}
		}
		if moved == 0 || moved == len(e.spec.ues) {
			t.Fatalf("%d of %d UEs change shard: pick other names", moved, len(e.spec.ues))
		}

		// A first rollout: nobody held anything before (a new volume
		// otherwise holds its UEs for the handover, not knowing that).
		old := []*running{e.startShard(cfg, config.Shard{Count: 2, Index: 0}, vol(0), 0),
			e.startShard(cfg, config.Shard{Count: 2, Index: 1}, vol(1), 0)}
		for _, u := range e.spec.ues {
			e.targets[u.name].bad()
		}
		before := map[string]string{}
		for _, u := range e.spec.ues {
			r := old[owner(u.name, 2)]
			e.eventually(u.name+" holding a session from shard "+fmt.Sprint(owner(u.name, 2)), func() bool {
				st := r.status(u.name)
				return st.HasSession && st.Session.ID != ""
			})
			before[u.name] = old[owner(u.name, 2)].status(u.name).Session.ID
		}
		for _, r := range old {
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
		}
		posts := e.tally().posts

		// The new volume first: its UEs' sessions are still held by shards
		// that have not restarted yet.
		handover := 4 * time.Second
		if dl.name == camaraV1.name {
			handover = time.Minute // retrieve-sessions settles it at once
		}
		newShards := make([]*running, 3)
		newShards[2] = e.startShard(cfg, config.Shard{Count: 3, Index: 2}, vol(2), handover)
		e.consistently(time.Second, "the new shard buying nothing while old owners may hold sessions", func() bool {
			return e.tally().posts == posts && e.tally().conflicts == 0
		})
		newShards[0] = e.startShard(cfg, config.Shard{Count: 3, Index: 0}, vol(0), handover)
		newShards[1] = e.startShard(cfg, config.Shard{Count: 3, Index: 1}, vol(1), handover)

		for _, u := range e.spec.ues {
			r := newShards[owner(u.name, 3)]
			e.eventually(u.name+" held by its new shard", func() bool {
				st := r.status(u.name)
				return st.HasSession && slices.Contains(e.liveIDs(), st.Session.ID)
			})
			for i, other := range newShards {
				if i != owner(u.name, 3) {
					if st := other.status(u.name); st.UE != "" {
						t.Fatalf("shard %d of 3 watches %s, which hashes to shard %d", i, u.name, owner(u.name, 3))
					}
				}
			}
		}
		if got := len(e.live()); got != len(e.spec.ues) {
			t.Fatalf("%d live sessions for %d UEs: %v", got, len(e.spec.ues), e.liveIDs())
		}
		for _, u := range e.spec.ues {
			e.targets[u.name].good()
		}
		e.eventually("every session ended on recovery", func() bool { return len(e.live()) == 0 })
		if got := e.tally(); got.conflicts != 0 {
			t.Fatalf("simulator saw %s: a shard bought for a UE another still held", got)
		}
		if e.tally().deletes < moved {
			t.Fatalf("simulator saw %s; want the %d moved UEs' old sessions ended", e.tally(), moved)
		}
	})
}
