package daemon

import (
	"sync"
	"time"

	"github.com/qodwatch/qodwatch/policy"
)

// decisionsKept is how many decisions per UE the status page shows.
const decisionsKept = 5

// decisionLog keeps the last decisions of each UE for the status page.
// Only UEs that ever had a decision take memory.
type decisionLog struct {
	mu   sync.Mutex
	byUE map[string]*decisionRing
}

type decisionRing struct {
	recs [decisionsKept]decisionRecord
	next int
	n    int
}

type decisionRecord struct {
	Kind      string    `json:"kind" doc:"request, renew, escalate or release"`
	At        time.Time `json:"at" doc:"when the policy decided it"`
	QoS       string    `json:"qos,omitempty" doc:"the profile asked for, or the released session's"`
	SessionID string    `json:"session_id,omitempty" doc:"the session renewed, escalated or released"`
	Reason    string    `json:"reason" doc:"why, with the values measured"`
}

func (l *decisionLog) note(dec policy.Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byUE == nil {
		l.byUE = map[string]*decisionRing{}
	}
	r := l.byUE[dec.UE]
	if r == nil {
		r = new(decisionRing)
		l.byUE[dec.UE] = r
	}
	r.recs[r.next] = decisionRecord{Kind: dec.Kind.String(), At: dec.At, QoS: dec.QoS, SessionID: dec.SessionID, Reason: dec.Reason}
	r.next = (r.next + 1) % decisionsKept
	r.n = min(r.n+1, decisionsKept)
}

// last returns the UE's decisions, newest first.
func (l *decisionLog) last(ue string) []decisionRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.byUE[ue]
	if r == nil {
		return nil
	}
	out := make([]decisionRecord, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.recs[(r.next-i+decisionsKept)%decisionsKept])
	}
	return out
}

// keep forgets the UEs not in names (after a reload).
func (l *decisionLog) keep(names []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	for ue := range l.byUE {
		if !set[ue] {
			delete(l.byUE, ue)
		}
	}
}
