package daemon

// What the daemon does with CAMARA QualityOnDemand v1 beyond create, get
// and delete: a session is bought at REQUESTED and boosts only once
// AVAILABLE; one stuck in REQUESTED is deleted; one the network ended
// (UNAVAILABLE, NETWORK_TERMINATED) is deleted before a new one; renewal
// is an extend; a create whose outcome is unknown, or refused with 409, is
// reconciled with retrieve-sessions, and so is every open intent at start.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

// camaraAPI is what CAMARA v1 adds to SessionAPI; *qodclient.Client has it.
type camaraAPI interface {
	Extend(ctx context.Context, id string, seconds int) (*qodclient.SessionInfo, error)
	RetrieveSessions(ctx context.Context, ue qodclient.UeID) ([]qodclient.SessionInfo, error)
	QoSProfile(ctx context.Context, name string) (*qodclient.Profile, error)
}

// camaraState is the daemon's view of the qosStatus of the sessions it
// holds. Guarded by d.mu.
type camaraState struct {
	requested map[string]time.Time // session id -> when its create was answered REQUESTED
	available map[string]bool      // session id -> the network said AVAILABLE
	granted   map[string]int       // session id -> its duration in seconds, as the operator last said
}

func (c *camaraState) init() {
	if c.requested == nil {
		c.requested, c.available, c.granted = map[string]time.Time{}, map[string]bool{}, map[string]int{}
	}
}

func (c *camaraState) forget(id string) {
	delete(c.requested, id)
	delete(c.available, id)
	delete(c.granted, id)
}

// camaraLocked returns the v1 operations when the configured dialect is
// camara-v1 and the API has them. The caller holds d.mu.
func (d *Daemon) camaraLocked() (camaraAPI, bool) {
	if d.cfg.API.Dialect != "camara-v1" || d.cfg.DryRun {
		return nil, false
	}
	c, ok := d.api.(camaraAPI)
	return c, ok
}

func (d *Daemon) camara() (camaraAPI, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.camaraLocked()
}

// camaraMetrics count what only CAMARA v1 has.
type camaraMetrics struct {
	stuck      prometheus.Counter
	extended   prometheus.Counter
	reconciled *prometheus.CounterVec
	available  prometheus.GaugeFunc
}

func newCamaraMetrics(d *Daemon) *camaraMetrics {
	return &camaraMetrics{
		stuck: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qodwatch_sessions_stuck_requested_total",
			Help: "CAMARA v1 sessions deleted because they stayed REQUESTED longer than api.requested_timeout.",
		}),
		extended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qodwatch_sessions_extended_total", Help: "Sessions renewed by extending them (CAMARA v1).",
		}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qodwatch_reconciliations_total",
			Help: "retrieve-sessions look-ups (CAMARA v1), by trigger (unknown_outcome, conflict, start, reshard) and result (adopted, none, error).",
		}, []string{"trigger", "result"}),
		available: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qodwatch_sessions_available",
			Help: "Held sessions the network reports AVAILABLE (boosting); the others are REQUESTED (bought, not yet boosting).",
		}, func() float64 {
			d.mu.Lock()
			defer d.mu.Unlock()
			return float64(len(d.v1.available))
		}),
	}
}

func (m *camaraMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.stuck, m.extended, m.reconciled, m.available}
}

// noteCreated records the qosStatus a create answered. The caller holds d.mu.
func (d *Daemon) noteCreated(id string, info *qodclient.SessionInfo, now time.Time) {
	d.v1.init()
	if info.Duration > 0 {
		d.v1.granted[id] = info.Duration
	}
	switch info.QoSStatus {
	case qosRequested:
		d.v1.requested[id] = now
	case qosAvailable:
		d.v1.available[id] = true
	}
}

// noteAvailable records that the network provides session id of ue, now.
// A session first seen AVAILABLE started there: its expiry on our clock
// becomes now plus its duration (never before the operator's), unless a
// call for the UE is in flight (which settles it). The caller holds d.mu.
func (d *Daemon) noteAvailable(now time.Time, ue, id string, info *qodclient.SessionInfo) {
	d.v1.init()
	st, ok := d.engine.Status(ue)
	if !ok || !st.HasSession || st.Session.ID != id {
		return
	}
	_, wasRequested := d.v1.requested[id]
	if !d.v1.available[id] {
		d.log.Info("session available: the network provides its QoS", "ue", ue, "session_id", id, "qos", st.Session.QoS)
	}
	d.v1.available[id] = true
	if !wasRequested || info.Duration <= 0 || d.isBusy(ue) {
		delete(d.v1.requested, id)
		return
	}
	delete(d.v1.requested, id)
	s := st.Session
	s.ExpiresAt = now.Add(time.Duration(info.Duration) * time.Second)
	if !s.ExpiresAt.After(st.Session.ExpiresAt) {
		return
	}
	if err := d.adopt(now, ue, s, d.heldTx[id].txid); err != nil {
		d.log.Warn("policy refused the session's expiry once AVAILABLE", "ue", ue, "session_id", id, "err", err)
		return
	}
	d.persistAsync(func(x *State) {
		for i := range x.Sessions {
			if x.Sessions[i].ID == id {
				x.Sessions[i].ExpiresAt = s.ExpiresAt
			}
		}
	})
}

