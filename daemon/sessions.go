package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

// intentMargin is added to a create's duration before its intent is
// forgotten: clocks of operator and host may disagree a little.
const intentMargin = time.Minute

// qodMaxDuration is the longest session the QoD APIs grant.
const qodMaxDuration = 24 * time.Hour

// dispatch starts what a decision asks for. The caller holds d.mu.
func (d *Daemon) dispatch(dec policy.Decision) {
	d.history.note(dec)
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
	if dec.Kind == policy.Request {
		d.noteRequest(dec.UE)
	}
	d.opSeq++
	req := sessionOp{dec: dec, api: d.api, seq: d.opSeq, notifyBase: d.notifyURL()}
	if ok {
		req.body = createRequest(ue, dec.QoS, int(d.capDuration(dec.QoS, dec.Duration)/time.Second), req.notifyBase, d.notifyToken)
	}
	if !d.ops.goAPI(func() { d.run(req) }) {
		_ = d.engine.Failed(d.now(), dec.UE, policy.Failure{Err: errStopping, Retryable: true})
		return
	}
	d.busy[dec.UE] = req.seq
}

var errStopping = errors.New("the daemon is stopping")

// notifyURLFor is the notificationUrl of one create: the public URL with
// the create's transaction id in the path, so that the end of a session
// whose create answer was lost can still be tied to its UE. The operator
// appends /notifications; the receiver accepts any path ending so.
func notifyURLFor(base, txid string) string {
	if base == "" {
		return ""
	}
	return strings.TrimSuffix(base, "/") + "/" + notifyTxSegment + "/" + txid
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
	dec        policy.Decision
	api        SessionAPI
	body       qodclient.CreateSessionRequest
	seq        uint64 // its number in d.busy
	notifyBase string // notifications.public_url, "" if none
}

