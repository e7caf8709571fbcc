package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

// intentMargin is added to a create's duration before its intent is
// forgotten: clocks of operator and host may disagree a little.
const intentMargin = time.Minute

// dispatch starts what a decision asks for. The caller holds d.mu.
func (d *Daemon) dispatch(dec policy.Decision) {
	d.metrics.decisions.WithLabelValues(dec.Kind.String()).Inc()
	d.log.Info("decision", "ue", dec.UE, "decision", dec.Kind.String(), "rule", dec.Rule,
		"qos", dec.QoS, "duration", dec.Duration, "session_id", dec.SessionID, "reason", dec.Reason)
	if d.cfg.DryRun {
		d.dryRun(dec)
		return
	}
	ue, ok := d.cfg.UE(dec.UE)
	if !ok && dec.Kind != policy.Release {
		_ = d.engine.Failed(d.now(), dec.UE, policy.Failure{Err: errors.New("UE no longer configured")})
		return
	}
	d.busy[dec.UE] = true
	req := sessionOp{dec: dec, api: d.api}
	if ok {
		req.body = createRequest(ue, dec.QoS, int(dec.Duration/time.Second), d.notifyURL(), d.notifyToken)
	}
	d.ops.Add(1)
	go func() {
		defer d.ops.Done()
		d.run(req)
	}()
}

func (d *Daemon) notifyURL() string {
	if !d.cfg.Notifications.Enabled() {
		return ""
	}
	return d.cfg.Notifications.PublicURL
}

// sessionOp is one decision being carried out, with what it needs copied
// out of the locked daemon.
type sessionOp struct {
	dec  policy.Decision
	api  SessionAPI
	body qodclient.CreateSessionRequest
}

// run carries out one decision and reports each step back to the engine in
// order. Renew and Escalate end the old session before opening the new
// one: DevEdge has no extend and refuses a second session for a UE.
func (d *Daemon) run(op sessionOp) {
	defer func() {
		d.mu.Lock()
		delete(d.busy, op.dec.UE)
		d.mu.Unlock()
	}()
	switch op.dec.Kind {
	case policy.Release:
		d.release(op)
	case policy.Request:
		d.open(op)
	case policy.Renew, policy.Escalate:
		if !d.release(op) {
			return
		}
		d.open(op)
	}
}

// release ends op's session. It reports Ended on success (a 404 counts:
// the session is gone) and Failed otherwise.
func (d *Daemon) release(op sessionOp) bool {
	txid := qodclient.NewTransactionID()
	ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
	defer cancel()
	failpoint(fpBeforeEnd)
	err := op.api.Delete(ctx, op.dec.SessionID)
	d.countAPI("delete", err)
	log := d.log.With("ue", op.dec.UE, "session_id", op.dec.SessionID, "transaction_id", txid)
	if err != nil {
		log.Error("end session failed", "err", err)
		d.mu.Lock()
		_ = d.engine.Failed(d.now(), op.dec.UE, failure(err))
		d.mu.Unlock()
		return false
	}
	failpoint(fpAfterEnd)
	log.Info("session ended", "decision", op.dec.Kind.String())
	d.forget(op.dec.SessionID)
	d.mu.Lock()
	d.gone[op.dec.SessionID] = true
	if err := d.engine.Ended(d.now(), op.dec.UE, op.dec.SessionID, policy.EndReleased); err != nil {
		log.Warn("policy refused session end", "err", err)
	}
	d.metrics.sessionsEnded.WithLabelValues(policy.EndReleased.String()).Inc()
	d.mu.Unlock()
	return true
}

