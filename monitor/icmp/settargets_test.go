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