// run carries out one decision and reports each step back to the engine in
// order. Renew and Escalate end the old session before opening the new
// one: DevEdge has no extend and refuses a second session for a UE.
func (d *Daemon) run(op sessionOp) {
	defer func() {
		d.mu.Lock()
		// A tick may have started the UE's next call once the engine
		// heard how this one went; that one is not ours to clear.
		if d.busy[op.dec.UE] == op.seq {
			delete(d.busy, op.dec.UE)
		}
		d.mu.Unlock()
		d.kick() // the engine heard the outcome: the UE is due at once
	}()
	api, v1 := d.camara()
	if v1 && op.dec.Kind != policy.Release && !d.clearStrays(op.dec.UE) {
		// A session the network ended still holds the device until it is
		// deleted: the create would only earn a 409.
		d.mu.Lock()
		_ = d.engine.Failed(d.now(), op.dec.UE, policy.Failure{Err: errors.New("an ended session of the UE could not be deleted yet"), Retryable: true})
		d.mu.Unlock()
		return
	}
	switch op.dec.Kind {
	case policy.Release:
		d.release(op)
	case policy.Request:
		d.open(op)
	case policy.Renew, policy.Escalate:
		// CAMARA v1 renews in place, without a gap in QoS; a stronger
		// profile needs a new session.
		if op.dec.Kind == policy.Renew && v1 && d.extend(op, api) {
			return
		}
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
	d.mu.Lock()
	imps := d.improvements(op.dec.UE, nil)
	if op.dec.Kind == policy.Release {
		delete(d.eff, op.dec.UE)
	}
	d.mu.Unlock()
	if len(imps) > 0 {
		log = log.With("improvement", policy.FormatImprovements(imps))
	}
	log.Info("session ended", "decision", op.dec.Kind.String())
	d.forget(op.dec.SessionID)
	d.mu.Lock()
	d.gone[op.dec.SessionID] = d.now()
	d.v1.forget(op.dec.SessionID)
	// A notification or poll may have ended it while the DELETE was on
	// its way: then it is counted once, as the network's.
	st, _ := d.engine.Status(op.dec.UE)
	held := st.HasSession && st.Session.ID == op.dec.SessionID
	if err := d.engine.Ended(d.now(), op.dec.UE, op.dec.SessionID, policy.EndReleased); err != nil {
		log.Warn("policy refused session end", "err", err)
	}
	if held {
		d.metrics.sessionsEnded.WithLabelValues(policy.EndReleased.String()).Inc()
	}
	d.noteCooldown(op.dec.UE)
	d.mu.Unlock()
	return true
}

// open creates a session for op. The intent is made durable before the
// request is sent and the session before the engine hears of it, so a crash
// at any point leaves the daemon knowing, or suspecting, every session.
func (d *Daemon) open(op sessionOp) {
	txid := qodclient.NewTransactionID()
	sent := d.now()
	log := d.log.With("ue", op.dec.UE, "qos", op.dec.QoS, "transaction_id", txid)
	if op.body.NotificationURL != "" {
		op.body.NotificationURL = notifyURLFor(op.notifyBase, txid)
	}
	intent := Intent{
		UE: op.dec.UE, QoS: op.dec.QoS, Duration: op.body.Duration, TransactionID: txid,
		SentAt: sent, Until: sent.Add(op.dec.Duration + intentMargin), Origin: "daemon",
	}
	d.mu.Lock()
	gone := maps.Clone(d.gone)
	d.mu.Unlock()
	if _, err := d.store.Update(func(s *State) error {
		// The engine's view comes from the last read of the file (each
		// poll): a `sessions create` since then is only seen here, under
		// the same lock as the CLI's own check.
		if c := claimedElsewhere(s, op.dec, gone, sent); c != nil {
			return c
		}
		s.Intents = append(s.Intents, intent)
		// Read when written, not before: an older figure must never
		// overwrite a newer one. The engine charged the session when it
		// decided.
		s.setBudget(d.Usage())
		return nil
	}); err != nil {
		var c *claimedError
		if errors.As(err, &c) {
			d.yieldTo(c, op.dec.UE, log)
			return
		}
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
			f.Uncertain, f.Until = true, intent.Until
		case errors.Is(err, qodclient.ErrConflict):
			// The operator says the UE holds a session already: one we
			// lost track of or one made elsewhere. Same as unknown.
			log.Warn("operator reports a session for this UE already (409); treating it as possibly held", "until", intent.Until, "err", err)
			f.Uncertain, f.Until = true, intent.Until
		default:
			log.Error("create session failed", "err", err)
			d.forgetIntent(txid)
		}
		d.mu.Lock()
		_ = d.engine.Failed(d.now(), op.dec.UE, f)
		api, v1 := d.camaraLocked()
		d.mu.Unlock()
		if f.Uncertain && v1 {
			// CAMARA v1 can look the session up: no waiting for it to
			// expire, and a lost one is ended on recovery.
			trigger := "unknown_outcome"
			if errors.Is(err, qodclient.ErrConflict) {
				trigger = "conflict"
			}
			d.reconcile(api, op.dec.UE, trigger, txid)
		}
		return
	}
	s := SessionOf(op.dec.UE, op.dec.QoS, op.dec.Duration, info, sent, d.now())
	s.Rule, s.TransactionID, s.Origin = op.dec.Rule, txid, "daemon"
	failpoint(fpAfterCreate)
	if _, err := d.store.Update(func(st *State) error { st.AddSession(s); return nil }); err != nil {
		// The intent is still on disk, so a crash now leaves the UE
		// suspected, not unknown. Keep going with the session.
		log.Error("state file update failed after create", "session_id", s.ID, "err", err)
	}
	failpoint(fpAfterRecord)
	log.Info("session opened", "session_id", s.ID, "expires_at", s.ExpiresAt, "decision", op.dec.Kind.String(), "qos_status", info.QoSStatus)
	d.mu.Lock()
	now := d.now()
	d.noteCreated(s.ID, info, now)
	if err := d.opened(now, op.dec.UE, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt}, txid); err != nil {
		// A second session for the UE: end it rather than pay twice.
		log.Error("policy refused the new session; ending it", "session_id", s.ID, "err", err)
		d.mu.Unlock()
		d.deleteStray(op.dec.UE, s.ID)
		return
	}
	d.metrics.sessionsOpened.WithLabelValues(s.QoS).Inc()
	d.noteGranted(op.dec.UE, op.dec.Kind)
	if st, _ := d.engine.Status(op.dec.UE); st.HeldSince.Before(s.StartedAt) {
		// A renewal: min_session counts from the first session of the run,
		// after a restart too.
		id, since := s.ID, st.HeldSince
		d.persistAsync(func(x *State) {
			for i := range x.Sessions {
				if x.Sessions[i].ID == id {
					x.Sessions[i].HeldSince = since
				}
			}
		})
	}
	if _, ended := d.gone[s.ID]; ended {
		// The network's notice of its end overtook the create's answer.
		log.Warn("session ended by the network before its create was answered", "session_id", s.ID)
		d.ended(now, op.dec.UE, s.ID, policy.EndTerminated)
	}
	d.mu.Unlock()
}