// open creates a session for op. The intent is made durable before the
// request is sent and the session before the engine hears of it, so a crash
// at any point leaves the daemon knowing, or suspecting, every session.
func (d *Daemon) open(op sessionOp) {
	txid := qodclient.NewTransactionID()
	now := d.now()
	log := d.log.With("ue", op.dec.UE, "qos", op.dec.QoS, "transaction_id", txid)
	intent := Intent{
		UE: op.dec.UE, QoS: op.dec.QoS, Duration: op.body.Duration, TransactionID: txid,
		SentAt: now, Until: now.Add(op.dec.Duration + intentMargin), Origin: "daemon",
	}
	if _, err := d.store.Update(func(s *State) error { s.Intents = append(s.Intents, intent); return nil }); err != nil {
		log.Error("not creating a session: its intent could not be recorded", "err", err)
		d.mu.Lock()
		_ = d.engine.Failed(d.now(), op.dec.UE, policy.Failure{Err: err, Retryable: true})
		d.mu.Unlock()
		return
	}
	failpoint(fpAfterIntent)
	ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
	defer cancel()
	info, err := op.api.Create(ctx, op.body)
	d.countAPI("create", err)
	if err != nil {
		f := failure(err)
		switch {
		case errors.Is(err, qodclient.ErrUnknownOutcome):
			// The intent stays: the session may exist. The engine holds
			// the UE as possibly holding one and buys nothing meanwhile.
			log.Warn("create outcome unknown; treating the UE as possibly holding a session", "until", intent.Until, "err", err)
			f.Uncertain = true
		case errors.Is(err, qodclient.ErrConflict):
			// The operator says the UE holds a session already: one we
			// lost track of or one made elsewhere. Same as unknown.
			log.Warn("operator reports a session for this UE already (409); treating it as possibly held", "until", intent.Until, "err", err)
			f.Uncertain = true
		default:
			log.Error("create session failed", "err", err)
			d.forgetIntent(txid)
		}
		d.mu.Lock()
		_ = d.engine.Failed(d.now(), op.dec.UE, f)
		d.mu.Unlock()
		return
	}
	s := Session{
		UE: op.dec.UE, ID: info.ID, QoS: string(info.QoS), Rule: op.dec.Rule,
		StartedAt: orNow(info.StartedAt, now), ExpiresAt: info.ExpiresAt, TransactionID: txid, Origin: "daemon",
	}
	if s.QoS == "" {
		s.QoS = op.dec.QoS
	}
	if s.ExpiresAt.IsZero() {
		s.ExpiresAt = s.StartedAt.Add(op.dec.Duration)
	}
	failpoint(fpAfterCreate)
	if _, err := d.store.Update(func(st *State) error { st.AddSession(s); return nil }); err != nil {
		// The intent is still on disk, so a crash now leaves the UE
		// suspected, not unknown. Keep going with the session.
		log.Error("state file update failed after create", "session_id", s.ID, "err", err)
	}
	failpoint(fpAfterRecord)
	log.Info("session opened", "session_id", s.ID, "expires_at", s.ExpiresAt, "decision", op.dec.Kind.String())
	d.mu.Lock()
	if err := d.engine.Opened(d.now(), op.dec.UE, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt}); err != nil {
		// A second session for the UE: end it rather than pay twice.
		log.Error("policy refused the new session; ending it", "session_id", s.ID, "err", err)
		d.mu.Unlock()
		d.deleteStray(op.dec.UE, s.ID)
		return
	}
	d.metrics.sessionsOpened.WithLabelValues(s.QoS).Inc()
	d.mu.Unlock()
}

func (d *Daemon) deleteStray(ue, id string) {
	txid := qodclient.NewTransactionID()
	ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
	defer cancel()
	d.mu.Lock()
	api := d.api
	d.mu.Unlock()
	err := api.Delete(ctx, id)
	d.countAPI("delete", err)
	if err != nil {
		d.log.Error("ending stray session failed; it stays in the state file", "ue", ue, "session_id", id, "transaction_id", txid, "err", err)
		return
	}
	d.forget(id)
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

func (d *Daemon) callTimeout() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Retries of one call fit in a few timeouts.
	t := d.cfg.API.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	return 4 * t
}

