package daemon

import (
	"fmt"
	"time"

	"github.com/qodwatch/qodwatch/config"
)

// originReshard marks the intents a shard writes for the UEs it gained in a
// reshard: the previous owner may still hold a session for one (it ends
// those when it restarts with the new shard count), so the UE counts as
// possibly holding one until the handover period is over, or until a CAMARA
// v1 retrieve-sessions shows it holds none.
const originReshard = "reshard"

// DefaultHandover is how long a gained UE is held as possibly holding its
// previous owner's session: long enough for a StatefulSet's rolling update
// to restart every old owner, which then ends what it no longer owns.
const DefaultHandover = 5 * time.Minute

// ShardRecord is the shard a state file's owner last ran as.
type ShardRecord struct {
	Count int `json:"count"`
	Index int `json:"index"`
}

// handover records s as the state file's shard and, when that changed,
// adds an intent for every UE of cfg that s owns, the state file holds no
// session for, and the previous shard did not own (every one, when the
// previous shard is unknown: a new volume after a scale-up looks just like
// a first start). It reports how many UEs it holds.
func handover(st *State, s config.Shard, cfg *config.Config, period time.Duration, now time.Time) int {
	prev := st.Shard
	cur := ShardRecord{Count: max(s.Count, 1), Index: s.Index}
	if prev != nil && *prev == cur || prev == nil && s.Whole() {
		st.Shard = &cur
		return 0
	}
	st.Shard = &cur
	if period <= 0 {
		return 0
	}
	n := 0
	for i := range cfg.UEs {
		name := cfg.UEs[i].Name
		if !s.Owns(name) {
			continue
		}
		if prev != nil && (config.Shard{Count: prev.Count, Index: prev.Index}).Owns(name) {
			continue // this volume's owner had it before: it knows what it holds
		}
		if _, has := st.SessionFor(name); has {
			continue
		}
		if _, open := st.OpenIntentFor(name, now); open {
			continue
		}
		st.Intents = append(st.Intents, Intent{
			UE: name, TransactionID: fmt.Sprintf("reshard-%s-%d", name, now.UnixNano()),
			SentAt: now, Until: now.Add(period), Origin: originReshard,
		})
		n++
	}
	return n
}
