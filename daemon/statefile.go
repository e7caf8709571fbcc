package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
)

// StateFileName is the file in the state directory that holds every session
// qodwatch knows about. The daemon and the `qodwatch sessions` commands share
// it, so a session made by hand is never invisible to the daemon.
const StateFileName = "sessions.json"

// Session is a QoD session that qodwatch holds (or held until it is
// confirmed gone). It is written to the state file before anything else
// happens after the API answered a create.
type Session struct {
	UE            string    `json:"ue"`
	ID            string    `json:"id"`
	QoS           string    `json:"qos"`
	Rule          string    `json:"rule,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	TransactionID string    `json:"transaction_id,omitempty"`
	// Origin says who asked for it: "daemon" or "cli".
	Origin string `json:"origin,omitempty"`
	// HeldSince is when the UE's run of sessions began, if before
	// StartedAt (renewals replace the session, not the run): min_session
	// counts from it across a restart.
	HeldSince time.Time `json:"held_since,omitzero"`
}

// Intent is a create that was about to be sent, or was sent with no answer
// recorded yet. The DevEdge API cannot look a session up by UE, so after a
// crash between the operator's answer and the state write the UE is treated
// as possibly holding a session until Until.
type Intent struct {
	UE            string    `json:"ue"`
	QoS           string    `json:"qos"`
	Duration      int       `json:"duration_seconds"`
	TransactionID string    `json:"transaction_id"`
	SentAt        time.Time `json:"sent_at"`
	// Until is when a session created by this intent would have expired on
	// its own: SentAt + Duration, plus a margin for clock skew.
	Until  time.Time `json:"until"`
	Origin string    `json:"origin,omitempty"`
}

// State is the content of the state file.
type State struct {
	Version  int       `json:"version"`
	Sessions []Session `json:"sessions"`
	Intents  []Intent  `json:"intents"`
	Budget   *Budget   `json:"budget,omitempty"`
	// Cooldowns is when the cooldown after each UE's last session ends,
	// so that a restart does not buy again inside it.
	Cooldowns map[string]time.Time `json:"cooldowns,omitempty"`
	// Shard is the shard the daemon last ran as; a change means a reshard
	// (see handover). Absent: never sharded, or written before sharding.
	Shard *config.Shard `json:"shard,omitempty"`
	// Handover is the reshard in progress, if any.
	Handover *Handover `json:"handover,omitempty"`
}

// SetCooldown records ue's cooldown end, and forgets those that are over.
func (s *State) SetCooldown(ue string, until, now time.Time) {
	for k, t := range s.Cooldowns {
		if !now.Before(t) {
			delete(s.Cooldowns, k)
		}
	}
	if !now.Before(until) {
		return
	}
	if s.Cooldowns == nil {
		s.Cooldowns = map[string]time.Time{}
	}
	s.Cooldowns[ue] = until
}

// SessionFor returns the session held for ue, if any.
func (s *State) SessionFor(ue string) (Session, bool) {
	for _, x := range s.Sessions {
		if x.UE == ue {
			return x, true
		}
	}
	return Session{}, false
}

// SessionByID returns the session with the given id, if any.
func (s *State) SessionByID(id string) (Session, bool) {
	for _, x := range s.Sessions {
		if x.ID == id {
			return x, true
		}
	}
	return Session{}, false
}

// OpenIntentFor returns an intent for ue whose possible session has not
// run out at now, if any.
func (s *State) OpenIntentFor(ue string, now time.Time) (Intent, bool) {
	for _, x := range s.Intents {
		if x.UE == ue && now.Before(x.Until) {
			return x, true
		}
	}
	return Intent{}, false
}

// IntentFor returns the newest open intent for ue, if any.
func (s *State) IntentFor(ue string) (Intent, bool) {
	var found Intent
	ok := false
	for _, x := range s.Intents {
		if x.UE == ue && (!ok || x.SentAt.After(found.SentAt)) {
			found, ok = x, true
		}
	}
	return found, ok
}

// AddSession records a session and settles the intent with the same
// transaction id, in one write.
func (s *State) AddSession(x Session) {
	s.RemoveSession(x.ID)
	s.Sessions = append(s.Sessions, x)
	s.DropIntent(x.TransactionID)
}

// RemoveSession forgets the session with the given id.
func (s *State) RemoveSession(id string) {
	out := s.Sessions[:0]
	for _, x := range s.Sessions {
		if x.ID != id {
			out = append(out, x)
		}
	}
	s.Sessions = out
}

// DropIntent forgets the intent with the given transaction id.
func (s *State) DropIntent(txid string) {
	if txid == "" {
		return
	}
	out := s.Intents[:0]
	for _, x := range s.Intents {
		if x.TransactionID != txid {
			out = append(out, x)
		}
	}
	s.Intents = out
}

// DropExpiredIntents forgets intents whose possible session has run out.
func (s *State) DropExpiredIntents(now time.Time) []Intent {
	var dropped []Intent
	out := s.Intents[:0]
	for _, x := range s.Intents {
		if now.Before(x.Until) {
			out = append(out, x)
		} else {
			dropped = append(dropped, x)
		}
	}
	s.Intents = out
	return dropped
}

// StateFile is the durable store of sessions and intents. Every change is a
// locked read-modify-write of the whole file, written to a temporary file,
// fsynced and renamed over the old one, so a kill -9 at any moment leaves
// either the old or the new content, and two processes (daemon and CLI)
// never lose each other's writes.
//
// Updates from one process commit in groups: those that arrive while a
// write is under way go together in the next one, so that when many UEs
// decide at once (a cell goes bad) each create waits for about two writes,
// not for every create's write ahead of it.
type StateFile struct {
	dir string

	mu      sync.Mutex
	queue   []*stateUpdate // waiting for the next write
	writing bool           // a group is being written

	// onWrite, if set, hears the outcome of every write (the daemon's
	// health); fault, if set, fails writes (tests).
	onWrite func(error)
	fault   atomic.Pointer[func() error]
}

// stateUpdate is one Update waiting in a group.
type stateUpdate struct {
	change func(*State) error
	st     State
	err    error
	lead   bool          // woken to write the next group, not with a result
	done   chan struct{} // closed when st and err are set, or lead
}

// OpenStateFile prepares the state directory. It does not read the file.
func OpenStateFile(dir string) (*StateFile, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &StateFile{dir: dir}, nil
}

// Path is the state file's path.
func (f *StateFile) Path() string { return filepath.Join(f.dir, StateFileName) }

// Load reads the current state. A missing file is an empty state.
func (f *StateFile) Load() (State, error) {
	unlock, err := f.lock()
	if err != nil {
		return State{}, err
	}
	defer unlock()
	return f.read()
}

// Update applies change to the current state and writes the result durably
// before returning; it returns the state written. If change returns an
// error its change is not written. Concurrent Updates may be written
// together (see StateFile), each change applied in the order they came; a
// change may run twice (when one after it in its group fails), so it must
// depend only on the state it is given. The state returned is shared with
// the rest of the group: read it, do not change it.
func (f *StateFile) Update(change func(*State) error) (State, error) {
	u := &stateUpdate{change: change, done: make(chan struct{})}
	f.mu.Lock()
	f.queue = append(f.queue, u)
	lead := !f.writing
	f.writing = true
	f.mu.Unlock()
	if !lead {
		<-u.done
		if !u.lead {
			return u.st, u.err
		}
	}
	// Write everything queued now, this update included, then hand the
	// next group to the first update that came meanwhile.
	f.mu.Lock()
	group := f.queue
	f.queue = nil
	f.mu.Unlock()
	f.commit(group)
	f.mu.Lock()
	if len(f.queue) > 0 {
		next := f.queue[0]
		next.lead = true
		close(next.done)
	} else {
		f.writing = false
	}
	f.mu.Unlock()
	for _, x := range group {
		if x != u {
			close(x.done)
		}
	}
	return u.st, u.err
}

// commit applies a group of changes in one locked read-modify-write.
func (f *StateFile) commit(group []*stateUpdate) {
	fail := func(err error) {
		for _, x := range group {
			x.err = err
		}
	}
	unlock, err := f.lock()
	if err != nil {
		fail(err)
		return
	}
	defer unlock()
	st, err := f.read()
	if err != nil {
		fail(err)
		return
	}
	// Each change works on the state itself: a copy per change cost a
	// copy of every intent per update, quadratic when thousands of creates
	// came at once. A change that fails may have left edits behind, so the
	// file (unchanged, locked) is read again and the changes before it
	// applied again: a change depends only on the state it is given.
	var applied []*stateUpdate
	for _, x := range group {
		if err := x.change(&st); err != nil {
			x.err = err
			if st, err = f.read(); err != nil {
				fail(err)
				return
			}
			for _, y := range applied {
				_ = y.change(&st) // it succeeded on this same state before
			}
			continue
		}
		applied = append(applied, x)
	}
	if len(applied) == 0 {
		return
	}
	var werr error
	if fault := f.fault.Load(); fault != nil {
		werr = (*fault)()
	}
	if werr == nil {
		werr = f.write(st)
	}
	if f.onWrite != nil {
		f.onWrite(werr)
	}
	for _, x := range applied {
		x.st, x.err = st, werr // shared: Update's callers only read it
	}
}

func (f *StateFile) lock() (func(), error) {
	lf, err := os.OpenFile(filepath.Join(f.dir, ".sessions.lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock state file: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock state file: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

func (f *StateFile) read() (State, error) {
	data, err := os.ReadFile(f.Path())
	if errors.Is(err, os.ErrNotExist) {
		return State{Version: 1}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read state file: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("read state file %s: %w", f.Path(), err)
	}
	if st.Version != 1 {
		return State{}, fmt.Errorf("read state file %s: unsupported version %d", f.Path(), st.Version)
	}
	return st, nil
}

func (f *StateFile) write(st State) error {
	st.Version = 1
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].UE < st.Sessions[j].UE })
	if st.Sessions == nil {
		st.Sessions = []Session{}
	}
	if st.Intents == nil {
		st.Intents = []Intent{}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(f.dir, ".sessions-*.tmp")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path()); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(f.dir)
	if err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}

// Budget is the session time charged on one UTC day, kept so that a restart
// does not hand out the daily budget a second time.
type Budget struct {
	Day         time.Time `json:"day"`
	UsedSeconds float64   `json:"used_seconds"`
}

func (s *State) setBudget(u policy.Usage) {
	s.Budget = &Budget{Day: u.BudgetDay, UsedSeconds: u.BudgetUsed.Seconds()}
}