// failure maps an API error onto what the engine needs to know.
func failure(err error) policy.Failure {
	f := policy.Failure{Err: err}
	var ae *qodclient.APIError
	if errors.As(err, &ae) {
		f.RetryAfter = ae.RetryAfter
	}
	switch {
	case errors.Is(err, qodclient.ErrRateLimited), errors.Is(err, qodclient.ErrUnavailable),
		errors.Is(err, qodclient.ErrUnauthorized), errors.Is(err, qodclient.ErrUnknownOutcome),
		errors.Is(err, context.DeadlineExceeded):
		f.Retryable = true
	case ae != nil && ae.Status >= 500:
		f.Retryable = true
	case ae == nil:
		f.Retryable = true // network trouble
	}
	return f
}

func (d *Daemon) forget(id string) {
	if d.store == nil {
		return
	}
	if _, err := d.store.Update(func(s *State) error { s.RemoveSession(id); return nil }); err != nil {
		d.log.Error("state file update failed", "err", err)
	}
}

func (d *Daemon) forgetIntent(txid string) {
	if _, err := d.store.Update(func(s *State) error { s.DropIntent(txid); return nil }); err != nil {
		d.log.Error("state file update failed", "err", err)
	}
}

// pollHeld checks every held session with GET: the only signal that the
// network ended it when notifications don't reach us. The caller holds d.mu.
func (d *Daemon) pollHeld() {
	for _, st := range d.engine.Statuses(nil) {
		if !st.HasSession || d.busy[st.UE] || d.polling[st.Session.ID] {
			continue
		}
		d.polling[st.Session.ID] = true
		ue, id, api := st.UE, st.Session.ID, d.api
		d.ops.Add(1)
		go func() {
			defer d.ops.Done()
			defer func() { d.mu.Lock(); delete(d.polling, id); d.mu.Unlock() }()
			txid := qodclient.NewTransactionID()
			ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
			defer cancel()
			info, err := api.Get(ctx, id)
			d.countAPI("get", err)
			gone := errors.Is(err, qodclient.ErrNotFound)
			if err != nil && !gone {
				d.log.Warn("session check failed; keeping it", "ue", ue, "session_id", id, "transaction_id", txid, "err", err)
				return
			}
			if !gone && info.QoSStatus != "UNAVAILABLE" {
				return
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if st, ok := d.engine.Status(ue); !ok || !st.HasSession || st.Session.ID != id || d.busy[ue] {
				return // ended meanwhile, by us or a notification
			}
			d.log.Warn("session ended by the network (found by polling)", "ue", ue, "session_id", id, "transaction_id", txid)
			d.ended(d.now(), ue, id, policy.EndTerminated)
		}()
	}
}

// sessionTerminated handles a SESSION_TERMINATED notification.
func (d *Daemon) sessionTerminated(id string) {
	d.metrics.notifications.Inc()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.engine.Statuses(nil) {
		if st.HasSession && st.Session.ID == id {
			d.log.Warn("session ended by the network (notification)", "ue", st.UE, "session_id", id)
			d.ended(d.now(), st.UE, id, policy.EndTerminated)
			return
		}
	}
	// A session we don't hold: perhaps one whose create answer was lost.
	// Its end settles the suspicion for its UE.
	if d.store == nil {
		return
	}
	d.ops.Add(1)
	go func() {
		defer d.ops.Done()
		d.settleUnknown(id)
	}()
}

// settleUnknown looks at a session named by a notification that the daemon
// does not hold, and if it belongs to a UE with an open create intent,
// clears that UE's suspicion: the session it might have had is over.
func (d *Daemon) settleUnknown(id string) {
	d.mu.Lock()
	api := d.api
	d.mu.Unlock()
	txid := qodclient.NewTransactionID()
	ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
	defer cancel()
	info, err := api.Get(ctx, id)
	d.countAPI("get", err)
	if err != nil && !errors.Is(err, qodclient.ErrNotFound) {
		d.log.Warn("notification for an unknown session; could not look it up", "session_id", id, "transaction_id", txid, "err", err)
		return
	}
	if info == nil {
		d.log.Info("notification for a session this daemon does not hold; ignored", "session_id", id)
		return
	}
	st, err := d.store.Load()
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.cfg.UEs {
		ue := &d.cfg.UEs[i]
		if !sameUE(ue, info.UeID) {
			continue
		}
		in, ok := st.IntentFor(ue.Name)
		if !ok {
			return
		}
		d.log.Info("notification settles a lost create: the session it may have made has ended", "ue", ue.Name, "session_id", id, "intent_transaction_id", in.TransactionID)
		_ = d.engine.PossiblyHolds(d.now(), ue.Name, time.Time{})
		d.persistAsync(func(s *State) { s.DropIntent(in.TransactionID) })
		return
	}
}

func sameUE(ue *config.UE, id qodclient.UeID) bool {
	return (id.MSISDN != "" && id.MSISDN == ue.MSISDN) ||
		(id.ExternalID != "" && id.ExternalID == ue.ExternalID) ||
		(id.IPv4Addr != "" && id.IPv4Addr == ue.IPv4) ||
		(id.IPv6Addr != "" && id.IPv6Addr == ue.IPv6)
}

// restore adopts what the state file holds: each session is checked with
// GET, kept if live and forgotten if gone; each open intent marks its UE as
// possibly holding a session until the intent's duration has passed.
func (d *Daemon) restore(ctx context.Context) error {
	if d.store == nil || d.cfg.DryRun {
		return nil
	}
	st, err := d.store.Load()
	if err != nil {
		return err
	}
	now := d.now()
	d.mu.Lock()
	if st.Budget != nil {
		d.engine.RestoreBudget(st.Budget.Day, time.Duration(st.Budget.UsedSeconds*float64(time.Second)))
	}
	d.mu.Unlock()
	var gone []string
	for _, s := range st.Sessions {
		log := d.log.With("ue", s.UE, "session_id", s.ID)
		if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
			log.Info("stored session has expired; forgotten")
			gone = append(gone, s.ID)
			continue
		}
		txid := qodclient.NewTransactionID()
		cctx, cancel := context.WithTimeout(qodclient.WithTransactionID(ctx, txid), d.callTimeout())
		info, err := d.api.Get(cctx, s.ID)
		cancel()
		d.countAPI("get", err)
		switch {
		case errors.Is(err, qodclient.ErrNotFound):
			log.Info("stored session is gone at the operator; forgotten", "transaction_id", txid)
			gone = append(gone, s.ID)
			continue
		case err != nil:
			// Can't tell: keep it. Polling settles it later.
			log.Warn("stored session could not be checked; adopted as live", "transaction_id", txid, "err", err)
		default:
			if !info.ExpiresAt.IsZero() {
				s.ExpiresAt = info.ExpiresAt
			}
		}
		d.mu.Lock()
		_, known := d.cfg.UE(s.UE)
		if known {
			err = d.engine.Adopt(now, s.UE, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt})
		}
		d.mu.Unlock()
		switch {
		case !known:
			log.Warn("stored session belongs to a UE no longer configured; ending it")
			d.deleteStray(s.UE, s.ID)
		case err != nil:
			log.Error("policy refused a stored session; ending it", "err", err)
			d.deleteStray(s.UE, s.ID)
		default:
			log.Info("stored session adopted", "qos", s.QoS, "expires_at", s.ExpiresAt)
		}
	}
	d.mu.Lock()
	var expired []Intent
	for _, in := range st.Intents {
		if !now.Before(in.Until) {
			expired = append(expired, in)
			continue
		}
		if _, ok := d.cfg.UE(in.UE); !ok {
			continue
		}
		d.log.Warn("a create may have succeeded before the last stop; no session is bought for this UE until it would have expired",
			"ue", in.UE, "transaction_id", in.TransactionID, "until", in.Until)
		if err := d.engine.PossiblyHolds(now, in.UE, in.Until); err != nil {
			d.log.Error("policy refused a possible session", "ue", in.UE, "err", err)
		}
	}
	d.mu.Unlock()
	if len(gone) > 0 || len(expired) > 0 {
		if _, err := d.store.Update(func(s *State) error {
			for _, id := range gone {
				s.RemoveSession(id)
			}
			s.DropExpiredIntents(now)
			return nil
		}); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
	}
	return nil
}

