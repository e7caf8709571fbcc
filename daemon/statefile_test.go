package daemon

import (
	"errors"
	"fmt"
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

// Updates from one process are written in groups: every change lands, in
// the state each caller gets back too, and a change that fails leaves
// nothing behind even when it shares a write with others.
func TestStateFileGroupCommit(t *testing.T) {
	f, _ := OpenStateFile(t.TempDir())
	if _, err := f.Update(func(s *State) error { s.AddSession(Session{UE: "keep", ID: "keep"}); return nil }); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errBad := errors.New("refused")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("s", i)
			st, err := f.Update(func(s *State) error {
				if i%10 == 3 {
					s.RemoveSession("keep") // in place, in its copy
					return errBad
				}
				s.AddSession(Session{UE: id, ID: id})
				return nil
			})
			if i%10 == 3 {
				if !errors.Is(err, errBad) {
					t.Errorf("update %d: err %v, want its own error", i, err)
				}
				return
			}
			if _, has := st.SessionFor(id); err != nil || !has {
				t.Errorf("update %d: err %v, its session in the state returned: %v", i, err, has)
			}
		}()
	}
	wg.Wait()
	st, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		_, has := st.SessionFor(fmt.Sprint("s", i))
		if has != (i%10 != 3) {
			t.Errorf("session s%d on disk: %v", i, has)
		}
	}
	if _, has := st.SessionFor("keep"); !has || len(st.Sessions) != 1+n-n/10 {
		t.Errorf("on disk: %d sessions, keep there: %v; want %d", len(st.Sessions), has, 1+n-n/10)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writing || len(f.queue) != 0 {
		t.Errorf("after every update returned: writing %v, %d queued", f.writing, len(f.queue))
	}
}