// availableNotice takes a CAMARA v1 AVAILABLE event on the path of the
// held session's create (anything else is rejected as for an end): a
// hint, confirmed by GET before the session counts as boosting. It
// reports a rejection reason or "". The caller holds d.mu.
func (d *Daemon) availableNotice(n Notice) (reject string) {
	h, ok := d.heldTx[n.SessionID]
	switch {
	case !ok || !d.holds(h.ue, n.SessionID):
		if _, seen := d.gone[n.SessionID]; seen {
			d.countNotice(noticeAlreadyEnded)
			return ""
		}
		return rejectUnknownSession
	case h.txid != n.TransactionID:
		return rejectWrongTransaction
	}
	d.countNotice(noticeIgnored) // not an end: nothing is forgotten
	api := d.api
	id := n.SessionID
	d.ops.goAPI(func() { d.confirmAvailable(api, id) })
	return ""
}

// markEndedStray marks a session the network ended but keeps (CAMARA v1)
// as a stray waiting for its DELETE, before the policy hears of the end:
// the next create for the UE sees it at once, and the state file keeps it
// until the DELETE lands. The caller holds d.mu.
func (d *Daemon) markEndedStray(ue, id string) bool {
	if _, ok := d.camaraLocked(); !ok {
		return false
	}
	d.strays[id] = ue
	return true
}

// deleteEnded deletes a session the network ended but keeps, off the
// caller's goroutine; a failed DELETE leaves it a stray, tried again at
// each poll and before the next create for its UE.
func (d *Daemon) deleteEnded(ue, id string) {
	if d.ops.isFinished() {
		return
	}
	d.mu.Lock()
	ok := d.markEndedStray(ue, id)
	d.mu.Unlock()
	if !ok {
		return
	}
	if !d.ops.goAPI(func() { d.deleteStray(ue, id) }) {
		d.log.Info("ended session not deleted while stopping; left to the next start", "session_id", id)
	}
}

