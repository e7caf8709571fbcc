package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/qodwatch/qodwatch/config"
)

// DefaultHandover is how long a UE a shard gained in a reshard counts as
// possibly holding its previous owner's session: long enough for a
// StatefulSet's rolling update to restart every old owner, which then ends
// the sessions of the UEs it no longer owns.
const DefaultHandover = 5 * time.Minute

// reshardLookupLimit bounds the CAMARA v1 look-ups a shard makes at start
// for the UEs it gained: one retrieve-sessions each settles them at once,
// but a first rollout gains every UE, and that many calls in a burst would
// cost the operator more than waiting out the handover costs us.
const reshardLookupLimit = 1000

// Handover is a reshard in progress: until Until, the UEs this shard owns
// and From did not (every one, when From is unknown) may still hold a
// session of their previous owner.
type Handover struct {
	From  *config.Shard `json:"from,omitempty"`
	Until time.Time     `json:"until"`
}

// recordShard records s as the state file's shard; when that is a change
// (or the file has no record and s is a part of a fleet, as on a new
// volume after a scale-up), a handover of period starts.
func recordShard(st *State, s config.Shard, period time.Duration, now time.Time) {
	cur := config.Shard{Count: max(s.Count, 1), Index: s.Index}
	prev := st.Shard
	st.Shard = &cur
	if st.Handover != nil && !now.Before(st.Handover.Until) {
		st.Handover = nil
	}
	if prev != nil && *prev == cur || prev == nil && s.Whole() || period <= 0 {
		return
	}
	st.Handover = &Handover{From: prev, Until: now.Add(period)}
}

// gainedUEs are the UEs of cfg a handover in st holds: owned by s, not by
// the previous shard, with no session of their own in the state file.
func gainedUEs(st *State, s config.Shard, cfg *config.Config, now time.Time) []string {
	h := st.Handover
	if h == nil || !now.Before(h.Until) {
		return nil
	}
	var out []string
	for i := range cfg.UEs {
		name := cfg.UEs[i].Name
		if !s.Owns(name) || h.From != nil && h.From.Owns(name) {
			continue
		}
		if _, has := st.SessionFor(name); has {
			continue
		}
		out = append(out, name)
	}
	return out
}

// reconcileGained looks up the gained UEs with retrieve-sessions (CAMARA
// v1), a few at a time: a previous owner's session is adopted (and ended on
// recovery, or by that owner, whichever comes first) or shown not to exist.
func (d *Daemon) reconcileGained(ctx context.Context, ues []string) {
	api, ok := d.camara()
	if !ok || len(ues) == 0 {
		return
	}
	if len(ues) > reshardLookupLimit {
		d.log.Info("reshard: too many gained UEs to look up at start; they wait out the handover", "ues", len(ues), "limit", reshardLookupLimit)
		return
	}
	slots := make(chan struct{}, restoreConcurrency)
	var wg sync.WaitGroup
	for _, ue := range ues {
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			d.reconcile(api, ue, "reshard", "")
		}()
	}
	wg.Wait()
}