// dryRun plays the API's part without calling it, so decisions are made,
// logged and exported as for real. The caller holds d.mu.
func (d *Daemon) dryRun(dec policy.Decision) {
	now := d.now()
	open := func() {
		d.dryRunSeq++
		id := fmt.Sprintf("dry-run-%d", d.dryRunSeq)
		_ = d.engine.Opened(now, dec.UE, policy.Session{ID: id, QoS: dec.QoS, StartedAt: now, ExpiresAt: now.Add(dec.Duration)})
		d.log.Info("dry run: session not bought", "ue", dec.UE, "qos", dec.QoS, "session_id", id)
	}
	switch dec.Kind {
	case policy.Request:
		open()
	case policy.Renew, policy.Escalate:
		_ = d.engine.Ended(now, dec.UE, dec.SessionID, policy.EndReleased)
		open()
	case policy.Release:
		_ = d.engine.Ended(now, dec.UE, dec.SessionID, policy.EndReleased)
		d.log.Info("dry run: session not ended", "ue", dec.UE, "session_id", dec.SessionID)
	}
}

func (d *Daemon) countAPI(op string, err error) {
	d.metrics.apiCalls.WithLabelValues(op, outcome(err)).Inc()
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, qodclient.ErrUnknownOutcome):
		return "unknown_outcome"
	case errors.Is(err, qodclient.ErrNotFound):
		return "not_found"
	case errors.Is(err, qodclient.ErrConflict):
		return "conflict"
	case errors.Is(err, qodclient.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, qodclient.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, qodclient.ErrForbidden):
		return "forbidden"
	case errors.Is(err, qodclient.ErrInvalid):
		return "invalid"
	case errors.Is(err, qodclient.ErrUnavailable):
		return "unavailable"
	}
	return "error"
}