// confirmAvailable is availableNotice's GET and what follows from it.
func (d *Daemon) confirmAvailable(api SessionAPI, id string) {
	{
		txid := qodclient.NewTransactionID()
		ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
		defer cancel()
		info, err := api.Get(ctx, id)
		d.countAPI("get", err)
		if err != nil {
			d.log.Warn("AVAILABLE notification not confirmed; the next poll looks again", "session_id", id, "transaction_id", txid, "err", err)
			return
		}
		if info.QoSStatus != qosAvailable {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if h, ok := d.heldTx[id]; ok && d.holds(h.ue, id) {
			d.noteAvailable(d.now(), h.ue, id, info)
		}
	}
}

// pollV1 acts on what a poll's GET says of a held CAMARA v1 session:
// AVAILABLE is recorded; REQUESTED past api.requested_timeout is given up
// (deleted, counted, ended). It reports whether it took the session over.
// The caller holds d.mu.
func (d *Daemon) pollV1(now time.Time, ue, id string, info *qodclient.SessionInfo) (stuck bool) {
	d.v1.init()
	if info.Duration > 0 && !d.isBusy(ue) {
		d.v1.granted[id] = info.Duration
	}
	switch info.QoSStatus {
	case qosAvailable:
		d.noteAvailable(now, ue, id, info)
	case qosRequested:
		since, ok := d.v1.requested[id]
		if !ok {
			since = now
			d.v1.requested[id] = now // adopted at start: counted from now
		}
		if now.Sub(since) < d.cfg.API.RequestedTimeout {
			return false
		}
		d.log.Warn("session still REQUESTED after api.requested_timeout: the network is not providing it; deleting it",
			"ue", ue, "session_id", id, "requested_for", now.Sub(since).Round(time.Second))
		d.v1metrics.stuck.Inc()
		d.strays[id] = ue
		d.ended(now, ue, id, policy.EndTerminated)
		return true
	}
	return false
}

// clearStrays deletes the sessions of ue that wait for a DELETE (ended by
// the network, stuck, refused) before a new one is asked for: the
// operator refuses a second session for the device while one exists. It
// reports whether none is left.
func (d *Daemon) clearStrays(ue string) bool {
	d.mu.Lock()
	var ids []string
	for id, u := range d.strays {
		if u == ue {
			ids = append(ids, id)
		}
	}
	d.mu.Unlock()
	for _, id := range ids {
		d.deleteStray(ue, id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.strays {
		if u == ue {
			return false
		}
	}
	return true
}

// extend renews op's session by extending it so that it lasts op's
// duration from now (the operator caps it at the profile's maxDuration).
// It reports false when a delete-and-create must be done instead: the
// operator refuses the extension (409 SESSION_EXTENSION_NOT_ALLOWED: not
// AVAILABLE), the session is gone, or the extension added nothing (the
// profile's maxDuration is reached).
func (d *Daemon) extend(op sessionOp, api camaraAPI) bool {
	ue, id := op.dec.UE, op.dec.SessionID
	d.mu.Lock()
	st, _ := d.engine.Status(ue)
	now := d.now()
	d.v1.init()
	before := d.v1.granted[id]
	d.mu.Unlock()
	if !st.HasSession || st.Session.ID != id {
		return false
	}
	remaining := st.Session.ExpiresAt.Sub(now)
	add := max(1, int((op.dec.Duration-remaining+time.Second-1)/time.Second))
	txid := qodclient.NewTransactionID()
	log := d.log.With("ue", ue, "session_id", id, "transaction_id", txid)
	ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
	defer cancel()
	info, err := api.Extend(ctx, id, add)
	d.countAPI("extend", err)
	switch {
	case errors.Is(err, qodclient.ErrExtensionNotAllowed), errors.Is(err, qodclient.ErrNotFound):
		log.Warn("extend refused; renewing by delete and create", "err", err)
		return false
	case err != nil:
		log.Error("extend session failed", "err", err)
		d.mu.Lock()
		_ = d.engine.Failed(d.now(), ue, failure(err))
		d.mu.Unlock()
		return true
	}
	answered := d.now()
	// What the operator added (it caps the total at the profile's
	// maxDuration) moves our expiry by as much: times stay on our clock.
	added := add
	if before > 0 && info.Duration > 0 {
		added = min(add, info.Duration-before)
	}
	exp := st.Session.ExpiresAt.Add(time.Duration(max(0, added)) * time.Second)
	if added <= 0 {
		log.Info("extend added nothing (the profile's maxDuration is reached); renewing by delete and create")
		d.mu.Lock()
		d.v1.granted[id] = info.Duration
		d.mu.Unlock()
		return false
	}
	s := Session{UE: ue, ID: id, QoS: st.Session.QoS, Rule: op.dec.Rule, StartedAt: st.Session.StartedAt, ExpiresAt: exp, Origin: "daemon"}
	if _, err := d.store.Update(func(x *State) error {
		if old, ok := x.SessionFor(ue); ok && old.ID == id {
			s.TransactionID, s.Origin = old.TransactionID, old.Origin
		}
		x.AddSession(s)
		return nil
	}); err != nil {
		log.Error("state file update failed after extend", "err", err)
	}
	log.Info("session extended", "expires_at", exp, "added_seconds", add, "granted_duration_seconds", info.Duration)
	d.mu.Lock()
	defer d.mu.Unlock()
	if info.Duration > 0 {
		d.v1.granted[id] = info.Duration
	}
	// For the policy the extended session is a renewal starting now: its
	// next renewal is timed from the length asked for, as after a create.
	if err := d.opened(answered, ue, policy.Session{ID: id, QoS: s.QoS, StartedAt: answered, ExpiresAt: exp}, d.heldTx[id].txid); err != nil {
		log.Warn("policy refused the extended session", "err", err)
		return true
	}
	d.v1metrics.extended.Inc()
	return true
}

// ueIDOf names a configured UE as a create does.
func ueIDOf(ue *config.UE) qodclient.UeID {
	return createRequest(ue, "", 0, "", "").UeID
}

// reconcile asks the operator which sessions the UE has (retrieve-sessions)
// after a create that may have made one (outcome unknown, 409, an intent
// found at start). A live one is adopted (and recorded in place of the
// intent txid), any other live one and every UNAVAILABLE one is deleted;
// when there is none, the UE is no longer suspected of holding one. On
// failure nothing changes: the UE stays suspected until the intent runs
// out, as without v1.
func (d *Daemon) reconcile(api camaraAPI, ueName, trigger, txid string) {
	d.mu.Lock()
	ue, ok := d.cfg.UE(ueName)
	d.mu.Unlock()
	if !ok {
		return
	}
	lookTx := qodclient.NewTransactionID()
	log := d.log.With("ue", ueName, "transaction_id", lookTx, "create_transaction_id", txid, "trigger", trigger)
	ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, lookTx), d.callTimeout())
	list, err := api.RetrieveSessions(ctx, ueIDOf(ue))
	cancel()
	d.countAPI("retrieve", err)
	if err != nil {
		d.v1metrics.reconciled.WithLabelValues(trigger, "error").Inc()
		log.Warn("retrieve-sessions failed; the UE stays suspected of holding a session", "err", err)
		return
	}
	var live, dead []qodclient.SessionInfo
	for _, s := range list {
		if s.QoSStatus == qosUnavailable {
			dead = append(dead, s)
		} else {
			live = append(live, s)
		}
	}
	// The newest live one is kept: it is the create just made.
	slices.SortStableFunc(live, func(a, b qodclient.SessionInfo) int { return a.StartedAt.Compare(b.StartedAt) })
	var stray []string
	for _, s := range dead {
		stray = append(stray, s.ID)
	}
	d.mu.Lock()
	now := d.now()
	cur, known := d.engine.Status(ueName)
	adopted := ""
	switch {
	case !known:
	case cur.HasSession:
		for _, s := range live {
			if s.ID != cur.Session.ID {
				stray = append(stray, s.ID)
			}
		}
	case len(live) > 0:
		keep := live[len(live)-1]
		for _, s := range live[:len(live)-1] {
			stray = append(stray, s.ID)
		}
		qos := string(keep.QoS)
		if qos == "" {
			qos = cur.Session.QoS
		}
		// Counted from now on our clock: never before the operator's end.
		exp := now.Add(grantedDuration(&keep, qodMaxDuration))
		s := Session{UE: ueName, ID: keep.ID, QoS: qos, StartedAt: now, ExpiresAt: exp, TransactionID: txid, Origin: "daemon"}
		if err := d.opened(now, ueName, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt}, txid); err != nil {
			log.Warn("policy refused the session found by retrieve-sessions; ending it", "session_id", keep.ID, "err", err)
			stray = append(stray, keep.ID)
			break
		}
		adopted = keep.ID
		delete(d.gone, keep.ID)
		d.noteCreated(keep.ID, &keep, now)
		d.metrics.sessionsOpened.WithLabelValues(qos).Inc()
		log.Warn("found the session of a create whose outcome was unknown (retrieve-sessions); adopted", "session_id", keep.ID, "qos_status", keep.QoSStatus)
		d.persistAsync(func(x *State) { x.AddSession(s) })
	case cur.State == policy.StateUncertain && !d.suspectedByOther(ueName):
		log.Info("retrieve-sessions finds no session: the create made none; the UE is no longer suspected")
		_ = d.engine.PossiblyHolds(now, ueName, time.Time{})
		d.persistAsync(func(x *State) {
			for _, in := range slices.Clone(x.Intents) {
				if in.UE == ueName && in.Origin == "daemon" {
					x.DropIntent(in.TransactionID)
				}
			}
		})
	}
	for _, id := range stray {
		d.strays[id] = ueName
	}
	d.mu.Unlock()
	result := "none"
	if adopted != "" {
		result = "adopted"
	}
	d.v1metrics.reconciled.WithLabelValues(trigger, result).Inc()
	for _, id := range stray {
		log.Warn("retrieve-sessions finds a session the UE must not keep; deleting it", "session_id", id)
		d.deleteStray(ueName, id)
	}
}

// suspectedByOther: another process's create (sessions CLI) is what the
// UE is suspected for; its own intent settles that. The caller holds d.mu.
func (d *Daemon) suspectedByOther(ue string) bool {
	_, ok := d.suspects[ue]
	return ok
}

// reconcileAtStart looks up, with retrieve-sessions, every UE that an open
// intent of the daemon marks as possibly holding a session: a create lost
// before the last stop is found and adopted (then ended on recovery) or
// shown never to have happened.
func (d *Daemon) reconcileAtStart(ctx context.Context) {
	api, ok := d.camara()
	if !ok || d.store == nil {
		return
	}
	st, err := d.store.Load()
	if err != nil {
		return
	}
	now := d.now()
	seen := map[string]bool{}
	for _, in := range st.Intents {
		if in.Origin != "daemon" || !now.Before(in.Until) || seen[in.UE] || ctx.Err() != nil {
			continue
		}
		seen[in.UE] = true
		d.mu.Lock()
		cur, known := d.engine.Status(in.UE)
		d.mu.Unlock()
		if known && !cur.HasSession && cur.State == policy.StateUncertain {
			d.reconcile(api, in.UE, "start", in.TransactionID)
		}
	}
}
