package daemon

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestStateFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenStateFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Load()
	if err != nil || len(st.Sessions) != 0 {
		t.Fatalf("empty load: %v %+v", err, st)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	_, err = f.Update(func(s *State) error {
		s.Intents = append(s.Intents, Intent{UE: "cam-7", QoS: "QOS_E", Duration: 600, TransactionID: "tx1", SentAt: now, Until: now.Add(11 * time.Minute)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = f.Load()
	if _, ok := st.IntentFor("cam-7"); !ok {
		t.Fatal("intent not persisted")
	}
	_, err = f.Update(func(s *State) error {
		s.AddSession(Session{UE: "cam-7", ID: "s1", QoS: "QOS_E", TransactionID: "tx1", StartedAt: now, ExpiresAt: now.Add(10 * time.Minute)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = f.Load()
	if _, ok := st.IntentFor("cam-7"); ok {
		t.Fatal("intent not settled by its session")
	}
	if s, ok := st.SessionFor("cam-7"); !ok || s.ID != "s1" {
		t.Fatalf("session: %+v %v", s, ok)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".tmp" {
			t.Fatalf("left %s", e.Name())
		}
	}
}

func TestStateFileConcurrentWritersLoseNothing(t *testing.T) {
	dir := t.TempDir()
	// Two handles stand for the daemon and the CLI.
	a, _ := OpenStateFile(dir)
	b, _ := OpenStateFile(dir)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		for _, f := range []*StateFile{a, b} {
			wg.Add(1)
			go func(f *StateFile, i int) {
				defer wg.Done()
				id := f.dir + string(rune('a'+i))
				if f == b {
					id += "-b"
				}
				if _, err := f.Update(func(s *State) error {
					s.AddSession(Session{UE: id, ID: id})
					return nil
				}); err != nil {
					t.Error(err)
				}
			}(f, i)
		}
	}
	wg.Wait()
	st, err := a.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 40 {
		t.Fatalf("want 40 sessions, got %d", len(st.Sessions))
	}
}

func TestStateFileRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	f, _ := OpenStateFile(dir)
	if err := os.WriteFile(f.Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil {
		t.Fatal("want an error for a corrupt state file")
	}
	if _, err := f.Update(func(*State) error { return nil }); err == nil {
		t.Fatal("update must not overwrite a corrupt state file")
	}
}

func TestDropExpiredIntents(t *testing.T) {
	now := time.Unix(1000, 0)
	s := State{Intents: []Intent{{TransactionID: "old", Until: now}, {TransactionID: "new", Until: now.Add(time.Second)}}}
	dropped := s.DropExpiredIntents(now)
	if len(dropped) != 1 || dropped[0].TransactionID != "old" || len(s.Intents) != 1 {
		t.Fatalf("dropped %+v kept %+v", dropped, s.Intents)
	}
}