// syncFromStateFile adopts what another process (`qodwatch sessions
// create`) recorded in the shared state file: a session the engine does not
// know, or an open intent that may have made one. The caller holds d.mu.
func (d *Daemon) syncFromStateFile() {
	if d.store == nil || d.syncing {
		return
	}
	d.syncing = true
	d.ops.Add(1)
	go func() {
		defer d.ops.Done()
		st, err := d.store.Load()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.syncing = false
		if err != nil {
			d.log.Error("state file unreadable", "err", err)
			return
		}
		now := d.now()
		for _, s := range st.Sessions {
			cur, ok := d.engine.Status(s.UE)
			if !ok || d.busy[s.UE] || (cur.HasSession && cur.Session.ID == s.ID) {
				continue
			}
			if cur.HasSession || s.Origin == "daemon" || d.gone[s.ID] {
				// The daemon's own sessions are known from the moment they
				// are made, and one it saw end may still be listed while
				// the file catches up.
				continue
			}
			if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
				continue
			}
			if err := d.engine.Opened(now, s.UE, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt}); err != nil {
				d.log.Warn("state file lists a session the policy cannot adopt", "ue", s.UE, "session_id", s.ID, "err", err)
				continue
			}
			d.log.Info("adopted a session recorded by another process", "ue", s.UE, "session_id", s.ID, "origin", s.Origin)
		}
		for _, in := range st.Intents {
			cur, ok := d.engine.Status(in.UE)
			if !ok || d.busy[in.UE] || cur.HasSession || cur.State == policy.StateUncertain || !now.Before(in.Until) {
				continue
			}
			if in.Origin == "daemon" {
				continue // ours: the engine learnt of it when it was made
			}
			_ = d.engine.PossiblyHolds(now, in.UE, in.Until)
		}
	}()
}
