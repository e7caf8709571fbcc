package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

// heldTx ties a held session to its UE and to the transaction id of the
// create that made it: its notifications come on that create's path.
type heldTx struct {
	ue, txid string
}

// What became of a notification the receiver accepted, as counted in
// qodwatch_notifications_total{result}.
const (
	noticeConfirmed    = "confirmed"     // GET: the session is gone; forgotten
	noticeContradicted = "contradicted"  // GET: the session is live; kept
	noticeUnconfirmed  = "unconfirmed"   // GET failed; kept, polling settles it
	noticeIgnored      = "ignored"       // not an end, or its check is already on its way
	noticeAlreadyEnded = "already_ended" // the daemon saw it end already
)

// notificationResults are every value of the result label.
var notificationResults = []string{
	noticeConfirmed, noticeContradicted, noticeUnconfirmed, noticeIgnored, noticeAlreadyEnded,
	rejectMethod, rejectUnauthorized, rejectTooLarge, rejectMalformed, rejectWrongPath,
	rejectWrongTransaction, rejectUnknownSession,
}

func (d *Daemon) countNotice(result string) {
	d.metrics.notifications.WithLabelValues(result).Inc()
}

// handleNotice takes an authorized notification. An end is a hint, not the
// truth: one SESSION_TERMINATED carrying the token made the daemon forget
// a session that was still live and billed, and buy another (issue 8). So
// the notification must come on the path of that session's create, and
// the session is forgotten only once a GET confirms it is gone.
func (d *Daemon) handleNotice(n Notice) (reject string) {
	if d.ops.isFinished() {
		// Nothing may change once Run has returned; the next start
		// checks every stored session with GET.
		d.log.Info("notification after shutdown; left to the next start", "session_id", n.SessionID)
		return ""
	}
	if !n.Terminated {
		if n.QoSStatus == qosAvailable {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.availableNotice(n)
		}
		d.countNotice(noticeIgnored)
		return ""
	}
	d.mu.Lock()
	if h, ok := d.heldTx[n.SessionID]; ok && d.holds(h.ue, n.SessionID) {
		defer d.mu.Unlock()
		if h.txid != n.TransactionID {
			return rejectWrongTransaction
		}
		d.startConfirm(n, h.ue, nil)
		return ""
	}
	if _, seen := d.gone[n.SessionID]; seen {
		d.mu.Unlock()
		d.countNotice(noticeAlreadyEnded)
		return ""
	}
	dry := d.store == nil || d.cfg.DryRun
	d.mu.Unlock()
	if dry {
		return rejectUnknownSession
	}
	// A session the daemon does not hold: that of a create whose answer
	// was lost, or is still on its way. Its intent names the UE.
	st, err := d.store.Load()
	if err != nil {
		d.log.Error("state file unreadable; notification not settled", "session_id", n.SessionID, "err", err)
		return rejectUnknownSession
	}
	var in *notifiedIntent
	for _, x := range st.Intents {
		if x.TransactionID == n.TransactionID {
			in = &notifiedIntent{Intent: x}
		}
	}
	if in == nil {
		return rejectUnknownSession
	}
	now := d.now()
	for _, x := range st.Intents {
		in.others = in.others || (x.UE == in.UE && x.TransactionID != in.TransactionID && now.Before(x.Until))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startConfirm(n, "", in)
	return ""
}

// notifiedIntent is the open intent a notification's path names, as the
// state file listed it when the notification came.
type notifiedIntent struct {
	Intent
	others bool // the file listed other open intents for its UE
}

// holds reports whether the engine holds session id for ue. The caller
// holds d.mu.
func (d *Daemon) holds(ue, id string) bool {
	st, ok := d.engine.Status(ue)
	return ok && st.HasSession && st.Session.ID == id
}

// startConfirm checks with GET that the session n names is gone: ue is the
// UE holding it, or in the open intent of the create that may have made
// it. The caller holds d.mu.
func (d *Daemon) startConfirm(n Notice, ue string, in *notifiedIntent) {
	// A poll's GET of it may be on its way: this check runs anyway, so
	// that the notification is counted by what it found. A repeated
	// notification while its first is checked is not checked twice.
	if d.confirming[n.SessionID] {
		d.countNotice(noticeIgnored)
		return
	}
	api := d.api
	if !d.ops.goAPI(func() { d.confirmEnd(api, n, ue, in) }) {
		d.log.Info("notification while stopping; left to the next start", "session_id", n.SessionID)
		return
	}
	d.confirming[n.SessionID] = true
}

// confirmEnd is startConfirm's GET and what follows from its answer.
func (d *Daemon) confirmEnd(api SessionAPI, n Notice, ue string, in *notifiedIntent) {
	defer func() { d.mu.Lock(); delete(d.confirming, n.SessionID); d.mu.Unlock() }()
	hasIntent := in != nil
	if hasIntent {
		ue = in.UE
	}
	txid := qodclient.NewTransactionID()
	log := d.log.With("ue", ue, "session_id", n.SessionID, "transaction_id", txid, "notified_transaction_id", n.TransactionID)
	ctx, cancel := context.WithTimeout(qodclient.WithTransactionID(d.opsCtx, txid), d.callTimeout())
	defer cancel()
	info, err := api.Get(ctx, n.SessionID)
	d.countAPI("get", err)
	gone := errors.Is(err, qodclient.ErrNotFound) || (err == nil && info.QoSStatus == qosUnavailable)
	if err == nil && gone {
		// CAMARA v1 keeps a session the network ended until it is
		// deleted, and refuses a new one for the device meanwhile.
		defer d.deleteEnded(ue, n.SessionID)
	}
	if err != nil && !gone {
		d.countNotice(noticeUnconfirmed)
		log.Warn("notification of a session's end could not be confirmed; the session is kept until a check says it is gone", "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if !gone {
		d.countNotice(noticeContradicted)
		log.Warn("notification says the session ended, but the operator reports it live; kept", "status", info.QoSStatus)
		if hasIntent && !d.holds(in.UE, n.SessionID) {
			d.adoptNotified(now, in.Intent, n.SessionID, info)
		}
		return
	}
	d.countNotice(noticeConfirmed)
	if d.holds(ue, n.SessionID) {
		if d.isBusy(ue) {
			// A call in flight (a release, or the create whose answer
			// overtook this check) settles it; mark it seen ended.
			d.gone[n.SessionID] = now
			return
		}
		if err == nil {
			d.markEndedStray(ue, n.SessionID) // kept by the operator until deleted
		}
		st, _ := d.engine.Status(ue)
		why := endReason(st.Session, now)
		log.Warn("session ended by the network (notification, confirmed)", "reason", why.String())
		d.ended(now, ue, n.SessionID, why)
		return
	}
	if _, seen := d.gone[n.SessionID]; seen {
		return
	}
	d.gone[n.SessionID] = now
	if hasIntent {
		d.settleIntent(now, *in, n.SessionID)
	}
}

// settleIntent handles the confirmed end of a session the daemon does not
// hold, made by the create of intent in. If that create's answer was lost,
// its UE is suspected of holding a session: now the session is known and
// over, so it is counted as opened and ended by the network (cooldown
// included), and the intent is dropped. If the create is still waiting for
// its answer, the answer finds the session among the ended ones. The
// caller holds d.mu.
func (d *Daemon) settleIntent(now time.Time, in notifiedIntent, id string) {
	log := d.log.With("ue", in.UE, "session_id", id, "transaction_id", in.TransactionID)
	if d.isBusy(in.UE) {
		return
	}
	cur, known := d.engine.Status(in.UE)
	if known && cur.State == policy.StateUncertain && !cur.HasSession && !in.others {
		err := d.opened(now, in.UE, policy.Session{ID: id, QoS: in.QoS, StartedAt: in.SentAt, ExpiresAt: in.Until}, in.TransactionID)
		if err != nil {
			log.Warn("policy refused the session of a lost create answer", "err", err)
		} else {
			d.metrics.sessionsOpened.WithLabelValues(in.QoS).Inc()
			// It started after the intent was sent; an end reported at
			// its duration from then is its expiry.
			why := endReason(policy.Session{ExpiresAt: in.SentAt.Add(time.Duration(in.Duration) * time.Second)}, now)
			log.Warn("session ended by the network (notification, confirmed); it was made by a create whose answer was lost, and the UE is no longer suspected of holding one", "reason", why.String())
			d.ended(now, in.UE, id, why)
		}
	}
	txid := in.TransactionID
	d.persistAsync(func(s *State) { s.DropIntent(txid) })
}

// adoptNotified adopts the live session a notification named on the path
// of a create whose answer was lost: the GET showed it is live, so the UE
// does hold it. The caller holds d.mu.
func (d *Daemon) adoptNotified(now time.Time, in Intent, id string, info *qodclient.SessionInfo) {
	log := d.log.With("ue", in.UE, "session_id", id, "transaction_id", in.TransactionID)
	ue, ok := d.cfg.UE(in.UE)
	if !ok || !sameUE(ue, info.UeID) {
		log.Warn("a live session named on a create's notification path is not that UE's; ignored")
		return
	}
	cur, known := d.engine.Status(in.UE)
	if !known || cur.State != policy.StateUncertain || cur.HasSession || d.isBusy(in.UE) {
		return
	}
	// It started after the intent was written and was answered, if at
	// all, within one call's time.
	s := Session{UE: in.UE, ID: id, QoS: string(info.QoS), StartedAt: in.SentAt,
		ExpiresAt:     in.SentAt.Add(grantedDuration(info, time.Duration(in.Duration)*time.Second) + d.callTimeoutLocked()),
		TransactionID: in.TransactionID, Origin: in.Origin}
	if s.QoS == "" {
		s.QoS = in.QoS
	}
	if err := d.opened(now, in.UE, policy.Session{ID: s.ID, QoS: s.QoS, StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt}, in.TransactionID); err != nil {
		log.Warn("policy refused the session of a lost create answer", "err", err)
		return
	}
	d.metrics.sessionsOpened.WithLabelValues(s.QoS).Inc()
	log.Info("adopted the live session of a lost create answer, named by a notification")
	d.persistAsync(func(st *State) { st.AddSession(s) })
}