// claimedError is open's reason not to POST: another process (`qodwatch
// sessions create`) recorded a create or a session for the UE since the
// daemon last read the state file. One of intent and session is set.
type claimedError struct {
	intent  *Intent
	session *Session
}

func (c *claimedError) Error() string {
	if c.session != nil {
		return fmt.Sprintf("session %s of %s is recorded for the UE", c.session.ID, c.session.Origin)
	}
	return fmt.Sprintf("a create by %s (transaction id %s) is recorded for the UE", c.intent.Origin, c.intent.TransactionID)
}

// claimedElsewhere finds what another process recorded in s for dec's UE
// that the daemon has not adopted: an open intent, or a live session other
// than the one dec replaces (and not one the daemon saw end, which the
// file may still list).
func claimedElsewhere(s *State, dec policy.Decision, gone map[string]time.Time, now time.Time) *claimedError {
	for i, in := range s.Intents {
		if in.UE == dec.UE && in.Origin != "daemon" && now.Before(in.Until) {
			return &claimedError{intent: &s.Intents[i]}
		}
	}
	for i, x := range s.Sessions {
		if _, ended := gone[x.ID]; x.UE != dec.UE || x.ID == dec.SessionID || x.Origin == "daemon" || ended {
			continue
		}
		if x.ExpiresAt.IsZero() || now.Before(x.ExpiresAt) {
			return &claimedError{session: &s.Sessions[i]}
		}
	}
	return nil
}

// yieldTo tells the engine what open found instead of buying: the other
// process's session is adopted as syncFromStateFile would; its open create
// holds the UE as possibly holding one until the create's deadline, or
// until its intent goes without a session.
func (d *Daemon) yieldTo(c *claimedError, ue string, log *slog.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if in := c.intent; in != nil {
		log.Warn("not creating a session: another process is creating one for this UE; none is bought meanwhile",
			"other_transaction_id", in.TransactionID, "origin", in.Origin, "until", in.Until)
		_ = d.engine.Failed(now, ue, policy.Failure{Err: c, Uncertain: true, Until: in.Until})
		d.suspects[ue] = in.TransactionID
		return
	}
	x := c.session
	log.Warn("not creating a session: another process recorded one for this UE; adopting it", "session_id", x.ID, "origin", x.Origin)
	_ = d.engine.Failed(now, ue, policy.Failure{Err: c, Retryable: true})
	if err := d.opened(now, ue, policy.Session{ID: x.ID, QoS: x.QoS, StartedAt: x.StartedAt, ExpiresAt: x.ExpiresAt}, x.TransactionID); err != nil {
		log.Warn("state file lists a session the policy cannot adopt", "session_id", x.ID, "err", err)
		return
	}
	delete(d.suspects, ue)
}

// SessionOf is the state file record of a session a create just made:
// qos and asked are what was asked for, sent and answered when the create
// was sent and its answer came, on this host's clock. Its times are on
// that clock too (see grantedDuration); the caller sets Rule,
// TransactionID and Origin. The sessions CLI records its creates with it
// so the daemon reads the same kind of times.
func SessionOf(ue, qos string, asked time.Duration, info *qodclient.SessionInfo, sent, answered time.Time) Session {
	s := Session{UE: ue, ID: info.ID, QoS: string(info.QoS), StartedAt: sent, ExpiresAt: answered.Add(grantedDuration(info, asked))}
	if s.QoS == "" {
		s.QoS = qos
	}
	return s
}

// grantedDuration is how long the operator says a session lasts: its
// duration field, else the span of its own start and expiry times, else
// what was asked for. Session times are kept on this host's clock (start:
// when the create was sent; expiry: when its answer came plus this span),
// because the operator's clock may differ from ours by more than a
// session's length, and DevEdge gives whole seconds. The expiry is thus
// never before the operator's, and the renewal comes renew_before ahead of
// it, less the create's round trip.
func grantedDuration(info *qodclient.SessionInfo, asked time.Duration) time.Duration {
	switch {
	case info.Duration > 0:
		return time.Duration(info.Duration) * time.Second
	case !info.StartedAt.IsZero() && info.ExpiresAt.After(info.StartedAt):
		return info.ExpiresAt.Sub(info.StartedAt)
	}
	return asked
}

