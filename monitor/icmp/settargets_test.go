package icmp

import (
	"log/slog"
	"testing"
	"time"
)

// SetTargets works out what changed without the engine's lock, which the
// sender and the receivers take for every packet: handing over an
// unchanged fleet (every reload, every discovery refresh) must not stop
// them. With 250,000 targets the old SetTargets held the lock for seconds,
// and replies left unread that long were counted as lost.
func TestSetTargetsUnchangedDoesNotTakeTheLock(t *testing.T) {
	e := &Engine{log: slog.New(slog.DiscardHandler), clock: time.Now, start: time.Now(),
		poke: make(chan struct{}, 1), targets: map[Target]*target{}, sockets: map[socketKey]*socket{}}
	ts, _ := loopbackTargets(1000, 1, Target{Interval: time.Second})
	e.SetTargets(ts)
	if len(e.sends) != len(ts) {
		t.Fatalf("%d targets scheduled, want %d", len(e.sends), len(ts))
	}
	e.mu.Lock() // the sender, busy
	done := make(chan struct{})
	go func() {
		e.SetTargets(ts)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("SetTargets of an unchanged set waited for the engine's lock")
	}
	e.mu.Unlock()
	<-done
	// A changed set still gets through, once the lock is free.
	e.SetTargets(ts[:500])
	if len(e.sends) != 500 || len(e.targets) != 500 {
		t.Fatalf("after dropping half: %d scheduled, %d targets; want 500", len(e.sends), len(e.targets))
	}
}

// A packet that times out after this host's kernel dropped replies on the
// socket's full queue (SO_RXQ_OVFL), and was sent before the drop was
// seen, is not a loss of its UE: it is counted as unjudged and recorded as
// nothing. One sent after that is judged as usual. (Four 250,000-UE
// shards starting on 2 cores overflowed a queue and each such timeout
// bought a session.)
func TestExpireDoesNotBlameUEsForHostDrops(t *testing.T) {
	e := &Engine{log: slog.New(slog.DiscardHandler), slots: newSlotTable(8)}
	// Every reply queued so far is read (watermark), so expiry need not wait.
	s := &socket{opened: true, hostDrops: 3, overflowAt: 100, watermark: 1 << 62}
	e.opened = []*socket{s}
	tg := &target{cfg: Target{UE: "cam-1"}, sock: s}
	for serial, sentAt := range map[uint64]int64{1: 50, 2: 150} {
		*e.slots.claim(serial) = slot{serial: serial, sentAt: sentAt, t: tg, state: slotPending}
		e.deadlines.push(deadline{at: sentAt + 1000, serial: serial})
		s.pending++
	}
	e.expire(10_000) // both deadlines past
	if e.c.Unjudged != 1 || e.c.Lost != 1 {
		t.Errorf("unjudged %d, lost %d; want 1 and 1", e.c.Unjudged, e.c.Lost)
	}
	if len(e.lostResults) != 1 || e.lostResults[0].UE != "cam-1" {
		t.Errorf("losses recorded: %+v, want the one packet sent after the drop", e.lostResults)
	}
	if s.pending != 0 {
		t.Errorf("%d packets still pending", s.pending)
	}
}