// deleteStray ends a session the policy would not take (a second one for
// its UE, or one of a UE gone from the config). If that fails it is tried
// again at each poll: it is in the state file, but nothing else would end
// it before it expires.
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
		d.log.Error("ending stray session failed; it stays in the state file and is tried again", "ue", ue, "session_id", id, "transaction_id", txid, "err", err)
		d.mu.Lock()
		d.strays[id] = ue
		d.mu.Unlock()
		return
	}
	d.forget(id)
	d.mu.Lock()
	delete(d.strays, id)
	d.gone[id] = d.now()
	d.mu.Unlock()
}

func (d *Daemon) callTimeout() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.callTimeoutLocked()
}

func (d *Daemon) callTimeoutLocked() time.Duration {
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

// forget removes a session from the state file. The caller does not hold
// d.mu.
func (d *Daemon) forget(id string) {
	if d.store == nil {
		return
	}
	if _, err := d.store.Update(func(s *State) error {
		s.RemoveSession(id)
		s.setBudget(d.Usage())
		return nil
	}); err != nil {
		d.log.Error("state file update failed", "err", err)
	}
}

func (d *Daemon) forgetIntent(txid string) {
	if _, err := d.store.Update(func(s *State) error { s.DropIntent(txid); return nil }); err != nil {
		d.log.Error("state file update failed", "err", err)
	}
}

// pollHeld checks every held session with GET: the only signal that the
// network ended it when notifications don't reach us. It also tries again
// to end strays a DELETE failed for. The caller holds d.mu.
func (d *Daemon) pollHeld() {
	for _, st := range d.engine.Holding(nil) {
		if d.isBusy(st.UE) || d.polling[st.Session.ID] {
			continue
		}
		ue, id, api := st.UE, st.Session.ID, d.api
		if !d.ops.goAPI(func() { d.poll(api, ue, id) }) {
			return
		}
		d.polling[id] = true
	}
	for id, ue := range d.strays {
		if d.polling[id] {
			continue
		}
		if !d.ops.goAPI(func() {
			d.deleteStray(ue, id)
			d.mu.Lock()
			delete(d.polling, id)
			d.mu.Unlock()
		}) {
			return
		}
		d.polling[id] = true
	}
}

// pollConcurrency bounds the GETs of a poll round in flight at once: a
// round over many sessions would otherwise hit the operator all at once,
// earn 429s, and delay the creates that matter.
const pollConcurrency = 4

func (d *Daemon) poll(api SessionAPI, ue, id string) {
	defer func() { d.mu.Lock(); delete(d.polling, id); d.mu.Unlock() }()
	select {
	case d.pollSlots <- struct{}{}:
		defer func() { <-d.pollSlots }()
	case <-d.ops.stopped:
		return
	}
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
	if !gone && info.QoSStatus != qosUnavailable {
		d.mu.Lock()
		stuck := false
		if st, ok := d.engine.Status(ue); ok && st.HasSession && st.Session.ID == id && !d.isBusy(ue) {
			if _, v1 := d.camaraLocked(); v1 {
				stuck = d.pollV1(d.now(), ue, id, info)
			}
		}
		d.mu.Unlock()
		if stuck {
			d.deleteStray(ue, id)
		}
		return
	}
	if !gone {
		// CAMARA v1 keeps a session the network ended (UNAVAILABLE) until
		// it is deleted, and refuses a new one for the device meanwhile.
		defer d.deleteEnded(ue, id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.engine.Status(ue); !ok || !st.HasSession || st.Session.ID != id || d.isBusy(ue) {
		return // ended meanwhile, by us or a notification
	}
	if !gone {
		d.markEndedStray(ue, id)
	}
	now := d.now()
	st, _ := d.engine.Status(ue)
	why := endReason(st.Session, now)
	d.log.Warn("session ended by the network (found by polling)", "ue", ue, "session_id", id, "transaction_id", txid, "reason", why.String())
	d.ended(now, ue, id, why)
}

// expiryNoticeSlack: an end the network reports this close to a session's
// expiry (on our clock, which is the latest it can be) is its expiry. The
// operator ends it up to a create's round trip earlier, and v0.8.1 says
// SESSION_TERMINATED either way.
const expiryNoticeSlack = 2 * time.Second

func endReason(s policy.Session, now time.Time) policy.EndReason {
	if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt.Add(-expiryNoticeSlack)) {
		return policy.EndExpired
	}
	return policy.EndTerminated
}

func sameUE(ue *config.UE, id qodclient.UeID) bool {
	return (id.MSISDN != "" && id.MSISDN == ue.MSISDN) ||
		(id.ExternalID != "" && id.ExternalID == ue.ExternalID) ||
		// Behind carrier NAT many devices share the public address: the
		// device half must match too (both empty for a UE without NAT).
		(id.IPv4Addr != "" && id.IPv4Addr == ue.IPv4 && id.IPv4Private == ue.IPv4Private && id.IPv4PublicPort == ue.IPv4PublicPort) ||
		(id.IPv6Addr != "" && id.IPv6Addr == ue.IPv6)
}

// restoreConcurrency bounds the GETs of the start's checks in flight at
// once: many stored sessions are checked in about one call's time, not
// one after the other, without a burst that earns 429s.
const restoreConcurrency = 8

// storedCheck is the GET of one stored session at start.
type storedCheck struct {
	s       Session
	expired bool // by the stored expiry: not asked about
	info    *qodclient.SessionInfo
	err     error
	txid    string
}

// checkStored GETs each stored session, restoreConcurrency at a time, and
// returns the answers in the stored order.
func (d *Daemon) checkStored(ctx context.Context, sessions []Session, now time.Time) []storedCheck {
	out := make([]storedCheck, len(sessions))
	slots := make(chan struct{}, restoreConcurrency)
	timeout := d.callTimeout()
	var wg sync.WaitGroup
	for i, s := range sessions {
		out[i].s = s
		if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
			out[i].expired = true
			continue
		}
		wg.Add(1)
		go func(c *storedCheck) {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			c.txid = qodclient.NewTransactionID()
			cctx, cancel := context.WithTimeout(qodclient.WithTransactionID(ctx, c.txid), timeout)
			defer cancel()
			c.info, c.err = d.api.Get(cctx, c.s.ID)
			d.countAPI("get", c.err)
		}(&out[i])
	}
	wg.Wait()
	return out
}

// restore adopts what the state file holds: each session is checked with
// GET, kept if live and forgotten if gone; each open intent marks its UE as
// possibly holding a session until the intent's duration has passed.
func (d *Daemon) restore(ctx context.Context) (gained []string, err error) {
	if d.store == nil || d.cfg.DryRun {
		return nil, nil
	}
	now := d.now()
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	st, err := d.store.Update(func(s *State) error {
		recordShard(s, d.opts.Shard, d.opts.Handover, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	gained = gainedUEs(&st, d.opts.Shard, cfg, now)
	d.mu.Lock()
	if st.Budget != nil {
		d.engine.RestoreBudget(st.Budget.Day, time.Duration(st.Budget.UsedSeconds*float64(time.Second)))
	}
	d.mu.Unlock()
	var gone []string
	checks := d.checkStored(ctx, st.Sessions, now)
	for _, c := range checks {
		s, info, err, txid := c.s, c.info, c.err, c.txid
		log := d.log.With("ue", s.UE, "session_id", s.ID)
		if c.expired {
			log.Info("stored session has expired; forgotten")
			gone = append(gone, s.ID)
			continue
		}
		switch {
		case errors.Is(err, qodclient.ErrNotFound):
			log.Info("stored session is gone at the operator; forgotten", "transaction_id", txid)
			gone = append(gone, s.ID)
			continue
		case err == nil && info.QoSStatus == qosUnavailable:
			// CAMARA v1: ended by the network while we were away, and kept
			// by the operator until deleted.
			// deleteStray forgets it once the DELETE lands; until then
			// it stays in the state file, a stray tried again at each poll.
			log.Info("stored session was ended by the network; deleting and forgetting it", "transaction_id", txid, "status_info", info.StatusInfo)
			d.deleteStray(s.UE, s.ID)
			continue
		case err != nil:
			// Can't tell (an error, or no answer in time): keep it.
			// Polling settles it later.
			log.Warn("stored session could not be checked; adopted as live", "transaction_id", txid, "err", err)
		case s.ExpiresAt.IsZero():
			// The stored times are on this host's clock; without them the
			// operator's span is counted from now, which errs late: the
			// session is never forgotten while it may be live.
			s.ExpiresAt = now.Add(grantedDuration(info, qodMaxDuration))
		}
		if s.ExpiresAt.IsZero() {
			s.ExpiresAt = now.Add(qodMaxDuration)
		}
		d.mu.Lock()
		_, known := d.cfg.UE(s.UE)
		if known {
			err = d.adopt(now, s.UE, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt}, s.TransactionID)
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
			d.mu.Lock()
			_ = d.engine.RestoreTimes(now, s.UE, s.HeldSince, time.Time{})
			d.mu.Unlock()
		}
	}
	d.mu.Lock()
	for ue, until := range st.Cooldowns {
		if _, ok := d.cfg.UE(ue); ok && now.Before(until) {
			d.log.Info("cooldown of the last run kept", "ue", ue, "until", until)
			_ = d.engine.RestoreTimes(now, ue, time.Time{}, until)
		}
	}
	for _, ue := range gained {
		_ = d.engine.PossiblyHolds(now, ue, st.Handover.Until)
	}
	if len(gained) > 0 {
		d.log.Warn("reshard: the UEs gained from another shard count as possibly holding its session until the handover is over or a look-up clears them",
			"shard", d.opts.Shard.String(), "ues", len(gained), "until", st.Handover.Until)
	}
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
		} else if in.Origin != "daemon" {
			// Another process's create may still be going on; when its
			// intent goes without a session, the suspicion is lifted.
			d.suspects[in.UE] = in.TransactionID
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
			return nil, fmt.Errorf("state file: %w", err)
		}
	}
	return gained, nil
}

// dryRun plays the API's part without calling it, so decisions are made,
// logged and exported as for real. The caller holds d.mu.
func (d *Daemon) dryRun(dec policy.Decision) {
	now := d.now()
	open := func() {
		d.dryRunSeq++
		id := fmt.Sprintf("dry-run-%d", d.dryRunSeq)
		_ = d.opened(now, dec.UE, policy.Session{ID: id, QoS: dec.QoS, StartedAt: now, ExpiresAt: now.Add(dec.Duration)}, "")
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

// outcome names how a call ended, one of apiOutcomes.
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
// know, or an open intent that may have made one; and lifts the suspicion
// such an intent raised once it is gone without a session (the create
// failed). It also drops intents whose possible session has run out. The
// caller holds d.mu.
func (d *Daemon) syncFromStateFile() {
	if d.store == nil || d.syncing {
		return
	}
	d.syncing = true
	d.ops.goWrite(func() {
		st, err := d.store.Load()
		d.mu.Lock()
		defer d.mu.Unlock()
		d.syncing = false
		d.syncs++
		if err != nil {
			d.log.Error("state file unreadable", "err", err)
			return
		}
		now := d.now()
		for _, s := range st.Sessions {
			cur, ok := d.engine.Status(s.UE)
			if !ok || d.isBusy(s.UE) || (cur.HasSession && cur.Session.ID == s.ID) {
				continue
			}
			if _, ended := d.gone[s.ID]; cur.HasSession || s.Origin == "daemon" || ended {
				// The daemon's own sessions are known from the moment they
				// are made, and one it saw end may still be listed while
				// the file catches up.
				continue
			}
			if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
				continue
			}
			if err := d.opened(now, s.UE, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt}, s.TransactionID); err != nil {
				d.log.Warn("state file lists a session the policy cannot adopt", "ue", s.UE, "session_id", s.ID, "err", err)
				continue
			}
			delete(d.suspects, s.UE)
			d.log.Info("adopted a session recorded by another process", "ue", s.UE, "session_id", s.ID, "origin", s.Origin)
		}
		open := map[string]bool{}
		expired := false
		for _, in := range st.Intents {
			if !now.Before(in.Until) {
				expired = true
				continue
			}
			open[in.TransactionID] = true
			cur, ok := d.engine.Status(in.UE)
			if !ok || d.isBusy(in.UE) || cur.HasSession || cur.State == policy.StateUncertain {
				continue
			}
			if in.Origin == "daemon" {
				continue // ours: the engine learnt of it when it was made
			}
			if err := d.engine.PossiblyHolds(now, in.UE, in.Until); err == nil {
				d.suspects[in.UE] = in.TransactionID
				d.log.Warn("another process is creating a session; none is bought for this UE meanwhile", "ue", in.UE, "transaction_id", in.TransactionID, "origin", in.Origin)
			}
		}
		for ue, txid := range d.suspects {
			if open[txid] {
				continue
			}
			delete(d.suspects, ue)
			if _, has := st.SessionFor(ue); has {
				continue // adopted above, or at the next sync
			}
			if cur, ok := d.engine.Status(ue); ok && cur.State == policy.StateUncertain && !cur.HasSession && !d.isBusy(ue) {
				d.log.Info("the other process's create made no session; the UE is no longer suspected", "ue", ue, "transaction_id", txid)
				_ = d.engine.PossiblyHolds(now, ue, time.Time{})
			}
		}
		if expired {
			d.persistAsync(func(s *State) { s.DropExpiredIntents(now) })
		}
	})
}
